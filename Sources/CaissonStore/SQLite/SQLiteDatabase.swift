import CSQLite

/// `SQLITE_TRANSIENT` is a C macro Swift cannot import: SQLite copies the bytes before returning.
private let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// An error from the SQLite C API: the primary and extended result codes and SQLite's own message.
public struct SQLiteError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The extended result code (e.g. `SQLITE_IOERR_FSYNC`); `primaryCode` is its low byte.
    public var code: Int32
    public var message: String
    /// The statement (or operation) that failed, for the log.
    public var context: String
    /// The OS error behind an I/O failure (`sqlite3_system_errno`), 0 when none: a write that
    /// failed with ENOSPC is often reported as `SQLITE_IOERR_WRITE`, not `SQLITE_FULL`.
    public var systemErrno: Int32

    public init(code: Int32, message: String, context: String, systemErrno: Int32 = 0) {
        self.code = code
        self.message = message
        self.context = context
        self.systemErrno = systemErrno
    }

    public var primaryCode: Int32 { code & 0xFF }
    public var isCorrupt: Bool { primaryCode == SQLITE_CORRUPT || primaryCode == SQLITE_NOTADB }
    public var description: String { "SQLite error \(code) (\(message)) in: \(context)" }
}

/// A value bound to or read from a statement.
public enum SQLiteValue: Equatable, Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// A thin wrapper over one SQLite connection (C API). Not thread-safe by itself: one owner.
public final class SQLiteDatabase {
    public let path: String
    private var handle: OpaquePointer?
    private var transactionDepth = 0

