import Foundation

/// A byte-exact tar writer for tests: ustar, GNU and pax headers, any type flag, and deliberate
/// corruption (bad checksum, lying size, raw fields, truncation). Deterministic: mtime, uid and
/// gid are 0 unless given.
///
/// ```swift
/// var tar = TarWriter(format: .pax)
/// tar.addFile("manifest.toml", Array("format_version = 1\n".utf8))
/// tar.addDirectory("blobs/")
/// tar.addSymlink("a/layer.tar", target: "../blobs/sha256/…")
/// tar.finish()
/// let bytes = tar.bytes
/// ```
struct TarWriter {
    /// How names longer than the ustar fields (and sizes over 8 GiB) are written.
    enum Format {
        /// POSIX ustar; long names use pax 'x' records when prefix+name cannot hold them.
        case ustar
        /// GNU tar's default: magic "ustar  ", long names as 'L'/'K' entries, base-256 sizes.
        case gnu
        /// POSIX pax: ustar headers plus 'x' records for long names and large sizes.
        case pax
    }

    /// Per-entry header details and corruptions.
    struct Options {
        var mode: UInt32 = 0o644
        var uid: Int = 0
        var gid: Int = 0
        var mtime: Int = 0
        var linkName = ""
        /// The size written in the header instead of the data's real size (a lying size).
        var declaredSize: Int64?
        /// Raw 12-byte size field (e.g. garbage or base-256), written as is.
        var rawSizeField: [UInt8]?
        /// Raw name bytes (e.g. invalid UTF-8) for the 100-byte name field.
        var rawName: [UInt8]?
        /// Add this to the computed checksum (non-zero = a bad checksum).
        var checksumDelta = 0
        /// Extra pax records written in an 'x' header before this entry.
        var paxRecords: [(String, [UInt8])] = []

        init(mode: UInt32 = 0o644, linkName: String = "", declaredSize: Int64? = nil,
             rawSizeField: [UInt8]? = nil, rawName: [UInt8]? = nil, checksumDelta: Int = 0,
             paxRecords: [(String, [UInt8])] = []) {
            self.mode = mode
            self.linkName = linkName
            self.declaredSize = declaredSize
            self.rawSizeField = rawSizeField
            self.rawName = rawName
            self.checksumDelta = checksumDelta
            self.paxRecords = paxRecords
        }
    }

    static let blockSize = 512
    static let ustarMagic = Array("ustar".utf8) + [0] + Array("00".utf8)
    static let gnuMagic = Array("ustar  ".utf8) + [0]
    static let root = Array("root".utf8)

    var format: Format
    private(set) var bytes: [UInt8] = []

    init(format: Format = .ustar) { self.format = format }

    // MARK: - Entries

    mutating func addFile(_ name: String, _ data: [UInt8], options: Options = Options()) {
        addEntry(name, type: UInt8(ascii: "0"), data: data, options: options)
    }

    mutating func addFile(_ name: String, _ text: String, options: Options = Options()) {
        addFile(name, Array(text.utf8), options: options)
    }

    mutating func addDirectory(_ name: String, options: Options = Options(mode: 0o755)) {
        addEntry(name.hasSuffix("/") ? name : name + "/", type: UInt8(ascii: "5"), data: [], options: options)
    }

    mutating func addSymlink(_ name: String, target: String) {
        addEntry(name, type: UInt8(ascii: "2"), data: [], options: Options(mode: 0o777, linkName: target))
    }

    mutating func addHardLink(_ name: String, target: String) {
        addEntry(name, type: UInt8(ascii: "1"), data: [], options: Options(linkName: target))
    }

    /// Any entry: `type` is the raw type flag ('0', '5', 'S', 'g', '3', ...).
    mutating func addEntry(_ name: String, type: UInt8, data: [UInt8], options: Options = Options()) {
        var nameField = Array(name.utf8)
        var prefixField: [UInt8] = []
        var linkField = Array(options.linkName.utf8)
        var pax = options.paxRecords
        let size = Int64(data.count)

        if options.rawName == nil, nameField.count > 100 {
            if format != .gnu, let (prefix, rest) = TarWriter.splitUstar(nameField) {
                prefixField = prefix
                nameField = rest
            } else if format == .gnu {
                addLongNameEntry(UInt8(ascii: "L"), nameField)
                nameField = Array(nameField.prefix(100))
            } else {
                pax.append(("path", nameField))
                nameField = Array(nameField.prefix(100))
            }
        }
        if linkField.count > 100 {
            if format == .gnu {
                addLongNameEntry(UInt8(ascii: "K"), linkField)
            } else {
                pax.append(("linkpath", linkField))
            }
            linkField = Array(linkField.prefix(100))
        }
        let headerSize = options.declaredSize ?? size
        var sizeField = options.rawSizeField
        if sizeField == nil, headerSize > 0o77777777777 {
            if format == .gnu {
                sizeField = TarWriter.base256(headerSize, width: 12)
            } else {
                pax.append(("size", Array(String(headerSize).utf8)))
                sizeField = TarWriter.octal(0, width: 12)
            }
        }
        if !pax.isEmpty { addPaxHeader(pax) }

        appendHeader(name: options.rawName ?? nameField, prefix: prefixField, type: type, size: headerSize,
                     sizeField: sizeField, linkName: linkField, options: options)
        appendData(data)
    }

