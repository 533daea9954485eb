import CZlib

/// How `image.tar` is stored in a package. `docker load` accepts a gzip-compressed `docker save`
/// archive, and so does Caisson: the compression is told by the first bytes, never by a name.
public enum ImageCompression: String, Sendable, Equatable, Codable {
    case none
    case gzip
}

/// A gzip stream Caisson will not read, with its issue code.
public struct GzipError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        /// Not a valid gzip member: a bad header, bad deflate data, a wrong CRC or length.
        case corrupt
        /// The data ends before the gzip member does.
        case truncated
        /// Bytes that are not a gzip member follow the member.
        case trailingData
        /// A second gzip member follows the first (concatenated `.gz` files).
        case multipleMembers
        /// The stream inflates to far more than its size (a decompression bomb).
        case ratioExceeded
        /// Compressed, but not with gzip (bzip2, xz, zstd).
        case unsupported
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The `image.*` issue code for this failure.
    public var code: String {
        switch kind {
        case .corrupt: return "image.gzip_corrupt"
        case .truncated: return "image.gzip_truncated"
        case .trailingData: return "image.gzip_trailing_data"
        case .multipleMembers: return "image.gzip_multiple_members"
        case .ratioExceeded: return "image.gzip_ratio_exceeded"
        case .unsupported: return "image.unsupported_compression"
        }
    }

    public var description: String { message }
}

/// The bound on how much a gzip stream may inflate: at most `maxRatio` times the compressed bytes
/// read so far, plus `allowanceBytes` (so small archives, whose tar padding compresses to almost
/// nothing, are never flagged). Checked as the stream is read, so a bomb is stopped early.
public struct GzipLimits: Equatable, Sendable {
    public var maxRatio: Int64
    public var allowanceBytes: Int64

    public init(maxRatio: Int64 = 100, allowanceBytes: Int64 = 64 << 20) {
        self.maxRatio = max(1, maxRatio)
        self.allowanceBytes = max(0, allowanceBytes)
    }
}

enum GzipMagic {
    static func isGzip(_ b0: UInt8, _ b1: UInt8) -> Bool { b0 == 0x1F && b1 == 0x8B }

    /// bzip2 `BZh`, xz `FD 37 7A 58 5A 00`, zstd `28 B5 2F FD`: what `docker load` also reads.
    static func otherCompression(_ head: UnsafeRawBufferPointer) -> String? {
        if head.count >= 3, head[0] == 0x42, head[1] == 0x5A, head[2] == 0x68 { return "bzip2" }
        if head.count >= 6, head[0] == 0xFD, head[1] == 0x37, head[2] == 0x7A, head[3] == 0x58, head[4] == 0x5A, head[5] == 0 {
            return "xz"
        }
        if head.count >= 4, head[0] == 0x28, head[1] == 0xB5, head[2] == 0x2F, head[3] == 0xFD { return "zstd" }
        return nil
    }
}

/// One zlib stream (inflate or deflate) at a fixed address, as zlib requires (it keeps a pointer
/// back to it), ended when released.
final class ZStream {
    let z: UnsafeMutablePointer<z_stream>
    private let inflating: Bool

    init(inflating: Bool, level: Int32 = 6) throws(GzipError) {
        z = .allocate(capacity: 1)
        z.initialize(to: z_stream())
        self.inflating = inflating
        let rc = inflating ? caisson_inflate_init_gzip(z) : caisson_deflate_init_gzip(z, level)
        guard rc == Z_OK else {
            z.deallocate()
            throw GzipError(.corrupt, "zlib could not start (\(ZStream.describe(rc)))")
        }
    }

    deinit {
        if inflating { inflateEnd(z) } else { deflateEnd(z) }
        z.deinitialize(count: 1)
        z.deallocate()
    }

    /// zlib's own message for the last error, or the return code's name.
    func reason(_ rc: Int32) -> String {
        if let msg = z.pointee.msg { return String(cString: msg) }
        return ZStream.describe(rc)
    }

    static func describe(_ rc: Int32) -> String {
        switch rc {
        case Z_STREAM_ERROR: return "stream error"
        case Z_DATA_ERROR: return "invalid data"
        case Z_MEM_ERROR: return "out of memory"
        case Z_BUF_ERROR: return "no progress possible"
        case Z_VERSION_ERROR: return "zlib version mismatch"
        case Z_NEED_DICT: return "a preset dictionary is needed"
        default: return "zlib error \(rc)"
        }
    }
}

