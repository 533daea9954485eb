/// Writes a thin copy of a `docker save` archive (issue 16): every entry as it is, byte for byte
/// (headers, pax records, padding), except the layer files a device already holds and the links
/// that lead to them. The `docker save` layout is otherwise kept: `manifest.json`, the config,
/// `repositories`, `index.json` and the folders stay, so `docker load` reads it as a normal archive
/// and skips the absent layers because it finds their chains in its layer store first.
public enum ThinArchive {
    public struct Summary: Sendable, Equatable {
        public var keptEntries = 0
        public var omittedEntries = 0
        /// Bytes written (the thin archive's size).
        public var bytes: Int64 = 0
        /// Bytes of the input left out.
        public var omittedBytes: Int64 = 0
    }

    /// Copies the archive at `path` into `sink`, leaving out the regular files named in `omit`
    /// (archive paths as `ImageFacts.layerFiles` gives them) and the links that resolve to them.
    /// Reads the input twice (its entries, then the kept byte ranges); memory stays flat.
    public static func write(from path: String, omitting omit: Set<String>,
                             sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Summary {
        struct Span { var start: Int64; var end: Int64; var omitted: Bool }
        var spans: [Span] = []
        do {
            let reader = TarReader(try FileByteSource(path: path))
            while let entry = try reader.next() {
                let padded = entry.size + (512 - entry.size % 512) % 512
                let end = entry.dataOffset + (entry.type == .regular || entry.type == .contiguous ? padded : 0)
                var omitted = false
                switch entry.type {
                case .regular, .contiguous:
                    omitted = ImageInspector.cleanPath(entry.name).map(omit.contains) ?? false
                case .symbolicLink:
                    let name = ImageInspector.cleanPath(entry.name) ?? entry.name
                    omitted = ImageInspector.resolveLinkTarget(entry.linkName, from: name).map(omit.contains) ?? false
                case .hardLink:
                    omitted = ImageInspector.cleanPath(entry.linkName).map(omit.contains) ?? false
                default:
                    break
                }
                // An entry ends where the next one starts (whatever its type carried).
                if !spans.isEmpty { spans[spans.count - 1].end = entry.headerOffset }
                spans.append(Span(start: entry.headerOffset, end: end, omitted: omitted))
            }
        } catch let e as TarError {
            throw CaissonError("build.invalid_image", "the image tarball cannot be read as a tar archive: \(e.message)")
        }
        var summary = Summary()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        for span in spans {
            if span.omitted {
                summary.omittedEntries += 1
                summary.omittedBytes += span.end - span.start
                continue
            }
            summary.keptEntries += 1
            guard span.end > span.start else { continue }
            let source = try FileByteSource(path: path, offset: span.start, length: span.end - span.start)
            var copied: Int64 = 0
            while true {
                let n = try source.read(into: buffer)
                if n == 0 { break }
                try sink(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                copied += Int64(n)
            }
            guard copied == span.end - span.start else {
                throw CaissonError("build.image_changed", "the image tarball changed while it was copied")
            }
            summary.bytes += copied
        }
        let end = [UInt8](repeating: 0, count: 1024)
        try end.withUnsafeBytes { try sink($0) }
        summary.bytes += 1024
        return summary
    }
}
