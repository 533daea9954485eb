import CaissonCore
import CaissonStore
import Foundation

/// Taking over a state directory of the Rust caisson 0.1.0 (issue 11 item 1).
extension Application {
    /// On the first use of a state directory that holds the Rust tool's records, import them
    /// (once: the `state_imported` audit event marks it done). Cheap otherwise (a few `lstat`s).
    /// Returns nil when there was nothing to do, or when another Caisson holds the operation lock
    /// (it, or the next command, imports).
    @discardableResult
    public func importRustStateIfNeeded() throws -> RustStateImport.Report? {
        guard RustStateImport.isPresent(in: stateDir) else { return nil }
        let s = try store()
        guard try !RustStateImport.wasImported(into: s) else { return nil }
        guard let lock = try? OperationLock.acquire(stateDir: stateDir, operation: "import of the Rust caisson state",
                                                    since: systemClock.timestamp()) else { return nil }
        defer { lock.release() }
        // Another process may have imported while we waited for nothing (the lock is not waited on).
        guard try !RustStateImport.wasImported(into: s) else { return nil }
        let report = try RustStateImport.run(store: s, directory: stateDir, now: systemClock.timestamp())
        onImport?(report)
        return report
    }

    /// `caisson migrate`: import the Rust tool's records now (again: what the store already has
    /// is kept, only what is new is added). Nil when the directory holds no Rust state.
    public func migrate() throws -> RustStateImport.Report? {
        guard RustStateImport.isPresent(in: stateDir) else { return nil }
        let lock = try OperationLock.acquire(stateDir: stateDir, operation: "caisson migrate", since: systemClock.timestamp())
        defer { lock.release() }
        return try RustStateImport.run(store: store(), directory: stateDir, now: systemClock.timestamp())
    }
}
