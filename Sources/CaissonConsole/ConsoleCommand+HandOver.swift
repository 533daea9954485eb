import CaissonApp
import CaissonCore
import CaissonStore
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The console's hand-over after a self-update (issue 14 item 5). While it serves, `caisson
/// console` watches the store (every 2 s): when a self-update (or `self-update --rollback`) that
/// finished after the console started left another version of Caisson at the path this console
/// runs from (`Application.selfUpdateHandOver`), it stops taking requests, lets its own operation
/// in progress finish, and re-executes the installed executable with the same arguments on the
/// same address (`--listen` pinned to the port it had bound). Sessions are kept in the state
/// directory, so an open page reconnects by itself (its live events retry, see `data-version`)
/// and the new console says what happened. SIGHUP asks for the same restart by hand. When the
/// installed file cannot be executed, the console keeps running and tells the operator instead.
extension ConsoleCommand {
    /// Set for the re-executed console: the self-update it restarts after (`restart`: SIGHUP).
    static let handedOverVariable = "CAISSON_CONSOLE_HANDED_OVER"
    static let handOverPollSeconds: UInt32 = 2

    /// Why and onto what the console restarts.
    struct HandOver: Sendable {
        var path: String
        /// The self-update record's id; nil for a restart asked by SIGHUP or one seen only
        /// through the executable's file (a store this console cannot read any more).
        var selfUpdateID: String?
        var message: String
    }

    final class HandOverBox: Sendable {
        let value = Mutex<HandOver?>(nil)
    }

    /// The file's identity (device, inode): a rename over it changes it.
    static func identity(_ path: String) -> (UInt64, UInt64)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (UInt64(st.st_dev), UInt64(st.st_ino))
    }

    /// Watches for a self-update that replaced `executable`; when one did and no operation holds
    /// the store's lock, records it in `box` and raises SIGHUP (taken by the waiting main thread).
    static func watchForSelfUpdate(options: AppOptions, since: String, executable: String, console: Console, box: HandOverBox) {
        let start = identity(executable)
        Thread.detachNewThread {
            while !console.isStopping {
                sleep(handOverPollSeconds)
                if console.isStopping { return }
                let app = Application(options: options)
                var found: HandOver?
                do {
                    if let h = try app.selfUpdateHandOver(since: since, installPath: executable) {
                        found = HandOver(path: h.installPath, selfUpdateID: h.selfUpdateID, message: h.message)
                    }
                } catch let e as CaissonError where e.code == "store.schema_too_new" {
                    // The new Caisson migrated the store: this one cannot read its records, but the
                    // executable it runs from was replaced and nothing is at work any more.
                    if let now = identity(executable), let was = start, now != was,
                       let lock = try? OperationLock.acquire(stateDir: app.stateDir, operation: "console hand-over", since: console.clock.timestamp()) {
                        lock.release()
                        found = HandOver(path: executable, selfUpdateID: nil,
                                         message: "Caisson at \(executable) was replaced by a newer version that updated the records; this console (\(Application.version)) restarts on it.")
                    }
                } catch {
                    continue
                }
                guard let h = found else { continue }
                // Its own operation goes on to its verdict first (one waiting for a go-ahead too).
                if console.operationInProgress { continue }
                if access(h.path, X_OK) != 0 {
                    // Not runnable by this process: keep serving and say so on every page.
                    console.handOverNotice.withLock { $0 = h.message.replacingOccurrences(of: "restart it to use the installed one", with: "stop this console and start it again to use the installed one") }
                    return
                }
                box.value.withLock { $0 = h }
                kill(getpid(), SIGHUP)
                return
            }
        }
    }

    /// The arguments to restart with: the same, `--listen` pinned to the address actually bound.
    static func restartArguments(_ original: [String], host: String, port: UInt16) -> [String] {
        var out: [String] = []
        var skip = false
        for a in original {
            if skip { skip = false; continue }
            if a == "--listen" { skip = true; continue }
            if a.hasPrefix("--listen=") { continue }
            out.append(a)
        }
        return out + ["--listen", host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"]
    }

    /// Replaces this process by `path` (same pid, environment plus `handedOverVariable`).
    /// Returns only when exec failed.
    static func reexec(_ h: HandOver, arguments: [String]) -> CaissonError {
        setenv(handedOverVariable, h.selfUpdateID ?? "restart", 1)
        fflush(nil)
        let argv = [h.path] + arguments
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cargs.append(nil)
        defer { for p in cargs { free(p) } }
        execv(h.path, cargs)
        let why = String(cString: strerror(errno))
        unsetenv(handedOverVariable)
        return CaissonError("console.restart_failed", "could not restart the console on \(h.path) (\(why)); start 'caisson console' again")
    }

    /// In the re-executed console: what it restarted after, for its pages (then forgotten by the
    /// environment, so the commands it runs do not inherit it).
    static func takeHandedOver() -> String? {
        guard let raw = getenv(handedOverVariable) else { return nil }
        let value = String(cString: raw)
        unsetenv(handedOverVariable)
        return value.isEmpty ? nil : value
    }
}
