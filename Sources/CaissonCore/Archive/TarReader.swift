/// A streaming pull reader of tar archives (ustar, pax, GNU; V7 headers are read too).
///
/// ```swift
/// let reader = TarReader(try FileByteSource(path: path))
/// while let entry = try reader.next() {
///     while try reader.readBodyChunk({ chunk in sha.update(chunk) }) > 0 {}
/// }
/// ```
/// - `next()` returns the next entry header; any unread body of the previous entry is skipped
///   (with `ByteSource.skip` when the source can, else read and discarded).
/// - Bodies are read with `readBody(into:)` or, without copying, `readBodyChunk(_:)`; both return
///   0 at the end of the body.
/// - pax extended headers (`path`, `linkpath`, `size`, `GNU.sparse.*`) and GNU long names ('L'/'K')
///   are applied to the entry that follows; their payloads are capped by
///   `Options.maxExtendedHeaderSize` and read incrementally. A pax global header ('g') is returned
///   as an entry of type `.paxGlobalHeader`.
/// - Numeric fields may be octal or base-256. Header checksums are verified (signed or unsigned).
/// - The archive ends at two zero blocks, at one zero block followed by the end of the data, or
///   at the end of the data where a header would start (no end marker at all: Go's archive/tar,
///   which `docker load` uses, and the Rust tool's tar crate accept that too; an empty input is an
///   archive without entries). With `Options.endAtFirstZeroBlock`, one zero block ends the archive
///   whatever follows it (the Rust tool's reading of a package). The end of the data inside a
///   header, an extension or a body is a `.truncated` error. Trailing bytes after the end marker
///   are not read (see `drainSource()`).
/// - Errors are `TarError`s and are sticky, except `.invalidName`, after which `next()` goes on.
///
/// Memory: one buffer of `Options.bufferSize` bytes plus at most one extension payload. The reader
/// never moves data inside its buffer: the only write into it is `source.read(into:)` over the
/// whole buffer, once every byte handed out before has been consumed. A source may therefore keep
/// reading the memory of its previous `read(into:)` (e.g. on a hashing thread) until it is called
/// again (`HashingTeeSource` relies on this).
public final class TarReader<Source: ByteSource> {
    public struct Options: Sendable {
        /// Size of the read buffer (and of each read from the source).
        public var bufferSize: Int
        /// Largest pax extended header or GNU long-name payload accepted.
        public var maxExtendedHeaderSize: Int
        /// `readBody(into:)` may read straight from the source into the caller's memory when the
        /// buffer is empty, avoiding a copy. Turn off for sources that keep reading the memory
        /// they were given (such as `HashingTeeSource`).
        public var directReads: Bool
        /// One zero block ends the archive, whatever follows it (not read). Off: the block after
        /// it must be zero too, or the end of the data, as Go's archive/tar (`docker load`)
        /// requires; on: as the Rust tool's tar crate reads a package.
        public var endAtFirstZeroBlock: Bool

        public init(bufferSize: Int = 1 << 20, maxExtendedHeaderSize: Int = 1 << 20, directReads: Bool = true,
                    endAtFirstZeroBlock: Bool = false) {
            self.bufferSize = max(TarFormat.blockSize, bufferSize)
            self.maxExtendedHeaderSize = max(0, maxExtendedHeaderSize)
            self.directReads = directReads
            self.endAtFirstZeroBlock = endAtFirstZeroBlock
        }
    }

    private enum State {
        case active
        case finished
        case failed(TarError)
    }

    /// The underlying source (for callers that wrap and later inspect it).
    public private(set) var source: Source
    public let options: Options
    /// Archive offset of the next byte the reader will consume.
    public private(set) var position: Int64 = 0
    /// The entry last returned by `next()`.
    public private(set) var currentEntry: TarEntry?

    private let buffer: UnsafeMutableRawBufferPointer
    private let staging: UnsafeMutableRawBufferPointer
    private var pos = 0
    private var end = 0
    private var bodyRemaining: Int64 = 0
    private var paddingRemaining: Int64 = 0
    private var state = State.active
    /// Whether the reader is inside an entry's body (or its padding), for error attribution.
    private var inBody = false

    public init(_ source: Source, options: Options = Options()) {
        self.source = source
        self.options = options
        self.buffer = .allocate(byteCount: options.bufferSize, alignment: 4096)
        self.staging = .allocate(byteCount: TarFormat.blockSize, alignment: 64)
    }

