/// Runs an `UpdateMachine` against a `ContainerHost`, journaling before and after every side
/// effect. Thin on purpose: every decision is in the machine.
///
/// Journal discipline (DESIGN.md principle 3): a write of the machine's snapshot
/// - when the attempt starts,
/// - before every mutating host call (intent) and after it (outcome),
/// - whenever the machine reports new audit events or a status change,
/// - at the end (the terminal record, with the service state on commit).
/// If a journal write throws (disk full, or a simulated crash) the driver stops at once: the
/// next run's recovery picks the attempt up from the last durable snapshot.
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

    public init(host: any ContainerHost, journal: any UpdateJournal, clock: any UpdateClock) {
        self.host = host
        self.journal = journal
        self.clock = clock
    }

    /// Drive a new attempt to its terminal status.
    @discardableResult
    public func run(_ machine: inout UpdateMachine) throws -> UpdateAttempt {
        try persist(&machine, entry: (.note, "start", .text("attempt started")), release: candidateRelease)
        return try drive(&machine, first: .start)
    }

    /// Drive a recovered attempt (see `UpdateMachine.recovering`) to its terminal status.
    @discardableResult
    public func resume(_ machine: inout UpdateMachine) throws -> UpdateAttempt {
        try persist(&machine, entry: (.note, "recover", .text("recovery started after an interrupted attempt")))
        return try drive(&machine, first: .start)
    }

    private func drive(_ machine: inout UpdateMachine, first: UpdateMachine.Input) throws -> UpdateAttempt {
        var input = first
        var steps = 0
        while true {
            steps += 1
            if steps > maxSteps {
                throw CaissonError("update.internal_error", "the update machine did not finish within \(maxSteps) steps")
            }
            let action = machine.next(input, now: clock.nowMillis, timestamp: clock.timestamp())
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
        let e = JournalEntry(phase: entry.0, step: entry.1, lazyDetail: entry.2, machine: machine, at: clock.timestamp())
        try journal.write(JournalWrite(sharedAttempt: machine.sharedAttempt, entry: e, events: events,
                                       serviceState: state, candidateRelease: release))
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
            case .createContainer(let name, let template, let imageID, let labels):
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
            case .composeContainers(let target):
                return .containers(try host.composeContainers(target))
            case .composeApply(let target, let ref):
                try host.composeApply(target, imageReference: ref)
                return .done
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

    public static func run(host: any ContainerHost, journal: any UpdateJournal, clock: any UpdateClock,
                           onStep: ((String) -> Void)? = nil, maxSteps: Int? = nil) throws -> Report {
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
                try journal.write(JournalWrite(attempt: a, events: [AuditEvent(kind: .updateFailed, at: clock.timestamp(), serviceName: a.serviceName, updateID: a.updateID, message: "interrupted before any change")]))
                report.recovered.append(a)
                continue
            }
            var machine = UpdateMachine.recovering(saved, attempt: inflight.attempt)
            let driver = UpdateDriver(host: host, journal: journal, clock: clock)
            driver.onStep = onStep
            if let maxSteps { driver.maxSteps = maxSteps }
            let result = try driver.resume(&machine)
            report.recovered.append(result)
        }
        return report
    }
}
