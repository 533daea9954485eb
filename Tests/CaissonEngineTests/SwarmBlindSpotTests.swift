import CaissonCore
import CaissonSimulator
import Testing

/// Mutants the swarm does not see (issue 17, `scripts/mutants/engine.mut`), each killed here by a
/// test that fails with its mutant planted and passes without (`scripts/mutate --only ID`).
@Suite("Engine: what the swarm does not draw")
struct SwarmBlindSpotTests {
    /// H09. Under `container_health`, a container whose image has no HEALTHCHECK fails the check
    /// at its first look, with a sentence saying why: waiting for a health that will never come
    /// would end 30 s later as a timeout with the wrong code. (The swarm never draws it: Caisson
    /// refuses such an update before the engine runs; this is the engine's own second line.)
    @Test func aContainerWithoutHealthcheckFailsAtItsFirstLook() {
        let policy = HealthPolicy(kind: .containerHealth, timeoutSecs: 30, pollIntervalSecs: 1, stableSecs: 5)
        var t = HealthTracker(policy: policy, startMillis: 0)
        let c = ContainerInfo(id: "c", name: "app", imageID: "i", imageReference: "r", status: .running, health: .none, startedAt: "s1")
        let verdict = t.observe([c], expectedImageID: nil, now: 0)
        guard case .failed(let why) = verdict else {
            Issue.record("a container without HEALTHCHECK under container_health: \(verdict), expected failed at once")
            return
        }
        #expect(why.contains("has no HEALTHCHECK"))
    }

    /// R05. An attempt recorded without any journal snapshot (the process died before its first
    /// step was journaled, or an older database) changed nothing: recovery closes it as `failed`
    /// (`update.interrupted`, `update_failed`), never as rolled back, and touches nothing. (The
    /// swarm never sees it: every journal write of the engine carries the attempt and its
    /// snapshot together.)
    @Test func anAttemptWithoutSnapshotIsRecoveredAsFailed() throws {
        let s = UpdateScenario(.init(mode: .docker, healthKind: .running))
        let journal = InMemoryJournal()
        let machine = UpdateMachine(plan: s.plan, startedAt: s.host.clock.timestamp())
        try journal.write(JournalWrite(attempt: machine.attempt))
        let inflight = try #require(try journal.inFlightAttempts().first)
        #expect(inflight.machine == nil)
        let changes = s.host.mutatingCallCount
        let report = try Recovery.run(host: s.host, journal: journal, clock: s.host.clock)
        let a = try #require(report.recovered.first)
        #expect(a.status == .failed)
        #expect(a.status.exitCode == 4)
        #expect(a.issues.map(\.code) == ["update.interrupted"])
        #expect(journal.attempts.map(\.status) == [.failed])
        #expect(journal.events.map(\.kind) == [.updateFailed])
        #expect(s.host.mutatingCallCount == changes)
    }

    /// M16. Someone retags the package's reference to another image after validation: the update
    /// must see it at its inspection of the target and refuse before any change
    /// (`docker.inspect_failed`), in both runtime modes; accepting any image there deploys (or
    /// stages) the outsider's image under the package's name.
    @Test(arguments: RuntimeMode.allCases)
    func aRetaggedTargetIsRefusedBeforeAnyChange(_ mode: RuntimeMode) throws {
        let s = UpdateScenario(.init(mode: mode, healthKind: .containerHealth, outsider: .retagsTarget))
        let a = try #require(s.run())
        #expect(s.violations() == [])
        #expect(s.host.interventionLog.contains { $0.applied })
        #expect(a.status == .failed)
        #expect(a.issues.map(\.code) == ["docker.inspect_failed"])
        #expect(RecoveryAuditTests.kinds(s) == [.updateStarted, .updateFailed])
    }

    /// X01. Docker refuses to remove a running container without force (`docker rm` without
    /// `-f`): the simulator must too, or an engine that removes the live container as if it were
    /// stopped would pass. (A correct engine never asks it, so the swarm cannot see this.)
    @Test func anUnforcedRemoveOfARunningContainerIsAConflict() throws {
        let host = try SimFixture.hostWithApp()
        #expect(simError { try host.removeStoppedContainer("app") }?.kind == .conflict)
        #expect(host.container("app")?.isRunning == true)
        try host.stopContainer("app", graceSecs: 10)
        try host.removeStoppedContainer("app")
        #expect(host.container("app") == nil)
    }
}