/// `image.tar` as `docker load` reads it: plain, or one gzip member, told by its first bytes.
///
/// Reading gives the tar stream; `compression` says which it was once the first read has been
/// made. A gzip stream is inflated as it is read, into the caller's memory (no copy of the
/// output), from a fixed input buffer, so memory stays flat whatever the size. What Caisson
/// refuses (`GzipError`, kept in `failure`): corrupt or truncated data, a second member or other
/// bytes after the member (which `docker load` reads differently or refuses), more output than
/// `GzipLimits` allows, and bzip2, xz or zstd.
///
/// The memory a read of `base` is given (the sniffed head, the input buffer) is not written
/// again until `base` is read again, as `HashingTeeSource` requires of its reader.
public final class ImageArchiveSource<Base: ByteSource>: ByteSource {
    public private(set) var base: Base
    public let limits: GzipLimits
    /// Known after the first read.
    public private(set) var compression: ImageCompression?
    /// Why the stream was refused, when it was.
    public private(set) var failure: GzipError?
    /// Bytes read from `base`.
    public private(set) var bytesIn: Int64 = 0
    /// Bytes handed out (the tar stream).
    public private(set) var bytesOut: Int64 = 0
    /// True once `read` returned 0 after a complete, checked stream.
    public private(set) var finished = false

    private static var headSize: Int { 512 }
    private static var inputSize: Int { 256 << 10 }
    private let head: UnsafeMutableRawBufferPointer
    private var headCount = 0
    private var headServed = 0
    private var input: UnsafeMutableRawBufferPointer?
    private var zstream: ZStream?
    private var baseEnded = false

    public init(_ base: Base, limits: GzipLimits = GzipLimits()) {
        self.base = base
        self.limits = limits
        head = .allocate(byteCount: Self.headSize, alignment: 16)
    }

    deinit {
        head.deallocate()
        input?.deallocate()
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if let failure { throw failure }
        guard buffer.count > 0 else { return 0 }
        if compression == nil { try sniff() }
        let n: Int
        switch compression {
        case .gzip?:
            n = try inflate(into: buffer)
        default:
            if headServed < headCount {
                n = min(buffer.count, headCount - headServed)
                buffer.baseAddress!.copyMemory(from: head.baseAddress! + headServed, byteCount: n)
                headServed += n
            } else {
                n = try base.read(into: buffer)
                bytesIn += Int64(n)
            }
        }
        bytesOut += Int64(n)
        if n == 0 { finished = true }
        return n
    }

    /// Reads the first bytes (at least two, unless the data is shorter) and decides.
    private func sniff() throws {
        while headCount < 6 && !baseEnded {
            let n = try base.read(into: UnsafeMutableRawBufferPointer(rebasing: head[headCount...]))
            if n == 0 { baseEnded = true }
            headCount += n
            bytesIn += Int64(n)
        }
        let sniffed = UnsafeRawBufferPointer(rebasing: head[0..<headCount])
        if headCount >= 2, GzipMagic.isGzip(head[0], head[1]) {
            compression = .gzip
            let zs: ZStream
            do { zs = try ZStream(inflating: true) } catch { throw fail(error) }
            zs.z.pointee.next_in = head.baseAddress!.assumingMemoryBound(to: Bytef.self)
            zs.z.pointee.avail_in = UInt32(headCount)
            zstream = zs
            headServed = headCount
        } else if let other = GzipMagic.otherCompression(sniffed) {
            compression = ImageCompression.none
            throw fail(GzipError(.unsupported,
                "image.tar is \(other)-compressed; Caisson reads it plain or gzip-compressed (docker save, or docker save | gzip)"))
        } else {
            compression = ImageCompression.none
        }
    }

    private func fail(_ error: GzipError) -> GzipError {
        failure = error
        return error
    }

    private func inflate(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let zs = zstream else { return 0 }
        let z = zs.z
        if finished { return 0 }
        let capacity = min(buffer.count, Int(UInt32.max))
        z.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
        z.pointee.avail_out = UInt32(capacity)
        while true {
            if z.pointee.avail_in == 0 && !baseEnded {
                try refill(z)
            }
            let before = z.pointee.avail_in
            let rc = CZlib.inflate(z, Z_NO_FLUSH)
            let produced = capacity - Int(z.pointee.avail_out)
            switch rc {
            case Z_STREAM_END:
                try checkNothingFollows(z)
                try checkRatio(adding: produced)
                if produced > 0 { return produced }
                finished = true
                return 0
            case Z_OK, Z_BUF_ERROR:
                if produced > 0 {
                    try checkRatio(adding: produced)
                    return produced
                }
                if z.pointee.avail_in == 0 && baseEnded {
                    throw fail(GzipError(.truncated,
                        "image.tar's gzip stream ends early: \(bytesIn) compressed bytes end inside the stream (a cut-off download or copy?)"))
                }
                if rc == Z_BUF_ERROR && z.pointee.avail_in > 0 && z.pointee.avail_in == before {
                    throw fail(GzipError(.corrupt, "image.tar's gzip stream cannot be inflated (\(zs.reason(rc)))"))
                }
            default:
                throw fail(GzipError(.corrupt,
                    "image.tar's gzip stream is corrupt after \(bytesIn - Int64(z.pointee.avail_in)) compressed bytes: \(zs.reason(rc))"))
            }
        }
    }

