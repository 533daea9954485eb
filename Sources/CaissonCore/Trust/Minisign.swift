/// minisign (https://jedisct1.github.io/minisign/) public keys, secret keys and signatures,
/// byte-compatible with the `minisign` tool. Ed25519 and BLAKE2b come from libcrypto.
///
/// Errors are `CaissonError`s with the validator's codes: `signature.malformed`,
/// `signature.untrusted_key`, `signature.invalid`; key files use `key.malformed`, `key.unsupported`,
/// `key.generation_failed`.
public enum Minisign {
    static let untrustedPrefix = "untrusted comment: "
    static let trustedPrefix = "trusted comment: "
    /// minisign's own bounds (COMMENTMAXBYTES, TRUSTEDCOMMENTMAXBYTES).
    public static let maxCommentBytes = 1024
    public static let maxTrustedCommentBytes = 8192

    /// Splits minisign text into lines, trimming a trailing "\r" like minisign's `trim()`.
    static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map { line in
            var l = line
            while let last = l.last, last == UInt8(ascii: "\r") || last == UInt8(ascii: "\n") { l = l.dropLast() }
            return l
        }
    }

    static func hasPrefix(_ line: ArraySlice<UInt8>, _ prefix: String) -> Bool {
        line.starts(with: prefix.utf8)
    }

    /// Rejects comments minisign could not write back as one line.
    static func checkComment(_ text: String, limit: Int, what: String) throws(CaissonError) {
        guard !text.utf8.contains(where: { $0 == 0x0a || $0 == 0x0d || $0 == 0 }) else {
            throw CaissonError("signature.malformed", "the \(what) must be a single line")
        }
        guard text.utf8.count < limit - Minisign.trustedPrefix.utf8.count else {
            throw CaissonError("signature.malformed", "the \(what) is longer than minisign accepts")
        }
    }

    /// Signs `data` as `minisign -S` does (prehashed `ED`: Ed25519 over BLAKE2b-512 of the data),
    /// with `trustedComment` bound by the global signature.
    public static func sign(_ data: [UInt8], secretKey: MinisignSecretKey, trustedComment: String,
                            untrustedComment: String = "signature from caisson secret key") throws(CaissonError) -> MinisignSignature {
        try checkComment(trustedComment, limit: maxTrustedCommentBytes, what: "trusted comment")
        try checkComment(untrustedComment, limit: maxCommentBytes, what: "untrusted comment")
        guard let digest = BLAKE2b512.hash(data),
              let sig = Ed25519.sign(seed: secretKey.seed, message: digest),
              let global = Ed25519.sign(seed: secretKey.seed, message: sig + Array(trustedComment.utf8)) else {
            throw CaissonError("signature.sign_failed", "libcrypto could not sign the data")
        }
        return MinisignSignature(algorithm: .prehashed, keyID: secretKey.keyID, signature: sig,
                                 untrustedComment: untrustedComment, trustedComment: trustedComment,
                                 globalSignature: global)
    }

    /// Verifies a `.minisig` file's bytes over `data` against the trusted keys; returns the parsed
    /// signature (its trusted comment is now authentic) or throws `signature.malformed`,
    /// `signature.untrusted_key` or `signature.invalid`.
    @discardableResult
    public static func verify(_ data: [UInt8], signatureFile: [UInt8],
                              trustedKeys: [MinisignPublicKey]) throws(CaissonError) -> MinisignSignature {
        let signature = try MinisignSignature(parsing: signatureFile)
        guard let key = trustedKeys.first(where: { $0.keyID == signature.keyID }) else {
            throw CaissonError("signature.untrusted_key",
                "the signature was made with key \(signature.keyID) which is not among the catalog's trusted keys")
        }
        try signature.verify(data, with: key)
        return signature
    }
}

/// An 8-byte minisign key id (`keynum`). Shown as minisign shows it: the little-endian 64-bit
/// value in uppercase hex.
public struct MinisignKeyID: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(_ bytes: some Collection<UInt8>) {
        guard bytes.count == 8 else { return nil }
        self.bytes = Array(bytes)
    }

    public var value: UInt64 { bytes.reversed().reduce(0) { $0 << 8 | UInt64($1) } }
    public var description: String { String(value, radix: 16, uppercase: true) }
}

/// A minisign public key: `Ed` + key id + 32-byte Ed25519 public key.
public struct MinisignPublicKey: Hashable, Sendable {
    public var keyID: MinisignKeyID
    public var key: [UInt8]

    public init(keyID: MinisignKeyID, key: [UInt8]) {
        self.keyID = keyID
        self.key = key
    }