    /// Opens (and with `create`, creates) the database file. The file is not read until the first
    /// statement, so a garbage file is only detected by the first query.
    public init(path: String, create: Bool = true, readOnly: Bool = false, noFollow: Bool = false,
                busyTimeoutMilliseconds: Int32 = 5000) throws(SQLiteError) {
        self.path = path
        var flags = SQLITE_OPEN_FULLMUTEX
        // Refuse a symbolic link as the database (SQLite 3.31+).
        if noFollow { flags |= 0x0100_0000 /* SQLITE_OPEN_NOFOLLOW */ }
        if readOnly {
            flags |= SQLITE_OPEN_READONLY
        } else {
            flags |= SQLITE_OPEN_READWRITE
            if create { flags |= SQLITE_OPEN_CREATE }
        }
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(code: rc, message: message, context: "open \(path)")
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, busyTimeoutMilliseconds)
    }

    deinit { close() }

    /// Closes the connection; later calls throw `SQLITE_MISUSE`. Idempotent.
    public func close() {
        if let handle {
            sqlite3_close_v2(handle)
            self.handle = nil
        }
    }

    func checkedHandle(_ context: String) throws(SQLiteError) -> OpaquePointer {
        guard let handle else {
            throw SQLiteError(code: SQLITE_MISUSE, message: "the database connection is closed", context: context)
        }
        return handle
    }

    func error(_ rc: Int32, _ context: String) -> SQLiteError {
        guard let handle else {
            return SQLiteError(code: rc, message: String(cString: sqlite3_errstr(rc)), context: context)
        }
        // The connection's extended code and message describe the last failure; fall back to the
        // code we were given when they disagree (e.g. after a later successful call).
        let extended = sqlite3_extended_errcode(handle)
        let code = (extended & 0xFF) == (rc & 0xFF) ? extended : rc
        return SQLiteError(code: code, message: String(cString: sqlite3_errmsg(handle)), context: context,
                           systemErrno: sqlite3_system_errno(handle))
    }

    /// Runs one or more statements without parameters or results (DDL, pragmas).
    public func execute(_ sql: String) throws(SQLiteError) {
        let db = try checkedHandle(sql)
        var errorMessage: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &errorMessage)
        if rc != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_free(errorMessage)
            let extended = sqlite3_extended_errcode(db)
            throw SQLiteError(code: (extended & 0xFF) == (rc & 0xFF) ? extended : rc,
                              message: message, context: sql, systemErrno: sqlite3_system_errno(db))
        }
    }

    public func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        let db = try checkedHandle(sql)
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(db, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            if let stmt { sqlite3_finalize(stmt) }
            throw error(rc == SQLITE_OK ? SQLITE_MISUSE : rc, sql)
        }
        return SQLiteStatement(database: self, handle: stmt, sql: sql)
    }

    /// Runs a statement with binds, discarding any rows. Returns the number of rows changed.
    @discardableResult
    public func run(_ sql: String, _ values: [SQLiteValue] = []) throws(SQLiteError) -> Int {
        let stmt = try prepare(sql)
        try stmt.bind(values)
        while try stmt.step() {}
        return changes
    }

    /// All rows of a query, each mapped by `row` (which reads columns from the statement).
    public func query<T>(_ sql: String, _ values: [SQLiteValue] = [],
                         _ row: (SQLiteStatement) throws -> T) throws -> [T] {
        let stmt = try prepare(sql)
        try stmt.bind(values)
        var result: [T] = []
        while try stmt.step() { result.append(try row(stmt)) }
        return result
    }

    /// The first column of the first row, or `.null` when there is no row.
    public func scalar(_ sql: String, _ values: [SQLiteValue] = []) throws(SQLiteError) -> SQLiteValue {
        let stmt = try prepare(sql)
        try stmt.bind(values)
        guard try stmt.step() else { return .null }
        return stmt.value(at: 0)
    }

    public var changes: Int {
        guard let handle else { return 0 }
        return Int(sqlite3_changes(handle))
    }

    public var lastInsertRowID: Int64 {
        guard let handle else { return 0 }
        return sqlite3_last_insert_rowid(handle)
    }

    public var isInTransaction: Bool {
        guard let handle else { return false }
        return sqlite3_get_autocommit(handle) == 0
    }

    /// `BEGIN IMMEDIATE` … `COMMIT`, rolling back when `body` throws (or the commit fails).
    /// A nested call joins the outer transaction: the outermost one commits or rolls back.
    @discardableResult
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        if transactionDepth > 0 {
            transactionDepth += 1
            defer { transactionDepth -= 1 }
            return try body()
        }
        try execute("BEGIN IMMEDIATE")
        transactionDepth = 1
        defer { transactionDepth = 0 }
        let result: T
        do {
            result = try body()
            try execute("COMMIT")
        } catch {
            // SQLite may already have rolled back by itself (e.g. after SQLITE_FULL).
            if isInTransaction { try? execute("ROLLBACK") }
            throw error
        }
        return result
    }
}

/// A prepared statement. Binds are 1-based (SQLite's convention); column reads are 0-based.
public final class SQLiteStatement {
    private let database: SQLiteDatabase
    private let handle: OpaquePointer
    public let sql: String

