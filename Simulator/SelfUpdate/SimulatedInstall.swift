import CaissonCore
#if canImport(Glibc)
import Glibc
#endif

/// The self-update machine's world, simulated (issue 14): an install directory and a state
/// directory on a file system that models durability (what an fsync made durable, and what a
/// power cut takes away), free space, hard links, atomic renames; the store (its schema version,
/// copies, a restore); and the executables that can be run, each a fake binary whose content says
/// how it behaves. Faults: any call can fail with an errno, once or from a given call on, and the
/// process can die in the middle of a call (leaving what the call had done so far).
public final class SimulatedInstall: SelfUpdateSystem {
    /// How a fake executable behaves.
    public enum Behaviour: String, Sendable, CaseIterable {
        case good
        /// `--version` prints another version than the package's.
        case wrongVersion
        case versionExits
        case versionHangs
        case selfTestFails
        case selfTestHangs
        case selfTestCrashes
        /// Built for another CPU: the kernel refuses to run it.
        case wrongMachine
        /// Cut short: the kernel refuses it (or it crashes).
        case truncated
        /// Its first run migrates the store, then fails.
        case firstRunFails
        /// Its first run crashes before touching the store.
        case firstRunCrashes
    }

    /// A fake executable: its bytes encode version, behaviour and the schema its first run
    /// migrates the store to.
    public struct Binary: Equatable, Sendable {
        public var version: String
        public var behaviour: Behaviour
        public var schema: Int

        public init(version: String, behaviour: Behaviour = .good, schema: Int) {
            self.version = version
            self.behaviour = behaviour
            self.schema = schema
        }

        public var bytes: [UInt8] {
            let text = "SIMBIN v=\(version) b=\(behaviour.rawValue) s=\(schema) "
            var b = Array(text.utf8) + [UInt8](repeating: 0x2e, count: max(0, 200 - text.utf8.count))
            if behaviour == .truncated { b = Array(b.prefix(20)) }
            return b
        }

        public var sha256: String { SHA256.hash(bytes).hex }

        static func parse(_ bytes: [UInt8]) -> Binary? {
            guard bytes.count == 200 else { return nil }
            let text = String(decoding: bytes, as: UTF8.self)
            let parts = text.split(separator: " ")
            guard parts.count >= 4, parts[0] == "SIMBIN" else { return nil }
            func field(_ p: Substring, _ key: String) -> String? {
                p.hasPrefix(key + "=") ? String(p.dropFirst(key.count + 1)) : nil
            }
            guard let v = field(parts[1], "v"), let b = field(parts[2], "b").flatMap(Behaviour.init(rawValue:)),
                  let s = field(parts[3], "s").flatMap({ Int($0) }) else { return nil }
            return Binary(version: v, behaviour: b, schema: s)
        }
    }

    struct Inode {
        var data: [UInt8]
        /// What survives a power cut (nil: never fsynced: an empty file).
        var durable: [UInt8]?
    }

    /// Live directory entries (path → inode) and those a power cut leaves (made durable by a
    /// directory fsync; a file created and fsynced in a directory never synced is lost).
    private(set) var live: [String: Int] = [:]
    private(set) var durable: [String: Int] = [:]
    private var inodes: [Int: Inode] = [:]
    private var nextInode = 1

    public var freeBytes: Int64
    public var stateDirectory: String
    /// The store: its schema version, and its copies (path → schema version and the records of
    /// the journal at the time, with the record a restore must find).
    public var storeSchema: Int
    public let journal: InMemorySelfUpdateJournal
    struct StoreCopy {
        var schema: Int
        var records: [SelfUpdateRecord]
        var events: [AuditEvent]
    }
    private var copies: [String: StoreCopy] = [:]

    /// Every call, in order (`op path`), and every run of an executable with its outcome.
    public private(set) var calls: [String] = []
    public private(set) var runs: [(sha256: String, arguments: [String], outcome: SelfUpdateRunResult.Outcome)] = []
    /// First runs that confirmed, and the live store paths a self-test ever ran against (must be none).
    public private(set) var selfTestsOnLiveStore = 0

    /// Fault: the call with this index (0-based over every call) fails with this errno.
    public var failCall: (index: Int, errno: Int32)?
    /// The process dies during the call with this index (after doing part of it).
    public var dieDuringCall: Int?

    public init(stateDirectory: String, freeBytes: Int64 = 1 << 30, storeSchema: Int, journal: InMemorySelfUpdateJournal) {
        self.stateDirectory = stateDirectory
        self.freeBytes = freeBytes
        self.storeSchema = storeSchema
        self.journal = journal
    }

    // MARK: World set-up and inspection

    /// Puts a file in place, durable (as after an installation and a sync).
    public func install(_ path: String, _ bytes: [UInt8]) {
        let i = newInode(bytes, durable: true)
        live[path] = i
        durable[path] = i
    }

    public func contents(_ path: String) -> [UInt8]? { live[path].flatMap { inodes[$0]?.data } }
    public func exists(_ path: String) -> Bool { live[path] != nil }
    /// Paths in a directory, sorted.
    public func listing(_ directory: String) -> [String] {
        live.keys.filter { Paths.directory(of: $0) == directory }.sorted()
    }

