import CaissonCore
import Testing

/// Reads every entry and its body; returns them, or throws the reader's error.
func readTar(_ bytes: [UInt8], maxReadSize: Int = .max, bufferSize: Int = 1 << 20,
             maxExtendedHeaderSize: Int = 1 << 20, endAtFirstZeroBlock: Bool = false) throws -> [(entry: TarEntry, data: [UInt8])] {
    let reader = TarReader(MemoryByteSource(bytes, maxReadSize: maxReadSize),
                           options: .init(bufferSize: bufferSize, maxExtendedHeaderSize: maxExtendedHeaderSize,
                                          endAtFirstZeroBlock: endAtFirstZeroBlock))
    var out: [(TarEntry, [UInt8])] = []
    while let entry = try reader.next() {
        var data: [UInt8] = []
        while try reader.readBodyChunk({ data.append(contentsOf: $0) }) > 0 {}
        out.append((entry, data))
    }
    return out
}

func tarErrorKind(_ body: () throws -> Void) -> TarError.Kind? {
    do {
        try body()
        return nil
    } catch let error as TarError {
        return error.kind
    } catch {
        return nil
    }
}

@Suite("SHA-256 over libcrypto")
struct ArchiveSHA256Tests {
    @Test func knownVectors() {
        #expect(SHA256.hash([]).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hash(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func streamingEqualsOneShotAndFinalizeResets() {
        let data = DockerSaveWriter.randomBytes(100_000, seed: 1)
        var sha = SHA256()
        for chunk in stride(from: 0, to: data.count, by: 777) {
            sha.update(Array(data[chunk..<min(data.count, chunk + 777)]))
        }
        let partial = sha.hex  // does not disturb
        #expect(SHA256Digest(sha.finalize()) == SHA256.hash(data))
        #expect(partial == SHA256.hash(data).hex)
        #expect(SHA256Digest(sha.finalize()) == SHA256.hash([]))
    }

    @Test func copiesAreIndependent() {
        var a = SHA256()
        a.update(Array("ab".utf8))
        var b = a
        b.update(Array("c".utf8))
        a.update(Array("x".utf8))
        #expect(b.hex == SHA256.hash(Array("abc".utf8)).hex)
        #expect(a.hex == SHA256.hash(Array("abx".utf8)).hex)
    }

    @Test func digestHexRoundTrip() {
        let d = SHA256.hash(Array("hello".utf8))
        #expect(SHA256Digest(hex: d.hex) == d)
        #expect(SHA256Digest(hex: d.hex.uppercased()) == nil)
        #expect(SHA256Digest(hex: String(d.hex.dropLast())) == nil)
        #expect(d.prefixed == "sha256:" + d.hex)
        #expect(SHA256Digest(d.bytes) == d)
    }
}

@Suite("TarReader")
struct ArchiveTarReaderTests {
    @Test func readsUstarEntriesWithOffsetsAndModes() throws {
        var tar = TarWriter(format: .ustar)
        let data = DockerSaveWriter.randomBytes(1000, seed: 2)
        tar.addFile("a.txt", data, options: .init(mode: 0o640))
        tar.addDirectory("dir")
        tar.addSymlink("link", target: "a.txt")
        tar.finish()
        let entries = try readTar(tar.bytes)
        #expect(entries.map(\.entry.name) == ["a.txt", "dir/", "link"])
        #expect(entries.map(\.entry.type) == [.regular, .directory, .symbolicLink])
        #expect(entries[0].data == data)
        #expect(entries[0].entry.mode == 0o640)
        #expect(entries[0].entry.headerOffset == 0)
        #expect(entries[0].entry.dataOffset == 512)
        #expect(Array(tar.bytes[512..<1512]) == data)
        #expect(entries[1].entry.headerOffset == 512 + 1024)
        #expect(entries[2].entry.linkName == "a.txt")
    }