    /// Parses the base64 line (`RW...`) or a whole `minisign.pub` file.
    public init(parsing text: String) throws(CaissonError) {
        let lines = Minisign.lines(Array(text.utf8)).map { $0.drop(while: { $0 == 0x20 || $0 == 0x09 }) }
            .filter { !$0.isEmpty }
        let candidates = lines.filter { !Minisign.hasPrefix($0, Minisign.untrustedPrefix) }
        guard candidates.count == 1, let line = candidates.first, lines.count <= 2 else {
            throw CaissonError("key.malformed", "a minisign public key is one base64 line, optionally after an untrusted comment line")
        }
        var trimmed = line
        while let last = trimmed.last, last == 0x20 || last == 0x09 { trimmed = trimmed.dropLast() }
        guard let raw = Base64.decode(trimmed), raw.count == 42 else {
            throw CaissonError("key.malformed", "a minisign public key is 42 bytes in base64")
        }
        guard raw[0] == UInt8(ascii: "E"), raw[1] == UInt8(ascii: "d") else {
            throw CaissonError("key.unsupported", "the public key's algorithm is not Ed25519 (\"Ed\")")
        }
        keyID = MinisignKeyID(raw[2..<10])!
        key = Array(raw[10..<42])
    }

    /// The base64 line (what `[trust] public_keys` holds and `minisign -P` takes).
    public var base64: String { Base64.encode(Array("Ed".utf8) + keyID.bytes + key) }

    /// A `minisign.pub` file, as `minisign -G` writes it.
    public var fileContents: String {
        "untrusted comment: minisign public key \(keyID)\n\(base64)\n"
    }
}

/// A parsed `.minisig` file.
public struct MinisignSignature: Equatable, Sendable {
    public enum Algorithm: Sendable, Equatable {
        /// `Ed`: Ed25519 over the data itself (`minisign -S -l`).
        case legacy
        /// `ED`: Ed25519 over BLAKE2b-512 of the data (minisign's default).
        case prehashed
    }

    public var algorithm: Algorithm
    public var keyID: MinisignKeyID
    public var signature: [UInt8]
    public var untrustedComment: String
    public var trustedComment: String
    public var globalSignature: [UInt8]

    public init(algorithm: Algorithm, keyID: MinisignKeyID, signature: [UInt8], untrustedComment: String,
                trustedComment: String, globalSignature: [UInt8]) {
        self.algorithm = algorithm
        self.keyID = keyID
        self.signature = signature
        self.untrustedComment = untrustedComment
        self.trustedComment = trustedComment
        self.globalSignature = globalSignature
    }

    /// Parses the four lines of a `.minisig` file. Anything malformed throws `signature.malformed`.
    public init(parsing bytes: [UInt8]) throws(CaissonError) {
        func malformed(_ why: String) -> CaissonError {
            CaissonError("signature.malformed", "manifest.toml.minisig is not a minisign signature: \(why)")
        }
        guard bytes.count <= Minisign.maxCommentBytes + Minisign.maxTrustedCommentBytes + 512 else {
            throw malformed("it is \(bytes.count) bytes, larger than any minisign signature")
        }
        let lines = Minisign.lines(bytes)
        guard lines.count >= 4 else { throw malformed("it needs four lines") }
        // minisign ignores what follows the fourth line; so do we, but only blank lines.
        guard lines.dropFirst(4).allSatisfy({ $0.isEmpty }) else { throw malformed("it has more than four lines") }
        guard Minisign.hasPrefix(lines[0], Minisign.untrustedPrefix) else {
            throw malformed("the first line must start with \"untrusted comment: \"")
        }
        guard lines[0].count < Minisign.maxCommentBytes else { throw malformed("the untrusted comment is too long") }
        guard Minisign.hasPrefix(lines[2], Minisign.trustedPrefix) else {
            throw malformed("the third line must start with \"trusted comment: \"")
        }
        let trusted = lines[2].dropFirst(Minisign.trustedPrefix.utf8.count)
        guard lines[2].count < Minisign.maxTrustedCommentBytes else { throw malformed("the trusted comment is too long") }
        guard let untrusted = String(validating: lines[0].dropFirst(Minisign.untrustedPrefix.utf8.count), as: UTF8.self),
              let trustedText = String(validating: trusted, as: UTF8.self) else {
            throw malformed("a comment is not valid UTF-8")
        }
        guard !lines[0].contains(0), !trusted.contains(0) else { throw malformed("a comment holds a NUL byte") }
        guard let sig = Base64.decode(lines[1]), sig.count == 74 else {
            throw malformed("the second line must be 74 bytes in base64")
        }
        guard let global = Base64.decode(lines[3]), global.count == 64 else {
            throw malformed("the fourth line must be 64 bytes in base64")
        }
        switch (sig[0], sig[1]) {
        case (UInt8(ascii: "E"), UInt8(ascii: "d")): algorithm = .legacy
        case (UInt8(ascii: "E"), UInt8(ascii: "D")): algorithm = .prehashed
        default: throw malformed("unsupported signature algorithm")
        }
        keyID = MinisignKeyID(sig[2..<10])!
        signature = Array(sig[10..<74])
        untrustedComment = untrusted
        trustedComment = trustedText
        globalSignature = global
    }

