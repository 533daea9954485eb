import CaissonCore
import Foundation
import Testing
@testable import CaissonDocker

/// The image upload is verified before it ends: a package modified or replaced after validation,
/// or bytes that do not hash to what validation saw, never reach a tag on a real daemon.
@Suite("Verified image upload on a real daemon", .serialized, .enabled(if: RealDocker.availableWithBusybox))
struct VerifiedUploadTests {
    let client = RealDocker.client!
    var host: DockerHost { DockerHost(client: client) }

    /// Saves a fresh image into a file (at offset 0), removes the image, and returns the payload.
    func savedArchive(_ tag: String) throws -> (payload: ImagePayload, file: TemporaryFile, sha256: String) {
        let image = try RealDocker.makeImage(tag, ["LABEL purpose=\(tag)", #"CMD ["/bin/busybox", "true"]"#])
        let file = TemporaryFile("\(tag).tar")
        #expect(FileManager.default.createFile(atPath: file.path, contents: Data()))
        let handle = try #require(FileHandle(forWritingAtPath: file.path))
        var length: Int64 = 0
        var sha = SHA256()
        try client.saveImages([image.reference]) { chunk in
            handle.write(Data(chunk))
            sha.update(Array(chunk))
            length += Int64(chunk.count)
        }
        try handle.close()
        _ = try client.removeImage(image.reference, force: true)
        #expect(try host.inspectImage(image.reference) == nil)
        try backdate(file.path)
        var payload = ImagePayload(path: file.path, offset: 0, length: length, reference: image.reference,
                                   expectedImageID: image.id, config: ImageConfig())
        payload.identity = FileIdentity(path: file.path)
        return (payload, file, sha.hex)
    }

    @Test func aMatchingDigestAndIdentityLoad() throws {
        var (payload, file, digest) = try savedArchive("veto-ok")
        _ = file
        defer { _ = try? client.removeImage(payload.reference, force: true) }
        payload.sha256 = digest
        let loaded = try host.loadImage(payload) { _ in }
        #expect(loaded.id == payload.expectedImageID)
    }

    @Test func aDigestMismatchIsVetoedAndNothingIsTagged() throws {
        var (payload, file, _) = try savedArchive("veto-sha")
        _ = file
        defer { _ = try? client.removeImage(payload.reference, force: true) }
        payload.sha256 = String(repeating: "0", count: 64)
        let error = #expect(throws: HostError.self) { try host.loadImage(payload) { _ in } }
        #expect(error?.kind == .failed)
        #expect(error?.message.contains("not \(payload.sha256!) as validated") == true, "\(String(describing: error))")
        #expect(try host.inspectImage(payload.reference) == nil, "the vetoed upload must not tag anything")
    }

    @Test func aFileModifiedAfterValidationIsVetoed() throws {
        var (payload, file, digest) = try savedArchive("veto-mod")
        defer { _ = try? client.removeImage(payload.reference, force: true) }
        // The identity was taken at "validation"; then someone writes to the file (same bytes even:
        // the write alone changes mtime and ctime).
        let handle = try #require(FileHandle(forUpdatingAtPath: file.path))
        let first = try #require(try handle.read(upToCount: 1))
        try handle.seek(toOffset: 0)
        handle.write(first)
        try handle.close()
        let error = #expect(throws: HostError.self) { try host.loadImage(payload) { _ in } }
        #expect(error?.message.contains("changed after it was validated") == true, "\(String(describing: error))")
        #expect(try host.inspectImage(payload.reference) == nil)
        // Without the identity (and with the right digest) the same bytes load fine.
        payload.identity = nil
        payload.sha256 = digest
        #expect(try host.loadImage(payload) { _ in }.id == payload.expectedImageID)
    }
}

/// The gate: an upload started before validation ends is held at its end; veto drops it (nothing
/// tagged), release lets the daemon load it.
@Suite("Gated image upload on a real daemon", .serialized, .enabled(if: RealDocker.availableWithBusybox))
struct GatedUploadTests {
    let client = RealDocker.client!

    /// Runs `loadImage` on a thread; returns a function that waits for its result.
    func startLoad(_ payload: ImagePayload) -> () -> Result<ImageInfo, HostError> {
        let host = DockerHost(client: client)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<ImageInfo, HostError>?
        nonisolated(unsafe) let host_ = host
        Thread {
            do throws(HostError) { result = .success(try host_.loadImage(payload) { _ in }) } catch { result = .failure(error) }
            done.signal()
        }.start()
        return { done.wait(); return result! }
    }

    @Test func heldAtTheEndUntilReleased() throws {
        let t = VerifiedUploadTests()
        var (payload, file, _) = try t.savedArchive("gate-ok")
        _ = file
        defer { _ = try? client.removeImage(payload.reference, force: true) }
        let gate = UploadGate()
        payload.gate = gate
        let wait = startLoad(payload)
        // Held: however long we wait, the daemon has not tagged anything yet.
        Thread.sleep(forTimeInterval: 1)
        #expect(try DockerHost(client: client).inspectImage(payload.reference) == nil)
        gate.release()
        let loaded = try wait().get()
        #expect(loaded.id == payload.expectedImageID)
    }

    @Test func aVetoDropsTheUploadAndNothingIsTagged() throws {
        let t = VerifiedUploadTests()
        var (payload, file, _) = try t.savedArchive("gate-veto")
        _ = file
        defer { _ = try? client.removeImage(payload.reference, force: true) }
        let gate = UploadGate()
        payload.gate = gate
        let wait = startLoad(payload)
        Thread.sleep(forTimeInterval: 0.5)
        gate.veto("validation rejected the package")
        let result = wait()
        guard case .failure(let error) = result else {
            Issue.record("a vetoed upload loaded: \(result)")
            return
        }
        #expect(error.kind == .failed)
        #expect(error.message.contains("validation rejected the package"), "\(error)")
        #expect(try DockerHost(client: client).inspectImage(payload.reference) == nil)
    }
}

/// Sets a file's mtime a day back, so a write in the same clock tick as its creation (the kernel's
/// file timestamps are coarse) still shows as a change.
func backdate(_ path: String) throws {
    try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -86_400)], ofItemAtPath: path)
}

