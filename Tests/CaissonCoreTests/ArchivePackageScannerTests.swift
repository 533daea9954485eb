import CaissonCore
import Foundation
import Testing

/// Shared fixtures for the package and image tests.
enum ArchiveFixtures {
    static let layerA = DockerSaveWriter.layer([("bin/app", DockerSaveWriter.randomBytes(5000, seed: 20))])
    static let layerB = DockerSaveWriter.layer([("etc/app.conf", Array("port = 80\n".utf8))])

    static func image(_ layout: DockerSaveWriter.Layout = .legacy, tags: [String] = ["example/app:1.0"]) -> [UInt8] {
        DockerSaveWriter(layout: layout, layers: [layerA, layerB], repoTags: tags).build()
    }

    static func package(image: [UInt8]? = ArchiveFixtures.image(), extras: [(String, [UInt8])] = [],
                        imageFirst: Bool = false) -> [UInt8] {
        EdgePkgBuilder(image: image, extras: extras, imageFirst: imageFirst).build()
    }

    static func scan(_ bytes: [UInt8], limits: PackageScanLimits = PackageScanLimits(), maxReadSize: Int = .max,
                     wantDigest: Bool = false) -> PackageScan {
        PackageScanner(limits: limits, wantImageDigest: { _ in wantDigest }).scan(MemoryByteSource(bytes, maxReadSize: maxReadSize))
    }

    /// A tar of root entries written by hand (for malformed packages).
    static func tar(_ build: (inout TarWriter) -> Void, format: TarWriter.Format = .pax) -> [UInt8] {
        var tar = TarWriter(format: format)
        build(&tar)
        tar.finish()
        return tar.bytes
    }

    static let manifest = EdgePkgBuilder.manifestTOML()
}

extension PackageScan {
    var codes: [String] { issues.map(\.code) }
}

@Suite("PackageScanner: archive rules")
struct ArchivePackageScannerTests {
    @Test func validPackageYieldsFactsAndNoIssues() throws {
        let image = ArchiveFixtures.image()
        let pkg = ArchiveFixtures.package(image: image, extras: [("signature", Array("sig".utf8))])
        let scan = ArchiveFixtures.scan(pkg, wantDigest: true)
        #expect(scan.issues == [])
        #expect(scan.manifestBytes == ArchiveFixtures.manifest)
        let imageTar = try #require(scan.imageTar)
        #expect(imageTar.size == Int64(image.count))
        #expect(Array(pkg[Int(imageTar.dataOffset)..<Int(imageTar.dataOffset) + image.count]) == image)
        #expect(imageTar.sha256 == SHA256.hash(image).hex)
        #expect(scan.entries.map(\.name) == ["manifest.toml", "image.tar", "signature"])
        #expect(scan.entries.map(\.dataOffset) == [512, imageTar.dataOffset, scan.entries[2].dataOffset])
        #expect(scan.bytesRead == Int64(pkg.count) || scan.bytesRead >= Int64(scan.entries[2].dataOffset))
        #expect(scan.image?.repoTags == ["example/app:1.0"])
    }

    @Test func imageDigestFollowsTheCallbackUnlessTheImageComesFirst() {
        let image = ArchiveFixtures.image()
        var calls: [[UInt8]] = []
        let scanner = PackageScanner(wantImageDigest: { calls.append($0); return false })
        let notWanted = scanner.scan(MemoryByteSource(ArchiveFixtures.package(image: image)))
        #expect(notWanted.imageTar?.sha256 == nil)
        #expect(calls == [ArchiveFixtures.manifest])
        calls = []
        let imageFirst = scanner.scan(MemoryByteSource(ArchiveFixtures.package(image: image, imageFirst: true)))
        #expect(imageFirst.imageTar?.sha256 == SHA256.hash(image).hex)
        #expect(calls.isEmpty)
        #expect(imageFirst.issues == [])
    }

