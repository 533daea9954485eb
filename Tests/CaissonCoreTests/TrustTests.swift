@testable import CaissonCore
import Foundation
import Testing

/// minisign formats, Ed25519/BLAKE2b over libcrypto, signing and verification (issue 6).
@Suite struct TrustTests {
    // Known answers written by Debian's minisign 0.11 (`minisign -G -W`, `-S`, `-S -l`) for "hello\n".
    static let pub = """
    untrusted comment: minisign public key 5C2186E7E629B7C
    RWR8m2J+bhjCBaAAFs4/5pPD/5dgHu3i7ZrkHFT318um3r8U3oDoFnps

    """
    static let prehashed = """
    untrusted comment: signature from minisign secret key
    RUR8m2J+bhjCBZz2LfPl0ZD/zy/2StxoLptqT85pdffM00jvbfZyXO1J7VuTrQjNCAxzaSN/B49BusIdK/F71JFnNa1egig1Lgw=
    trusted comment: tc here
    7Qgeof65Jdkg436P7lDK/+ZT1Qprm5jCGgogL0ROE9fngyvF1DDbKtmhPi0Tk6EdUb1Irj5NTy3qIXoYa8p6DA==

    """
    static let legacy = """
    untrusted comment: signature from minisign secret key
    RWR8m2J+bhjCBQ9AlgkU+p5iBbJtVk8CgCGg20gtFirZ1trzuPVSQ/AXgCLibsNSa4TJQS7SOcwpTBk7RbrZtkPA1ivrlBblQAU=
    trusted comment: timestamp:1795449008\tfile:m
    45UAs6NZmz/aj3+xxHFDTMvEmj4Mg5fHevHhX+Fo7kNyLtREpGx9I86WNVUvKydxua6FxiHC6/zsovnzpVzzDQ==

    """
    static let hello = Array("hello\n".utf8)

    @Test func publicKeyParsesAsFileOrLineAndRoundTrips() throws {
        let k = try MinisignPublicKey(parsing: Self.pub)
        #expect(k.keyID.description == "5C2186E7E629B7C")
        #expect(k.base64 == "RWR8m2J+bhjCBaAAFs4/5pPD/5dgHu3i7ZrkHFT318um3r8U3oDoFnps")
        #expect(k.fileContents == Self.pub)
        #expect(try MinisignPublicKey(parsing: k.base64) == k)
        #expect(try MinisignPublicKey(parsing: "  " + k.base64 + " \r\n") == k)
    }

    @Test("malformed public keys", arguments: [
        "", "RWR8m2J+bhjCBaAAFs4/5pPD/5dgHu3i7ZrkHFT318um3r8U3oDoFnp", "RWR8m2J+bhjCBaAAFs4/5pPD/5dgHu3i7ZrkHFT318um3r8U3oDoFnpsAAAA",
        "not base64 at all!", "RWR8m2J+bhjCBaAAFs4/5pPD/5dgHu3i7ZrkHFT318um3r8U3oDoFnps\nRWR8m2J+bhjCBaAAFs4/5pPD/5dgHu3i7ZrkHFT318um3r8U3oDoFnps",
        // "RW" -> "Rw": algorithm bytes other than "Ed".
        "Rwd8m2J+bhjCBaAAFs4/5pPD/5dgHu3i7ZrkHFT318um3r8U3oDoFnps",
    ])
    func malformedPublicKeys(_ text: String) {
        #expect(throws: CaissonError.self) { try MinisignPublicKey(parsing: text) }
    }

    @Test func minisignSignaturesVerifyPrehashedAndLegacy() throws {
        let key = try MinisignPublicKey(parsing: Self.pub)
        let p = try Minisign.verify(Self.hello, signatureFile: Array(Self.prehashed.utf8), trustedKeys: [key])
        #expect(p.algorithm == .prehashed)
        #expect(p.trustedComment == "tc here")
        #expect(p.fileContents == Self.prehashed)
        let l = try Minisign.verify(Self.hello, signatureFile: Array(Self.legacy.utf8), trustedKeys: [key])
        #expect(l.algorithm == .legacy)
        #expect(l.trustedComment == "timestamp:1795449008\tfile:m")
        // CRLF line endings are read as minisign reads them.
        let crlf = Self.prehashed.replacingOccurrences(of: "\n", with: "\r\n")
        #expect(try Minisign.verify(Self.hello, signatureFile: Array(crlf.utf8), trustedKeys: [key]).trustedComment == "tc here")
    }

    static func code(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch { return (error as? CaissonError)?.code ?? "\(error)" }
    }

