import CaissonCore
import CaissonSimulator
import Foundation
import Testing

/// Issue 11 on the simulator: a gzip-compressed archive is sent as it is, but the daemon unpacks
/// it, so the disk must hold what it inflates to (and the new image then keeps that much), not
/// the compressed size.
@Suite struct SimulatorCompressedImageTests {
    static func payload(length: Int64, unpacked: Int64?) -> ImagePayload {
        var p = ImagePayload(path: "/nonexistent/p.edgepkg", offset: 512, length: length, reference: "example/app:3.0.0",
                             expectedImageID: "sha256:" + String(repeating: "c", count: 64), config: ImageConfig())
        p.compression = unpacked == nil ? .none : .gzip
        p.unpackedLength = unpacked
        return p
    }

    @Test func theDiskMustHoldTheUnpackedArchive() throws {
        let h = SimulatedHost(seed: 1)
        h.freeDiskBytes = 10_000
        // Fits compressed, not unpacked: refused as the daemon would run out of space; nothing loaded.
        let error = #expect(throws: HostError.self) { try h.loadImage(Self.payload(length: 1_000, unpacked: 50_000)) { _ in } }
        #expect(error?.kind == .diskFull)
        #expect(try h.inspectImage("example/app:3.0.0") == nil)
        #expect(h.freeDiskBytes == 10_000)
        // Room for what it unpacks to: loaded, and the image keeps the unpacked bytes.
        var sent: [Int64] = []
        _ = try h.loadImage(Self.payload(length: 1_000, unpacked: 8_000)) { sent.append($0) }
        #expect(h.freeDiskBytes == 2_000)
        #expect(sent.last == 1_000, "progress counts the bytes sent")
        #expect(h.imageStorage(forArchiveBytes: Self.payload(length: 1_000, unpacked: 8_000).unpackedBytes)?.neededBytes == 8_000)
    }

    @Test func anUncompressedPayloadIsUnchanged() throws {
        let h = SimulatedHost(seed: 1)
        h.freeDiskBytes = 10_000
        _ = try h.loadImage(Self.payload(length: 4_000, unpacked: nil)) { _ in }
        #expect(h.freeDiskBytes == 6_000)
    }
}
