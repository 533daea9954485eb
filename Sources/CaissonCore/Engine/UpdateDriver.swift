/// Runs an `UpdateMachine` against a `ContainerHost`, journaling before and after every side
/// effect. Thin on purpose: every decision is in the machine.
///
/// Journal discipline (DESIGN.md principle 3): a write of the machine's snapshot
/// - when the attempt starts (after reserving the journal's room: `UpdateJournal.reserveSpace`),
/// - before every mutating host call (intent) and after it (outcome),
/// - whenever the machine reports new audit events or a status change,
/// - at the end (the terminal record, with the service state on commit).
///
/// A journal write that fails (disk full, the state database deleted, an I/O error):
/// - before anything was durable, nothing was touched: the error is thrown;
/// - after that, the driver does at once what the next command's recovery would do from the
///   last durable snapshot (finish a commit whose health check passed, else restore the previous
///   release), trying each later write but going on without it, and returns the attempt with an
///   issue saying the journal failed (never "nothing was changed": the host may have been).
/// A `SimulatedCrash` (the harness's process death) always propagates.
///
/// `isCancelRequested` (Ctrl-C, SIGTERM) is asked before every action; the first time it says
/// yes, the machine gets `.cancel` instead of that action (see `UpdateMachine.Input.cancel`).
public final class UpdateDriver {
    public let host: any ContainerHost
    public let journal: any UpdateJournal
    public let clock: any UpdateClock
    /// Called after every step, for progress output (phase description).
    public var onStep: ((String) -> Void)?
    /// The candidate release to record with the first write (package loads).
    public var candidateRelease: CandidateRelease?
    /// Upper bound on machine steps (a guard against a machine bug looping forever).
    public var maxSteps = 100_000
    /// How much of a failed container's log the evidence keeps.
    public var logLimit = LogLimit.default
    /// The attempt being driven (for evidence records).
    private var updateID: String?
    /// True once the operator asked to stop (asked before every action; delivered once).
    public var isCancelRequested: (() -> Bool)?
    /// Called when the stop request is delivered, with what the machine does about it.
    public var onCancel: ((CancelEffect) -> Void)?
    /// Whether the stop request reached the machine.
    public private(set) var cancelDelivered = false
    /// Set once a journal write failed after the first durable one: what went wrong.
    public private(set) var journalFailure: CaissonError?

    /// What a stop request did.
    public enum CancelEffect: Sendable, Equatable {
        /// Nothing was touched: the attempt ends, nothing changed.
        case stoppedUntouched
        /// The previous release is being restored.
        case restoring
        /// The new release passed its health check (or a restore is under way): carrying on.
        case finishing
    }

    /// The machine as of the last successful journal write.
    private var lastDurable: UpdateMachine?

    public init(host: any ContainerHost, journal: any UpdateJournal, clock: any UpdateClock) {
        self.host = host
        self.journal = journal
        self.clock = clock
    }

    /// Drive a new attempt to its terminal status.
    @discardableResult
    public func run(_ machine: inout UpdateMachine) throws -> UpdateAttempt {
        updateID = machine.plan.updateID
        // Room for the journal first: a full disk fails here, before anything is touched.
        try journal.reserveSpace()
        try persist(&machine, entry: (.note, "start", .text("attempt started")), release: candidateRelease)
        return try drive(&machine, first: .start)
    }

    /// Drive a recovered attempt (see `UpdateMachine.recovering`) to its terminal status.
    ///
    /// The snapshot it starts from is durable already: a journal that cannot be written at all
    /// (the state disk still full after a power cut) does not stop it. It restores (or finishes)
    /// without the journal and says the record is incomplete (`journalFailure`), rather than
    /// leave an unverified release live until someone frees space.
    @discardableResult
    public func resume(_ machine: inout UpdateMachine) throws -> UpdateAttempt {
        updateID = machine.plan.updateID
        resumedFrom = machine
        do {
            try persist(&machine, entry: (.note, "recover", .text("recovery started after an interrupted attempt")))
        } catch let failed as JournalWriteFailed {
            return try goOnWithoutJournal(&machine, failed.error)
        }
        return try drive(&machine, first: .start)
    }

    /// The machine `resume` started from (durable: it was read from the journal).
    private var resumedFrom: UpdateMachine?

    /// A journal write failed after the first durable one.
    private struct JournalWriteFailed: Error {
        var error: CaissonError
    }

    private func drive(_ machine: inout UpdateMachine, first: UpdateMachine.Input) throws -> UpdateAttempt {
        do {
            return try driveSteps(&machine, first: first)
        } catch let failed as JournalWriteFailed {
            return try goOnWithoutJournal(&machine, failed.error)
        }
    }

