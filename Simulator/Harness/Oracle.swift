import CaissonCore

/// What a correct updater must end with in one scenario run, derived from the scenario itself:
/// the image's behaviour, the restart policy, the faults that fired (and where), the crash points,
/// the outsiders. One or more allowed outcomes; more than one only where the outcome is
/// legitimately open, each saying why.
public struct Expectation: Sendable, CustomStringConvertible {
    /// Where the service must be afterwards.
    public enum Release: Sendable, Equatable {
        /// The new release is in place (running, unless `mayBeDown`: a daemon restart after the
        /// verdict left it down under a policy that does not bring it back).
        case new(mayBeDown: Bool)
        /// The previous release is back in place (Docker: the very same container), running
        /// when it was running before the update.
        case old(running: Bool)
        /// The update never changed the live service: the same container, never restarted by us.
        case untouched
        /// The rollback could not finish: a human must look (only outsiders' things are checked).
        case needsHuman
        /// The service was found stopped: the new release is in place, created, never started
        /// (`update.left_stopped`; `--start` starts it).
        case newLeftStopped
    }

    /// The forward health check's verdict, when the run must reach one.
    public struct HealthWindow: Sendable, Equatable {
        public var outcomes: [HealthOutcome]
        /// Milliseconds from `health_check_started` to the verdict event.
        public var minMillis: Int64
        public var maxMillis: Int64
    }

    public struct Outcome: Sendable {
        /// nil: no attempt may be recorded (the updater died before its first durable write).
        public var status: UpdateStatus?
        /// Each group: at least one of its codes must be among the attempt's issues.
        public var codes: [[String]]
        public var release: Release
        /// The exact audit sequence of the attempt, when the run determines it.
        public var events: [AuditKind]?
        public var health: HealthWindow?
        public var why: String
    }

    public var outcomes: [Outcome]
    public var notes: [String] = []

    public var isOpen: Bool { outcomes.count > 1 }
    public var statuses: [UpdateStatus?] { outcomes.map(\.status) }

    public var description: String {
        outcomes.map { "\($0.status?.rawValue ?? "no record") (\($0.why))" }.joined(separator: " or ")
    }

    /// The exit code a command ending in `status` must return (FORMATS: 0, 4, 5), written out
    /// here independently of `UpdateStatus.exitCode`, which the CLI uses.
    public static func exitCode(_ status: UpdateStatus) -> Int32 {
        switch status {
        case .succeeded: return 0
        case .failed, .rolledBack: return 4
        case .rollbackFailed: return 5
        case .applying, .healthChecking, .rollbackStarted: return 4
        }
    }
}

extension FaultKind {
    /// The call returns an error (whether or not it took effect).
    var isError: Bool {
        switch self {
        case .fail, .failAfterApplying, .timeout, .diskFull, .unreachable: return true
        case .slow, .daemonRestart, .daemonCrash: return false
        }
    }

    /// The call took effect although it returned an error.
    var applied: Bool {
        switch self {
        case .fail, .timeout, .diskFull, .unreachable: return false
        case .failAfterApplying, .slow, .daemonRestart, .daemonCrash: return true
        }
    }

    /// Virtual time the fault adds before the call returns (an upper bound).
    var delayMillis: Int64 {
        switch self {
        case .slow(let ms), .timeout(let ms): return ms
        // The daemon's restart, after stopping containers with their stop timeout (at most 30 s here).
        case .daemonRestart, .daemonCrash: return 1_000 + 30_000
        case .fail, .failAfterApplying, .diskFull, .unreachable: return 0
        }
    }

    var isDaemon: Bool { self == .daemonRestart || self == .daemonCrash }
}

extension SimRestartPolicy {
    /// Does a container that was running (started by a user, exit code 0 on SIGTERM) come back
    /// after the daemon restarts (`graceful`) or crashes (`crash`: marked manually stopped)?
    func comesBack(after fault: FaultKind) -> Bool {
        switch self {
        case .always: return true
        case .unlessStopped: return fault == .daemonRestart
        case .no, .onFailure: return false
        }
    }
}

extension UpdateScenario {
    /// Docker mode: the forward steps that create the new container and rename it to the service name.
    static let createStep = 4

    /// The forward path of the machine, one host call per step, from `firstCall` on (the
    /// service found stopped: it ends with the rename-in and the dependents' recreation).
    func forwardSteps(leftStopped: Bool = false, dependentDown: Bool = false) -> [(op: SimOperation, code: String, touchesLive: Bool)] {
        switch config.mode {
        case .docker:
            var steps: [(op: SimOperation, code: String, touchesLive: Bool)] = [
                (.inspectContainer, "docker.service_inspect_failed", false),
                // Who shares the service's network namespace.
                (.listContainers, "docker.service_inspect_failed", false),
                (.inspectImage, "docker.inspect_failed", false),
                (.tagImage, "image.pin_failed", false), (.createContainer, "docker.create_failed", false),
                // The create by the package's reference checks which image the container got.
                (.inspectContainer, "docker.create_failed", false)]
            // A running dependent is stopped before the previous container (found stopped: it is down too).
            if config.dependent && !leftStopped && !dependentDown { steps.append((.stopContainer, "docker.stop_failed", true)) }
            steps += [(.stopContainer, "docker.stop_failed", true), (.renameContainer, "docker.rename_failed", true),
                      (.renameContainer, "docker.rename_failed", true)]
            if !leftStopped { steps.append((.startContainer, "docker.start_failed", true)) }
            if config.dependent {
                // Moved to the new container: renamed away, recreated joined to it, started if it ran.
                steps += [(.renameContainer, "docker.rename_failed", true), (.createContainer, "docker.create_failed", true)]
                if !leftStopped && !dependentDown { steps.append((.startContainer, "docker.start_failed", true)) }
            }
            return steps
        case .compose:
            var steps: [(op: SimOperation, code: String, touchesLive: Bool)] = [
                (.composeContainers, "compose.image_lookup_failed", false), (.inspectImage, "docker.inspect_failed", false),
                (.tagImage, "image.pin_failed", false),
                // The compose file's reference moves to the new image (a later `up` deploys it).
                (.tagImage, "compose.apply_failed", true),
                (.composeApply, "compose.apply_failed", true)]
            if config.dependent { steps.append((.composeApply, "compose.apply_failed", true)) }
            return steps
        }
    }

