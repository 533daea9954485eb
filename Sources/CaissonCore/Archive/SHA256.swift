import COpenSSL

/// Streaming SHA-256 over libcrypto's EVP API.
///
/// A value type with copy-on-write: a copy continues independently from the same state
/// (`EVP_MD_CTX_copy_ex`), so it is safe to hand a hasher to another thread (it is `Sendable`
/// like `Array`). The libcrypto context is freed when the last copy goes away.
///
/// ```swift
/// var sha = SHA256()
/// sha.update(bytes)
/// let digest = sha.finalize()        // 32 bytes; `sha` is reset and can be reused
/// ```
public struct SHA256: Sendable {
    /// Owns one `EVP_MD_CTX`. Only mutated while uniquely referenced (see `makeUnique`).
    /// SHA-256 fetched once from the default provider (an explicit fetch avoids OpenSSL 3's
    /// implicit fetch on every `EVP_DigestInit_ex`, which dominates hashing many tiny files).
    private struct Algorithm: @unchecked Sendable {
        let md: OpaquePointer?
        static let shared = Algorithm(md: EVP_MD_fetch(nil, "SHA256", nil) ?? EVP_sha256())
    }

    private final class Context: @unchecked Sendable {
        let ctx: OpaquePointer

        init() {
            guard let ctx = EVP_MD_CTX_new() else {
                // Allocation failure of a few hundred bytes: not input-derived.
                fatalError("EVP_MD_CTX_new failed (out of memory)")
            }
            self.ctx = ctx
            reset()
        }

        func reset() {
            Context.check(EVP_DigestInit_ex(ctx, Algorithm.shared.md, nil), "EVP_DigestInit_ex")
        }

        init(copying other: Context) {
            guard let ctx = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new failed (out of memory)") }
            self.ctx = ctx
            Context.check(EVP_MD_CTX_copy_ex(ctx, other.ctx), "EVP_MD_CTX_copy_ex")
        }

        deinit { EVP_MD_CTX_free(ctx) }

        static func check(_ rc: Int32, _ what: StaticString) {
            // EVP calls on a valid SHA-256 context only fail on memory exhaustion.
            if rc != 1 { fatalError("\(what) failed") }
        }
    }

    /// The length of a digest in bytes.
    public static let byteCount = 32

    private var context: Context

    public init() { context = Context() }

    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&context) { context = Context(copying: context) }
    }

    /// Feeds bytes into the hash.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        makeUnique()
        Context.check(EVP_DigestUpdate(context.ctx, base, bytes.count), "EVP_DigestUpdate")
    }

    /// Feeds bytes into the hash.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Returns the digest of everything fed so far and resets the hasher to its initial state.
    public mutating func finalize() -> [UInt8] {
        makeUnique()
        var out = [UInt8](repeating: 0, count: SHA256.byteCount)
        var length: UInt32 = 0
        out.withUnsafeMutableBufferPointer { buf in
            Context.check(EVP_DigestFinal_ex(context.ctx, buf.baseAddress, &length), "EVP_DigestFinal_ex")
        }
        context.reset()
        return out
    }

    /// Returns the digest of everything fed so far as a compact value and resets the hasher.
    public mutating func finalizeDigest() -> SHA256Digest {
        SHA256Digest(finalize())
    }

    /// The digest of the bytes fed so far, without disturbing this hasher.
    public var digest: [UInt8] {
        var copy = self
        return copy.finalize()
    }

    /// Lowercase hex of the digest of the bytes fed so far, without disturbing this hasher.
    public var hex: String { SHA256Digest(digest).hex }

    /// The digest of `bytes`.
    public static func hash(_ bytes: [UInt8]) -> SHA256Digest {
        var sha = SHA256()
        sha.update(bytes)
        return sha.finalizeDigest()
    }
}

/// A SHA-256 digest as a compact, hashable value (32 bytes inline, no allocation).
public struct SHA256Digest: Hashable, Sendable, CustomStringConvertible {
    private var a: UInt64, b: UInt64, c: UInt64, d: UInt64

    /// `bytes` must hold 32 bytes; shorter input is zero-padded, longer input truncated.
    public init(_ bytes: [UInt8]) {
        func word(_ i: Int) -> UInt64 {
            var w: UInt64 = 0
            for j in 0..<8 {
                let k = i * 8 + j
                w = (w << 8) | UInt64(k < bytes.count ? bytes[k] : 0)
            }
            return w
        }
        a = word(0); b = word(1); c = word(2); d = word(3)
    }

    /// Parses 64 lowercase hex characters (the form used in `sha256:<hex>` and blob paths).
    /// Uppercase or any other length is rejected, as Docker and OCI do.
    public init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 64 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(32)
        var i = 0
        while i < 64 {
            guard let hi = Self.nibble(utf8[i]), let lo = Self.nibble(utf8[i + 1]) else { return nil }
            bytes.append(hi << 4 | lo)
            i += 2
        }
        self.init(bytes)
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    /// The 32 digest bytes.
    public var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(32)
        for w in [a, b, c, d] {
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: w >> UInt64(shift))) }
        }
        return out
    }

    /// 64 lowercase hex characters.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `sha256:<hex>`, the form of image ids and OCI descriptors.
    public var prefixed: String { "sha256:" + hex }

    public var description: String { prefixed }

    /// The digest of zero bytes.
    public static let empty = SHA256.hash([])
}
