/// What the update machine persists, and when: an intent entry before every side effect on the
/// host and an outcome entry after it, each written atomically with the attempt record, any audit
/// events and (on commit) the service state. Implemented by the SQLite store and, for the
/// simulator's swarm, by `InMemoryJournal`.
public protocol UpdateJournal: AnyObject {
    /// One atomic write (a single SQLite transaction). Must be durable when it returns.
    func write(_ write: JournalWrite) throws
    /// Attempts whose status is not terminal, oldest first, each with its latest machine snapshot.
    func inFlightAttempts() throws -> [InFlightAttempt]
    func serviceState(_ serviceName: String) throws -> ServiceState?
    /// The ids of every attempt (any status) of `serviceName` this journal holds: what this state
    /// directory owns on the host.
    func updateIDs(service serviceName: String) throws -> [String]
    /// Makes sure the journal has room for an attempt, before its first host change (a full disk
    /// fails here, when nothing is touched yet: `store.disk_full`).
    func reserveSpace() throws
}

public enum JournalPhase: String, Sendable, Codable, Equatable {
    /// Written before a side effect: "about to do `step`".
    case intent
    /// Written after it: what happened.
    case outcome
    /// A status change or note that is not tied to a host call.
    case note
}

/// Copies share one storage (an entry rides in a write through the journal and, in memory,
/// stays as the attempt's latest snapshot).
public struct JournalEntry: Sendable, Equatable {
    struct Fields: Sendable {
        var phase: JournalPhase
        var step: String
        var lazyDetail: Detail
        var machine: UpdateMachine
        var at: String
    }

    private var fields: CopyOnWrite<Fields>

    public var phase: JournalPhase {
        get { fields.value.phase }
        set { fields.value.phase = newValue }
    }
    /// A short machine-readable step name, e.g. `create_new`, `stop_old`, `health_poll`.
    public var step: String {
        get { fields.value.step }
        set { fields.value.step = newValue }
    }
    /// Human-readable detail: the command or the outcome. Rendered when read (a durable store
    /// reads it once; the swarm's in-memory journal usually never does).
    public var detail: String {
        get { fields.value.lazyDetail.text }
        set { fields.value.lazyDetail = .text(newValue) }
    }
    /// The machine's state after this entry. A durable store encodes it (`JSONCoding`, sorted
    /// keys); the in-memory journal keeps the value as it is, so the swarm pays no encoding.
    public var machine: UpdateMachine {
        _read { yield fields.value.machine }
        _modify { yield &fields.value.machine }
    }
    public var at: String {
        get { fields.value.at }
        set { fields.value.at = newValue }
    }

    /// The detail as text, or what it describes.
    enum Detail: Sendable {
        case text(String)
        /// `command.detail`.
        case command(UpdateMachine.Command)
        /// `reply.journalDescription`.
        case outcome(UpdateMachine.Reply)

        var text: String {
            switch self {
            case .text(let s): return s
            case .command(let c): return c.detail
            case .outcome(let r): return r.journalDescription
            }
        }
    }

    public init(phase: JournalPhase, step: String, detail: String, machine: UpdateMachine, at: String) {
        self.init(phase: phase, step: step, lazyDetail: .text(detail), machine: machine, at: at)
    }

    init(phase: JournalPhase, step: String, lazyDetail: Detail, machine: UpdateMachine, at: String) {
        fields = CopyOnWrite(Fields(phase: phase, step: step, lazyDetail: lazyDetail, machine: machine, at: at))
    }

    public static func == (lhs: JournalEntry, rhs: JournalEntry) -> Bool {
        lhs.phase == rhs.phase && lhs.step == rhs.step && lhs.at == rhs.at && lhs.detail == rhs.detail
            && lhs.machine == rhs.machine
    }

    /// The snapshot as stored on disk.
    public func encodedSnapshot() throws -> [UInt8] { try JSONCoding.encode(machine) }
}

public struct JournalWrite: Sendable, Equatable {
    /// Shared with the machine that wrote it (the driver writes at every step).
    var sharedAttempt: CopyOnWrite<UpdateAttempt>
    public var attempt: UpdateAttempt {
        _read { yield sharedAttempt.value }
        _modify { yield &sharedAttempt.value }
    }
    public var entry: JournalEntry?
    public var events: [AuditEvent]
    public var serviceState: ServiceState?
    public var candidateRelease: CandidateRelease?
    /// Failure evidence captured since the last write (stored once, beside the attempt).
    public var evidence: [FailureEvidence] = []

    public init(attempt: UpdateAttempt, entry: JournalEntry? = nil, events: [AuditEvent] = [],
                serviceState: ServiceState? = nil, candidateRelease: CandidateRelease? = nil) {
        self.init(sharedAttempt: CopyOnWrite(attempt), entry: entry, events: events, serviceState: serviceState,
                  candidateRelease: candidateRelease)
    }

    init(sharedAttempt: CopyOnWrite<UpdateAttempt>, entry: JournalEntry? = nil, events: [AuditEvent] = [],
         serviceState: ServiceState? = nil, candidateRelease: CandidateRelease? = nil) {
        self.sharedAttempt = sharedAttempt
        self.entry = entry
        self.events = events
        self.serviceState = serviceState
        self.candidateRelease = candidateRelease
    }
}

public struct InFlightAttempt: Sendable, Equatable {
    public var attempt: UpdateAttempt
    /// The machine of the latest journal entry (nil if none was written or it was unreadable).
    public var machine: UpdateMachine?
    /// Why the latest snapshot could not be read, if it could not.
    public var unreadable: String?
    /// The step of the latest journal entry (`stop_container`, `health_poll`, ...) and when it
    /// was written: what the attempt is doing now, if its process is alive.
    public var lastStep: String?
    public var lastStepAt: String?

