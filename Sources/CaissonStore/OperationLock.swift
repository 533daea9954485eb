#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CaissonCore
import Foundation
import Synchronization

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
        let holder = LockHolder(operation: operation, pid: pid, since: since)
        switch try tryAcquire(directory: stateDir, fileName: fileName, holder: holder) {
        case .success(let lock): return lock
        case .failure(let busy):
            let who = busy.holder.map { ": \($0.description)" } ?? " (its description is not written yet)"
            throw CaissonError("lock.busy", "another Caisson operation is running\(who). Wait for "
                                   + "it to finish and try again.")
        }
    }

    struct Busy: Error {
        var holder: LockHolder?
    }

    /// Takes the lock `directory/fileName` without waiting (creating the directory, mode 0700,
    /// and the file if needed); `.failure` names the holder when it is taken. Throws `lock.failed`
    /// on I/O errors.
    static func tryAcquire(directory: String, fileName: String, holder: LockHolder) throws -> Result<OperationLock, Busy> {
        try FileSystem.makeDirectory(directory, code: "lock.failed")
        let path = FileSystem.joined(directory, fileName)
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
                return .failure(Busy(holder: current))
            }
            close(fd)
            throw CaissonError("lock.failed", "cannot lock \(path): \(FileSystem.errnoText(err))")
        }
        let lock = OperationLock(path: path, holder: holder, descriptor: fd)
        // Best effort: the lock itself is the flock; the description is for the next operator.
        if let data = try? JSONEncoder.sorted.encode(holder) {
            _ = ftruncate(fd, 0)
            let bytes = [UInt8](data) + [0x0A]
            _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
            _ = fsync(fd)
        }
        return .success(lock)
    }

    /// The holder recorded in the lock file, if any (for `status` output). Does not lock.
    public static func currentHolder(stateDir: String) -> LockHolder? {
        currentHolder(path: FileSystem.joined(stateDir, fileName))
    }

    static func currentHolder(path: String) -> LockHolder? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
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

/// Locks as files in one directory, each an exclusive `flock` (see `OperationLock`): the state
/// directory's `lock`, or the host-wide service locks (`<dir>/<name>.lock`, default directory
/// `/run/caisson/locks`). A name is one path component of `[A-Za-z0-9._+-]`.
public final class FileLockSpace: LockSpace {
    public let directory: String
    /// The file of lock `name`: `name` itself for the state lock, `name.lock` otherwise.
    let suffix: String

    public init(directory: String, suffix: String = ".lock") {
        self.directory = directory
        self.suffix = suffix
    }

    /// The state directory's lock space (its lock file is `<state-dir>/lock`, as before).
    public static func stateDirectory(_ path: String) -> FileLockSpace { FileLockSpace(directory: path, suffix: "") }

    func fileName(_ name: String) throws -> String {
        guard !name.isEmpty, name != ".", name != "..",
              name.unicodeScalars.allSatisfy({ ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) || ".+_-".unicodeScalars.contains($0) }) else {
            throw CaissonError("lock.failed", "invalid lock name \(name)")
        }
        return name + suffix
    }

    public func tryLock(_ name: String, holder: LockHolder) throws -> LockAttempt {
        switch try OperationLock.tryAcquire(directory: directory, fileName: try fileName(name), holder: holder) {
        case .success(let lock): return .acquired(HeldLock(name: name, holder: holder, onRelease: { lock.release() }))
        case .failure(let busy): return .busy(busy.holder)
        }
    }

    /// The description in the lock file, when its process is alive (a SIGKILLed holder's
    /// description stays behind, but its lock does not).
    public func holder(of name: String) -> LockHolder? {
        guard let file = try? fileName(name),
              let h = OperationLock.currentHolder(path: FileSystem.joined(directory, file)) else { return nil }
        guard h.pid > 0, kill(h.pid, 0) == 0 || errno == EPERM else { return nil }
        return h
    }
}
