import CaissonCore
@testable import CaissonStore
import Foundation
import Testing

@Suite struct SchemaTests {
    @Test func freshStoreCreatesDirectory0700AndCurrentSchema() throws {
        try withTempDir { dir in
            let nested = dir.path + "/a/b/state"
            let store = try CaissonStore(stateDirectory: nested)
            defer { store.close() }
            #expect(store.databasePath == nested + "/caisson.db")
            #expect(FileManager.default.fileExists(atPath: store.databasePath))
            let attributes = try FileManager.default.attributesOfItem(atPath: nested)
            #expect((attributes[.posixPermissions] as? Int) == 0o700)
            #expect(try store.settings().schemaVersion == CaissonStore.schemaVersion)
            #expect(CaissonStore.schemaVersion == Schema.migrations.count)
        }
    }

    /// Requirement 4(d): the pragmas are really in effect on the store's own connection.
    @Test func walSynchronousFullAndForeignKeysAreInEffect() throws {
        try withStore { store, dir in
            let settings = try store.settings()
            #expect(settings.journalMode == "wal")
            #expect(settings.synchronous == 2)  // FULL
            #expect(settings.foreignKeys)
            #expect(settings.busyTimeoutMilliseconds == 5000)
            // WAL is persistent in the file: a second, plain connection sees it too.
            let raw = try SQLiteDatabase(path: dir.databasePath)
            #expect(try raw.scalar("PRAGMA journal_mode") == .text("wal"))
            #expect(try raw.scalar("PRAGMA application_id") == .integer(Int64(Schema.applicationID)))
        }
    }

    @Test func reopeningKeepsDataAndDoesNotRemigrate() throws {
        try withTempDir { dir in
            do {
                let store = try CaissonStore(stateDirectory: dir.stateDir)
                try store.setServiceState(Fixtures.state("frontend"))
                store.close()
            }
            let store = try CaissonStore(stateDirectory: dir.stateDir)
            defer { store.close() }
            #expect(try store.serviceState("frontend") == Fixtures.state("frontend"))
            #expect(try store.settings().schemaVersion == CaissonStore.schemaVersion)
        }
    }

    /// A database written by schema v1 (by hand, as an older Caisson wrote it) is migrated to the
    /// current version in place, keeping its records and its audit chain.
    @Test func migratesAHandWrittenVersion1Database() throws {
        try withTempDir { dir in
            try FileManager.default.createDirectory(atPath: dir.stateDir, withIntermediateDirectories: true)
            let raw = try SQLiteDatabase(path: dir.databasePath)
            try raw.execute(Self.version1Schema)
            let attempt = Fixtures.attempt("11111111-aaaa-bbbb-cccc-000000000001", status: .succeeded)
            let json = String(decoding: try JSONEncoder().encode(attempt), as: UTF8.self)
            try raw.run("""
                INSERT INTO update_attempts (update_id, service_name, status, kind, started_at, finished_at, record)
                VALUES (?, 'frontend', 'succeeded', 'update', ?, NULL, ?)
                """, [.text(attempt.updateID), .text(attempt.startedAt), .text(json)])
            try raw.run("""
                INSERT INTO journal_entries (update_id, seq, phase, step, detail, snapshot, at)
                VALUES (?, 1, 'intent', 'create_new', 'docker create', x'0102', '2026-03-16T18:30:01Z')
                """, [.text(attempt.updateID)])
            let validation = Fixtures.validation("val-1")
            try raw.run("""
                INSERT INTO validations (validation_attempt_id, status, service_name, package_path,
                                         started_at, finished_at, record) VALUES (?, 'accepted', 'frontend', 'p', ?, ?, ?)
                """, [.text("val-1"), .text(validation.startedAt), .text(validation.finishedAt),
                      .text(String(decoding: try JSONEncoder().encode(validation), as: UTF8.self))])
            // One audit event, chained as v1 did.
            let event = Fixtures.event(.updateCommitted, update: attempt.updateID, message: "committed")
            let hash = AuditChain.hash(previous: AuditChain.genesis, seq: 1, fields: AuditChain.fields(event))
            try raw.run("""
                INSERT INTO audit_events (seq, kind, at, service_name, update_id, validation_attempt_id, message,
                                          prev_hash, hash) VALUES (1, ?, ?, ?, ?, NULL, ?, ?, ?)
                """, [.text(event.kind.rawValue), .text(event.at), .text("frontend"), .text(attempt.updateID),
                      .text(event.message), .blob(AuditChain.genesis), .blob(hash)])
            try raw.run("INSERT INTO audit_head (id, seq, hash) VALUES (1, 1, ?)", [.blob(hash)])
            raw.close()

            let store = try CaissonStore(stateDirectory: dir.stateDir)
            defer { store.close() }
            #expect(try store.settings().schemaVersion == CaissonStore.schemaVersion)
            #expect(try store.updateAttempt(attempt.updateID) == attempt)
            #expect(try store.journalEntries(updateID: attempt.updateID).records.map(\.step) == ["create_new"])
            #expect(try store.validation("val-1") == validation)
            // Attempts from before failure evidence existed (v3) read back with none.
            #expect(try store.failureEvidence(updateID: attempt.updateID).records.isEmpty)
            #expect(try store.verifyAuditChain() == AuditChainReport(checked: 1, firstBreak: nil))
            // The v2 table works and new writes chain on.
            try store.recordStagedPackage(StagedPackage(packageID: "p1", path: "/s/p1.edgepkg", stagedAt: "2026-03-16T18:00:00Z"))
            #expect(try store.stagedPackages().records.map(\.packageID) == ["p1"])
            try store.appendAudit([Fixtures.event(.packageCleanup, message: "after migration")])
            #expect(try store.verifyAuditChain() == AuditChainReport(checked: 2, firstBreak: nil))
        }
    }

