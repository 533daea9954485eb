import CaissonCore
import CaissonStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The hand-over seam for long-running front ends (issue 14 item 5, the console): a process that
/// keeps running while `caisson self-update` replaces its executable asks, now and then, whether
/// that happened, and then restarts itself on the new executable (`reexecInstalled`) or tells the
/// operator to. The self-update logic stays here; the front end decides when to ask and how to
/// show it.
public struct SelfUpdateHandOver: Sendable, Equatable, Encodable {
    /// The version this process runs.
    public var runningVersion: String
    /// The version now installed at `installPath` by the self-update (or rollback) that finished.
    public var installedVersion: String
    public var installPath: String
    public var selfUpdateID: String
    /// `update` or `rollback`.
    public var kind: String
    public var finishedAt: String
    /// One sentence for the operator.
    public var message: String

    enum CodingKeys: String, CodingKey {
        case runningVersion = "running_version"
        case installedVersion = "installed_version"
        case installPath = "install_path"
        case selfUpdateID = "self_update_id"
        case kind
        case finishedAt = "finished_at"
        case message
    }
}

extension Application {
    /// The path this process was started from (`/proc/self/exe`; after a swap the kernel says
    /// "PATH (deleted)": the path is still the install path).
    public static func runningExecutablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        var path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if path.hasSuffix(" (deleted)") { path.removeLast(" (deleted)".count) }
        return path
    }

    /// Whether a self-update (or `self-update --rollback`) that finished at or after `since` (the
    /// front end's start, RFC 3339) left another version at `installPath` (default: the path this
    /// process runs from) than the one running. nil: nothing to hand over.
    public func selfUpdateHandOver(since: String, installPath: String? = nil) throws -> SelfUpdateHandOver? {
        guard let path = installPath ?? Self.runningExecutablePath() else { return nil }
        let records = try store().selfUpdates(limit: 20).records
        // Newest first: the last word on what is installed at this path.
        for r in records.sorted(by: { ($0.finishedAt ?? $0.startedAt) > ($1.finishedAt ?? $1.startedAt) })
        where r.installPath == path && r.status.isTerminal {
            guard let finished = r.finishedAt, finished >= since else { return nil }
            let installed: String
            switch (r.kind, r.status) {
            case ("update", .succeeded), ("rollback", .rolledBack): installed = r.toVersion
            case ("update", _): installed = r.fromVersion
            default: return nil
            }
            guard installed != Self.version else { return nil }
            let what = r.kind == "rollback" ? "rolled back to" : "updated to"
            return SelfUpdateHandOver(
                runningVersion: Self.version, installedVersion: installed, installPath: path, selfUpdateID: r.selfUpdateID,
                kind: r.kind, finishedAt: finished,
                message: "Caisson was \(what) \(installed) at \(path) (self-update \(r.selfUpdateID.prefix(8))); this process still runs \(Self.version): restart it to use the installed one.")
        }
        return nil
    }

    /// Replaces this process by the installed executable with `arguments` (argv without argv[0]),
    /// keeping its pid, environment and descriptors not marked close-on-exec. Returns only when
    /// exec failed (the error says why; the caller keeps running and tells the operator).
    public static func reexecInstalled(_ handOver: SelfUpdateHandOver, arguments: [String]) -> CaissonError {
        let argv = [handOver.installPath] + arguments
        var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) }
        cargs.append(nil)
        defer { for p in cargs { free(p) } }
        execv(handOver.installPath, cargs)
        return CaissonError("self_update.reexec_failed", "could not restart on \(handOver.installPath): \(ByteSourceError.describe(errno: errno))")
    }
}