    public init(attempt: UpdateAttempt, machine: UpdateMachine?, unreadable: String? = nil,
                lastStep: String? = nil, lastStepAt: String? = nil) {
        self.attempt = attempt
        self.machine = machine
        self.unreadable = unreadable
        self.lastStep = lastStep
        self.lastStepAt = lastStepAt
    }
}

/// A journal in memory: for the simulator, the swarm and tests. Survives a simulated crash of the
/// updater because it is a separate object from the machine and driver.
public final class InMemoryJournal: UpdateJournal {
    /// Every attempt written, oldest first.
    public var attempts: [UpdateAttempt] { stored.map(\.value) }
    @exclusivity(unchecked) private var stored: [CopyOnWrite<UpdateAttempt>] = []
    // `@exclusivity(unchecked)`: a journal is used from one thread at a time (it is not
    // Sendable) and is written at every step of the swarm.
    @exclusivity(unchecked) public private(set) var entries: [(updateID: String, entry: JournalEntry)] = []
    /// Keep every entry (for inspection); when false only the latest machine per attempt is
    /// kept, which is all recovery needs (the swarm runs this way).
    @exclusivity(unchecked) public var keepEntries = true
    /// The latest machine of each attempt, by the attempt's index in `attempts`.
    @exclusivity(unchecked) private var latest: [JournalEntry?] = []
    @exclusivity(unchecked) public private(set) var events: [AuditEvent] = []
    @exclusivity(unchecked) public private(set) var states: [ServiceState] = []
    @exclusivity(unchecked) public private(set) var releases: [CandidateRelease] = []
    /// Every failure evidence written, in order.
    @exclusivity(unchecked) public private(set) var evidence: [FailureEvidence] = []
    /// Number of writes so far (crash points are counted in writes).
    @exclusivity(unchecked) public private(set) var writeCount = 0
    /// When set, the write with this index (0-based) throws `SimulatedCrash` *after* being
    /// persisted (the process dies right after the durable write) — or, with `before`, instead of it.
    @exclusivity(unchecked) public var crashAtWrite: Int?
    @exclusivity(unchecked) public var crashBeforeWrite = false
    /// Called after each durable write with its index, before a crash planned at that write
    /// strikes: the harness runs a second Caisson process or delivers a signal there.
    @exclusivity(unchecked) public var afterWrite: ((Int) throws -> Void)?
    /// A full state disk (or a deleted state database): from the write with this index on,
    /// writes fail with `storageFailure` and change nothing, except that the first
    /// `reserveWrites` of them still succeed (the store's reserve, released when the disk is full).
    @exclusivity(unchecked) public var failFromWrite: Int?
    @exclusivity(unchecked) public var reserveWrites = 0
    @exclusivity(unchecked) public var storageFailure = CaissonError("store.disk_full", "the disk holding the state database is full (simulated)")
    /// `reserveSpace()` fails: the disk is already too full when the update starts.
    @exclusivity(unchecked) public var reserveFails = false
    /// Writes refused by `failFromWrite`.
    @exclusivity(unchecked) public private(set) var failedWrites = 0

    public init() {}

    public func write(_ write: JournalWrite) throws {
        let index = writeCount
        writeCount += 1
        if crashAtWrite == index && crashBeforeWrite { throw SimulatedCrash(writeIndex: index) }
        if let from = failFromWrite, index >= from {
            if reserveWrites > 0 {
                reserveWrites -= 1
            } else {
                failedWrites += 1
                throw storageFailure
            }
        }
        let i: Int
        if let found = stored.firstIndex(where: { $0.value.updateID == write.attempt.updateID }) {
            i = found
            stored[i] = write.sharedAttempt
        } else {
            i = stored.count
            stored.append(write.sharedAttempt)
            latest.append(nil)
        }
        if let e = write.entry {
            latest[i] = e
            if keepEntries { entries.append((write.attempt.updateID, e)) }
        }
        events.append(contentsOf: write.events)
        if !write.evidence.isEmpty { evidence.append(contentsOf: write.evidence) }
        if let s = write.serviceState {
            if let i = states.firstIndex(where: { $0.serviceName == s.serviceName }) { states[i] = s } else { states.append(s) }
        }
        if let r = write.candidateRelease {
            if let i = releases.firstIndex(where: { $0.candidateReleaseID == r.candidateReleaseID }) { releases[i] = r } else { releases.append(r) }
        }
        if let afterWrite { try afterWrite(index) }
        if crashAtWrite == index && !crashBeforeWrite { throw SimulatedCrash(writeIndex: index) }
    }

    public func inFlightAttempts() throws -> [InFlightAttempt] {
        stored.indices.filter { !stored[$0].value.status.isTerminal }.map { i in
            InFlightAttempt(attempt: stored[i].value, machine: latest[i]?.machine, lastStep: latest[i]?.step,
                            lastStepAt: latest[i]?.at)
        }
    }

    public func serviceState(_ serviceName: String) throws -> ServiceState? {
        states.first { $0.serviceName == serviceName }
    }

    public func reserveSpace() throws {
        if reserveFails { throw storageFailure }
    }

    public func updateIDs(service serviceName: String) throws -> [String] {
        stored.filter { $0.value.serviceName == serviceName }.map(\.value.updateID)
    }

    public func setServiceState(_ state: ServiceState) {
        if let i = states.firstIndex(where: { $0.serviceName == state.serviceName }) { states[i] = state } else { states.append(state) }
    }
}

/// Thrown by test journals and the simulator to model the updater process dying.
public struct SimulatedCrash: Error, Sendable, Equatable {
    public var writeIndex: Int
    public init(writeIndex: Int) { self.writeIndex = writeIndex }
}
