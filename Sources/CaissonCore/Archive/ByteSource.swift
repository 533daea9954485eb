import Glibc

/// A pull source of bytes: a file, a byte range of a file, memory, or the body of a tar entry.
public protocol ByteSource {
    /// Reads up to `buffer.count` bytes into `buffer` and returns how many were read; 0 means
    /// the end of the data. Short reads are allowed anywhere; only 0 is the end.
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int

    /// Skips up to `count` bytes without reading them, when the source can do that cheaply.
    /// Returns how many bytes were skipped (fewer than `count` only at the end of the data), or
    /// `nil` when the source cannot skip and the caller should read and discard instead.
    mutating func skip(_ count: Int64) throws -> Int64?
}

extension ByteSource {
    public mutating func skip(_ count: Int64) throws -> Int64? { nil }
}

/// An I/O failure of a byte source, with the errno it came from.
public struct ByteSourceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was being done: "open", "read", "stat".
    public var operation: String
    /// The file, when there is one.
    public var path: String?
    /// The errno value (0 when the failure did not come from a system call).
    public var errno: Int32
    /// A readable sentence, e.g. `read /x/pkg.edgepkg: input/output error (EIO)`.
    public var message: String

    public init(operation: String, path: String?, errno: Int32, message: String? = nil) {
        self.operation = operation
        self.path = path
        self.errno = errno
        let what = path.map { "\(operation) \($0)" } ?? operation
        self.message = message ?? "\(what): \(ByteSourceError.describe(errno: errno))"
    }

    public var description: String { message }

    /// A short readable name for common errno values, e.g. `no such file or directory (ENOENT)`.
    public static func describe(errno code: Int32) -> String {
        switch code {
        case ENOENT: return "no such file or directory (ENOENT)"
        case EACCES: return "permission denied (EACCES)"
        case EPERM: return "operation not permitted (EPERM)"
        case EISDIR: return "is a directory (EISDIR)"
        case EIO: return "input/output error (EIO)"
        case ENOSPC: return "no space left on device (ENOSPC)"
        case EMFILE: return "too many open files (EMFILE)"
        case ENFILE: return "too many open files in system (ENFILE)"
        case ENOMEM: return "out of memory (ENOMEM)"
        case ELOOP: return "too many symbolic links (ELOOP)"
        case ENAMETOOLONG: return "file name too long (ENAMETOOLONG)"
        case ENOTDIR: return "not a directory (ENOTDIR)"
        case EBADF: return "bad file descriptor (EBADF)"
        case EINVAL: return "invalid argument (EINVAL)"
        case ESPIPE: return "not seekable (ESPIPE)"
        case ESTALE: return "stale file handle (ESTALE)"
        default: return "errno \(code)"
        }
    }
}

/// The system calls `FileByteSource` makes, behind one seam so tests can inject errno values
/// (EINTR, EIO, ...). `live` calls Glibc.
public struct FileSystemCalls: Sendable {
    public var open: @Sendable (_ path: String, _ flags: Int32) -> Int32
    public var pread: @Sendable (_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int, _ offset: Int64) -> Int
    public var fileSize: @Sendable (_ fd: Int32) -> Int64?
    public var close: @Sendable (_ fd: Int32) -> Int32
    /// Reads the calling thread's errno after a failed call.
    public var lastErrno: @Sendable () -> Int32

    public init(
        open: @escaping @Sendable (String, Int32) -> Int32,
        pread: @escaping @Sendable (Int32, UnsafeMutableRawPointer, Int, Int64) -> Int,
        fileSize: @escaping @Sendable (Int32) -> Int64?,
        close: @escaping @Sendable (Int32) -> Int32,
        lastErrno: @escaping @Sendable () -> Int32
    ) {
        self.open = open
        self.pread = pread
        self.fileSize = fileSize
        self.close = close
        self.lastErrno = lastErrno
    }

    public static let live = FileSystemCalls(
        open: { path, flags in Glibc.open(path, flags) },
        pread: { fd, buffer, count, offset in Glibc.pread(fd, buffer, count, off_t(offset)) },
        fileSize: { fd in
            var st = stat()
            guard fstat(fd, &st) == 0 else { return nil }
            return Int64(st.st_size)
        },
        close: { fd in Glibc.close(fd) },
        lastErrno: { Glibc.errno }
    )
}

