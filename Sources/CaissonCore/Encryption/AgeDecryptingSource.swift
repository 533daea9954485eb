#if canImport(Glibc)
import Glibc
#endif

/// Limits for reading an age file.
public struct AgeDecryptionOptions: Sendable, Equatable {
    /// The highest scrypt work factor attempted (checked before scrypt runs).
    public var maxWorkFactor = AgeScrypt.defaultMaxWorkFactor
    /// The largest header read.
    public var maxHeaderBytes = AgeHeader.defaultMaxBytes
    /// Chunks of ciphertext read from the base source at a time.
    public var chunksPerRead = 16

    public init(maxWorkFactor: Int = AgeScrypt.defaultMaxWorkFactor) {
        self.maxWorkFactor = maxWorkFactor
    }
}

/// A `ByteSource` that decrypts an age v1 file read from `base`, one 64 KiB STREAM chunk at a
/// time: the plaintext of a chunk is handed out only once its tag has verified, and the end of
/// the data (`read` returning 0) only once the final chunk has authenticated and nothing follows
/// it. Truncation, a flipped bit anywhere or trailing bytes throw `AgeError(.payloadInvalid)`
/// (kept in `failure`), so a reader that waits for the end never acts on unauthenticated data.
///
/// The header is read and checked in `init`: its structure, the recipient stanzas (with the
/// given identities, or a file key already unwrapped), the MAC and the payload nonce. Memory is
/// one ciphertext buffer (`chunksPerRead` chunks) and one plaintext chunk, whatever the size.
/// With `ciphertextHasher`, every byte read from `base` (header included) is hashed on the
/// hasher's thread, so the SHA-256 of the whole age file comes for free.
public final class AgeDecryptingSource<Base: ByteSource>: ByteSource {
    public static var chunkSize: Int { 64 * 1024 }
    static var sealedChunkSize: Int { chunkSize + ChaChaPoly.tagCount }

    /// The source of the ciphertext.
    public var base: Base { input.base }
    public let header: AgeHeader
    public let fileKey: AgeFileKey
    /// The first error met while reading the payload.
    public private(set) var failure: AgeError?
    /// Plaintext bytes handed out so far.
    public private(set) var plaintextCount: Int64 = 0
    /// Bytes read from `base` so far.
    public var ciphertextCount: Int64 { input.count }
    /// The final chunk authenticated and nothing followed it.
    public private(set) var isComplete = false

    private let input: AgeInputBuffer<Base>
    private let plain: UnsafeMutableRawBufferPointer
    private var plainStart = 0
    private var plainEnd = 0
    private var counter: UInt64 = 0
    private let aead: ChaChaPoly
    private var nonce = [UInt8](repeating: 0, count: 12)

    /// Reads the header and unwraps the file key with the first identity that opens a stanza.
    public convenience init(_ base: Base, identities: [any AgeIdentity], options: AgeDecryptionOptions = AgeDecryptionOptions(),
                            ciphertextHasher: Bool = false) throws(AgeError) {
        try self.init(base, key: .identities(identities), options: options, ciphertextHasher: ciphertextHasher)
    }

    /// Reads the header and checks its MAC under a file key unwrapped earlier (a second read of
    /// a file already validated: no identity or KDF work again).
    public convenience init(_ base: Base, fileKey: AgeFileKey, options: AgeDecryptionOptions = AgeDecryptionOptions(),
                            ciphertextHasher: Bool = false) throws(AgeError) {
        try self.init(base, key: .fileKey(fileKey), options: options, ciphertextHasher: ciphertextHasher)
    }

    private enum KeySource { case identities([any AgeIdentity]), fileKey(AgeFileKey) }

