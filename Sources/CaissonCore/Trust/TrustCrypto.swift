import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// BLAKE2b-512 (64-byte output, unkeyed) over libcrypto's EVP API: minisign's prehash.
public struct BLAKE2b512: ~Copyable {
    private let ctx: OpaquePointer?
    private var ok: Bool

    public static let byteCount = 64

    public init() {
        ctx = EVP_MD_CTX_new()
        ok = ctx != nil && EVP_DigestInit_ex(ctx, EVP_blake2b512(), nil) == 1
    }

    deinit { EVP_MD_CTX_free(ctx) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard ok, let base = bytes.baseAddress, bytes.count > 0 else { return }
        ok = EVP_DigestUpdate(ctx, base, bytes.count) == 1
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest, or nil when libcrypto failed (memory exhaustion).
    public consuming func finalize() -> [UInt8]? {
        guard ok else { return nil }
        var out = [UInt8](repeating: 0, count: Self.byteCount)
        var length: UInt32 = 0
        let rc = out.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(ctx, $0.baseAddress, &length) }
        return rc == 1 && length == UInt32(Self.byteCount) ? out : nil
    }

    public static func hash(_ bytes: [UInt8]) -> [UInt8]? {
        var h = BLAKE2b512()
        h.update(bytes)
        return h.finalize()
    }
}

/// BLAKE2b with a 32-byte output (minisign's secret-key checksum, libsodium's
/// `crypto_generichash` default). libcrypto 3.0 has no variable-length BLAKE2b, so this borrows
/// `crypto_generichash` from libsodium (the library minisign itself uses) when it is installed.
/// Not available → nil; callers fall back to other integrity checks.
enum BLAKE2b256 {
    private typealias GenericHash = @convention(c) (UnsafeMutablePointer<UInt8>?, Int, UnsafePointer<UInt8>?, UInt64,
                                                    UnsafePointer<UInt8>?, Int) -> Int32
    private struct Loaded: @unchecked Sendable {
        let function: GenericHash?
        static let shared: Loaded = {
            for name in ["libsodium.so.23", "libsodium.so.26", "libsodium.so"] {
                if let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL),
                   let sym = dlsym(handle, "crypto_generichash") {
                    return Loaded(function: unsafeBitCast(sym, to: GenericHash.self))
                }
            }
            return Loaded(function: nil)
        }()
    }

    static var isAvailable: Bool { Loaded.shared.function != nil }

    static func hash(_ bytes: [UInt8]) -> [UInt8]? {
        guard let f = Loaded.shared.function else { return nil }
        var out = [UInt8](repeating: 0, count: 32)
        let rc = out.withUnsafeMutableBufferPointer { o in
            bytes.withUnsafeBufferPointer { i in f(o.baseAddress, 32, i.baseAddress, UInt64(i.count), nil, 0) }
        }
        return rc == 0 ? out : nil
    }
}

/// Ed25519 over libcrypto's EVP API (`EVP_PKEY_ED25519`, one-shot DigestSign/DigestVerify).
public enum Ed25519 {
    public static let publicKeyCount = 32
    public static let seedCount = 32
    public static let signatureCount = 64

    /// Whether `signature` is a valid Ed25519 signature of `message` by `publicKey`.
    public static func verify(publicKey: [UInt8], message: [UInt8], signature: [UInt8]) -> Bool {
        guard publicKey.count == publicKeyCount, signature.count == signatureCount else { return false }
        let pkey = publicKey.withUnsafeBufferPointer {
            EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, $0.baseAddress, $0.count)
        }
        guard let pkey else { return false }
        defer { EVP_PKEY_free(pkey) }
        guard let ctx = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestVerifyInit(ctx, nil, nil, nil, pkey) == 1 else { return false }
        let rc = signature.withUnsafeBufferPointer { s in
            message.withUnsafeBufferPointer { m in
                EVP_DigestVerify(ctx, s.baseAddress, s.count, m.baseAddress, m.count)
            }
        }
        ERR_clear_error()
        return rc == 1
    }

    /// Signs `message` with the private key whose 32-byte seed is `seed`.
    public static func sign(seed: [UInt8], message: [UInt8]) -> [UInt8]? {
        guard seed.count == seedCount else { return nil }
        let pkey = seed.withUnsafeBufferPointer {
            EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, $0.baseAddress, $0.count)
        }
        guard let pkey else { return nil }
        defer { EVP_PKEY_free(pkey) }
        guard let ctx = EVP_MD_CTX_new() else { return nil }
        defer { EVP_MD_CTX_free(ctx) }
        guard EVP_DigestSignInit(ctx, nil, nil, nil, pkey) == 1 else { return nil }
        var out = [UInt8](repeating: 0, count: signatureCount)
        var length = signatureCount
        let rc = out.withUnsafeMutableBufferPointer { o in
            message.withUnsafeBufferPointer { m in
                EVP_DigestSign(ctx, o.baseAddress, &length, m.baseAddress, m.count)
            }
        }
        return rc == 1 && length == signatureCount ? out : nil
    }

    /// The public key of the private key whose seed is `seed`.
    public static func publicKey(seed: [UInt8]) -> [UInt8]? {
        guard seed.count == seedCount else { return nil }
        let pkey = seed.withUnsafeBufferPointer {
            EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, $0.baseAddress, $0.count)
        }
        guard let pkey else { return nil }
        defer { EVP_PKEY_free(pkey) }
        return raw(pkey, privatePart: false)
    }

    /// A fresh private key seed from libcrypto's key generation (its CSPRNG).
    public static func generateSeed() -> [UInt8]? {
        guard let ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nil) else { return nil }
        defer { EVP_PKEY_CTX_free(ctx) }
        guard EVP_PKEY_keygen_init(ctx) == 1 else { return nil }
        var pkey: OpaquePointer? = nil
        guard EVP_PKEY_keygen(ctx, &pkey) == 1, let key = pkey else { return nil }
        defer { EVP_PKEY_free(key) }
        return raw(key, privatePart: true)
    }

    private static func raw(_ pkey: OpaquePointer, privatePart: Bool) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 32)
        var length = 32
        let rc = out.withUnsafeMutableBufferPointer { o in
            privatePart ? EVP_PKEY_get_raw_private_key(pkey, o.baseAddress, &length)
                        : EVP_PKEY_get_raw_public_key(pkey, o.baseAddress, &length)
        }
        return rc == 1 && length == 32 ? out : nil
    }
}