/// Reads a file, or the byte range `[offset, offset + length)` of a file, with positioned reads
/// (`pread`), so a range can be streamed straight out of a larger archive. EINTR is retried; other
/// errors become a `ByteSourceError` naming the file and the errno. The descriptor is opened with
/// `O_CLOEXEC` and closed when the source is released.
///
/// Reading a range that extends past the end of the file ends early (the caller sees a short
/// stream, which a tar reader reports as truncation).
public final class FileByteSource: ByteSource {
    public let path: String
    private let fd: Int32
    private let calls: FileSystemCalls
    /// Absolute file offset of the next read.
    public private(set) var position: Int64
    /// Absolute end of the range (exclusive); `nil` means up to the end of the file.
    private let rangeEnd: Int64?
    /// The file size at open time, used to bound `skip`.
    private let sizeAtOpen: Int64?

    /// Opens the whole file.
    public convenience init(path: String, calls: FileSystemCalls = .live) throws {
        try self.init(path: path, offset: 0, length: nil, calls: calls)
    }

    /// Opens the byte range `[offset, offset + length)` of a file (`length: nil` = to the end).
    public init(path: String, offset: Int64, length: Int64?, calls: FileSystemCalls = .live) throws {
        guard offset >= 0, (length ?? 0) >= 0 else {
            throw ByteSourceError(operation: "open", path: path, errno: EINVAL,
                                  message: "open \(path): invalid byte range")
        }
        let (end, overflow) = offset.addingReportingOverflow(length ?? 0)
        guard !overflow else {
            throw ByteSourceError(operation: "open", path: path, errno: EINVAL,
                                  message: "open \(path): invalid byte range")
        }
        var fd: Int32
        repeat { fd = calls.open(path, O_RDONLY | O_CLOEXEC) } while fd < 0 && calls.lastErrno() == EINTR
        guard fd >= 0 else { throw ByteSourceError(operation: "open", path: path, errno: calls.lastErrno()) }
        self.path = path
        self.fd = fd
        self.calls = calls
        self.position = offset
        self.rangeEnd = length == nil ? nil : end
        self.sizeAtOpen = calls.fileSize(fd)
    }

    deinit { _ = calls.close(fd) }

    /// How many bytes the range still holds (bounded by the file size seen at open).
    public var remaining: Int64? {
        let limit = [rangeEnd, sizeAtOpen].compactMap { $0 }.min()
        return limit.map { max(0, $0 - position) }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        var count = buffer.count
        if let rangeEnd { count = Int(min(Int64(count), max(0, rangeEnd - position))) }
        if count == 0 { return 0 }
        while true {
            let n = calls.pread(fd, base, count, position)
            if n >= 0 {
                position += Int64(n)
                return n
            }
            let code = calls.lastErrno()
            if code == EINTR { continue }
            throw ByteSourceError(operation: "read", path: path, errno: code)
        }
    }

    public func skip(_ count: Int64) throws -> Int64? {
        guard count > 0 else { return 0 }
        guard let available = remaining else { return nil }
        let n = min(count, available)
        position += n
        return n
    }
}

/// An in-memory source. `maxReadSize` limits each read, to exercise short reads in tests.
public struct MemoryByteSource: ByteSource, Sendable {
    public let bytes: [UInt8]
    public private(set) var position: Int = 0
    public var maxReadSize: Int

    public init(_ bytes: [UInt8], maxReadSize: Int = .max) {
        self.bytes = bytes
        self.maxReadSize = max(1, maxReadSize)
    }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - position, maxReadSize)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + position, byteCount: n)
        }
        position += n
        return n
    }

    public mutating func skip(_ count: Int64) throws -> Int64? {
        let n = Int(min(count, Int64(bytes.count - position)))
        position += max(0, n)
        return Int64(max(0, n))
    }
}

/// Wraps a source and reports the running byte count (read or skipped) after every call.
public struct ProgressByteSource<Base: ByteSource>: ByteSource {
    public var base: Base
    public private(set) var bytesProcessed: Int64 = 0
    private let progress: ((Int64) -> Void)?

    public init(_ base: Base, progress: ((Int64) -> Void)?) {
        self.base = base
        self.progress = progress
    }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try base.read(into: buffer)
        bytesProcessed += Int64(n)
        if n > 0 { progress?(bytesProcessed) }
        return n
    }

    public mutating func skip(_ count: Int64) throws -> Int64? {
        guard let n = try base.skip(count) else { return nil }
        bytesProcessed += n
        if n > 0 { progress?(bytesProcessed) }
        return n
    }
}