    @Test(arguments: [TarWriter.Format.ustar, .gnu, .pax])
    func longNamesAndLinks(format: TarWriter.Format) throws {
        let mid = String(repeating: "m", count: 90) + "/" + String(repeating: "n", count: 90) + "/file.txt"  // fits prefix+name
        let long = String(repeating: "d/", count: 150) + "file"  // 304 bytes: needs pax or GNU
        let target = String(repeating: "t", count: 150)
        var tar = TarWriter(format: format)
        tar.addFile(mid, "x")
        tar.addFile(long, "y")
        tar.addSymlink("l", target: target)
        tar.finish()
        let entries = try readTar(tar.bytes)
        #expect(entries.map(\.entry.name) == [mid, long, "l"])
        // Offsets cover the extension headers: each entry starts where the previous one ended.
        #expect(entries[0].entry.headerOffset == 0)
        #expect(entries[1].entry.headerOffset == entries[0].entry.dataOffset + 512)
        #expect(Array(tar.bytes[Int(entries[1].entry.dataOffset)...].prefix(1)) == Array("y".utf8))
        #expect(entries[1].data == Array("y".utf8))
        #expect(entries[2].entry.linkName == target)
    }

    @Test func shortReadsAndSmallBuffersGiveTheSameResult() throws {
        var tar = TarWriter(format: .pax)
        tar.addFile(String(repeating: "p/", count: 100) + "x", DockerSaveWriter.randomBytes(3000, seed: 3))
        tar.addFile("b", DockerSaveWriter.randomBytes(513, seed: 4))
        tar.addFile("empty", [])
        tar.finish()
        let reference = try readTar(tar.bytes)
        for (readSize, buffer) in [(1, 512), (7, 1024), (513, 512), (4096, 2048), (100_000, 4096)] {
            let entries = try readTar(tar.bytes, maxReadSize: readSize, bufferSize: buffer)
            #expect(entries.map(\.entry) == reference.map(\.entry))
            #expect(entries.map(\.data) == reference.map(\.data))
        }
    }

    @Test func readBodyIntoCopiesAndReadsDirectly() throws {
        let data = DockerSaveWriter.randomBytes(300_000, seed: 5)
        var tar = TarWriter()
        tar.addFile("big", data)
        tar.addFile("after", "z")
        tar.finish()
        let reader = TarReader(MemoryByteSource(tar.bytes, maxReadSize: 70_000), options: .init(bufferSize: 8192))
        _ = try reader.next()
        var out: [UInt8] = []
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
        defer { scratch.deallocate() }
        while true {
            let n = try reader.readBody(into: scratch)
            if n == 0 { break }
            out += scratch[0..<n]
        }
        #expect(out == data)
        #expect(try reader.next()?.name == "after")
    }

    @Test func unreadBodiesAreSkipped() throws {
        var tar = TarWriter()
        tar.addFile("one", DockerSaveWriter.randomBytes(5000, seed: 6))
        tar.addFile("two", "2")
        tar.finish()
        let reader = TarReader(MemoryByteSource(tar.bytes, maxReadSize: 1000), options: .init(bufferSize: 512))
        #expect(try reader.next()?.name == "one")
        #expect(try reader.next()?.name == "two")
        #expect(try reader.next() == nil)
        #expect(try reader.next() == nil)
    }

    @Test func endOfArchiveVariants() throws {
        var tar = TarWriter()
        tar.addFile("a", "1")
        let body = tar.bytes
        // Two zero blocks, with and without record padding and trailing garbage after them.
        tar.finish(padToRecord: true)
        #expect(try readTar(tar.bytes).count == 1)
        #expect(try readTar(body + [UInt8](repeating: 0, count: 1024) + Array("junk".utf8)).count == 1)
        // One zero block then the end of the data.
        #expect(try readTar(body + [UInt8](repeating: 0, count: 512)).count == 1)
        // No end marker at all: the data ends at an entry boundary, which is the end (Go's
        // archive/tar and the Rust tool's tar crate read it so).
        #expect(try readTar(body).map(\.data) == [Array("1".utf8)])
        // One zero block then record padding.
        #expect(try readTar(body + [UInt8](repeating: 0, count: 10240 - body.count)).count == 1)
        // A zero block followed by a header: refused (as Go's archive/tar does), unless one zero
        // block ends the archive (the Rust tool's reading of a package).
        var next = TarWriter()
        next.addFile("b", "2")
        let zeroThenHeader = body + [UInt8](repeating: 0, count: 512) + next.bytes
        #expect(tarErrorKind { _ = try readTar(zeroThenHeader) } == .invalidHeader)
        #expect(try readTar(zeroThenHeader, endAtFirstZeroBlock: true).count == 1)
        #expect(try readTar(body + [UInt8](repeating: 0, count: 512) + Array("padding".utf8), endAtFirstZeroBlock: true).count == 1)
        // Empty input: an archive without entries.
        #expect(try readTar([]).isEmpty)
        // The end of the data inside a header block, or right after an extended header, is not.
        #expect(tarErrorKind { _ = try readTar(body + [UInt8](repeating: 0x41, count: 100)) } == .truncated)
        var pax = TarWriter(format: .pax)
        pax.addFile(String(repeating: "p", count: 150), "x")
        #expect(tarErrorKind { _ = try readTar(Array(pax.bytes.prefix(1024))) } == .truncated)
    }

