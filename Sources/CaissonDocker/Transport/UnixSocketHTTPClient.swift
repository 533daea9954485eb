/// Deadlines of one call.
public struct DockerTimeouts: Sendable, Equatable {
    /// Connecting to the socket (nothing has been sent while this runs).
    public var connect: Duration
    /// The whole call, from connecting to the last byte of the answer. `nil`: no limit.
    public var call: Duration?
    /// The longest silence tolerated while writing the body or reading the answer (the daemon takes
    /// no bytes / sends no bytes). `nil`: no limit. For long streams (`docker load`).
    public var idle: Duration?

    public init(connect: Duration = .seconds(5), call: Duration? = .seconds(60), idle: Duration? = nil) {
        self.connect = connect
        self.call = call
        self.idle = idle
    }

    /// 5 s to connect, 60 s for the whole call.
    public static let `default` = DockerTimeouts()
}

/// HTTP/1.1 over a unix socket: one connection per call (`Connection: close`), blocking, bounded.
///
/// Errors are `DockerError`, classified by how far the call got: failures before any byte was sent
/// are definite; timeouts, dropped connections and garbled answers after sending are indeterminate.
/// An error thrown by a request-body producer or by a body sink is rethrown unchanged.
public struct UnixSocketHTTPClient: Sendable {
    public let socketPath: String
    /// Size of the body pieces pulled from a streaming producer (and of chunks on the wire).
    public var uploadChunkSize: Int
    public var userAgent: String

    public init(socketPath: String, uploadChunkSize: Int = 64 * 1024, userAgent: String = "caisson") {
        self.socketPath = socketPath
        self.uploadChunkSize = max(1, uploadChunkSize)
        self.userAgent = userAgent
    }

    /// Sends `request` and collects the whole answer, failing with `.protocolError` beyond
    /// `maxBodyBytes`.
    public func execute(_ request: HTTPRequest, timeouts: DockerTimeouts = .default,
                        maxBodyBytes: Int = 16 * 1024 * 1024,
                        uploadProgress: ((UInt64) -> Void)? = nil) throws -> HTTPResponse {
        var body: [UInt8] = []
        let label = Self.label(request)
        let head = try execute(request, timeouts: timeouts, uploadProgress: uploadProgress) { chunk in
            guard body.count + chunk.count <= maxBodyBytes else {
                throw DockerError(.protocolError(indeterminate: true),
                                  "\(label): the daemon's answer is larger than \(maxBodyBytes) bytes")
            }
            body.append(contentsOf: chunk)
        }
        return HTTPResponse(head: head, body: body)
    }

    /// Sends `request` and streams the answer's body to `onBody` as it arrives. `onHead` sees the
    /// head first and may throw to stop (e.g. on an error status, after which `onBody` is not called
    /// for a stream the caller does not want).
    @discardableResult
    public func execute(_ request: HTTPRequest, timeouts: DockerTimeouts = .default,
                        uploadProgress: ((UInt64) -> Void)? = nil,
                        onHead: (HTTPResponseHead) throws -> Void = { _ in },
                        onBody: (UnsafeRawBufferPointer) throws -> Void) throws -> HTTPResponseHead {
        let label = Self.label(request)
        let start = MonotonicInstant.now()
        let callDeadline = timeouts.call.map { start.advanced(by: $0) }
        let connectDeadline = start.advanced(by: timeouts.connect)
        let connectLimit = callDeadline.map { min($0, connectDeadline) } ?? connectDeadline

        // 1. Connect. Nothing has been sent: every failure here is definite.
        let socket: StreamSocket
        do {
            socket = try StreamSocket.connect(path: socketPath, deadline: IODeadline(call: connectLimit, idle: nil))
        } catch {
            throw connectError(error, timeouts: timeouts)
        }
        defer { socket.close() }
        let ioDeadline = IODeadline(call: callDeadline, idle: timeouts.idle)

        // 2. Send. From here on the daemon may act on what it received.
        var writeFailure: SocketFailure?
        do {
            try send(request, on: socket, deadline: ioDeadline, uploadProgress: uploadProgress)
        } catch let failure as SocketFailure {
            switch failure {
            case .timedOut(let kind):
                throw timeoutError(kind, label: label, timeouts: timeouts, phase: "sending the request")
            default:
                // The daemon may have answered early (e.g. 400) and closed; read what it said.
                writeFailure = failure
            }
        }

        // 3. Receive.
        var reader = HTTPWireReader(socket: socket, deadline: ioDeadline)
        do {
            let head = try reader.readResponseHead()
            try onHead(head)
            try reader.readBody(try HTTPCodec.responseFraming(head, method: request.method), sink: onBody)
            return head
        } catch let failure as WireFailure {
            if let writeFailure, reader.bytesReceived == 0 {
                throw DockerError(.connectionLost(indeterminate: true),
                                  "\(label): the connection to the Docker daemon broke while sending the request (\(Self.describe(writeFailure))); the operation may or may not have happened")
            }
            throw wireError(failure, label: label, timeouts: timeouts)
        }
    }