    /// This update's audit events with the virtual time each became durable.
    var auditTrail: [(kind: AuditKind, millis: Int64)] {
        var out: [(AuditKind, Int64)] = []
        for (i, e) in journal.events.enumerated() where e.updateID == plan.updateID {
            out.append((e.kind, durable.millis(ofEvent: i) ?? -1))
        }
        return out
    }

    func record(_ action: (SimIntervention.Action) -> Bool) -> SimInterventionRecord? {
        host.interventionLog.first { $0.applied && action($0.action) }
    }

    /// The expected outcome of this run (after `run`).
    public func expectation() -> Expectation {
        let trail = auditTrail
        // The first process's own call numbering: calls a second Caisson process made in the
        // middle of the update are taken out (their errors hit that process only; a daemon
        // restart or a slow call there still hits the host, between two of the update's calls).
        let foreign = secondProcessReport?.firstAlive == true ? secondProcessCalls : nil
        func own(_ i: Int) -> Int {
            guard let r = foreign, i >= r.lowerBound else { return i }
            return i >= r.upperBound ? i - r.count : r.lowerBound
        }
        let faults: [SimCall] = host.faultLog.compactMap { f in
            if let r = foreign, r.contains(f.index), f.fault?.isError ?? false { return nil }
            var g = f
            g.index = own(f.index)
            return g
        }
        let policy = config.policy
        var first = processes.first ?? ProcessRecord(firstCall: firstCall, endCall: host.callCount, startMillis: 0, crashed: false,
                                                     error: nil, attemptRecorded: true, attemptTerminal: true)
        first.endCall = own(first.endCall)
        var notes: [String] = []

        // The previous release was found running unless a daemon restart before the very first
        // call took it down under a policy that does not bring it back.
        var oldRunning = true
        // (Any of them: a later graceful restart does not bring back what a crash left down.)
        if let f = faults.first(where: { f in
            f.index >= preflightCall && f.index <= firstCall && (f.fault.map { $0.isDaemon && !policy.comesBack(after: $0) } ?? false)
        }), let k = f.fault {
            oldRunning = false
            notes.append("a daemon \(k) before the first call left the previous release down (restart=\(policy))")
        }
        let oldRelease = Expectation.Release.old(running: config.mode == .compose || oldRunning)
        // A Docker service found stopped gets the new release installed and left stopped: the
        // forward path ends with the rename-in (no start, no health check), then the commit.
        let leftStopped = config.mode == .docker && !oldRunning && plan.startStopped != true
        // A dependent the daemon took down before the update listed it is neither stopped nor started.
        let dependentDown = config.mode == .docker && faults.contains { f in
            f.index >= preflightCall && f.index <= firstCall + 1 && (f.fault.map { $0.isDaemon && !policy.comesBack(after: $0) } ?? false)
        }
        let steps = forwardSteps(leftStopped: leftStopped, dependentDown: dependentDown)
        // Docker: the step that renames the new container to the service name (the second rename).
        let renameInStep = steps.indices.filter { steps[$0].op == .renameContainer }.dropFirst().first ?? 8
        let renameInCall = firstCall + renameInStep
        let backupGone = config.outsider == .removesBackup && record({ if case .forceRemove = $0 { return true }; return false }) != nil
        let nameTaken = config.outsider == .takesServiceName && record({ if case .occupyName = $0 { return true }; return false }) != nil

        // Restore: rolled back, unless it met an error at every round, or an outsider took what
        // it needs (then rollback_failed is the correct end).
        let rolledBackAt = trail.first { $0.kind == .rollbackStarted }?.millis
        func restoreOutcomes(_ base: Expectation.Outcome, decidedAt: Int64) -> [Expectation.Outcome] {
            if nameTaken {
                return [Expectation.Outcome(status: .rollbackFailed, codes: base.codes + [["rollback.rename_failed"]], release: .needsHuman,
                                            events: base.events.map { Array($0.dropLast()) + [.rollbackFailed] },
                                            health: base.health,
                                            why: "another container took the service's name: the restore must not touch it")]
            }
            if backupGone {
                return [Expectation.Outcome(status: .rollbackFailed, codes: base.codes + [["rollback.rename_failed", "rollback.start_failed"]],
                                            release: .needsHuman, events: base.events.map { Array($0.dropLast()) + [.rollbackFailed] },
                                            health: base.health, why: "the previous container was removed by someone else: nothing to restore")]
            }
            var out = [base]
            let from = rolledBackAt ?? decidedAt
            let restoreErrors = faults.filter { $0.atMillis >= from && ($0.fault?.isError ?? false) }.count
            // A daemon fault in the restore may cost a round as well: the restored release it
            // stopped is started again in a new round, and a network dependent started in the
            // meantime fails ("cannot join network of a non running container"), one more.
            let restoreDaemons = faults.filter { $0.atMillis >= from && ($0.fault?.isDaemon ?? false) }.count
            let roundsAtRisk = restoreErrors + restoreDaemons * (config.dependent ? 2 : 1)
            if roundsAtRisk >= UpdateMachine.maxRestoreRounds {
                out.append(Expectation.Outcome(status: .rollbackFailed, codes: base.codes + [["rollback."]], release: .needsHuman, events: nil,
                                               health: base.health,
                                               why: "the restore met \(restoreErrors) host errors and \(restoreDaemons) daemon faults: enough to spend its \(UpdateMachine.maxRestoreRounds) rounds"))
            } else if faults.filter({ $0.atMillis >= from && ($0.fault?.isDaemon ?? false) }).count > UpdateMachine.maxRestoreRestarts
                        || faults.filter({ $0.atMillis >= from }).reduce(Int64(0), { $0 + ($1.fault?.delayMillis ?? 0) })
                            >= Int64(plan.service.health.timeoutSecs) * 1000 {
                // (Or slow calls ate the restored release's own health check: it ends unhealthy.)
                // The restore starts the known-good release again after a daemon restart stopped it
                // (or kept it from settling), a bounded number of times.
                out.append(Expectation.Outcome(status: .rollbackFailed, codes: base.codes + [config.dependent ? ["rollback.health_check_failed", "rollback.start_failed"] : ["rollback.health_check_failed"]],
                                               release: .needsHuman, events: nil, health: base.health,
                                               why: "the daemon went down more often (\(faults.filter { $0.atMillis >= from && ($0.fault?.isDaemon ?? false) }.count)) than the restore may start the previous release again (\(UpdateMachine.maxRestoreRestarts))"))
            }
            return out
        }

        // The dependents' recreation (Compose: their stop may take their flush time) can find
        // the new release dead or stopped by the daemon: they cannot join its network, and the
        // update is restored then. (Not modelled exactly: which step meets it.)
        var dependentsMeetDeadRelease: [Expectation.Outcome] = []
        if config.dependent, HealthReference.deathMillis(config.behaviour) != nil || faults.contains(where: { $0.fault?.isDaemon ?? false }) {
            let codes = config.mode == .compose ? ["compose.apply_failed"] : ["docker.start_failed", "docker.create_failed", "docker.rename_failed"]
            let base = Expectation.Outcome(status: .rolledBack, codes: [codes], release: oldRelease,
                                           events: nil, health: nil,
                                           why: "the new release died (or the daemon stopped it) before its network dependents were recreated against it")
            dependentsMeetDeadRelease = restoreOutcomes(base, decidedAt: first.startMillis)
        }

        // --- Refused before the attempt began: no record, nothing changed.
        if let (code, why) = expectedRefusal(faults) {
            return Expectation(outcomes: [.init(status: nil, codes: [[code]], release: .untouched, events: nil, health: nil, why: why)],
                               notes: notes)
        }

        // --- The updater died before its attempt ended (or the journal stopped taking its
        // writes, which is the same for the journal): the next command decides from the journal.
        let storageStruck = disruption.failedWrites > 0
        if first.crashed || first.error != nil || storageStruck, !first.attemptTerminal {
            let interrupted = [["update.interrupted"]]
            if !first.attemptRecorded {
                return Expectation(outcomes: [.init(status: nil, codes: [], release: .untouched, events: nil, health: nil,
                                                    why: "died before its first durable write: no record, nothing changed")], notes: notes)
            }
            if leftStopped && durable.leftStoppedDurable {
                return Expectation(outcomes: [.init(status: .succeeded, codes: [["update.left_stopped"]], release: .newLeftStopped,
                                                    events: nil, health: nil,
                                                    why: "died after the left-stopped commit was journaled: recovery finishes the commit")], notes: notes)
            }
            if trail.contains(where: { $0.kind == .healthCheckPassed }) {
                return Expectation(outcomes: [.init(status: .succeeded, codes: [], release: .new(mayBeDown: daemonAfterVerdictMayStop()),
                                                    events: nil, health: nil,
                                                    why: "died after the health check passed (durable): recovery finishes the commit")], notes: notes)
            }
            if durable.liveIntentDurable {
                let base = Expectation.Outcome(status: .rolledBack, codes: interrupted, release: oldRelease, events: nil, health: nil,
                                               why: "died after a change to the live service was journaled: recovery restores the previous release")
                return Expectation(outcomes: restoreOutcomes(base, decidedAt: first.startMillis), notes: notes)
            }
            var outcomes: [Expectation.Outcome] = [.init(status: .failed, codes: interrupted, release: .untouched, events: nil, health: nil,
                                                         why: "died before any change to the live service was journaled: nothing to restore")]
            if config.dependent {
                // A stop of a dependent may have been decided (the machine counts it as touching
                // the service) without its call: the recovery may restore an untouched service.
                outcomes += restoreOutcomes(.init(status: .rolledBack, codes: interrupted, release: oldRelease, events: nil, health: nil,
                                                  why: "died when a dependent's stop was decided: recovery restores"),
                                            decidedAt: first.startMillis)
            }
            return Expectation(outcomes: outcomes, notes: notes)
        }

        var signalOutcomes: [Expectation.Outcome] = []
        // --- Ctrl-C / SIGTERM reached the machine before anything else decided the update.
        if let cancelCall = disruption.cancelCall.map(own), let cancelMillis = disruption.cancelMillis,
           !(leftStopped && cancelCall > renameInCall) {
            // (Left stopped: a signal after the rename-in meets the commit, which finishes.)
            let forwardErrorBefore = faults.contains { f in
                f.index >= firstCall && f.index < firstCall + steps.count && f.index < cancelCall && (f.fault?.isError ?? false)
            }
            // A verdict durable before the signal reached the machine decided the update; one
            // reached in the very step the signal was seen (pending, written with the cancel's
            // own events) decides it too when it passed; a failing one then races the cancel.
            let durableThen = trail.prefix(disruption.cancelDurableEvents)
            let passedThen = trail.contains { $0.kind == .healthCheckPassed && $0.millis <= cancelMillis }
            let verdictBefore = passedThen || durableThen.contains { $0.kind == .healthCheckPassed || $0.kind == .healthCheckFailed }
            var failRace = false
            if !verdictBefore, let started = trail.first(where: { $0.kind == .healthCheckStarted })?.millis, started <= cancelMillis {
                var scratch: [String] = []
                let w = healthWindow(faults: faults, firstPoll: firstCall + steps.count, end: first.endCall, startedAt: started,
                                     verdictAt: cancelMillis, notes: &scratch)
                failRace = w.outcomes.contains { $0 != .passed } && (w.minMillis...w.maxMillis).contains(cancelMillis - started)
            }
            // The outsider's container under the service name makes the rename-in (step 6) fail.
            let outsiderBefore = nameTaken && renameInCall < cancelCall
            if !forwardErrorBefore && !verdictBefore && !outsiderBefore {
                if disruption.cancelLiveChanges == 0 {
                    var outcomes: [Expectation.Outcome] = [.init(status: .failed, codes: [["update.cancelled"]], release: .untouched,
                                                                 events: [.updateStarted, .updateFailed], health: nil,
                                                                 why: "stopped by a signal before the first change to the live service: nothing changed")]
                    outcomes += dependentsMeetDeadRelease
                    if config.dependent {
                        // (Whether a dependent was stopped by then is not modelled: a restore is allowed.)
                        outcomes += restoreOutcomes(.init(status: .rolledBack, codes: [["update.cancelled"]], release: oldRelease, events: nil,
                                                          health: nil, why: "stopped by a signal after its dependents were stopped"),
                                                    decidedAt: cancelMillis)
                    }
                    return Expectation(outcomes: outcomes, notes: notes)
                }
                let checking = trail.contains { $0.kind == .healthCheckStarted && $0.millis <= cancelMillis }
                let base = Expectation.Outcome(status: .rolledBack, codes: [["update.cancelled"]], release: oldRelease,
                                               events: [.updateStarted] + (checking ? [.healthCheckStarted, .healthCheckFailed] : [])
                                                   + [.rollbackStarted, .rollbackSucceeded],
                                               health: checking ? Expectation.HealthWindow(outcomes: [.failed], minMillis: 0, maxMillis: .max) : nil,
                                               why: "stopped by a signal during the swap or the health check: the previous release is restored")
                if !failRace { return Expectation(outcomes: restoreOutcomes(base, decidedAt: cancelMillis) + dependentsMeetDeadRelease, notes: notes) }
                signalOutcomes = restoreOutcomes(base, decidedAt: cancelMillis)
                notes.append("the signal reached the machine in the step its health check failed: either ends the check")
            }
        }

        // --- The first process ran to its end: the forward path, then the health check.
        var branch: (step: Int, kind: FaultKind?)? = nil
        let forwardCount = steps.count
        for f in faults where f.index >= firstCall && f.index < firstCall + forwardCount && f.index < first.endCall {
            if let k = f.fault, k.isError { branch = (f.index - firstCall, k); break }
        }
        if config.outsider == .holdsStagingName, branch.map({ $0.step > Self.createStep }) ?? true { branch = (Self.createStep, nil) }
        if nameTaken, branch.map({ $0.step > renameInStep }) ?? true { branch = (renameInStep, nil) }
        // Another catalog service's container among the compose service's: refused at the first look.
        let hijacked = config.hijacker && (branch.map { $0.step > 0 } ?? true)
        if hijacked { branch = (0, nil) }
        // Dependents without the go-ahead: refused once they are found (Docker: the listing).
        let dependentsStep = config.mode == .docker ? 1 : 0
        let dependentsRefused = !hijacked && config.dependent && !config.dependentGoAhead && (branch.map { $0.step > dependentsStep } ?? true)
        if dependentsRefused { branch = (dependentsStep, nil) }
        if let (step, kind) = branch {
            let code = hijacked ? "compose.foreign_member" : dependentsRefused ? "update.network_dependents" : steps[step].code
            let cause = kind.map { "\($0) at \(steps[step].op.rawValue)" }
                ?? (hijacked ? "another catalog service's container carries the compose service's labels"
                             : "an outsider's container in the way of \(steps[step].op.rawValue)")
            // A step before any change to the live service fails the update; from the stop (or
            // compose apply) on, the previous release is restored.
            if !steps[step].touchesLive {
                let base = Expectation.Outcome(status: .failed, codes: [[code]], release: .untouched, events: [.updateStarted, .updateFailed],
                                               health: nil, why: "\(cause): fails before touching the service")
                return Expectation(outcomes: [base] + signalOutcomes, notes: notes)
            }
            let base = Expectation.Outcome(status: .rolledBack, codes: [[code]], release: oldRelease,
                                           events: [.updateStarted, .rollbackStarted, .rollbackSucceeded], health: nil,
                                           why: "\(cause): the previous release is restored")
            let decided = faults.first { $0.index == firstCall + step }?.atMillis ?? first.startMillis
            return Expectation(outcomes: restoreOutcomes(base, decidedAt: decided) + signalOutcomes, notes: notes)
        }

        if leftStopped {
            var codes = [["update.left_stopped"]]
            if faults.contains(where: { f in
                // (An error inspecting the backup only makes the commit stop it first.)
                (f.operation == .removeContainer || f.operation == .stopContainer) && f.index > renameInCall && (f.fault?.isError ?? false)
            }) {
                codes.append(["docker.cleanup_failed"])
            }
            notes.append("the service was found stopped: the new release is installed, not started")
            return Expectation(outcomes: [.init(status: .succeeded, codes: codes, release: .newLeftStopped,
                                                events: [.updateStarted, .updateCommitted], health: nil,
                                                why: "the service was stopped before the update: the new release is installed and left stopped")]
                                   + signalOutcomes, notes: notes)
        }

        // No forward branch: the health check decides.
        let started = trail.first { $0.kind == .healthCheckStarted }?.millis
        let verdictAt = trail.first { $0.kind == .healthCheckPassed || $0.kind == .healthCheckFailed }?.millis
        let window = healthWindow(faults: faults, firstPoll: firstCall + steps.count, end: first.endCall,
                                  startedAt: started, verdictAt: verdictAt, notes: &notes)
        var out: [Expectation.Outcome] = []
        let replica = config.outsider == .composeReplica
            && record({ if case .composeReplica = $0 { return true }; return false }).map { r in verdictAt.map { r.atMillis <= $0 } ?? true } == true
        if window.outcomes.contains(.passed) && !replica {
            let verdict = verdictAt ?? .max
            var codes: [[String]] = []
            // The commit stops (if need be) and removes the backup: an error there is a cleanup
            // left to `package cleanup`, never a failed update.
            if config.mode == .docker, faults.contains(where: { f in
                (f.operation == .removeContainer || f.operation == .stopContainer) && f.atMillis >= verdict && (f.fault?.isError ?? false)
            }) {
                codes.append(["docker.cleanup_failed"])
            }
            out.append(.init(status: .succeeded, codes: codes, release: .new(mayBeDown: daemonAfterVerdictMayStop()),
                             events: [.updateStarted, .healthCheckStarted, .healthCheckPassed, .updateCommitted],
                             health: Expectation.HealthWindow(outcomes: [.passed], minMillis: window.minMillis, maxMillis: window.maxMillis),
                             why: "the new release passes its health check"))
        }
        var failing = window.outcomes.filter { $0 != .passed }
        var failWindow = window
        if replica {
            notes.append("a stray replica on the previous image keeps the check from passing")
            failing = [.timedOut, .failed]
            failWindow = HealthWindowBounds(outcomes: failing, minMillis: 0, maxMillis: window.maxMillis + 31_000)
        }
        if !failing.isEmpty {
            let codes = [failing.map { $0 == .timedOut ? "health_check.timed_out" : "health_check.failed" }]
            let base = Expectation.Outcome(status: .rolledBack, codes: codes, release: oldRelease,
                                           events: [.updateStarted, .healthCheckStarted, .healthCheckFailed, .rollbackStarted, .rollbackSucceeded],
                                           health: Expectation.HealthWindow(outcomes: failing, minMillis: failWindow.minMillis, maxMillis: failWindow.maxMillis),
                                           why: "the new release fails its health check (\(failing.map(\.rawValue).joined(separator: "/")))")
            out += restoreOutcomes(base, decidedAt: verdictAt ?? first.startMillis)
        }
        if !dependentsMeetDeadRelease.isEmpty {
            out += dependentsMeetDeadRelease
            notes.append("a dying or daemon-stopped new release may be down before its dependents join it")
        }
        if out.count > 1, let why = window.why { notes.append(why) }
        return Expectation(outcomes: out + signalOutcomes, notes: notes)
    }

