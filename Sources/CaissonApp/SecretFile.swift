import CaissonCore
#if canImport(Glibc)
import Glibc
#endif

/// Writing a file whose mode matters from its first byte: created with that mode by
/// `open(O_CREAT | O_EXCL)` (the process umask can only narrow it, nothing chmods it later), never
/// through a link, written and flushed before it gets its name.
///
/// The one writer of every secret Caisson keeps on disk: the signing key of `key generate`, the
/// age identity of `key generate --age`, the console's sign-in token, password hash and sessions.
public enum SecretFile {
    /// Writes `bytes` to `path` with `mode`. Without `replace`, an existing `path` (a file, a link)
    /// is refused (`key.exists`); with it, the new file replaces it atomically (written aside,
    /// renamed over it: a link at `path` is replaced, never followed). Failures throw `failureCode`.
    public static func write(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o600, replace: Bool,
                             failureCode: String = "key.write_failed") throws {
        // Replacing: written aside, renamed over the old file. Otherwise: created under its name,
        // refused if anything (a file, a link) is there.
        let temp = replace ? Paths.directory(of: path) + "/." + Paths.lastComponent(of: path) + ".new-\(getpid())" : path
        if replace { unlink(temp) }
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else {
            let e = errno
            if e == EEXIST && !replace { throw CaissonError("key.exists", "\(path) already exists (use --force to overwrite)") }
            throw CaissonError(failureCode, "could not create \(path): \(String(cString: strerror(e)))")
        }
        var ok = true
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                ok = false
                break
            }
            off += n
        }
        if ok && fsync(fd) != 0 { ok = false }
        let e = errno
        close(fd)
        guard ok else {
            unlink(temp)
            throw CaissonError(failureCode, "could not write \(path): \(String(cString: strerror(e)))")
        }
        if replace, rename(temp, path) != 0 {
            let e = errno
            unlink(temp)
            throw CaissonError(failureCode, "could not write \(path): \(String(cString: strerror(e)))")
        }
        // The name too survives a power cut.
        let dfd = open(Paths.directory(of: path), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }
}
