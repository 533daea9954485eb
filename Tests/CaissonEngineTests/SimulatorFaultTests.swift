import CaissonCore
import CaissonSimulator
import Testing

@Suite("Simulator: faults, trace, determinism")
struct SimulatorFaultTests {
    typealias F = SimFixture

    /// Fault sites are drawn in `allCases` order and looked up by `ordinal`: the two must agree,
    /// or one operation's faults land on another (a merge once swapped two of them).
    @Test func everyOperationsOrdinalIsItsPositionInAllCases() {
        for (i, op) in SimOperation.allCases.enumerated() {
            #expect(op.ordinal == i, "\(op) has ordinal \(op.ordinal) at position \(i)")
        }
    }

    /// A small Docker-mode update, the way the update machine drives a host; stops at the first error.
    static func update(_ host: SimulatedHost) -> HostError? {
        simError {
            _ = try host.ping()
            _ = try host.loadImage(F.payload("app:2", F.v2, config: F.config(health: "healthy")), progress: { _ in })
            _ = try host.inspectContainer("app")
            _ = try host.createContainer(name: "app-next", cloning: "app", imageID: F.v2, labels: ["io.caisson.update": "u1"])
            try host.stopContainer("app", graceSecs: 10)
            try host.renameContainer("app", to: "app-rollback")
            try host.renameContainer("app-next", to: "app")
            try host.startContainer("app")
            host.clock.sleep(millis: 2500)
            _ = try host.inspectContainer("app")
            try host.removeContainer("app-rollback")
        }
    }

    static func freshHost(seed: UInt64 = 7, faults: FaultPlan = .none, recordTrace: Bool = true) throws -> SimulatedHost {
        let host = try F.hostWithApp(seed: seed)
        host.recordTrace = recordTrace
        host.clearRecords()
        host.faultPlan = faults
        return host
    }