    /// Why the update must be refused before its first durable write, if it must.
    func expectedRefusal(_ faults: [SimCall]) -> (code: String, why: String)? {
        if config.mode == .docker, let f = faults.first(where: { $0.index == preflightCall }), let k = f.fault, k.isError {
            return ("docker.service_inspect_failed", "\(k) at the look for another state directory's marks: refused, nothing changed")
        }
        if config.mode == .compose, let f = faults.first(where: { $0.index == preflightCall }), let k = f.fault, k.isError {
            return ("compose.image_lookup_failed", "\(k) at the look for another Caisson's marks among the compose service's containers: refused, nothing changed")
        }
        if config.mode == .compose, config.foreignMark != nil {
            return ("update.foreign_attempt", "another Caisson's unfinished mark among the compose service's containers: refused, nothing changed")
        }
        if let thin = thinImport {
            // The thin package's import (issue 16) comes between the look for marks and the update.
            let end = processes.first?.endCall ?? host.callCount
            let importErrors = faults.filter { f in
                f.index >= preflightCall && f.index < end && (f.operation == .listImages || f.operation == .loadImage) && (f.fault?.isError ?? false)
            }
            let listFailed = importErrors.contains { $0.operation == .listImages }
            if listFailed { return ("docker.list_failed", "a fault at the thin package's look at the layer store: refused, nothing loaded") }
            if thin.baseFate == .removedBeforeLoad {
                return ("package.base_missing", "the thin package's base was removed before the load: refused, nothing loaded")
            }
            if thin.baseFate == .removedAfterPreflight || importErrors.contains(where: { $0.operation == .loadImage }) {
                return ("docker.load_failed", "the thin load failed (its base vanished, or a fault at the load): the update does not begin")
            }
        }
        if let enc = encryptedImport {
            // The encrypted package's validation and load (issue 15) come before the update.
            if let want = enc.expectedRefusal { return (want, "a \(enc) package: refused before the update, nothing loaded") }
            let end = processes.first?.endCall ?? host.callCount
            if faults.contains(where: { f in f.index >= preflightCall && f.index < end && f.operation == .loadImage && (f.fault?.isError ?? false) }) {
                return ("docker.load_failed", "a fault at the encrypted package's load: the update does not begin")
            }
        }
        if config.outsider == .holdsStagingName {
            return ("update.foreign_attempt", "a container not in this journal holds the staging name: another Caisson's mark, refused")
        }
        if let storage = disruption.storage {
            if storage.reserveFails { return (storage.error.code, "no room for the journal's reserve: refused before anything") }
            if storage.fromWrite + storage.reserveWrites == 0 {
                return (storage.error.code, "the journal took not even the attempt's first record: refused before anything")
            }
        }
        return nil
    }

