import CaissonCore
import CaissonSimulator
import Testing

/// The apply/rollback matrix (issues 3 and 17): every fault kind at every host call of an update,
/// both runtime modes, every health kind (for the probe kinds, every scripted answer), every image behaviour; a crash of the updater at every
/// journal write (and a second one during its recovery), followed by recovery, with and without
/// faults during the recovery; every restart policy under daemon restarts and crashes; outsiders
/// holding the service's names. Each run is judged by the exact outcome its scenario implies
/// (`UpdateScenario.expectation()`), not only by invariants. A failing case is reported with how
/// to reproduce it and the sweep goes on (at most `reportLimit` cases are spelled out).
@Suite struct MatrixTests {
    static let behaviours = ["healthy", "unhealthy", "crash", "crash:2.5", "never-ready", "flap", "oom"]
    static let configs: [UpdateScenario.Config] = {
        var out: [UpdateScenario.Config] = []
        for mode in RuntimeMode.allCases {
            for kind in HealthKind.allCases {
                if kind.isProbe {
                    // Every scripted probe answer, from a process that keeps running and one that crashes.
                    for b in ["healthy", "crash"] {
                        for answer in UpdateScenario.Config.probeAnswers(kind) {
                            out.append(UpdateScenario.Config(mode: mode, healthKind: kind, newBehaviour: b, probe: answer))
                        }
                    }
                } else {
                    for b in behaviours {
                        out.append(UpdateScenario.Config(mode: mode, healthKind: kind, newBehaviour: b))
                    }
                }
            }
        }
        return out
    }()

    static let faultKinds: [FaultKind] = [.fail, .failAfterApplying, .timeout(millis: 30_000), .slow(millis: 5_000), .diskFull,
                                          .unreachable, .daemonRestart, .daemonCrash]
    static let reportLimit = 12

    /// Failing cases of a sweep, each with its reproduction; never traps.
    struct Report {
        var runs = 0
        var failures: [String] = []

        mutating func judge(_ s: UpdateScenario, _ what: @autoclosure () -> String) {
            runs += 1
            let v = s.violations()
            if !v.isEmpty { failures.append("\(s.config) — \(what()): \(v.joined(separator: "; "))") }
        }

        var summary: String {
            "\(failures.count) of \(runs) runs failed:\n" + failures.prefix(MatrixTests.reportLimit).joined(separator: "\n")
        }
    }

    /// The calls of a clean run of `config` that belong to the update (not the world's own setup).
    static func updateCalls(_ config: UpdateScenario.Config) -> [SimCall] {
        let clean = UpdateScenario(config)
        clean.run()
        return clean.host.calls.filter { $0.index >= clean.firstCall }
    }

    @Test("clean runs end exactly as the image deserves", arguments: configs)
    func cleanRun(_ config: UpdateScenario.Config) throws {
        let s = UpdateScenario(config)
        let a = try #require(s.run())
        #expect(s.violations() == [])
        #expect(s.expectation().isOpen == false, "a clean run's outcome is never open: \(s.expectation())")
        if config.newReleaseShouldPass {
            // (Under `running`, unhealthy / never-ready / flapping images still *run*: that policy
            // cannot see Docker health, so it keeps them; that is what `container_health` is for.)
            #expect(a.status == .succeeded)
            #expect(a.healthCheck?.outcome == .passed)
        } else {
            #expect(a.status == .rolledBack)
            #expect(a.rollbackHealthCheck?.outcome == .passed)
            #expect(a.issues.contains { $0.code.hasPrefix("health_check.") })
        }
    }