    deinit {
        buffer.deallocate()
        staging.deallocate()
    }

    /// Bytes of the current entry's body not read yet.
    public var remainingBodyBytes: Int64 { bodyRemaining }

    // MARK: - Entries

    /// Returns the next entry, or `nil` at the end of the archive.
    public func next() throws -> TarEntry? {
        switch state {
        case .failed(let error): throw error
        case .finished: return nil
        case .active: break
        }
        if bodyRemaining + paddingRemaining > 0 {
            let name = TarFormat.quoted(currentEntry?.name ?? "?")
            try skipBytes(bodyRemaining + paddingRemaining, truncated: "entry \(name) is truncated")
            bodyRemaining = 0
            paddingRemaining = 0
        }
        inBody = false
        currentEntry = nil

        var ext = ExtendedAttributes()
        var sawExtension = false
        let entryOffset = position
        while true {
            let headerOffset = position
            guard let block = try readBlock() else {
                if sawExtension {
                    throw fail(.truncated, "archive ends after an extended header, at offset \(headerOffset)", headerOffset)
                }
                // The data ends where a header would start: the end, without an end marker.
                state = .finished
                return nil
            }
            if TarFormat.isZeroBlock(block) {
                if sawExtension {
                    throw fail(.invalidHeader, "extended header at offset \(headerOffset) is followed by the end-of-archive marker", headerOffset)
                }
                // The second zero block may be missing or cut short (tolerated as the end).
                let secondOffset = position
                if !options.endAtFirstZeroBlock, try !restOfBlockIsZero() {
                    throw fail(.invalidHeader, "data follows a single zero block at offset \(secondOffset)", secondOffset)
                }
                state = .finished
                return nil
            }
            let header = try parseHeader(block, at: headerOffset)

            switch header.flag {
            case UInt8(ascii: "x"), UInt8(ascii: "X"):
                let payload = try readExtensionPayload(size: header.size, what: "pax extended header", at: headerOffset)
                try ext.applyPax(payload, offset: headerOffset, reader: self)
                sawExtension = true
                continue
            case UInt8(ascii: "L"):
                ext.longName = TarFormat.trimTrailingNULs(try readExtensionPayload(size: header.size, what: "GNU long name", at: headerOffset))
                sawExtension = true
                continue
            case UInt8(ascii: "K"):
                ext.longLink = TarFormat.trimTrailingNULs(try readExtensionPayload(size: header.size, what: "GNU long link name", at: headerOffset))
                sawExtension = true
                continue
            default:
                break
            }

            let nameBytes = ext.path ?? ext.longName ?? header.name
            let linkBytes = ext.linkPath ?? ext.longLink ?? header.linkName
            var type = TarEntryType(flag: header.flag)
            if ext.sparse, type == .regular { type = .sparse }
            if header.flag == 0, nameBytes.last == UInt8(ascii: "/") { type = .directory }
            let size = ext.size ?? header.size
            let dataSize: Int64 = type.isHeaderOnly ? 0 : size
            guard dataSize <= Int64.max - Int64(TarFormat.blockSize) - position else {
                throw fail(.invalidSize, "entry at offset \(headerOffset) has a size that does not fit (\(size))", headerOffset)
            }
            bodyRemaining = dataSize
            paddingRemaining = TarFormat.padding(dataSize)

            let name = try decodeName(nameBytes, what: "entry name", at: headerOffset)
            let linkName = try decodeName(linkBytes, what: "link name of \(TarFormat.quoted(name))", at: headerOffset)
            let entry = TarEntry(name: name, type: type, typeFlag: header.flag, size: dataSize,
                                 mode: header.mode, linkName: linkName,
                                 headerOffset: entryOffset, dataOffset: position)
            currentEntry = entry
            inBody = true
            return entry
        }
    }

    // MARK: - Bodies