    struct HealthWindowBounds {
        var outcomes: [HealthOutcome]
        var minMillis: Int64
        var maxMillis: Int64
        var why: String? = nil
    }

    /// What the host must look like for attempt `a` (nil: none was recorded), judged by its
    /// status alone (the recovery on a still-full disk, `Disruptions.swift`, asks this).
    func hostViolations(for a: UpdateAttempt?) -> [String] {
        guard let a else { return releaseViolations(.untouched, attempt: nil) }
        switch a.status {
        case .succeeded:
            return releaseViolations(a.issues.contains { $0.code == "update.left_stopped" } ? .newLeftStopped : .new(mayBeDown: true), attempt: a)
        case .rolledBack:
            let running = (config.mode == .docker ? host.containers(named: "app").first?.isRunning : nil) ?? true
            return releaseViolations(.old(running: running), attempt: a)
        default:
            return []
        }
    }

    /// Did a daemon restart after the health verdict stop the new release for good?
    func daemonAfterVerdictMayStop() -> Bool {
        guard let verdict = auditTrail.first(where: { $0.kind == .healthCheckPassed })?.millis else { return false }
        return host.faultLog.contains { $0.atMillis >= verdict && ($0.fault.map { $0.isDaemon && !config.policy.comesBack(after: $0) } ?? false) }
    }

