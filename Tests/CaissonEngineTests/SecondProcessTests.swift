import CaissonCore
import CaissonSimulator
import Testing

/// Issue 10 items 1 and 2: a second Caisson process (same or another state directory) running a
/// command at any step of a running update changes nothing, and says what is in progress.
@Suite struct SecondProcessTests {
    static let configs: [UpdateScenario.Config] = [
        UpdateScenario.Config(mode: .docker, healthKind: .containerHealth, newBehaviour: "healthy"),
        UpdateScenario.Config(mode: .docker, healthKind: .containerHealth, newBehaviour: "unhealthy"),
        UpdateScenario.Config(mode: .compose, healthKind: .containerHealth, newBehaviour: "healthy"),
        UpdateScenario.Config(mode: .compose, healthKind: .running, newBehaviour: "crash"),
    ]

    /// The host as an observer sees it: every container's name, image and status.
    static func hostView(_ s: UpdateScenario) -> [String] {
        s.host.allContainers.map { "\($0.name) \($0.imageID) \($0.status.rawValue)" }
    }

    @Test("a second process at every journal write of an update changes nothing", arguments: configs)
    func secondProcessAtEveryStep(_ config: UpdateScenario.Config) throws {
        let clean = UpdateScenario(config)
        let expected = try #require(clean.run())
        let writes = clean.journal.writeCount
        #expect(writes > 5)
        for index in 0..<writes {
            for command in SecondCommand.allCases {
                let s = UpdateScenario(config)
                let a = try #require(s.run(secondProcess: SecondProcessPlan(afterWrite: index, command: command)))
                let report = try #require(s.secondProcessReport, "write \(index) \(command)")
                #expect(s.violations() == [], "\(command) after write \(index)")
                // The running update ends exactly as it would have alone.
                #expect(a.status == expected.status, "\(command) after write \(index)")
                #expect(a.issues == expected.issues, "\(command) after write \(index)")
                #expect(Self.hostView(s) == Self.hostView(clean), "\(command) after write \(index)")
                #expect(report.hostChanges == 0 && report.journalWrites == 0, "\(command) after write \(index)")
                if [.serviceList, .historyList, .validate, .recover].contains(command), index < writes - 1 {
                    // Shown as in progress, by whom and at which step.
                    let shown = try #require(report.reportedInProgress, "\(command) after write \(index)")
                    #expect(shown.holder?.pid == UpdateScenario.firstPID)
                    #expect(shown.attempts.map(\.updateID) == [s.plan.updateID])
                    #expect(shown.attempts.first?.step != nil)
                    #expect(shown.lines.first?.contains("pid \(UpdateScenario.firstPID)") == true)
                }
            }
        }
    }

    /// The first process died mid-update; another state directory's Caisson comes along before
    /// anyone recovers: it must not update the service over the leftovers, and its `recover`
    /// must not say "nothing to recover" while the leftovers stand (Docker mode: the marks).
    @Test("another state directory refuses a service with unfinished marks", arguments: [configs[0], configs[1]])
    func otherStateDirectoryAfterACrash(_ config: UpdateScenario.Config) throws {
        let clean = UpdateScenario(config)
        clean.run()
        var refusedSomewhere = false
        for point in 0..<clean.journal.writeCount {
            for command in [SecondCommand.otherStateDirLoad, .otherStateDirRecover] {
                let s = UpdateScenario(config)
                s.run(crashAtWrite: point, secondProcess: SecondProcessPlan(afterWrite: 0, command: command, afterCrash: true))
                let report = try #require(s.secondProcessReport)
                #expect(s.violations() == [], "crash at \(point), \(command)")
                #expect(report.hostChanges == 0, "crash at \(point), \(command)")
                if report.refusal == "update.foreign_attempt" { refusedSomewhere = true }
            }
        }
        #expect(refusedSomewhere)
    }

    @Test func gateShowsTheRunningAttemptAndRecoversOnlyWhenItsOwnerIsGone() throws {
        let config = Self.configs[0]
        let s = UpdateScenario(config)
        // Die in the middle of the health check.
        s.run(crashAtWrite: 8)
        #expect(s.crashed)
        let recovered = try #require(s.recoveryReport)
        #expect(recovered.recovered.map { $0.updateID } == [s.plan.updateID])
        #expect(s.violations() == [])
    }
}
