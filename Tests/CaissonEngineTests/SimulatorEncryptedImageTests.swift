import CaissonCore
import CaissonSimulator
import Foundation
import Testing

/// Issue 15 on the simulator: like the daemon, it reads an encrypted archive to its end
/// (decrypting, every chunk authenticated, the plaintext digest checked) before an image exists;
/// a flipped bit or a truncation at a chunk boundary changes nothing.
@Suite struct SimulatorEncryptedImageTests {
    static func payload(dir: String) throws -> (ImagePayload, [UInt8], Int) {
        var img = SyntheticImage(reference: "example/app:9.0.0")
        var seed: UInt64 = 9
        img.files = [("blob", (0..<250_000).map { _ in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: seed >> 33)
        })]
        let (plain, imageID) = try img.archive()
        let id = try AgeX25519Identity.generate(randomness: .system)
        var bytes: [UInt8] = []
        let enc = try AgeEncryptor(recipients: [id.recipient], randomness: .system) { bytes += Array($0) }
        try enc.write(plain)
        try enc.finish()
        var p = ImagePayload(path: dir + "/image.tar.age", offset: 0, length: Int64(bytes.count), reference: img.reference,
                             expectedImageID: imageID, config: ImageConfig())
        p.sha256 = SHA256.hash(plain).hex
        p.encryption = ImageEncryption(fileKey: enc.fileKey, plaintextSize: Int64(plain.count))
        let chunks = (plain.count + 65535) / 65536
        return (p, bytes, bytes.count - plain.count - 16 * chunks)
    }

    @Test func onlyAnAuthenticArchiveBecomesAnImage() throws {
        let dir = NSTemporaryDirectory() + "caisson-sim-age-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (payload, bytes, start) = try Self.payload(dir: dir)
        let sealed = 65536 + 16
        var cases: [(String, [UInt8], Int64)] = []
        for (name, offset) in [("chunk 1 start", start + sealed), ("chunk 0 end", start + sealed - 1),
                               ("final tag", bytes.count - 1), ("payload nonce", start - 1)] {
            var b = bytes
            b[offset] ^= 0x40
            cases.append((name, b, Int64(b.count)))
        }
        cases.append(("cut after chunk 1", Array(bytes[..<(start + 2 * sealed)]), Int64(start + 2 * sealed)))
        cases.append(("a trailing byte", bytes + [7], Int64(bytes.count + 1)))
        cases.append(("the plaintext digest differs", bytes, Int64(bytes.count)))
        for (name, b, length) in cases {
            let h = SimulatedHost(seed: 1)
            #expect(FileManager.default.createFile(atPath: payload.path, contents: Data(b)))
            var p = payload
            p.length = length
            if name == "the plaintext digest differs" { p.sha256 = String(repeating: "a", count: 64) }
            let error = #expect(throws: HostError.self, "\(name)") { try h.loadImage(p) { _ in } }
            #expect(error?.message.contains("nothing was loaded") == true, "\(name): \(String(describing: error))")
            #expect(try h.inspectImage(payload.reference) == nil, "\(name): the simulated host has the image")
        }
        let h = SimulatedHost(seed: 1)
        #expect(FileManager.default.createFile(atPath: payload.path, contents: Data(bytes)))
        #expect(try h.loadImage(payload) { _ in }.id == payload.expectedImageID)
        #expect(try h.inspectImage(payload.reference) != nil)
    }
}