    /// The allowed verdicts of the forward health check and when (ms after it started).
    func healthWindow(faults: [SimCall], firstPoll: Int, end: Int, startedAt: Int64?, verdictAt: Int64?,
                      notes: inout [String]) -> HealthWindowBounds {
        var w = healthWindowFromStart(faults: faults, firstPoll: firstPoll, end: end, startedAt: startedAt, verdictAt: verdictAt, notes: &notes)
        if config.dependent {
            // The dependents are recreated (Compose: their stop takes their flush time) between
            // the new release's start and the check's: it may be further on (or dead) by then.
            w.minMillis = 0
        }
        return w
    }

    func healthWindowFromStart(faults: [SimCall], firstPoll: Int, end: Int, startedAt: Int64?, verdictAt: Int64?,
                               notes: inout [String]) -> HealthWindowBounds {
        let hp = plan.service.health
        let b = config.behaviour
        let timeout = Int64(hp.timeoutSecs) * 1000
        let poll = Int64(max(1, hp.pollIntervalSecs)) * 1000
        let stable = Int64(max(0, min(hp.stableSecs, hp.timeoutSecs))) * 1000
        // Faults that hit the check before its verdict.
        let during = faults.filter { f in
            f.index >= firstPoll && f.index < end && (verdictAt.map { f.atMillis < $0 } ?? true)
        }
        let reference = HealthReference.verdictIfKnown(kind: config.healthKind, behaviour: b, policy: hp, probe: config.probe)
        // Probe kinds: every poll is an inspection, maybe an address lookup, and a probe that
        // takes time (a hanging one its whole probe timeout): the polls drift off the grid.
        let probeSlack: Int64 = config.healthKind.isProbe ? 2 * (Int64(hp.probeTimeoutSecs) * 1000 + poll) : 0
        func window(_ v: HealthReference.Verdict, slack: Int64) -> HealthWindowBounds {
            let outcome: HealthOutcome = v.outcome == .pass ? .passed : v.outcome == .fail ? .failed : .timedOut
            let low: Int64
            switch v.outcome {
            case .pass: low = stable
            case .fail: low = HealthReference.firstBadMillis(kind: config.healthKind, behaviour: b, horizon: .max) ?? 0
            case .timedOut: low = timeout
            }
            return HealthWindowBounds(outcomes: [outcome], minMillis: slack == 0 ? v.atMillis : min(low, v.atMillis),
                                      maxMillis: v.atMillis + slack)
        }
        // No fault, or only errors that cost no time: the grid holds, the verdict is exact.
        if during.allSatisfy({ $0.fault.map { $0.isError && $0.delayMillis == 0 } ?? true }) {
            if config.healthKind.isProbe {
                // (A failed call of a poll skips what is left of it: bounded, not on the grid.)
                if during.isEmpty, let v = reference { return window(v, slack: probeSlack) }
            } else {
                let skipped = during.map { $0.index - firstPoll }
                if let v = HealthReference.verdictIfKnown(kind: config.healthKind, behaviour: b, policy: hp, skipped: skipped) {
                    return window(v, slack: 0)
                }
            }
        }
        // Faults moved the polls off the grid: bounds, and open where sampling decides.
        let delay = during.reduce(Int64(0)) { $0 + ($1.fault?.delayMillis ?? 0) }
        let start = startedAt ?? 0
        let daemons = during.filter { $0.fault?.isDaemon ?? false }
        var bounds: HealthWindowBounds
        if let d = daemons.first(where: { !config.policy.comesBack(after: $0.fault!) }) {
            // The new container went down with the daemon and its policy keeps it down.
            bounds = HealthWindowBounds(outcomes: [.failed], minMillis: 0, maxMillis: max(0, d.atMillis - start) + delay + 2 * poll,
                                        why: "a daemon \(d.fault!) stopped the new container (restart=\(config.policy))")
            if reference?.outcome == .fail || reference?.outcome == .timedOut { bounds.minMillis = 0 }
            if config.healthKind.isProbe, let v = reference {
                // A poll observes first and probes after: a daemon stop during its probe comes
                // after the observation, and the probe then finds no address (no answer): at the
                // deadline that is a timeout.
                if !bounds.outcomes.contains(.timedOut) { bounds.outcomes.append(.timedOut) }
                bounds.maxMillis = max(bounds.maxMillis, v.atMillis + delay + probeSlack + 2 * poll + timeout)
            }
            return bounds
        }
        let restartExtension = daemons.last.map { max(0, $0.atMillis - start) + timeout } ?? 0
        guard let v = reference else {
            return HealthWindowBounds(outcomes: [.passed, .failed, .timedOut], minMillis: 0, maxMillis: .max, why: "no reference")
        }
        // Each inspection that failed is one poll that observed nothing.
        let blind = Int64(during.filter { $0.fault?.isError ?? false }.count) * poll
        bounds = window(v, slack: poll + delay + blind + restartExtension + (HealthReference.deathMillis(b) ?? 0) + poll
                            + (config.healthKind.isProbe ? probeSlack + timeout : 0))
        if config.healthKind.isProbe, !during.isEmpty, !HealthReference.probeScript(kind: config.healthKind, probe: config.probe).passes,
           HealthReference.deathMillis(b) == nil {
            // A probe that could not be run answers nothing: it may decide the deadline instead
            // of the service's own (wrong) answer.
            bounds.outcomes = [.failed, .timedOut]
            bounds.why = "host errors during the probes: the deadline may find no answer"
        }
        // Sampling decides a flapping container, and a death close to the end of the window.
        let bad = HealthReference.firstBadMillis(kind: config.healthKind, behaviour: b, horizon: v.atMillis + poll + delay + restartExtension)
        if case .flap = b, config.healthKind == .containerHealth {
            bounds.outcomes = [.passed, .failed]
            bounds.minMillis = min(stable, bounds.minMillis)
            bounds.why = "delayed polls sample a flapping container's health"
        } else if v.outcome == .pass, let bad, bad >= stable {
            bounds.outcomes = [.passed, .failed]
            bounds.why = "the container dies at \(bad) ms, near the end of the stability window, and delayed polls decide"
        }
        if !daemons.isEmpty, v.outcome == .timedOut {
            bounds.maxMillis += timeout
        }
        // The check's clock runs through the delays: enough of them leave no time for a verdict.
        if v.outcome != .timedOut, v.atMillis + delay + restartExtension >= timeout {
            if !bounds.outcomes.contains(.timedOut) { bounds.outcomes.append(.timedOut) }
            bounds.why = (bounds.why.map { $0 + "; " } ?? "") + "delays of \(delay) ms ate the \(timeout) ms timeout"
        }
        // An inspection error past twice the timeout ends the check as timed out.
        if during.contains(where: { ($0.fault?.isError ?? false) && $0.atMillis + $0.fault!.delayMillis - start >= 2 * timeout }) {
            if !bounds.outcomes.contains(.timedOut) { bounds.outcomes.append(.timedOut) }
            bounds.why = (bounds.why.map { $0 + "; " } ?? "") + "inspections failed past twice the timeout"
        }
        return bounds
    }

