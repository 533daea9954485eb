import COpenSSL

/// The primitives the age format composes, each a thin call into libcrypto (no primitive of our
/// own): X25519, HKDF-SHA-256, HMAC-SHA-256, ChaCha20-Poly1305, scrypt and the CSPRNG.
enum AgeCrypto {
    // MARK: X25519

    /// The public key (basepoint multiple) of a 32-byte X25519 secret.
    static func x25519PublicKey(secret: [UInt8]) -> [UInt8]? {
        guard secret.count == 32 else { return nil }
        let pkey = secret.withUnsafeBufferPointer {
            EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nil, $0.baseAddress, 32)
        }
        guard let pkey else { return nil }
        defer { EVP_PKEY_free(pkey) }
        var out = [UInt8](repeating: 0, count: 32)
        var length = 32
        let rc = out.withUnsafeMutableBufferPointer { EVP_PKEY_get_raw_public_key(pkey, $0.baseAddress, &length) }
        return rc == 1 && length == 32 ? out : nil
    }

    /// X25519(secret, peer). nil when libcrypto refuses, which it does for an all-zero result
    /// (a low-order or identity peer point), as age requires.
    static func x25519(secret: [UInt8], peer: [UInt8]) -> [UInt8]? {
        guard secret.count == 32, peer.count == 32 else { return nil }
        let mine = secret.withUnsafeBufferPointer { EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nil, $0.baseAddress, 32) }
        guard let mine else { return nil }
        defer { EVP_PKEY_free(mine) }
        let theirs = peer.withUnsafeBufferPointer { EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nil, $0.baseAddress, 32) }
        guard let theirs else { return nil }
        defer { EVP_PKEY_free(theirs) }
        guard let ctx = EVP_PKEY_CTX_new(mine, nil) else { return nil }
        defer { EVP_PKEY_CTX_free(ctx) }
        defer { ERR_clear_error() }
        guard EVP_PKEY_derive_init(ctx) == 1, EVP_PKEY_derive_set_peer(ctx, theirs) == 1 else { return nil }
        var out = [UInt8](repeating: 0, count: 32)
        var length = 32
        let rc = out.withUnsafeMutableBufferPointer { EVP_PKEY_derive(ctx, $0.baseAddress, &length) }
        // Belt and braces: the all-zero shared secret is refused whatever libcrypto does.
        guard rc == 1, length == 32, out.contains(where: { $0 != 0 }) else { return nil }
        return out
    }

    // MARK: HKDF, HMAC

    /// HKDF-SHA-256 (RFC 5869) of `ikm` with `salt` and `info`, `count` bytes.
    static func hkdf(ikm: [UInt8], salt: [UInt8], info: String, count: Int) -> [UInt8] {
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nil) else { fatalError("EVP_PKEY_CTX_new_id(HKDF) failed") }
        defer { EVP_PKEY_CTX_free(ctx) }
        let info = Array(info.utf8)
        var out = [UInt8](repeating: 0, count: count)
        var length = count
        // An empty salt is HKDF's default (HashLen zero bytes, the same HMAC key).
        let ok = EVP_PKEY_derive_init(ctx) == 1
            && EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) == 1
            && (salt.isEmpty || salt.withUnsafeBufferPointer { EVP_PKEY_CTX_set1_hkdf_salt(ctx, $0.baseAddress, Int32($0.count)) } == 1)
            && ikm.withUnsafeBufferPointer { EVP_PKEY_CTX_set1_hkdf_key(ctx, $0.baseAddress, Int32($0.count)) } == 1
            && info.withUnsafeBufferPointer { EVP_PKEY_CTX_add1_hkdf_info(ctx, $0.baseAddress, Int32($0.count)) } == 1
            && out.withUnsafeMutableBufferPointer { EVP_PKEY_derive(ctx, $0.baseAddress, &length) } == 1
        // Only memory exhaustion makes HKDF over valid inputs fail.
        guard ok, length == count else { fatalError("HKDF-SHA-256 failed in libcrypto") }
        return out
    }

    /// HMAC-SHA-256 of `message` under `key`.
    static func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let rc = key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                out.withUnsafeMutableBufferPointer { o in
                    HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), m.baseAddress, m.count, o.baseAddress, &length)
                }
            }
        }
        guard rc != nil, length == 32 else { fatalError("HMAC-SHA-256 failed in libcrypto") }
        return out
    }

    /// Constant-time comparison.
    static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 } }
    }

    // MARK: ChaCha20-Poly1305 (one-shot, for stanza bodies)

    /// Seals `plaintext` under `key` with an all-zero nonce (age's key wrapping).
    static func sealZeroNonce(key: [UInt8], plaintext: [UInt8]) -> [UInt8] {
        let aead = ChaChaPoly(key: key)
        var out = [UInt8](repeating: 0, count: plaintext.count + ChaChaPoly.tagCount)
        let nonce = [UInt8](repeating: 0, count: 12)
        plaintext.withUnsafeBytes { p in
            out.withUnsafeMutableBytes { o in aead.seal(p, nonce: nonce, into: o) }
        }
        return out
    }

    /// Opens `ciphertext` (with its tag) under `key` with an all-zero nonce; nil if it does not authenticate.
    static func openZeroNonce(key: [UInt8], ciphertext: [UInt8]) -> [UInt8]? {
        guard ciphertext.count >= ChaChaPoly.tagCount else { return nil }
        let aead = ChaChaPoly(key: key)
        var out = [UInt8](repeating: 0, count: ciphertext.count - ChaChaPoly.tagCount)
        let nonce = [UInt8](repeating: 0, count: 12)
        let ok = ciphertext.withUnsafeBytes { c in
            out.withUnsafeMutableBytes { o in aead.open(c, nonce: nonce, into: o) }
        }
        return ok ? out : nil
    }

    // MARK: scrypt

    /// scrypt(password, salt, N = 2^logN, r = 8, p = 1), 32 bytes, with libcrypto's memory limit
    /// raised to exactly what N needs (its default, 32 MiB, stops at logN 14). nil when libcrypto
    /// fails (out of memory).
    static func scrypt(password: [UInt8], salt: [UInt8], logN: Int) -> [UInt8]? {
        guard logN > 0, logN < 40 else { return nil }
        let n = UInt64(1) << UInt64(logN)
        let r: UInt64 = 8, p: UInt64 = 1
        // libcrypto's own accounting: B = 128·r·p, V = 128·r·(N + 2) (+ its XY scratch).
        let needed = 128 * r * (n + 2) + 128 * r * p + 256 * r + (1 << 20)
        var out = [UInt8](repeating: 0, count: 32)
        let pass = password.map { CChar(bitPattern: $0) } + [0]
        let rc = out.withUnsafeMutableBufferPointer { o in
            pass.withUnsafeBufferPointer { pw in
                salt.withUnsafeBufferPointer { s in
                    EVP_PBE_scrypt(pw.baseAddress, password.count, s.baseAddress, s.count, n, r, p, needed, o.baseAddress, 32)
                }
            }
        }
        ERR_clear_error()
        return rc == 1 ? out : nil
    }

    /// The memory scrypt needs at work factor `logN` (r = 8), for messages.
    static func scryptMemory(logN: Int) -> Int64 { 128 * 8 * (Int64(1) << Int64(min(logN, 40))) }
}