    @Test func truncationAtEveryOffsetIsAnErrorNeverACrash() throws {
        var tar = TarWriter(format: .pax)
        tar.addFile(String(repeating: "q", count: 200), DockerSaveWriter.randomBytes(700, seed: 7))
        tar.addFile("b", "bb")
        tar.finish()
        let full = tar.bytes
        // Where the data may end: before any entry, between entries (no end marker), or inside
        // the end marker after its first block.
        let entries = try readTar(full).map(\.entry)
        let boundaries = Set(entries.map { Int($0.headerOffset) } + [full.count - 1024])
        for cut in 0..<full.count {
            let kind = tarErrorKind { _ = try readTar(Array(full.prefix(cut)), maxReadSize: 333, bufferSize: 1024) }
            if cut >= full.count - 512 || boundaries.contains(cut) {
                #expect(kind == nil, "cut at \(cut)")
            } else {
                #expect(kind == .truncated, "cut at \(cut)")
            }
        }
    }

    @Test func checksumVerification() throws {
        var bad = TarWriter()
        bad.addFile("a", "1", options: .init(checksumDelta: 1))
        bad.finish()
        #expect(tarErrorKind { _ = try readTar(bad.bytes) } == .badChecksum)

        // A name with bytes ≥ 0x80: the signed sum differs from the unsigned one; both accepted.
        var high = TarWriter()
        high.addFile("é-ü", "1")
        high.finish()
        var signedVariant = high.bytes
        let unsigned = signedVariant[0..<512].enumerated().reduce(0) { $0 + Int((148..<156).contains($1.offset) ? 0x20 : $1.element) }
        let signed = signedVariant[0..<512].enumerated().reduce(0) { $0 + Int((148..<156).contains($1.offset) ? 0x20 : Int(Int8(bitPattern: $1.element))) }
        #expect(unsigned != signed)
        let field = Array(String(signed, radix: 8).utf8)
        let padded = [UInt8](repeating: UInt8(ascii: "0"), count: 6 - field.count) + field + [0, 0x20]
        signedVariant.replaceSubrange(148..<156, with: padded)
        #expect(try readTar(high.bytes).first?.entry.name == "é-ü")
        #expect(try readTar(signedVariant).first?.entry.name == "é-ü")

        // Random bytes are not a tar archive.
        #expect(tarErrorKind { _ = try readTar(DockerSaveWriter.randomBytes(4096, seed: 8)) } == .badChecksum)
    }

    @Test func numericFields() {
        #expect(TarFormat.parseNumber(Array("0000644\0".utf8)) == 0o644)
        #expect(TarFormat.parseNumber(Array("  644 \0".utf8)) == 0o644)
        #expect(TarFormat.parseNumber([UInt8](repeating: 0, count: 12)) == 0)
        #expect(TarFormat.parseNumber(Array("12x4\0".utf8)) == nil)
        #expect(TarFormat.parseNumber(Array("9\0".utf8)) == nil)
        #expect(TarFormat.parseNumber(Array("12\u{0}34\0".utf8)) == nil)
        #expect(TarFormat.parseNumber(TarWriter.base256(10 << 30, width: 12)) == 10 << 30)
        #expect(TarFormat.parseNumber(TarWriter.base256(-5, width: 12)) == -5)
        #expect(TarFormat.parseNumber([0x80] + [UInt8](repeating: 0xff, count: 11)) == nil)  // > Int64.max
        #expect(TarFormat.parseNumber(Array("7777777777777777777777".utf8)) == nil)  // octal overflow
    }