    @Test func wrongDataWrongKeyAndTamperedCommentFail() throws {
        let key = try MinisignPublicKey(parsing: Self.pub)
        let sig = Array(Self.prehashed.utf8)
        #expect(Self.code { _ = try Minisign.verify(Array("hellO\n".utf8), signatureFile: sig, trustedKeys: [key]) } == "signature.invalid")
        let other = try KeyPair.generate().publicKey
        #expect(Self.code { _ = try Minisign.verify(Self.hello, signatureFile: sig, trustedKeys: [other]) } == "signature.untrusted_key")
        #expect(Self.code { _ = try Minisign.verify(Self.hello, signatureFile: sig, trustedKeys: []) } == "signature.untrusted_key")
        let comment = Self.prehashed.replacingOccurrences(of: "tc here", with: "tc hers")
        #expect(Self.code { _ = try Minisign.verify(Self.hello, signatureFile: Array(comment.utf8), trustedKeys: [key]) } == "signature.invalid")
        // A signature with the right key id but another key's bytes: the signature is invalid.
        let impostor = MinisignPublicKey(keyID: key.keyID, key: other.key)
        #expect(Self.code { _ = try Minisign.verify(Self.hello, signatureFile: sig, trustedKeys: [impostor]) } == "signature.invalid")
    }

    /// Every byte of a signature file outside the untrusted comment's free text (which minisign
    /// itself does not authenticate) matters.
    @Test func everyFlippedSignatureByteFails() throws {
        let key = try MinisignPublicKey(parsing: Self.pub)
        for original in [Self.prehashed, Self.legacy] {
            let bytes = Array(original.utf8)
            let freeText = "untrusted comment: ".utf8.count..<bytes.firstIndex(of: 0x0a)!
            for i in bytes.indices where !freeText.contains(i) {
                for mask: UInt8 in [0x01, 0x20, 0x80] {
                    var b = bytes
                    b[i] ^= mask
                    let c = Self.code { _ = try Minisign.verify(Self.hello, signatureFile: b, trustedKeys: [key]) }
                    #expect(c != nil && c!.hasPrefix("signature."), "byte \(i) ^ \(mask) was accepted")
                }
            }
        }
    }

    @Test("malformed signature files", arguments: [
        "", "untrusted comment: x\n", "garbage\nRUR8\ntrusted comment: x\nAAAA\n",
        "untrusted comment: x\nRUR8m2J+\ntrusted comment: x\n7Qgeof65\n",
        "untrusted comment: x\nRUR8m2J+bhjCBZz2LfPl0ZD/zy/2StxoLptqT85pdffM00jvbfZyXO1J7VuTrQjNCAxzaSN/B49BusIdK/F71JFnNa1egig1Lgw=\nnot trusted: x\n7Qgeof65Jdkg436P7lDK/+ZT1Qprm5jCGgogL0ROE9fngyvF1DDbKtmhPi0Tk6EdUb1Irj5NTy3qIXoYa8p6DA==\n",
        // Algorithm "EX".
        "untrusted comment: x\nRVh8m2J+bhjCBZz2LfPl0ZD/zy/2StxoLptqT85pdffM00jvbfZyXO1J7VuTrQjNCAxzaSN/B49BusIdK/F71JFnNa1egig1Lgw=\ntrusted comment: x\n7Qgeof65Jdkg436P7lDK/+ZT1Qprm5jCGgogL0ROE9fngyvF1DDbKtmhPi0Tk6EdUb1Irj5NTy3qIXoYa8p6DA==\n",
        // Non-canonical base64 (trailing bits set: "Lgw=" -> "Lgx=").
        "untrusted comment: x\nRUR8m2J+bhjCBZz2LfPl0ZD/zy/2StxoLptqT85pdffM00jvbfZyXO1J7VuTrQjNCAxzaSN/B49BusIdK/F71JFnNa1egig1Lgx=\ntrusted comment: x\n7Qgeof65Jdkg436P7lDK/+ZT1Qprm5jCGgogL0ROE9fngyvF1DDbKtmhPi0Tk6EdUb1Irj5NTy3qIXoYa8p6DA==\n",
        String(repeating: "untrusted comment: x\n", count: 2000),
    ])
    func malformedSignatures(_ text: String) {
        #expect(Self.code { _ = try MinisignSignature(parsing: Array(text.utf8)) } == "signature.malformed")
    }