    // MARK: Judging

    /// The run against its expectation, as sentences; empty when it matches.
    public func oracleViolations() -> [String] {
        let e = expectation()
        lastExpectation = e
        var out: [String] = []
        let a = journal.attempts.first { $0.updateID == plan.updateID }
        let status = a?.status
        let candidates = e.outcomes.filter { $0.status == status }
        guard !candidates.isEmpty else {
            out.append("ended \(status?.rawValue ?? "with no record"), expected \(e)")
            return out + releaseViolations(e.outcomes[0].release, attempt: a)
        }
        // Open outcomes with the same status: the run must match one of them entirely.
        var first: [String]? = nil
        for o in candidates {
            let v = judge(o, e, attempt: a)
            if v.isEmpty { return [] }
            if first == nil { first = v }
        }
        return first ?? []
    }

    func judge(_ o: Expectation.Outcome, _ e: Expectation, attempt a: UpdateAttempt?) -> [String] {
        var out: [String] = []
        if a == nil, o.status == nil, let group = o.codes.first, let r = refusal, !group.contains(r.code) {
            out.append("refused with \(r.code), expected \(group.joined(separator: " or ")) (\(o.why))")
        }
        if a == nil, o.status == nil, !o.codes.isEmpty, refusal == nil {
            out.append("no record and no refusal, expected a refusal with \(o.codes[0].joined(separator: " or ")) (\(o.why))")
        }
        // The updater's own answer after the journal failed: the same decision, saying why.
        if disruption.failedWrites > 0, let ip = inProcessAttempt, !e.statuses.contains(ip.status) {
            // Its own restore met the faults of its own process (the later recovery may meet a
            // calm host): rollback_failed there is the restore's bound, not a wrong decision.
            let end = processes.first?.endCall ?? host.callCount
            let own = host.faultLog.filter { $0.index < end }
            let bounded = ip.status == .rollbackFailed && e.statuses.contains(.rolledBack)
                && (own.filter { $0.fault?.isDaemon ?? false }.count > UpdateMachine.maxRestoreRestarts
                    || own.filter { $0.fault?.isError ?? false }.count >= UpdateMachine.maxRestoreRounds)
            if !bounded {
                out.append("after the journal failed the updater itself ended \(ip.status.rawValue), expected \(e)")
            }
        }
        if let a {
            let codes = a.issues.map(\.code)
            for group in o.codes where !group.contains(where: { c in codes.contains { $0.hasPrefix(c) } }) {
                out.append("issues \(codes) lack \(group.joined(separator: " or ")) (\(o.why))")
            }
            // A run the scenario fully determines says nothing else (a restore may add that it
            // could not remove the failed container: `package cleanup` retries).
            if o.events != nil {
                let extra = codes.filter { c in
                    c != "rollback.remove_failed" && !o.codes.contains { $0.contains { c.hasPrefix($0) } }
                }
                if !extra.isEmpty { out.append("unexpected issues \(extra) (\(o.why))") }
            }
            if a.status.exitCode != Expectation.exitCode(a.status) {
                out.append("status \(a.status.rawValue) exits \(a.status.exitCode), must exit \(Expectation.exitCode(a.status))")
            }
        }
        out += auditViolations(o, attempt: a)
        out += healthViolations(o, attempt: a)
        out += bookkeepingViolations(attempt: a)
        out += releaseViolations(o.release, attempt: a)
        return out
    }

