/// The 16-byte key of one age file. Never printed.
public struct AgeFileKey: Equatable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]
    public init?(_ bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self.bytes = bytes
    }
    public var description: String { "AgeFileKey(redacted)" }
}

/// Something that can open recipient stanzas: an X25519 secret key or a passphrase.
public protocol AgeIdentity: Sendable {
    /// The file key, or nil when no stanza is addressed to this identity (no match). Throws for
    /// a stanza that is addressed to it but malformed (a header failure) or refused by policy.
    func unwrap(_ stanzas: [AgeStanza]) throws(AgeError) -> AgeFileKey?
}

/// Something a file can be encrypted to.
public protocol AgeRecipient: Sendable {
    func wrap(_ fileKey: AgeFileKey, randomness: AgeRandomness) throws(AgeError) -> AgeStanza
}

// MARK: - X25519

/// `age1…`: an X25519 public key.
public struct AgeX25519Recipient: AgeRecipient, Equatable, Hashable {
    public let publicKey: [UInt8]

    public init(publicKey: [UInt8]) {
        self.publicKey = publicKey
    }

    /// Parses `age1…` (Bech32, lowercase).
    public init(parsing text: String) throws(AgeError) {
        let t = text.trimmingSpaces
        guard let (hrp, data) = Bech32.decode(String(t)), t == t.lowercased() else {
            throw AgeError(.headerInvalid, "\"\(t)\" is not an age recipient (age1…)")
        }
        if hrp.hasPrefix("age1pq") || hrp != "age" {
            throw AgeError(.unsupported, "\"\(t.prefix(20))…\" is not an X25519 age recipient (only age1… X25519 recipients are supported)")
        }
        guard data.count == 32 else { throw AgeError(.headerInvalid, "\"\(t)\" is not an age recipient: wrong key length") }
        publicKey = data
    }

    /// `age1…`.
    public var text: String { Bech32.encode(hrp: "age", data: publicKey) }

    public func wrap(_ fileKey: AgeFileKey, randomness: AgeRandomness) throws(AgeError) -> AgeStanza {
        var share: [UInt8]?
        var shared: [UInt8]?
        // A fresh ephemeral key; retried on the (negligible) chance libcrypto refuses it.
        for _ in 0..<4 {
            let ephemeral = try randomness.bytes(32)
            if let s = AgeCrypto.x25519PublicKey(secret: ephemeral), let k = AgeCrypto.x25519(secret: ephemeral, peer: publicKey) {
                share = s
                shared = k
                break
            }
        }
        guard let share, let shared else {
            throw AgeError(.internalFailure, "could not derive an X25519 shared key for \(text)")
        }
        let key = AgeCrypto.hkdf(ikm: shared, salt: share + publicKey, info: "age-encryption.org/v1/X25519", count: 32)
        return AgeStanza(type: "X25519", arguments: [UnpaddedBase64.encode(share)],
                         body: AgeCrypto.sealZeroNonce(key: key, plaintext: fileKey.bytes))
    }
}

/// `AGE-SECRET-KEY-1…`: an X25519 secret key.
public struct AgeX25519Identity: AgeIdentity {
    let secret: [UInt8]
    public let recipient: AgeX25519Recipient

    init?(secret: [UInt8]) {
        guard let pub = AgeCrypto.x25519PublicKey(secret: secret) else { return nil }
        self.secret = secret
        self.recipient = AgeX25519Recipient(publicKey: pub)
    }

    /// Parses `AGE-SECRET-KEY-1…` (Bech32, uppercase as age writes it; lowercase is accepted too).
    public init(parsing text: String) throws(AgeError) {
        let t = String(text.trimmingSpaces)
        if t.uppercased().hasPrefix("AGE-SECRET-KEY-PQ-") || t.uppercased().hasPrefix("AGE-PLUGIN-") {
            throw AgeError(.unsupported, "post-quantum and plugin identities are not supported (only AGE-SECRET-KEY-1… X25519 keys)")
        }
        guard let (hrp, data) = Bech32.decode(t), hrp == "age-secret-key-", data.count == 32,
              let identity = AgeX25519Identity(secret: data) else {
            throw AgeError(.headerInvalid, "not an age secret key (AGE-SECRET-KEY-1…)")
        }
        self = identity
    }

    /// A fresh key from `randomness`.
    public static func generate(randomness: AgeRandomness) throws(AgeError) -> AgeX25519Identity {
        for _ in 0..<4 {
            if let id = AgeX25519Identity(secret: try randomness.bytes(32)) { return id }
        }
        throw AgeError(.internalFailure, "could not generate an X25519 key")
    }

    /// `AGE-SECRET-KEY-1…`.
    public var text: String { Bech32.encode(hrp: "age-secret-key-", data: secret).uppercased() }

    /// The identity file `age-keygen` writes (comments, then the key).
    public func fileContents(created: String?) -> String {
        var s = ""
        if let created { s += "# created: \(created)\n" }
        return s + "# public key: \(recipient.text)\n\(text)\n"
    }

    public func unwrap(_ stanzas: [AgeStanza]) throws(AgeError) -> AgeFileKey? {
        for s in stanzas where s.type == "X25519" {
            func bad(_ why: String) -> AgeError { AgeError(.headerInvalid, "the age header has an invalid X25519 stanza: \(why)") }
            guard s.arguments.count == 1 else { throw bad("it must have exactly one argument") }
            guard let share = UnpaddedBase64.decode(Array(s.arguments[0].utf8)), share.count == 32 else {
                throw bad("the ephemeral share is not 32 bytes in canonical base64")
            }
            guard s.body.count == 32 else { throw bad("the wrapped file key is not 16 bytes") }
            guard let shared = AgeCrypto.x25519(secret: secret, peer: share) else {
                throw bad("the ephemeral share is a low-order point (the shared secret would be zero)")
            }
            let key = AgeCrypto.hkdf(ikm: shared, salt: share + recipient.publicKey, info: "age-encryption.org/v1/X25519", count: 32)
            if let fileKey = AgeCrypto.openZeroNonce(key: key, ciphertext: s.body) { return AgeFileKey(fileKey) }
        }
        return nil
    }
}