    @Test func refusesADatabaseFromANewerCaissonWithoutTouchingIt() throws {
        try withTempDir { dir in
            do {
                let store = try CaissonStore(stateDirectory: dir.stateDir)
                store.close()
            }
            let raw = try SQLiteDatabase(path: dir.databasePath)
            try raw.execute("PRAGMA user_version = 99")
            raw.close()
            let before = try Data(contentsOf: URL(fileURLWithPath: dir.databasePath))
            let error = expectCaissonError("store.schema_too_new") {
                _ = try CaissonStore(stateDirectory: dir.stateDir)
            }
            #expect(error?.message.contains("schema version 99") == true)
            #expect(error?.message.contains("newer Caisson") == true)
            let after = try Data(contentsOf: URL(fileURLWithPath: dir.databasePath))
            #expect(before == after)
        }
    }

    @Test func refusesAnSQLiteDatabaseCaissonDidNotCreate() throws {
        try withTempDir { dir in
            try FileManager.default.createDirectory(atPath: dir.stateDir, withIntermediateDirectories: true)
            let raw = try SQLiteDatabase(path: dir.databasePath)
            try raw.execute("CREATE TABLE someone_elses (x); INSERT INTO someone_elses VALUES (1);")
            raw.close()
            expectCaissonError("store.not_caisson") { _ = try CaissonStore(stateDirectory: dir.stateDir) }
            let again = try SQLiteDatabase(path: dir.databasePath)
            #expect(try again.scalar("SELECT count(*) FROM someone_elses") == .integer(1))
        }
    }

    @Test func stateDirectoryThatIsAFileIsAClearError() throws {
        try withTempDir { dir in
            let file = dir.path + "/file"
            try Data("x".utf8).write(to: URL(fileURLWithPath: file))
            let error = expectCaissonError("store.open_failed") { _ = try CaissonStore(stateDirectory: file) }
            #expect(error?.message.contains("not a directory") == true)
            expectCaissonError("store.open_failed") { _ = try CaissonStore(stateDirectory: file + "/sub") }
        }
    }

    /// The v1 schema exactly as it shipped (kept here on purpose: it must not follow later edits).
    static let version1Schema = """
        PRAGMA application_id = 1129534286;
        CREATE TABLE validations (
            row_id INTEGER PRIMARY KEY AUTOINCREMENT, validation_attempt_id TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL, service_name TEXT, package_path TEXT NOT NULL,
            started_at TEXT NOT NULL, finished_at TEXT NOT NULL, record TEXT NOT NULL);
        CREATE TABLE image_imports (
            row_id INTEGER PRIMARY KEY AUTOINCREMENT, import_id TEXT NOT NULL UNIQUE,
            validation_attempt_id TEXT, service_name TEXT NOT NULL, status TEXT NOT NULL,
            started_at TEXT NOT NULL, record TEXT NOT NULL);
        CREATE TABLE candidate_releases (
            row_id INTEGER PRIMARY KEY AUTOINCREMENT, candidate_release_id TEXT NOT NULL UNIQUE,
            service_name TEXT NOT NULL, package_version TEXT NOT NULL, image_id TEXT NOT NULL,
            validation_attempt_id TEXT, created_at TEXT NOT NULL, record TEXT NOT NULL);
        CREATE INDEX candidate_releases_service ON candidate_releases (service_name, row_id);
        CREATE TABLE service_states (service_name TEXT PRIMARY KEY, updated_at TEXT NOT NULL, record TEXT NOT NULL);
        CREATE TABLE update_attempts (
            row_id INTEGER PRIMARY KEY AUTOINCREMENT, update_id TEXT NOT NULL UNIQUE,
            service_name TEXT NOT NULL, status TEXT NOT NULL, kind TEXT NOT NULL,
            started_at TEXT NOT NULL, finished_at TEXT, record TEXT NOT NULL);
        CREATE INDEX update_attempts_service ON update_attempts (service_name, row_id);
        CREATE INDEX update_attempts_status ON update_attempts (status);
        CREATE TABLE journal_entries (
            entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
            update_id TEXT NOT NULL REFERENCES update_attempts (update_id) ON DELETE CASCADE,
            seq INTEGER NOT NULL, phase TEXT NOT NULL, step TEXT NOT NULL, detail TEXT NOT NULL,
            snapshot BLOB NOT NULL, at TEXT NOT NULL, UNIQUE (update_id, seq));
        CREATE TABLE audit_events (
            seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, at TEXT NOT NULL, service_name TEXT,
            update_id TEXT, validation_attempt_id TEXT, message TEXT NOT NULL,
            prev_hash BLOB NOT NULL, hash BLOB NOT NULL);
        CREATE INDEX audit_events_update ON audit_events (update_id);
        CREATE INDEX audit_events_validation ON audit_events (validation_attempt_id);
        CREATE INDEX audit_events_service ON audit_events (service_name);
        CREATE TABLE audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash BLOB NOT NULL);
        PRAGMA user_version = 1;
        """
}