    private func refill(_ z: UnsafeMutablePointer<z_stream>) throws {
        if input == nil { input = .allocate(byteCount: Self.inputSize, alignment: 16) }
        let n = try base.read(into: input!)
        if n == 0 {
            baseEnded = true
            return
        }
        bytesIn += Int64(n)
        z.pointee.next_in = input!.baseAddress!.assumingMemoryBound(to: Bytef.self)
        z.pointee.avail_in = UInt32(n)
    }

    /// After the member's end (CRC and length checked by zlib): the data must end too.
    private func checkNothingFollows(_ z: UnsafeMutablePointer<z_stream>) throws {
        var first: [UInt8] = []
        if z.pointee.avail_in > 0 {
            let p = UnsafeRawPointer(z.pointee.next_in!)
            first = Array(UnsafeRawBufferPointer(start: p, count: min(2, Int(z.pointee.avail_in))))
        }
        while first.count < 2 && !baseEnded {
            let before = bytesIn
            try refill(z)
            if bytesIn > before {
                let p = UnsafeRawPointer(z.pointee.next_in!)
                first += UnsafeRawBufferPointer(start: p, count: min(2 - first.count, Int(z.pointee.avail_in)))
            }
        }
        guard !first.isEmpty else { return }
        let extra = "after the end of its gzip member"
        if first.count == 2, GzipMagic.isGzip(first[0], first[1]) {
            throw fail(GzipError(.multipleMembers,
                "image.tar holds a second gzip member \(extra) (concatenated .gz files); compress the docker save archive in one piece"))
        }
        throw fail(GzipError(.trailingData, "image.tar has bytes that are not gzip data \(extra)"))
    }

    private func checkRatio(adding produced: Int) throws {
        let out = bytesOut + Int64(produced)
        let (scaled, overflow) = bytesIn.multipliedReportingOverflow(by: limits.maxRatio)
        let allowed = overflow ? Int64.max : scaled.addingReportingOverflow(limits.allowanceBytes).partialValue
        if out > allowed && out > limits.allowanceBytes {
            throw fail(GzipError(.ratioExceeded,
                "image.tar's gzip stream inflates to more than \(limits.maxRatio) times its compressed size (\(out) bytes from \(bytesIn)): refused as a decompression bomb; ship such an image uncompressed"))
        }
    }
}

/// gzip compression (one member, as `gzip -n` writes it: no name, no time) and decompression of
/// whole streams, over `ByteSource`s and sinks, in flat memory.
public enum Gzip {
    /// Compresses everything `source` yields into `sink`; returns the compressed byte count.
    @discardableResult
    public static func compress<S: ByteSource>(_ source: inout S, level: Int32 = 6,
                                               into sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Int64 {
        let zs = try ZStream(inflating: false, level: level)
        let z = zs.z
        let chunk = 256 << 10
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 16)
        defer {
            input.deallocate()
            output.deallocate()
        }
        var written: Int64 = 0
        var atEnd = false
        while true {
            if z.pointee.avail_in == 0 && !atEnd {
                let n = try source.read(into: input)
                if n == 0 {
                    atEnd = true
                } else {
                    z.pointee.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    z.pointee.avail_in = UInt32(n)
                }
            }
            z.pointee.next_out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
            z.pointee.avail_out = UInt32(chunk)
            let rc = deflate(z, atEnd ? Z_FINISH : Z_NO_FLUSH)
            guard rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR else {
                throw GzipError(.corrupt, "gzip compression failed: \(zs.reason(rc))")
            }
            let n = chunk - Int(z.pointee.avail_out)
            if n > 0 {
                try sink(UnsafeRawBufferPointer(rebasing: output[0..<n]))
                written += Int64(n)
            }
            if rc == Z_STREAM_END { return written }
        }
    }

    /// The gzip compression of `bytes`.
    public static func compress(_ bytes: [UInt8], level: Int32 = 6) throws -> [UInt8] {
        var source = MemoryByteSource(bytes)
        var out: [UInt8] = []
        try compress(&source, level: level) { out.append(contentsOf: $0) }
        return out
    }

    /// The decompression of one gzip member, read as `ImageArchiveSource` reads image.tar (so
    /// bytes that are not compressed come back as they are; throws `GzipError` for what it refuses).
    public static func decompress(_ bytes: [UInt8], limits: GzipLimits = GzipLimits()) throws -> [UInt8] {
        let source = ImageArchiveSource(MemoryByteSource(bytes), limits: limits)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 16)
        defer { buffer.deallocate() }
        var out: [UInt8] = []
        while true {
            let n = try source.read(into: buffer)
            if n == 0 { return out }
            out.append(contentsOf: buffer[0..<n])
        }
    }
}