// MARK: - scrypt

/// The scrypt work factor limits.
public enum AgeScrypt {
    /// What the real `age -p` uses (2^18 iterations, 256 MiB).
    public static let defaultWorkFactor = 18
    /// The highest work factor Caisson attempts unless configured otherwise (2^20: 1 GiB).
    public static let defaultMaxWorkFactor = 20
    static let label = "age-encryption.org/v1/scrypt"
}

/// A passphrase recipient: `-> scrypt SALT LOG2N`.
public struct AgeScryptRecipient: AgeRecipient {
    let passphrase: [UInt8]
    public let workFactor: Int

    public init(passphrase: String, workFactor: Int = AgeScrypt.defaultWorkFactor) {
        self.passphrase = Array(passphrase.utf8)
        self.workFactor = workFactor
    }

    public func wrap(_ fileKey: AgeFileKey, randomness: AgeRandomness) throws(AgeError) -> AgeStanza {
        guard workFactor >= 1, workFactor <= 30 else { throw AgeError(.workFactorTooHigh, "scrypt work factor \(workFactor) is out of range (1…30)") }
        let salt = try randomness.bytes(16)
        guard let key = AgeCrypto.scrypt(password: passphrase, salt: Array(AgeScrypt.label.utf8) + salt, logN: workFactor) else {
            throw AgeError(.internalFailure, "scrypt failed (work factor \(workFactor) needs \(AgeCrypto.scryptMemory(logN: workFactor) >> 20) MiB)")
        }
        return AgeStanza(type: "scrypt", arguments: [UnpaddedBase64.encode(salt), String(workFactor)],
                         body: AgeCrypto.sealZeroNonce(key: key, plaintext: fileKey.bytes))
    }
}

/// A passphrase identity; refuses (before running scrypt) a work factor above `maxWorkFactor`.
public struct AgeScryptIdentity: AgeIdentity {
    let passphrase: [UInt8]
    public let maxWorkFactor: Int

    public init(passphrase: String, maxWorkFactor: Int = AgeScrypt.defaultMaxWorkFactor) {
        self.passphrase = Array(passphrase.utf8)
        self.maxWorkFactor = maxWorkFactor
    }

    public func unwrap(_ stanzas: [AgeStanza]) throws(AgeError) -> AgeFileKey? {
        for s in stanzas where s.type == "scrypt" {
            func bad(_ why: String) -> AgeError { AgeError(.headerInvalid, "the age header has an invalid scrypt stanza: \(why)") }
            guard s.arguments.count == 2 else { throw bad("it must have exactly two arguments") }
            guard let salt = UnpaddedBase64.decode(Array(s.arguments[0].utf8)), salt.count == 16 else {
                throw bad("the salt is not 16 bytes in canonical base64")
            }
            let wf = Array(s.arguments[1].utf8)
            guard let first = wf.first, first >= UInt8(ascii: "1"), first <= UInt8(ascii: "9"), wf.count <= 2,
                  wf.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), let logN = Int(s.arguments[1]) else {
                throw bad("the work factor \(AgeHeader.printable(wf)) is not a decimal number from 1 to 99 without leading zeros")
            }
            guard logN <= maxWorkFactor else {
                throw AgeError(.workFactorTooHigh,
                    "the scrypt work factor is \(logN) (2^\(logN) iterations, \(AgeCrypto.scryptMemory(logN: logN) >> 20) MiB); this device allows at most \(maxWorkFactor)")
            }
            guard s.body.count == 32 else { throw bad("the wrapped file key is not 16 bytes") }
            guard let key = AgeCrypto.scrypt(password: passphrase, salt: Array(AgeScrypt.label.utf8) + salt, logN: logN) else {
                throw AgeError(.internalFailure, "scrypt failed (work factor \(logN) needs \(AgeCrypto.scryptMemory(logN: logN) >> 20) MiB)")
            }
            if let fileKey = AgeCrypto.openZeroNonce(key: key, ciphertext: s.body) { return AgeFileKey(fileKey) }
        }
        return nil
    }
}

/// An identity that already holds the file key: the builder that just encrypted a file checks
/// it without any recipient's secret (the header MAC still has to verify under it).
public struct AgeKnownFileKey: AgeIdentity {
    let fileKey: AgeFileKey
    public init(_ fileKey: AgeFileKey) { self.fileKey = fileKey }
    public func unwrap(_ stanzas: [AgeStanza]) throws(AgeError) -> AgeFileKey? { fileKey }
}

// MARK: - Identity files

public enum AgeIdentityFile {
    /// The identities of an identity file as `age-keygen` writes it: one `AGE-SECRET-KEY-1…` per
    /// line, `#` comments and blank lines ignored. Anything else is an error naming the line.
    public static func parse(_ text: String) throws(AgeError) -> [AgeX25519Identity] {
        var out: [AgeX25519Identity] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            let t = String(line).trimmingSpaces
            if t.isEmpty || t.hasPrefix("#") { continue }
            do {
                out.append(try AgeX25519Identity(parsing: String(t)))
            } catch {
                throw AgeError(error.kind == .unsupported ? .unsupported : .noIdentity,
                               "line \(i + 1) is not usable: \(error.message)")
            }
        }
        guard !out.isEmpty else { throw AgeError(.noIdentity, "it holds no AGE-SECRET-KEY-1… line") }
        return out
    }
}
