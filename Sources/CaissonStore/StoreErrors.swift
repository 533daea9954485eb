#if canImport(Glibc)
import Glibc
#endif
import CSQLite
import CaissonCore

/// Maps SQLite failures to Caisson's `store.*` issue codes with a sentence for the operator.
enum StoreErrors {
    static func map(_ error: SQLiteError, databasePath: String, doing: String) -> CaissonError {
        let cause = error.description + (error.systemErrno != 0 ? " errno \(error.systemErrno)" : "")
        // A nearly full disk often surfaces as an I/O error of the write or fsync: say what it is.
        if error.systemErrno == ENOSPC || error.systemErrno == EDQUOT {
            return diskFull(databasePath: databasePath, doing: doing, cause: cause)
        }
        switch error.primaryCode {
        case SQLITE_CORRUPT, SQLITE_NOTADB:
            return corrupt(databasePath: databasePath, cause: cause)
        case SQLITE_FULL:
            return diskFull(databasePath: databasePath, doing: doing, cause: cause)
        case SQLITE_BUSY, SQLITE_LOCKED:
            return CaissonError("store.busy",
                                "the state database \(databasePath) stayed locked by another process while "
                                    + "\(doing). Wait for the other Caisson command "
                                    + "to finish and run the command again.",
                                cause: cause)
        case SQLITE_READONLY, SQLITE_PERM, SQLITE_CANTOPEN, SQLITE_AUTH:
            return CaissonError("store.open_failed",
                                "cannot open or write the state database \(databasePath) while \(doing): "
                                    + "\(error.message). Check that the state directory exists and is "
                                    + "writable by this user.",
                                cause: cause)
        case SQLITE_IOERR:
            return CaissonError("store.io_failed",
                                "an I/O error hit the state database \(databasePath) while \(doing): "
                                    + "\(error.message). Check the disk.",
                                cause: cause)
        default:
            return CaissonError("store.query_failed",
                                "the state database \(databasePath) failed while \(doing): \(error.message).",
                                cause: cause)
        }
    }

    /// Says nothing about the host: the caller knows whether it was changed.
    static func diskFull(databasePath: String, doing: String, cause: String?) -> CaissonError {
        CaissonError("store.disk_full",
                     "the disk holding the state database \(databasePath) is full while \(doing). Free some space "
                         + "(for example `caisson package cleanup`, or old files on that disk) and run the command again.",
                     cause: cause)
    }

    static func corrupt(databasePath: String, cause: String?) -> CaissonError {
        CaissonError("store.corrupt",
                     "the state database \(databasePath) is damaged or is not a Caisson database. Stop "
                         + "Caisson, move the file aside together with its -wal and -shm files (for example "
                         + "`mv caisson.db caisson.db.broken`) and run the command again to start a fresh "
                         + "history, or restore it from a backup. A fresh history forgets the services' "
                         + "previous known-good releases and downgrade protection.",
                     cause: cause)
    }

    /// Runs `body`, mapping SQLite errors; other errors (already `CaissonError`s) pass through.
    @discardableResult
    static func wrap<T>(_ databasePath: String, _ doing: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as SQLiteError {
            throw map(error, databasePath: databasePath, doing: doing)
        }
    }
}
