import CaissonHTTP
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An HTTP/1.1 request to the daemon. `target` is the origin-form path plus query
/// (`/v1.41/containers/json?all=1`), already percent-encoded.
public struct HTTPRequest {
    public var method: String
    public var target: String
    public var headers: [(name: String, value: String)]
    public var body: RequestBody

    public init(method: String, target: String, headers: [(name: String, value: String)] = [],
                body: RequestBody = .none) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
    }
}

/// A request body: none, a small fixed byte array (sent with `Content-Length`), or a stream pulled
/// from a producer (sent with `Content-Length` when the length is known up front, otherwise with
/// `Transfer-Encoding: chunked`).
///
/// A producer fills the buffer it is given and returns how many bytes it wrote; 0 means the end.
/// If it throws, the request is abandoned mid-body (the daemon sees a truncated request and the
/// connection is closed) and the producer's own error is rethrown unchanged to the caller.
///
/// With chunked encoding, the terminating zero-length chunk is only sent after the producer has
/// returned 0, so a producer that verifies what it streams (a digest) can still veto the upload at
/// the very end by throwing instead of returning 0.
public struct RequestBody {
    public typealias Producer = (UnsafeMutableRawBufferPointer) throws -> Int

    enum Storage {
        case none
        case bytes([UInt8])
        case stream(length: UInt64?, producer: Producer)
    }

    let storage: Storage
    public var contentType: String?

    init(_ storage: Storage, contentType: String?) {
        self.storage = storage
        self.contentType = contentType
    }

    /// No body.
    public static var none: RequestBody { RequestBody(.none, contentType: nil) }

    /// A small body held in memory.
    public static func bytes(_ bytes: [UInt8], contentType: String? = nil) -> RequestBody {
        RequestBody(.bytes(bytes), contentType: contentType)
    }

    /// A streamed body. `length` nil: chunked transfer encoding; otherwise exactly `length` bytes
    /// must come from the producer (a mismatch abandons the request with `.invalidRequest`).
    public static func stream(length: UInt64? = nil, contentType: String? = nil,
                              producer: @escaping Producer) -> RequestBody {
        RequestBody(.stream(length: length, producer: producer), contentType: contentType)
    }

    /// Streams `length` bytes of the file at `path` starting at `offset` (e.g. the `image.tar`
    /// member inside a package), with `pread`, never holding more than one buffer in memory.
    /// `chunked` chooses chunked transfer encoding over `Content-Length`.
    public static func fileRange(path: String, offset: UInt64, length: UInt64, chunked: Bool = true,
                                 contentType: String? = nil) throws(DockerError) -> RequestBody {
        let reader = try FileRangeReader(path: path, offset: offset, length: length)
        return .stream(length: chunked ? nil : length, contentType: contentType) { buffer in
            try reader.read(into: buffer)
        }
    }
}

/// Reads a byte range of a file with pread; owns its descriptor.
final class FileRangeReader {
    /// The open descriptor (for `fstat` of the very file being read).
    private(set) var fd: Int32
    private let path: String
    private var position: UInt64
    private let end: UInt64

    init(path: String, offset: UInt64, length: UInt64) throws(DockerError) {
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_CLOEXEC) } while fd < 0 && errno == EINTR
        guard fd >= 0 else {
            throw DockerError(.invalidRequest, "cannot open \(path): \(errnoDescription(errno))")
        }
        self.fd = fd
        self.path = path
        self.position = offset
        let (end, overflow) = offset.addingReportingOverflow(length)
        self.end = overflow ? .max : end
    }

    deinit { if fd >= 0 { _ = close(fd) } }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard position < end, let base = buffer.baseAddress else { return 0 }
        let want = Int(min(UInt64(buffer.count), end - position))
        while true {
            let n = pread(fd, base, want, off_t(position))
            if n > 0 {
                position += UInt64(n)
                return n
            }
            if n == 0 {
                throw DockerError(.invalidRequest, "\(path) ended early at byte \(position) (expected \(end))")
            }
            if errno == EINTR { continue }
            throw DockerError(.invalidRequest, "cannot read \(path): \(errnoDescription(errno))")
        }
    }
}

