import CaissonCore
import CaissonSimulator
import Testing

/// Issue 10 items 4 and 5 in the simulator's model: Ctrl-C / SIGTERM at every step of an update,
/// and a state disk that fills up (or a state database deleted) at every journal write.
@Suite struct SignalAndStorageTests {
    static let configs = SecondProcessTests.configs

    @Test("one signal at every step: stop untouched, restore, or finish a passed commit", arguments: configs)
    func oneSignalAtEveryStep(_ config: UpdateScenario.Config) throws {
        let clean = UpdateScenario(config)
        let expected = try #require(clean.run())
        let writes = clean.journal.writeCount
        var sawRestore = false, sawUntouched = false
        for index in 0..<writes {
            let s = UpdateScenario(config)
            let a = try #require(s.run(signal: SignalPlan(afterWrite: index)), "signal after write \(index)")
            #expect(!s.crashed, "signal after write \(index)")
            #expect(s.violations() == [], "signal after write \(index)")
            #expect(a.status.isTerminal)
            if a.issues.contains(where: { $0.code == "update.cancelled" }) {
                // Stopped: never committed, the previous release runs (the invariants check which).
                #expect(a.status != .succeeded, "signal after write \(index)")
                if a.status == .rolledBack { sawRestore = true }
                if a.status == .failed { sawUntouched = true }
            } else {
                // Arrived once the health check had passed (or at the very end): as without it.
                #expect(a.status == expected.status, "signal after write \(index)")
            }
        }
        #expect(sawUntouched)
        #expect(sawRestore || !config.newReleaseShouldPass || config.mode == .compose && clean.journal.writeCount < 6)
    }

    @Test("a second signal within 3 s leaves it to recovery; later it is ignored", arguments: configs)
    func secondSignal(_ config: UpdateScenario.Config) throws {
        let clean = UpdateScenario(config)
        clean.run()
        for index in 0..<clean.journal.writeCount {
            for second: Int64 in [0, 1_000, 2_999, 3_000, 10_000] {
                let s = UpdateScenario(config)
                let a = s.run(signal: SignalPlan(afterWrite: index, secondAfterMillis: second))
                #expect(s.violations() == [], "signal after write \(index), second after \(second) ms")
                if let a { #expect(a.status.isTerminal) }
                if second >= SignalPlan.forceWindowMillis { #expect(!s.crashed, "second after \(second) ms must be ignored") }
            }
        }
    }

    @Test("a full state disk at every journal write: restore or finish, say so, never 'nothing was changed'",
          arguments: configs)
    func diskFullAtEveryWrite(_ config: UpdateScenario.Config) throws {
        let clean = UpdateScenario(config)
        clean.run()
        var sawIssue = false
        for index in 1..<clean.journal.writeCount {
            for kind in [StorageFault.Kind.diskFull, .gone] {
                for reserve in kind == .gone ? [0] : [0, 2, 1_000] {
                    let s = UpdateScenario(config)
                    s.run(storage: StorageFault(kind: kind, fromWrite: index, reserveWrites: reserve))
                    #expect(!s.crashed, "\(kind) from write \(index), reserve \(reserve)")
                    #expect(s.violations() == [], "\(kind) from write \(index), reserve \(reserve)")
                    let a = try #require(s.inProcessAttempt)
                    if reserve < 1_000 {
                        sawIssue = sawIssue || a.issues.contains { $0.code == (kind == .gone ? "store.gone" : "store.disk_full") }
                    } else {
                        // The reserve was enough: exactly as without the fault.
                        #expect(a.issues.allSatisfy { !$0.code.hasPrefix("store.") })
                    }
                    // The next command, with room again, leaves nothing unfinished.
                    #expect(try s.journal.inFlightAttempts().isEmpty)
                }
            }
        }
        #expect(sawIssue)
    }

    /// A power cut (or `kill -9`) while the state disk is full, and the next process (the boot
    /// unit, `caisson recover`) still finds it full: it must bring the service back without the
    /// journal and say its record waits for room, not fail and leave an unverified release live
    /// until someone frees space ("`recover` could not run until space was freed").
    @Test("recovery on a still-full state disk restores the service and says the record waits for room", arguments: configs)
    func recoveryOnAStillFullDisk(_ config: UpdateScenario.Config) throws {
        let clean = UpdateScenario(config)
        clean.run()
        var sawUnrecorded = false
        for index in 1..<clean.journal.writeCount {
            for reserve in [0, 1] {
                let s = UpdateScenario(config)
                // The disk fills at write `index` and the process dies there.
                s.run(crashAtWrite: index, crashBeforeWrite: true,
                      storage: StorageFault(fromWrite: index, reserveWrites: reserve, stillFullAtRecovery: true))
                let what = "disk full and a power cut at write \(index), reserve \(reserve)"
                #expect(s.crashed, "\(what)")
                #expect(s.violations() == [], "\(what)")
                let outcome = try #require(s.fullDiskRecoveryOutcome, "\(what): no recovery ran on the full disk")
                if case .failure(let e) = outcome { Testing.Issue.record("\(what): recovery failed: \(e.code) \(e.message)") }
                if case .success(let report) = outcome, report.problems.contains(where: { $0.code == "store.disk_full" }) {
                    sawUnrecorded = true
                    #expect(report.recovered.allSatisfy { $0.status.isTerminal && $0.issues.contains { $0.code == "store.disk_full" } }, "\(what)")
                }
                // With room again, the next command finished the record.
                #expect(try s.journal.inFlightAttempts().isEmpty, "\(what)")
            }
        }
        #expect(sawUnrecorded)
    }

    @Test(arguments: configs) func diskTooFullForTheReserveChangesNothing(_ config: UpdateScenario.Config) throws {
        let s = UpdateScenario(config)
        let before = s.host.mutatingCallCount
        #expect(s.run(storage: StorageFault(fromWrite: 0, reserveFails: true)) == nil)
        #expect(s.refusal?.code == "store.disk_full")
        #expect(s.violations() == [])
        #expect(s.host.mutatingCallCount == before)
    }
}

extension SignalAndStorageTests {
    /// The swarm draws every issue-10 disruption (and still finds no violation).
    @Test func swarmDrawsSecondProcessesSignalsAndFullDisks() {
        let summary = Swarm.run(runs: 2_000, seed: 10)
        #expect(summary.violations == 0, "first violation: \(String(describing: summary.firstViolation))")
        #expect(summary.secondProcesses > 50)
        #expect(summary.signals > 50)
        #expect(summary.storageFaults > 30)
        #expect(summary.fullDiskRecoveries > 5)
    }
}