    /// A power cut: every directory falls back to its last fsync, every file to its last fsync.
    public func powerCut() {
        live = durable
        for (k, var inode) in inodes {
            inode.data = inode.durable ?? []
            inodes[k] = inode
        }
    }

    private func newInode(_ data: [UInt8], durable d: Bool) -> Int {
        let i = nextInode
        nextInode += 1
        inodes[i] = Inode(data: data, durable: d ? data : nil)
        return i
    }

    // MARK: Faults

    private var callIndex = 0
    /// Set when the process "dies" in a call: the next journal write crashes.
    public private(set) var died = false

    private func enter(_ op: String, _ path: String) throws(SystemCallError) -> Bool {
        let index = callIndex
        callIndex += 1
        calls.append("\(op) \(path)")
        if dieDuringCall == index {
            died = true
            // The driver writes the outcome next: the process is gone by then.
            journal.crashAtWrite = journal.writeCount
            journal.crashBeforeWrite = true
            return true
        }
        if let f = failCall, f.index == index {
            throw SystemCallError(errno: f.errno, operation: op + " (simulated)", path: path)
        }
        return false
    }

    // MARK: SelfUpdateSystem

    public func freeBytes(_ directory: String) throws(SystemCallError) -> Int64? {
        _ = try enter("free_bytes", directory)
        return freeBytes
    }

    public func writeExecutable(_ source: SelfUpdateSource, to path: String) throws(SystemCallError) {
        let dying = try enter("write_executable", path)
        guard live[path] == nil else { throw SystemCallError(errno: EEXIST, operation: "create", path: path) }
        guard let bytes = package[source.packagePath] else { throw SystemCallError(errno: ENOENT, operation: "open", path: source.packagePath) }
        if dying {
            // Half written, never fsynced.
            live[path] = newInode(Array(bytes.prefix(bytes.count / 2)), durable: false)
            return
        }
        guard freeBytes >= Int64(bytes.count) else { throw SystemCallError(errno: ENOSPC, operation: "write", path: path) }
        guard SHA256.hash(bytes).hex == source.sha256 else { throw SystemCallError(errno: EIO, operation: "check", path: path) }
        freeBytes -= Int64(bytes.count)
        live[path] = newInode(bytes, durable: true)
    }

    /// Package files (path → the executable's bytes inside it).
    public var package: [String: [UInt8]] = [:]

    public func syncDirectory(_ path: String) throws(SystemCallError) {
        if try enter("sync_directory", path) { return }
        for k in Set(live.keys).union(durable.keys) where Paths.directory(of: k) == path {
            durable[k] = live[k]
        }
    }

    public func digest(_ path: String) throws(SystemCallError) -> String? {
        _ = try enter("digest", path)
        return contents(path).map { SHA256.hash($0).hex }
    }

    public func run(_ run: SelfUpdateRun) -> SelfUpdateRunResult {
        let result: SelfUpdateRunResult
        do throws(SystemCallError) {
            if try enter("run", run.executable + " " + run.arguments.joined(separator: " ")) {
                result = SelfUpdateRunResult(outcome: .signalled(SIGKILL))
            } else {
                result = execute(run)
            }
        } catch {
            result = SelfUpdateRunResult(outcome: .notStarted(error.errno))
        }
        runs.append((contents(run.executable).map { SHA256.hash($0).hex } ?? "-", run.arguments, result.outcome))
        return result
    }