    /// A pax extended header ('x', or 'g' when `global`) with the given records.
    mutating func addPaxHeader(_ records: [(String, [UInt8])], global: Bool = false) {
        addRawPaxHeader(TarWriter.paxPayload(records), global: global)
    }

    /// A pax header with a raw payload (to write malformed records).
    mutating func addRawPaxHeader(_ payload: [UInt8], global: Bool = false, declaredSize: Int64? = nil) {
        let name = Array((global ? "pax_global_header" : "PaxHeaders/entry").utf8)
        appendHeader(name: name, prefix: [], type: UInt8(ascii: global ? "g" : "x"),
                     size: declaredSize ?? Int64(payload.count), sizeField: nil, linkName: [], options: Options())
        appendData(payload)
    }

    /// A GNU 'L' (long name) or 'K' (long link) entry; the payload gets its trailing NUL.
    mutating func addLongNameEntry(_ type: UInt8, _ name: [UInt8], terminate: Bool = true) {
        let payload = terminate ? name + [0] : name
        let saved = format
        format = .gnu
        appendHeader(name: Array("././@LongLink".utf8), prefix: [], type: type, size: Int64(payload.count),
                     sizeField: nil, linkName: [], options: Options())
        format = saved
        appendData(payload)
    }

    /// Raw bytes appended as they are.
    mutating func appendRaw(_ raw: [UInt8]) { bytes += raw }

    /// The end-of-archive marker (`zeroBlocks` zero blocks), optionally padded to a 10 KiB
    /// record as GNU tar does.
    mutating func finish(zeroBlocks: Int = 2, padToRecord: Bool = false) {
        bytes += [UInt8](repeating: 0, count: zeroBlocks * TarWriter.blockSize)
        if padToRecord {
            let record = 20 * TarWriter.blockSize
            let rem = bytes.count % record
            if rem != 0 { bytes += [UInt8](repeating: 0, count: record - rem) }
        }
    }

    /// The archive cut to its first `count` bytes.
    func truncated(to count: Int) -> [UInt8] { Array(bytes.prefix(count)) }

    // MARK: - Encoding

    private mutating func appendData(_ data: [UInt8]) {
        bytes += data
        let rem = data.count % TarWriter.blockSize
        if rem != 0 { bytes += [UInt8](repeating: 0, count: TarWriter.blockSize - rem) }
    }

    private mutating func appendHeader(name: [UInt8], prefix: [UInt8], type: UInt8, size: Int64,
                                       sizeField: [UInt8]?, linkName: [UInt8], options: Options) {
        let mode = TarWriter.octal(Int64(options.mode), width: 8)
        let uid = TarWriter.octal(Int64(options.uid), width: 8)
        let gid = TarWriter.octal(Int64(options.gid), width: 8)
        let sizeBytes = sizeField ?? (size > 0o77777777777 ? TarWriter.base256(size, width: 12) : TarWriter.octal(size, width: 12))
        let mtime = TarWriter.octal(Int64(options.mtime), width: 12)
        let gnu = format == .gnu
        let start = bytes.count
        bytes += [UInt8](repeating: 0, count: TarWriter.blockSize)
        bytes.withUnsafeMutableBufferPointer { all in
            let h = UnsafeMutableBufferPointer(rebasing: all[start..<(start + TarWriter.blockSize)])
            func put(_ field: [UInt8], at offset: Int, width: Int) {
                for i in 0..<min(field.count, width) { h[offset + i] = field[i] }
            }
            put(name, at: 0, width: 100)
            put(mode, at: 100, width: 8)
            put(uid, at: 108, width: 8)
            put(gid, at: 116, width: 8)
            put(sizeBytes, at: 124, width: 12)
            put(mtime, at: 136, width: 12)
            h[156] = type
            put(linkName, at: 157, width: 100)
            put(gnu ? TarWriter.gnuMagic : TarWriter.ustarMagic, at: 257, width: 8)
            if !gnu { put(prefix, at: 345, width: 155) }
            put(TarWriter.root, at: 265, width: 32)
            put(TarWriter.root, at: 297, width: 32)
            // Checksum: sum with the field as spaces, written as 6 octal digits, NUL, space.
            for i in 148..<156 { h[i] = 0x20 }
            var sum = options.checksumDelta
            for i in 0..<TarWriter.blockSize { sum += Int(h[i]) }
            put(TarWriter.octal(Int64(sum), width: 7) + [0x20], at: 148, width: 8)
        }
    }

