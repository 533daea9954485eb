import CaissonCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Receiving a package over a network front end (the console's upload): streamed to
/// `<state-dir>/staging/uploads/` while hashing, never held in memory, refused before the first
/// byte when the disk lacks room. `package cleanup` leaves this folder alone (the console removes
/// an upload once an update has used it).
extension Application {
    public struct UploadedPackage: Sendable, Equatable {
        public var path: String
        public var size: Int64
        public var sha256: String
    }

    public var uploadDir: String { stagingDir + "/uploads" }

    /// Stores `length` bytes that `feed` pushes into the sink it is given. Throws
    /// `staging.insufficient_space` before anything is written when the disk lacks room for them
    /// plus the staging reserve, `upload.incomplete` when fewer or more bytes come, and whatever
    /// `feed` throws (the client went away); the partial file is removed on every failure.
    public func receiveUpload(name: String, length: Int64,
                              feed: (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws -> UploadedPackage {
        try Self.checkUploadName(name)
        return try receiveUpload(maxLength: length, exact: true) { sink in
            try withoutActuallyEscaping(sink) { try feed($0) }
            return name
        }
    }

    /// Like `receiveUpload(name:length:feed:)` for a body that carries the package among other
    /// things (a browser's `multipart/form-data` form): at most `maxLength` bytes, and `feed`
    /// returns the package's file name once it has pushed them all. With `exact`, exactly
    /// `maxLength` bytes must come.
    public func receiveUpload(maxLength length: Int64, exact: Bool,
                              feed: (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> String) throws -> UploadedPackage {
        let dir = uploadDir
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CaissonError("staging.copy_failed", "cannot create the upload directory \(dir): \(error.localizedDescription)")
        }
        let reserve = try Self.stagingReserve()
        if let free = Self.freeBytes(dir) {
            let (need, overflow) = length.addingReportingOverflow(reserve)
            if overflow || free < need {
                throw CaissonError("staging.insufficient_space",
                                   "not enough free space to receive the package: \(Format.bytes(free)) free, the package needs \(Format.bytes(length)) plus a reserve of \(Format.bytes(reserve))")
            }
        }
        let partial = dir + "/." + String(ids.next().prefix(8)) + ".partial"
        let fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw CaissonError("staging.copy_failed", "cannot create \(partial): \(ByteSourceError.describe(errno: errno))")
        }
        var open = true
        defer {
            if open { close(fd) }
        }
        var hasher = SHA256()
        var received: Int64 = 0
        var dest = ""
        do {
            let name = try feed { chunk in
                received += Int64(chunk.count)
                guard received <= length else {
                    throw CaissonError("upload.incomplete", "the upload sent more than the \(length) bytes it announced")
                }
                var off = 0
                while off < chunk.count {
                    let w = write(fd, chunk.baseAddress! + off, chunk.count - off)
                    if w < 0 {
                        if errno == EINTR { continue }
                        let e = errno
                        throw CaissonError(e == ENOSPC ? "staging.insufficient_space" : "staging.copy_failed",
                                           "writing the upload failed: \(ByteSourceError.describe(errno: e))")
                    }
                    off += w
                }
                hasher.update(chunk)
            }
            try Self.checkUploadName(name)
            guard !exact || received == length else {
                throw CaissonError("upload.incomplete", "the upload ended after \(received) of \(length) bytes; nothing was kept")
            }
            guard fsync(fd) == 0 else {
                throw CaissonError("staging.copy_failed", "cannot flush the upload: \(ByteSourceError.describe(errno: errno))")
            }
            close(fd)
            open = false
            dest = dir + "/" + name
            if FileManager.default.fileExists(atPath: dest) {
                dest = dir + "/" + String(name.dropLast(8)) + "-" + String(ids.next().prefix(8)) + ".edgepkg"
            }
            guard rename(partial, dest) == 0 else {
                throw CaissonError("staging.copy_failed", "cannot keep the upload as \(dest): \(ByteSourceError.describe(errno: errno))")
            }
        } catch {
            if open { close(fd); open = false }
            unlink(partial)
            throw error
        }
        return UploadedPackage(path: dest, size: received, sha256: hasher.hex)
    }

    /// An upload's file name: a `.edgepkg` file directly in the upload folder.
    public static func checkUploadName(_ name: String) throws {
        guard name.hasSuffix(".edgepkg"), !name.contains("/"), !name.hasPrefix(".") else {
            throw CaissonError("package.invalid_extension", "an uploaded package must be a .edgepkg file")
        }
    }

    /// Removes partial uploads left by a console that stopped mid-upload.
    public func removePartialUploads() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: uploadDir) else { return }
        for name in names where name.hasPrefix(".") && name.hasSuffix(".partial") { unlink(uploadDir + "/" + name) }
    }
}
