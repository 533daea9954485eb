/// An update attempt that another, live Caisson process is running: what a command shows instead
/// of touching it.
public struct AttemptInProgress: Sendable, Equatable, Codable {
    public var updateID: String
    public var serviceName: String
    public var kind: String
    public var status: UpdateStatus
    public var startedAt: String
    /// The step of its latest journal entry (`stop_container`, `health_poll`, ...) and since when.
    public var step: String?
    public var stepAt: String?

    public init(_ inflight: InFlightAttempt) {
        updateID = inflight.attempt.updateID
        serviceName = inflight.attempt.serviceName
        kind = inflight.attempt.kind
        status = inflight.attempt.status
        startedAt = inflight.attempt.startedAt
        step = inflight.lastStep
        stepAt = inflight.lastStepAt
    }

    /// `update 0badc0de of frontend: health_poll since 2026-03-16T18:30:05Z (started 2026-03-16T18:30:00Z)`
    public var description: String {
        let short = String(updateID.prefix(8))
        let where_ = step.map { ": \($0)\(stepAt.map { " since \($0)" } ?? "")" } ?? ""
        return "\(kind) \(short) of \(serviceName)\(where_) (started \(startedAt), status \(status.rawValue))"
    }

    enum CodingKeys: String, CodingKey {
        case updateID = "update_id"
        case serviceName = "service_name"
        case kind, status
        case startedAt = "started_at"
        case step
        case stepAt = "step_at"
    }
}

/// "Is an operation in flight, by whom, which step, since when": the lock holder of a state
/// directory and the attempts it is running.
public struct OperationInProgress: Sendable, Equatable, Codable {
    /// The process holding the state directory's lock (nil: it has not written its description).
    public var holder: LockHolder?
    public var attempts: [AttemptInProgress]

    public init(holder: LockHolder?, attempts: [AttemptInProgress]) {
        self.holder = holder
        self.attempts = attempts
    }

    /// One sentence per line, for a terminal.
    public var lines: [String] {
        let who = holder.map { "\($0.operation) (pid \($0.pid), since \($0.since))" } ?? "another Caisson operation (it has not described itself yet)"
        return ["In progress: \(who)"] + attempts.map { "- \($0.description)" }
    }
}

/// The start of every command that does not itself take the operation lock (`service list`,
/// `history list`, `package validate`, `recover`, ...): an unfinished attempt is recovered only
/// when no live process owns it, i.e. only under the state directory's lock; a command that finds
/// the lock held reports the attempt as in progress and changes nothing.
///
/// Both bodies go through here: the CLI with `flock` lock files, the simulator's harness with an
/// in-memory lock table (a second Caisson process at any step of a running update).
public enum RecoveryGate {
    public struct Outcome: Sendable, Equatable {
        /// What recovery did (empty when nothing was in flight, or when it was not ours to touch).
        public var report: Recovery.Report
        /// Set when another live process holds the operation lock: what it is doing.
        public var inProgress: OperationInProgress?

        public init(report: Recovery.Report = Recovery.Report(), inProgress: OperationInProgress? = nil) {
            self.report = report
            self.inProgress = inProgress
        }
    }

    /// Cheap when nothing is in flight: no lock is taken and `host` is not asked for.
    /// - Parameters:
    ///   - stateLocks: the state directory's lock space.
    ///   - serviceLocks: the host-wide lock space (`/run`), or nil when there is none.
    ///   - holder: who this process is (written into the lock while it recovers).
    public static func run(stateLocks: any LockSpace, serviceLocks: (any LockSpace)?, holder: LockHolder,
                           journal: any UpdateJournal, host: () throws -> any ContainerHost,
                           clock: () throws -> any UpdateClock, onStep: ((String) -> Void)? = nil,
                           maxSteps: Int? = nil) throws -> Outcome {
        guard !(try journal.inFlightAttempts()).isEmpty else { return Outcome() }
        switch try stateLocks.tryLock(OperationLocks.stateLockName, holder: holder) {
        case .busy(let other):
            // Its owner is alive (the kernel drops a dead process's lock): not ours to touch.
            let attempts = try journal.inFlightAttempts().map(AttemptInProgress.init)
            return Outcome(inProgress: OperationInProgress(holder: other, attempts: attempts))
        case .acquired(let lock):
            defer { lock.release() }
            let report = try Recovery.run(host: host(), journal: journal, clock: clock(), onStep: onStep,
                                          serviceLocks: serviceLocks, holder: holder, maxSteps: maxSteps)
            return Outcome(report: report)
        }
    }

    /// What is in flight in this state directory, by whom (for a console, `service list`, ...).
    /// nil when no process holds the operation lock. Does not lock; changes nothing.
    public static func status(stateLocks: any LockSpace, journal: any UpdateJournal) throws -> OperationInProgress? {
        guard let holder = stateLocks.holder(of: OperationLocks.stateLockName) else { return nil }
        return OperationInProgress(holder: holder, attempts: try journal.inFlightAttempts().map(AttemptInProgress.init))
    }
}
