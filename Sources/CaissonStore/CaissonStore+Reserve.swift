#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CaissonCore

/// Room for the journal on a nearly full disk.
///
/// Before an update touches the host, `reserveSpace()` makes sure `<state-dir>/journal.reserve`
/// holds `journalReserveBytes` of allocated blocks (or fails with `store.disk_full`, nothing
/// touched). When a journal write then finds the disk full, the store deletes the reserve and
/// tries the write once more: the attempt can go on being journaled (and its restore too) in the
/// room the reserve held. The next update allocates the reserve again.
extension CaissonStore {
    public static let reserveFileName = "journal.reserve"
    /// What the journal of one attempt needs at most, with a wide margin (an attempt writes a few
    /// dozen snapshots of a few KiB each, in the WAL and then the database).
    nonisolated(unsafe) public static var journalReserveBytes: Int64 = 4 << 20

    var reservePath: String { FileSystem.joined(stateDirectory, Self.reserveFileName) }

    /// Allocates the reserve (no-op when it is already whole). Throws `store.disk_full` when the
    /// disk lacks the room, `store.io_failed` on other errors.
    public func reserveSpace() throws {
        let bytes = Self.journalReserveBytes
        let fd = open(reservePath, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let e = errno
            throw reserveError(e, "cannot create \(reservePath)")
        }
        defer { Glibc.close(fd) }
        var st = stat()
        // Already whole (blocks allocated, not a sparse file).
        if fstat(fd, &st) == 0, Int64(st.st_size) >= bytes, Int64(st.st_blocks) * 512 >= bytes { return }
        var rc = posix_fallocate(fd, 0, off_t(bytes))
        if rc == EOPNOTSUPP || rc == EINVAL {
            // A file system without fallocate: write the zeros.
            rc = 0
            let chunk = [UInt8](repeating: 0, count: 1 << 16)
            var off: Int64 = 0
            while off < bytes {
                let n = chunk.withUnsafeBytes { pwrite(fd, $0.baseAddress, min(chunk.count, Int(bytes - off)), off_t(off)) }
                if n < 0 {
                    if errno == EINTR { continue }
                    rc = errno
                    break
                }
                off += Int64(n)
            }
        }
        if rc == 0, fsync(fd) != 0 { rc = errno }
        if rc != 0 {
            // Give back whatever part was allocated: a failed reserve must not eat the disk.
            _ = ftruncate(fd, 0)
            throw reserveError(rc, "cannot reserve \(bytes >> 20) MiB for the update journal in \(reservePath)")
        }
    }

    /// Deletes the reserve; true if there was one.
    @discardableResult
    func releaseReserve() -> Bool {
        var st = stat()
        guard lstat(reservePath, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size > 0 else { return false }
        return unlink(reservePath) == 0
    }

    private func reserveError(_ code: Int32, _ what: String) -> CaissonError {
        if code == ENOSPC || code == EDQUOT {
            return CaissonError("store.disk_full",
                                "the disk holding the state directory \(stateDirectory) is too full for the update journal "
                                    + "(\(Self.journalReserveBytes >> 20) MiB are needed); the service was not changed. Free some space "
                                    + "(for example `caisson package cleanup`) and run the command again.",
                                cause: "\(what): \(FileSystem.errnoText(code))")
        }
        return CaissonError("store.io_failed", "\(what): \(FileSystem.errnoText(code)); the service was not changed.")
    }
}
