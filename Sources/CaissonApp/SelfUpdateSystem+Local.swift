import CaissonCore
import CaissonStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The self-update machine's seam on this machine: the install directory, the state directory's
/// store, and child processes with a deadline.
final class LocalSelfUpdateSystem: SelfUpdateSystem {
    let store: CaissonStore
    let stateDirectory: String
    /// Variables removed from the environment of a test-run (the copy's state directory is given
    /// on the command line; the device's must never leak into it).
    static let scrubbedVariables = ["CAISSON_STATE_DIR", "CAISSON_SERVICES"]

    init(store: CaissonStore, stateDirectory: String) {
        self.store = store
        self.stateDirectory = stateDirectory
    }

    static func rollbackPointPath(stateDirectory: String) -> String { stateDirectory + "/self-update/rollback-point.json" }

    // Test hook, in debug builds only (the tests' build): `CAISSON_FAULT_SELF_UPDATE=op:ERRNO[@n],…`
    // makes the n-th call (default: every call) of `op` fail with that errno, e.g.
    // `write_executable:ENOSPC`, `rename:EXDEV`, `sync_directory:EIO`. A release build has no hook.
    private var faultCounts: [String: Int] = [:]
    private func fault(_ op: String, _ path: String) throws(SystemCallError) {
        #if DEBUG
        guard let spec = ProcessInfo.processInfo.environment["CAISSON_FAULT_SELF_UPDATE"] else { return }
        faultCounts[op, default: 0] += 1
        for item in spec.split(separator: ",") {
            let parts = item.split(separator: ":")
            guard parts.count == 2, parts[0] == op else { continue }
            let value = parts[1].split(separator: "@")
            if value.count == 2, Int(value[1]) != faultCounts[op] { continue }
            let codes: [String: Int32] = ["ENOSPC": ENOSPC, "EXDEV": EXDEV, "ETXTBSY": ETXTBSY, "EIO": EIO, "EACCES": EACCES,
                                          "EPERM": EPERM, "EBUSY": EBUSY, "EROFS": EROFS]
            if let code = codes[String(value[0])] { throw SystemCallError(errno: code, operation: op + " (injected)", path: path) }
        }
        #endif
    }

    func freeBytes(_ directory: String) throws(SystemCallError) -> Int64? {
        try fault("free_bytes", directory)
        var s = statvfs()
        guard statvfs(directory, &s) == 0 else { throw SystemCallError(errno: errno, operation: "statvfs", path: directory) }
        #if DEBUG
        if let v = ProcessInfo.processInfo.environment["CAISSON_FAULT_SELF_UPDATE_FREE_BYTES"], let n = Int64(v) { return n }
        #endif
        return Int64(s.f_bavail) * Int64(s.f_frsize)
    }

