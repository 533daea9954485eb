/// What the self-update machine persists: like `UpdateJournal`, one atomic durable write per
/// step (the record, a journal entry with the machine's snapshot, audit events).
public protocol SelfUpdateJournal: AnyObject {
    func write(_ write: SelfUpdateJournalWrite) throws
    /// Self-updates whose status is not terminal, oldest first, with their latest machine.
    func inFlightSelfUpdates() throws -> [InFlightSelfUpdate]
}

public struct SelfUpdateJournalWrite: Sendable, Equatable {
    public var record: SelfUpdateRecord
    public var phase: JournalPhase
    public var step: String
    public var detail: String
    public var machine: SelfUpdateMachine?
    public var at: String
    public var events: [AuditEvent]
    /// A rollback: the status the self-update it undoes now has (`rolls_back`).
    public var relatedStatus: SelfUpdateStatus?

    public init(record: SelfUpdateRecord, phase: JournalPhase, step: String, detail: String, machine: SelfUpdateMachine?,
                at: String, events: [AuditEvent], relatedStatus: SelfUpdateStatus? = nil) {
        self.record = record
        self.phase = phase
        self.step = step
        self.detail = detail
        self.machine = machine
        self.at = at
        self.events = events
        self.relatedStatus = relatedStatus
    }
}

public struct InFlightSelfUpdate: Sendable, Equatable {
    public var record: SelfUpdateRecord
    public var machine: SelfUpdateMachine?
    public var unreadable: String?

    public init(record: SelfUpdateRecord, machine: SelfUpdateMachine?, unreadable: String? = nil) {
        self.record = record
        self.machine = machine
        self.unreadable = unreadable
    }
}

/// The timestamps of a self-update's records (the wall clock in the CLI, a counter in tests).
public protocol SelfUpdateClock: AnyObject {
    func timestamp() -> String
}

/// Runs a `SelfUpdateMachine` against a `SelfUpdateSystem`, journaling before and after every call
/// that changes something. Thin on purpose: every decision is in the machine. A journal write that
/// throws (disk full, a simulated crash) stops the driver at once; the next command recovers.
public final class SelfUpdateDriver {
    public let system: any SelfUpdateSystem
    public let journal: any SelfUpdateJournal
    public let clock: any SelfUpdateClock
    public var onStep: ((String) -> Void)?
    public var maxSteps = 10_000

    public init(system: any SelfUpdateSystem, journal: any SelfUpdateJournal, clock: any SelfUpdateClock) {
        self.system = system
        self.journal = journal
        self.clock = clock
    }

    @discardableResult
    public func run(_ machine: inout SelfUpdateMachine) throws -> SelfUpdateRecord {
        try persist(&machine, .note, "start", "self-update started")
        return try drive(&machine)
    }

    @discardableResult
    public func resume(_ machine: inout SelfUpdateMachine) throws -> SelfUpdateRecord {
        try persist(&machine, .note, "recover", "recovery of an interrupted self-update")
        return try drive(&machine)
    }

    private func drive(_ machine: inout SelfUpdateMachine) throws -> SelfUpdateRecord {
        var input = SelfUpdateMachine.Input.start
        var steps = 0
        while true {
            steps += 1
            if steps > maxSteps {
                throw CaissonError("self_update.internal_error", "the self-update machine did not finish within \(maxSteps) steps")
            }
            switch machine.next(input, timestamp: clock.timestamp()) {
            case .finished:
                try persist(&machine, .note, "finish", "self-update " + machine.record.status.rawValue,
                            related: machine.relatedStatus)
                return machine.record
            case .call(let command):
                if command.isMutating || machine.needsPersist || machine.hasEvents {
                    try persist(&machine, .intent, command.stepName, command.detail)
                }
                onStep?(command.detail)
                let reply = perform(command)
                if command.isMutating {
                    try persist(&machine, .outcome, command.stepName, Self.describe(reply))
                }
                input = .reply(reply)
            }
        }
    }

