import CaissonCore
import CaissonSimulator
import Testing

/// Bugs the exact oracles (issue 17) found in the engine, each pinned by the scenario that showed it.
@Suite("Engine: recovery keeps the audit trail whole")
struct RecoveryAuditTests {
    static func kinds(_ s: UpdateScenario) -> [AuditKind] {
        s.journal.events.filter { $0.updateID == s.plan.updateID }.map(\.kind)
    }

    /// The write index of the first journal entry whose step is `step` and phase `phase`, in a clean run.
    static func write(of step: String, _ phase: JournalPhase, _ config: UpdateScenario.Config) throws -> Int {
        let clean = UpdateScenario(config)
        clean.run()
        // Entry i is the (i+1)-th write minus the writes without entries (none: every write has one).
        return try #require(clean.journal.entries.firstIndex { $0.entry.step == step && $0.entry.phase == phase })
    }

    /// Died right after journaling the stop of the old container: the recovery restores, and its
    /// audit trail says the rollback started before it says it succeeded (it used to log only
    /// `rollback_succeeded`).
    @Test(arguments: RuntimeMode.allCases)
    func aRecoveredRestoreLogsRollbackStarted(_ mode: RuntimeMode) throws {
        let config = UpdateScenario.Config(mode: mode, healthKind: .containerHealth)
        let step = mode == .docker ? "stop_container" : "compose_apply"
        let s = UpdateScenario(config)
        s.run(crashAtWrite: try Self.write(of: step, .intent, config), crashBeforeWrite: false)
        #expect(s.attempt?.status == .rolledBack)
        #expect(Self.kinds(s) == [.updateStarted, .rollbackStarted, .rollbackSucceeded])
        #expect(s.violations() == [])
    }

    /// Died during the health check: the check that never reached a verdict is closed in the
    /// audit trail (and the record) as interrupted, then the rollback starts.
    @Test(arguments: RuntimeMode.allCases)
    func anInterruptedHealthCheckIsClosed(_ mode: RuntimeMode) throws {
        let config = UpdateScenario.Config(mode: mode, healthKind: .containerHealth)
        let s = UpdateScenario(config)
        // The write that carries health_check_started, then die right after it.
        let clean = UpdateScenario(config)
        clean.run()
        let point = try #require(clean.journal.entries.firstIndex { $0.entry.machine.attempt.status == .healthChecking })
        s.run(crashAtWrite: point, crashBeforeWrite: false)
        #expect(s.attempt?.status == .rolledBack)
        #expect(Self.kinds(s) == [.updateStarted, .healthCheckStarted, .healthCheckFailed, .rollbackStarted, .rollbackSucceeded])
        #expect(s.attempt?.healthCheck?.outcome == .failed)
        #expect(s.attempt?.healthCheck?.message.contains("interrupted") == true)
        #expect(s.violations() == [])
    }

