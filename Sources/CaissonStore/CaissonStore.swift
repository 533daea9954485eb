#if canImport(Glibc)
import Glibc
#endif
import CaissonCore
import CSQLite
import Foundation

/// Caisson's persistent state: `<state-dir>/caisson.db`, one SQLite database in WAL mode with
/// `synchronous=FULL`, so every committed write survives a crash or a power cut and a half-written
/// one is rolled back when the database is next opened.
///
/// Records are stored as a few typed columns (what is queried) plus the full record as JSON with
/// sorted keys. A record whose JSON cannot be decoded is skipped by list methods and reported in
/// `RecordList.unreadable`; single lookups throw `store.unreadable_record`.
///
/// One instance owns one SQLite connection: use it from one thread (or task) at a time. Other
/// processes may open the same file; writers wait up to the busy timeout for each other.
public final class CaissonStore {
    public static let databaseFileName = "caisson.db"
    /// The schema version this build writes (`PRAGMA user_version`).
    public static var schemaVersion: Int { Schema.currentVersion }

    public let stateDirectory: String
    public let databasePath: String
    let db: SQLiteDatabase
    let encoder: JSONEncoder
    let decoder = JSONDecoder()

    /// Opens (creating if needed) `<stateDirectory>/caisson.db`. The directory is created with mode
    /// 0700 if missing. Throws `store.open_failed`, `store.corrupt`, `store.schema_too_new`,
    /// `store.not_caisson`, `store.busy`.
    ///
    /// The state directory is the device's memory, so opening also refuses: a directory another
    /// user owns or its group or everyone may write (`state.foreign_owner`,
    /// `state.unsafe_permissions`); a `caisson.db` that is a symbolic link (`state.unsafe_entry`)
    /// or empty (`store.truncated`: a fresh store is never 0 bytes, it is created whole and
    /// renamed into place); a database that fails SQLite's `quick_check` (`store.corrupt`).
    /// Every write then first checks that the file is still the one opened (`store.gone`).
    public init(stateDirectory: String, busyTimeoutMilliseconds: Int32 = 5000) throws {
        try FileSystem.makeDirectory(stateDirectory)
        try StateDirectory.checkOwnership(stateDirectory)
        self.stateDirectory = stateDirectory
        let path = FileSystem.joined(stateDirectory, Self.databaseFileName)
        self.databasePath = path
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        self.encoder = encoder
        try Self.createIfMissing(path)
        do {
            db = try SQLiteDatabase(path: path, create: false, noFollow: true, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        } catch {
            throw StoreErrors.map(error, databasePath: path, doing: "opening it")
        }
        var st = stat()
        guard stat(path, &st) == 0 else {
            let e = errno
            throw CaissonError("store.gone", "the state database \(path) disappeared while it was opened: \(FileSystem.errnoText(e))")
        }
        identity = (UInt64(st.st_dev), UInt64(st.st_ino))
        try StoreErrors.wrap(path, "opening it") { try prepareSchema() }
        let problems = try integrityProblems()
        if !problems.isEmpty {
            throw StoreErrors.corrupt(databasePath: path, cause: "quick_check: " + problems.prefix(5).joined(separator: "; "))
        }
    }

    /// The file opened (device, inode): a write checks the path still names it.
    let identity: (device: UInt64, inode: UInt64)

    /// Creates `path` as a whole, empty Caisson database (written under another name, then
    /// renamed into place) when nothing is there; refuses a link, an empty file, or a missing one
    /// whose `-wal`/`-shm` files remain (`store.gone`: it was deleted).
    static func createIfMissing(_ path: String) throws {
        var st = stat()
        if lstat(path, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFLNK {
                throw CaissonError("state.unsafe_entry", "\(path) is a symbolic link; Caisson never follows links inside its state directory. Move the real database into the state directory.")
            }
            if (st.st_mode & S_IFMT) == S_IFREG && st.st_size == 0 {
                throw CaissonError("store.truncated",
                                   "the state database \(path) is empty (0 bytes): it was truncated, not created fresh (Caisson creates a store whole). "
                                       + "This device's history, previous known-good releases and downgrade floor are lost from it; restore it "
                                       + "from a backup, or move it aside (with its -wal and -shm files) to start a new history knowing that.")
            }
            return
        }
        guard errno == ENOENT else {
            let e = errno
            throw CaissonError("store.open_failed", "cannot examine the state database \(path): \(FileSystem.errnoText(e))")
        }
        // SQLite never leaves a write-ahead log without its database: the database was deleted
        // (by hand, or by a tool cleaning the directory) after a Caisson ended without closing it.
        // Its history is gone; a fresh store here would also be fed that orphan log.
        for suffix in ["-wal", "-shm"] where lstat(path + suffix, &st) == 0 {
            throw CaissonError("store.gone",
                               "the state database \(path) is missing but its \(suffix) file is there: the database was deleted. "
                                   + "This device's history, previous known-good releases and downgrade floor went with it. Restore "
                                   + "the state directory from a backup, or move \(Paths.lastComponent(of: path))\(suffix) aside to start "
                                   + "a new history knowing that.")
        }
        let fresh = path + ".new"
        unlink(fresh)
        do {
            let db = try SQLiteDatabase(path: fresh, create: true, noFollow: true)
            // Page 1 written: a header that says "Caisson", no tables yet (the migrations follow).
            try db.execute("PRAGMA application_id = \(Schema.applicationID)")
            db.close()
        } catch {
            unlink(fresh)
            throw StoreErrors.map(error, databasePath: path, doing: "creating it")
        }
        let fd = open(fresh, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd >= 0 { _ = fsync(fd); Glibc.close(fd) }
        guard rename(fresh, path) == 0 else {
            let e = errno
            unlink(fresh)
            throw CaissonError("store.open_failed", "cannot create the state database \(path): \(FileSystem.errnoText(e))")
        }
        let dfd = open(Paths.directory(of: path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); Glibc.close(dfd) }
    }

    /// Refuses to write when the database was deleted, replaced or emptied since it was opened
    /// (`store.gone`): the connection would go on writing into a file nobody will ever read.
    func ensureAlive(_ doing: String) throws {
        var st = stat()
        let what: String
        if stat(databasePath, &st) != 0 {
            what = "was deleted (\(FileSystem.errnoText(errno)))"
        } else if UInt64(st.st_dev) != identity.device || UInt64(st.st_ino) != identity.inode {
            what = "was replaced by another file"
        } else if st.st_size == 0 {
            what = "was emptied (0 bytes)"
        } else {
            return
        }
        throw CaissonError("store.gone",
                           "the state database \(databasePath) \(what) while Caisson was \(doing): this device's history, previous "
                               + "known-good releases and downgrade floor went with it, and nothing more is written there. Restore the "
                               + "state directory from a backup, or start a new one knowing that.")
    }

    /// Closes the connection. Later calls fail with a `store.*` error. Idempotent.
    public func close() {
        db.close()
    }

    private func prepareSchema() throws {
        // The first read of the file: a garbage or truncated file fails here (SQLITE_NOTADB).
        let version = Int(try db.scalar("PRAGMA user_version").integerValue ?? 0)
        let applicationID = Int32(truncatingIfNeeded: try db.scalar("PRAGMA application_id").integerValue ?? 0)
        if applicationID != 0 && applicationID != Schema.applicationID {
            throw notCaisson()
        }
        if version > Schema.currentVersion {
            throw CaissonError(
                "store.schema_too_new",
                "the state database \(databasePath) was written by a newer Caisson (schema version "
                    + "\(version); this build understands up to \(Schema.currentVersion)). Nothing was "
                    + "changed: run the newer Caisson, or upgrade this one.")
        }
        if version == 0 {
            let objects = try db.scalar("SELECT count(*) FROM sqlite_master").integerValue ?? 0
            if objects > 0 { throw notCaisson() }
        }

        let mode = try db.scalar("PRAGMA journal_mode=WAL").textValue?.lowercased()
        guard mode == "wal" else {
            throw CaissonError(
                "store.open_failed",
                "the state database \(databasePath) cannot use write-ahead logging (journal mode "
                    + "stayed \(mode ?? "unknown")); put the state directory on a local file system.")
        }
        try db.execute("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")

        for migration in Schema.effective where migration.version > version {
            try db.transaction {
                // Another process may have migrated while we waited for the write lock.
                let now = Int(try db.scalar("PRAGMA user_version").integerValue ?? 0)
                guard now < migration.version else { return }
                try db.execute(migration.sql)
                if migration.adoptsRecords { try adoptRecordsIntoChain() }
                try db.execute("PRAGMA user_version = \(migration.version)")
            }
        }
    }

    private func notCaisson() -> CaissonError {
        CaissonError(
            "store.not_caisson",
            "\(databasePath) is an SQLite database that Caisson did not create; refusing to change it. "
                + "Point --state-dir at another directory, or move that file away.")
    }

    /// The connection settings in effect.
    public func settings() throws -> StoreSettings {
        try StoreErrors.wrap(databasePath, "reading its settings") {
            StoreSettings(
                journalMode: try db.scalar("PRAGMA journal_mode").textValue ?? "",
                synchronous: Int(try db.scalar("PRAGMA synchronous").integerValue ?? -1),
                foreignKeys: try db.scalar("PRAGMA foreign_keys").integerValue == 1,
                busyTimeoutMilliseconds: Int(try db.scalar("PRAGMA busy_timeout").integerValue ?? -1),
                schemaVersion: Int(try db.scalar("PRAGMA user_version").integerValue ?? -1))
        }
    }

    /// SQLite's `PRAGMA quick_check`: an empty array when the file is sound, else its complaints
    /// (a check that itself hits damage reports it rather than throwing).
    /// With `full`, `PRAGMA integrity_check` (also checks indexes against their tables; slower).
    public func integrityProblems(full: Bool = false) throws -> [String] {
        do {
            let rows = try db.query(full ? "PRAGMA integrity_check" : "PRAGMA quick_check") { $0.text(0) }
            return rows == ["ok"] ? [] : rows
        } catch let error as SQLiteError where error.isCorrupt {
            return [error.message]
        } catch let error as SQLiteError {
            throw StoreErrors.map(error, databasePath: databasePath, doing: "checking its integrity")
        }
    }

    // MARK: - JSON

    func encode<T: Encodable>(_ value: T, _ kind: String) throws -> String {
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch {
            throw CaissonError("store.encode_failed", "could not encode the \(kind) for storage: \(error)")
        }
    }

    func decode<T: Decodable>(_ type: T.Type, _ bytes: [UInt8]) -> Result<T, UnreadableReason> {
        do {
            return .success(try decoder.decode(T.self, from: Data(bytes)))
        } catch let DecodingError.dataCorrupted(context) {
            return .failure(UnreadableReason("invalid JSON: \(context.debugDescription)"))
        } catch let DecodingError.keyNotFound(key, _) {
            return .failure(UnreadableReason("missing field \(key.stringValue)"))
        } catch let DecodingError.typeMismatch(_, context) {
            return .failure(UnreadableReason("wrong type at \(Self.codingPath(context.codingPath)): "
                                                 + context.debugDescription))
        } catch let DecodingError.valueNotFound(_, context) {
            return .failure(UnreadableReason("missing value at \(Self.codingPath(context.codingPath))"))
        } catch {
            return .failure(UnreadableReason("\(error)"))
        }
    }

    private static func codingPath(_ path: [any CodingKey]) -> String {
        path.isEmpty ? "top level" : path.map(\.stringValue).joined(separator: ".")
    }

    struct UnreadableReason: Error {
        var text: String
        init(_ text: String) { self.text = text }
    }

    /// Rows of (key, JSON record) decoded into a `RecordList`.
    func readList<T: Decodable>(_ type: T.Type, kind: String, _ sql: String,
                                _ values: [SQLiteValue] = []) throws -> RecordList<T> {
        let rows = try db.query(sql, values) { ($0.text(0), $0.blob(1)) }
        var list = RecordList<T>()
        for (key, json) in rows {
            switch decode(T.self, json) {
            case .success(let record): list.records.append(record)
            case .failure(let reason):
                list.unreadable.append(UnreadableRecord(kind: kind, key: key, reason: reason.text))
            }
        }
        return list
    }

    /// One (key, JSON record) row decoded; a damaged record throws `store.unreadable_record`.
    func readOne<T: Decodable>(_ type: T.Type, kind: String, _ sql: String,
                               _ values: [SQLiteValue]) throws -> T? {
        let list = try readList(T.self, kind: kind, sql, values)
        if let bad = list.unreadable.first { throw CaissonError(bad.issue.code, bad.message) }
        return list.records.first
    }

    /// Records of `table`, newest first (by insertion order, never by timestamp strings),
    /// optionally only those of one service. Table and column names are ours, never input.
    func newestFirst<T: Decodable>(_ type: T.Type, kind: String, table: String, idColumn: String,
                                   service: String?, limit: Int?) throws -> RecordList<T> {
        let filter = service == nil ? "" : " WHERE service_name = ?"
        let binds: [SQLiteValue] = (service.map { [.text($0)] } ?? []) + [Self.limitValue(limit)]
        return try readList(type, kind: kind,
                            "SELECT \(idColumn), record FROM \(table)\(filter) ORDER BY row_id DESC LIMIT ?", binds)
    }

    static func limitValue(_ limit: Int?) -> SQLiteValue {
        guard let limit else { return .integer(-1) }
        return .integer(Int64(max(0, limit)))
    }

    // MARK: - Validation records

    /// Inserts or replaces the validation record with this id.
    public func recordValidation(_ record: ValidationRecord) throws {
        try ensureAlive("recording a validation")
        let json = try encode(record, "validation record")
        try StoreErrors.wrap(databasePath, "recording a validation") {
            try db.run("""
                INSERT INTO validations (validation_attempt_id, status, service_name, package_path,
                                         started_at, finished_at, record)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (validation_attempt_id) DO UPDATE SET
                    status = excluded.status, service_name = excluded.service_name,
                    package_path = excluded.package_path, started_at = excluded.started_at,
                    finished_at = excluded.finished_at, record = excluded.record
                """,
                [.text(record.validationAttemptID), .text(record.status.rawValue),
                 .optional(record.serviceName), .text(record.packagePath), .text(record.startedAt),
                 .text(record.finishedAt), .text(json)])
        }
    }

    public func validation(_ validationAttemptID: String) throws -> ValidationRecord? {
        try StoreErrors.wrap(databasePath, "reading a validation record") {
            try readOne(ValidationRecord.self, kind: "validation record",
                        "SELECT validation_attempt_id, record FROM validations WHERE validation_attempt_id = ?",
                        [.text(validationAttemptID)])
        }
    }

    /// Validation records, newest first.
    public func validations(service: String? = nil, limit: Int? = nil) throws -> RecordList<ValidationRecord> {
        try StoreErrors.wrap(databasePath, "reading validation records") {
            try newestFirst(ValidationRecord.self, kind: "validation record", table: "validations",
                            idColumn: "validation_attempt_id", service: service, limit: limit)
        }
    }

    // MARK: - Image import records

    /// Inserts or replaces the import record with this id.
    public func recordImport(_ record: ImageImportRecord) throws {
        try ensureAlive("recording an image import")
        let json = try encode(record, "image import record")
        try StoreErrors.wrap(databasePath, "recording an image import") {
            try db.run("""
                INSERT INTO image_imports (import_id, validation_attempt_id, service_name, status,
                                           started_at, record)
                VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (import_id) DO UPDATE SET
                    validation_attempt_id = excluded.validation_attempt_id,
                    service_name = excluded.service_name, status = excluded.status,
                    started_at = excluded.started_at, record = excluded.record
                """,
                [.text(record.importID), .optional(record.validationAttemptID), .text(record.serviceName),
                 .text(record.status), .text(record.startedAt), .text(json)])
        }
    }

    public func imageImport(_ importID: String) throws -> ImageImportRecord? {
        try StoreErrors.wrap(databasePath, "reading an image import record") {
            try readOne(ImageImportRecord.self, kind: "image import record",
                        "SELECT import_id, record FROM image_imports WHERE import_id = ?", [.text(importID)])
        }
    }

    /// Import records, newest first.
    public func imageImports(service: String? = nil, limit: Int? = nil) throws -> RecordList<ImageImportRecord> {
        try StoreErrors.wrap(databasePath, "reading image import records") {
            try newestFirst(ImageImportRecord.self, kind: "image import record", table: "image_imports",
                            idColumn: "import_id", service: service, limit: limit)
        }
    }

    // MARK: - Candidate releases

    /// Inserts or replaces the candidate release with this id (the journal also writes them).
    public func recordCandidateRelease(_ release: CandidateRelease) throws {
        try ensureAlive("recording a candidate release")
        try StoreErrors.wrap(databasePath, "recording a candidate release") {
            try upsertCandidateRelease(release)
        }
    }

    func upsertCandidateRelease(_ release: CandidateRelease) throws {
        let json = try encode(release, "candidate release")
        try db.run("""
            INSERT INTO candidate_releases (candidate_release_id, service_name, package_version, image_id,
                                            validation_attempt_id, created_at, record)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (candidate_release_id) DO UPDATE SET
                service_name = excluded.service_name, package_version = excluded.package_version,
                image_id = excluded.image_id, validation_attempt_id = excluded.validation_attempt_id,
                created_at = excluded.created_at, record = excluded.record
            """,
            [.text(release.candidateReleaseID), .text(release.serviceName), .text(release.packageVersion),
             .text(release.imageID), .optional(release.validationAttemptID), .text(release.createdAt),
             .text(json)])
    }

    public func candidateRelease(_ candidateReleaseID: String) throws -> CandidateRelease? {
        try StoreErrors.wrap(databasePath, "reading a candidate release") {
            try readOne(CandidateRelease.self, kind: "candidate release",
                        "SELECT candidate_release_id, record FROM candidate_releases WHERE candidate_release_id = ?",
                        [.text(candidateReleaseID)])
        }
    }

    /// A service's candidate releases, newest first.
    public func candidateReleases(service: String) throws -> RecordList<CandidateRelease> {
        try StoreErrors.wrap(databasePath, "reading candidate releases") {
            try readList(CandidateRelease.self, kind: "candidate release", """
                SELECT candidate_release_id, record FROM candidate_releases WHERE service_name = ?
                ORDER BY row_id DESC
                """, [.text(service)])
        }
    }

    // MARK: - Service states

    public func serviceState(_ serviceName: String) throws -> ServiceState? {
        try StoreErrors.wrap(databasePath, "reading a service state") {
            try readOne(ServiceState.self, kind: "service state",
                        "SELECT service_name, record FROM service_states WHERE service_name = ?",
                        [.text(serviceName)])
        }
    }

    public func setServiceState(_ state: ServiceState) throws {
        try ensureAlive("recording a service state")
        try StoreErrors.wrap(databasePath, "recording a service state") {
            try db.transaction { try upsertServiceState(state) }
        }
    }

    /// With its link in the record chain; inside a write transaction.
    func upsertServiceState(_ state: ServiceState) throws {
        let json = try encode(state, "service state")
        try db.run("""
            INSERT INTO service_states (service_name, updated_at, record) VALUES (?, ?, ?)
            ON CONFLICT (service_name) DO UPDATE SET updated_at = excluded.updated_at, record = excluded.record
            """, [.text(state.serviceName), .text(state.updatedAt), .text(json)])
        try linkRecord(kind: RecordChain.serviceState, key: state.serviceName, json: json)
    }

    /// All service states, sorted by service name (bytewise).
    public func serviceStates() throws -> RecordList<ServiceState> {
        try StoreErrors.wrap(databasePath, "reading service states") {
            try readList(ServiceState.self, kind: "service state",
                         "SELECT service_name, record FROM service_states ORDER BY service_name")
        }
    }
}