    private func persist(_ machine: inout SelfUpdateMachine, _ phase: JournalPhase, _ step: String, _ detail: String,
                         related: SelfUpdateStatus? = nil) throws {
        let events = machine.takeEvents()
        try journal.write(SelfUpdateJournalWrite(record: machine.record, phase: phase, step: step, detail: detail,
                                                 machine: machine, at: clock.timestamp(), events: events,
                                                 relatedStatus: related))
    }

    func perform(_ command: SelfUpdateMachine.Command) -> SelfUpdateMachine.Reply {
        do throws(SystemCallError) {
            switch command {
            case .freeBytes(let d): return .bytes(try system.freeBytes(d))
            case .writeExecutable(let s, let to): try system.writeExecutable(s, to: to)
            case .syncDirectory(let d): try system.syncDirectory(d)
            case .digest(let p): return .digest(try system.digest(p))
            case .run(let r): return .ran(system.run(r))
            case .copyStore(let to, let rec): try system.copyStore(to: to, recordAfterRestore: rec)
            case .storeSchemaVersion: return .schema(try system.storeSchemaVersion())
            case .restoreStore(let from): try system.restoreStore(from: from)
            case .removeFile(let p): try system.removeFile(p)
            case .removeTree(let p): try system.removeTree(p)
            case .link(let a, let b): try system.link(a, b)
            case .copyFile(let a, let b): try system.copyFile(a, b)
            case .rename(let a, let b): try system.rename(a, b)
            case .writeRollbackPoint(let p): try system.writeRollbackPoint(p)
            }
            return .done
        } catch {
            return .failed(error)
        }
    }

    static func describe(_ reply: SelfUpdateMachine.Reply) -> String {
        switch reply {
        case .done: return "ok"
        case .bytes(let b): return b.map { "\($0) bytes free" } ?? "free space unknown"
        case .digest(let d): return d ?? "no such file"
        case .ran(let r): return "\(r.outcome)"
        case .schema(let v): return "schema \(v)"
        case .failed(let e): return "failed: \(e)"
        }
    }
}

/// A self-update journal in memory (tests, the simulator): survives a simulated crash of the
/// driver because it is a separate object.
public final class InMemorySelfUpdateJournal: SelfUpdateJournal {
    public private(set) var records: [SelfUpdateRecord] = []
    public private(set) var latest: [String: SelfUpdateMachine] = [:]
    public private(set) var entries: [(id: String, phase: JournalPhase, step: String, detail: String)] = []
    public private(set) var events: [AuditEvent] = []
    public private(set) var writeCount = 0
    /// Throws `SimulatedCrash` after persisting write number `crashAtWrite` (0-based), or instead
    /// of it with `crashBeforeWrite`.
    public var crashAtWrite: Int?
    public var crashBeforeWrite = false
    /// Called after every durable write (a simulated power cut may be taken from there).
    public var afterWrite: ((Int) -> Void)?

    public init() {}

    public func write(_ write: SelfUpdateJournalWrite) throws {
        let index = writeCount
        writeCount += 1
        if crashAtWrite == index && crashBeforeWrite { throw SimulatedCrash(writeIndex: index) }
        if let i = records.firstIndex(where: { $0.selfUpdateID == write.record.selfUpdateID }) {
            records[i] = write.record
        } else {
            records.append(write.record)
        }
        if let related = write.relatedStatus, let target = write.record.rollsBack,
           let i = records.firstIndex(where: { $0.selfUpdateID == target }) {
            records[i].status = related
        }
        if let m = write.machine { latest[write.record.selfUpdateID] = m }
        entries.append((write.record.selfUpdateID, write.phase, write.step, write.detail))
        events += write.events
        afterWrite?(index)
        if crashAtWrite == index && !crashBeforeWrite { throw SimulatedCrash(writeIndex: index) }
    }

    public func inFlightSelfUpdates() throws -> [InFlightSelfUpdate] {
        records.filter { !$0.status.isTerminal }.map { InFlightSelfUpdate(record: $0, machine: latest[$0.selfUpdateID]) }
    }

