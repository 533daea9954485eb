@testable import CaissonCore
import Foundation
import Testing

/// Deterministic "randomness" for tests: SplitMix64 from a seed.
func testRandomness(seed: UInt64) -> AgeRandomness {
    final class State: @unchecked Sendable { var s: UInt64; init(_ s: UInt64) { self.s = s } }
    let state = State(seed)
    let lock = NSLock()
    return AgeRandomness { count in
        lock.withLock {
            var out: [UInt8] = []
            while out.count < count {
                state.s &+= 0x9E3779B97F4A7C15
                var z = state.s
                z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
                z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
                z ^= z >> 31
                withUnsafeBytes(of: z) { out += $0 }
            }
            return Array(out.prefix(count))
        }
    }
}

/// The age format (issue 15): round trips, tampering, limits, and interop with Debian's `age`.
@Suite struct AgeTests {
    static let chunk = 64 * 1024
    static let sizes = [0, 1, chunk - 1, chunk, chunk + 1, 2 * chunk, 200_000]

    static func bytes(_ n: Int, seed: UInt64) -> [UInt8] { testRandomness(seed: seed).fill(n)! }

    @Test(arguments: sizes) func roundTripToSeveralRecipients(size: Int) throws {
        let rnd = testRandomness(seed: UInt64(size) + 1)
        let a = try AgeX25519Identity.generate(randomness: rnd), b = try AgeX25519Identity.generate(randomness: rnd)
        let plain = Self.bytes(size, seed: 7)
        let file = try Age.encrypt(plain, to: [a.recipient, b.recipient], randomness: rnd)
        // Header, nonce, then one sealed chunk per 64 KiB (at least one).
        let chunks = max(1, (size + Self.chunk - 1) / Self.chunk)
        let header = try AgeDecryptingSource(MemoryByteSource(file), identities: [a]).header
        #expect(header.stanzas.map(\.type) == ["X25519", "X25519"])
        #expect(file.count == AgeHeader.encode(stanzas: header.stanzas, fileKey: [UInt8](repeating: 0, count: 16)).count + 16 + size + 16 * chunks)
        #expect(try Age.decrypt(file, identities: [b]) == plain)
        let stranger = try AgeX25519Identity.generate(randomness: rnd)
        #expect(throws: AgeError(.noIdentity, "the file is encrypted to 2 X25519 recipient(s), none of them a configured identity")) {
            try Age.decrypt(file, identities: [stranger])
        }
    }

    @Test func keysRoundTripThroughTheirText() throws {
        let id = try AgeX25519Identity.generate(randomness: testRandomness(seed: 3))
        #expect(id.text.hasPrefix("AGE-SECRET-KEY-1") && id.text == id.text.uppercased())
        #expect(id.recipient.text.hasPrefix("age1") && id.recipient.text.count == 62)
        #expect(try AgeX25519Identity(parsing: id.text).recipient == id.recipient)
        #expect(try AgeX25519Recipient(parsing: id.recipient.text) == id.recipient)
        let file = try AgeIdentityFile.parse(id.fileContents(created: "2026-01-01T00:00:00Z"))
        #expect(file.map(\.recipient) == [id.recipient])
        // One changed character breaks the checksum.
        var broken = Array(id.recipient.text)
        broken[10] = broken[10] == "q" ? "p" : "q"
        #expect(throws: AgeError.self) { try AgeX25519Recipient(parsing: String(broken)) }
        #expect(throws: AgeError.self) { try AgeX25519Recipient(parsing: id.recipient.text.uppercased()) }
        #expect(throws: AgeError.self) { try AgeIdentityFile.parse("# nothing here\n") }
    }

    /// Any single flipped bit, and any truncation, at every chunk boundary (and inside the header)
    /// is refused; nothing after a bad chunk is handed out.
    @Test func tamperingAndTruncationAtEveryChunkBoundaryAreRefused() throws {
        let rnd = testRandomness(seed: 11)
        let id = try AgeX25519Identity.generate(randomness: rnd)
        let plain = Self.bytes(3 * Self.chunk + 100, seed: 5)
        let file = try Age.encrypt(plain, to: [id.recipient], randomness: rnd)
        let payloadStart = file.count - (plain.count + 4 * 16)
        var offsets: [Int] = [0, 5, 30, payloadStart - 20, payloadStart - 1, payloadStart, payloadStart + 15]
        for k in 0...4 {
            let boundary = payloadStart + 16 + k * (Self.chunk + 16)
            offsets += [boundary - 1, boundary, boundary + 1].filter { $0 < file.count }
        }
        offsets.append(file.count - 1)
        for off in offsets {
            var flipped = file
            flipped[off] ^= 0x01
            do {
                let out = try Age.decrypt(flipped, identities: [id])
                Issue.record("a flipped bit at \(off) decrypted to \(out.count) bytes")
            } catch {
                #expect([.payloadInvalid, .headerInvalid, .headerMACInvalid, .noIdentity].contains(error.kind), "offset \(off): \(error)")
                if off >= payloadStart + 16 { #expect(error.kind == .payloadInvalid) }
            }
        }
        for cut in offsets where cut > 0 {
            do {
                _ = try Age.decrypt(Array(file[..<cut]), identities: [id])
                Issue.record("a file cut at \(cut) decrypted")
            } catch {
                if cut >= payloadStart + 16 { #expect(error.kind == .payloadInvalid, "cut at \(cut): \(error)") }
            }
        }
        // Trailing bytes after the final chunk.
        #expect(throws: AgeError.self) { try Age.decrypt(file + [0], identities: [id]) }
    }

    /// The work factor is checked before scrypt runs: 2^30 would need 128 GiB.
    @Test func scryptWorkFactorIsCappedBeforeTheKDF() throws {
        let rnd = testRandomness(seed: 13)
        let stanza = AgeStanza(type: "scrypt", arguments: [UnpaddedBase64.encode(rnd.fill(16)!), "30"], body: rnd.fill(32)!)
        let file = AgeHeader.encode(stanzas: [stanza], fileKey: rnd.fill(16)!) + rnd.fill(16 + 32)!
        do {
            _ = try Age.decrypt(file, identities: [AgeScryptIdentity(passphrase: "x")])
            Issue.record("decrypted")
        } catch {
            #expect(error.kind == .workFactorTooHigh && error.code == "encryption.work_factor_too_high", "\(error)")
        }
        // A configured lower cap refuses what the default allows.
        let low = try Age.encrypt([1, 2, 3], to: [AgeScryptRecipient(passphrase: "pw", workFactor: 12)], randomness: rnd)
        #expect(try Age.decrypt(low, identities: [AgeScryptIdentity(passphrase: "pw")]) == [1, 2, 3])
        #expect(throws: AgeError.self) { try Age.decrypt(low, identities: [AgeScryptIdentity(passphrase: "pw", maxWorkFactor: 11)]) }
        #expect(throws: AgeError(.noIdentity, "the file is passphrase-protected, and the passphrase given does not open it")) {
            try Age.decrypt(low, identities: [AgeScryptIdentity(passphrase: "wrong")])
        }
    }

    @Test func aPassphraseCannotBeMixedWithOtherRecipients() throws {
        let rnd = testRandomness(seed: 17)
        let id = try AgeX25519Identity.generate(randomness: rnd)
        #expect(throws: AgeError.self) {
            try Age.encrypt([1], to: [id.recipient, AgeScryptRecipient(passphrase: "p", workFactor: 10)], randomness: rnd)
        }
    }

    /// The streaming source hashes the ciphertext it reads (header included) on the side.
    @Test func ciphertextDigestCoversTheWholeFile() throws {
        let rnd = testRandomness(seed: 19)
        let id = try AgeX25519Identity.generate(randomness: rnd)
        let file = try Age.encrypt(Self.bytes(300_000, seed: 2), to: [id.recipient], randomness: rnd)
        let source = try AgeDecryptingSource(MemoryByteSource(file, maxReadSize: 10_000), identities: [id], ciphertextHasher: true)
        var buffer = [UInt8](repeating: 0, count: 100_000)
        while try buffer.withUnsafeMutableBytes({ try source.read(into: $0) }) > 0 {}
        #expect(source.isComplete && source.plaintextCount == 300_000 && source.ciphertextCount == Int64(file.count))
        #expect(source.finishCiphertextDigest() == SHA256.hash(file))
    }

    // MARK: - Interop with Debian's age 1.1.1

    static let ageAvailable = FileManager.default.isExecutableFile(atPath: "/usr/bin/age")

    static func tempDir() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("caisson-age-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @discardableResult
    static func run(_ args: [String], input: Data? = nil) throws -> (Int32, Data, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, o, String(decoding: e, as: UTF8.self))
    }

    /// Runs `age` on a pseudo-terminal, answering its passphrase prompts (age reads them from the tty only).
    static func runOnTTY(_ args: [String], passphrase: String) throws -> (Int32, String) {
        let script = """
        import os, pty, re, sys
        pw = sys.argv[1].encode() + b"\\n"
        pid, fd = pty.fork()
        if pid == 0:
            os.execvp(sys.argv[2], sys.argv[2:])
        out, answered = b"", 0
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
            while len(re.findall(rb"passphrase[^\\n]*: ", out)) > answered:
                os.write(fd, pw)
                answered += 1
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(out.decode(errors="replace"))
        sys.exit(os.waitstatus_to_exitcode(status))
        """
        let (rc, out, err) = try run(["python3", "-c", script, passphrase] + args)
        return (rc, String(decoding: out, as: UTF8.self) + err)
    }

    @Test(.enabled(if: ageAvailable, "needs Debian's age (scripts/test.sh installs it)"))
    func x25519InteropWithAgeBothWays() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plain = Self.bytes(3 * Self.chunk, seed: 23)  // a full final chunk, the edge case
        try Data(plain).write(to: dir.appendingPathComponent("plain"))
        // Their key, their encryption → our decryption.
        let keyPath = dir.appendingPathComponent("their.key").path
        try #require(try Self.run(["age-keygen", "-o", keyPath]).0 == 0)
        let theirs = try AgeIdentityFile.parse(String(contentsOfFile: keyPath, encoding: .utf8))
        let (rcY, pubOut, _) = try Self.run(["age-keygen", "-y", keyPath])
        #expect(rcY == 0 && String(decoding: pubOut, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == theirs[0].recipient.text)
        let enc = dir.appendingPathComponent("by-age.age").path
        let (rcE, _, errE) = try Self.run(["age", "-r", theirs[0].recipient.text, "-o", enc, dir.appendingPathComponent("plain").path])
        try #require(rcE == 0, "age -r failed: \(errE)")
        #expect(try Age.decrypt(Array(try Data(contentsOf: URL(fileURLWithPath: enc))), identities: theirs) == plain)
        // Our key, our encryption → their decryption.
        let mine = try AgeX25519Identity.generate(randomness: .system)
        let myKey = dir.appendingPathComponent("mine.key").path
        try mine.fileContents(created: nil).write(toFile: myKey, atomically: true, encoding: .utf8)
        let ours = dir.appendingPathComponent("by-caisson.age").path
        try Data(try Age.encrypt(plain, to: [mine.recipient, theirs[0].recipient], randomness: .system)).write(to: URL(fileURLWithPath: ours))
        for key in [myKey, keyPath] {
            let (rcD, out, errD) = try Self.run(["age", "-d", "-i", key, ours])
            #expect(rcD == 0 && Array(out) == plain, "age -d -i \(key): \(errD)")
        }
        // age refuses what we refuse: a flipped payload bit.
        var bad = Array(try Data(contentsOf: URL(fileURLWithPath: ours)))
        bad[bad.count - 100] ^= 1
        try Data(bad).write(to: URL(fileURLWithPath: ours))
        #expect(try Self.run(["age", "-d", "-i", myKey, ours]).0 != 0)
    }

    @Test(.enabled(if: ageAvailable, "needs Debian's age (scripts/test.sh installs it)"))
    func passphraseInteropWithAgeAtWorkFactor18() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plain = Self.bytes(100_000, seed: 29)
        let plainPath = dir.appendingPathComponent("plain").path
        try Data(plain).write(to: URL(fileURLWithPath: plainPath))
        // age -p (work factor 18, 256 MiB) → ours, with libcrypto's memory limit raised for it.
        let theirs = dir.appendingPathComponent("p.age").path
        let (rc, log) = try Self.runOnTTY(["age", "-p", "-o", theirs, plainPath], passphrase: "correct horse battery staple")
        try #require(rc == 0, "age -p failed: \(log)")
        let file = Array(try Data(contentsOf: URL(fileURLWithPath: theirs)))
        let source = try AgeDecryptingSource(MemoryByteSource(file), identities: [AgeScryptIdentity(passphrase: "correct horse battery staple")])
        #expect(source.header.stanzas.first?.arguments.last == "18")
        #expect(try Age.decrypt(file, identities: [AgeScryptIdentity(passphrase: "correct horse battery staple")]) == plain)
        #expect(throws: AgeError.self) { try Age.decrypt(file, identities: [AgeScryptIdentity(passphrase: "correct horse battery staple", maxWorkFactor: 17)]) }
        // Ours at work factor 18 → age -d.
        let ours = dir.appendingPathComponent("ours.age").path
        try Data(try Age.encrypt(plain, to: [AgeScryptRecipient(passphrase: "p4ss phrase", workFactor: 18)], randomness: .system))
            .write(to: URL(fileURLWithPath: ours))
        let out = dir.appendingPathComponent("out").path
        let (rcD, logD) = try Self.runOnTTY(["age", "-d", "-o", out, ours], passphrase: "p4ss phrase")
        #expect(rcD == 0, "age -d failed: \(logD)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: out))) == plain)
    }
}
