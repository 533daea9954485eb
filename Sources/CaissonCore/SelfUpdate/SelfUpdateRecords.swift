/// Records of self-updates (issue 14): what `history list` shows and what the journal keeps.

public enum SelfUpdateStatus: String, Sendable, Codable, Equatable, CaseIterable {
    /// The new executable is being copied beside the installed one.
    case staging
    /// The staged executable is being test-run.
    case testing
    /// The store is being snapshotted.
    case snapshotting
    /// The executables are being swapped.
    case swapping
    /// Swapped; waiting for the new executable's first run to confirm it.
    case probation
    /// Putting the previous executable (and, if needed, the store snapshot) back.
    case rollingBack = "rolling_back"
    /// Installed and confirmed by its first run.
    case succeeded
    /// Refused or failed before the swap: the installed executable was never touched.
    case failed
    /// The previous executable is back (a failed first run, or `self-update --rollback`).
    case rolledBack = "rolled_back"
    /// The previous executable could not be put back: see the issues (the installed one still works).
    case rollbackFailed = "rollback_failed"

    public var isTerminal: Bool {
        switch self {
        case .succeeded, .failed, .rolledBack, .rollbackFailed: return true
        default: return false
        }
    }
}

/// One outcome of the test-run of a new executable.
public struct SelfUpdateCheck: Sendable, Codable, Equatable {
    public var name: String
    public var ok: Bool
    public var detail: String

    public init(name: String, ok: Bool, detail: String) {
        self.name = name
        self.ok = ok
        self.detail = detail
    }
}

/// One self-update (`kind` "update") or one `self-update --rollback` (`kind` "rollback").
public struct SelfUpdateRecord: Sendable, Codable, Equatable {
    public var selfUpdateID: String
    public var kind: String
    public var status: SelfUpdateStatus
    public var installPath: String
    public var previousPath: String
    /// The version installed before, and the one installed by this record.
    public var fromVersion: String
    public var toVersion: String
    public var fromSHA256: String?
    public var toSHA256: String?
    public var packagePath: String?
    public var validationAttemptID: String?
    /// For a rollback: the self-update it undoes.
    public var rollsBack: String?
    /// The store snapshot taken before the swap (kept while a rollback may need it).
    public var storeSnapshot: String?
    /// The store's schema version when the snapshot was taken (what the previous executable reads).
    public var storeSchemaVersion: Int?
    /// A rollback restored the store from its snapshot (and set the replaced database aside here).
    public var storeRestored: Bool?
    public var replacedStore: String?
    /// What the test-run and the first run established.
    public var checks: [SelfUpdateCheck]
    public var startedAt: String
    public var finishedAt: String?
    public var confirmedAt: String?
    public var issues: [Issue]
    /// Problems that did not change the outcome (a leftover file that could not be removed).
    public var notes: [String]

    public init(selfUpdateID: String, kind: String, status: SelfUpdateStatus, installPath: String, previousPath: String,
                fromVersion: String, toVersion: String, startedAt: String) {
        self.selfUpdateID = selfUpdateID
        self.kind = kind
        self.status = status
        self.installPath = installPath
        self.previousPath = previousPath
        self.fromVersion = fromVersion
        self.toVersion = toVersion
        self.checks = []
        self.startedAt = startedAt
        self.issues = []
        self.notes = []
    }