/// The veto point without a daemon: the reader refuses at its end, after streaming every byte.
@Suite struct VerifiedArchiveReaderTests {
    func drain(_ reader: VerifiedArchiveReader) throws -> Int {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        var total = 0
        while true {
            let n = try reader.read(into: buffer)
            if n == 0 { return total }
            total += n
        }
    }

    func payload(_ name: String, _ bytes: [UInt8], offset: Int64 = 0, length: Int64? = nil) throws -> (ImagePayload, TemporaryFile) {
        let file = TemporaryFile(name)
        #expect(FileManager.default.createFile(atPath: file.path, contents: Data(bytes)))
        var p = ImagePayload(path: file.path, offset: offset, length: length ?? Int64(bytes.count), reference: "x:1",
                             expectedImageID: "sha256:0", config: ImageConfig())
        try backdate(file.path)
        p.identity = FileIdentity(path: file.path)
        return (p, file)
    }

    @Test func streamsTheRangeAndChecksAtTheEnd() throws {
        let bytes = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var (p, file) = try payload("range-a.bin", bytes, offset: 100, length: 9000)
        _ = file
        p.sha256 = SHA256.hash(Array(bytes[100..<9100])).hex
        #expect(try drain(VerifiedArchiveReader(p)) == 9000)
        p.sha256 = SHA256.hash(Array(bytes[0..<9000])).hex
        let reader = try VerifiedArchiveReader(p)
        #expect(throws: DockerError.self) { try drain(reader) }
    }

    @Test func aReplacedFileIsRefusedAtOpen() throws {
        let (p, file) = try payload("range-b.bin", Array(repeating: 1, count: 100))
        try FileManager.default.removeItem(atPath: file.path)
        #expect(FileManager.default.createFile(atPath: file.path, contents: Data(repeating: 1, count: 100)))
        #expect(throws: DockerError.self) { try VerifiedArchiveReader(p) }
    }

    @Test func aFileWrittenDuringTheUploadIsRefusedAtTheEnd() throws {
        let (p, file) = try payload("range-c.bin", Array(repeating: 2, count: 20_000))
        let reader = try VerifiedArchiveReader(p)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { buffer.deallocate() }
        #expect(try reader.read(into: buffer) == 4096)
        let handle = try #require(FileHandle(forUpdatingAtPath: file.path))
        try handle.seek(toOffset: 10_000)
        handle.write(Data([2]))
        try handle.close()
        let error = #expect(throws: DockerError.self) { try drain(reader) }
        #expect(error?.description.contains("changed after it was validated") == true)
    }
}