    @Test func imageDigestOverManyChunksAndShortReads() {
        // Several buffers' worth of image, small buffers and odd read sizes: the background hash
        // must see every byte exactly once, in order.
        let big = DockerSaveWriter.randomBytes(3 << 20, seed: 21)
        let image = DockerSaveWriter(layout: .oci, layers: [big, ArchiveFixtures.layerB]).build()
        let pkg = ArchiveFixtures.package(image: image)
        var limits = PackageScanLimits()
        limits.readBufferSize = 64 * 1024
        for readSize in [Int.max, 100_003, 4097] {
            let scan = ArchiveFixtures.scan(pkg, limits: limits, maxReadSize: readSize, wantDigest: true)
            #expect(scan.issues == [])
            #expect(scan.imageTar?.sha256 == SHA256.hash(image).hex)
            #expect(scan.image?.totalLayerBytes == Int64(big.count + ArchiveFixtures.layerB.count))
        }
    }

    @Test func progressReportsARunningCountUpToTheFileSize() {
        let pkg = ArchiveFixtures.package()
        var seen: [Int64] = []
        var limits = PackageScanLimits()
        limits.readBufferSize = 4096
        _ = PackageScanner(limits: limits, progress: { seen.append($0) }).scan(MemoryByteSource(pkg))
        #expect(!seen.isEmpty)
        #expect(seen == seen.sorted())
        // Reading stops at the end-of-archive marker (the record padding after it is not read).
        let last = seen.last ?? 0
        #expect(last <= Int64(pkg.count))
        #expect(last >= Int64(pkg.count - 10240))
    }

    // MARK: - Each archive-level code

    @Test func entryReadFailedForGarbageAndCorruptHeaders() {
        // As the Rust tool reports them (FORMATS §4): the first header cannot be read.
        #expect(ArchiveFixtures.scan(DockerSaveWriter.randomBytes(10_000, seed: 22)).codes == ["archive.entry_read_failed"])
        let bad = ArchiveFixtures.tar { $0.addFile("manifest.toml", ArchiveFixtures.manifest, options: .init(checksumDelta: 7)) }
        #expect(ArchiveFixtures.scan(bad).codes == ["archive.entry_read_failed"])
        // A later header too.
        let badLater = ArchiveFixtures.tar {
            $0.addFile("manifest.toml", ArchiveFixtures.manifest)
            $0.addFile("image.tar", ArchiveFixtures.image(), options: .init(checksumDelta: 7))
        }
        #expect(ArchiveFixtures.scan(badLater).codes == ["archive.entry_read_failed"])
        // A compressed package is not a tar (only image.tar may be compressed).
        #expect(ArchiveFixtures.scan([0x1f, 0x8b, 8, 0] + [UInt8](repeating: 0, count: 2000)).codes == ["archive.entry_read_failed"])
        // The data ends inside a header block.
        let pkg = ArchiveFixtures.package()
        #expect(ArchiveFixtures.scan(Array(pkg.prefix(300))).codes == ["archive.entry_read_failed"])
    }

    @Test func anEmptyFileHasNoManifest() {
        #expect(ArchiveFixtures.scan([]).codes == ["archive.missing_manifest", "archive.missing_image"])
    }

    @Test func theEndMarkerMayBeMissingOrShortAsTheRustToolReadsIt() throws {
        let plain = ArchiveFixtures.package()
        let end = Int(ArchiveFixtures.scan(plain).entries.last.map { $0.dataOffset + $0.size + TarFormat.padding($0.size) } ?? 0)
        // Ends at an entry boundary, without the end-of-archive blocks.
        let bare = ArchiveFixtures.scan(Array(plain.prefix(end)), wantDigest: true)
        #expect(bare.issues == [])
        #expect(bare.image != nil)
        // One zero block, then padding (zeros, or anything: the Rust tool stops at the first zero block).
        for tail in [[UInt8](repeating: 0, count: 512), [UInt8](repeating: 0, count: 512) + [UInt8](repeating: 0, count: 100),
                     [UInt8](repeating: 0, count: 512) + Array("padding after the end".utf8)] {
            #expect(ArchiveFixtures.scan(Array(plain.prefix(end)) + tail).issues == [])
        }
        // Cut right after manifest.toml: the image is missing, as the Rust tool says.
        let afterManifest = Int(ArchiveFixtures.scan(plain).entries.first.map { $0.dataOffset + $0.size + TarFormat.padding($0.size) } ?? 0)
        #expect(ArchiveFixtures.scan(Array(plain.prefix(afterManifest))).codes == ["archive.missing_image"])
    }