    enum CodingKeys: String, CodingKey {
        case selfUpdateID = "self_update_id"
        case kind, status
        case installPath = "install_path"
        case previousPath = "previous_path"
        case fromVersion = "from_version"
        case toVersion = "to_version"
        case fromSHA256 = "from_sha256"
        case toSHA256 = "to_sha256"
        case packagePath = "package_path"
        case validationAttemptID = "validation_attempt_id"
        case rollsBack = "rolls_back"
        case storeSnapshot = "store_snapshot"
        case storeSchemaVersion = "store_schema_version"
        case storeRestored = "store_restored"
        case replacedStore = "replaced_store"
        case checks
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case confirmedAt = "confirmed_at"
        case issues, notes
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        selfUpdateID = try c.decode(String.self, forKey: .selfUpdateID)
        kind = try c.decode(String.self, forKey: .kind)
        status = try c.decode(SelfUpdateStatus.self, forKey: .status)
        installPath = try c.decode(String.self, forKey: .installPath)
        previousPath = try c.decode(String.self, forKey: .previousPath)
        fromVersion = try c.decode(String.self, forKey: .fromVersion)
        toVersion = try c.decode(String.self, forKey: .toVersion)
        fromSHA256 = try c.decodeIfPresent(String.self, forKey: .fromSHA256)
        toSHA256 = try c.decodeIfPresent(String.self, forKey: .toSHA256)
        packagePath = try c.decodeIfPresent(String.self, forKey: .packagePath)
        validationAttemptID = try c.decodeIfPresent(String.self, forKey: .validationAttemptID)
        rollsBack = try c.decodeIfPresent(String.self, forKey: .rollsBack)
        storeSnapshot = try c.decodeIfPresent(String.self, forKey: .storeSnapshot)
        storeSchemaVersion = try c.decodeIfPresent(Int.self, forKey: .storeSchemaVersion)
        storeRestored = try c.decodeIfPresent(Bool.self, forKey: .storeRestored)
        replacedStore = try c.decodeIfPresent(String.self, forKey: .replacedStore)
        checks = try c.decodeIfPresent([SelfUpdateCheck].self, forKey: .checks) ?? []
        startedAt = try c.decode(String.self, forKey: .startedAt)
        finishedAt = try c.decodeIfPresent(String.self, forKey: .finishedAt)
        confirmedAt = try c.decodeIfPresent(String.self, forKey: .confirmedAt)
        issues = try c.decodeIfPresent([Issue].self, forKey: .issues) ?? []
        notes = try c.decodeIfPresent([String].self, forKey: .notes) ?? []
    }
}

/// Where a rollback finds what it needs, kept in `<state-dir>/self-update/rollback-point.json`
/// outside the database: the previous executable's identity and the store snapshot. It is also
/// the journal of a rollback in progress (`state` "rolling_back"), because restoring the store
/// replaces the database the rest of the journal lives in, and a Caisson too old for the current
/// store must still be able to roll back.
public struct SelfUpdateRollbackPoint: Sendable, Codable, Equatable {
    public enum State: String, Sendable, Codable, Equatable {
        case armed
        case rollingBack = "rolling_back"
    }

    public var selfUpdateID: String
    public var state: State
    /// The rollback in progress (its record id), when `state` is rolling_back.
    public var rollbackID: String?
    public var installPath: String
    public var previousPath: String
    /// Where the previous executable waits between the swap and its rename to `previousPath`.
    public var previousTempPath: String
    public var previousSHA256: String
    public var previousVersion: String
    public var newSHA256: String
    public var newVersion: String
    public var snapshotPath: String
    public var snapshotSchemaVersion: Int
    public var workDirectory: String
    public var createdAt: String
    /// Set by a Caisson too old for the store, which restores the snapshot before it can open the
    /// store: where it set the newer database aside.
    public var replacedStore: String?

    public init(selfUpdateID: String, state: State = .armed, rollbackID: String? = nil, installPath: String,
                previousPath: String, previousTempPath: String, previousSHA256: String, previousVersion: String,
                newSHA256: String, newVersion: String, snapshotPath: String, snapshotSchemaVersion: Int,
                workDirectory: String, createdAt: String) {
        self.selfUpdateID = selfUpdateID
        self.state = state
        self.rollbackID = rollbackID
        self.installPath = installPath
        self.previousPath = previousPath
        self.previousTempPath = previousTempPath
        self.previousSHA256 = previousSHA256
        self.previousVersion = previousVersion
        self.newSHA256 = newSHA256
        self.newVersion = newVersion
        self.snapshotPath = snapshotPath
        self.snapshotSchemaVersion = snapshotSchemaVersion
        self.workDirectory = workDirectory
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case selfUpdateID = "self_update_id"
        case state
        case rollbackID = "rollback_id"
        case installPath = "install_path"
        case previousPath = "previous_path"
        case previousTempPath = "previous_temp_path"
        case previousSHA256 = "previous_sha256"
        case previousVersion = "previous_version"
        case newSHA256 = "new_sha256"
        case newVersion = "new_version"
        case snapshotPath = "snapshot_path"
        case snapshotSchemaVersion = "snapshot_schema_version"
        case workDirectory = "work_directory"
        case createdAt = "created_at"
        case replacedStore = "replaced_store"
    }
}