    func writeExecutable(_ source: SelfUpdateSource, to path: String) throws(SystemCallError) {
        try fault("write_executable", path)
        let src = open(source.packagePath, O_RDONLY | O_CLOEXEC)
        guard src >= 0 else { throw SystemCallError(errno: errno, operation: "open", path: source.packagePath) }
        defer { close(src) }
        let dst = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o700)
        guard dst >= 0 else { throw SystemCallError(errno: errno, operation: "create", path: path) }
        var ok = false
        defer {
            if !ok { close(dst); unlink(path) }
        }
        var hasher = SHA256()
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var done: Int64 = 0
        while done < source.size {
            let want = Int(min(Int64(chunk), source.size - done))
            var n: Int
            repeat { n = pread(src, buffer.baseAddress, want, off_t(source.offset + done)) } while n < 0 && errno == EINTR
            if n < 0 { throw SystemCallError(errno: errno, operation: "read", path: source.packagePath) }
            if n == 0 { throw SystemCallError(errno: EIO, operation: "read", path: source.packagePath, message: "the package ends before the executable does (was it changed?)") }
            try writeAll(dst, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), path: path)
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            done += Int64(n)
        }
        guard hasher.hex == source.sha256 else {
            throw SystemCallError(errno: EIO, operation: "check", path: source.packagePath,
                                  message: "the executable read from the package is not the one validated (SHA-256 \(hasher.hex)); was the package changed?")
        }
        // The mode from the first byte is 0700; the final mode once the content is complete.
        if fchmod(dst, 0o755) != 0 { throw SystemCallError(errno: errno, operation: "chmod", path: path) }
        try fault("fsync", path)
        if fsync(dst) != 0 { throw SystemCallError(errno: errno, operation: "fsync", path: path) }
        if close(dst) != 0 { ok = true; unlink(path); throw SystemCallError(errno: errno, operation: "close", path: path) }
        ok = true
    }

    private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(SystemCallError) {
        var off = 0
        while off < bytes.count {
            let w = write(fd, bytes.baseAddress! + off, bytes.count - off)
            if w < 0 {
                if errno == EINTR { continue }
                throw SystemCallError(errno: errno, operation: "write", path: path)
            }
            off += w
        }
    }

    func syncDirectory(_ path: String) throws(SystemCallError) {
        try fault("sync_directory", path)
        try Self.fsyncDirectory(path)
    }

    static func fsyncDirectory(_ path: String) throws(SystemCallError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError(errno: errno, operation: "open", path: path) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw SystemCallError(errno: errno, operation: "fsync", path: path) }
    }

    func digest(_ path: String) throws(SystemCallError) -> String? {
        try fault("digest", path)
        return try Self.digest(path)
    }

    static func digest(_ path: String) throws(SystemCallError) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw SystemCallError(errno: errno, operation: "open", path: path)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SystemCallError(errno: errno, operation: "stat", path: path) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        var hasher = SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            var n: Int
            repeat { n = read(fd, buffer.baseAddress, buffer.count) } while n < 0 && errno == EINTR
            if n < 0 { throw SystemCallError(errno: errno, operation: "read", path: path) }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return hasher.hex
    }

    func run(_ run: SelfUpdateRun) -> SelfUpdateRunResult {
        var env = ProcessInfo.processInfo.environment
        for v in Self.scrubbedVariables { env[v] = nil }
        env["NO_COLOR"] = "1"
        return DeadlineProcess.run(run.executable, run.arguments, environment: env, timeoutMillis: run.timeoutMillis)
    }

    func copyStore(to path: String, recordAfterRestore: SelfUpdateRecord?) throws(SystemCallError) {
        try fault("copy_store", path)
        try store.copy(to: path, recordAfterRestore: recordAfterRestore)
    }

    func storeSchemaVersion() throws(SystemCallError) -> Int {
        try fault("store_schema_version", store.databasePath)
        return try CaissonStore.schemaVersion(ofDatabaseAt: store.databasePath)
    }

    func restoreStore(from path: String) throws(SystemCallError) {
        try fault("restore_store", path)
        try CaissonStore.restore(databaseAt: store.databasePath, from: path)
    }

    func removeFile(_ path: String) throws(SystemCallError) {
        try fault("remove_file", path)
        if unlink(path) != 0 && errno != ENOENT { throw SystemCallError(errno: errno, operation: "unlink", path: path) }
    }

    func removeTree(_ path: String) throws(SystemCallError) {
        try fault("remove_tree", path)
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw SystemCallError(errno: errno, operation: "stat", path: path)
        }
        do { try FileManager.default.removeItem(atPath: path) } catch {
            throw SystemCallError(errno: EIO, operation: "remove", path: path, message: error.localizedDescription)
        }
    }

    func link(_ from: String, _ to: String) throws(SystemCallError) {
        try fault("link", to)
        if Glibc.link(from, to) != 0 { throw SystemCallError(errno: errno, operation: "link", path: to) }
    }

    func copyFile(_ from: String, _ to: String) throws(SystemCallError) {
        try fault("copy_file", to)
        let src = open(from, O_RDONLY | O_CLOEXEC)
        guard src >= 0 else { throw SystemCallError(errno: errno, operation: "open", path: from) }
        defer { close(src) }
        var st = stat()
        guard fstat(src, &st) == 0 else { throw SystemCallError(errno: errno, operation: "stat", path: from) }
        let dst = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o700)
        guard dst >= 0 else { throw SystemCallError(errno: errno, operation: "create", path: to) }
        var ok = false
        defer { if !ok { close(dst); unlink(to) } }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            var n: Int
            repeat { n = read(src, buffer.baseAddress, buffer.count) } while n < 0 && errno == EINTR
            if n < 0 { throw SystemCallError(errno: errno, operation: "read", path: from) }
            if n == 0 { break }
            try writeAll(dst, UnsafeRawBufferPointer(rebasing: buffer[0..<n]), path: to)
        }
        if fchmod(dst, st.st_mode & 0o7777) != 0 { throw SystemCallError(errno: errno, operation: "chmod", path: to) }
        if fsync(dst) != 0 { throw SystemCallError(errno: errno, operation: "fsync", path: to) }
        ok = true
        close(dst)
    }

    func rename(_ from: String, _ to: String) throws(SystemCallError) {
        try fault("rename", to)
        if Glibc.rename(from, to) != 0 { throw SystemCallError(errno: errno, operation: "rename", path: from) }
    }

    func writeRollbackPoint(_ point: SelfUpdateRollbackPoint?) throws(SystemCallError) {
        let path = Self.rollbackPointPath(stateDirectory: stateDirectory)
        try fault("write_rollback_point", path)
        try Self.writeRollbackPoint(point, path: path)
    }

    static func writeRollbackPoint(_ point: SelfUpdateRollbackPoint?, path: String) throws(SystemCallError) {
        let dir = Paths.directory(of: path)
        guard let point else {
            if unlink(path) != 0 && errno != ENOENT { throw SystemCallError(errno: errno, operation: "unlink", path: path) }
            try fsyncDirectory(dir)
            return
        }
        if mkdir(dir, 0o700) != 0 && errno != EEXIST { throw SystemCallError(errno: errno, operation: "mkdir", path: dir) }
        let bytes: [UInt8]
        do { bytes = try JSONCoding.encode(point, pretty: true) + [0x0a] } catch {
            throw SystemCallError(errno: EINVAL, operation: "encode", path: path, message: "\(error)")
        }
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw SystemCallError(errno: errno, operation: "create", path: tmp) }
        var written = 0
        while written < bytes.count {
            let w = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if w < 0 {
                if errno == EINTR { continue }
                let e = errno
                close(fd)
                unlink(tmp)
                throw SystemCallError(errno: e, operation: "write", path: tmp)
            }
            written += w
        }
        if fsync(fd) != 0 {
            let e = errno
            close(fd)
            unlink(tmp)
            throw SystemCallError(errno: e, operation: "fsync", path: tmp)
        }
        close(fd)
        if Glibc.rename(tmp, path) != 0 { throw SystemCallError(errno: errno, operation: "rename", path: tmp) }
        try fsyncDirectory(dir)
    }

    /// The rollback point, if there is one (a damaged file reads as none, with the reason).
    static func readRollbackPoint(stateDirectory: String) -> Result<SelfUpdateRollbackPoint?, CaissonError> {
        let path = rollbackPointPath(stateDirectory: stateDirectory)
        guard let data = FileManager.default.contents(atPath: path) else { return .success(nil) }
        do {
            return .success(try JSONCoding.decode(SelfUpdateRollbackPoint.self, from: Array(data)))
        } catch {
            return .failure(CaissonError("self_update.rollback_point_unreadable", "the rollback point \(path) cannot be read: \(error)"))
        }
    }
}