    /// Copies up to `destination.count` bytes of the current body; returns 0 at its end.
    public func readBody(into destination: UnsafeMutableRawBufferPointer) throws -> Int {
        if case .failed(let error) = state { throw error }
        guard bodyRemaining > 0, let dest = destination.baseAddress, destination.count > 0 else { return 0 }
        let want = Int(min(Int64(destination.count), bodyRemaining))
        if pos < end {
            let n = min(want, end - pos)
            dest.copyMemory(from: buffer.baseAddress! + pos, byteCount: n)
            consume(n)
            bodyRemaining -= Int64(n)
            return n
        }
        if options.directReads && want >= TarFormat.blockSize * 8 {
            let n = try sourceRead(into: UnsafeMutableRawBufferPointer(start: dest, count: want))
            if n == 0 { throw bodyTruncated() }
            position += Int64(n)
            bodyRemaining -= Int64(n)
            return n
        }
        if try refill() == 0 { throw bodyTruncated() }
        return try readBody(into: destination)
    }

    /// Hands the next piece of the current body to `body` without copying (the memory is valid
    /// only during the call); returns its length, or 0 at the end of the body.
    @discardableResult
    public func readBodyChunk(maxLength: Int = .max, _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        if case .failed(let error) = state { throw error }
        guard bodyRemaining > 0, maxLength > 0 else { return 0 }
        if pos == end, try refill() == 0 { throw bodyTruncated() }
        let n = Int(min(Int64(min(end - pos, maxLength)), bodyRemaining))
        let chunk = UnsafeRawBufferPointer(start: buffer.baseAddress! + pos, count: n)
        consume(n)
        bodyRemaining -= Int64(n)
        try body(chunk)
        return n
    }

    /// Reads the rest of the current body into an array, refusing more than `limit` bytes.
    /// Returns `nil` (reading nothing) when the body is larger than `limit`.
    public func readWholeBody(limit: Int) throws -> [UInt8]? {
        guard bodyRemaining <= Int64(limit) else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(Int(bodyRemaining))
        while try readBodyChunk({ out.append(contentsOf: $0) }) > 0 {}
        return out
    }

    /// A `ByteSource` over the rest of the current entry's body (for nesting a reader inside
    /// an entry, or streaming it elsewhere). It ends with the body.
    public func bodySource() -> TarBodySource<Source> { TarBodySource(reader: self) }

    /// Reads and discards everything left in the source (e.g. the record padding after the end
    /// marker), so that a wrapping source sees every byte. Errors are thrown as `TarError`.
    public func drainSource() throws {
        if case .failed(let error) = state { throw error }
        consume(end - pos)
        while try refill() > 0 { consume(end - pos) }
    }

    // MARK: - Buffer

    private func consume(_ n: Int) {
        pos += n
        position += Int64(n)
    }

    /// Refills the (fully consumed) buffer; returns the number of bytes read, 0 at the end.
    private func refill() throws -> Int {
        let n = try sourceRead(into: buffer)
        pos = 0
        end = n
        return n
    }

    private func sourceRead(into memory: UnsafeMutableRawBufferPointer) throws -> Int {
        do {
            let n = try source.read(into: memory)
            guard n >= 0 && n <= memory.count else {
                throw fail(.readFailed, "byte source returned an invalid count \(n)", position)
            }
            return n
        } catch let error as TarError {
            throw error
        } catch {
            throw fail(.readFailed, "read failed at offset \(position): \(error)", position)
        }
    }

    /// Returns the next 512-byte block (in place in the buffer when possible), `nil` at a clean
    /// end of the data, or throws `.truncated` for a partial block.
    private func readBlock() throws -> UnsafeRawBufferPointer? {
        let size = TarFormat.blockSize
        if end - pos >= size {
            let block = UnsafeRawBufferPointer(start: buffer.baseAddress! + pos, count: size)
            consume(size)
            return block
        }
        let start = position
        var have = 0
        while have < size {
            if pos == end, try refill() == 0 { break }
            let n = min(size - have, end - pos)
            (staging.baseAddress! + have).copyMemory(from: buffer.baseAddress! + pos, byteCount: n)
            have += n
            consume(n)
        }
        if have == 0 { return nil }
        if have < size {
            throw fail(.truncated, "archive ends inside a header block at offset \(start)", start)
        }
        return UnsafeRawBufferPointer(staging)
    }

    /// Reads up to one block and tells whether everything read (possibly nothing) is zero.
    private func restOfBlockIsZero() throws -> Bool {
        var left = TarFormat.blockSize
        while left > 0 {
            if pos == end, try refill() == 0 { return true }
            let n = min(left, end - pos)
            let bytes = UnsafeRawBufferPointer(start: buffer.baseAddress! + pos, count: n)
            if bytes.contains(where: { $0 != 0 }) { return false }
            consume(n)
            left -= n
        }
        return true
    }