/// A failed system call of the self-update seam: errno and what was being done.
public struct SystemCallError: Error, Sendable, Codable, Equatable, CustomStringConvertible {
    public var errno: Int32
    public var operation: String
    public var path: String
    public var message: String

    public init(errno: Int32, operation: String, path: String, message: String? = nil) {
        self.errno = errno
        self.operation = operation
        self.path = path
        self.message = message ?? ByteSourceError.describe(errno: errno)
    }

    public var description: String { "\(operation) \(path): \(message)" }
}

/// One run of an executable with a deadline (the test-run, the first run).
public struct SelfUpdateRun: Sendable, Codable, Equatable {
    public var executable: String
    public var arguments: [String]
    public var timeoutMillis: Int64

    public init(executable: String, arguments: [String], timeoutMillis: Int64) {
        self.executable = executable
        self.arguments = arguments
        self.timeoutMillis = timeoutMillis
    }
}

public struct SelfUpdateRunResult: Sendable, Codable, Equatable {
    public enum Outcome: Sendable, Codable, Equatable {
        case exited(Int32)
        case signalled(Int32)
        case timedOut
        /// The kernel refused to start it (errno: ENOEXEC for another CPU, ETXTBSY, EACCES…).
        case notStarted(Int32)
    }

    public var outcome: Outcome
    /// The start of its standard output and the end of its standard error.
    public var stdout: String
    public var stderr: String

    public init(outcome: Outcome, stdout: String = "", stderr: String = "") {
        self.outcome = outcome
        self.stdout = stdout
        self.stderr = stderr
    }
}

/// The bytes of the new executable inside the package.
public struct SelfUpdateSource: Sendable, Codable, Equatable {
    public var packagePath: String
    public var offset: Int64
    public var size: Int64
    public var sha256: String

    public init(packagePath: String, offset: Int64, size: Int64, sha256: String) {
        self.packagePath = packagePath
        self.offset = offset
        self.size = size
        self.sha256 = sha256
    }
}

/// The filesystem (and process) seam of the self-update machine: every call it makes, so a test
/// can run the machine against an in-memory install with faults at every call, and the CLI
/// against the real one. Every method that changes something is durable when it returns (files
/// and directories it creates are fsynced), except `rename`/`link`/`removeFile`, whose directory
/// is synced by an explicit `syncDirectory`.
public protocol SelfUpdateSystem: AnyObject {
    /// Free bytes for an unprivileged writer in `directory` (nil: unknown).
    func freeBytes(_ directory: String) throws(SystemCallError) -> Int64?
    /// Creates `path` (it must not exist; mode 0755) with the executable's bytes, checks their
    /// SHA-256 while writing and fsyncs the file. A failed write leaves no file behind.
    func writeExecutable(_ source: SelfUpdateSource, to path: String) throws(SystemCallError)
    func syncDirectory(_ path: String) throws(SystemCallError)
    /// SHA-256 of a regular file, nil when there is none at `path`.
    func digest(_ path: String) throws(SystemCallError) -> String?
    func run(_ run: SelfUpdateRun) -> SelfUpdateRunResult
    /// A consistent copy of the live store into the new file `path` (its directory created),
    /// fsynced; with `recordAfterRestore`, that record is written into the copy (what the store
    /// must say about this self-update if the copy is ever restored).
    func copyStore(to path: String, recordAfterRestore: SelfUpdateRecord?) throws(SystemCallError)
    /// The live store's schema version.
    func storeSchemaVersion() throws(SystemCallError) -> Int
    /// Replaces the live store's content with the snapshot's (SQLite backup; atomic).
    func restoreStore(from path: String) throws(SystemCallError)
    /// Removes a file; a missing one is fine.
    func removeFile(_ path: String) throws(SystemCallError)
    /// Removes a directory and what it holds; a missing one is fine.
    func removeTree(_ path: String) throws(SystemCallError)
    func link(_ from: String, _ to: String) throws(SystemCallError)
    /// Copies a file into the new file `to` (mode kept), fsynced.
    func copyFile(_ from: String, _ to: String) throws(SystemCallError)
    func rename(_ from: String, _ to: String) throws(SystemCallError)
    /// Writes (atomically and durably) or removes the rollback point.
    func writeRollbackPoint(_ point: SelfUpdateRollbackPoint?) throws(SystemCallError)
}
