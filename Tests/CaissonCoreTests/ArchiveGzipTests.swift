import CaissonCore
import Foundation
import Testing

/// A gzip-compressed image.tar (issue 11 item 3): read like a plain one, refused clearly when the
/// gzip stream is hostile.
@Suite("Gzip-compressed image.tar")
struct ArchiveGzipTests {
    static func gz(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
        (try? Gzip.compress(bytes, level: level)) ?? []
    }

    // MARK: - The codec

    @Test(arguments: [0, 1, 511, 70_000, 1 << 20])
    func roundTrip(size: Int) throws {
        let data = DockerSaveWriter.randomBytes(size, seed: UInt64(size) + 1)
        let packed = try Gzip.compress(data)
        #expect(packed.count > 10 && packed[0] == 0x1F && packed[1] == 0x8B)
        #expect(try Gzip.decompress(packed) == data)
    }

    @Test func compressionIsDeterministicAndReadableByGzip() throws {
        let data = Array(String(repeating: "caisson ", count: 10_000).utf8)
        let a = try Gzip.compress(data)
        #expect(a == (try Gzip.compress(data)))
        #expect(a.count < data.count / 20)
        // No name, no time: as `gzip -n` writes it.
        #expect(Array(a[3..<8]) == [0, 0, 0, 0, 0])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("caisson-gz-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(a).write(to: URL(fileURLWithPath: dir + "/x.gz"))
        let gzip = try #require(["/usr/bin/gzip", "/bin/gzip"].first { FileManager.default.isExecutableFile(atPath: $0) })
        let p = Process()
        p.executableURL = URL(fileURLWithPath: gzip)
        p.arguments = ["-d", dir + "/x.gz"]
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(FileManager.default.contents(atPath: dir + "/x") == Data(data))
    }

    @Test func plainBytesPassThroughUnchanged() throws {
        let data = DockerSaveWriter.randomBytes(3000, seed: 9)
        #expect(try Gzip.decompress(data) == data)
        #expect(try Gzip.decompress([]) == [])
        #expect(try Gzip.decompress([0x1F]) == [0x1F])
    }