    @Test func cleanRunRecordsEveryCall() throws {
        let host = try Self.freshHost()
        #expect(Self.update(host) == nil)
        #expect(host.callCount == 10)
        #expect(host.calls.map(\.index) == Array(0..<10))
        #expect(host.calls.map(\.operation) == [.ping, .loadImage, .inspectContainer, .createContainer, .stopContainer,
                                                .renameContainer, .renameContainer, .startContainer, .inspectContainer,
                                                .removeContainer])
        #expect(host.calls.filter { $0.operation == .renameContainer }.map(\.operationIndex) == [0, 1])
        #expect(host.trace.count == 10)
        #expect(host.trace.last?.hasPrefix("t=2500 #9 removeContainer app-rollback -> ok") == true)
        #expect(host.container("app")?.imageID == F.v2)
        #expect(host.container("app")?.health == .healthy)
    }

    @Test func sameSeedSameCallsSameTraceAndDigest() throws {
        let a = try Self.freshHost(seed: 3)
        let b = try Self.freshHost(seed: 3)
        _ = Self.update(a)
        _ = Self.update(b)
        #expect(a.trace == b.trace)
        #expect(a.traceDigest == b.traceDigest)
        let c = try Self.freshHost(seed: 4)
        _ = Self.update(c)
        #expect(c.traceDigest != a.traceDigest)             // container ids differ
    }

    @Test func digestDoesNotDependOnRecordingTheText() throws {
        let a = try Self.freshHost(recordTrace: true)
        let b = try Self.freshHost(recordTrace: false)
        _ = Self.update(a)
        _ = Self.update(b)
        #expect(b.trace.isEmpty)
        #expect(!a.trace.isEmpty)
        #expect(a.traceDigest == b.traceDigest)
    }

    @Test func failIsDefiniteAndAppliesNothing() throws {
        let host = try Self.freshHost(faults: FaultPlan(rules: [.on(.createContainer, .fail)]))
        let error = Self.update(host)
        #expect(error?.kind == .failed)
        #expect(host.container("app-next") == nil)
        #expect(host.calls.last?.fault == .fail && host.calls.last?.error == .failed)
        #expect(host.trace.last?.contains("[fault: fail]") == true)
    }

    @Test func failAfterApplyingAppliesThenIsIndeterminate() throws {
        let host = try Self.freshHost(faults: FaultPlan(rules: [.on(.createContainer, nth: 0, .failAfterApplying)]))
        #expect(Self.update(host)?.kind == .indeterminate)
        #expect(host.container("app-next")?.status == .created)
        // Retrying blindly now hits the name conflict: the caller must inspect first.
        #expect(simError { try host.createContainer(name: "app-next", cloning: "app", imageID: F.v2, labels: [:]) }?.kind == .conflict)
    }

    @Test func timeoutIsIndeterminateAppliesNothingAndTakesTime() throws {
        let host = try Self.freshHost(faults: FaultPlan(rules: [.on(.stopContainer, .timeout(millis: 30_000))]))
        #expect(Self.update(host)?.kind == .indeterminate)
        #expect(host.clock.nowMillis == 30_000)
        #expect(host.container("app")?.isRunning == true)
    }

    @Test func slowTakesTimeThenSucceeds() throws {
        let host = try Self.freshHost(faults: FaultPlan(rules: [.on(.loadImage, .slow(millis: 4000))]))
        #expect(Self.update(host) == nil)
        #expect(host.clock.nowMillis == 4000 + 2500)
        #expect(host.calls[1].fault == .slow(millis: 4000) && host.calls[1].error == nil)
    }

    @Test func diskFullAndUnreachableApplyNothing() throws {
        let full = try Self.freshHost(faults: FaultPlan(rules: [.on(.loadImage, .diskFull)]))
        #expect(Self.update(full)?.kind == .diskFull)
        #expect(full.image(F.v2) == nil)
        let down = try Self.freshHost(faults: FaultPlan(rules: [.atCall(0, .unreachable)]))
        #expect(Self.update(down)?.kind == .unreachable)
        #expect(down.callCount == 1)
    }

    @Test func daemonRestartHappensBeforeTheCallWhichThenProceeds() throws {
        // Call 5 is the stop of `app` (restart policy "no"): the daemon restart already stopped it.
        let host = try Self.freshHost(faults: FaultPlan(rules: [.atCall(4, .daemonRestart)]))
        #expect(Self.update(host) == nil)
        #expect(host.daemonRestartCount == 1)
        #expect(host.calls[4].fault == .daemonRestart && host.calls[4].error == nil)
        #expect(host.container("app")?.imageID == F.v2)
    }

    @Test func rulesTargetTheNthCallOverallOrOfAnOperation() throws {
        let overall = try Self.freshHost(faults: FaultPlan(rules: [.atCall(6, .fail)]))
        _ = Self.update(overall)
        #expect(overall.calls.last?.index == 6)
        #expect(overall.calls.last?.operation == .renameContainer && overall.calls.last?.operationIndex == 1)
        let nth = try Self.freshHost(faults: FaultPlan(rules: [.on(.renameContainer, nth: 1, .fail)]))
        _ = Self.update(nth)
        #expect(nth.calls.last?.index == 6)
        #expect(nth.traceDigest == overall.traceDigest)
        let both = try Self.freshHost(faults: FaultPlan(rules: [FaultRule(callIndex: 5, operation: .renameContainer, operationIndex: 1, kind: .fail)]))
        #expect(Self.update(both) == nil)                   // call 5 is the first rename: no match
    }

    @Test func exhaustiveMatrixOverCallIndices() throws {
        let clean = try Self.freshHost()
        _ = Self.update(clean)
        var digests = Set<UInt64>()
        for call in clean.calls {
            let host = try Self.freshHost(faults: FaultPlan(rules: [.atCall(call.index, .fail)]))
            #expect(Self.update(host)?.kind == .failed)
            #expect(host.calls.last?.index == call.index)
            #expect(host.calls.last?.operation == call.operation)
            digests.insert(host.traceDigest)
        }
        #expect(digests.count == clean.calls.count)
    }

    @Test func swarmIsDeterministicPerSeedAndDiffersAcrossSeeds() throws {
        func run(_ seed: UInt64) throws -> (UInt64, [SimCall]) {
            let swarm = SwarmFaults(seed: seed, kinds: FaultKind.all, probability: 0.3, siteActivationProbability: 0.8)
            let host = try Self.freshHost(seed: 1, faults: FaultPlan(swarm: swarm), recordTrace: false)
            for _ in 0..<20 { _ = Self.update(host) }
            return (host.traceDigest, host.calls)
        }
        let (d1, c1) = try run(100)
        let (d1b, c1b) = try run(100)
        #expect(d1 == d1b && c1 == c1b)
        #expect(c1.contains { $0.fault != nil })
        var others = Set<UInt64>()
        for seed in UInt64(101)...105 { others.insert(try run(seed).0) }
        #expect(!others.contains(d1))
        #expect(others.count == 5)
    }

    @Test func swarmSitesAreActivatedOncePerRun() throws {
        let swarm = SwarmFaults(seed: 9, kinds: [.fail], probability: 1.0, siteActivationProbability: 0.5)
        let host = try Self.freshHost(faults: FaultPlan(swarm: swarm), recordTrace: false)
        let active = Set(host.swarm?.activeSiteList.map { $0.0 } ?? [])
        #expect(!active.isEmpty && active.count < SimOperation.allCases.count)
        for op in SimOperation.allCases where !active.contains(op) {
            // Inactive sites never fire, whatever the probability.
            _ = simError { () throws -> Void in
                switch op {
                case .ping: _ = try host.ping()
                case .inspectImage: _ = try host.inspectImage("app:1")
                case .inspectContainer: _ = try host.inspectContainer("app")
                case .composeContainers: _ = try host.composeContainers(ComposeTarget(project: "p", file: "f", service: "s"))
                default: return
                }
            }
        }
        #expect(host.calls.allSatisfy { active.contains($0.operation) == ($0.fault != nil) })
    }

    @Test func randomizedSwarmPicksANonEmptySubset() {
        for seed in UInt64(0)..<50 {
            let s = SwarmFaults.randomized(seed: seed)
            #expect(!s.kinds.isEmpty && s.kinds.allSatisfy(FaultKind.all.contains))
            #expect(s.probability > 0 && s.probability <= 0.2)
            #expect(SwarmFaults.randomized(seed: seed) == s)
        }
    }
}