    @Test func entryReadFailedWhenABodyIsCut() {
        let pkg = ArchiveFixtures.package(extras: [("extra.bin", DockerSaveWriter.randomBytes(3000, seed: 23))])
        let scan = ArchiveFixtures.scan(ArchiveFixtures.scan(pkg).entries.last.map { Array(pkg.prefix(Int($0.dataOffset) + 1000)) } ?? [])
        #expect(scan.codes == ["archive.entry_read_failed"])
        #expect(scan.issues.first?.message.contains("extra.bin") == true)

        // Cut inside image.tar: an outer problem, not an image one.
        let plain = ArchiveFixtures.package()
        let imageOffset = Int(ArchiveFixtures.scan(plain).imageTar?.dataOffset ?? 0)
        let cut = ArchiveFixtures.scan(Array(plain.prefix(imageOffset + 3000)), wantDigest: true)
        #expect(cut.codes == ["archive.entry_read_failed"])
        #expect(cut.image == nil)
        #expect(cut.imageTar == nil)
    }

    /// More than one component as Rust's `Path::components()` splits it (FORMATS §4).
    @Test(arguments: ["/manifest.toml", "../image.tar", "./image.tar", "a/../b", "a//b", "./x", "/x", "../x", "a/b/", "//x", "./."])
    func nestedEntryPath(name: String) {
        let pkg = ArchiveFixtures.tar {
            $0.addFile("manifest.toml", ArchiveFixtures.manifest)
            $0.addFile("image.tar", ArchiveFixtures.image())
            $0.addFile(name, "x")
        }
        #expect(ArchiveFixtures.scan(pkg).codes == (name == "./." ? ["archive.invalid_entry_path"] : ["archive.nested_entry"]))
    }

    /// A lone `/`, `.`, `..` (one component that is not a name), and ours: control characters,
    /// backslashes, and names that only resolve to a plain name.
    @Test(arguments: [".", "..", "/", "./", "//", "/.", "back\\slash", "tab\tname", "x/", "x/."])
    func invalidEntryPath(name: String) {
        let pkg = ArchiveFixtures.tar {
            $0.addFile("manifest.toml", ArchiveFixtures.manifest)
            $0.addFile("image.tar", ArchiveFixtures.image())
            $0.addFile(name, "x")
        }
        #expect(ArchiveFixtures.scan(pkg).codes == ["archive.invalid_entry_path"])
    }

    @Test func invalidEntryPathForNULAndInvalidUTF8AndTheScanGoesOn() {
        let pkg = ArchiveFixtures.tar {
            $0.addFile("nul", "x", options: .init(paxRecords: [("path", Array("image.tar\0evil".utf8))]))
            $0.addFile("bad", "x", options: .init(rawName: [0x69, 0xff]))
            $0.addFile("manifest.toml", ArchiveFixtures.manifest)
            $0.addFile("image.tar", ArchiveFixtures.image())
        }
        let scan = ArchiveFixtures.scan(pkg)
        #expect(scan.codes == ["archive.invalid_entry_path", "archive.invalid_entry_path"])
        #expect(scan.image != nil)
    }

    @Test func dotSlashImageIsNotAlsoReportedMissing() {
        let pkg = ArchiveFixtures.tar {
            $0.addFile("manifest.toml", ArchiveFixtures.manifest)
            $0.addFile("./image.tar", ArchiveFixtures.image())
        }
        #expect(ArchiveFixtures.scan(pkg).codes == ["archive.nested_entry"])
    }

    @Test func emptyEntryPath() {
        let pkg = ArchiveFixtures.tar {
            $0.addFile("", "x")
            $0.addFile("manifest.toml", ArchiveFixtures.manifest)
            $0.addFile("image.tar", ArchiveFixtures.image())
        }
        #expect(ArchiveFixtures.scan(pkg).codes == ["archive.empty_entry_path"])
    }