    private func skipBytes(_ count: Int64, truncated message: @autoclosure () -> String) throws {
        var left = count
        let inBuffer = Int(min(Int64(end - pos), left))
        consume(inBuffer)
        left -= Int64(inBuffer)
        while left > 0 {
            if left > Int64(buffer.count) {
                let skipped: Int64?
                do { skipped = try source.skip(left) } catch {
                    throw fail(.readFailed, "read failed at offset \(position): \(error)", position)
                }
                if let skipped {
                    position += skipped
                    left -= skipped
                    if skipped == 0 { throw fail(.truncated, message(), position) }
                    continue
                }
            }
            if try refill() == 0 { throw fail(.truncated, message(), position) }
            let n = Int(min(Int64(end), left))
            consume(n)
            left -= Int64(n)
        }
    }

    private func readExtensionPayload(size: Int64, what: String, at offset: Int64) throws -> [UInt8] {
        guard size <= Int64(options.maxExtendedHeaderSize) else {
            throw fail(.extendedHeaderTooLarge,
                       "\(what) at offset \(offset) is \(size) bytes, more than the \(options.maxExtendedHeaderSize) allowed", offset)
        }
        var out = [UInt8]()
        var left = Int(size)
        while left > 0 {
            if pos == end, try refill() == 0 {
                throw fail(.truncated, "archive ends inside the \(what) at offset \(offset)", offset)
            }
            let n = min(left, end - pos)
            out.append(contentsOf: UnsafeRawBufferPointer(start: buffer.baseAddress! + pos, count: n))
            consume(n)
            left -= n
        }
        try skipBytes(TarFormat.padding(size), truncated: "archive ends inside the \(what) at offset \(offset)")
        return out
    }

    private func bodyTruncated() -> TarError {
        let name = TarFormat.quoted(currentEntry?.name ?? "?")
        return fail(.truncated, "entry \(name) is truncated: the archive ends \(bodyRemaining) bytes before its end", position)
    }

    fileprivate func fail(_ kind: TarError.Kind, _ message: String, _ offset: Int64) -> TarError {
        var error = TarError(kind, message, offset: offset)
        if inBody { error.entryName = currentEntry?.name }
        state = .failed(error)
        return error
    }

    // MARK: - Headers

    private struct Header {
        var flag: UInt8
        var size: Int64
        var mode: UInt32
        var name: [UInt8]
        var linkName: [UInt8]
    }

    private func parseHeader(_ block: UnsafeRawBufferPointer, at offset: Int64) throws -> Header {
        guard let stored = TarFormat.parseNumber(block, TarFormat.checksum), stored >= 0 else {
            throw fail(.badChecksum, "header at offset \(offset) has no valid checksum (not a tar archive, or corrupt)", offset)
        }
        let (unsigned, signed) = TarFormat.checksums(block)
        guard stored == unsigned || stored == signed else {
            throw fail(.badChecksum, "header at offset \(offset) has a bad checksum (stored \(stored), computed \(unsigned))", offset)
        }
        guard let size = TarFormat.parseNumber(block, TarFormat.size) else {
            throw fail(.invalidSize, "header at offset \(offset) has a size field that is not a number", offset)
        }
        guard size >= 0 else {
            throw fail(.invalidSize, "header at offset \(offset) has a negative size (\(size))", offset)
        }
        guard let mode = TarFormat.parseNumber(block, TarFormat.mode) else {
            throw fail(.invalidHeader, "header at offset \(offset) has a mode field that is not a number", offset)
        }
        var name = TarFormat.cString(block, TarFormat.name)
        if TarFormat.isPOSIXUstar(block) {
            let prefix = TarFormat.cString(block, TarFormat.prefix)
            if !prefix.isEmpty { name = prefix + [UInt8(ascii: "/")] + name }
        }
        return Header(flag: block[TarFormat.typeFlag], size: size,
                      mode: UInt32(truncatingIfNeeded: mode), name: name,
                      linkName: TarFormat.cString(block, TarFormat.linkName))
    }