    /// Do now what recovery would do from the last durable snapshot; write what we can.
    private func goOnWithoutJournal(_ machine: inout UpdateMachine, _ error: CaissonError) throws -> UpdateAttempt {
        if let durable = lastDurable {
            machine = UpdateMachine.recovering(durable, attempt: durable.attempt)
        } else if let resumed = resumedFrom {
            machine = resumed
        } else {
            throw error
        }
        journalFailure = error
        var attempt = try driveSteps(&machine, first: .start)
        attempt.issues.append(Issue(error.code, "the update journal could not be written after the update began (\(error.message)); Caisson went on without it and "
            + (attempt.status == .succeeded ? "finished the update, whose health check had passed"
               : attempt.status == .rollbackFailed ? "could not restore the previous release"
               : "restored the previous release") + "; this record may be incomplete until `caisson recover` runs with room on the state directory's disk"))
        return attempt
    }

    private func driveSteps(_ machine: inout UpdateMachine, first: UpdateMachine.Input) throws -> UpdateAttempt {
        var input = first
        var steps = 0
        while true {
            steps += 1
            if steps > maxSteps {
                throw CaissonError("update.internal_error", "the update machine did not finish within \(maxSteps) steps")
            }
            var action = machine.next(input, now: clock.nowMillis, timestamp: clock.timestamp())
            if !cancelDelivered, action != .finished, let asked = isCancelRequested, asked() {
                cancelDelivered = true
                let passed = machine.healthPassed
                let restoring = machine.isRestoring
                action = machine.next(.cancel, now: clock.nowMillis, timestamp: clock.timestamp())
                // (A cancel instead of the first change to the live service leaves it untouched.)
                onCancel?(passed || restoring ? .finishing : machine.touchedLive ? .restoring : .stoppedUntouched)
            }
            switch action {
            case .finished:
                try persist(&machine, entry: (.note, "finish", .text("attempt " + machine.status.rawValue)), state: machine.newServiceState)
                return machine.attempt
            case .sleep(let millis):
                if machine.needsPersist { try persist(&machine, entry: (.note, "status", .text(machine.status.rawValue))) }
                clock.sleep(millis: millis)
                input = .woke
            case .call(let command):
                if command.isMutating || machine.needsPersist {
                    try persist(&machine, entry: (.intent, command.stepName, .command(command)))
                }
                onStep?(command.detail)
                let reply = perform(command)
                if command.isMutating {
                    try persist(&machine, entry: (.outcome, command.stepName, .outcome(reply)))
                }
                input = .reply(reply)
            }
        }
    }

    private func persist(_ machine: inout UpdateMachine, entry: (JournalPhase, String, JournalEntry.Detail),
                         state: ServiceState? = nil, release: CandidateRelease? = nil) throws {
        let events = machine.takeEvents()
        let evidence = machine.takeEvidence()
        let e = JournalEntry(phase: entry.0, step: entry.1, lazyDetail: entry.2, machine: machine, at: clock.timestamp())
        var write = JournalWrite(sharedAttempt: machine.sharedAttempt, entry: e, events: events,
                                 serviceState: state, candidateRelease: release)
        write.evidence = evidence
        do {
            try journal.write(write)
            lastDurable = machine
        } catch let crash as SimulatedCrash {
            throw crash
        } catch {
            // Already going on without the journal: this write is lost too.
            if journalFailure != nil { return }
            let e = error as? CaissonError ?? CaissonError("store.write_failed", "\(error)")
            if lastDurable == nil && resumedFrom == nil { throw e }
            throw JournalWriteFailed(error: e)
        }
    }

    func perform(_ command: UpdateMachine.Command) -> UpdateMachine.Reply {
        do {
            switch command {
            case .inspectContainer(let name):
                return .container(try host.inspectContainer(name))
            case .inspectImage(let ref):
                return .image(try host.inspectImage(ref))
            case .tagImage(let id, let ref):
                try host.tagImage(id, as: ref)
                return .done
            case .createContainer(let name, let template, let imageID, let labels, let reference?):
                return .created(try host.createContainer(name: name, cloning: template, reference: reference, imageID: imageID, labels: labels))
            case .createContainer(let name, let template, let imageID, let labels, nil):
                return .created(try host.createContainer(name: name, cloning: template, imageID: imageID, labels: labels))
            case .startContainer(let id):
                try host.startContainer(id)
                return .done
            case .stopContainer(let id, let grace):
                try host.stopContainer(id, graceSecs: grace)
                return .done
            case .renameContainer(let id, let to):
                try host.renameContainer(id, to: to)
                return .done
            case .removeContainer(let id):
                try host.removeContainer(id)
                return .done
            case .removeStoppedContainer(let id):
                try host.removeStoppedContainer(id)
                return .done
            case .listContainers:
                return .containers(try host.listContainers())
            case .createDependentContainer(let name, let template, let owner, let labels):
                return .created(try host.createDependentContainer(name: name, cloning: template, networkOwner: owner, labels: labels))
            case .composeUp(let target, let services):
                try host.composeUp(target, services: services)
                return .done
            case .composeContainers(let target):
                return .containers(try host.composeContainers(target))
            case .composeApply(let target, let ref):
                try host.composeApply(target, imageReference: ref)
                return .done
            case .containerDetails(let id):
                return .details(try host.containerDetails(id))
            case .probe(let request, let timeout):
                return .probe(try host.probe(request, timeoutMillis: timeout))
            case .captureEvidence(let id, let role):
                return .evidence(FailureEvidence.capture(from: host, container: id, role: role,
                                                         updateID: updateID ?? "", at: clock.timestamp(), limit: logLimit))
            }
        } catch {
            return .error(error)
        }
    }

}