    @Test func nestedEntry() {
        let pkg = ArchiveFixtures.tar {
            $0.addFile("manifest.toml", ArchiveFixtures.manifest)
            $0.addFile("sub/image.tar", ArchiveFixtures.image())
        }
        let scan = ArchiveFixtures.scan(pkg)
        #expect(scan.codes == ["archive.nested_entry"])
        #expect(scan.image == nil)
    }

    @Test func duplicateEntryAndMissingImageAreBothReported() {
        let pkg = ArchiveFixtures.tar {
            $0.addFile("manifest.toml", ArchiveFixtures.manifest)
            $0.addFile("manifest.toml", "format_version = 2\n")
        }
        let scan = ArchiveFixtures.scan(pkg)
        #expect(scan.codes == ["archive.duplicate_entry", "archive.missing_image"])
        #expect(scan.manifestBytes == ArchiveFixtures.manifest)  // the first one
    }

    @Test(arguments: [
        (UInt8(ascii: "5"), "directory"), (UInt8(ascii: "2"), "symbolic link"), (UInt8(ascii: "1"), "hard link"),
        (UInt8(ascii: "3"), "character device"), (UInt8(ascii: "4"), "block device"), (UInt8(ascii: "6"), "FIFO"),
        (UInt8(ascii: "S"), "sparse file"), (UInt8(ascii: "g"), "pax global header"), (UInt8(ascii: "7"), "contiguous file"),
        (UInt8(ascii: "V"), "special entry (type 'V')"),
    ])
    func unsafeEntryType(flag: UInt8, description: String) {
        let pkg = ArchiveFixtures.tar {
            $0.addFile("manifest.toml", ArchiveFixtures.manifest)
            $0.addFile("image.tar", ArchiveFixtures.image())
            $0.addEntry("odd", type: flag, data: [], options: .init(linkName: "manifest.toml"))
        }
        let scan = ArchiveFixtures.scan(pkg)
        #expect(scan.codes == ["archive.unsafe_entry_type"])
        #expect(scan.issues.first?.message.contains(description) == true)
    }

    @Test func paxSparseAndSymlinkedImageAreUnsafeWithoutAMissingImage() {
        let sparse = ArchiveFixtures.tar {
            $0.addFile("manifest.toml", ArchiveFixtures.manifest)
            $0.addFile("image.tar", ArchiveFixtures.image(), options: .init(paxRecords: [("GNU.sparse.major", Array("1".utf8))]))
        }
        #expect(ArchiveFixtures.scan(sparse).codes == ["archive.unsafe_entry_type"])
        let link = ArchiveFixtures.tar {
            $0.addFile("manifest.toml", ArchiveFixtures.manifest)
            $0.addSymlink("image.tar", target: "/etc/passwd")
        }
        #expect(ArchiveFixtures.scan(link).codes == ["archive.unsafe_entry_type"])
    }

    @Test func invalidEntrySize() {
        for field in [Array("garbage!!!!\0".utf8), TarWriter.base256(-2, width: 12)] {
            let pkg = ArchiveFixtures.tar {
                $0.addFile("manifest.toml", ArchiveFixtures.manifest)
                $0.addFile("image.tar", "x", options: .init(rawSizeField: field))
            }
            #expect(ArchiveFixtures.scan(pkg).codes == ["archive.invalid_entry_size"])
        }
        let pax = ArchiveFixtures.tar {
            $0.addFile("manifest.toml", ArchiveFixtures.manifest, options: .init(paxRecords: [("size", Array("12a".utf8))]))
        }
        #expect(ArchiveFixtures.scan(pax).codes == ["archive.invalid_entry_size"])
    }