    // MARK: - Sending

    private func send(_ request: HTTPRequest, on socket: StreamSocket, deadline: IODeadline,
                      uploadProgress: ((UInt64) -> Void)?) throws {
        var headers: [(name: String, value: String)] = [("Host", "docker"), ("User-Agent", userAgent)]
        let supplied = Set(request.headers.map { $0.name.lowercased() })
        headers.removeAll { supplied.contains($0.name.lowercased()) }
        headers += request.headers
        if !supplied.contains("connection") { headers.append(("Connection", "close")) }
        if let contentType = request.body.contentType, !supplied.contains("content-type") {
            headers.append(("Content-Type", contentType))
        }

        switch request.body.storage {
        case .none:
            let framing: BodyFraming = ["POST", "PUT", "PATCH"].contains(request.method) ? .length(0) : .none
            try socket.write(HTTPCodec.serializeHead(method: request.method, target: request.target,
                                                     headers: headers, framing: framing), deadline: deadline)
        case .bytes(let bytes):
            var message = HTTPCodec.serializeHead(method: request.method, target: request.target,
                                                  headers: headers, framing: .length(UInt64(bytes.count)))
            message += bytes
            try socket.write(message, deadline: deadline)
            uploadProgress?(UInt64(bytes.count))
        case .stream(let length, let producer):
            try socket.write(HTTPCodec.serializeHead(method: request.method, target: request.target,
                                                     headers: headers, framing: length.map { .length($0) } ?? .chunked),
                             deadline: deadline)
            try sendStream(length: length, producer: producer, on: socket, deadline: deadline,
                           label: Self.label(request), uploadProgress: uploadProgress)
        }
    }

    /// Pulls the body from `producer` and writes it, one piece behind: a piece is written only once
    /// the next one (or the producer's end) is known, so the producer's end-of-stream (where it may
    /// still throw, e.g. on a digest mismatch) always comes before the last body byte is sent.
    private func sendStream(length: UInt64?, producer: RequestBody.Producer, on socket: StreamSocket,
                            deadline: IODeadline, label: String,
                            uploadProgress: ((UInt64) -> Void)?) throws {
        let chunked = length == nil
        let prefix = chunked ? 18 : 0  // room for "hex size\r\n"
        let suffix = chunked ? 2 : 0   // room for "\r\n"
        let size = uploadChunkSize
        var current = [UInt8](repeating: 0, count: prefix + size + suffix)
        var next = current
        var produced: UInt64 = 0
        var sent: UInt64 = 0

        func pull(into buffer: inout [UInt8]) throws -> Int {
            let want: Int
            if let length {
                // Ask for one byte past the declared length to detect a producer that has more.
                want = Int(min(UInt64(size), length - min(length, produced) + 1))
            } else {
                want = size
            }
            let n = try buffer.withUnsafeMutableBytes { raw in
                try producer(UnsafeMutableRawBufferPointer(rebasing: raw[prefix..<(prefix + want)]))
            }
            guard n >= 0, n <= want else {
                throw DockerError(.invalidRequest, "\(label): the body source returned an invalid count \(n)")
            }
            produced += UInt64(n)
            if let length, produced > length {
                throw DockerError(.invalidRequest, "\(label): the body source produced more than the declared \(length) bytes")
            }
            return n
        }

        func write(_ buffer: inout [UInt8], count: Int) throws(SocketFailure) {
            guard count > 0 else { return }
            var failure: SocketFailure?
            buffer.withUnsafeMutableBytes { raw in
                var from = prefix
                var to = prefix + count
                if chunked {
                    let line = HTTPCodec.chunkSizeLine(count)
                    from = prefix - line.count
                    for (offset, byte) in line.enumerated() { raw[from + offset] = byte }
                    raw[to] = 13
                    raw[to + 1] = 10
                    to += 2
                }
                do throws(SocketFailure) {
                    try socket.write(UnsafeRawBufferPointer(rebasing: raw[from..<to]), deadline: deadline)
                } catch { failure = error }
            }
            if let failure { throw failure }
            sent += UInt64(count)
            uploadProgress?(sent)
        }

        var pending = try pull(into: &current)
        while pending > 0 {
            let more = try pull(into: &next)
            if more == 0 { break }
            try write(&current, count: pending)
            swap(&current, &next)
            pending = more
        }
        // The producer has reported its end: check the length, then send the last piece.
        if let length, produced != length {
            throw DockerError(.invalidRequest, "\(label): the body source ended after \(produced) of the declared \(length) bytes")
        }
        try write(&current, count: pending)
        if chunked { try socket.write(HTTPCodec.lastChunk, deadline: deadline) }
    }