    private init(_ base: Base, key: KeySource, options: AgeDecryptionOptions, ciphertextHasher: Bool) throws(AgeError) {
        let capacity = max(Self.sealedChunkSize * max(1, options.chunksPerRead) + 1, options.maxHeaderBytes + 16)
        let input = AgeInputBuffer(base, capacity: capacity, hasher: ciphertextHasher ? BackgroundHasher() : nil)
        // Armor (PEM) is recognised before anything else.
        try input.fill(minimum: 5)
        if input.available.starts(with: Array("-----".utf8)) {
            throw AgeError(.unsupported, "the file is an armored (PEM, -----BEGIN AGE ENCRYPTED FILE-----) age file; only binary age files are accepted")
        }
        let header = try AgeHeader.parse(nextLine: { () throws(AgeError) -> [UInt8]? in try input.nextLine(limit: options.maxHeaderBytes) })
        let fileKey = try Self.unwrap(header, key: key)
        guard header.verifies(fileKey: fileKey.bytes) else {
            throw AgeError(.headerMACInvalid, "the age header's MAC does not verify: the header was altered or damaged")
        }
        try input.fill(minimum: 16)
        guard input.available.count >= 16 else {
            throw AgeError(.headerInvalid, "the age file ends before its 16-byte payload nonce")
        }
        let payloadNonce = Array(input.available.prefix(16))
        input.consume(16)
        self.input = input
        self.header = header
        self.fileKey = fileKey
        self.aead = ChaChaPoly(key: AgeCrypto.hkdf(ikm: fileKey.bytes, salt: payloadNonce, info: "payload", count: 32))
        self.plain = .allocate(byteCount: Self.chunkSize, alignment: 64)
    }

    deinit { plain.deallocate() }

    private static func unwrap(_ header: AgeHeader, key: KeySource) throws(AgeError) -> AgeFileKey {
        let stanzas = header.stanzas
        if stanzas.contains(where: { $0.type == "scrypt" }), stanzas.count != 1 {
            throw AgeError(.headerInvalid, "the age header has a passphrase (scrypt) stanza beside other stanzas; it must be alone")
        }
        switch key {
        case .fileKey(let k): return k
        case .identities(let identities):
            for identity in identities {
                if let k = try identity.unwrap(stanzas) { return k }
            }
            let types = stanzas.map(\.type)
            if types.contains(where: { $0.hasPrefix("mlkem") || $0.contains("pq") }) {
                throw AgeError(.unsupported, "the file is encrypted to a post-quantum recipient (\(types.first { $0.hasPrefix("mlkem") || $0.contains("pq") }!)), which Caisson does not support")
            }
            if identities.isEmpty {
                throw AgeError(.noIdentity, "the file is encrypted and no age identity is configured to open it")
            }
            let what = types.contains("scrypt") ? "passphrase-protected, and the passphrase given does not open it" :
                "encrypted to \(types.filter { $0 == "X25519" }.count) X25519 recipient(s), none of them a configured identity"
            throw AgeError(.noIdentity, "the file is \(what)")
        }
    }

    /// The SHA-256 of every byte read from the base so far (call once, at the end).
    public func finishCiphertextDigest() -> SHA256Digest? {
        input.hasher?.finish()
    }

