import CaissonCore
#if canImport(Glibc)
import Glibc
#endif

/// The store's schema: `PRAGMA user_version` is the number of migrations applied. Migrations are
/// append-only: never edit one that has shipped, add a new one.
enum Schema {
    /// `PRAGMA application_id`: "CSSN" marks a Caisson state database.
    static let applicationID: Int32 = 0x4353_534E

    struct Migration {
        let version: Int
        let sql: String
        /// After the SQL: link the attempts and service states already stored into the record chain.
        var adoptsRecords = false
    }

    static let migrations: [Migration] = [
        Migration(version: 1, sql: """
            PRAGMA application_id = \(applicationID);
            CREATE TABLE validations (
                row_id INTEGER PRIMARY KEY AUTOINCREMENT,
                validation_attempt_id TEXT NOT NULL UNIQUE,
                status TEXT NOT NULL,
                service_name TEXT,
                package_path TEXT NOT NULL,
                started_at TEXT NOT NULL,
                finished_at TEXT NOT NULL,
                record TEXT NOT NULL
            );
            CREATE TABLE image_imports (
                row_id INTEGER PRIMARY KEY AUTOINCREMENT,
                import_id TEXT NOT NULL UNIQUE,
                validation_attempt_id TEXT,
                service_name TEXT NOT NULL,
                status TEXT NOT NULL,
                started_at TEXT NOT NULL,
                record TEXT NOT NULL
            );
            CREATE TABLE candidate_releases (
                row_id INTEGER PRIMARY KEY AUTOINCREMENT,
                candidate_release_id TEXT NOT NULL UNIQUE,
                service_name TEXT NOT NULL,
                package_version TEXT NOT NULL,
                image_id TEXT NOT NULL,
                validation_attempt_id TEXT,
                created_at TEXT NOT NULL,
                record TEXT NOT NULL
            );
            CREATE INDEX candidate_releases_service ON candidate_releases (service_name, row_id);
            CREATE TABLE service_states (
                service_name TEXT PRIMARY KEY,
                updated_at TEXT NOT NULL,
                record TEXT NOT NULL
            );
            CREATE TABLE update_attempts (
                row_id INTEGER PRIMARY KEY AUTOINCREMENT,
                update_id TEXT NOT NULL UNIQUE,
                service_name TEXT NOT NULL,
                status TEXT NOT NULL,
                kind TEXT NOT NULL,
                started_at TEXT NOT NULL,
                finished_at TEXT,
                record TEXT NOT NULL
            );
            CREATE INDEX update_attempts_service ON update_attempts (service_name, row_id);
            CREATE INDEX update_attempts_status ON update_attempts (status);
            CREATE TABLE journal_entries (
                entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
                update_id TEXT NOT NULL REFERENCES update_attempts (update_id) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                phase TEXT NOT NULL,
                step TEXT NOT NULL,
                detail TEXT NOT NULL,
                snapshot BLOB NOT NULL,
                at TEXT NOT NULL,
                UNIQUE (update_id, seq)
            );
            CREATE TABLE audit_events (
                seq INTEGER PRIMARY KEY,
                kind TEXT NOT NULL,
                at TEXT NOT NULL,
                service_name TEXT,
                update_id TEXT,
                validation_attempt_id TEXT,
                message TEXT NOT NULL,
                prev_hash BLOB NOT NULL,
                hash BLOB NOT NULL
            );
            CREATE INDEX audit_events_update ON audit_events (update_id);
            CREATE INDEX audit_events_validation ON audit_events (validation_attempt_id);
            CREATE INDEX audit_events_service ON audit_events (service_name);
            CREATE TABLE audit_head (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                seq INTEGER NOT NULL,
                hash BLOB NOT NULL
            );
            """),
        // v2: staged package files (cleanup, FORMATS §8 item 9) and retention by age.
        Migration(version: 2, sql: """
            CREATE TABLE staged_packages (
                row_id INTEGER PRIMARY KEY AUTOINCREMENT,
                package_id TEXT NOT NULL UNIQUE,
                path TEXT NOT NULL,
                service_name TEXT,
                validation_attempt_id TEXT,
                staged_at TEXT NOT NULL,
                record TEXT NOT NULL
            );
            CREATE INDEX validations_finished ON validations (finished_at);
            CREATE INDEX image_imports_validation ON image_imports (validation_attempt_id);
            """),
        // v3: the record chain (update attempts and service states, tamper-evident; see
        // CaissonStore+RecordChain.swift). The records already there are adopted into it.
        Migration(version: 3, sql: """
            CREATE TABLE record_chain (
                seq INTEGER PRIMARY KEY,
                kind TEXT NOT NULL,
                record_key TEXT NOT NULL,
                record_hash BLOB NOT NULL,
                prev_hash BLOB NOT NULL,
                hash BLOB NOT NULL
            );
            CREATE INDEX record_chain_key ON record_chain (kind, record_key, seq);
            CREATE TABLE record_chain_head (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                seq INTEGER NOT NULL,
                hash BLOB NOT NULL
            );
            """, adoptsRecords: true),
        // v4: self-updates of Caisson itself (issue 14): one row per self-update or rollback and
        // its journal (machine snapshots), like update_attempts and journal_entries. Later
        // migrations may only add columns with defaults: a rollback writes these rows with the
        // columns below into a store restored to this version.
        Migration(version: 4, sql: """
            CREATE TABLE self_updates (
                row_id INTEGER PRIMARY KEY AUTOINCREMENT,
                self_update_id TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL,
                status TEXT NOT NULL,
                started_at TEXT NOT NULL,
                finished_at TEXT,
                record TEXT NOT NULL
            );
            CREATE INDEX self_updates_status ON self_updates (status);
            CREATE TABLE self_update_journal (
                entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
                self_update_id TEXT NOT NULL REFERENCES self_updates (self_update_id) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                phase TEXT NOT NULL,
                step TEXT NOT NULL,
                detail TEXT NOT NULL,
                snapshot BLOB,
                at TEXT NOT NULL,
                UNIQUE (self_update_id, seq)
            );
            """),
        // v5: failure evidence (issue 12): a failed container's state and log tail, captured
        // before it was removed, kept beside its attempt (older attempts simply have none).
        Migration(version: 5, sql: """
            CREATE TABLE failure_evidence (
                row_id INTEGER PRIMARY KEY AUTOINCREMENT,
                update_id TEXT NOT NULL REFERENCES update_attempts (update_id) ON DELETE CASCADE,
                role TEXT NOT NULL,
                container_name TEXT NOT NULL,
                captured_at TEXT NOT NULL,
                record TEXT NOT NULL
            );
            CREATE INDEX failure_evidence_update ON failure_evidence (update_id, row_id);
            """),
    ]

    static var currentVersion: Int { effective.last?.version ?? 0 }

    /// The migrations this executable applies: `migrations`, and in debug builds only (the
    /// tests'), with `CAISSON_TEST_EXTRA_SCHEMA=VERSION` and this executable's version VERSION, one
    /// more (an empty table): a stamped copy then behaves like a newer Caisson with a newer schema
    /// (the self-update tests' store restore and `store.schema_too_new`). A release build has no
    /// such switch.
    static let effective: [Migration] = {
        #if DEBUG
        if let v = getenv("CAISSON_TEST_EXTRA_SCHEMA"), String(cString: v) == BuildVersion.current {
            return migrations + [Migration(version: (migrations.last?.version ?? 0) + 1,
                                           sql: "CREATE TABLE IF NOT EXISTS test_future_schema (x);")]
        }
        #endif
        return migrations
    }()
}
