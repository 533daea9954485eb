import CaissonCore
import CaissonSimulator
import Testing

/// Issue 10 item 2 for Compose, in the simulator's model: a compose service whose containers
/// carry another Caisson's unfinished marks (`-caisson-new-`/`-caisson-rollback-` names, an
/// `io.caisson.update-id` label) that no attempt of this state directory owns is refused before
/// any change (`update.foreign_attempt`), and the marks stay where they are.
@Suite struct ForeignMarksComposeTests {
    static let configs: [UpdateScenario.Config] = ForeignMark.allCases.flatMap { mark in
        [UpdateScenario.Config(mode: .compose, healthKind: .containerHealth, newBehaviour: "healthy"),
         UpdateScenario.Config(mode: .compose, healthKind: .running, newBehaviour: "crash")].map { c in
            var c = c
            c.foreignMark = mark
            return c
        }
    }

    @Test("another Caisson's unfinished marks on a compose service: refused, nothing changed", arguments: configs)
    func refusedBeforeAnyChange(_ config: UpdateScenario.Config) throws {
        let s = UpdateScenario(config)
        #expect(s.run() == nil)
        #expect(s.violations() == [])
        let mark = UpdateScenario.foreignMarkName(try #require(config.foreignMark))
        #expect(s.refusal?.code == "update.foreign_attempt")
        #expect(s.refusal?.message.contains(mark) == true)
        #expect(s.refusal?.message.contains("caisson recover") == true)
        #expect(s.host.simContainer(mark) != nil)
        #expect(s.host.mutatingCallCount == s.mutatingCallsAtStart)
        #expect(s.journal.attempts.isEmpty)
    }

    /// Without the mark, the same update goes ahead (the check is not a blanket refusal), and a
    /// member carrying only the label of an attempt this state directory ran is not foreign; the
    /// same label of an update it does not know is.
    @Test func onlyAnotherCaissonsMarksCount() throws {
        let plain = UpdateScenario.Config(mode: .compose, healthKind: .containerHealth, newBehaviour: "healthy")
        let s = UpdateScenario(plain)
        let a = try #require(s.run())
        #expect(a.status == .succeeded)
        #expect(try ForeignMarks.find(service: s.service, host: s.host, journal: s.journal).isEmpty)
        let labels = [SimulatedHost.composeProjectLabel: "stack", SimulatedHost.composeServiceLabel: "app"]
        _ = try s.host.runContainer(name: "stack-app-own", imageReference: "example/app:current",
                                    labels: labels.merging([UpdateMachine.updateLabel: a.updateID]) { $1 }, start: false)
        #expect(try ForeignMarks.find(service: s.service, host: s.host, journal: s.journal).isEmpty)
        _ = try s.host.runContainer(name: "stack-app-other", imageReference: "example/app:current",
                                    labels: labels.merging([UpdateMachine.updateLabel: UpdateScenario.foreignUpdateID]) { $1 }, start: false)
        let found = try ForeignMarks.find(service: s.service, host: s.host, journal: s.journal)
        #expect(found.map(\.name) == ["stack-app-other"])
        // `recover` in this state directory names it (it cannot recover it).
        let survey = try ForeignMarks.survey(services: [s.service], serviceLocks: s.hostLocks, stateDirectory: "/var/lib/caisson",
                                             host: s.host, journal: s.journal)
        #expect(survey.leftovers.map(\.code) == ["update.foreign_attempt"])
    }

    /// The swarm draws the marks, and finds no violation.
    @Test func swarmDrawsForeignMarks() {
        let summary = Swarm.run(runs: 1_500, seed: 21)
        #expect(summary.violations == 0, "first violation: \(String(describing: summary.firstViolation))")
        #expect(summary.foreignMarks > 10)
    }
}
