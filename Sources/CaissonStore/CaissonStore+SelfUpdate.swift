import CaissonCore
import CSQLite
#if canImport(Glibc)
import Glibc
#endif

/// Self-updates (issue 14): their records and journal, the store snapshot a rollback restores,
/// and the restore itself.
extension CaissonStore: SelfUpdateJournal {
    /// One atomic, durable write: the record, a journal entry (with the machine's snapshot), the
    /// status of the record a rollback undoes, and the audit events.
    public func write(_ write: SelfUpdateJournalWrite) throws {
        let snapshot: [UInt8]?
        do {
            snapshot = try write.machine.map { try JSONCoding.encode($0) }
        } catch {
            throw CaissonError("store.encode_failed", "could not encode the self-update machine for storage: \(error)")
        }
        try StoreErrors.wrap(databasePath, "writing the self-update journal") {
            try db.transaction {
                try upsertSelfUpdate(write.record)
                try db.run("""
                    INSERT INTO self_update_journal (self_update_id, seq, phase, step, detail, snapshot, at)
                    VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM self_update_journal WHERE self_update_id = ?1),
                            ?2, ?3, ?4, ?5, ?6)
                    """,
                    [.text(write.record.selfUpdateID), .text(write.phase.rawValue), .text(write.step),
                     .text(write.detail), snapshot.map { .blob($0) } ?? .null, .text(write.at)])
                if let related = write.relatedStatus, let target = write.record.rollsBack,
                   var other = try readOne(SelfUpdateRecord.self, kind: "self-update",
                                           "SELECT self_update_id, record FROM self_updates WHERE self_update_id = ?", [.text(target)]) {
                    other.status = related
                    try upsertSelfUpdate(other)
                }
                try appendAuditInTransaction(write.events)
            }
        }
    }

    func upsertSelfUpdate(_ r: SelfUpdateRecord) throws {
        let json = try encode(r, "self-update record")
        try db.run("""
            INSERT INTO self_updates (self_update_id, kind, status, started_at, finished_at, record)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (self_update_id) DO UPDATE SET
                kind = excluded.kind, status = excluded.status, started_at = excluded.started_at,
                finished_at = excluded.finished_at, record = excluded.record
            """,
            [.text(r.selfUpdateID), .text(r.kind), .text(r.status.rawValue), .text(r.startedAt),
             .optional(r.finishedAt), .text(json)])
    }

    /// Self-updates not finished, oldest first, each with the machine of its latest journal entry.
    public func inFlightSelfUpdates() throws -> [InFlightSelfUpdate] {
        let terminal = SelfUpdateStatus.allCases.filter(\.isTerminal).map { SQLiteValue.text($0.rawValue) }
        let marks = Array(repeating: "?", count: terminal.count).joined(separator: ", ")
        return try StoreErrors.wrap(databasePath, "reading unfinished self-updates") {
            let rows = try db.query("""
                SELECT s.self_update_id, s.record,
                       (SELECT j.snapshot FROM self_update_journal j WHERE j.self_update_id = s.self_update_id
                        AND j.snapshot IS NOT NULL ORDER BY j.seq DESC LIMIT 1)
                FROM self_updates s WHERE s.status NOT IN (\(marks)) ORDER BY s.row_id
                """, terminal) { ($0.text(0), $0.blob(1), $0.optionalBlob(2)) }
            var out: [InFlightSelfUpdate] = []
            for (id, json, snapshot) in rows {
                guard case .success(let record) = decode(SelfUpdateRecord.self, json) else {
                    throw CaissonError("store.unreadable_record", "the record of self-update \(id) cannot be read; the self-update cannot be recovered automatically")
                }
                var machine: SelfUpdateMachine?
                var unreadable: String?
                if let snapshot {
                    switch decode(SelfUpdateMachine.self, snapshot) {
                    case .success(let m): machine = m
                    case .failure(let why): unreadable = why.text
                    }
                }
                out.append(InFlightSelfUpdate(record: record, machine: machine, unreadable: unreadable))
            }
            return out
        }
    }