    @Test func sizeFields() throws {
        // Base-256 size (GNU) for a small file reads normally.
        var b256 = TarWriter(format: .gnu)
        b256.addFile("a", "hello", options: .init(rawSizeField: TarWriter.base256(5, width: 12)))
        b256.finish()
        #expect(try readTar(b256.bytes).first?.data == Array("hello".utf8))

        for field in [Array("12x45678901\0".utf8), TarWriter.base256(-1, width: 12), [0x80] + [UInt8](repeating: 0xff, count: 11)] {
            var tar = TarWriter()
            tar.addFile("a", "1", options: .init(rawSizeField: field))
            tar.finish()
            #expect(tarErrorKind { _ = try readTar(tar.bytes) } == .invalidSize)
        }
        var paxBad = TarWriter(format: .pax)
        paxBad.addFile("a", "1", options: .init(paxRecords: [("size", Array("-3".utf8))]))
        paxBad.finish()
        #expect(tarErrorKind { _ = try readTar(paxBad.bytes) } == .invalidSize)
        var paxHuge = TarWriter(format: .pax)
        paxHuge.addFile("a", "1", options: .init(paxRecords: [("size", Array("99999999999999999999".utf8))]))
        paxHuge.finish()
        #expect(tarErrorKind { _ = try readTar(paxHuge.bytes) } == .invalidSize)
    }

    @Test(arguments: [TarWriter.Format.pax, .gnu])
    func sizesOver8GiBAreReadFromPaxOrBase256(format: TarWriter.Format) throws {
        let huge: Int64 = 9 << 30
        var tar = TarWriter(format: format)
        tar.addFile("huge", Array("only a little data".utf8), options: .init(declaredSize: huge))
        tar.finish()
        let reader = TarReader(MemoryByteSource(tar.bytes))
        let entry = try #require(try reader.next())
        #expect(entry.size == huge)
        #expect(tarErrorKind { while try reader.readBodyChunk({ _ in }) > 0 {} } == .truncated)
        // Sticky: the reader stays failed.
        #expect(tarErrorKind { _ = try reader.next() } == .truncated)
    }

    @Test func invalidNamesAreRecoverable() throws {
        var tar = TarWriter(format: .pax)
        tar.addFile("nul", "1", options: .init(paxRecords: [("path", Array("a\0b".utf8))]))
        tar.addFile("bad", "2", options: .init(rawName: [0x66, 0xff, 0xfe]))
        tar.addFile("good", "3")
        tar.finish()
        let reader = TarReader(MemoryByteSource(tar.bytes))
        var errors: [TarError] = []
        var names: [String] = []
        while true {
            do {
                guard let entry = try reader.next() else { break }
                names.append(entry.name)
            } catch let error as TarError where error.isRecoverable {
                errors.append(error)
            }
        }
        #expect(errors.map(\.kind) == [.invalidName, .invalidName])
        #expect(errors[0].message.contains("NUL"))
        #expect(errors[1].message.contains("UTF-8"))
        #expect(names == ["good"])
    }

    @Test func gnuLongNameWithEmbeddedNULIsInvalid() throws {
        var tar = TarWriter(format: .gnu)
        tar.addLongNameEntry(UInt8(ascii: "L"), Array("abc\0def".utf8))
        tar.addFile("short", "1")
        tar.finish()
        #expect(tarErrorKind { _ = try readTar(tar.bytes) } == .invalidName)
    }

    @Test func extensionPayloadsAreCapped() throws {
        var big = TarWriter(format: .pax)
        big.addFile("a", "1", options: .init(paxRecords: [("comment", [UInt8](repeating: 0x61, count: 5000))]))
        big.finish()
        #expect(tarErrorKind { _ = try readTar(big.bytes, maxExtendedHeaderSize: 4096) } == .extendedHeaderTooLarge)
        #expect(try readTar(big.bytes, maxExtendedHeaderSize: 8192).count == 1)
        // A declared payload of 1 TiB is refused before anything is allocated.
        var lying = TarWriter(format: .pax)
        lying.addRawPaxHeader(Array("11 path=x\n".utf8), declaredSize: 1 << 40)
        #expect(tarErrorKind { _ = try readTar(lying.bytes) } == .extendedHeaderTooLarge)
        var gnu = TarWriter(format: .gnu)
        gnu.addLongNameEntry(UInt8(ascii: "L"), [UInt8](repeating: 0x61, count: 3000))
        gnu.addFile("x", "1")
        gnu.finish()
        #expect(tarErrorKind { _ = try readTar(gnu.bytes, maxExtendedHeaderSize: 2048) } == .extendedHeaderTooLarge)
    }