    /// Died after the failed verdict was journaled, while the failure evidence was being read
    /// (the status still `health_checking`): the recovery closes nothing twice; the check keeps
    /// its own verdict (it used to log a second `health_check_failed`, "interrupted").
    @Test(arguments: RuntimeMode.allCases)
    func aVerdictJournaledBeforeTheEvidenceIsNotOwedAgain(_ mode: RuntimeMode) throws {
        let config = UpdateScenario.Config(mode: mode, healthKind: .running, newBehaviour: "oom")
        let clean = UpdateScenario(config)
        clean.run()
        let point = try #require(clean.journal.entries.firstIndex {
            $0.entry.machine.attempt.status == .healthChecking && $0.entry.machine.attempt.healthCheck != nil
        })
        let s = UpdateScenario(config)
        s.run(crashAtWrite: point, crashBeforeWrite: false)
        #expect(s.attempt?.status == .rolledBack)
        #expect(Self.kinds(s) == [.updateStarted, .healthCheckStarted, .healthCheckFailed, .rollbackStarted, .rollbackSucceeded])
        #expect(s.attempt?.healthCheck?.outcome == .failed)
        #expect(s.attempt?.healthCheck?.message.contains("interrupted") == false)
        #expect(s.violations() == [])
    }

    /// A probe that could not be run on the poll that would end the stability window (here: the
    /// daemon crashed during it and took the container down) is no pass: the check used to pass
    /// on the observation made before the probe, and committed a release that was not running.
    @Test func aProbeHostErrorIsNoPass() {
        let policy = HealthPolicy(kind: .exec, timeoutSecs: 30, pollIntervalSecs: 1, stableSecs: 5)
        var t = HealthTracker(policy: policy, startMillis: 0)
        let up = ContainerInfo(id: "c", name: "app", imageID: "i", imageReference: "r", status: .running, health: .none, startedAt: "s1")
        for ms in stride(from: Int64(0), through: 4000, by: 1000) {
            #expect(t.observe([up], expectedImageID: nil, now: ms) == .probe(["c"]))
            t.recordProbe("c", target: "exec", answer: .exited(code: 0, output: ""), now: ms)
            #expect(t.judgeProbes(now: ms) == .pending)
        }
        #expect(t.observe([up], expectedImageID: nil, now: 5000) == .probe(["c"]))
        t.recordProbeError("c", target: "exec", message: "Container c is not running")
        #expect(t.judgeProbes(now: 21_000) == .pending)
        let down = ContainerInfo(id: "c", name: "app", imageID: "i", imageReference: "r", status: .exited, health: .none, startedAt: "s1")
        if case .failed = t.observe([down], expectedImageID: nil, now: 22_000) {} else { Issue.record("an exited container must fail the check") }
    }

    /// A daemon that keeps restarting the container (every 4 s, inside the 5 s stability
    /// window) cannot keep the check pending forever: it times out by three times the timeout
    /// (it used to extend its deadline at every restart, and the update looped to its step limit).
    @Test(arguments: [HealthKind.running, .exec])
    func restartsForeverStillEndTheCheck(_ kind: HealthKind) {
        let policy = HealthPolicy(kind: kind, timeoutSecs: 30, pollIntervalSecs: 1, stableSecs: 5)
        var t = HealthTracker(policy: policy, startMillis: 0)
        var verdict = HealthTracker.Verdict.pending
        var ms: Int64 = 0
        while ms <= 200_000 {
            let c = ContainerInfo(id: "c", name: "app", imageID: "i", imageReference: "r", status: .running, health: .none,
                                  startedAt: "run-\(ms / 4000)")
            verdict = t.observe([c], expectedImageID: nil, now: ms)
            if case .probe = verdict {
                t.recordProbe("c", target: "exec", answer: .exited(code: 0, output: ""), now: ms)
                verdict = t.judgeProbes(now: ms)
            }
            if verdict != .pending { break }
            ms += 1000
        }
        guard case .timedOut = verdict else { Issue.record("still \(verdict) at \(ms) ms"); return }
        #expect(ms <= 91_000)
    }

    /// The first recovery dies after writing its own snapshot (status `rollback_started`), before
    /// logging the event: the next one still owes it, and logs it once.
    @Test func aRecoveryThatDiesStillOwesRollbackStarted() throws {
        let config = UpdateScenario.Config(mode: .docker, healthKind: .containerHealth)
        let stop = try Self.write(of: "stop_container", .intent, config)
        let s = UpdateScenario(config)
        s.run(faults: .none, crashes: [.init(write: stop, before: false), .init(write: stop + 1, before: false)])
        #expect(s.processes.count == 3)
        #expect(Self.kinds(s) == [.updateStarted, .rollbackStarted, .rollbackSucceeded])
        #expect(s.attempt?.issues.map(\.code) == ["update.interrupted"])
        #expect(s.violations() == [])
    }

    /// A recovery that decided "nothing was changed" and died before finishing is resumed as
    /// such: it used to restart as a restore that took the service's own container, whose id it
    /// never learned, for an intruder and ended `rollback_failed` (exit 5) on an untouched service.
    @Test func aRecoveryOfAnAbandonedAttemptStaysAbandoned() throws {
        let config = UpdateScenario.Config(mode: .docker, healthKind: .running)
        let s = UpdateScenario(config)
        // Die after the first write (before the old container is inspected), then the recovery
        // dies right after writing its snapshot, twice.
        s.run(faults: .none, crashes: [.init(write: 0, before: false), .init(write: 1, before: false), .init(write: 2, before: false)])
        #expect(s.processes.count == 4)
        #expect(s.attempt?.status == .failed)
        #expect(s.attempt?.issues.map(\.code) == ["update.interrupted"])
        #expect(s.host.containers(named: "app").first?.id == s.oldContainerID)
        #expect(s.violations() == [])
    }

    /// Compose: `compose up` of the pinned image starts the service even if it was stopped
    /// before the update, so the restore health-checks what it started instead of claiming it
    /// "left it stopped".
    @Test func aComposeRestoreOfAStoppedServiceChecksWhatItStarted() throws {
        let config = UpdateScenario.Config(mode: .compose, healthKind: .running, newBehaviour: "crash", restartPolicy: "no")
        let s = UpdateScenario(config)
        // The daemon crashes before the first call: the service is down when Caisson looks.
        s.run(faults: FaultPlan(rules: [.atCall(s.host.callCount, .daemonCrash)]))
        let a = try #require(s.attempt)
        #expect(a.status == .rolledBack)
        #expect(a.rollbackHealthCheck?.message.contains("left stopped") == false)
        let members = s.host.containers(withLabel: "com.docker.compose.service", value: "app")
        #expect(members.count == 1 && members[0].isRunning && members[0].imageID == s.oldImageID)
        #expect(s.violations() == [])
    }

    /// The commit could not inspect the backup (the daemon did not answer) and someone had
    /// removed it meanwhile: the stop then finds no container. Nothing is left to clean up, so
    /// the update succeeds without `docker.cleanup_failed` (it used to say the backup "could not
    /// be stopped: No such container").
    @Test func aBackupAlreadyGoneIsNoCleanupFailure() throws {
        let s = UpdateScenario(.init(mode: .docker, healthKind: .running, newBehaviour: "healthy", outsider: .removesBackup))
        // The commit's look at the backup: the last inspection of a clean run.
        let clean = UpdateScenario(.init(mode: .docker, healthKind: .running, newBehaviour: "healthy", outsider: .removesBackup))
        #expect(clean.run()?.status == .succeeded)
        let inspectBackup = try #require(clean.host.calls.last { $0.operation == .inspectContainer }).index
        let a = try #require(s.run(faults: FaultPlan(rules: [.atCall(inspectBackup, .unreachable)])))
        #expect(a.status == .succeeded)
        #expect(!a.issues.contains { $0.code == "docker.cleanup_failed" }, "\(a.issues)")
        #expect(s.violations() == [])
    }
}
