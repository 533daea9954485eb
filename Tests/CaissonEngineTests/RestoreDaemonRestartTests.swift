import CaissonCore
import CaissonSimulator
import Testing

/// Issue 10 item 6: a daemon restart during the restore's health check. Docker stops the
/// restored container on the way down and, under `--restart no` (or after a dockerd crash with
/// `unless-stopped`), does not bring it back; the restore used to end `rollback_failed` with the
/// service down. It must start the known-good container again, within the restore's budget.
@Suite("Daemon restarts during the restore")
struct RestoreDaemonRestartTests {
    static let configs: [UpdateScenario.Config] = {
        var out: [UpdateScenario.Config] = []
        for mode in RuntimeMode.allCases {
            for policy in ["no", "unless-stopped", "always"] {
                for b in ["unhealthy", "crash"] {
                    out.append(UpdateScenario.Config(mode: mode, healthKind: .containerHealth, newBehaviour: b, restartPolicy: policy))
                }
            }
        }
        return out
    }()

    /// The calls of a clean run from the restore's first change on (its health polls included):
    /// Docker mode, stopping or removing the failed new container; Compose, the second apply.
    static func restoreCalls(_ config: UpdateScenario.Config) -> Range<Int> {
        let clean = UpdateScenario(config)
        clean.run()
        let calls = clean.host.calls
        let first: Int?
        switch config.mode {
        case .docker:
            first = calls.first { ($0.operation == .stopContainer && $0.operationIndex == 1) || $0.operation == .removeContainer }?.index
        case .compose:
            first = calls.first { $0.operation == .composeApply && $0.operationIndex == 1 }?.index
        }
        return (first ?? calls.count)..<calls.count
    }

    @Test("a daemon restart or crash at every call of the restore is survived", arguments: configs)
    func daemonRestartDuringRestore(_ config: UpdateScenario.Config) throws {
        let calls = Self.restoreCalls(config)
        #expect(calls.count > 5)
        for index in calls {
            for kind in [FaultKind.daemonRestart, .daemonCrash] {
                let s = UpdateScenario(config)
                let a = s.run(faults: FaultPlan(rules: [.atCall(index, kind)]))
                #expect(s.violations() == [], "\(kind) at call \(index)")
                #expect(a?.status == .rolledBack, "\(kind) at call \(index): \(a?.issues ?? [])")
            }
        }
    }

    /// A previous release that really does not stay up is still reported, after a bounded number
    /// of restarts (never a loop).
    @Test func aRestoredReleaseThatKeepsExitingStillFails() throws {
        let host = SimulatedHost(seed: 5)
        let clock = host.clock
        let old = SimulatedHost.fakeImageID("old-dies")
        let new = SimulatedHost.fakeImageID("new-bad")
        try host.addImage(id: old, tags: ["svc:old"], config: ImageConfig(labels: ["io.caisson.sim.health": "crash:20"], hasHealthcheck: true))
        try host.addImage(id: new, tags: ["svc:new"], config: ImageConfig(labels: ["io.caisson.sim.health": "unhealthy"], hasHealthcheck: true))
        try host.runContainer(name: "svc", imageReference: "svc:old", restartPolicy: .no)
        clock.sleep(millis: 5_000)
        // The old release now dies 2 s after every start.
        let plan = UpdateMachine.Plan(updateID: "1e5707e0-0000-4000-8000-000000000001", candidateReleaseID: "cr", validationAttemptID: nil,
                                      service: ServiceSpec(name: "svc", serviceRevision: "r", platform: "linux/amd64", runtimeMode: .docker,
                                                           docker: DockerTarget(containerName: "svc", imageReference: "svc:old"),
                                                           health: HealthPolicy(kind: .containerHealth, timeoutSecs: 30, pollIntervalSecs: 1, stableSecs: 30)),
                                      targetImageReference: "svc:new", targetImageID: new)
        var machine = UpdateMachine(plan: plan, startedAt: clock.timestamp())
        let a = try UpdateDriver(host: host, journal: InMemoryJournal(), clock: clock).run(&machine)
        #expect(a.status == .rollbackFailed)
        #expect(a.issues.last?.code == "rollback.health_check_failed")
        // Started by the restore once, then again at most `maxRestoreRestarts` times.
        let starts = host.calls.filter { $0.operation == .startContainer }.count
        #expect(starts == 2 + UpdateMachine.maxRestoreRestarts, "\(starts) starts")
    }
}
