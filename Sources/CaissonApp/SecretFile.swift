import CaissonCore
#if canImport(Glibc)
import Glibc
#endif

/// Writing a file whose mode matters from its first byte (a secret key): created with that mode
/// by `open(O_CREAT | O_EXCL)` (the process umask can only narrow it), never through a link,
/// written and flushed before it gets its name.
enum SecretFile {
    /// Writes `bytes` to `path` with `mode`. Without `replace`, an existing `path` is refused
    /// (`key.exists`); with it, the new file replaces it atomically (rename).
    static func write(_ path: String, _ bytes: [UInt8], mode: mode_t, replace: Bool) throws {
        // Replacing: written aside, renamed over the old file. Otherwise: created under its name,
        // refused if anything (a file, a link) is there.
        let temp = replace ? Paths.directory(of: path) + "/." + Paths.lastComponent(of: path) + ".new-\(getpid())" : path
        if replace { unlink(temp) }
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else {
            let e = errno
            if e == EEXIST && !replace { throw CaissonError("key.exists", "\(path) already exists (use --force to overwrite)") }
            throw CaissonError("key.write_failed", "could not create \(path): \(String(cString: strerror(e)))")
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
            throw CaissonError("key.write_failed", "could not write \(path): \(String(cString: strerror(e)))")
        }
        if replace, rename(temp, path) != 0 {
            let e = errno
            unlink(temp)
            throw CaissonError("key.write_failed", "could not write \(path): \(String(cString: strerror(e)))")
        }
    }
}
