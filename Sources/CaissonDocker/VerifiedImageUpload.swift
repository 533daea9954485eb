import CaissonHTTP
import CaissonCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The body of `POST /images/load` for an `ImagePayload`: the archive's byte range streamed
/// straight out of the package, verified as it goes.
///
/// With `payload.gate`, the end of the archive waits for the updater's decision (`UploadGate`):
/// the upload may run while the package is still being validated, and a veto stops it there.
///
/// The client sends a streamed body one piece behind and only terminates it (the last chunk) once
/// the producer has reported its end. So the end is the veto point: there the upload checks that
/// the file is still the file validation read (`payload.identity`: same inode, size, mtime and
/// ctime, taken on the descriptor being read) and, when validation hashed the archive
/// (`payload.sha256`), that the bytes sent hash to the same digest. On a mismatch it throws before
/// the last piece, the connection is dropped mid-body, and Docker, which reads the whole archive
/// before it tags anything, discards the upload: a package modified or replaced after validation
/// (on a disk the device shares, or a stick that is written to) can never move a tag.
final class VerifiedArchiveReader {
    private let range: FileRangeReader
    private let path: String
    private let identity: FileIdentity?
    private let expectedSHA256: String?
    private var hasher: SHA256?
    private let gate: UploadGate?
    /// An encrypted archive (`payload.encryption`): decrypted as it is read; only authenticated
    /// chunks go out, and the end only after the final chunk authenticated.
    private let decrypting: AgeDecryptingSource<RangeByteSource>?
    /// An encrypted archive validation decrypts (`payload.plaintextFeed`): its authenticated
    /// plaintext is sent as validation produces it; the file is not decrypted a second time.
    private let feed: PlaintextFeed?

    init(_ payload: ImagePayload) throws(DockerError) {
        guard payload.offset >= 0, payload.length > 0 else {
            throw DockerError(.invalidRequest, "invalid image archive range: offset \(payload.offset), length \(payload.length)")
        }
        range = try FileRangeReader(path: payload.path, offset: UInt64(payload.offset), length: UInt64(payload.length))
        path = payload.path
        identity = payload.identity
        expectedSHA256 = payload.sha256?.lowercased()
        gate = payload.gate
        // The feed is validation's own plaintext, the very bytes it hashes and checks against the
        // signed digest before the gate opens: hashing them again here would check nothing more.
        feed = payload.encryption != nil && payload.gate != nil ? payload.plaintextFeed : nil
        hasher = payload.sha256 == nil || feed != nil ? nil : SHA256()
        if feed != nil {
            decrypting = nil
        } else if let e = payload.encryption {
            do {
                decrypting = try AgeDecryptingSource(RangeByteSource(reader: range), fileKey: e.fileKey)
            } catch {
                throw DockerError(.invalidRequest, "the encrypted image in \(payload.path) cannot be decrypted: \(error); nothing was loaded")
            }
        } else {
            decrypting = nil
        }
        // Checked at open too: a file already replaced or modified is refused before any byte goes.
        try checkIdentity()
    }

    private func checkIdentity() throws(DockerError) {
        guard let identity else { return }
        guard let now = FileIdentity(fileDescriptor: range.fd), now == identity else {
            throw DockerError(.invalidRequest,
                              "the package \(path) changed after it was validated (it was modified or replaced); nothing was loaded")
        }
    }

    /// Fills `buffer`; 0 at the end, after the checks passed.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if let gate, case .veto(let reason)? = gate.current {
            throw DockerError(.invalidRequest, "the image upload was stopped: \(reason); nothing was loaded")
        }
        let n: Int
        if let feed {
            do { n = try feed.read(into: buffer) } catch {
                throw DockerError(.invalidRequest, "the encrypted image was not authenticated to its end: \(error); nothing was loaded")
            }
        } else if let decrypting {
            do { n = try decrypting.read(into: buffer) } catch {
                throw DockerError(.invalidRequest, "the encrypted image does not decrypt: \(error); nothing was loaded")
            }
        } else {
            n = try range.read(into: buffer)
        }
        if n > 0 {
            hasher?.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            return n
        }
        // The end: the updater's decision comes first (validation may still be running).
        if let gate, case .veto(let reason) = gate.wait() {
            throw DockerError(.invalidRequest, "the image upload was stopped before its end: \(reason); nothing was loaded")
        }
        if let feed, !feed.isComplete {
            throw DockerError(.invalidRequest, "the encrypted image ended before its final chunk; nothing was loaded")
        }
        if let decrypting, !decrypting.isComplete {
            throw DockerError(.invalidRequest, "the encrypted image ended before its final chunk; nothing was loaded")
        }
        try checkIdentity()
        if let expectedSHA256, let hex = hasher?.hex, hex != expectedSHA256 {
            throw DockerError(.invalidRequest,
                              "the image archive read from \(path) has SHA-256 \(hex), not \(expectedSHA256) as validated; nothing was loaded")
        }
        return 0
    }
}

/// The file range as a `ByteSource` (what the age decryption reads from).
struct RangeByteSource: ByteSource {
    let reader: FileRangeReader
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int { try reader.read(into: buffer) }
}

extension DockerHost {
    /// `loadImage` streams the archive through `VerifiedArchiveReader`, which honours the gate.
    public var streamsImageArchives: Bool { true }
}

extension RequestBody {
    /// The verified, chunked upload of `payload` (see `VerifiedArchiveReader`).
    public static func verifiedImageArchive(_ payload: ImagePayload) throws(DockerError) -> RequestBody {
        let reader = try VerifiedArchiveReader(payload)
        return .stream(length: nil, contentType: "application/x-tar") { buffer in
            try reader.read(into: buffer)
        }
    }
}