    /// Self-updates and rollbacks, newest first.
    public func selfUpdates(limit: Int? = nil) throws -> RecordList<SelfUpdateRecord> {
        try StoreErrors.wrap(databasePath, "reading self-updates") {
            try readList(SelfUpdateRecord.self, kind: "self-update",
                         "SELECT self_update_id, record FROM self_updates ORDER BY row_id DESC LIMIT ?",
                         [Self.limitValue(limit)])
        }
    }

    /// The self-update with this id (or a unique prefix of 8+ characters).
    public func selfUpdate(_ idOrPrefix: String) throws -> SelfUpdateRecord? {
        try StoreErrors.wrap(databasePath, "reading a self-update") {
            if let exact = try readOne(SelfUpdateRecord.self, kind: "self-update",
                                       "SELECT self_update_id, record FROM self_updates WHERE self_update_id = ?",
                                       [.text(idOrPrefix)]) {
                return exact
            }
            guard idOrPrefix.count >= Self.minimumIDPrefixLength else { return nil }
            let ids = try db.query("""
                SELECT self_update_id FROM self_updates
                WHERE lower(substr(self_update_id, 1, length(?1))) = lower(?1) ORDER BY row_id LIMIT 2
                """, [.text(idOrPrefix)]) { $0.text(0) }
            guard ids.count == 1 else {
                if ids.count > 1 {
                    throw CaissonError("store.ambiguous_id", "the id prefix \(idOrPrefix) matches several self-updates; give more characters")
                }
                return nil
            }
            return try readOne(SelfUpdateRecord.self, kind: "self-update",
                               "SELECT self_update_id, record FROM self_updates WHERE self_update_id = ?", [.text(ids[0])])
        }
    }

    /// The first run of a new executable confirms its self-update: records when and what it
    /// checked, with an audit event, in one transaction (the machine that started it finishes it).
    public func confirmSelfUpdate(_ id: String, at: String, checks: [SelfUpdateCheck], message: String) throws {
        try StoreErrors.wrap(databasePath, "confirming a self-update") {
            try db.transaction {
                guard var r = try readOne(SelfUpdateRecord.self, kind: "self-update",
                                          "SELECT self_update_id, record FROM self_updates WHERE self_update_id = ?", [.text(id)]) else {
                    throw CaissonError("self_update.unknown_id", "no self-update has id \(id)")
                }
                r.confirmedAt = at
                r.checks += checks
                try upsertSelfUpdate(r)
                try appendAuditInTransaction([AuditEvent(kind: .selfUpdateConfirmed, at: at, updateID: id, message: message)])
            }
        }
    }

    /// The live store's schema version (`PRAGMA user_version`).
    public func currentSchemaVersion() throws -> Int {
        try StoreErrors.wrap(databasePath, "reading the schema version") {
            Int(try db.scalar("PRAGMA user_version").integerValue ?? 0)
        }
    }

    /// A consistent copy of the store into the new file `path` (`VACUUM INTO`), with `record`
    /// written into the copy when given, made durable (file and directory fsynced).
    public func copy(to path: String, recordAfterRestore record: SelfUpdateRecord?) throws(SystemCallError) {
        let dir = Paths.directory(of: path)
        do { try FileSystem.makeDirectory(dir) } catch {
            throw SystemCallError(errno: EIO, operation: "mkdir", path: dir, message: "\(error)")
        }
        if access(path, F_OK) == 0 { throw SystemCallError(errno: EEXIST, operation: "copy the store to", path: path) }
        do {
            try db.run("VACUUM INTO ?", [.text(path)])
            if let record {
                let copy = try SQLiteDatabase(path: path, create: false)
                defer { copy.close() }
                let json = try encode(record, "self-update record")
                try copy.run("""
                    INSERT INTO self_updates (self_update_id, kind, status, started_at, finished_at, record)
                    VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (self_update_id) DO UPDATE SET status = excluded.status, record = excluded.record
                    """, [.text(record.selfUpdateID), .text(record.kind), .text(record.status.rawValue),
                          .text(record.startedAt), .optional(record.finishedAt), .text(json)])
            }
        } catch let e as SQLiteError {
            unlink(path)
            throw SystemCallError(errno: e.primaryCode == SQLITE_FULL ? ENOSPC : EIO, operation: "copy the store to", path: path,
                                  message: e.description)
        } catch {
            unlink(path)
            throw SystemCallError(errno: EIO, operation: "copy the store to", path: path, message: "\(error)")
        }
        try Self.fsyncFile(path)
        try Self.fsyncFile(dir)
    }