    /// The `.minisig` file, as minisign writes it.
    public var fileContents: String {
        let alg = algorithm == .prehashed ? "ED" : "Ed"
        return "untrusted comment: \(untrustedComment)\n"
            + Base64.encode(Array(alg.utf8) + keyID.bytes + signature) + "\n"
            + "trusted comment: \(trustedComment)\n"
            + Base64.encode(globalSignature) + "\n"
    }

    /// Checks the signature over `data` and the global signature over the trusted comment.
    /// Throws `signature.untrusted_key` (other key id) or `signature.invalid`.
    public func verify(_ data: [UInt8], with key: MinisignPublicKey) throws(CaissonError) {
        guard key.keyID == keyID else {
            throw CaissonError("signature.untrusted_key", "the signature was made with key \(keyID), not \(key.keyID)")
        }
        let message: [UInt8]
        switch algorithm {
        case .legacy: message = data
        case .prehashed:
            guard let digest = BLAKE2b512.hash(data) else {
                throw CaissonError("signature.invalid", "BLAKE2b-512 could not be computed")
            }
            message = digest
        }
        guard Ed25519.verify(publicKey: key.key, message: message, signature: signature) else {
            throw CaissonError("signature.invalid", "the signature of manifest.toml does not verify with key \(keyID): the manifest or the signature was altered")
        }
        guard Ed25519.verify(publicKey: key.key, message: signature + Array(trustedComment.utf8), signature: globalSignature) else {
            throw CaissonError("signature.invalid", "the global signature (over the trusted comment) does not verify with key \(keyID)")
        }
    }
}

/// A minisign secret key: key id and the Ed25519 key (32-byte seed; the public half is derived).
public struct MinisignSecretKey: Sendable, Equatable {
    public var keyID: MinisignKeyID
    /// The 32-byte Ed25519 private key seed.
    public var seed: [UInt8]
    public var publicKey: MinisignPublicKey

    /// `seed` must be 32 bytes.
    public init(keyID: MinisignKeyID, seed: [UInt8]) throws(CaissonError) {
        guard let pk = Ed25519.publicKey(seed: seed) else {
            throw CaissonError("key.malformed", "an Ed25519 private key seed is 32 bytes")
        }
        self.keyID = keyID
        self.seed = seed
        self.publicKey = MinisignPublicKey(keyID: keyID, key: pk)
    }