    @Test func base64IsStrictAndRoundTrips() {
        for n in 0..<20 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = Base64.encode(bytes)
            #expect(Base64.decode(Array(text.utf8)) == bytes)
        }
        #expect(Base64.encode(Array("hello".utf8)) == "aGVsbG8=")
        #expect(Base64.decode(Array("aGVsbG8".utf8)) == nil)
        #expect(Base64.decode(Array("aGVsbG9=".utf8)) == nil)
        #expect(Base64.decode(Array("aG=sbG8=".utf8)) == nil)
        #expect(Base64.decode(Array("aGVsbG8=\n".utf8)) == nil)
    }

    @Test func blake2b512KnownAnswer() throws {
        let d = try #require(BLAKE2b512.hash(Array("abc".utf8)))
        #expect(SHA256Digest(Array(d[0..<32])).hex == "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1")
        #expect(SHA256Digest(Array(d[32..<64])).hex == "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923")
    }

    @Test func generatedKeysSignAndVerify() throws {
        let pair = try KeyPair.generate()
        #expect(pair.secretKey.seed.count == 32)
        #expect(try KeyPair.generate().publicKey != pair.publicKey)
        let data = Array("format_version = 1\n".utf8)
        let sig = try Minisign.sign(data, secretKey: pair.secretKey, trustedComment: "caisson test")
        #expect(sig.algorithm == .prehashed)
        let parsed = try MinisignSignature(parsing: Array(sig.fileContents.utf8))
        #expect(parsed == sig)
        try parsed.verify(data, with: pair.publicKey)
        #expect(Self.code { try parsed.verify(data + [0x0a], with: pair.publicKey) } == "signature.invalid")
        #expect(Self.code { _ = try Minisign.sign(data, secretKey: pair.secretKey, trustedComment: "two\nlines") } == "signature.malformed")
        // The public key file round-trips.
        #expect(try MinisignPublicKey(parsing: pair.publicKey.fileContents) == pair.publicKey)
    }

    @Test func deterministicSecretKeyFromSeed() throws {
        let id = try #require(MinisignKeyID([1, 2, 3, 4, 5, 6, 7, 8]))
        let sk = try MinisignSecretKey(keyID: id, seed: [UInt8](repeating: 7, count: 32))
        #expect(id.description == "807060504030201")
        let a = try Minisign.sign(Self.hello, secretKey: sk, trustedComment: "t")
        let b = try Minisign.sign(Self.hello, secretKey: sk, trustedComment: "t")
        #expect(a == b)  // Ed25519 is deterministic.
        #expect(Self.code { _ = try MinisignSecretKey(keyID: id, seed: [1, 2, 3]) } == "key.malformed")
    }

    @Test func secretKeyFileRoundTrips() throws {
        let pair = try KeyPair.generate()
        let text = pair.secretKey.fileContents()
        #expect(text.hasPrefix("untrusted comment: "))
        let back = try MinisignSecretKey(parsing: text)
        #expect(back == pair.secretKey)
        // Flip a byte inside the key material (base64 position 100): rejected.
        var chars = Array(text.utf8)
        let line = chars.firstIndex(of: 0x0a)! + 1
        chars[line + 100] = chars[line + 100] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(Self.code { _ = try MinisignSecretKey(parsing: String(decoding: chars, as: UTF8.self)) } == "key.malformed")
    }

    @Test func encryptedSecretKeysNeedAPasswordAndBoundedScrypt() {
        func key(ops: UInt64, mem: UInt64) -> String {
            func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
            let raw = Array("EdScB2".utf8) + [UInt8](repeating: 1, count: 32) + le64(ops) + le64(mem) + [UInt8](repeating: 0, count: 104)
            return "untrusted comment: minisign encrypted secret key\n" + Base64.encode(raw) + "\n"
        }
        #expect(Self.code { _ = try MinisignSecretKey(parsing: key(ops: 1 << 25, mem: 1 << 30)) } == "key.password_required")
        // A hostile key asking for 1 TiB of scrypt memory is refused before any allocation.
        #expect(Self.code { _ = try MinisignSecretKey(parsing: key(ops: 1 << 45, mem: 1 << 40), password: "pw") } == "key.unsupported")
        // Small limits: derivation runs, the wrong password shows as a public-half mismatch.
        #expect(Self.code { _ = try MinisignSecretKey(parsing: key(ops: 32768, mem: 1 << 20), password: "pw") } == "key.wrong_password")
        var raw = Array("EdXXB2".utf8) + [UInt8](repeating: 0, count: 152)
        raw[6] = 1
        let other = "untrusted comment: x\n" + Base64.encode(raw) + "\n"
        #expect(Self.code { _ = try MinisignSecretKey(parsing: other) } == "key.unsupported")
    }

    @Test func scryptParametersFollowLibsodium() {
        #expect(Scrypt.parameters(opsLimit: 33_554_432, memLimit: 1_073_741_824) == (20, 8, 1))  // minisign
        #expect(Scrypt.parameters(opsLimit: 524_288, memLimit: 16_777_216) == (14, 8, 1))        // interactive
        #expect(Scrypt.parameters(opsLimit: 1 << 20, memLimit: 1 << 30) == (15, 8, 1))           // ops-bound branch
    }
}