extension UpdateMachine.Reply {
    /// How the journal's outcome entries describe a reply.
    var journalDescription: String {
        switch self {
        case .done: return "ok"
        case .created(let id): return "created \(shortID(id))"
        case .error(let e): return "\(e.kind.rawValue): \(e.message)"
        case .container(let c): return c.map { "\($0.name) \($0.status.rawValue)" } ?? "not found"
        case .image(let i): return i.map { shortID($0.id) } ?? "not found"
        case .containers(let cs): return "\(cs.count) container(s)"
        case .details(let d): return d.map { "\($0.info.name) \($0.probeAddress ?? "no address")" } ?? "not found"
        case .probe(let a): return a.text
        case .evidence(let e): return "evidence of \(e.containerName): \(e.logTail.count) log line(s)"
        }
    }
}

/// Recovery: every command first drives any attempt left in flight to a terminal status.
public enum Recovery {
    public struct Report: Sendable, Equatable {
        public var recovered: [UpdateAttempt]
        public var problems: [Issue]
        public init(recovered: [UpdateAttempt] = [], problems: [Issue] = []) {
            self.recovered = recovered
            self.problems = problems
        }
    }

    /// Must run under the state directory's operation lock (see `RecoveryGate`): an attempt is
    /// only "interrupted" when no live process owns it. With `serviceLocks`, each attempt that
    /// may touch the host is recovered under its service's host-wide lock; a service another
    /// Caisson is changing right now is left for later (`recovery.service_busy`).
    public static func run(host: any ContainerHost, journal: any UpdateJournal, clock: any UpdateClock,
                           onStep: ((String) -> Void)? = nil, serviceLocks: (any LockSpace)? = nil,
                           holder: LockHolder? = nil, maxSteps: Int? = nil) throws -> Report {
        var report = Report()
        for inflight in try journal.inFlightAttempts() {
            if let why = inflight.unreadable {
                report.problems.append(Issue("recovery.unreadable_snapshot", "attempt \(inflight.attempt.updateID) has an unreadable journal snapshot (\(why)); inspect service \(inflight.attempt.serviceName) by hand"))
                continue
            }
            guard let saved = inflight.machine else {
                // Nothing was journaled beyond the attempt row: no side effect can have happened.
                var a = inflight.attempt
                a.status = .failed
                a.finishedAt = clock.timestamp()
                a.issues.append(Issue("update.interrupted", "the updater stopped before changing anything"))
                do {
                    try journal.write(JournalWrite(attempt: a, events: [AuditEvent(kind: .updateFailed, at: clock.timestamp(), serviceName: a.serviceName, updateID: a.updateID, message: "interrupted before any change")]))
                } catch let e as CaissonError where e.code.hasPrefix("store.") {
                    // Nothing to do on the host; only the record waits for room.
                    a.issues.append(Issue(e.code, "this record could not be written (\(e.message))"))
                    report.problems.append(Self.unrecorded(a, e))
                }
                report.recovered.append(a)
                continue
            }
            var serviceLock: HeldLock?
            if let serviceLocks, let holder {
                switch try serviceLocks.tryLock(OperationLocks.serviceLockName(saved.plan.service), holder: holder) {
                case .acquired(let lock): serviceLock = lock
                case .busy(let other):
                    report.problems.append(Issue("recovery.service_busy", "attempt \(inflight.attempt.updateID) of \(inflight.attempt.serviceName) was not recovered: another Caisson on this host is changing that service now\(other.map { " (\($0.description))" } ?? ""); run `caisson recover` again once it has finished"))
                    continue
                }
            }
            defer { serviceLock?.release() }
            var machine = UpdateMachine.recovering(saved, attempt: inflight.attempt)
            let driver = UpdateDriver(host: host, journal: journal, clock: clock)
            driver.onStep = onStep
            if let maxSteps { driver.maxSteps = maxSteps }
            let result = try driver.resume(&machine)
            report.recovered.append(result)
            if let e = driver.journalFailure { report.problems.append(Self.unrecorded(result, e)) }
        }
        return report
    }

    /// The problem of an attempt recovered on the host whose record could not be written.
    static func unrecorded(_ a: UpdateAttempt, _ e: CaissonError) -> Issue {
        Issue(e.code, "update \(a.updateID) of \(a.serviceName) was recovered (\(a.status.rawValue)) but its record could not be written: \(e.message). "
            + "Free space on the state directory's disk (for example `caisson package cleanup`) and run `caisson recover` again to bring the history up to date.")
    }
}
