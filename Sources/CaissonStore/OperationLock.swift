#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CaissonCore
import Foundation
import Synchronization

/// Who holds the operation lock, as written into `<state-dir>/lock`.
public struct LockHolder: Sendable, Codable, Equatable {
    public var operation: String
    public var pid: Int32
    public var since: String

    public init(operation: String, pid: Int32, since: String) {
        self.operation = operation
        self.pid = pid
        self.since = since
    }

    /// `package load frontend (pid 1234, since 2026-03-16T18:30:00Z)`
    public var description: String { "\(operation) (pid \(pid), since \(since))" }
}

/// One Caisson operation at a time per state directory (FORMATS §8 item 9): an exclusive
/// `flock` on `<state-dir>/lock`. The kernel drops the lock when the holding process dies, so a
/// killed Caisson never blocks the next one. The lock file is never deleted (deleting a lock file
/// races with the next locker); its content names the current holder and is cleared on release.
/// The descriptor is close-on-exec, so child processes (docker compose) do not inherit the lock.
public final class OperationLock: Sendable {
    public static let fileName = "lock"
    /// Bytes of holder description read back at most.
    static let maxDescriptionBytes = 4096

    public let path: String
    public let holder: LockHolder
    private let descriptor: Mutex<Int32>

    private init(path: String, holder: LockHolder, descriptor: Int32) {
        self.path = path
        self.holder = holder
        self.descriptor = Mutex(descriptor)
    }

    /// Takes the lock without waiting, creating the state directory (mode 0700) and lock file if
    /// needed. Throws `lock.busy` naming the holder when another operation has it, `lock.failed`
    /// on I/O errors.
    public static func acquire(stateDir: String, operation: String, pid: Int32 = getpid(),
                               since: String) throws -> OperationLock {
        try FileSystem.makeDirectory(stateDir, code: "lock.failed")
        let path = FileSystem.joined(stateDir, fileName)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            let err = errno
            throw CaissonError("lock.failed", "cannot open the lock file \(path): \(FileSystem.errnoText(err))")
        }
        var rc: Int32
        repeat { rc = flock(fd, LOCK_EX | LOCK_NB) } while rc != 0 && errno == EINTR
        if rc != 0 {
            let err = errno
            if err == EWOULDBLOCK {
                let current = readHolder(fd)
                close(fd)
                let who = current.map { ": \($0.description)" } ?? " (its description is not written yet)"
                throw CaissonError("lock.busy", "another Caisson operation is running\(who). Wait for "
                                       + "it to finish and try again.")
            }
            close(fd)
            throw CaissonError("lock.failed", "cannot lock \(path): \(FileSystem.errnoText(err))")
        }
        let holder = LockHolder(operation: operation, pid: pid, since: since)
        let lock = OperationLock(path: path, holder: holder, descriptor: fd)
        // Best effort: the lock itself is the flock; the description is for the next operator.
        if let data = try? JSONEncoder.sorted.encode(holder) {
            _ = ftruncate(fd, 0)
            let bytes = [UInt8](data) + [0x0A]
            _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            _ = fsync(fd)
        }
        return lock
    }

    /// The holder recorded in the lock file, if any (for `status` output). Does not lock.
    public static func currentHolder(stateDir: String) -> LockHolder? {
        let fd = open(FileSystem.joined(stateDir, fileName), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return readHolder(fd)
    }

    private static func readHolder(_ fd: Int32) -> LockHolder? {
        var buffer = [UInt8](repeating: 0, count: maxDescriptionBytes)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return try? JSONDecoder().decode(LockHolder.self, from: Data(buffer.prefix(n)))
    }

    public var isHeld: Bool { descriptor.withLock { $0 >= 0 } }

    /// `fcntl(F_GETFD)` of the lock's descriptor (tests check close-on-exec); -1 when released.
    var descriptorFlags: Int32 { descriptor.withLock { $0 >= 0 ? fcntl($0, F_GETFD) : -1 } }

    /// Clears the holder description and releases the lock. Idempotent; also done by deinit.
    public func release() {
        descriptor.withLock { fd in
            guard fd >= 0 else { return }
            _ = ftruncate(fd, 0)
            _ = flock(fd, LOCK_UN)
            close(fd)
            fd = -1
        }
    }

    deinit { release() }
}

extension JSONEncoder {
    fileprivate static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}
