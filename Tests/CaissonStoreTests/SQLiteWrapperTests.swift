import CaissonStore
import Foundation
import Testing

@Suite struct SQLiteWrapperTests {
    @Test func typedBindsAndReadsRoundTrip() throws {
        try withTempDir { dir in
            let db = try SQLiteDatabase(path: dir.path + "/w.db")
            try db.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB)")
            let values: [[SQLiteValue]] = [
                [.integer(Int64.min), .real(-0.5), .text(""), .blob([])],
                [.integer(Int64.max), .real(1e300), .text("héllo ✓ \u{0}nul"), .blob([0, 255, 0])],
                [.null, .null, .null, .null],
            ]
            for row in values { try db.run("INSERT INTO t VALUES (?, ?, ?, ?)", row) }
            let read = try db.query("SELECT i, r, s, b FROM t ORDER BY rowid") { stmt in
                (0..<4).map { stmt.value(at: Int32($0)) }
            }
            // Empty text and empty blobs stay empty (not NULL); embedded NUL survives.
            #expect(read == values)
            let texts = try db.query("SELECT s FROM t ORDER BY rowid") { $0.optionalText(0) }
            #expect(texts == ["", "héllo ✓ \u{0}nul", nil])
            #expect(try db.scalar("SELECT count(*) FROM t WHERE b IS NULL") == .integer(1))
        }
    }

    @Test func transactionCommitsAndRollsBackOnThrow() throws {
        struct Boom: Error {}
        try withTempDir { dir in
            let db = try SQLiteDatabase(path: dir.path + "/w.db")
            try db.execute("CREATE TABLE t (x INTEGER)")
            try db.transaction { try db.run("INSERT INTO t VALUES (1)") }
            #expect(throws: Boom.self) {
                try db.transaction {
                    try db.run("INSERT INTO t VALUES (2)")
                    try db.transaction { try db.run("INSERT INTO t VALUES (3)") }  // joins the outer one
                    throw Boom()
                }
            }
            #expect(!db.isInTransaction)
            #expect(try db.query("SELECT x FROM t") { $0.int(0) } == [1])
        }
    }

    @Test func errorsCarrySQLiteMessageAndCode() throws {
        try withTempDir { dir in
            let db = try SQLiteDatabase(path: dir.path + "/w.db")
            try db.execute("CREATE TABLE t (x INTEGER UNIQUE)")
            try db.run("INSERT INTO t VALUES (1)")
            do {
                try db.run("INSERT INTO t VALUES (1)")
                Issue.record("expected a constraint error")
            } catch let error as SQLiteError {
                #expect(error.primaryCode == 19)  // SQLITE_CONSTRAINT
                #expect(error.message.contains("UNIQUE constraint failed"))
                #expect(error.context.contains("INSERT INTO t"))
            } catch {
                Issue.record("unexpected error \(error)")
            }
            #expect(throws: SQLiteError.self) { try db.prepare("SELEC nonsense") }
            db.close()
            #expect(throws: SQLiteError.self) { try db.run("SELECT 1") }
        }
    }

    @Test func openingAMissingDirectoryWithoutCreateFails() throws {
        try withTempDir { dir in
            #expect(throws: SQLiteError.self) {
                _ = try SQLiteDatabase(path: dir.path + "/no/such/dir/x.db", create: true)
            }
        }
    }
}