    // MARK: Payload

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard buffer.count > 0 else { return 0 }
        if plainStart < plainEnd { return copyPlain(into: buffer, at: 0) }
        if let failure { throw failure }
        if isComplete { return 0 }
        var written = 0
        do {
            while !isComplete, failure == nil, buffer.count - written >= Self.chunkSize {
                written += try nextChunk(into: UnsafeMutableRawBufferPointer(rebasing: buffer[written...]))
            }
            if written == 0, !isComplete, failure == nil {
                plainStart = 0
                plainEnd = try nextChunk(into: plain)
                return copyPlain(into: buffer, at: 0)
            }
        } catch {
            failure = error
            plaintextCount += Int64(written)
            if written > 0 { return written }
            throw error
        }
        plaintextCount += Int64(written)
        return written
    }

    private func copyPlain(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        let n = min(buffer.count - offset, plainEnd - plainStart)
        (buffer.baseAddress! + offset).copyMemory(from: plain.baseAddress! + plainStart, byteCount: n)
        plainStart += n
        plaintextCount += Int64(n)
        return n
    }

    private func setNonce(last: Bool) {
        var c = counter
        for i in stride(from: 10, through: 3, by: -1) {
            nonce[i] = UInt8(c & 0xff)
            c >>= 8
        }
        nonce[11] = last ? 1 : 0
    }

    /// Decrypts and authenticates the next chunk into `out` (at least 64 KiB); returns its length.
    private func nextChunk(into out: UnsafeMutableRawBufferPointer) throws(AgeError) -> Int {
        let sealed = Self.sealedChunkSize
        try input.fill(minimum: sealed + 1)
        let avail = input.available.count
        let at = counter
        func bad(_ why: String) -> AgeError {
            AgeError(.payloadInvalid, "the encrypted image is damaged or truncated: \(why)")
        }
        if avail == 0 {
            throw bad(at == 0 ? "the payload has no chunk at all" : "it ends after chunk \(at) without a final chunk")
        }
        let size = min(avail, sealed)
        guard size >= ChaChaPoly.tagCount else { throw bad("chunk \(at) is shorter than its authentication tag") }
        let sealedBytes = UnsafeRawBufferPointer(rebasing: input.available[..<size])
        let more = avail > sealed
        var last = false
        if size < sealed {
            // A short chunk can only be the final one.
            setNonce(last: true)
            guard aead.open(sealedBytes, nonce: nonce, into: out) else {
                throw bad("chunk \(at) does not authenticate (altered, or cut short)")
            }
            last = true
        } else {
            // A full chunk is usually not the last; the final chunk may be full too.
            setNonce(last: false)
            if !aead.open(sealedBytes, nonce: nonce, into: out) {
                setNonce(last: true)
                guard aead.open(sealedBytes, nonce: nonce, into: out) else { throw bad("chunk \(at) does not authenticate (altered)") }
                last = true
            }
        }
        let n = size - ChaChaPoly.tagCount
        if last, n == 0, at > 0 { throw bad("the final chunk is empty (only an empty payload may have one)") }
        input.consume(size)
        counter += 1
        if last {
            // Its plaintext is authentic and handed out; what follows it makes the file invalid,
            // so the end of the data is never reported.
            if more { failure = bad("data follows the final chunk \(at)") } else { isComplete = true }
        }
        return n
    }
}

/// The ciphertext side of `AgeDecryptingSource`: one buffer filled from the base, header lines
/// and chunks handed out of it, every byte read optionally hashed on a background thread (the
/// hasher may read a region until the next fill, which waits for it before touching the buffer).
final class AgeInputBuffer<Base: ByteSource> {
    private(set) var base: Base
    let hasher: BackgroundHasher?
    private let buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    private var eof = false
    private(set) var count: Int64 = 0

    init(_ base: Base, capacity: Int, hasher: BackgroundHasher?) {
        self.base = base
        self.hasher = hasher
        buffer = .allocate(byteCount: capacity, alignment: 64)
    }

    deinit {
        hasher?.waitIdle()
        buffer.deallocate()
    }

    /// The buffered bytes not consumed yet.
    var available: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buffer[start..<end]) }

    func consume(_ n: Int) { start += n }

    /// Reads from `base` until `minimum` bytes are buffered or the data ends.
    func fill(minimum: Int) throws(AgeError) {
        while end - start < minimum, !eof {
            hasher?.waitIdle()
            if buffer.count - start < minimum || end == buffer.count {
                // Move what is left to the front (at most one chunk and a byte, or a header line).
                let left = end - start
                if left > 0, start > 0 { memmove(buffer.baseAddress!, buffer.baseAddress! + start, left) }
                start = 0
                end = left
            }
            let n: Int
            do {
                n = try base.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[end...]))
            } catch {
                throw AgeError(.payloadInvalid, "the encrypted data cannot be read: \(error)")
            }
            guard n > 0 else { eof = true; break }
            hasher?.submit(UnsafeRawBufferPointer(rebasing: buffer[end..<(end + n)]))
            end += n
            count += Int64(n)
        }
    }

    /// The next header line (without its LF); nil at a clean end of the data.
    func nextLine(limit: Int) throws(AgeError) -> [UInt8]? {
        var scanned = 0
        while true {
            let avail = available
            if let i = avail[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(avail[..<i])
                start += i + 1
                return line
            }
            scanned = avail.count
            guard count <= Int64(limit) else {
                throw AgeError(.headerInvalid, "the age header is longer than \(limit) bytes")
            }
            if eof {
                if avail.isEmpty { return nil }
                throw AgeError(.headerInvalid, "the file ends inside the age header")
            }
            try fill(minimum: avail.count + 1)
        }
    }
}