    /// Replaces the whole content (a store restored from its snapshot).
    public func replace(records: [SelfUpdateRecord], events: [AuditEvent]) {
        self.records = records
        self.events = events
        latest = latest.filter { id, _ in records.contains { $0.selfUpdateID == id && !$0.status.isTerminal } }
    }
}

/// Recovery of interrupted self-updates: every command runs it first.
public enum SelfUpdateRecovery {
    /// What recovery needs besides the seam and the journal.
    public struct Context {
        /// The rollback point as it is now (`rolling_back`: a rollback was interrupted).
        public var rollbackPoint: SelfUpdateRollbackPoint?
        public var stateDirectory: String
        public var catalogPath: String
        /// The store's schema version now.
        public var storeSchemaVersion: Int
        /// A fresh id (for a rollback whose record went with the store it restored).
        public var newID: () -> String

        public init(rollbackPoint: SelfUpdateRollbackPoint?, stateDirectory: String, catalogPath: String,
                    storeSchemaVersion: Int, newID: @escaping () -> String) {
            self.rollbackPoint = rollbackPoint
            self.stateDirectory = stateDirectory
            self.catalogPath = catalogPath
            self.storeSchemaVersion = storeSchemaVersion
            self.newID = newID
        }
    }

    /// Whether anything is left to recover.
    public static func isNeeded(journal: any SelfUpdateJournal, rollbackPoint: SelfUpdateRollbackPoint?) throws -> Bool {
        if rollbackPoint?.state == .rollingBack { return true }
        return !(try journal.inFlightSelfUpdates()).isEmpty
    }

    public static func run(system: any SelfUpdateSystem, journal: any SelfUpdateJournal, clock: any SelfUpdateClock,
                           context: Context, onStep: ((String) -> Void)? = nil) throws -> [SelfUpdateRecord] {
        var done: [SelfUpdateRecord] = []
        // A rollback interrupted after it restored the store: its record went with the replaced
        // database (the rollback point remembers it). Run it again: every step is idempotent.
        if let p = context.rollbackPoint, p.state == .rollingBack,
           !(try journal.inFlightSelfUpdates()).contains(where: { $0.record.selfUpdateID == p.rollbackID && $0.machine != nil }) {
            let id = (p.rollbackID == nil || p.rollbackID == p.selfUpdateID) ? context.newID() : p.rollbackID!
            var plan = SelfUpdateMachine.Plan.rollback(id: id, point: p, stateDirectory: context.stateDirectory,
                                                       catalogPath: context.catalogPath, storeSchemaVersion: context.storeSchemaVersion)
            plan.replacedStoreBeforehand = p.replacedStore
            var machine = SelfUpdateMachine(plan: plan, startedAt: clock.timestamp())
            let driver = SelfUpdateDriver(system: system, journal: journal, clock: clock)
            driver.onStep = onStep
            done.append(try driver.run(&machine))
        }
        for inflight in try journal.inFlightSelfUpdates() {
            guard let saved = inflight.machine else {
                // Nothing journaled beyond the record: nothing was done.
                var r = inflight.record
                r.status = .failed
                r.finishedAt = clock.timestamp()
                r.issues.append(Issue("self_update.interrupted", "the self-update stopped before changing anything"))
                try journal.write(SelfUpdateJournalWrite(record: r, phase: .note, step: "finish", detail: "interrupted before any change",
                                                         machine: nil, at: clock.timestamp(),
                                                         events: [AuditEvent(kind: .selfUpdateFailed, at: clock.timestamp(), updateID: r.selfUpdateID, message: "interrupted before any change")]))
                done.append(r)
                continue
            }
            var machine = SelfUpdateMachine.recovering(saved, record: inflight.record, at: clock.timestamp())
            let driver = SelfUpdateDriver(system: system, journal: journal, clock: clock)
            driver.onStep = onStep
            done.append(try driver.resume(&machine))
        }
        return done
    }
}
