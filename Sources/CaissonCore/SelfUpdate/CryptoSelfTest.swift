/// Known-answer checks of every cryptographic primitive Caisson uses (issue 14: a new executable
/// must prove, before it is swapped in, that the crypto it was linked with computes what the
/// standards say). Published vectors only: FIPS 180-2 (SHA-256), RFC 7693 (BLAKE2b-512), RFC 8032
/// (Ed25519), RFC 7748 (X25519), RFC 4231 (HMAC-SHA-256), RFC 5869 (HKDF), and two complete age
/// files from the C2SP CCTV vectors (X25519 and scrypt recipients: header MAC, ChaCha20-Poly1305
/// payload).
public enum CryptoSelfTest {
    public static func run() -> [SelfUpdateCheck] {
        [
            check("sha256") {
                SHA256.hash(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            },
            check("blake2b-512") {
                BLAKE2b512.hash(Array("abc".utf8)).map(hex) == "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
            },
            check("ed25519") {
                let seed = unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                let pub = unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                let sig = unhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
                var bad = sig
                bad[0] ^= 1
                return Ed25519.publicKey(seed: seed) == pub && Ed25519.sign(seed: seed, message: []) == sig
                    && Ed25519.verify(publicKey: pub, message: [], signature: sig)
                    && !Ed25519.verify(publicKey: pub, message: [], signature: bad)
            },
            check("x25519") {
                let alice = unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                let bobPublic = unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
                return AgeCrypto.x25519PublicKey(secret: alice) == unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
                    && AgeCrypto.x25519(secret: alice, peer: bobPublic) == unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
            },
            check("hmac-sha256") {
                AgeCrypto.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
                    == unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
            },
            check("hkdf-sha256") {
                AgeCrypto.hkdf(ikm: [UInt8](repeating: 0x0b, count: 22), salt: [], info: "", count: 42)
                    == unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
            },
            check("age-x25519") {
                guard let id = try? AgeX25519Identity(parsing: "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0") else { return false }
                return decrypts(ageX25519File, with: [id])
            },
            check("age-scrypt") {
                decrypts(ageScryptFile, with: [AgeScryptIdentity(passphrase: "password")])
            },
        ]
    }

    static func check(_ name: String, _ body: () -> Bool) -> SelfUpdateCheck {
        let ok = body()
        return SelfUpdateCheck(name: "crypto " + name, ok: ok, detail: ok ? "known answer" : "WRONG ANSWER")
    }

    /// Decrypts a CCTV vector's age file; its payload's SHA-256 is the vector's.
    static func decrypts(_ base64: String, with identities: [any AgeIdentity]) -> Bool {
        guard let file = Base64.decode(Array(base64.utf8)),
              let source = try? AgeDecryptingSource(MemoryByteSource(file), identities: identities) else { return false }
        var hasher = SHA256()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            guard let n = try? source.read(into: buffer) else { return false }
            if n == 0 { break }
            hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        return source.failure == nil && source.isComplete
            && hasher.hex == "013f54400c82da08037759ada907a8b864e97de81c088a182062c4b5622fd2ab"
    }

    static let ageX25519File = "YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSBURWlGMHlwcXIrYnB2Y3FYTnlDVkpwTDdPdXdQZFZ3UEw3S1FFYkZET0NjCmhqYWJHWHdTTFE5YzNTNkx3MmkrUzJUdTJmaXdRSEhzbGJCTjZCNDFGTEUKLS0tIFd5SnA5Ri85Rk9aaDdnSmRoZXEyV0lKY3dIZ1ljOE5JVmgzZGR3aHJjTmcK7s9ix86RtDMnTmjU8vkTTLdMW/73vqpSyPC8DpksHoMx+2Y="
    static let ageScryptFile = "YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IHNjcnlwdCByRjAvTndibFVISFRwZ1FnUnBlNUNRIDEwCmdVakV5bUZLTVZYUUVLZE1NSEwyNG9ZZXhqRTNUSUMwTzB6R1NxSjJhVVkKLS0tIElPWGlRWVN0a29UMW12WlcydEZPcVpkaFJWdmo1OGVnQUJ4L3NXZlpRYmMKGzXG5ofdANo6w3msn3QsIf0YWhuePe1znRSsappQEk24Ztg="

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func unhex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = s.utf8.makeIterator()
        func v(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : (c | 0x20) - 87 }
        while let a = it.next(), let b = it.next() { out.append(v(a) << 4 | v(b)) }
        return out
    }
}