/// ChaCha20-Poly1305 (RFC 8439) over one libcrypto cipher context whose key is set once; each
/// call re-initialises only the nonce. Not thread-safe (one per stream).
final class ChaChaPoly {
    static let tagCount = 16
    private let ctx: OpaquePointer

    init(key: [UInt8]) {
        precondition(key.count == 32, "ChaCha20-Poly1305 takes a 32-byte key")
        guard let ctx = EVP_CIPHER_CTX_new() else { fatalError("EVP_CIPHER_CTX_new failed (out of memory)") }
        self.ctx = ctx
        let rc = key.withUnsafeBufferPointer { EVP_CipherInit_ex(ctx, EVP_chacha20_poly1305(), nil, $0.baseAddress, nil, -1) }
        guard rc == 1 else { fatalError("EVP_CipherInit_ex(chacha20-poly1305) failed") }
    }

    deinit { EVP_CIPHER_CTX_free(ctx) }

    /// Encrypts `plaintext` into `out` (plaintext.count + 16 bytes: ciphertext then tag).
    func seal(_ plaintext: UnsafeRawBufferPointer, nonce: [UInt8], into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= plaintext.count + Self.tagCount && nonce.count == 12)
        var length: Int32 = 0
        let o = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var ok = nonce.withUnsafeBufferPointer { EVP_CipherInit_ex(ctx, nil, nil, nil, $0.baseAddress, 1) } == 1
        if plaintext.count > 0 {
            ok = ok && EVP_CipherUpdate(ctx, o, &length, plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                        Int32(plaintext.count)) == 1 && Int(length) == plaintext.count
        }
        var tail: Int32 = 0
        ok = ok && EVP_CipherFinal_ex(ctx, o + plaintext.count, &tail) == 1
        ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, Int32(Self.tagCount), o + plaintext.count) == 1
        guard ok else { fatalError("ChaCha20-Poly1305 encryption failed in libcrypto") }
    }

    /// Decrypts `sealed` (ciphertext then its 16-byte tag) into `out`; false when the tag does not
    /// verify (then `out` holds garbage that must not be used).
    func open(_ sealed: UnsafeRawBufferPointer, nonce: [UInt8], into out: UnsafeMutableRawBufferPointer) -> Bool {
        guard sealed.count >= Self.tagCount, nonce.count == 12 else { return false }
        let n = sealed.count - Self.tagCount
        precondition(out.count >= n)
        let s = sealed.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var length: Int32 = 0
        var ok = nonce.withUnsafeBufferPointer { EVP_CipherInit_ex(ctx, nil, nil, nil, $0.baseAddress, 0) } == 1
        if n > 0 {
            ok = ok && EVP_CipherUpdate(ctx, out.baseAddress!.assumingMemoryBound(to: UInt8.self), &length, s, Int32(n)) == 1
                && Int(length) == n
        }
        ok = ok && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, Int32(Self.tagCount), UnsafeMutableRawPointer(mutating: s + n)) == 1
        var tail: Int32 = 0
        var scratch: (UInt64, UInt64) = (0, 0)
        ok = ok && withUnsafeMutableBytes(of: &scratch) { s in
            // ChaCha20-Poly1305 writes nothing at Final; it still wants a valid pointer.
            EVP_CipherFinal_ex(ctx, s.baseAddress!.assumingMemoryBound(to: UInt8.self), &tail)
        } == 1
        ERR_clear_error()
        return ok
    }
}

/// Where randomness comes from (file keys, nonces, ephemeral keys, salts): injected, so Core
/// stays deterministic in tests; `system` is libcrypto's CSPRNG.
public struct AgeRandomness: Sendable {
    public var fill: @Sendable (Int) -> [UInt8]?

    public init(fill: @escaping @Sendable (Int) -> [UInt8]?) { self.fill = fill }

    /// libcrypto's `RAND_bytes`.
    public static let system = AgeRandomness { count in
        var out = [UInt8](repeating: 0, count: count)
        let rc = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        return rc == 1 ? out : nil
    }

    func bytes(_ count: Int) throws(AgeError) -> [UInt8] {
        guard let b = fill(count), b.count == count else {
            throw AgeError(.internalFailure, "no random bytes could be drawn from the system")
        }
        return b
    }
}
