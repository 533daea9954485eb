import CaissonCore
import CaissonStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Staging: `package load` copies the package off the removable medium once, into
/// `<state-dir>/staging/<id>.edgepkg`, hashing while copying, and works from that copy.
extension Application {
    public enum StageOutcome: Sendable {
        case copied(StagedCopy)
        case failed(Issue)
    }

    public struct StagedCopy: Sendable {
        public var packageID: String
        public var path: String
        public var size: Int64
        public var sha256: String
    }

    /// Bytes kept free on the state directory's filesystem beyond the staged package: the
    /// documented operator setting `CAISSON_STAGING_RESERVE_BYTES` (README, "Environment"), else
    /// 32 MiB. A value that is not a non-negative whole number of bytes is refused
    /// (`staging.invalid_reserve`), never silently replaced by the default.
    static func stagingReserve(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> Int64 {
        guard let v = env["CAISSON_STAGING_RESERVE_BYTES"] else { return 32 << 20 }
        guard let n = Int64(v), n >= 0 else {
            throw CaissonError("staging.invalid_reserve",
                               "CAISSON_STAGING_RESERVE_BYTES must be a whole number of bytes (0 or more), not \"\(v)\"")
        }
        return n
    }

    public var stagingDir: String { stateDir + "/staging" }

    static func regularFileSize(_ path: String) -> Int64? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int64(st.st_size)
    }

    /// Copies the package into the staging directory. `nil`: not a readable regular `.edgepkg`
    /// (validation of the original reports why). `.failure`: the copy failed (the partial copy is
    /// gone). Throws `staging.insufficient_space` before copying when the state directory's
    /// filesystem lacks room for the package plus the reserve.
    public func stage(_ path: String) throws -> StageOutcome? {
        let source = Self.absolute(path)
        guard source.hasSuffix(".edgepkg"), let size = Self.regularFileSize(source) else { return nil }
        let dir = stagingDir
        do {
            // A real directory of the state directory: never a link followed elsewhere.
            try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
            try StateDirectory.subdirectory(stateDir, "staging")
        } catch let e as CaissonError {
            throw e
        } catch {
            throw CaissonError("staging.copy_failed", "cannot create the staging directory \(dir): \(error.localizedDescription)")
        }
        let reserve = try Self.stagingReserve()
        if let free = Self.freeBytes(dir) {
            let (need, overflow) = size.addingReportingOverflow(reserve)
            if overflow || free < need {
                throw CaissonError("staging.insufficient_space",
                                   "not enough free space to stage the package: \(dir) has \(Format.bytes(free)) free, the package needs \(Format.bytes(size)) plus a reserve of \(Format.bytes(reserve)); free some space (caisson package cleanup) or use a --state-dir on a larger disk")
            }
        }
        let id = ids.next()
        let dest = "\(dir)/\(id).edgepkg"
        let partial = dest + ".partial"
        let src = open(source, O_RDONLY | O_CLOEXEC)
        guard src >= 0 else {
            return .failed(Issue("package.read_failed", "cannot open \(path): \(ByteSourceError.describe(errno: errno))"))
        }
        defer { close(src) }
        let dst = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard dst >= 0 else {
            return .failed(Issue("staging.copy_failed", "cannot create \(partial): \(ByteSourceError.describe(errno: errno))"))
        }
        var dstOpen = true
        func fail(_ issue: Issue) -> StageOutcome? {
            if dstOpen { close(dst); dstOpen = false }
            unlink(partial)
            return .failed(issue)
        }
        // Test hook, in debug builds only (the tests' build): fail a read with EIO once this many
        // bytes are copied (a pulled medium). A release build has no such switch.
        #if DEBUG
        let failAfter = ProcessInfo.processInfo.environment["CAISSON_FAULT_STAGING_READ_AFTER"].flatMap { Int64($0) }
        #else
        let failAfter: Int64? = nil
        #endif
        let meter = makeProgress?(.staging, size)
        defer { meter?.finish(completed: false) }
        var hasher = SHA256()
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer { buffer.deallocate() }
        var copied: Int64 = 0
        while true {
            var n: Int
            if SignalWatch.shared.requested {
                return fail(Issue("update.cancelled", "stopped by \(SignalWatch.shared.signalName) while the package was copied; the partial copy was removed and nothing was changed"))
            }
            if let failAfter, copied >= failAfter {
                n = -1
                errno = EIO
            } else {
                repeat { n = read(src, buffer.baseAddress, chunk) } while n < 0 && errno == EINTR
            }
            if n < 0 {
                let e = errno
                return fail(Issue("package.read_failed",
                                  "reading \(path) failed after \(copied) of \(size) bytes: \(ByteSourceError.describe(errno: e)); was the medium removed? Nothing was changed"))
            }
            if n == 0 { break }
            var off = 0
            while off < n {
                let w = write(dst, buffer.baseAddress! + off, n - off)
                if w < 0 {
                    if errno == EINTR { continue }
                    let e = errno
                    return fail(Issue("staging.copy_failed", "writing the staged copy \(partial) failed: \(ByteSourceError.describe(errno: e))"))
                }
                off += w
            }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            copied += Int64(n)
            meter?.update(copied)
        }
        guard copied == size else {
            return fail(Issue("package.read_failed",
                              "\(path) changed while it was copied (\(copied) bytes read, \(size) expected); was the medium removed? Nothing was changed"))
        }
        guard fsync(dst) == 0 else {
            let e = errno
            return fail(Issue("staging.copy_failed", "cannot flush the staged copy \(partial): \(ByteSourceError.describe(errno: e))"))
        }
        close(dst)
        dstOpen = false
        guard rename(partial, dest) == 0 else {
            let e = errno
            return fail(Issue("staging.copy_failed", "cannot rename the staged copy to \(dest): \(ByteSourceError.describe(errno: e))"))
        }
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
        meter?.finish()
        return .copied(StagedCopy(packageID: id, path: dest, size: size, sha256: hasher.hex))
    }

    func discardStaged(_ copy: StagedCopy) {
        _ = StateDirectory.removeFile(Paths.directory(of: copy.path), Paths.lastComponent(of: copy.path))
        _ = try? store().removeStagedPackage(copy.packageID)
    }

    /// Records a validation that failed before the validator could run (e.g. the copy off the
    /// medium broke), so it shows in the history like any rejection.
    func recordRejection(_ path: String, issue: Issue) throws -> ValidationOutcome {
        let s = try store()
        let id = ids.next()
        let at = systemClock.timestamp()
        // ValidationReport has no public initializer: an empty path gives a bare report.
        var report = PackageValidator(catalog: try catalog(), updaterVersion: Self.version).validate(path: "")
        report.packagePath = path
        report.packageSize = nil
        report.issues = [issue]
        let record = ValidationRecord(
            validationAttemptID: id, packagePath: path, packageSize: nil, status: .rejected,
            serviceName: nil, packageVersion: nil, imageReference: nil, imageID: nil, imageLayers: [],
            imageSize: nil, imageTarSHA256: nil, issues: [issue], startedAt: at, finishedAt: at)
        try s.recordValidation(record)
        try s.appendAudit([AuditEvent(kind: .validationRejected, at: at, validationAttemptID: id, message: issue.description)])
        return ValidationOutcome(record: record, report: report)
    }
}