    private func decodeName(_ bytes: [UInt8], what: String, at offset: Int64) throws -> String {
        let lossy = String(decoding: bytes, as: UTF8.self)
        if bytes.contains(0) {
            throw TarError(.invalidName, "\(what) \(TarFormat.quoted(lossy)) at offset \(offset) contains a NUL byte",
                           offset: offset, name: lossy)
        }
        guard let name = String(validating: bytes, as: UTF8.self) else {
            throw TarError(.invalidName, "\(what) \(TarFormat.quoted(lossy)) at offset \(offset) is not valid UTF-8",
                           offset: offset, name: lossy)
        }
        return name
    }

    // MARK: - pax

    private struct ExtendedAttributes {
        var path: [UInt8]?
        var linkPath: [UInt8]?
        var size: Int64?
        var sparse = false
        var longName: [UInt8]?
        var longLink: [UInt8]?

        /// Parses `"%d %s=%s\n"` records. An empty value removes the keyword.
        mutating func applyPax(_ payload: [UInt8], offset: Int64, reader: TarReader) throws {
            var i = 0
            while i < payload.count {
                // Trailing NUL padding after the last record is tolerated.
                if payload[i...].allSatisfy({ $0 == 0 }) { return }
                var length = 0
                var j = i
                while j < payload.count, payload[j] >= UInt8(ascii: "0"), payload[j] <= UInt8(ascii: "9") {
                    length = length * 10 + Int(payload[j] - UInt8(ascii: "0"))
                    j += 1
                    if length > payload.count { break }
                }
                guard j > i, j < payload.count, payload[j] == UInt8(ascii: " "),
                      length > j - i + 1, i + length <= payload.count,
                      payload[i + length - 1] == UInt8(ascii: "\n") else {
                    throw reader.fail(.invalidExtendedHeader, "pax extended header at offset \(offset) has a malformed record", offset)
                }
                let record = payload[(j + 1)..<(i + length - 1)]
                guard let eq = record.firstIndex(of: UInt8(ascii: "=")), eq > record.startIndex else {
                    throw reader.fail(.invalidExtendedHeader, "pax extended header at offset \(offset) has a record without a keyword", offset)
                }
                let key = String(decoding: record[record.startIndex..<eq], as: UTF8.self)
                let value = Array(record[(eq + 1)...])
                switch key {
                case "path": path = value.isEmpty ? nil : value
                case "linkpath": linkPath = value.isEmpty ? nil : value
                case "size":
                    if value.isEmpty { size = nil; break }
                    guard let parsed = TarFormat.parseDecimal(value) else {
                        throw reader.fail(.invalidSize, "pax extended header at offset \(offset) has an invalid size \(TarFormat.quoted(String(decoding: value, as: UTF8.self)))", offset)
                    }
                    size = parsed
                default:
                    if key.hasPrefix("GNU.sparse.") { sparse = true }
                }
                i += length
            }
        }
    }
}

/// A `ByteSource` over the rest of the current entry's body of a `TarReader`. Reading it
/// advances the reader. Errors of the reader are kept in `failure` (and rethrown).
public struct TarBodySource<Outer: ByteSource>: ByteSource {
    public let reader: TarReader<Outer>
    /// The first error of the underlying reader, if any.
    public private(set) var failure: TarError?

    public init(reader: TarReader<Outer>) { self.reader = reader }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        do {
            return try reader.readBody(into: buffer)
        } catch let error as TarError {
            failure = failure ?? error
            throw error
        }
    }
}

/// Constants and pure helpers of the tar header layout.
public enum TarFormat {
    public static let blockSize = 512
    static let name = 0..<100
    static let mode = 100..<108
    static let size = 124..<136
    static let checksum = 148..<156
    static let typeFlag = 156
    static let linkName = 157..<257
    static let magic = 257..<263
    static let version = 263..<265
    static let prefix = 345..<500

    /// Bytes of zero padding after a body of `size` bytes.
    public static func padding(_ size: Int64) -> Int64 {
        let r = size % Int64(blockSize)
        return r == 0 ? 0 : Int64(blockSize) - r
    }

    static func isZeroBlock(_ block: UnsafeRawBufferPointer) -> Bool {
        var acc: UInt64 = 0
        var i = 0
        while i < blockSize {
            acc |= block.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            i += 8
        }
        return acc == 0
    }

    static func isPOSIXUstar(_ block: UnsafeRawBufferPointer) -> Bool {
        // "ustar\0" (version "00"). GNU writes "ustar  \0" and uses the prefix area otherwise.
        block[257] == 0x75 && block[258] == 0x73 && block[259] == 0x74 && block[260] == 0x61 &&
            block[261] == 0x72 && block[262] == 0
    }

