import CaissonCore
@testable import CaissonStore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 10 item 11: the state directory is the device's memory.
@Suite struct StateDirectoryTests {
    @Test func aZeroByteDatabaseIsNotAFreshStore() throws {
        try withTempDir { dir in
            try FileManager.default.createDirectory(atPath: dir.stateDir, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            #expect(FileManager.default.createFile(atPath: dir.databasePath, contents: Data()))
            let e = expectCaissonError("store.truncated") { _ = try CaissonStore(stateDirectory: dir.stateDir) }
            #expect(e?.message.contains("0 bytes") == true)
            // Still 0 bytes: nothing was written into it.
            #expect((try FileManager.default.attributesOfItem(atPath: dir.databasePath)[.size] as? NSNumber)?.intValue == 0)
        }
    }

    @Test func aFreshStoreIsCreatedWhole() throws {
        try withStore { store, dir in
            let size = (try FileManager.default.attributesOfItem(atPath: dir.databasePath)[.size] as? NSNumber)?.intValue ?? 0
            #expect(size > 0)
            #expect(!FileManager.default.fileExists(atPath: dir.databasePath + ".new"))
            #expect(try store.settings().schemaVersion == CaissonStore.schemaVersion)
        }
    }

    @Test("a database deleted, emptied or replaced while open refuses every write", arguments: ["delete", "empty", "replace", "rmdir"])
    func aDatabaseGoneWhileOpenRefusesWrites(_ how: String) throws {
        try withStore { store, dir in
            try store.recordValidation(Fixtures.validation("v1"))
            switch how {
            case "delete": unlink(dir.databasePath)
            case "empty": truncate(dir.databasePath, 0)
            case "replace":
                unlink(dir.databasePath)
                #expect(FileManager.default.createFile(atPath: dir.databasePath, contents: Data("x".utf8)))
            default: try FileManager.default.removeItem(atPath: dir.stateDir)
            }
            expectCaissonError("store.gone") { try store.recordValidation(Fixtures.validation("v2")) }
            expectCaissonError("store.gone") { try store.appendAudit([Fixtures.event()]) }
            expectCaissonError("store.gone") { try store.setServiceState(Fixtures.state("frontend")) }
            expectCaissonError("store.gone") {
                try store.write(JournalWrite(attempt: Fixtures.attempt("u1"), entry: Fixtures.entry("start", update: "u1")))
            }
        }
    }

    /// A database deleted after a Caisson ended without closing it (killed, a power cut) leaves
    /// its -wal and -shm files: the next open refuses (store.gone) rather than start a fresh,
    /// empty history (and feed it the orphan log).
    @Test func aDeletedDatabaseWhoseLogRemainsIsNotAFreshStore() throws {
        try withStore { store, dir in
            try store.recordValidation(Fixtures.validation("v1"))
            try store.setServiceState(Fixtures.state("frontend"))
            // The connection stays open, as a killed process's would have: its log stays.
            #expect(FileManager.default.fileExists(atPath: dir.databasePath + "-wal"))
            #expect(unlink(dir.databasePath) == 0)
            let e = expectCaissonError("store.gone") { _ = try CaissonStore(stateDirectory: dir.stateDir) }
            #expect(e?.message.contains("was deleted") == true, "\(e?.message ?? "")")
            #expect(!FileManager.default.fileExists(atPath: dir.databasePath), "a fresh store was created in its place")
        }
    }

    @Test func aDamagedPageIsCaughtAtOpen() throws {
        try withTempDir { dir in
            do {
                let store = try CaissonStore(stateDirectory: dir.stateDir)
                for i in 0..<400 { try store.recordValidation(Fixtures.validation("v\(i)")) }
                store.close()
            }
            let raw = try SQLiteDatabase(path: dir.databasePath)
            try raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            let pages = Int(try raw.scalar("PRAGMA page_count").integerValue ?? 0)
            let pageSize = Int(try raw.scalar("PRAGMA page_size").integerValue ?? 4096)
            raw.close()
            #expect(pages > 10)
            // Scribble over a page in the middle of the table (not the header).
            let fd = open(dir.databasePath, O_WRONLY)
            let junk = [UInt8](repeating: 0xA5, count: pageSize)
            #expect(junk.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(pageSize * (pages / 2))) } == pageSize)
            close(fd)
            expectCaissonError("store.corrupt") { _ = try CaissonStore(stateDirectory: dir.stateDir) }
        }
    }

    @Test func aWritableByOthersOrForeignStateDirectoryIsRefused() throws {
        try withTempDir { dir in
            try FileManager.default.createDirectory(atPath: dir.stateDir, withIntermediateDirectories: true)
            chmod(dir.stateDir, 0o777)
            expectCaissonError("state.unsafe_permissions") { _ = try CaissonStore(stateDirectory: dir.stateDir) }
            chmod(dir.stateDir, 0o770)
            expectCaissonError("state.unsafe_permissions") { _ = try CaissonStore(stateDirectory: dir.stateDir) }
            chmod(dir.stateDir, 0o755)
            _ = try CaissonStore(stateDirectory: dir.stateDir)
            if geteuid() == 0 {
                chown(dir.stateDir, 4242, 4242)
                let e = expectCaissonError("state.foreign_owner") { _ = try CaissonStore(stateDirectory: dir.stateDir) }
                #expect(e?.message.contains("4242") == true)
            }
        }
    }

    @Test func aLinkedDatabaseIsRefused() throws {
        try withTempDir { dir in
            do { _ = try CaissonStore(stateDirectory: dir.path + "/real") }
            try FileManager.default.createDirectory(atPath: dir.stateDir, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            symlink(dir.path + "/real/caisson.db", dir.databasePath)
            expectCaissonError("state.unsafe_entry") { _ = try CaissonStore(stateDirectory: dir.stateDir) }
        }
    }

    @Test func subdirectoriesAndListingsNeverFollowALink() throws {
        try withTempDir { dir in
            let target = dir.path + "/elsewhere"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            #expect(FileManager.default.createFile(atPath: target + "/precious.edgepkg", contents: Data("x".utf8)))
            try FileManager.default.createDirectory(atPath: dir.stateDir, withIntermediateDirectories: true)
            symlink(target, dir.stateDir + "/staging")
            expectCaissonError("state.unsafe_entry") { try StateDirectory.subdirectory(dir.stateDir, "staging") }
            expectCaissonError("state.unsafe_entry") { _ = try StateDirectory.entries(dir.stateDir + "/staging") }
            #expect([ELOOP, ENOTDIR].contains(StateDirectory.removeFile(dir.stateDir + "/staging", "precious.edgepkg")))
            #expect(FileManager.default.fileExists(atPath: target + "/precious.edgepkg"))
        }
    }
}

/// The record chain: update attempts and service states are tamper-evident too.
@Suite struct RecordChainTests {
    func populate(_ store: CaissonStore) throws {
        var a = Fixtures.attempt("u1")
        try store.write(JournalWrite(attempt: a, entry: Fixtures.entry("start", update: "u1")))
        a.status = .succeeded
        a.finishedAt = "2026-03-16T18:31:00Z"
        try store.write(JournalWrite(attempt: a, entry: Fixtures.entry("finish", update: "u1"), serviceState: Fixtures.state("frontend")))
        try store.recordUpdateAttempt(Fixtures.attempt("u2", service: "backend", status: .failed))
        var s = Fixtures.state("backend")
        s.highestPackageVersion = "2.0.0"
        try store.setServiceState(s)
    }

    @Test func anUntouchedStoreIsIntact() throws {
        try withStore { store, _ in
            try populate(store)
            let r = try store.verifyRecordChain()
            #expect(r.problems == [])
            #expect(r.records == 4)
            #expect(r.links >= 4)
        }
    }

    @Test("edits outside Caisson are found", arguments: [
        ("lower the downgrade floor", "UPDATE service_states SET record = replace(record, '2.0.0', '0.0.1') WHERE service_name = 'backend'", "service state backend was changed outside Caisson"),
        ("rewrite an attempt's status", "UPDATE update_attempts SET record = replace(record, '\"failed\"', '\"succeeded\"') WHERE update_id = 'u2'", "update attempt u2 was changed outside Caisson"),
        ("delete an attempt", "DELETE FROM update_attempts WHERE update_id = 'u2'", "update attempt u2 was deleted outside Caisson"),
        ("delete a service state", "DELETE FROM service_states WHERE service_name = 'frontend'", "service state frontend was deleted outside Caisson"),
        ("insert a service state", "INSERT INTO service_states (service_name, updated_at, record) VALUES ('x', 't', '{}')", "service state x is in no link"),
        ("drop the newest link", "DELETE FROM record_chain WHERE seq = (SELECT max(seq) FROM record_chain)", "the head says link"),
        ("rewrite a link", "UPDATE record_chain SET record_hash = zeroblob(32) WHERE seq = 1", "link 1"),
    ])
    func editsAreFound(_ name: String, _ sql: String, _ expected: String) throws {
        try withStore { store, dir in
            try populate(store)
            try SQLiteDatabase(path: dir.databasePath).run(sql)
            let r = try store.verifyRecordChain()
            #expect(r.problems.contains { $0.contains(expected) }, "\(name): \(r.problems)")
        }
    }

    /// A store written before the chain existed: its records are adopted by the migration.
    @Test func theMigrationAdoptsExistingRecords() throws {
        try withTempDir { dir in
            do {
                let store = try CaissonStore(stateDirectory: dir.stateDir)
                try populate(store)
                store.close()
            }
            let raw = try SQLiteDatabase(path: dir.databasePath)
            try raw.execute("DROP TABLE record_chain; DROP TABLE record_chain_head; DROP TABLE self_update_journal; DROP TABLE self_updates; DROP TABLE failure_evidence; PRAGMA user_version = 2")
            raw.close()
            let store = try CaissonStore(stateDirectory: dir.stateDir)
            defer { store.close() }
            let r = try store.verifyRecordChain()
            #expect(r.problems == [])
            #expect(r.records == 4)
        }
    }
}