    func auditViolations(_ o: Expectation.Outcome, attempt a: UpdateAttempt?) -> [String] {
        guard let a else { return [] }
        var out: [String] = []
        let kinds = auditTrail.map(\.kind)
        if let exact = o.events, exact != kinds {
            out.append("audit events \(kinds.map(\.rawValue)), expected \(exact.map(\.rawValue))")
        }
        // Structure, whatever crashed: one ending, matching the status, last.
        let endings: [AuditKind] = [.updateCommitted, .updateFailed, .rollbackSucceeded, .rollbackFailed]
        let ends = kinds.filter { endings.contains($0) }
        let expectedEnd: AuditKind
        switch a.status {
        case .succeeded: expectedEnd = .updateCommitted
        case .failed: expectedEnd = .updateFailed
        case .rolledBack: expectedEnd = .rollbackSucceeded
        default: expectedEnd = .rollbackFailed
        }
        if ends != [expectedEnd] || kinds.last != expectedEnd {
            out.append("status \(a.status.rawValue) must end its audit trail with one \(expectedEnd.rawValue), got \(kinds.map(\.rawValue))")
        }
        let started = kinds.filter { $0 == .rollbackStarted }.count
        let rollbackEnd = kinds.firstIndex { $0 == .rollbackSucceeded || $0 == .rollbackFailed }
        if let end = rollbackEnd {
            if started != 1 || kinds.firstIndex(of: .rollbackStarted).map({ $0 > end }) ?? true {
                out.append("\(kinds[end].rawValue) needs exactly one rollback_started before it: \(kinds.map(\.rawValue))")
            }
        } else if started > 0 {
            out.append("rollback_started without its outcome: \(kinds.map(\.rawValue))")
        }
        let checks = kinds.filter { $0 == .healthCheckStarted }.count
        let verdicts = kinds.filter { $0 == .healthCheckPassed || $0 == .healthCheckFailed }.count
        if checks != verdicts {
            out.append("\(checks) health_check_started but \(verdicts) verdict(s): \(kinds.map(\.rawValue))")
        }
        if kinds.contains(.healthCheckPassed) && a.status != .succeeded {
            out.append("the health check passed but the attempt ended \(a.status.rawValue)")
        }
        if let i = kinds.firstIndex(of: .updateStarted), i != 0 { out.append("update_started is not the first event: \(kinds.map(\.rawValue))") }
        return out
    }

    func healthViolations(_ o: Expectation.Outcome, attempt a: UpdateAttempt?) -> [String] {
        guard let a else { return [] }
        var out: [String] = []
        let trail = auditTrail
        if let h = o.health {
            guard let hc = a.healthCheck else { return ["no health check recorded; expected \(h.outcomes.map(\.rawValue))"] }
            if !h.outcomes.contains(hc.outcome) {
                out.append("health check \(hc.outcome.rawValue), expected \(h.outcomes.map(\.rawValue).joined(separator: " or "))")
            }
            if let s = trail.first(where: { $0.kind == .healthCheckStarted })?.millis,
               let v = trail.first(where: { $0.kind == .healthCheckPassed || $0.kind == .healthCheckFailed })?.millis {
                let took = v - s
                if took < h.minMillis || took > h.maxMillis {
                    out.append("the health check reached its verdict after \(took) ms, expected \(h.minMillis == h.maxMillis ? "exactly \(h.minMillis)" : "\(h.minMillis)...\(h.maxMillis)") ms")
                }
            }
        }
        if a.status == .rolledBack {
            if a.rollbackHealthCheck?.outcome != .passed {
                out.append("rolled back without a passed health check of the restored release")
            }
            // A restored release that runs is judged like a new one: at least the stability window.
            // (After a recovery on a still-full disk, a later process only writes the record.)
            if o.release == .old(running: true), disruption.fullDiskRecovery == nil,
               let s = trail.first(where: { $0.kind == .rollbackStarted })?.millis,
               let v = trail.first(where: { $0.kind == .rollbackSucceeded })?.millis {
                let stable = Int64(max(0, min(plan.service.health.stableSecs, plan.service.health.timeoutSecs))) * 1000
                if v - s < stable {
                    out.append("the restored release was declared healthy \(v - s) ms after the rollback started, within its \(stable) ms stability window")
                }
            }
        }
        return out
    }