    /// The refusals, each with its code, whatever the read sizes.
    @Test(arguments: [1, 7, 4096, Int.max])
    func hostileStreams(readSize: Int) throws {
        let data = DockerSaveWriter.randomBytes(200_000, seed: 3)
        let packed = Self.gz(data)
        func code(_ bytes: [UInt8], limits: GzipLimits = GzipLimits()) -> String? {
            let source = ImageArchiveSource(MemoryByteSource(bytes, maxReadSize: readSize), limits: limits)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 10_000, alignment: 16)
            defer { buffer.deallocate() }
            do {
                while try source.read(into: buffer) > 0 {}
                return nil
            } catch let error as GzipError {
                #expect(source.failure == error)
                return error.code
            } catch {
                return "other: \(error)"
            }
        }
        #expect(code(packed) == nil)
        #expect(code(Array(packed.prefix(packed.count / 2))) == "image.gzip_truncated")
        #expect(code(Array(packed.dropLast(1))) == "image.gzip_truncated")  // cut inside the trailer
        #expect(code(Array(packed.prefix(12))) == "image.gzip_truncated")
        #expect(code(packed + Array("junk".utf8)) == "image.gzip_trailing_data")
        #expect(code(packed + [0]) == "image.gzip_trailing_data")
        #expect(code(packed + Self.gz(Array("second".utf8))) == "image.gzip_multiple_members")
        var badCRC = packed
        badCRC[badCRC.count - 6] ^= 0x01
        #expect(code(badCRC) == "image.gzip_corrupt")
        var badData = packed
        for i in 20..<60 { badData[i] = 0xFF }
        #expect(code(badData) == "image.gzip_corrupt")
        #expect(code([0x1F, 0x8B, 0x09, 0] + [UInt8](repeating: 0, count: 20)) == "image.gzip_corrupt")  // method 9
        // A bomb: 64 MiB of zeros in ~64 KiB, refused under a 10:1 bound long before its end.
        let zeros = try Gzip.compress([UInt8](repeating: 0, count: 64 << 20), level: 9)
        #expect(code(zeros, limits: GzipLimits(maxRatio: 10, allowanceBytes: 1 << 20)) == "image.gzip_ratio_exceeded")
        #expect(code(zeros) == nil)  // within the default bound (64 MiB allowance)
        // Other compressions docker load reads, which Caisson does not.
        #expect(code(Array("BZh91AY&SY".utf8) + [UInt8](repeating: 1, count: 100)) == "image.unsupported_compression")
        #expect(code([0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00, 1, 2]) == "image.unsupported_compression")
        #expect(code([0x28, 0xB5, 0x2F, 0xFD, 1, 2, 3]) == "image.unsupported_compression")
    }

    // MARK: - In a package

    /// Everything a plain image.tar gets, the compressed one gets too: the same facts, and the
    /// digest and size of image.tar as stored.
    @Test(arguments: [DockerSaveWriter.Layout.legacy, .oci])
    func aCompressedImageIsReadLikeAPlainOne(layout: DockerSaveWriter.Layout) throws {
        let plain = ArchiveFixtures.image(layout)
        let packed = Self.gz(plain)
        for readSize in [1, 333, Int.max] {
            let a = ArchiveFixtures.scan(ArchiveFixtures.package(image: plain), maxReadSize: readSize, wantDigest: true)
            let b = ArchiveFixtures.scan(ArchiveFixtures.package(image: packed), maxReadSize: readSize, wantDigest: true)
            #expect(a.issues == [] && b.issues == [])
            #expect(b.image != nil)
            #expect(b.image == a.image)
            #expect(a.imageTar?.compression == ImageCompression.none)
            #expect(b.imageTar?.compression == .gzip)
            #expect(b.imageTar?.size == Int64(packed.count))
            #expect(b.imageTar?.unpackedSize == Int64(plain.count))
            #expect(a.imageTar?.unpackedSize == Int64(plain.count))
            #expect(b.imageTar?.sha256 == SHA256.hash(packed).hex)
        }
    }

    /// Image checks see through the compression: the same codes as the plain archive.
    @Test func everyImageCheckAppliesThroughTheCompression() {
        var mismatch = DockerSaveWriter(layout: .oci, layers: [ArchiveFixtures.layerA])
        mismatch.extraFiles = [("blobs/sha256/" + String(repeating: "b", count: 64), Array("not that".utf8))]
        var traversal = TarWriter()
        traversal.addFile("../../etc/cron.d/x", "evil")
        var device = TarWriter()
        device.addEntry("console", type: UInt8(ascii: "3"), data: [])
        let inner = ArchiveFixtures.image()
        let cases: [(String, [UInt8])] = [
            ("digest mismatch", mismatch.build()),
            ("not a tar", DockerSaveWriter.randomBytes(5000, seed: 24)),
            ("traversal", Array(inner.dropLast(1024)) + traversal.bytes + [UInt8](repeating: 0, count: 1024)),
            ("device", Array(inner.dropLast(1024)) + device.bytes + [UInt8](repeating: 0, count: 1024)),
            ("other tags", ArchiveFixtures.image(tags: ["example/other:2"])),
            ("cut inner tar", Array(inner.prefix(inner.count - 1024 - 512))),
        ]
        for (name, image) in cases {
            let plain = ArchiveFixtures.scan(ArchiveFixtures.package(image: image))
            let packed = ArchiveFixtures.scan(ArchiveFixtures.package(image: Self.gz(image)))
            #expect(packed.codes == plain.codes, "\(name)")
            #expect(packed.image == plain.image, "\(name)")
        }
        #expect(ArchiveFixtures.scan(ArchiveFixtures.package(image: Self.gz(DockerSaveWriter.randomBytes(5000, seed: 24)))).codes
                == ["image.invalid_archive"])
    }

    @Test func hostileGzipInAPackageGetsItsCodeAndTheScanGoesOn() throws {
        let packed = Self.gz(ArchiveFixtures.image())
        let cases: [([UInt8], String)] = [
            (Array(packed.prefix(packed.count - 100)), "image.gzip_truncated"),
            (packed + Array("trailing".utf8), "image.gzip_trailing_data"),
            (packed + Self.gz([1, 2, 3]), "image.gzip_multiple_members"),
        ]
        for (image, code) in cases {
            let scan = ArchiveFixtures.scan(ArchiveFixtures.package(image: image, extras: [("a/b", [1])]), wantDigest: true)
            #expect(scan.codes == [code, "archive.nested_entry"])
            #expect(scan.image == nil)
        }
        var limits = PackageScanLimits()
        limits.gzip = GzipLimits(maxRatio: 5, allowanceBytes: 0)
        let bomb = try Gzip.compress([UInt8](repeating: 0, count: 4 << 20), level: 9)
        #expect(ArchiveFixtures.scan(ArchiveFixtures.package(image: bomb), limits: limits).codes == ["image.gzip_ratio_exceeded"])
    }

    @Test func theValidatorsPayloadCarriesTheUnpackedSize() throws {
        let image = ArchiveFixtures.image()
        let scan = ArchiveFixtures.scan(ArchiveFixtures.package(image: Self.gz(image)))
        let t = try #require(scan.imageTar)
        var payload = ImagePayload(path: "/p", offset: t.dataOffset, length: t.size, reference: "x:1", expectedImageID: "", config: ImageConfig())
        #expect(payload.unpackedBytes == t.size)
        payload.unpackedLength = t.unpackedSize
        #expect(payload.unpackedBytes == Int64(image.count))
    }
}
