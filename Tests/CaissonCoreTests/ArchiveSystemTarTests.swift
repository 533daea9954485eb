import CaissonCore
import Foundation
import Testing

/// Cross-checks `TarWriter` against GNU tar's listing and `TarReader` against archives GNU tar
/// writes (`gnu` and `pax` formats, long names, links).
@Suite("Archive vs system tar", .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/tar")))
struct ArchiveSystemTarTests {
    /// Runs a command; returns stdout. Fails the test on a non-zero exit.
    static func run(_ arguments: [String], in directory: String? = nil) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(arguments) failed")
        return String(decoding: data, as: UTF8.self)
    }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "caisson-archive-" + String(SHA256.hash(Array("\(ProcessInfo.processInfo.processIdentifier)-\(#line)-\(Int.random(in: 0..<Int.max))".utf8)).hex.prefix(12))
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static let longName = String(repeating: "deep/", count: 40) + "file-with-a-long-name.bin"

    @Test(arguments: [TarWriter.Format.ustar, .gnu, .pax])
    func gnuTarListsWhatTarWriterWrote(format: TarWriter.Format) throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var tar = TarWriter(format: format)
        tar.addDirectory("blobs/")
        tar.addFile("manifest.toml", "format_version = 1\n")
        tar.addFile(Self.longName, DockerSaveWriter.randomBytes(1500, seed: 11))
        tar.addSymlink("link", target: String(repeating: "t", count: 120))
        tar.addHardLink("hard", target: "manifest.toml")
        tar.finish()
        let path = dir + "/w.tar"
        try Data(tar.bytes).write(to: URL(fileURLWithPath: path))
        let names = try Self.run(["tar", "-tf", path]).split(separator: "\n").map(String.init)
        #expect(names == ["blobs/", "manifest.toml", Self.longName, "link", "hard"])
        let verbose = try Self.run(["tar", "-tvf", path])
        #expect(verbose.contains("1500 "))
        #expect(verbose.contains("link -> " + String(repeating: "t", count: 120)))
        #expect(verbose.contains("hard link to manifest.toml"))
        let content = try Self.run(["tar", "-xOf", path, "manifest.toml"])
        #expect(content == "format_version = 1\n")
    }

    @Test(arguments: ["gnu", "pax", "ustar"])
    func tarReaderReadsWhatGNUTarWrote(format: String) throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = dir + "/src"
        let big = DockerSaveWriter.randomBytes(3 << 20 | 123, seed: 12)
        let files: [(String, [UInt8])] = [
            ("empty", []),
            ("small.txt", Array("hello\n".utf8)),
            ("big.bin", big),
            (format == "ustar" ? "a/b/c/short-enough" : Self.longName, Array("deep\n".utf8)),
        ]
        for (name, data) in files {
            let url = URL(fileURLWithPath: src + "/" + name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(data).write(to: url)
        }
        try FileManager.default.createSymbolicLink(atPath: src + "/sym", withDestinationPath: "small.txt")
        try FileManager.default.linkItem(atPath: src + "/small.txt", toPath: src + "/z-hard")
        let archive = dir + "/t.tar"
        _ = try Self.run(["tar", "--format=\(format)", "--sort=name", "-cf", archive, "-C", src, "."])

        let reader = TarReader(try FileByteSource(path: archive), options: .init(bufferSize: 64 * 1024))
        var seen: [String: (TarEntry, SHA256Digest)] = [:]
        while let entry = try reader.next() {
            var sha = SHA256()
            while try reader.readBodyChunk({ sha.update($0) }) > 0 {}
            seen[entry.name] = (entry, sha.finalizeDigest())
        }
        for (name, data) in files {
            let (entry, digest) = try #require(seen["./" + name], "missing \(name)")
            #expect(entry.type == .regular)
            #expect(entry.size == Int64(data.count))
            #expect(digest == SHA256.hash(data))
        }
        #expect(seen["./sym"]?.0.type == .symbolicLink)
        #expect(seen["./sym"]?.0.linkName == "small.txt")
        let hardlinked = [seen["./z-hard"]?.0].compactMap { $0 }.filter { $0.type == .hardLink }
        #expect(hardlinked.count == 1)
        #expect(hardlinked.first?.linkName == "./small.txt")
        #expect(seen["./"]?.0.type == .directory)
        // The recorded data offset of big.bin lets a range source stream it again.
        let bigEntry = try #require(seen["./big.bin"]?.0)
        let range = try FileByteSource(path: archive, offset: bigEntry.dataOffset, length: bigEntry.size)
        var sha = SHA256()
        var readBuffer = [UInt8](repeating: 0, count: 100_000)
        while true {
            let n = try readBuffer.withUnsafeMutableBytes { try range.read(into: $0) }
            if n == 0 { break }
            sha.update(Array(readBuffer[0..<n]))
        }
        #expect(sha.finalizeDigest() == SHA256.hash(big))
    }

    /// Packages built from real `docker save` output by scripts/make-fixtures, when present.
    static let generatedFixtures: [String] = {
        let dir = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("../../fixtures/generated").standardized.path
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasSuffix(".edgepkg") }.sorted().map { dir + "/" + $0 }
    }()

    @Test(.enabled(if: !generatedFixtures.isEmpty, "run scripts/make-fixtures (needs Docker) first"))
    func realDockerSaveOutputScansClean() throws {
        for path in Self.generatedFixtures {
            let scan = PackageScanner(wantImageDigest: { _ in true }).scan(path: path)
            #expect(scan.issues == [], "\(path)")
            let facts = try #require(scan.image, "\(path)")
            #expect(facts.repoTags.count == 1)
            #expect(facts.os == "linux")
            #expect(!facts.layers.isEmpty)
            #expect(facts.imageID.hasPrefix("sha256:"))
            // The digest of image.tar, checked against a second, independent read of its range.
            let tar = try #require(scan.imageTar)
            let range = try FileByteSource(path: path, offset: tar.dataOffset, length: tar.size)
            var sha = SHA256()
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try range.read(into: $0) }
                if n == 0 { break }
                sha.update(Array(buffer[0..<n]))
            }
            #expect(tar.sha256 == sha.hex)
        }
    }

    /// An image re-packed by GNU tar from a folder (`./`-prefixed names, GNU headers) still
    /// resolves: names are normalized before lookup.
    @Test(arguments: ["gnu", "pax"])
    func imageRepackedByGNUTar(format: String) throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var writer = DockerSaveWriter(layout: .oci, layers: [ArchiveFixtures.layerA, ArchiveFixtures.layerB])
        writer.ociLegacyDirectories = true
        writer.ociLayerPaths = .legacySymlinks
        try Data(writer.build()).write(to: URL(fileURLWithPath: dir + "/orig.tar"))
        try FileManager.default.createDirectory(atPath: dir + "/x", withIntermediateDirectories: true)
        _ = try Self.run(["tar", "-xf", dir + "/orig.tar", "-C", dir + "/x"])
        _ = try Self.run(["tar", "--format=\(format)", "-cf", dir + "/image.tar", "-C", dir + "/x", "."])
        let image = Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/image.tar")))
        let scan = ArchiveFixtures.scan(ArchiveFixtures.package(image: image))
        #expect(scan.issues == [])
        #expect(scan.image?.imageID == writer.images[0].imageID)
        #expect(scan.image?.layers == writer.images[0].diffIDs)
    }

    @Test func referenceRecipePackageScansClean() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let image = DockerSaveWriter(layout: .legacy, layers: [DockerSaveWriter.layer([("bin/app", Array("app".utf8))])]).build()
        try Data(image).write(to: URL(fileURLWithPath: dir + "/image.tar"))
        try Data(EdgePkgBuilder.manifestTOML()).write(to: URL(fileURLWithPath: dir + "/manifest.toml"))
        _ = try Self.run(["tar", "-cf", dir + "/pkg.edgepkg", "-C", dir, "manifest.toml", "image.tar"])
        let scan = PackageScanner(wantImageDigest: { _ in true }).scan(path: dir + "/pkg.edgepkg")
        #expect(scan.issues == [])
        #expect(scan.imageTar?.sha256 == SHA256.hash(image).hex)
        #expect(scan.image?.repoTags == ["example/app:1.0"])
        #expect(scan.manifestBytes == EdgePkgBuilder.manifestTOML())
    }
}
