import CaissonCore

/// Locks in memory, for the harness: a state directory's lock space, or the host's `/run`.
/// Like `flock`, a lock belongs to a process and is dropped when that process dies
/// (`releaseAll(pid:)`). No dictionary: a handful of locks, searched in order.
public final class SimLockSpace: LockSpace {
    @exclusivity(unchecked) private var held: [(name: String, holder: LockHolder)] = []

    public init() {}

    public func tryLock(_ name: String, holder: LockHolder) throws -> LockAttempt {
        if let h = held.first(where: { $0.name == name }) { return .busy(h.holder) }
        held.append((name, holder))
        return .acquired(HeldLock(name: name, holder: holder, onRelease: { [weak self] in
            self?.drop(name: name, pid: holder.pid)
        }))
    }

    public func holder(of name: String) -> LockHolder? { held.first { $0.name == name }?.holder }

    private func drop(name: String, pid: Int32) {
        held.removeAll { $0.name == name && $0.holder.pid == pid }
    }

    /// The process `pid` died: the kernel drops its locks.
    public func releaseAll(pid: Int32) { held.removeAll { $0.holder.pid == pid } }

    public var isEmpty: Bool { held.isEmpty }
}

/// A second Caisson process on the same device, started while an update runs (typed in another
/// shell, a cron job, the console): each command does what the CLI's does first.
public enum SecondCommand: String, Sendable, Codable, CaseIterable, Equatable {
    /// `service list`, `service show`, `history list`, `history show`, `package validate`: recover
    /// what is unfinished (gated), then read.
    case serviceList, historyList, validate
    /// `recover`: the gate, then report.
    case recover
    /// Commands that take the operation lock themselves: `package load`, `rollback`, `package cleanup`.
    case load, rollback, cleanup
    /// Another Caisson with *another state directory* (its own journal and lock), same host and
    /// service: `package load` of the service, and `recover`.
    case otherStateDirLoad, otherStateDirRecover

    public var takesOperationLock: Bool { self == .load || self == .rollback || self == .cleanup }
}

/// When the second process starts, and what it runs.
public struct SecondProcessPlan: Sendable, Codable, Equatable {
    /// After the first process's journal write with this index (0-based).
    public var afterWrite: Int
    public var command: SecondCommand
    /// Instead: after the first process died (a planned crash), before the next command recovers.
    public var afterCrash: Bool

    public init(afterWrite: Int, command: SecondCommand, afterCrash: Bool = false) {
        self.afterWrite = afterWrite
        self.command = command
        self.afterCrash = afterCrash
    }
}

/// What the second process did, for the invariants.
public struct SecondProcessReport: Sendable, Equatable {
    public var command: SecondCommand
    /// Mutating host calls it made.
    public var hostChanges: Int
    /// Journal writes it made to the first process's journal.
    public var journalWrites: Int
    /// Whether the first process was alive (held its lock) when the second one ran.
    public var firstAlive: Bool
    /// It reported the first process's attempt in progress (pid, step, since).
    public var reportedInProgress: OperationInProgress?
    /// The issue code it refused with, if it refused.
    public var refusal: String?
    /// The host carried the marks of an unfinished update of the service when it ran
    /// (`NAME-caisson-new-…` / `NAME-caisson-rollback-…` containers), as an observer sees it.
    public var marksPresent = false
    /// Attempts it recovered.
    public var recovered: [UpdateAttempt] = []
}

extension UpdateScenario {
    /// The process ids of the harness's processes.
    public static let firstPID: Int32 = 100
    public static let secondPID: Int32 = 200
    public static let recoveryPID: Int32 = 300

    func holder(_ pid: Int32, _ operation: String, stateDirectory: String = "/var/lib/caisson") -> LockHolder {
        LockHolder(operation: operation, pid: pid, since: host.clock.timestamp(), stateDirectory: stateDirectory)
    }

