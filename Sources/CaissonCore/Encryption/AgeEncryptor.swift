/// Writes an age v1 file as a stream: the header (one stanza per recipient) and payload nonce
/// at once, then 64 KiB STREAM chunks as plaintext arrives, the final chunk at `finish()`.
/// Memory: one chunk. The output goes to `sink` in pieces.
public final class AgeEncryptor {
    private let sink: (UnsafeRawBufferPointer) throws -> Void
    private let aead: ChaChaPoly
    private let plain: UnsafeMutableRawBufferPointer
    private let sealed: UnsafeMutableRawBufferPointer
    private var filled = 0
    private var counter: UInt64 = 0
    private var nonce = [UInt8](repeating: 0, count: 12)
    private var finished = false
    /// Plaintext bytes written so far.
    public private(set) var plaintextCount: Int64 = 0
    /// The file key (lets the writer check what it wrote, see `AgeKnownFileKey`).
    public let fileKey: AgeFileKey

    public init(recipients: [any AgeRecipient], randomness: AgeRandomness,
                sink: @escaping (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !recipients.isEmpty else { throw AgeError(.noIdentity, "no recipient to encrypt to") }
        if recipients.count > 1, recipients.contains(where: { $0 is AgeScryptRecipient }) {
            throw AgeError(.headerInvalid, "a passphrase cannot be combined with other recipients (age requires it alone)")
        }
        guard let fileKey = AgeFileKey(try randomness.bytes(16)) else { throw AgeError(.internalFailure, "no file key") }
        self.fileKey = fileKey
        var stanzas: [AgeStanza] = []
        for r in recipients { stanzas.append(try r.wrap(fileKey, randomness: randomness)) }
        let payloadNonce = try randomness.bytes(16)
        self.sink = sink
        aead = ChaChaPoly(key: AgeCrypto.hkdf(ikm: fileKey.bytes, salt: payloadNonce, info: "payload", count: 32))
        plain = .allocate(byteCount: AgeDecryptingSource<MemoryByteSource>.chunkSize, alignment: 64)
        sealed = .allocate(byteCount: plain.count + ChaChaPoly.tagCount, alignment: 64)
        let head = AgeHeader.encode(stanzas: stanzas, fileKey: fileKey.bytes) + payloadNonce
        try head.withUnsafeBytes { try sink($0) }
    }

    deinit {
        plain.deallocate()
        sealed.deallocate()
    }

    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!finished, "write after finish")
        var offset = 0
        while offset < bytes.count {
            // A full chunk is sealed only once more data shows it is not the last.
            if filled == plain.count { try seal(last: false) }
            let n = min(plain.count - filled, bytes.count - offset)
            (plain.baseAddress! + filled).copyMemory(from: bytes.baseAddress! + offset, byteCount: n)
            filled += n
            offset += n
        }
        plaintextCount += Int64(bytes.count)
    }

    /// Seals the final chunk (possibly full; empty only for an empty payload).
    public func finish() throws {
        guard !finished else { return }
        try seal(last: true)
        finished = true
    }

    private func seal(last: Bool) throws {
        var c = counter
        for i in stride(from: 10, through: 3, by: -1) {
            nonce[i] = UInt8(c & 0xff)
            c >>= 8
        }
        nonce[11] = last ? 1 : 0
        aead.seal(UnsafeRawBufferPointer(rebasing: plain[..<filled]), nonce: nonce, into: sealed)
        try sink(UnsafeRawBufferPointer(rebasing: sealed[..<(filled + ChaChaPoly.tagCount)]))
        counter += 1
        filled = 0
    }
}

/// Whole-buffer helpers (tests, small files).
public enum Age {
    public static func encrypt(_ plaintext: [UInt8], to recipients: [any AgeRecipient], randomness: AgeRandomness) throws -> [UInt8] {
        var out: [UInt8] = []
        let e = try AgeEncryptor(recipients: recipients, randomness: randomness) { out.append(contentsOf: $0) }
        try e.write(plaintext)
        try e.finish()
        return out
    }

    public static func decrypt(_ file: [UInt8], identities: [any AgeIdentity],
                               options: AgeDecryptionOptions = AgeDecryptionOptions()) throws(AgeError) -> [UInt8] {
        let source = try AgeDecryptingSource(MemoryByteSource(file), identities: identities, options: options)
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n: Int
            do { n = try buffer.withUnsafeMutableBytes { try source.read(into: $0) } } catch let e as AgeError { throw e } catch {
                throw AgeError(.payloadInvalid, "\(error)")
            }
            if n == 0 { return out }
            out += buffer[..<n]
        }
    }
}
