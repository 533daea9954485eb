/// The kind of a tar entry, from its type flag (and pax sparse records).
public enum TarEntryType: Hashable, Sendable, CustomStringConvertible {
    /// '0' or NUL: a regular file.
    case regular
    /// '7': a "contiguous" file; tar implementations extract it as a regular file.
    case contiguous
    /// '1'
    case hardLink
    /// '2'
    case symbolicLink
    /// '3'
    case characterDevice
    /// '4'
    case blockDevice
    /// '5' (or a V7 regular entry whose name ends in '/')
    case directory
    /// '6'
    case fifo
    /// 'g': pax global extended header. Reported so callers can reject it; its body is the records.
    case paxGlobalHeader
    /// 'S' (old GNU sparse) or a regular entry carrying pax `GNU.sparse.*` records.
    case sparse
    /// Any other flag (GNU 'D', 'M', 'V', vendor letters...).
    case other(UInt8)

    public init(flag: UInt8) {
        switch flag {
        case 0, UInt8(ascii: "0"): self = .regular
        case UInt8(ascii: "7"): self = .contiguous
        case UInt8(ascii: "1"): self = .hardLink
        case UInt8(ascii: "2"): self = .symbolicLink
        case UInt8(ascii: "3"): self = .characterDevice
        case UInt8(ascii: "4"): self = .blockDevice
        case UInt8(ascii: "5"): self = .directory
        case UInt8(ascii: "6"): self = .fifo
        case UInt8(ascii: "g"): self = .paxGlobalHeader
        case UInt8(ascii: "S"): self = .sparse
        default: self = .other(flag)
        }
    }

    /// Types whose header carries no data, whatever the size field says (as Go's archive/tar,
    /// and so `docker load`, reads them).
    public var isHeaderOnly: Bool {
        switch self {
        case .hardLink, .symbolicLink, .characterDevice, .blockDevice, .directory, .fifo: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .regular: return "regular file"
        case .contiguous: return "contiguous file"
        case .hardLink: return "hard link"
        case .symbolicLink: return "symbolic link"
        case .characterDevice: return "character device"
        case .blockDevice: return "block device"
        case .directory: return "directory"
        case .fifo: return "FIFO"
        case .paxGlobalHeader: return "pax global header"
        case .sparse: return "sparse file"
        case .other(let flag):
            if flag >= 0x21 && flag < 0x7f { return "special entry (type '\(Character(Unicode.Scalar(flag)))')" }
            return "special entry (type 0x\(String(flag, radix: 16)))"
        }
    }
}

/// One entry header, as resolved by `TarReader` (pax and GNU long names applied).
public struct TarEntry: Equatable, Sendable {
    /// The full path (pax `path` > GNU long name > ustar prefix + name), validated UTF-8 without NUL.
    public var name: String
    public var type: TarEntryType
    /// The raw type flag byte of the header.
    public var typeFlag: UInt8
    /// Bytes of data that follow the header (0 for header-only types such as directories).
    public var size: Int64
    public var mode: UInt32
    /// Target of a symbolic or hard link (pax `linkpath` > GNU long link > header field).
    public var linkName: String
    /// Offset of the entry's first header block (its pax/GNU extension headers included).
    public var headerOffset: Int64
    /// Offset of the first data byte in the archive.
    public var dataOffset: Int64

    public init(name: String, type: TarEntryType, typeFlag: UInt8, size: Int64, mode: UInt32,
                linkName: String, headerOffset: Int64, dataOffset: Int64) {
        self.name = name
        self.type = type
        self.typeFlag = typeFlag
        self.size = size
        self.mode = mode
        self.linkName = linkName
        self.headerOffset = headerOffset
        self.dataOffset = dataOffset
    }
}

/// A tar reading failure. All are fatal (the reader stops) except `.invalidName`, after which
/// `next()` continues with the following entry.
public struct TarError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        /// The data ended inside a header, an extension payload or a body, or without an
        /// end-of-archive marker.
        case truncated
        /// A header's checksum does not match its bytes (so it is not a tar header).
        case badChecksum
        /// A malformed header field, or data after a single zero block.
        case invalidHeader
        /// A size field that is negative, not a number, or does not fit.
        case invalidSize
        /// A name or link name with a NUL byte or invalid UTF-8. Recoverable.
        case invalidName
        /// A pax or GNU long-name payload larger than the reader's cap.
        case extendedHeaderTooLarge
        /// A malformed pax record.
        case invalidExtendedHeader
        /// The byte source failed (I/O error).
        case readFailed
    }

    public var kind: Kind
    public var message: String
    /// The archive offset of the header or byte where the problem was found.
    public var offset: Int64
    /// For `.invalidName`: the name decoded lossily, for messages.
    public var name: String?
    /// Set when the failure happened while reading or skipping this entry's body (truncation or
    /// an I/O error there), as opposed to a header.
    public var entryName: String?

    public init(_ kind: Kind, _ message: String, offset: Int64, name: String? = nil) {
        self.kind = kind
        self.message = message
        self.offset = offset
        self.name = name
    }

    /// Whether `next()` may be called again to continue with the following entry.
    public var isRecoverable: Bool { kind == .invalidName }

    public var description: String { message }
}