    static func fsyncFile(_ path: String) throws(SystemCallError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError(errno: errno, operation: "open", path: path) }
        defer { Glibc.close(fd) }
        if fsync(fd) != 0 { throw SystemCallError(errno: errno, operation: "fsync", path: path) }
    }

    /// A consistent copy (`VACUUM INTO`) of the database at `livePath`, opened without migrating
    /// it (an older Caisson setting a newer store aside), made durable.
    public static func copyDatabase(at livePath: String, to path: String) throws(SystemCallError) {
        let dir = Paths.directory(of: path)
        do { try FileSystem.makeDirectory(dir) } catch {
            throw SystemCallError(errno: EIO, operation: "mkdir", path: dir, message: "\(error)")
        }
        // Into a temporary name, renamed once complete and durable: `path` existing means a whole
        // copy (a kill in the middle of VACUUM INTO leaves only the temporary file).
        let partial = path + ".partial"
        unlink(partial)
        do throws(SQLiteError) {
            let db = try SQLiteDatabase(path: livePath, create: false)
            defer { db.close() }
            try db.run("VACUUM INTO ?", [.text(partial)])
        } catch {
            unlink(partial)
            throw SystemCallError(errno: error.primaryCode == SQLITE_FULL ? ENOSPC : EIO, operation: "copy the store to", path: path,
                                  message: error.description)
        }
        try fsyncFile(partial)
        if Glibc.rename(partial, path) != 0 { throw SystemCallError(errno: errno, operation: "rename", path: path) }
        try fsyncFile(dir)
    }

    /// The schema version of the database at `path`, read without migrating or changing it.
    public static func schemaVersion(ofDatabaseAt path: String) throws(SystemCallError) -> Int {
        do throws(SQLiteError) {
            let db = try SQLiteDatabase(path: path, create: false, readOnly: true)
            defer { db.close() }
            return Int(try db.scalar("PRAGMA user_version").integerValue ?? 0)
        } catch {
            throw SystemCallError(errno: EIO, operation: "read the schema version of", path: path, message: error.description)
        }
    }

    /// Replaces the content of the database at `livePath` with the snapshot's, with SQLite's
    /// online backup (one write transaction: other connections see the old or the new content,
    /// never a mix; the WAL and lock files stay consistent, unlike a file copy).
    public static func restore(databaseAt livePath: String, from snapshotPath: String) throws(SystemCallError) {
        guard access(snapshotPath, R_OK) == 0 else {
            throw SystemCallError(errno: errno, operation: "open the store snapshot", path: snapshotPath)
        }
        do throws(SQLiteError) {
            let source = try SQLiteDatabase(path: snapshotPath, create: false, readOnly: true)
            defer { source.close() }
            let dest = try SQLiteDatabase(path: livePath, create: false)
            defer { dest.close() }
            try dest.execute("PRAGMA synchronous=FULL")
            try dest.backup(from: source)
        } catch {
            throw SystemCallError(errno: (error.primaryCode == SQLITE_FULL) ? ENOSPC : EIO, operation: "restore the store from",
                                  path: snapshotPath, message: error.description)
        }
    }
}