    /// The table the oracle must agree with, written out for the clean runs.
    @Test func cleanOutcomesTable() throws {
        let expected: [String: (UpdateStatus, String?)] = [
            "docker/container_health/healthy": (.succeeded, nil),
            "docker/container_health/unhealthy": (.rolledBack, "health_check.failed"),
            "docker/container_health/crash": (.rolledBack, "health_check.failed"),
            "docker/container_health/never-ready": (.rolledBack, "health_check.timed_out"),
            "docker/container_health/flap": (.rolledBack, "health_check.failed"),
            "docker/running/flap": (.succeeded, nil),
            "docker/running/crash:2.5": (.rolledBack, "health_check.failed"),
            "compose/container_health/never-ready": (.rolledBack, "health_check.timed_out"),
        ]
        for (name, (status, code)) in expected.sorted(by: { $0.key < $1.key }) {
            let config = try #require(Self.configs.first { $0.description == name })
            let s = UpdateScenario(config)
            let a = try #require(s.run())
            #expect(a.status == status, "\(name)")
            if let code { #expect(a.issues.map(\.code) == [code], "\(name)") }
            #expect(a.status.exitCode == (status == .succeeded ? 0 : 4))
        }
    }

    /// Every fault kind injected at every host call of the update (never at the world's own
    /// setup calls: the fault lands on the call the message names).
    @Test("a fault at every call ends as expected", arguments: configs)
    func faultAtEveryCall(_ config: UpdateScenario.Config) throws {
        let calls = Self.updateCalls(config)
        #expect(calls.count > 5)
        var report = Report()
        for call in calls {
            for kind in Self.faultKinds {
                let s = UpdateScenario(config)
                s.run(faults: FaultPlan(rules: [.atCall(call.index, kind)]))
                // The fault hit the very call it was aimed at.
                if s.host.faultLog.first?.index != call.index || s.host.faultLog.first?.operation != call.operation {
                    report.failures.append("\(config): fault \(kind) aimed at call \(call.index) (\(call.operation)) hit \(s.host.faultLog.map(\.index))")
                }
                report.judge(s, "fault \(kind) at call \(call.index) (\(call.operation.rawValue) #\(call.operationIndex))")
            }
        }
        #expect(report.failures.isEmpty, "\(report.summary)")
        #expect(report.runs == calls.count * Self.faultKinds.count)
    }

    /// The updater dies at every journal write (after it is durable, and instead of it); the next
    /// command recovers, against a calm host and against one failing its first recovery calls.
    @Test("a crash at every journal point is recovered", arguments: configs)
    func crashAtEveryJournalPoint(_ config: UpdateScenario.Config) throws {
        let clean = UpdateScenario(config)
        clean.run()
        let writes = clean.journal.writeCount
        #expect(writes >= 4)
        var report = Report()
        for point in 0..<writes {
            for before in [false, true] {
                let s = UpdateScenario(config)
                s.run(crashAtWrite: point, crashBeforeWrite: before)
                #expect(s.crashed)
                report.judge(s, "crash \(before ? "before" : "after") write \(point)")
                if let a = s.attempt, config.newReleaseMustFail, a.status == .succeeded {
                    report.failures.append("\(config): a crash at write \(point) committed a release that must fail")
                }
                // The same crash, then faults at the recovery's first calls.
                guard let recovery = s.processes.dropFirst().first else { continue }
                for offset in 0..<3 {
                    for kind in [FaultKind.failAfterApplying, .timeout(millis: 30_000), .daemonRestart] {
                        let r = UpdateScenario(config)
                        r.run(faults: FaultPlan(rules: [.atCall(recovery.firstCall + offset, kind)]),
                              crashes: [.init(write: point, before: before)], faultsDuringRecovery: true)
                        report.judge(r, "crash \(before ? "before" : "after") write \(point), then \(kind) at recovery call +\(offset)")
                    }
                }
            }
        }
        #expect(report.failures.isEmpty, "\(report.summary)")
    }

    /// The updater dies, and so does the recovery, at every later write of it.
    @Test("a crash during recovery is recovered", arguments: configs)
    func crashDuringRecovery(_ config: UpdateScenario.Config) throws {
        let clean = UpdateScenario(config)
        clean.run()
        var report = Report()
        var twice = 0
        for point in stride(from: 1, to: clean.journal.writeCount, by: 2) {
            let once = UpdateScenario(config)
            once.run(crashAtWrite: point, crashBeforeWrite: false)
            let recoveryWrites = once.journal.writeCount - point - 1
            for later in 0..<max(0, recoveryWrites) {
                for before in [false, true] {
                    let s = UpdateScenario(config)
                    s.run(faults: .none, crashes: [.init(write: point, before: false), .init(write: point + 1 + later, before: before)])
                    if s.processes.dropFirst().contains(where: \.crashed) { twice += 1 }
                    report.judge(s, "crash after write \(point), recovery crash \(before ? "before" : "after") write \(point + 1 + later)")
                }
            }
        }
        #expect(twice > 0)
        #expect(report.failures.isEmpty, "\(report.summary)")
    }

    /// Under every restart policy, a daemon restart and a daemon crash before every call.
    @Test("every restart policy survives daemon restarts and crashes",
          arguments: ["no", "on-failure", "on-failure:2", "always", "unless-stopped"])
    func restartPolicies(_ policy: String) throws {
        var report = Report()
        for base in Self.configs where ["healthy", "crash", "unhealthy"].contains(base.newBehaviour) {
            var config = base
            config.restartPolicy = policy
            let clean = UpdateScenario(config)
            clean.run()
            report.judge(clean, "clean")
            for call in clean.host.calls where call.index >= clean.firstCall {
                for kind in [FaultKind.daemonRestart, .daemonCrash] {
                    let s = UpdateScenario(config)
                    s.run(faults: FaultPlan(rules: [.atCall(call.index, kind)]))
                    report.judge(s, "\(kind) at call \(call.index) (\(call.operation.rawValue))")
                }
            }
        }
        #expect(report.failures.isEmpty, "\(report.summary)")
    }

    // MARK: The service's world: outsiders

    /// Someone else's container holds the name Caisson stages the new one under: that is another
    /// Caisson's mark (`ForeignMarks`), so the update is refused before it begins and leaves that
    /// container alone.
    @Test func aForeignContainerOnTheStagingNameRefusesTheUpdateAndIsLeftAlone() throws {
        let s = UpdateScenario(.init(mode: .docker, healthKind: .containerHealth, outsider: .holdsStagingName))
        #expect(s.run() == nil)
        #expect(s.violations() == [])
        #expect(s.refusal?.code == "update.foreign_attempt")
        #expect(s.journal.attempts.isEmpty)
        let foreign = try #require(s.foreignContainerID)
        #expect(s.host.container(foreign)?.isRunning == true)
        #expect(s.host.containers(named: "app").first?.id == s.oldContainerID)
    }

    /// Someone else's container takes the service's name while the old one is renamed away: the
    /// correct end is `rollback_failed` (exit 5): Caisson must not remove a container it did not
    /// create, and must keep the previous one for a human.
    @Test func aForeignContainerTakingTheServiceNameEndsRollbackFailed() throws {
        for kind in HealthKind.allCases {
            let s = UpdateScenario(.init(mode: .docker, healthKind: kind, outsider: .takesServiceName))
            let a = try #require(s.run())
            #expect(s.violations() == [])
            #expect(a.status == .rollbackFailed)
            #expect(a.status.exitCode == 5)
            #expect(a.issues.map(\.code).contains("rollback.rename_failed"))
            let intruder = try #require(s.host.interventionLog.first?.containerID)
            #expect(s.host.containers(named: "app").first?.id == intruder)
            #expect(s.host.container(try #require(s.oldContainerID)) != nil, "the previous container is kept for a human")
        }
    }

    /// The backup is removed by someone during the health check: a good release still commits;
    /// a bad one cannot be rolled back, and says so (`rollback_failed`).
    @Test(arguments: ["healthy", "unhealthy"])
    func theBackupRemovedByAnOutsider(_ behaviour: String) throws {
        let s = UpdateScenario(.init(mode: .docker, healthKind: .containerHealth, newBehaviour: behaviour, outsider: .removesBackup))
        let a = try #require(s.run())
        #expect(s.violations() == [])
        #expect(a.status == (behaviour == "healthy" ? .succeeded : .rollbackFailed))
    }

    /// A stray replica of the Compose service on the previous image appears during the health
    /// check: the check must not pass while a container of the service runs the wrong image.
    @Test(arguments: HealthKind.allCases)
    func aComposeReplicaOnTheWrongImageFailsTheCheck(_ kind: HealthKind) throws {
        let s = UpdateScenario(.init(mode: .compose, healthKind: kind, outsider: .composeReplica))
        let a = try #require(s.run())
        #expect(s.violations() == [])
        #expect(a.status == .rolledBack)
        #expect(a.issues.map(\.code) == ["health_check.timed_out"])
    }

    /// Every fault at every call with each outsider at work.
    @Test("outsiders with a fault at every call",
          arguments: UpdateScenario.Outsider.allCases.filter { $0 != .none })
    func outsidersWithFaults(_ outsider: UpdateScenario.Outsider) throws {
        var report = Report()
        for base in Self.configs where outsider.applies(to: base.mode) && ["healthy", "unhealthy"].contains(base.newBehaviour) {
            var config = base
            config.outsider = outsider
            for call in Self.updateCalls(config) {
                for kind in Self.faultKinds {
                    let s = UpdateScenario(config)
                    s.run(faults: FaultPlan(rules: [.atCall(call.index, kind)]))
                    report.judge(s, "fault \(kind) at call \(call.index) (\(call.operation.rawValue))")
                }
            }
        }
        // (Another Caisson's mark on the staging name: refused at the first call.)
        #expect(report.runs > (outsider == .holdsStagingName ? 20 : 100))
        #expect(report.failures.isEmpty, "\(report.summary)")
    }

    // MARK: The harness judges itself

    /// Only a planned crash is a crash: a machine that loops to its step limit is a failure.
    @Test func aMachineAtItsStepLimitIsAViolationNotACrash() {
        let s = UpdateScenario(.init(mode: .docker, healthKind: .containerHealth))
        s.maxSteps = 4
        s.run()
        #expect(!s.crashed)
        #expect(s.violations().contains { $0.contains("not a planned crash") })
    }

    /// Recovery reads what the store would: the snapshot through its JSON encoding (transient
    /// state, like the health tracker's observations, does not survive it).
    @Test func recoveryReadsSnapshotsThroughTheStoresEncoding() throws {
        let config = UpdateScenario.Config(mode: .docker, healthKind: .containerHealth)
        let clean = UpdateScenario(config)
        clean.run()
        let s = UpdateScenario(config)
        // Late in the health check (its tracker has observations).
        s.journal.crashAtWrite = try #require(clean.journal.entries.lastIndex { $0.entry.machine.attempt.status == .healthChecking })
        var machine = UpdateMachine(plan: s.plan, startedAt: s.host.clock.timestamp())
        #expect(throws: SimulatedCrash.self) { try UpdateDriver(host: s.host, journal: s.durable, clock: s.host.clock).run(&machine) }
        let memory = try #require(try s.journal.inFlightAttempts().first?.machine)
        let stored = try #require(try s.durable.inFlightAttempts().first?.machine)
        #expect(memory != stored, "the in-memory value keeps what the store does not")
        #expect(try JSONCoding.encode(memory) == JSONCoding.encode(stored))
    }

    /// A run the oracle must reject is reported, and the sweep goes on.
    @Test func theOracleRejectsAWrongOutcome() throws {
        let s = UpdateScenario(.init(mode: .docker, healthKind: .containerHealth, newBehaviour: "unhealthy"))
        s.run()
        #expect(s.violations() == [])
        // Plant a false service state (what a wrong bookkeeping would write).
        var state = s.previousState
        state.previousKnownGoodImageID = s.newImageID
        s.journal.setServiceState(state)
        var report = Report()
        report.judge(s, "planted state")
        report.judge(UpdateScenario(.init(mode: .docker, healthKind: .containerHealth)), "never run")
        #expect(report.runs == 2)
        #expect(report.failures.count == 2)
        #expect(report.failures[0].contains("service state changed"))
    }

    @Test func automaticRollbackOffKeepsTheNewReleaseAndTheBackup() throws {
        let s = UpdateScenario(UpdateScenario.Config(mode: .docker, healthKind: .containerHealth, newBehaviour: "unhealthy"))
        var plan = s.plan
        plan.service.automaticRollback = false
        var machine = UpdateMachine(plan: plan, startedAt: s.host.clock.timestamp())
        let a = try UpdateDriver(host: s.host, journal: s.journal, clock: s.host.clock).run(&machine)
        #expect(a.status == .failed)
        #expect(a.issues.contains { $0.code == "rollback.disabled" })
        #expect(s.host.containers(named: machine.backupName).count == 1)
    }

    @Test func sameSeedSameTrace() {
        let a = Swarm.runOne(runSeed: 42, recordTrace: true).0
        let b = Swarm.runOne(runSeed: 42, recordTrace: true).0
        #expect(a.host.trace == b.host.trace)
        #expect(a.host.traceDigest == b.host.traceDigest)
        #expect(!a.host.trace.isEmpty)
        let c = Swarm.runOne(runSeed: 43, recordTrace: true).0
        #expect(c.host.traceDigest != a.host.traceDigest)
        #expect(Swarm.run(runs: 200, seed: 7).traceDigest == Swarm.run(runs: 200, seed: 7).traceDigest)
    }

    @Test func swarmOfTenThousandRunsHasNoViolations() {
        let summary = Swarm.run(runs: 10_000, seed: 20261123)
        #expect(summary.runs == 10_000)
        #expect(summary.violations == 0, "first violation: \(String(describing: summary.firstViolation))")
        // The swarm must exercise every ending, real crashes (in recoveries too), faults during
        // recovery and outsiders, or it proves little.
        #expect(summary.crashes > 1000)
        #expect(summary.recoveryCrashes > 100)
        #expect(summary.recoveryFaults > 100)
        #expect(summary.outsiders > 500)
        for status in ["succeeded", "rolled_back", "failed", "rollback_failed", "none"] {
            #expect((summary.statuses[status] ?? 0) > 0, "no run ended \(status)")
        }
        // Thin packages (issue 16): loaded where the base is, refused where it went missing.
        #expect(summary.thinPackages > 1000 && summary.basesMissing > 100)
        // Encrypted packages (issue 15): loaded intact, refused damaged, cut short, another device's.
        #expect(summary.encryptedPackages > 500 && summary.encryptedRefused > 300)
    }
}
