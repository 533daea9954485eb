import CaissonCore
import CaissonSimulator
import Testing

/// Issue 10 item 12 ("say the truth"), on the simulator: what the records say after an update
/// must be what runs.
@Suite struct SayTheTruthTests {
    static func run(_ s: UpdateScenario, _ plan: UpdateMachine.Plan) throws -> (UpdateAttempt, UpdateMachine) {
        var machine = UpdateMachine(plan: plan, startedAt: s.host.clock.timestamp())
        let a = try UpdateDriver(host: s.host, journal: s.journal, clock: s.host.clock).run(&machine)
        return (a, machine)
    }

    static let previous = ServiceState(serviceName: "app", activeCandidateReleaseID: "cr-1",
                                       activeImageReference: "example/app:current",
                                       activeImageID: SimulatedHost.fakeImageID("example/app:1.0.0"),
                                       previousKnownGoodCandidateReleaseID: "cr-0",
                                       previousKnownGoodImageReference: "example/app:0.9.0",
                                       previousKnownGoodImageID: SimulatedHost.fakeImageID("example/app:0.9.0"),
                                       highestPackageVersion: "1.0.0", newestCreatedAt: "2026-01-01T00:00:00Z",
                                       updatedAt: "2026-01-01T00:00:00Z")

    /// `automatic = false` and a failed health check: the new release stays, so the state must
    /// say it is the active one and the release it replaced the previous known-good (not the one
    /// before: `caisson rollback` would go two releases back).
    @Test("rollback off: the state records what runs", arguments: RuntimeMode.allCases)
    func rollbackOffRecordsTheNewReleaseAsActive(_ mode: RuntimeMode) throws {
        let s = UpdateScenario(UpdateScenario.Config(mode: mode, healthKind: .containerHealth, newBehaviour: "unhealthy"))
        var plan = s.plan
        plan.service.automaticRollback = false
        plan.previousState = Self.previous
        let (a, machine) = try Self.run(s, plan)
        #expect(a.status == .failed)
        let state = try #require(s.journal.states.last, "no service state was written")
        #expect(state.activeImageID == s.newImageID)
        #expect(state.activeImageReference == UpdateScenario.newReference)
        #expect(state.activeCandidateReleaseID == "cr-2")
        #expect(state.previousKnownGoodImageID == s.oldImageID)
        #expect(state.previousKnownGoodCandidateReleaseID == "cr-1")
        #expect(state.highestPackageVersion == "2.0.0")
        if mode == .docker {
            // What runs under the service name is indeed the new release; the backup is kept.
            #expect(s.host.containers(named: "app").first?.imageID == s.newImageID)
            #expect(s.host.containers(named: machine.backupName).count == 1)
        }
    }

    /// After `caisson rollback`, the version in place is the restored release's, so the package
    /// rolled back from is not "already installed".
    @Test func rollbackRecordsTheRestoredReleasesVersion() throws {
        let s = UpdateScenario(UpdateScenario.Config(mode: .docker, healthKind: .containerHealth))
        let update = try Self.run(s, { var p = s.plan; p.previousState = Self.previous; return p }()).0
        #expect(update.status == .succeeded)
        let afterUpdate = try #require(s.journal.states.last)
        #expect(afterUpdate.highestPackageVersion == "2.0.0")
        let back = UpdateMachine.Plan(updateID: "0badc0de-0000-4000-8000-000000000002", candidateReleaseID: "cr-1",
                                      validationAttemptID: nil, service: s.service,
                                      targetImageReference: "example/app:current", targetImageID: s.oldImageID,
                                      packageVersion: "1.0.0", kind: "rollback", previousState: afterUpdate)
        let (a, _) = try Self.run(s, back)
        #expect(a.status == .succeeded)
        let state = try #require(s.journal.states.last)
        #expect(state.activeImageID == s.oldImageID)
        #expect(state.highestPackageVersion == "1.0.0")
        #expect(state.previousKnownGoodImageID == s.newImageID)
    }

    /// A stopped service stays stopped: the new release is installed, not started, and the
    /// attempt says so. With `--start` (plan.startStopped) it is started and health-checked.
    @Test("a stopped service stays stopped unless --start", arguments: [false, true])
    func stoppedServiceStaysStopped(_ start: Bool) throws {
        let s = UpdateScenario(UpdateScenario.Config(mode: .docker, healthKind: .containerHealth))
        try s.host.stopContainer("app", graceSecs: 10)
        #expect(s.host.containers(named: "app").first?.isRunning == false)
        var plan = s.plan
        plan.startStopped = start
        let (a, machine) = try Self.run(s, plan)
        #expect(a.status == .succeeded, "\(a.issues)")
        let c = try #require(s.host.containers(named: "app").first)
        #expect(c.imageID == s.newImageID)
        #expect(c.isRunning == start)
        #expect(a.issues.contains { $0.code == "update.left_stopped" } == !start)
        #expect((a.healthCheck?.outcome == .passed) == start)
        #expect(s.host.containers(named: machine.backupName).isEmpty)
        #expect(s.journal.states.last?.activeImageID == s.newImageID)
    }

    /// A crash right after the new container is renamed into place (not started) is recovered
    /// to the same end: installed, stopped, committed.
    @Test func stoppedServiceCrashIsRecovered() throws {
        let clean = UpdateScenario(UpdateScenario.Config(mode: .docker, healthKind: .containerHealth))
        try clean.host.stopContainer("app", graceSecs: 10)
        _ = try Self.run(clean, clean.plan)
        for point in 0..<clean.journal.writeCount {
            let s = UpdateScenario(UpdateScenario.Config(mode: .docker, healthKind: .containerHealth))
            try s.host.stopContainer("app", graceSecs: 10)
            s.run(crashAtWrite: point)
            let a = try #require(s.attempt)
            #expect(a.status.isTerminal)
            let named = s.host.containers(named: "app")
            #expect(named.count == 1, "crash at write \(point)")
            #expect(named.first?.isRunning == false, "crash at write \(point): the stopped service was started")
        }
    }
}