    @Test func missingManifestAndImage() {
        #expect(ArchiveFixtures.scan(EdgePkgBuilder(manifest: nil, image: ArchiveFixtures.image()).build()).codes == ["archive.missing_manifest"])
        #expect(ArchiveFixtures.scan(EdgePkgBuilder(image: nil).build()).codes == ["archive.missing_image"])
        #expect(ArchiveFixtures.scan(EdgePkgBuilder(manifest: nil, image: nil, extras: [("x", [1])]).build()).codes
                == ["archive.missing_manifest", "archive.missing_image"])
    }

    @Test func manifestTooLargeIsNotBuffered() {
        let big = [UInt8](repeating: UInt8(ascii: "#"), count: 64 * 1024 + 1)
        let scan = ArchiveFixtures.scan(EdgePkgBuilder(manifest: big, image: ArchiveFixtures.image()).build())
        #expect(scan.codes == ["manifest.too_large"])
        #expect(scan.manifestBytes == nil)
        let exact = [UInt8](repeating: UInt8(ascii: "#"), count: 64 * 1024)
        #expect(ArchiveFixtures.scan(EdgePkgBuilder(manifest: exact, image: ArchiveFixtures.image()).build()).issues == [])
        // A manifest that claims 10 GiB is refused from its header (then the cut body is reported).
        let lying = ArchiveFixtures.tar {
            $0.addFile("manifest.toml", ArchiveFixtures.manifest, options: .init(declaredSize: 10 << 30))
        }
        #expect(ArchiveFixtures.scan(lying).codes == ["manifest.too_large", "archive.entry_read_failed"])
    }

    @Test func manifestReadFailedWhenItsBodyIsCut() {
        let pkg = EdgePkgBuilder(manifest: [UInt8](repeating: 0x61, count: 4000), image: ArchiveFixtures.image()).build()
        #expect(ArchiveFixtures.scan(Array(pkg.prefix(512 + 1000))).codes == ["manifest.read_failed"])
    }

    @Test func emptyImage() {
        let scan = ArchiveFixtures.scan(ArchiveFixtures.package(image: []), wantDigest: true)
        #expect(scan.codes == ["image.empty_archive"])
        #expect(scan.imageTar?.size == 0)
        #expect(scan.imageTar?.sha256 == SHA256Digest.empty.hex)
    }

    @Test func imageReadFailedForAnUnreadableInnerTar() {
        let garbage = ArchiveFixtures.scan(ArchiveFixtures.package(image: DockerSaveWriter.randomBytes(5000, seed: 24)))
        #expect(garbage.codes == ["image.invalid_archive"])
        // The outer scan goes on after it: an extra entry after image.tar is still checked.
        let image = ArchiveFixtures.image()
        let cutInner = Array(image.prefix(image.count - 1024 - 512))  // no end marker, last block gone
        let scan = ArchiveFixtures.scan(ArchiveFixtures.package(image: cutInner, extras: [("a/b", [1])]))
        #expect(scan.codes == ["image.read_failed", "archive.nested_entry"])
    }

    @Test func tooManyEntries() {
        let extras = (0..<70).map { ("extra-\($0)", [UInt8(truncatingIfNeeded: $0)]) }
        let scan = ArchiveFixtures.scan(ArchiveFixtures.package(extras: extras))
        #expect(scan.codes == ["archive.too_many_entries"])
        #expect(scan.entries.count == 64)
    }

    @Test func truncationAtManyOffsetsNeverCrashesAndIsAlwaysReported() {
        let pkg = ArchiveFixtures.package(image: ArchiveFixtures.image(.oci))
        var limits = PackageScanLimits()
        limits.readBufferSize = 2048
        // Up to the end of image.tar's data (the last entry); from there on the package is whole
        // (no end marker, or part of one, is the end).
        let endOfData = Int(ArchiveFixtures.scan(pkg).imageTar.map { $0.dataOffset + $0.size } ?? 0)
        #expect(endOfData > pkg.count - 11264)
        for cut in stride(from: 0, to: pkg.count, by: 157) {
            let scan = ArchiveFixtures.scan(Array(pkg.prefix(cut)), limits: limits, maxReadSize: 3001, wantDigest: true)
            if cut < endOfData {
                #expect(!scan.issues.isEmpty, "cut at \(cut)")
            }
        }
    }

    @Test func lyingSizesInsideImageTarNeverCrash() {
        // Every layer header claims more (or less) than it holds.
        for delta in [-600, -1, 1, 511, 512, 100_000] {
            var tar = TarWriter(format: .pax)
            tar.addFile("layer.tar", ArchiveFixtures.layerA, options: .init(declaredSize: Int64(ArchiveFixtures.layerA.count + delta)))
            tar.addFile("manifest.json", "[]")
            tar.finish()
            let scan = ArchiveFixtures.scan(ArchiveFixtures.package(image: tar.bytes))
            #expect(!scan.issues.isEmpty, "delta \(delta)")
            #expect(scan.image == nil)
        }
    }
}