    private func execute(_ run: SelfUpdateRun) -> SelfUpdateRunResult {
        guard let bytes = contents(run.executable) else { return SelfUpdateRunResult(outcome: .notStarted(ENOENT)) }
        guard let binary = Binary.parse(bytes) else { return SelfUpdateRunResult(outcome: .notStarted(ENOEXEC)) }
        if binary.behaviour == .wrongMachine { return SelfUpdateRunResult(outcome: .notStarted(ENOEXEC)) }
        switch run.arguments.first {
        case "--version":
            switch binary.behaviour {
            case .versionExits: return SelfUpdateRunResult(outcome: .exited(1), stderr: "boom")
            case .versionHangs: return SelfUpdateRunResult(outcome: .timedOut)
            case .wrongVersion: return SelfUpdateRunResult(outcome: .exited(0), stdout: "caisson 9.9.9\n")
            default: return SelfUpdateRunResult(outcome: .exited(0), stdout: "caisson \(binary.version)\n")
            }
        case "self-test":
            if let i = run.arguments.firstIndex(of: "--state-dir"), i + 1 < run.arguments.count,
               run.arguments[i + 1] == stateDirectory {
                selfTestsOnLiveStore += 1
            }
            switch binary.behaviour {
            case .selfTestFails: return SelfUpdateRunResult(outcome: .exited(1), stdout: #"{"ok":false,"checks":[]}"#)
            case .selfTestHangs: return SelfUpdateRunResult(outcome: .timedOut)
            case .selfTestCrashes: return SelfUpdateRunResult(outcome: .signalled(SIGSEGV))
            default: return SelfUpdateRunResult(outcome: .exited(0), stdout: #"{"ok":true,"checks":[{"name":"store","ok":true}]}"#)
            }
        case "self-update":
            if binary.behaviour == .firstRunCrashes { return SelfUpdateRunResult(outcome: .signalled(SIGSEGV)) }
            // Like `self-update --confirm ID`: only the executable the self-update installed confirms it.
            if let i = run.arguments.firstIndex(of: "--confirm"), i + 1 < run.arguments.count,
               let r = journal.records.first(where: { $0.selfUpdateID == run.arguments[i + 1] }),
               r.toVersion != binary.version || r.status != .probation {
                return SelfUpdateRunResult(outcome: .exited(1), stderr: "[self_update.wrong_executable] not the executable of this self-update")
            }
            storeSchema = max(storeSchema, binary.schema)
            if binary.behaviour == .firstRunFails { return SelfUpdateRunResult(outcome: .exited(1), stderr: "first run failed") }
            return SelfUpdateRunResult(outcome: .exited(0), stdout: #"{"confirmed":"x"}"#)
        default:
            return SelfUpdateRunResult(outcome: .exited(2))
        }
    }

    public func copyStore(to path: String, recordAfterRestore: SelfUpdateRecord?) throws(SystemCallError) {
        let dying = try enter("copy_store", path)
        guard live[path] == nil else { throw SystemCallError(errno: EEXIST, operation: "copy the store to", path: path) }
        if dying { live[path] = newInode(Array("partial".utf8), durable: false); return }
        guard freeBytes >= 4096 else { throw SystemCallError(errno: ENOSPC, operation: "copy the store to", path: path) }
        freeBytes -= 4096
        var records = journal.records
        if let r = recordAfterRestore {
            if let i = records.firstIndex(where: { $0.selfUpdateID == r.selfUpdateID }) { records[i] = r } else { records.append(r) }
        }
        copies[path] = StoreCopy(schema: storeSchema, records: records, events: journal.events)
        // Its file and folder are fsynced.
        let i = newInode(Array("store copy \(path)".utf8), durable: true)
        live[path] = i
        durable[path] = i
    }

    public func storeSchemaVersion() throws(SystemCallError) -> Int {
        _ = try enter("store_schema_version", "")
        return storeSchema
    }

    public func restoreStore(from path: String) throws(SystemCallError) {
        if try enter("restore_store", path) { return }
        guard live[path] != nil, let copy = copies[path] else { throw SystemCallError(errno: ENOENT, operation: "open", path: path) }
        storeSchema = copy.schema
        journal.replace(records: copy.records, events: copy.events)
    }

    public func removeFile(_ path: String) throws(SystemCallError) {
        if try enter("remove_file", path) { return }
        live[path] = nil
    }

    public func removeTree(_ path: String) throws(SystemCallError) {
        if try enter("remove_tree", path) { return }
        for k in live.keys where k == path || k.hasPrefix(path + "/") { live[k] = nil }
    }

    public func link(_ from: String, _ to: String) throws(SystemCallError) {
        if try enter("link", to) { return }
        guard let i = live[from] else { throw SystemCallError(errno: ENOENT, operation: "link", path: from) }
        guard live[to] == nil else { throw SystemCallError(errno: EEXIST, operation: "link", path: to) }
        live[to] = i
    }

    public func copyFile(_ from: String, _ to: String) throws(SystemCallError) {
        if try enter("copy_file", to) { return }
        guard let bytes = contents(from) else { throw SystemCallError(errno: ENOENT, operation: "open", path: from) }
        guard live[to] == nil else { throw SystemCallError(errno: EEXIST, operation: "create", path: to) }
        guard freeBytes >= Int64(bytes.count) else { throw SystemCallError(errno: ENOSPC, operation: "write", path: to) }
        freeBytes -= Int64(bytes.count)
        live[to] = newInode(bytes, durable: true)
    }

    public func rename(_ from: String, _ to: String) throws(SystemCallError) {
        if try enter("rename", from) { return }
        guard let i = live[from] else { throw SystemCallError(errno: ENOENT, operation: "rename", path: from) }
        live[to] = i
        live[from] = nil
    }

    public var rollbackPointPath: String { stateDirectory + "/self-update/rollback-point.json" }
    public private(set) var rollbackPoint: SelfUpdateRollbackPoint?

    public func writeRollbackPoint(_ point: SelfUpdateRollbackPoint?) throws(SystemCallError) {
        if try enter("write_rollback_point", rollbackPointPath) { return }
        // Written to a temporary file, fsynced, renamed, the folder fsynced: all or nothing.
        rollbackPoint = point
        if point == nil {
            live[rollbackPointPath] = nil
            durable[rollbackPointPath] = nil
        } else {
            let i = newInode(Array("point".utf8), durable: true)
            live[rollbackPointPath] = i
            durable[rollbackPointPath] = i
        }
    }

    /// After a power cut the rollback point is what was last written (its writes are durable).
    public func readRollbackPoint() -> SelfUpdateRollbackPoint? { rollbackPoint }
}