    /// `value` as zero-padded octal digits followed by a NUL, `width` bytes in all.
    static func octal(_ value: Int64, width: Int) -> [UInt8] {
        var out = [UInt8](repeating: UInt8(ascii: "0"), count: width)
        out[width - 1] = 0
        var v = value
        var i = width - 2
        while v > 0 && i >= 0 {
            out[i] = UInt8(ascii: "0") + UInt8(v & 7)
            v >>= 3
            i -= 1
        }
        return out
    }

    /// GNU base-256 encoding (high bit set, big-endian two's complement).
    static func base256(_ value: Int64, width: Int) -> [UInt8] {
        var out = [UInt8](repeating: value < 0 ? 0xff : 0, count: width)
        var v = value
        for i in stride(from: width - 1, through: 0, by: -1) {
            out[i] = UInt8(truncatingIfNeeded: v)
            v >>= 8
        }
        out[0] |= 0x80
        return out
    }

    /// `"%d %s=%s\n"` records, the length counting itself.
    static func paxPayload(_ records: [(String, [UInt8])]) -> [UInt8] {
        var out: [UInt8] = []
        for (key, value) in records {
            let body = Array(" \(key)=".utf8) + value + [0x0a]
            var length = body.count + 1
            while String(length).utf8.count + body.count != length { length = String(length).utf8.count + body.count }
            out += Array(String(length).utf8) + body
        }
        return out
    }

    /// Splits a long name into ustar prefix (≤155) and name (≤100) at a '/'.
    static func splitUstar(_ name: [UInt8]) -> ([UInt8], [UInt8])? {
        guard name.count <= 256 else { return nil }
        for i in stride(from: min(name.count - 1, 155), through: 1, by: -1) where name[i] == UInt8(ascii: "/") {
            let rest = Array(name[(i + 1)...])
            if rest.count <= 100, !rest.isEmpty { return (Array(name[..<i]), rest) }
        }
        return nil
    }
}

/// Builds a `.edgepkg` package (an uncompressed tar of `manifest.toml`, `image.tar` and extras)
/// in memory or in a file, the way the reference recipe `tar -cf` lays it out.
struct EdgePkgBuilder {
    var manifest: [UInt8]? = EdgePkgBuilder.manifestTOML()
    var image: [UInt8]?
    /// Other root files, written after manifest and image.
    var extras: [(String, [UInt8])] = []
    /// Write image.tar before manifest.toml.
    var imageFirst = false
    var format: TarWriter.Format = .gnu

    init(manifest: [UInt8]? = EdgePkgBuilder.manifestTOML(), image: [UInt8]?,
         extras: [(String, [UInt8])] = [], imageFirst: Bool = false, format: TarWriter.Format = .gnu) {
        self.manifest = manifest
        self.image = image
        self.extras = extras
        self.imageFirst = imageFirst
        self.format = format
    }

    /// The package bytes.
    func build() -> [UInt8] {
        var tar = TarWriter(format: format)
        let manifestEntry = manifest.map { ("manifest.toml", $0) }
        let imageEntry = image.map { ("image.tar", $0) }
        let ordered = imageFirst ? [imageEntry, manifestEntry] : [manifestEntry, imageEntry]
        for case let (name, data)? in ordered { tar.addFile(name, data) }
        for (name, data) in extras { tar.addFile(name, data) }
        tar.finish(padToRecord: true)
        return tar.bytes
    }

    /// Writes the package to `path`.
    func write(to path: String) throws {
        try Data(build()).write(to: URL(fileURLWithPath: path))
    }

    /// A valid manifest (FORMATS §2) for `reference`.
    static func manifestTOML(service: String = "frontend", version: String = "1.2.3",
                             reference: String = "example/app:1.0", platform: String = "linux/amd64") -> [UInt8] {
        Array("""
        format_version = 1
        package_type = "service"
        package_version = "\(version)"
        created_at = "2026-03-16T18:30:00Z"
        [target]
        service = "\(service)"
        service_revision = "\(service)-v1"
        platform = "\(platform)"
        [image]
        reference = "\(reference)"

        """.utf8)
    }
}
