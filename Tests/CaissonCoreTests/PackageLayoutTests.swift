import CaissonCore
import Testing

/// The streamed package layout `package build` and `updater build` share
/// (`TarArchiveWriter.packageHead`/`packageTail` around an entry copied from a file): byte for
/// byte the archive `TarArchiveWriter` writes for the same files, signed or not, and read back
/// by the package scanner with every entry where it belongs.
@Suite struct PackageLayoutTests {
    static func body(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) } }

    @Test(arguments: [(0, false), (1, true), (511, false), (512, true), (513, true), (70_000, false)])
    func streamedLayoutIsTheWritersArchive(size: Int, signed: Bool) {
        let manifest = Array("format_version = 1\npackage_type = \"service\"\n".utf8)
        let entry = Self.body(size)
        let signature: [UInt8]? = signed ? Array("untrusted comment: x\nRWQ...\n".utf8) : nil
        for (name, mode) in [("image.tar", 0o644), ("caisson", 0o755)] {
            let streamed = TarArchiveWriter.packageHead(manifest: manifest, entry: name, size: Int64(size), mode: mode)
                + entry + TarArchiveWriter.packageTail(afterEntryOf: Int64(size), signature: signature)
            var w = TarArchiveWriter()
            w.addFile("manifest.toml", manifest)
            w.addFile(name, entry, mode: mode)
            if let signature { w.addFile(PackageSignature.entryName, signature) }
            #expect(streamed == w.finished(), "\(name), \(size) bytes, signed: \(signed)")
            #expect(streamed.count % 512 == 0)

            // (A garbage image.tar would stop the scan at its own problems: read back the other.)
            guard name == "caisson" else { continue }
            let scan = PackageScanner().scan(MemoryByteSource(streamed))
            #expect(scan.entries.map(\.name) == ["manifest.toml", name] + (signed ? [PackageSignature.entryName] : []))
            #expect(scan.manifestBytes == manifest)
            #expect(scan.signatureBytes == signature)
            #expect(scan.entries.first { $0.name == name }?.size == Int64(size))
        }
    }
}
