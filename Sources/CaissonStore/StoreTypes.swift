import CaissonCore

/// A stored record that could not be decoded (damaged, or written by a newer Caisson). Lists skip
/// it and report it here, so one bad row never breaks `history` or recovery.
public struct UnreadableRecord: Sendable, Equatable, CustomStringConvertible {
    /// What kind of record: `update attempt`, `validation record`, `audit event`, …
    public var kind: String
    /// Its key (id, service name or sequence number).
    public var key: String
    /// Why it could not be read (the decoder's complaint).
    public var reason: String

    public init(kind: String, key: String, reason: String) {
        self.kind = kind
        self.key = key
        self.reason = reason
    }

    /// A sentence for the operator.
    public var message: String {
        "skipped \(kind) \(key): its stored data could not be read (\(reason)); it may be damaged or "
            + "written by a newer Caisson. The other records are unaffected."
    }

    public var issue: Issue { Issue("store.unreadable_record", message) }
    public var description: String { message }
}

/// Records read from a table plus the ones skipped as unreadable.
public struct RecordList<Record> {
    public var records: [Record]
    public var unreadable: [UnreadableRecord]

    public init(records: [Record] = [], unreadable: [UnreadableRecord] = []) {
        self.records = records
        self.unreadable = unreadable
    }
}

extension RecordList: Sendable where Record: Sendable {}
extension RecordList: Equatable where Record: Equatable {}

/// A journal entry as stored: its per-attempt sequence number (1, 2, …), content and the
/// machine snapshot as written (JSON, sorted keys).
public struct StoredJournalEntry: Sendable, Equatable {
    public var updateID: String
    public var seq: Int
    public var phase: JournalPhase
    public var step: String
    public var detail: String
    public var snapshot: [UInt8]
    public var at: String

    public init(updateID: String, seq: Int, phase: JournalPhase, step: String, detail: String,
                snapshot: [UInt8], at: String) {
        self.updateID = updateID
        self.seq = seq
        self.phase = phase
        self.step = step
        self.detail = detail
        self.snapshot = snapshot
        self.at = at
    }

    /// Decodes the snapshot; throws `store.unreadable_record` if it is damaged.
    public func machine() throws -> UpdateMachine {
        do {
            return try JSONCoding.decode(UpdateMachine.self, from: snapshot)
        } catch {
            let note = UnreadableRecord(kind: "journal snapshot", key: "\(updateID)#\(seq)", reason: "\(error)")
            throw CaissonError(note.issue.code, note.message)
        }
    }
}

/// An audit event as stored: its place in the log and its link in the hash chain.
public struct StoredAuditEvent: Sendable, Equatable {
    public var seq: Int64
    public var event: AuditEvent
    /// SHA-256 of the previous event's hash and this event's canonical bytes, lowercase hex.
    public var hash: String

    public init(seq: Int64, event: AuditEvent, hash: String) {
        self.seq = seq
        self.event = event
        self.hash = hash
    }
}

/// Why the audit chain is broken at an event.
public enum AuditChainBreakReason: Sendable, Equatable {
    /// The event's content no longer matches its hash.
    case editedContent
    /// Events are missing before this one (`missingFrom...missingTo` were deleted).
    case gap(missingFrom: Int64, missingTo: Int64)
    /// The event does not link to the event before it (moved, swapped or inserted).
    case reordered
    /// The log ends before the recorded head: the newest events were deleted (or the head edited).
    case truncated(headSeq: Int64)
    /// The first event does not start the chain.
    case badStart
    /// The recorded head does not match the last event (the head or the newest events were edited).
    case headMismatch
}

public struct AuditChainBreak: Sendable, Equatable, CustomStringConvertible {
    /// The sequence number where the chain breaks (for `.truncated`, the last event present).
    public var seq: Int64
    public var reason: AuditChainBreakReason

    public init(seq: Int64, reason: AuditChainBreakReason) {
        self.seq = seq
        self.reason = reason
    }

    public var description: String {
        switch reason {
        case .editedContent:
            return "audit event \(seq) was edited after it was written (its content does not match its hash)"
        case .gap(let from, let to):
            return from == to
                ? "audit event \(from) was deleted (the log jumps to \(seq))"
                : "audit events \(from)–\(to) were deleted (the log jumps to \(seq))"
        case .reordered:
            return "audit event \(seq) does not follow the event before it (events were reordered, "
                + "inserted or replaced)"
        case .truncated(let head):
            return "the audit log ends at event \(seq) but \(head) events were written: the newest "
                + "events were deleted"
        case .badStart:
            return "audit event \(seq) does not start the chain (earlier events were deleted or replaced)"
        case .headMismatch:
            return "the audit log's recorded head does not match its last event \(seq) (the newest "
                + "events or the head were edited)"
        }
    }
}

/// The result of `verifyAuditChain()`.
public struct AuditChainReport: Sendable, Equatable {
    /// Events whose hash and link were checked and found good (up to the first break).
    public var checked: Int
    /// The first broken link, or nil when the whole log is intact.
    public var firstBreak: AuditChainBreak?

    public init(checked: Int, firstBreak: AuditChainBreak?) {
        self.checked = checked
        self.firstBreak = firstBreak
    }

    public var isIntact: Bool { firstBreak == nil }
}

/// A package file staged in the state directory for validation and import.
public struct StagedPackage: Sendable, Codable, Equatable {
    public var packageID: String
    /// Where the staged copy lives.
    public var path: String
    public var originalPath: String?
    public var size: Int64?
    public var sha256: String?
    public var serviceName: String?
    public var validationAttemptID: String?
    public var stagedAt: String

    public init(packageID: String, path: String, originalPath: String? = nil, size: Int64? = nil,
                sha256: String? = nil, serviceName: String? = nil, validationAttemptID: String? = nil,
                stagedAt: String) {
        self.packageID = packageID
        self.path = path
        self.originalPath = originalPath
        self.size = size
        self.sha256 = sha256
        self.serviceName = serviceName
        self.validationAttemptID = validationAttemptID
        self.stagedAt = stagedAt
    }

    enum CodingKeys: String, CodingKey {
        case packageID = "package_id"
        case path
        case originalPath = "original_path"
        case size
        case sha256
        case serviceName = "service_name"
        case validationAttemptID = "validation_attempt_id"
        case stagedAt = "staged_at"
    }
}

/// The connection settings actually in effect (for `doctor`-style output and tests).
public struct StoreSettings: Sendable, Equatable {
    public var journalMode: String
    /// 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
    public var synchronous: Int
    public var foreignKeys: Bool
    public var busyTimeoutMilliseconds: Int
    public var schemaVersion: Int
}