    func bookkeepingViolations(attempt a: UpdateAttempt?) -> [String] {
        let state = journal.states.first { $0.serviceName == plan.service.name }
        guard let a, a.status == .succeeded else {
            if let state, !Self.sameState(state, previousState) {
                return ["the service state changed although the update did not succeed: \(state)"]
            }
            return []
        }
        var out: [String] = []
        if a.previousImageID != oldImageID || a.previousImageReference != previousState.activeImageReference {
            out.append("the attempt records the previous image as \(a.previousImageReference ?? "nil") \(a.previousImageID ?? "nil")")
        }
        guard let state else { return out + ["succeeded without recording the service state"] }
        let expected = ServiceState(serviceName: "app", activeCandidateReleaseID: plan.candidateReleaseID,
                                    activeImageReference: plan.targetImageReference, activeImageID: plan.targetImageID,
                                    previousKnownGoodCandidateReleaseID: previousState.activeCandidateReleaseID,
                                    previousKnownGoodImageReference: previousState.activeImageReference,
                                    previousKnownGoodImageID: previousState.activeImageID,
                                    highestPackageVersion: "2.0.0", newestCreatedAt: "2026-03-16T18:30:00Z", updatedAt: "")
        if !Self.sameState(state, expected) {
            out.append("service state \(state), expected \(expected)")
        }
        return out
    }

    static func sameState(_ a: ServiceState, _ b: ServiceState) -> Bool {
        var x = a
        x.updatedAt = b.updatedAt
        return x == b
    }

    func releaseViolations(_ release: Expectation.Release, attempt a: UpdateAttempt?) -> [String] {
        var out: [String] = []
        host.advanceAll()
        let codes = a?.issues.map(\.code) ?? []
        let ours = host.allContainers.filter { $0.labels[UpdateMachine.updateLabel] == plan.updateID }
        let m = UpdateMachine(plan: plan, startedAt: "")
        let daemonFaults = host.faultLog.contains { $0.fault?.isDaemon ?? false }
        // Outsiders' containers are never Caisson's to touch.
        if let id = foreignContainerID {
            if host.container(id)?.name != m.stagingName { out.append("the outsider's container holding \(m.stagingName) was touched") }
        }
        for r in host.interventionLog where r.applied {
            if case .occupyName(let name, _) = r.action, let id = r.containerID, host.container(id)?.name != name {
                out.append("the outsider's container \(name) was removed or renamed")
            }
        }
        let replicaID = host.interventionLog.first { if case .composeReplica = $0.action { return $0.applied }; return false }?.containerID
        let members: [ContainerInfo]
        switch config.mode {
        case .docker:
            members = host.containers(named: "app")
        case .compose:
            // (Another catalog service's container is never a member, whatever its labels.)
            members = ((try? host.doComposeContainers(service.compose!)) ?? []).filter {
                $0.id != replicaID && !(config.hijacker && $0.name == Self.hijackerName)
                    && config.foreignMark.map(Self.foreignMarkName) != $0.name
            }
        }
        let original = originalContainers.first
        switch release {
        case .needsHuman:
            if config.mode == .docker, let old = oldContainerID, config.outsider == .takesServiceName, host.container(old) == nil {
                out.append("the previous container was removed although the rollback could not finish")
            }
            return out
        case .new(let mayBeDown):
            guard members.count == 1, let c = members.first else { return out + ["\(members.count) containers serve the service after a success"] }
            if c.imageID != newImageID { out.append("succeeded but the service runs \(c.imageID)") }
            if !c.isRunning && !mayBeDown { out.append("succeeded but the new release is \(c.status.rawValue)") }
            if config.mode == .docker {
                if c.labels[UpdateMachine.updateLabel] != plan.updateID { out.append("succeeded but the container named app is not the one this update created") }
                if host.container(m.backupName) != nil && !codes.contains("docker.cleanup_failed") {
                    out.append("the backup container \(m.backupName) was left behind")
                }
                if let old = oldContainerID, host.container(old) != nil, !codes.contains("docker.cleanup_failed") {
                    out.append("the previous container still exists after a success")
                }
            }
        case .newLeftStopped:
            guard members.count == 1, let c = members.first else { return out + ["\(members.count) containers serve the service after a success"] }
            if c.imageID != newImageID { out.append("succeeded (left stopped) but the service runs \(c.imageID)") }
            if c.status != .created { out.append("the update said it left the service stopped, but it is \(c.status.rawValue)") }
            if c.labels[UpdateMachine.updateLabel] != plan.updateID { out.append("succeeded but the container named app is not the one this update created") }
            if let old = oldContainerID, host.container(old) != nil, !codes.contains("docker.cleanup_failed") {
                out.append("the previous container still exists after a success")
            }
        case .old(let running):
            guard members.count == 1, let c = members.first else { return out + ["\(members.count) containers serve the service after a rollback"] }
            if c.imageID != oldImageID { out.append("rolled back but the service runs \(c.imageID)") }
            if config.mode == .docker, let old = oldContainerID, c.id != old {
                out.append("rolled back but the container named app is not the original one")
            }
            if c.isRunning != running { out.append("rolled back to a previous release that is \(c.status.rawValue), expected \(running ? "running" : "stopped as found")") }
            if config.mode == .docker, !ours.isEmpty, !codes.contains("rollback.remove_failed") {
                out.append("the new container was left behind: \(ours.map(\.name))")
            }
        case .untouched:
            guard members.count == 1, let c = members.first, let o = original else {
                return out + ["\(members.count) containers serve the service, which was never touched"]
            }
            if c.id != o.id { out.append("the service's container was replaced although nothing was to change") }
            if !daemonFaults && (c.startedAt != o.startedAt || !c.isRunning) {
                out.append("the service was stopped or restarted although nothing was to change (\(c.status.rawValue), started \(c.startedAt))")
            }
            // (After daemon restarts it may be down: its policy decides, and a cleanup that found
            // it down starts it again. Neither is Caisson's change.)
            if config.mode == .docker, !ours.isEmpty, !codes.contains("rollback.remove_failed") {
                out.append("a container of this update was left behind: \(ours.map(\.name))")
            }
        }
        return out
    }
}

