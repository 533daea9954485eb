import CaissonCore
import Foundation
import Testing
@testable import CaissonDocker

/// Issue 15 on a real daemon: an encrypted archive (`image.tar.age`) is decrypted as it is
/// uploaded, only authenticated chunks go out, and the upload ends only after the final chunk
/// authenticated and the plaintext hashed to what validation saw. A flipped bit at a chunk
/// boundary, or a truncation there, never leaves an image in Docker.
@Suite("Encrypted image upload on a real daemon", .serialized, .enabled(if: RealDocker.availableWithBusybox))
struct EncryptedUploadTests {
    let client = RealDocker.client!
    var host: DockerHost { DockerHost(client: client) }

    /// Saves a fresh image, encrypts the archive into a file, removes the image; the payload.
    func encryptedArchive(_ tag: String) throws -> (payload: ImagePayload, file: TemporaryFile, bytes: [UInt8], payloadStart: Int) {
        let image = try RealDocker.makeImage(tag, ["LABEL purpose=\(tag)", #"CMD ["/bin/busybox", "true"]"#])
        var plain: [UInt8] = []
        try client.saveImages([image.reference]) { plain += Array($0) }
        _ = try client.removeImage(image.reference, force: true)
        #expect(try host.inspectImage(image.reference) == nil)
        let id = try AgeX25519Identity.generate(randomness: .system)
        var bytes: [UInt8] = []
        let enc = try AgeEncryptor(recipients: [id.recipient], randomness: .system) { bytes += Array($0) }
        try enc.write(plain)
        try enc.finish()
        #expect(plain.count > 3 * 65536, "the test wants several chunks")
        let file = TemporaryFile("\(tag).tar.age")
        #expect(FileManager.default.createFile(atPath: file.path, contents: Data(bytes)))
        var payload = ImagePayload(path: file.path, offset: 0, length: Int64(bytes.count), reference: image.reference,
                                   expectedImageID: image.id, config: ImageConfig())
        payload.sha256 = SHA256.hash(plain).hex
        payload.encryption = ImageEncryption(fileKey: enc.fileKey, plaintextSize: Int64(plain.count))
        let chunks = (plain.count + 65535) / 65536
        return (payload, file, bytes, bytes.count - plain.count - 16 * chunks)
    }

    @Test func anAuthenticEncryptedArchiveLoads() throws {
        let (payload, file, _, _) = try encryptedArchive("age-ok")
        _ = file
        defer { _ = try? client.removeImage(payload.reference, force: true) }
        let loaded = try host.loadImage(payload) { _ in }
        #expect(loaded.id == payload.expectedImageID)
    }

    @Test func tamperingOrTruncationAtChunkBoundariesLeavesNoImage() throws {
        let (payload, file, bytes, start) = try encryptedArchive("age-bad")
        defer { _ = try? client.removeImage(payload.reference, force: true) }
        let sealed = 65536 + 16
        var cases: [(String, [UInt8], Int64)] = []
        for (name, offset) in [("first byte of chunk 1", start + sealed), ("last byte of chunk 0", start + sealed - 1),
                               ("first byte of chunk 3", start + 3 * sealed), ("final tag", bytes.count - 1),
                               ("header MAC", start - 20)] {
            var b = bytes
            b[offset] ^= 0x01
            cases.append((name, b, Int64(b.count)))
        }
        cases.append(("cut after chunk 2", Array(bytes[..<(start + 2 * sealed)]), Int64(start + 2 * sealed)))
        cases.append(("cut inside the final chunk", Array(bytes.dropLast(1)), Int64(bytes.count - 1)))
        cases.append(("a trailing byte", bytes + [0], Int64(bytes.count + 1)))
        for (name, b, length) in cases {
            #expect(FileManager.default.createFile(atPath: file.path, contents: Data(b)))
            var p = payload
            p.length = length
            let error = #expect(throws: HostError.self, "\(name)") { try host.loadImage(p) { _ in } }
            #expect(error?.message.contains("nothing was loaded") == true, "\(name): \(String(describing: error))")
            #expect(try host.inspectImage(payload.reference) == nil, "\(name): the image reached Docker")
        }
    }

    /// One decryption (the overlapped load): the upload sends validation's plaintext from a
    /// `PlaintextFeed`. The image appears only when the feed completed (the final chunk
    /// authenticated) and the gate opened; a feed that fails after some chunks, or a veto at the
    /// end, leaves nothing in Docker.
    @Test func aFedUploadLoadsOnlyWhenTheFeedCompletedAndTheGateOpened() throws {
        let (payload, file, bytes, _) = try encryptedArchive("age-fed")
        _ = file
        defer { _ = try? client.removeImage(payload.reference, force: true) }
        let plain = try {
            let source = try AgeDecryptingSource(MemoryByteSource(bytes), fileKey: payload.encryption!.fileKey)
            var out: [UInt8] = []
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 16)
            defer { buffer.deallocate() }
            while true {
                let n = try source.read(into: buffer)
                if n == 0 { break }
                out += buffer[0..<n]
            }
            return out
        }()
        enum End { case complete, failAfter(Int), vetoAtEnd }
        func load(_ end: End) -> Result<ImageInfo, HostError> {
            let feed = PlaintextFeed(capacity: 100_000)
            let gate = UploadGate()
            var p = payload
            p.gate = gate
            p.plaintextFeed = feed
            let producer = Thread {
                var at = 0
                let stop: Int
                if case .failAfter(let k) = end { stop = k } else { stop = plain.count }
                while at < stop {
                    let n = min(65_536, stop - at)
                    plain[at..<(at + n)].withUnsafeBytes { feed.write($0) }
                    at += n
                }
                switch end {
                case .complete:
                    feed.close(complete: true)
                    gate.release()
                case .failAfter:
                    feed.close(complete: false, reason: "chunk 2 does not authenticate")
                    gate.veto("validation rejected the package")
                case .vetoAtEnd:
                    feed.close(complete: true)
                    gate.veto("validation rejected the package")
                }
            }
            producer.start()
            defer { feed.readerFinished() }
            do { return .success(try host.loadImage(p) { _ in }) } catch { return .failure(error) }
        }
        for (name, end) in [("failed after two chunks", End.failAfter(2 * 65_536)), ("vetoed at the end", .vetoAtEnd)] {
            guard case .failure(let error) = load(end) else {
                Issue.record("\(name): the upload succeeded")
                continue
            }
            #expect(error.message.contains("nothing was loaded"), "\(name): \(error)")
            #expect(try host.inspectImage(payload.reference) == nil, "\(name): the image reached Docker")
        }
        let loaded = try load(.complete).get()
        #expect(loaded.id == payload.expectedImageID)
    }
}