    /// Parses a `minisign.key` file: unencrypted (`minisign -G -W`), or encrypted with scrypt
    /// (`minisign -G`), which needs `password` (else `key.password_required`; a wrong one gives
    /// `key.wrong_password`). The stored public half must match the one derived from the seed,
    /// and the BLAKE2b checksum is checked when libsodium is available.
    public init(parsing text: String, password: String? = nil) throws(CaissonError) {
        let lines = Minisign.lines(Array(text.utf8)).filter { !$0.isEmpty }
        guard lines.count == 2, Minisign.hasPrefix(lines[0], Minisign.untrustedPrefix) else {
            throw CaissonError("key.malformed", "a minisign secret key file is an untrusted comment line and one base64 line")
        }
        guard let raw = Base64.decode(lines[1]), raw.count == 158 else {
            throw CaissonError("key.malformed", "a minisign secret key is 158 bytes in base64")
        }
        guard raw[0] == UInt8(ascii: "E"), raw[1] == UInt8(ascii: "d") else {
            throw CaissonError("key.unsupported", "the secret key's algorithm is not Ed25519 (\"Ed\")")
        }
        guard raw[4] == UInt8(ascii: "B"), raw[5] == UInt8(ascii: "2") else {
            throw CaissonError("key.unsupported", "the secret key's checksum algorithm is not BLAKE2b (\"B2\")")
        }
        var keynumSK = Array(raw[54..<158])
        let encrypted: Bool
        switch (raw[2], raw[3]) {
        case (0, 0): encrypted = false
        case (UInt8(ascii: "S"), UInt8(ascii: "c")):
            encrypted = true
            guard let password else {
                throw CaissonError("key.password_required", "the secret key is encrypted: a password is needed")
            }
            func le64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(raw[at + $1]) << (8 * UInt64($1)) } }
            guard let stream = Scrypt.derive(password: Array(password.utf8), salt: Array(raw[6..<38]),
                                             opsLimit: le64(38), memLimit: le64(46), count: keynumSK.count) else {
                throw CaissonError("key.unsupported", "the secret key's scrypt parameters are out of bounds")
            }
            for i in keynumSK.indices { keynumSK[i] ^= stream[i] }
        default:
            throw CaissonError("key.unsupported", "the secret key's key derivation function is not scrypt (\"Sc\") or none")
        }
        guard let id = MinisignKeyID(keynumSK[0..<8]) else { throw CaissonError("key.malformed", "bad key id") }
        let sk = Array(keynumSK[8..<72])
        let checksum = Array(keynumSK[72..<104])
        try self.init(keyID: id, seed: Array(sk[0..<32]))
        guard Array(sk[32..<64]) == publicKey.key else {
            if encrypted { throw CaissonError("key.wrong_password", "wrong password for the secret key (or the key is corrupt)") }
            throw CaissonError("key.malformed", "the secret key is corrupt (its public half does not match its private half)")
        }
        // `minisign -G -W` (0.11) writes an all-zero checksum for unencrypted keys and never checks
        // it; a non-zero one is checked when BLAKE2b-256 is available.
        if checksum.contains(where: { $0 != 0 }), let expected = BLAKE2b256.hash(Array("Ed".utf8) + id.bytes + sk),
           expected != checksum {
            throw CaissonError("key.malformed", "the secret key's checksum does not match (corrupt, or encrypted)")
        }
    }

    /// The unencrypted `minisign.key` file, as `minisign -G -W` writes it (zero salt and limits).
    /// The BLAKE2b-256 checksum is written when libsodium provides it (libcrypto 3.0 cannot);
    /// otherwise it is all zeros, exactly as `minisign -G -W` 0.11 writes it.
    public func fileContents() -> String {
        let sk = seed + publicKey.key
        let checksum = BLAKE2b256.hash(Array("Ed".utf8) + keyID.bytes + sk) ?? [UInt8](repeating: 0, count: 32)
        var raw = Array("Ed".utf8) + [0, 0] + Array("B2".utf8)
        raw += [UInt8](repeating: 0, count: 32 + 8 + 8)
        raw += keyID.bytes + sk + checksum
        return "untrusted comment: minisign encrypted secret key\n" + Base64.encode(raw) + "\n"
    }

    /// The `minisign.key` file encrypted with `password` as `minisign -G` writes it (scrypt with
    /// minisign's limits: N = 2^20, r = 8, p = 1, 1 GiB of memory, a few seconds; random salt).
    /// minisign checks the checksum of encrypted keys, so this needs libsodium's BLAKE2b-256:
    /// without it, `key.checksum_unavailable`.
    public func encryptedFileContents(password: String) throws(CaissonError) -> String {
        let sk = seed + publicKey.key
        guard let checksum = BLAKE2b256.hash(Array("Ed".utf8) + keyID.bytes + sk) else {
            throw CaissonError("key.checksum_unavailable",
                "an encrypted minisign key needs a BLAKE2b-256 checksum, which needs libsodium (libcrypto 3.0 has no BLAKE2b-256)")
        }
        var rng = SystemRandomNumberGenerator()
        let salt = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let ops = Scrypt.minisignOpsLimit, mem = Scrypt.minisignMemLimit
        var keynumSK = keyID.bytes + sk + checksum
        guard let stream = Scrypt.derive(password: Array(password.utf8), salt: salt, opsLimit: ops, memLimit: mem,
                                         count: keynumSK.count) else {
            throw CaissonError("key.generation_failed", "scrypt failed (out of memory?)")
        }
        for i in keynumSK.indices { keynumSK[i] ^= stream[i] }
        func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
        let raw = Array("EdScB2".utf8) + salt + le64(ops) + le64(mem) + keynumSK
        return "untrusted comment: minisign encrypted secret key\n" + Base64.encode(raw) + "\n"
    }
}

/// A freshly generated minisign key pair.
public struct KeyPair: Sendable, Equatable {
    public var secretKey: MinisignSecretKey
    public var publicKey: MinisignPublicKey { secretKey.publicKey }

    public init(secretKey: MinisignSecretKey) { self.secretKey = secretKey }

    /// A new Ed25519 key (libcrypto's key generation) with a random 8-byte key id. Not
    /// deterministic by design: keep it out of simulator and core decision paths.
    public static func generate() throws(CaissonError) -> KeyPair {
        var rng = SystemRandomNumberGenerator()
        let id = rng.next() as UInt64
        let idBytes = (0..<8).map { UInt8(truncatingIfNeeded: id >> (8 * UInt64($0))) }
        guard let seed = Ed25519.generateSeed(), let keyID = MinisignKeyID(idBytes) else {
            throw CaissonError("key.generation_failed", "libcrypto could not generate an Ed25519 key")
        }
        return KeyPair(secretKey: try MinisignSecretKey(keyID: keyID, seed: seed))
    }
}
