import CaissonCore
import CaissonSimulator
import Testing

/// The apply/rollback matrix (issue 3): every fault kind at every host call of an update, both
/// runtime modes, every health kind (for the probe kinds, every scripted answer), good and bad images; and a crash of the updater at every
/// journal write, followed by recovery. Each run checks the invariants of DESIGN.md.
@Suite struct MatrixTests {
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
                    for b in ["healthy", "unhealthy", "crash", "never-ready", "oom"] {
                        out.append(UpdateScenario.Config(mode: mode, healthKind: kind, newBehaviour: b))
                    }
                }
            }
        }
        return out
    }()

    static let faultKinds: [FaultKind] = [.fail, .failAfterApplying, .timeout(millis: 30_000), .slow(millis: 5_000), .diskFull]

    @Test("clean runs end as the image deserves", arguments: configs)
    func cleanRun(_ config: UpdateScenario.Config) throws {
        let s = UpdateScenario(config)
        let a = try #require(s.run())
        #expect(s.violations() == [])
        if config.newReleaseShouldPass {
            // (Under `running`, unhealthy / never-ready images still *run*: that policy cannot see
            // Docker health, so it keeps them; that is what `container_health` is for.)
            #expect(a.status == .succeeded)
            #expect(a.healthCheck?.outcome == .passed)
        } else {
            #expect(a.status == .rolledBack)
            #expect(a.rollbackHealthCheck?.outcome == .passed)
            #expect(a.issues.contains { $0.code.hasPrefix("health_check.") })
        }
    }

    /// Every fault kind injected at every host call index of the clean run.
    @Test("a fault at every call never loses the service", arguments: configs)
    func faultAtEveryCall(_ config: UpdateScenario.Config) throws {
        let clean = UpdateScenario(config)
        clean.run()
        let calls = clean.host.callCount
        #expect(calls > 5)
        var runs = 0
        for index in 0..<calls {
            for kind in Self.faultKinds {
                let s = UpdateScenario(config)
                s.run(faults: FaultPlan(rules: [.atCall(index, kind)]))
                let v = s.violations()
                #expect(v == [], "fault \(kind) at call \(index) (\(clean.host.calls[index].operation)): \(v)")
                if let a = s.attempt { #expect(a.status.isTerminal) }
                runs += 1
            }
        }
        #expect(runs == calls * Self.faultKinds.count)
    }

    /// The updater dies at every journal write (after it is durable, and instead of it); the next
    /// command recovers.
    @Test("a crash at every journal point is recovered", arguments: configs)
    func crashAtEveryJournalPoint(_ config: UpdateScenario.Config) throws {
        let clean = UpdateScenario(config)
        clean.run()
        let writes = clean.journal.writeCount
        #expect(writes >= 4)
        for point in 0..<writes {
            for before in [false, true] {
                let s = UpdateScenario(config)
                s.run(crashAtWrite: point, crashBeforeWrite: before)
                #expect(s.crashed)
                let v = s.violations()
                #expect(v == [], "crash \(before ? "before" : "after") write \(point): \(v)")
                if let a = s.attempt {
                    #expect(a.status.isTerminal)
                    // A crash can only make a good release fail safe, never commit a bad one.
                    #expect(!(config.newReleaseMustFail && a.status == .succeeded))
                }
            }
        }
    }

    @Test("a daemon restart mid-update is survived", arguments: configs)
    func daemonRestartAtEveryCall(_ config: UpdateScenario.Config) throws {
        let clean = UpdateScenario(config)
        clean.run()
        for index in 0..<clean.host.callCount {
            let s = UpdateScenario(config)
            s.run(faults: FaultPlan(rules: [.atCall(index, .daemonRestart)]))
            #expect(s.violations() == [], "daemon restart at call \(index)")
        }
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
        // The swarm must exercise every ending and real crashes, or it proves little.
        #expect(summary.crashes > 1000)
        #expect((summary.statuses["succeeded"] ?? 0) > 0)
        #expect((summary.statuses["rolled_back"] ?? 0) > 0)
        #expect((summary.statuses["failed"] ?? 0) > 0)
        // Thin packages (issue 16): loaded where the base is, refused where it went missing.
        #expect(summary.thinPackages > 1000 && summary.basesMissing > 100)
        // Encrypted packages (issue 15): loaded intact, refused damaged, cut short, another device's.
        #expect(summary.encryptedPackages > 500 && summary.encryptedRefused > 300)
    }
}