    /// Unsigned and signed sums of the block with the checksum field read as spaces.
    static func checksums(_ block: UnsafeRawBufferPointer) -> (Int64, Int64) {
        // Eight bytes at a time: lane sums for the unsigned sum; each byte >= 0x80 counts 256
        // less in the signed sum.
        var unsigned: UInt64 = 0
        var high = 0
        var i = 0
        while i < blockSize {
            let w = block.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let pairs = (w & 0x00ff_00ff_00ff_00ff) &+ ((w >> 8) & 0x00ff_00ff_00ff_00ff)
            unsigned &+= (pairs &* 0x0001_0001_0001_0001) >> 48
            high += (w & 0x8080_8080_8080_8080).nonzeroBitCount
            i += 8
        }
        // The checksum field counts as eight spaces.
        for j in checksum.lowerBound..<checksum.upperBound {
            let b = block[j]
            unsigned = unsigned &- UInt64(b)
            if b >= 0x80 { high -= 1 }
        }
        unsigned += 8 * 0x20
        let u = Int64(unsigned)
        return (u, u - 256 * Int64(high))
    }

    /// The bytes of a header field up to its first NUL.
    static func cString(_ block: UnsafeRawBufferPointer, _ field: Range<Int>) -> [UInt8] {
        var end = field.lowerBound
        while end < field.upperBound, block[end] != 0 { end += 1 }
        let count = end - field.lowerBound
        guard count > 0, let base = block.baseAddress else { return [] }
        return [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: base + field.lowerBound, byteCount: count)
            initialized = count
        }
    }

    static func trimTrailingNULs(_ bytes: [UInt8]) -> [UInt8] {
        var end = bytes.count
        while end > 0, bytes[end - 1] == 0 { end -= 1 }
        return Array(bytes[..<end])
    }

    /// Parses a numeric header field: octal (spaces and NULs trimmed at both ends; empty is 0) or
    /// base-256 (high bit of the first byte set; two's complement). `nil` when malformed or out of
    /// the Int64 range.
    public static func parseNumber(_ field: [UInt8]) -> Int64? {
        field.withUnsafeBytes { parseNumber($0, 0..<$0.count) }
    }

    static func parseNumber(_ block: UnsafeRawBufferPointer, _ field: Range<Int>) -> Int64? {
        guard !field.isEmpty else { return 0 }
        let first = block[field.lowerBound]
        if first & 0x80 != 0 {
            let invert: UInt8 = first & 0x40 != 0 ? 0xff : 0
            var x = UInt64((first ^ invert) & 0x7f)
            var i = field.lowerBound + 1
            while i < field.upperBound {
                if x >> 56 != 0 { return nil }
                x = x << 8 | UInt64(block[i] ^ invert)
                i += 1
            }
            if x >> 63 != 0 { return nil }
            return invert == 0xff ? ~Int64(x) : Int64(x)
        }
        var lo = field.lowerBound
        var hi = field.upperBound
        while lo < hi, block[lo] == 0x20 || block[lo] == 0 { lo += 1 }
        while hi > lo, block[hi - 1] == 0x20 || block[hi - 1] == 0 { hi -= 1 }
        var value: Int64 = 0
        while lo < hi {
            let c = block[lo]
            lo += 1
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "7") else { return nil }
            let (shifted, o1) = value.multipliedReportingOverflow(by: 8)
            let (next, o2) = shifted.addingReportingOverflow(Int64(c - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            value = next
        }
        return value
    }

    /// Parses a non-negative decimal (pax `size`); `nil` when empty, not all digits, or too big.
    static func parseDecimal(_ bytes: [UInt8]) -> Int64? {
        guard !bytes.isEmpty else { return nil }
        var value: Int64 = 0
        for c in bytes {
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
            let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
            let (next, o2) = shifted.addingReportingOverflow(Int64(c - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            value = next
        }
        return value
    }

    /// A name in single quotes with control characters, quotes and backslashes escaped, for
    /// messages shown to an operator.
    public static func quoted(_ name: String) -> String {
        var out = "'"
        for scalar in name.unicodeScalars {
            switch scalar {
            case "'": out += "\\'"
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f || (0x80..<0xa0).contains(scalar.value) {
                    out += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "'"
    }
}