/// A child process with a deadline, in a process group of its own (a timeout stops it and
/// anything it started), stdin from /dev/null, stdout and stderr captured (the first 64 KiB of
/// stdout, the last 4 KiB of stderr). An executable the kernel refuses (ENOEXEC for another CPU,
/// ETXTBSY) is reported with its errno, not as an exit status.
enum DeadlineProcess {
    static func run(_ executable: String, _ arguments: [String], environment: [String: String],
                    timeoutMillis: Int64) -> SelfUpdateRunResult {
        let base = NSTemporaryDirectory() + "caisson-run-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let outPath = base + ".out", errPath = base + ".err"
        defer { unlink(outPath); unlink(errPath) }
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        let flags = O_WRONLY | O_CREAT | O_TRUNC
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, flags, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, flags, 0o600)
        var defaults = sigset_t()
        sigfillset(&defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        let argv = [executable] + arguments
        let envp = environment.keys.sorted().map { "\($0)=\(environment[$0] ?? "")" }
        var pid = pid_t()
        let spawned = withCStrings(argv) { a in withCStrings(envp) { e in posix_spawn(&pid, executable, &actions, &attributes, a, e) } }
        guard spawned == 0 else { return SelfUpdateRunResult(outcome: .notStarted(spawned)) }
        let start = DispatchTime.now().uptimeNanoseconds
        var killedAt: UInt64?
        var outcome: SelfUpdateRunResult.Outcome
        while true {
            var status: Int32 = 0
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid {
                if killedAt != nil { outcome = .timedOut }
                else if status & 0x7f == 0 { outcome = .exited((status >> 8) & 0xff) }
                else { outcome = .signalled(status & 0x7f) }
                kill(-pid, SIGKILL)
                break
            }
            if w < 0 && errno != EINTR { kill(-pid, SIGKILL); outcome = .signalled(SIGKILL); break }
            let elapsed = (DispatchTime.now().uptimeNanoseconds - start) / 1_000_000
            if let k = killedAt {
                if elapsed > k + 2000 { kill(-pid, SIGKILL) }
            } else if elapsed > UInt64(max(0, timeoutMillis)) {
                kill(-pid, SIGTERM)
                killedAt = elapsed
            }
            usleep(10_000)
        }
        let out = (try? FileHandle(forReadingFrom: URL(fileURLWithPath: outPath)).read(upToCount: 64 * 1024)) ?? nil
        let err = FileManager.default.contents(atPath: errPath) ?? Data()
        return SelfUpdateRunResult(outcome: outcome, stdout: String(decoding: out ?? Data(), as: UTF8.self),
                                   stderr: String(decoding: err.suffix(4096), as: UTF8.self))
    }

    private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return body(pointers)
    }
}