    // MARK: - Errors

    static func label(_ request: HTTPRequest) -> String {
        let path = request.target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.target
        return "\(request.method) \(path)"
    }

    func connectError(_ error: SocketFailure, timeouts: DockerTimeouts) -> DockerError {
        switch error {
        case .pathTooLong(let path):
            return DockerError(.invalidRequest, "Docker socket path '\(path)' is empty or longer than a unix socket path may be (107 bytes)")
        case .timedOut:
            return DockerError(.timeout(indeterminate: false), "timed out after \(timeouts.connect.shortDescription) connecting to the Docker daemon at \(socketPath)")
        case .system(let operation, let code):
            switch code {
            case ENOENT, ENOTDIR:
                return DockerError(.unreachable, "Docker daemon not reachable at \(socketPath) (is dockerd running?)")
            case ECONNREFUSED:
                return DockerError(.unreachable, "Docker daemon not reachable at \(socketPath) (is dockerd running?): connection refused")
            case EACCES, EPERM:
                return DockerError(.permissionDenied, "permission denied on \(socketPath) (run as root or join the docker group)")
            default:
                return DockerError(.unreachable, "Docker daemon not reachable at \(socketPath): \(operation) failed: \(errnoDescription(code))")
            }
        }
    }

    private func timeoutError(_ kind: TimeoutKind, label: String, timeouts: DockerTimeouts, phase: String) -> DockerError {
        let what: String
        switch kind {
        case .idle: what = "nothing moved for \(timeouts.idle?.shortDescription ?? "?") while \(phase)"
        case .call, .connect: what = "no complete answer within \(timeouts.call?.shortDescription ?? "?") (\(phase))"
        }
        return DockerError(.timeout(indeterminate: true),
                           "\(label) timed out: \(what); the operation may or may not have happened")
    }

    private func wireError(_ failure: WireFailure, label: String, timeouts: DockerTimeouts) -> DockerError {
        switch failure {
        case .socket(.timedOut(let kind)):
            return timeoutError(kind, label: label, timeouts: timeouts, phase: "waiting for the answer")
        case .socket(let other):
            return DockerError(.connectionLost(indeterminate: true),
                               "\(label): the connection to the Docker daemon broke (\(Self.describe(other))); the operation may or may not have happened")
        case .endOfStream(let detail):
            return DockerError(.connectionLost(indeterminate: true),
                               "\(label): the Docker daemon closed the connection early (\(detail)); the operation may or may not have happened")
        case .malformed(let detail), .tooLarge(let detail):
            return DockerError(.protocolError(indeterminate: true),
                               "\(label): invalid answer from the Docker daemon (\(detail)); the operation may or may not have happened")
        }
    }

    static func describe(_ failure: SocketFailure) -> String {
        switch failure {
        case .system(let operation, let code): return "\(operation): \(errnoDescription(code))"
        case .timedOut(let kind): return "\(kind) timeout"
        case .pathTooLong(let path): return "socket path too long: \(path)"
        }
    }
}

#if canImport(Glibc)
import CaissonHTTP
import Glibc
#elseif canImport(Musl)
import Musl
#endif