    /// Runs `command` as another process, now (between two steps of the first process).
    func runSecondProcess(_ command: SecondCommand) -> SecondProcessReport {
        let callsBefore = host.callCount
        defer { secondProcessCalls = callsBefore..<host.callCount }
        let mutatingBefore = host.mutatingCallCount
        let writesBefore = journal.writeCount
        let firstAlive = stateLocks.holder(of: OperationLocks.stateLockName)?.pid == Self.firstPID
        var report = SecondProcessReport(command: command, hostChanges: 0, journalWrites: 0, firstAlive: firstAlive)
        if let name = service.docker?.containerName {
            report.marksPresent = host.allContainers.contains {
                $0.name.hasPrefix(name + "-caisson-new-") || $0.name.hasPrefix(name + "-caisson-rollback-")
            }
        }
        let me = holder(Self.secondPID, command.rawValue)
        switch command {
        case .serviceList, .historyList, .validate, .recover:
            do {
                let outcome = try RecoveryGate.run(stateLocks: stateLocks, serviceLocks: hostLocks, holder: me, journal: durable,
                                                   host: { host }, clock: { host.clock })
                report.reportedInProgress = outcome.inProgress
                report.recovered = outcome.report.recovered
            } catch {
                report.refusal = (error as? CaissonError)?.code ?? "error"
            }
        case .load, .rollback, .cleanup:
            do {
                let lock = try OperationLocks.acquireState(stateLocks, holder: me)
                lock.release()
            } catch {
                report.refusal = (error as? CaissonError)?.code ?? "error"
            }
        case .otherStateDirLoad, .otherStateDirRecover:
            // Its own state directory: its own (empty) journal and lock; the same host and /run.
            let otherJournal = InMemoryJournal()
            let otherLocks = SimLockSpace()
            let other = holder(Self.secondPID, command.rawValue, stateDirectory: "/srv/other-caisson")
            do {
                let lock = try OperationLocks.acquireState(otherLocks, holder: other)
                defer { lock.release() }
                if command == .otherStateDirLoad {
                    let serviceLock = try OperationLocks.acquireService(hostLocks, service: service, holder: other)
                    defer { serviceLock.release() }
                    try ForeignMarks.refuse(service: service, host: host, journal: otherJournal)
                    report.refusal = nil
                } else {
                    // What `caisson recover` does there: its own journal, then the host's other Caissons.
                    let r = try Recovery.run(host: host, journal: otherJournal, clock: host.clock, serviceLocks: hostLocks, holder: other)
                    report.recovered = r.recovered
                    let survey = try ForeignMarks.survey(services: [service], serviceLocks: hostLocks, stateDirectory: other.stateDirectory,
                                                         host: host, journal: otherJournal)
                    if let live = survey.live.first { report.reportedInProgress = OperationInProgress(holder: live, attempts: []) }
                    report.refusal = survey.leftovers.first?.code
                }
            } catch {
                report.refusal = (error as? CaissonError)?.code ?? "error"
            }
        }
        report.hostChanges = host.mutatingCallCount - mutatingBefore
        report.journalWrites = journal.writeCount - writesBefore
        return report
    }

    /// The second process's part of the invariants.
    func secondProcessViolations() -> [String] {
        guard let r = secondProcessReport else { return [] }
        var out: [String] = []
        let name = "second process (\(r.command.rawValue))"
        if r.firstAlive {
            if r.hostChanges > 0 { out.append("\(name) changed the host \(r.hostChanges) time(s) while the update ran") }
            if r.journalWrites > 0 { out.append("\(name) wrote \(r.journalWrites) journal record(s) of the running update") }
            if !r.recovered.isEmpty { out.append("\(name) recovered an attempt whose process was alive") }
            switch r.command {
            case .serviceList, .historyList, .validate, .recover:
                let inFlightThen = r.reportedInProgress != nil
                if inFlightThen {
                    if r.reportedInProgress?.holder?.pid != Self.firstPID { out.append("\(name) did not name the running process's pid") }
                    if r.reportedInProgress?.attempts.contains(where: { $0.updateID == plan.updateID && $0.step != nil && $0.stepAt != nil }) != true {
                        out.append("\(name) did not show the running attempt with its step and since when")
                    }
                } else if secondProcessSawInFlight {
                    out.append("\(name) did not report the running attempt as in progress")
                }
            case .load, .rollback, .cleanup:
                if r.refusal != "lock.busy" { out.append("\(name) was not refused with lock.busy (\(r.refusal ?? "went ahead"))") }
            case .otherStateDirLoad:
                if r.refusal != "lock.service_busy" { out.append("\(name) was not refused with lock.service_busy (\(r.refusal ?? "went ahead"))") }
            case .otherStateDirRecover:
                // It cannot recover what it did not run, but must not say there is nothing to
                // recover while another state directory's update runs (marks or not: Compose
                // leaves none): it shows that process, by its host-wide lock.
                if r.reportedInProgress?.holder?.pid != Self.firstPID {
                    out.append("\(name) did not show the running update of another state directory (pid \(Self.firstPID))\(r.marksPresent && r.refusal == nil ? " and said nothing was left to recover" : "")")
                }
            }
        } else if r.marksPresent {
            // The first process died mid-update: another state directory must not take its
            // leftovers for its own, nor say there is nothing to recover.
            switch r.command {
            case .otherStateDirLoad:
                if r.refusal == nil { out.append("\(name) went ahead over another state directory's unfinished update") }
                if r.hostChanges > 0 { out.append("\(name) changed the host over another state directory's unfinished update") }
            case .otherStateDirRecover:
                if r.refusal == nil { out.append("\(name) said nothing was left to recover while another state directory's update was unfinished") }
                if r.hostChanges > 0 || !r.recovered.isEmpty { out.append("\(name) touched another state directory's unfinished update") }
            default:
                break
            }
        }
        return out
    }
}

extension SimulatedHost {
    /// Calls so far that may change the host (every operation but the read-only ones).
    public var mutatingCallCount: Int {
        var n = 0
        for op in SimOperation.allCases where !op.isReadOnly { n += state.operationCounts[op.ordinal] }
        return n
    }
}
