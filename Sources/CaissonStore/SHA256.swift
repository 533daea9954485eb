import COpenSSL

/// SHA-256 from libcrypto's EVP API (never hand-rolled).
enum StoreSHA256 {
    static let byteCount = 32

    /// The digest of the concatenation of `parts`.
    static func hash(_ parts: [UInt8]...) -> [UInt8] {
        guard let ctx = EVP_MD_CTX_new() else { preconditionFailure("libcrypto: out of memory") }
        defer { EVP_MD_CTX_free(ctx) }
        var ok = EVP_DigestInit_ex(ctx, EVP_sha256(), nil) == 1
        for part in parts where ok {
            ok = part.withUnsafeBytes { EVP_DigestUpdate(ctx, $0.baseAddress, $0.count) } == 1
        }
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        if ok { ok = EVP_DigestFinal_ex(ctx, &digest, &length) == 1 }
        // SHA-256 with valid arguments cannot fail short of memory exhaustion.
        precondition(ok && length == UInt32(byteCount), "libcrypto: SHA-256 failed")
        return Array(digest.prefix(byteCount))
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits: [Character] = Array("0123456789abcdef")
        var s = ""
        s.reserveCapacity(bytes.count * 2)
        for b in bytes {
            s.append(digits[Int(b >> 4)])
            s.append(digits[Int(b & 0x0F)])
        }
        return s
    }
}