    init(database: SQLiteDatabase, handle: OpaquePointer, sql: String) {
        self.database = database
        self.handle = handle
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    public func bind(_ values: [SQLiteValue]) throws(SQLiteError) {
        for (offset, value) in values.enumerated() {
            try bind(value, at: Int32(offset + 1))
        }
    }

    public func bind(_ value: SQLiteValue, at index: Int32) throws(SQLiteError) {
        let rc: Int32
        switch value {
        case .null:
            rc = sqlite3_bind_null(handle, index)
        case .integer(let v):
            rc = sqlite3_bind_int64(handle, index, v)
        case .real(let v):
            rc = sqlite3_bind_double(handle, index, v)
        case .text(let s):
            let bytes = Array(s.utf8)
            guard bytes.count <= Int(Int32.max) else {
                throw SQLiteError(code: SQLITE_TOOBIG, message: "string too large", context: sql)
            }
            // An empty buffer may have a nil base address, which SQLite would bind as NULL.
            if bytes.isEmpty {
                rc = sqlite3_bind_text(handle, index, "", 0, sqliteTransient)
            } else {
                rc = bytes.withUnsafeBufferPointer { buffer in
                    buffer.withMemoryRebound(to: CChar.self) {
                        sqlite3_bind_text(handle, index, $0.baseAddress, Int32($0.count), sqliteTransient)
                    }
                }
            }
        case .blob(let bytes):
            guard bytes.count <= Int(Int32.max) else {
                throw SQLiteError(code: SQLITE_TOOBIG, message: "blob too large", context: sql)
            }
            if bytes.isEmpty {
                rc = sqlite3_bind_zeroblob(handle, index, 0)
            } else {
                rc = bytes.withUnsafeBytes {
                    sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), sqliteTransient)
                }
            }
        }
        if rc != SQLITE_OK { throw database.error(rc, sql) }
    }

    /// Advances to the next row: `true` when a row is available, `false` when done.
    public func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = database.error(rc, sql)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// Clears the statement for re-use with new binds.
    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    public var columnCount: Int32 { sqlite3_column_count(handle) }

    public func isNull(_ column: Int32) -> Bool {
        sqlite3_column_type(handle, column) == SQLITE_NULL
    }

    public func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    public func int(_ column: Int32) -> Int { Int(sqlite3_column_int64(handle, column)) }

    public func optionalInt64(_ column: Int32) -> Int64? {
        isNull(column) ? nil : int64(column)
    }

    public func double(_ column: Int32) -> Double { sqlite3_column_double(handle, column) }

    /// The column as UTF-8 text (invalid sequences are repaired with U+FFFD); "" for NULL.
    public func text(_ column: Int32) -> String {
        guard let pointer = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }

    public func optionalText(_ column: Int32) -> String? {
        isNull(column) ? nil : text(column)
    }

    /// The column's raw bytes (for TEXT: its UTF-8 bytes exactly as stored); [] for NULL.
    public func blob(_ column: Int32) -> [UInt8] {
        guard let pointer = sqlite3_column_blob(handle, column) else { return [] }
        let count = Int(sqlite3_column_bytes(handle, column))
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    public func optionalBlob(_ column: Int32) -> [UInt8]? {
        isNull(column) ? nil : blob(column)
    }

    public func value(at column: Int32) -> SQLiteValue {
        switch sqlite3_column_type(handle, column) {
        case SQLITE_INTEGER: return .integer(int64(column))
        case SQLITE_FLOAT: return .real(double(column))
        case SQLITE_TEXT: return .text(text(column))
        case SQLITE_BLOB: return .blob(blob(column))
        default: return .null
        }
    }
}

extension SQLiteValue {
    public var integerValue: Int64? {
        if case .integer(let v) = self { return v }
        return nil
    }

    public var textValue: String? {
        if case .text(let v) = self { return v }
        return nil
    }

    public var blobValue: [UInt8]? {
        if case .blob(let v) = self { return v }
        return nil
    }

    /// `.text` for a non-nil string, `.null` otherwise.
    public static func optional(_ s: String?) -> SQLiteValue { s.map(SQLiteValue.text) ?? .null }
    public static func optional(_ v: Int64?) -> SQLiteValue { v.map(SQLiteValue.integer) ?? .null }
}

extension SQLiteDatabase {
    /// Copies the whole `source` database over this one with SQLite's online backup API, retrying
    /// while either is busy (up to about 10 s).
    public func backup(from source: SQLiteDatabase) throws(SQLiteError) {
        let destHandle = try checkedHandle("backup")
        let sourceHandle = try source.checkedHandle("backup")
        guard let backup = sqlite3_backup_init(destHandle, "main", sourceHandle, "main") else {
            throw error(sqlite3_errcode(destHandle), "backup_init")
        }
        var rc: Int32
        var waits = 0
        repeat {
            rc = sqlite3_backup_step(backup, -1)
            if rc == SQLITE_BUSY || rc == SQLITE_LOCKED {
                waits += 1
                sqlite3_sleep(50)
            }
        } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && waits < 200
        let finished = sqlite3_backup_finish(backup)
        if rc != SQLITE_DONE { throw error(rc, "backup_step") }
        if finished != SQLITE_OK { throw error(finished, "backup_finish") }
    }
}