@Suite("FileByteSource")
struct ArchiveFileByteSourceTests {
    static func tempFile(_ bytes: [UInt8]) throws -> String {
        let path = NSTemporaryDirectory() + "caisson-fbs-\(Int.random(in: 0..<Int.max)).bin"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func readAll(_ source: FileByteSource, chunk: Int = 1000) throws -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: chunk)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try source.read(into: $0) }
            if n == 0 { return out }
            out += buffer[0..<n]
        }
    }

    @Test func readsFilesAndRanges() throws {
        let bytes = DockerSaveWriter.randomBytes(10_000, seed: 30)
        let path = try Self.tempFile(bytes)
        defer { unlink(path) }
        #expect(try Self.readAll(FileByteSource(path: path)) == bytes)
        #expect(try Self.readAll(FileByteSource(path: path, offset: 1234, length: 5000)) == Array(bytes[1234..<6234]))
        // A range past the end of the file ends early.
        #expect(try Self.readAll(FileByteSource(path: path, offset: 9000, length: 5000)) == Array(bytes[9000...]))
        let source = try FileByteSource(path: path, offset: 100, length: 1000)
        #expect(try source.skip(400) == 400)
        #expect(try source.skip(10_000) == 600)
        #expect(try Self.readAll(source).isEmpty)
    }

    @Test func errorsNameTheFileAndErrno() throws {
        do {
            _ = try FileByteSource(path: "/nonexistent/caisson.edgepkg")
            Issue.record("expected an error")
        } catch let error as ByteSourceError {
            #expect(error.errno == ENOENT)
            #expect(error.message == "open /nonexistent/caisson.edgepkg: no such file or directory (ENOENT)")
        }
        let scan = PackageScanner().scan(path: "/nonexistent/caisson.edgepkg")
        #expect(scan.codes == ["archive.read_failed"])
    }

    /// Injected system calls: EINTR is retried, EIO surfaces with its errno.
    @Test func injectedErrnoValues() throws {
        let pkg = ArchiveFixtures.package()
        let path = try Self.tempFile(pkg)
        defer { unlink(path) }
        final class Counter: @unchecked Sendable { var calls = 0 }
        let counter = Counter()
        let failAfter = pkg.count / 2
        let errnoBox = Counter()
        var calls = FileSystemCalls.live
        calls.pread = { fd, buffer, count, offset in
            counter.calls += 1
            if counter.calls % 2 == 1 { errnoBox.calls = Int(EINTR); return -1 }  // every other call is interrupted
            if offset >= Int64(failAfter) { errnoBox.calls = Int(EIO); return -1 }
            return Glibc.pread(fd, buffer, min(count, 4096), off_t(offset))
        }
        calls.lastErrno = { Int32(errnoBox.calls) }
        let scan = PackageScanner().scan(try FileByteSource(path: path, calls: calls))
        #expect(scan.codes == ["archive.entry_read_failed"])
        #expect(scan.issues.first?.message.contains("input/output error (EIO)") == true)
        #expect(counter.calls > 4)

        var clean = FileSystemCalls.live
        clean.pread = { fd, buffer, count, offset in
            counter.calls += 1
            if counter.calls % 3 == 0 { errnoBox.calls = Int(EINTR); return -1 }
            return Glibc.pread(fd, buffer, count, off_t(offset))
        }
        clean.lastErrno = { Int32(errnoBox.calls) }
        #expect(PackageScanner().scan(try FileByteSource(path: path, calls: clean)).issues == [])
    }
}