    @Test(arguments: ["6 a=\n", "30 path=x\n", "x path=y\n", "8 =abc\n", "9 path=x"])
    func malformedPaxRecords(payload: String) {
        var tar = TarWriter(format: .pax)
        tar.addRawPaxHeader(Array(payload.utf8))
        tar.addFile("a", "1")
        tar.finish()
        #expect(tarErrorKind { _ = try readTar(tar.bytes) } == .invalidExtendedHeader)
    }

    @Test func extendedHeaderFollowedByEndIsAnError() {
        var tar = TarWriter(format: .pax)
        tar.addPaxHeader([("path", Array("x".utf8))])
        tar.finish()
        #expect(tarErrorKind { _ = try readTar(tar.bytes) } == .invalidHeader)
    }

    @Test func globalHeadersSparseAndOtherTypesAreReported() throws {
        var tar = TarWriter(format: .pax)
        tar.addPaxHeader([("comment", Array("hi".utf8))], global: true)
        tar.addEntry("old-sparse", type: UInt8(ascii: "S"), data: [])
        tar.addFile("pax-sparse", "x", options: .init(paxRecords: [("GNU.sparse.major", Array("1".utf8))]))
        tar.addEntry("c", type: UInt8(ascii: "7"), data: [])
        tar.addEntry("v", type: UInt8(ascii: "V"), data: [])
        tar.finish()
        let types = try readTar(tar.bytes).map(\.entry.type)
        #expect(types == [.paxGlobalHeader, .sparse, .sparse, .contiguous, .other(UInt8(ascii: "V"))])
    }

    @Test func headerOnlyTypesCarryNoDataWhateverTheirSizeField() throws {
        var tar = TarWriter()
        tar.addEntry("dir/", type: UInt8(ascii: "5"), data: [], options: .init(declaredSize: 4096))
        tar.addFile("next", "n")
        tar.finish()
        let entries = try readTar(tar.bytes)
        #expect(entries.map(\.entry.name) == ["dir/", "next"])
        #expect(entries[0].entry.size == 0)
    }

    @Test func nestedReaderOverABodySource() throws {
        var inner = TarWriter()
        inner.addFile("inside", DockerSaveWriter.randomBytes(20_000, seed: 9))
        inner.finish(padToRecord: true)
        var outer = TarWriter()
        outer.addFile("image.tar", inner.bytes)
        outer.addFile("after", "a")
        outer.finish()
        let reader = TarReader(MemoryByteSource(outer.bytes, maxReadSize: 3000), options: .init(bufferSize: 4096))
        _ = try reader.next()
        let nested = TarReader(reader.bodySource(), options: .init(bufferSize: 1024))
        let entry = try #require(try nested.next())
        #expect(entry.name == "inside")
        var data: [UInt8] = []
        while try nested.readBodyChunk({ data += $0 }) > 0 {}
        #expect(data == DockerSaveWriter.randomBytes(20_000, seed: 9))
        #expect(try nested.next() == nil)
        try nested.drainSource()
        #expect(reader.remainingBodyBytes == 0)
        #expect(try reader.next()?.name == "after")
    }

    @Test func readWholeBodyRespectsItsLimit() throws {
        var tar = TarWriter()
        tar.addFile("a", DockerSaveWriter.randomBytes(2000, seed: 10))
        tar.finish()
        let reader = TarReader(MemoryByteSource(tar.bytes))
        _ = try reader.next()
        #expect(try reader.readWholeBody(limit: 1999) == nil)
        #expect(try reader.readWholeBody(limit: 2000) == DockerSaveWriter.randomBytes(2000, seed: 10))
    }
}