/// scrypt (libcrypto `EVP_PBE_scrypt`) with libsodium's `crypto_pwhash_scryptsalsa208sha256`
/// parameters (what minisign uses to encrypt secret keys).
enum Scrypt {
    /// minisign's limits (libsodium's *_SENSITIVE): N = 2^20, r = 8, p = 1, 1 GiB of memory.
    static let minisignOpsLimit: UInt64 = 33_554_432
    static let minisignMemLimit: UInt64 = 1_073_741_824

    /// libsodium's `pickparams`: (log2 N, r, p) from opslimit/memlimit.
    static func parameters(opsLimit: UInt64, memLimit: UInt64) -> (nLog2: UInt64, r: UInt64, p: UInt64) {
        let ops = max(opsLimit, 32768)
        let r: UInt64 = 8
        var nLog2: UInt64 = 1
        if ops < memLimit / 32 {
            let maxN = ops / (r * 4)
            while nLog2 < 63, (UInt64(1) << nLog2) <= maxN / 2 { nLog2 += 1 }
            return (nLog2, r, 1)
        }
        let maxN = memLimit / (r * 128)
        while nLog2 < 63, (UInt64(1) << nLog2) <= maxN / 2 { nLog2 += 1 }
        let maxrp = min((ops / 4) / (UInt64(1) << nLog2), 0x3fff_ffff)
        return (nLog2, r, maxrp / r)
    }

    /// `count` bytes of scrypt(password, salt). Refuses parameters needing more than `maxMemory`
    /// (a hostile key file must not make us allocate without bound).
    static func derive(password: [UInt8], salt: [UInt8], opsLimit: UInt64, memLimit: UInt64, count: Int,
                       maxMemory: UInt64 = 2 << 30) -> [UInt8]? {
        let (nLog2, r, p) = parameters(opsLimit: opsLimit, memLimit: memLimit)
        guard nLog2 < 40, p >= 1, 128 * r * (UInt64(1) << nLog2) <= maxMemory, r * p < 1 << 30 else { return nil }
        var out = [UInt8](repeating: 0, count: count)
        // NUL-terminated so the pointer is valid even for an empty password; the length excludes it.
        let pass = password.map { CChar(bitPattern: $0) } + [0]
        let rc = out.withUnsafeMutableBufferPointer { o in
            pass.withUnsafeBufferPointer { pw in
                salt.withUnsafeBufferPointer { s in
                    EVP_PBE_scrypt(pw.baseAddress, password.count, s.baseAddress, s.count,
                                   UInt64(1) << nLog2, r, p, maxMemory + (1 << 20), o.baseAddress, count)
                }
            }
        }
        ERR_clear_error()
        return rc == 1 ? out : nil
    }
}

/// Strict standard base64 (RFC 4648 alphabet, padding required, canonical trailing bits), as
/// libsodium's `sodium_base642bin(..., sodium_base64_VARIANT_ORIGINAL)` accepts it.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i])
            let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let n = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(i + 1 < bytes.count ? alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(n & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        let chars = Array(text)
        guard chars.count % 4 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 4 * 3)
        var i = 0
        while i < chars.count {
            let last = i + 4 == chars.count
            var n: UInt32 = 0
            var pad = 0
            for j in 0..<4 {
                let c = chars[i + j]
                if c == UInt8(ascii: "=") {
                    // Padding only at the end, only in the last two places, and only trailing.
                    guard last, j >= 2 else { return nil }
                    pad += 1
                    n <<= 6
                    continue
                }
                guard pad == 0, let v = value(c) else { return nil }
                n = n << 6 | UInt32(v)
            }
            out.append(UInt8(n >> 16 & 0xff))
            if pad < 2 { out.append(UInt8(n >> 8 & 0xff)) } else if n & 0xffff != 0 { return nil }
            if pad < 1 { out.append(UInt8(n & 0xff)) } else if n & 0xff != 0 { return nil }
            i += 4
        }
        return out
    }

    private static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
