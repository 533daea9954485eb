import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The bounds every connection lives within. A slow or idle client can hold one connection
/// thread up to these deadlines, never the listener or another client.
package struct HTTPServerLimits: Sendable {
    /// The request line plus headers; larger gets 431.
    package var maxHeadBytes = 16 * 1024
    /// Open connections; one more is answered 503 and closed at once.
    package var maxConnections = 48
    /// From the first byte of a request to its blank line; slower gets 408 and a close.
    package var headDeadline: Duration = .seconds(10)
    /// A kept-alive connection waiting for its next request is closed after this.
    package var keepAliveIdle: Duration = .seconds(15)
    /// The longest silence while a request body arrives or a response is written.
    package var ioIdle: Duration = .seconds(30)
    /// Requests served on one connection before it is closed.
    package var maxRequestsPerConnection = 1000
    /// A request body a handler did not read is drained up to this many bytes to keep the
    /// connection; a larger rest closes it.
    package var maxDrainBytes: UInt64 = 64 * 1024

    package init() {}
}

/// A request as a handler sees it: the head, who sent it, and its body to read (or not).
package final class HTTPServerRequest: @unchecked Sendable {
    package let head: HTTPRequestHead
    /// The peer's address (`host:port`; a unix socket has none).
    package let peer: SocketAddress?
    package let bodyFraming: BodyFramingInfo
    fileprivate let connection: HTTPServerConnection
    fileprivate var bodyDone: Bool
    fileprivate var bodyRead: UInt64 = 0
    fileprivate var continueSent = false

    fileprivate init(head: HTTPRequestHead, peer: SocketAddress?, framing: BodyFraming, connection: HTTPServerConnection) {
        self.head = head
        self.peer = peer
        self.bodyFraming = BodyFramingInfo(framing)
        self.connection = connection
        self.bodyDone = framing == .none || framing == .length(0)
    }

    /// The peer's IP address without the port (`"127.0.0.1"`, `"::1"`), or `"local"`.
    package var peerHost: String {
        if case .tcp(let host, _)? = peer { return host }
        return "local"
    }

    /// Reads the body in pieces, calling `sink` for each, stopping with `HTTPServerError.tooLarge`
    /// past `limit` bytes. Throws `HTTPServerError` when the client breaks off or stalls.
    package func readBody(limit: UInt64, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !bodyDone else { return }
        if case .length(let n) = bodyFraming.framing, n > limit {
            connection.mustClose = true
            throw HTTPServerError.tooLarge(limit: limit)
        }
        try sendContinueIfExpected()
        let limit = limit
        do {
            try connection.reader.readBody(bodyFraming.framing) { chunk in
                bodyRead += UInt64(chunk.count)
                guard bodyRead <= limit else { throw HTTPServerError.tooLarge(limit: limit) }
                try sink(chunk)
            }
        } catch let failure as WireFailure {
            connection.mustClose = true
            throw HTTPServerError.wire(failure)
        } catch {
            connection.mustClose = true
            throw error
        }
        bodyDone = true
    }

    /// The whole body, at most `limit` bytes (small forms and JSON only).
    package func readWholeBody(limit: UInt64) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try readBody(limit: limit) { bytes.append(contentsOf: $0) }
        return bytes
    }

    private func sendContinueIfExpected() throws {
        guard !continueSent, head.header("Expect")?.lowercased() == "100-continue" else { return }
        continueSent = true
        do {
            try connection.socket.write(Array("HTTP/1.1 100 Continue\r\n\r\n".utf8), deadline: connection.ioDeadline())
        } catch {
            connection.mustClose = true
            throw HTTPServerError.wire(.socket(error))
        }
    }
}

/// How a request body is delimited (public view of the codec's framing).
package struct BodyFramingInfo: Sendable, Equatable {
    let framing: BodyFraming
    init(_ framing: BodyFraming) { self.framing = framing }
    /// The declared length, when the body has one.
    package var declaredLength: UInt64? {
        if case .length(let n) = framing { return n }
        if case .none = framing { return 0 }
        return nil
    }
    package var isChunked: Bool { framing == .chunked }
}

package enum HTTPServerError: Error, Sendable {
    case tooLarge(limit: UInt64)
    case wire(WireFailure)
    case clientGone
}

/// A response: status, headers, and a body given whole or written as it is produced.
package struct HTTPServerResponse: Sendable {
    package var status: Int
    package var headers: [HTTPHeader]
    package var body: Body

    package enum Body: Sendable {
        case bytes([UInt8])
        /// Written with chunked encoding as `produce` goes; it returns when done, and must return
        /// soon after `writer.isStopping` turns true or a write throws.
        case stream(@Sendable (HTTPResponseWriter) throws -> Void)
    }

    package init(status: Int, headers: [HTTPHeader] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = .bytes(body)
    }

    package init(status: Int, headers: [HTTPHeader] = [], stream: @escaping @Sendable (HTTPResponseWriter) throws -> Void) {
        self.status = status
        self.headers = headers
        self.body = .stream(stream)
    }

    package static func text(_ status: Int, _ text: String) -> HTTPServerResponse {
        HTTPServerResponse(status: status, headers: [HTTPHeader("Content-Type", "text/plain; charset=utf-8")], body: Array(text.utf8))
    }
}

/// Writes a streamed response body (one chunk per call).
package final class HTTPResponseWriter: @unchecked Sendable {
    fileprivate let connection: HTTPServerConnection
    fileprivate init(connection: HTTPServerConnection) { self.connection = connection }

    /// True once the server is stopping: finish promptly.
    package var isStopping: Bool { connection.server?.isStopping ?? true }

    /// Sends `bytes` now. Throws `HTTPServerError.clientGone` when the client is gone or stalls.
    package func write(_ bytes: [UInt8]) throws {
        guard !bytes.isEmpty else { return }
        var chunk = HTTPCodec.chunkSizeLine(bytes.count)
        chunk += bytes
        chunk += HTTPCodec.crlf
        do {
            try connection.socket.write(chunk, deadline: connection.ioDeadline())
        } catch {
            throw HTTPServerError.clientGone
        }
    }

    /// Whether the client has closed its side (a streamed response's reader went away).
    package var clientClosed: Bool {
        var descriptor = pollfd(fd: connection.socket.fd, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, 0) > 0 else { return false }
        if descriptor.revents & Int16(POLLHUP | POLLERR) != 0 { return true }
        var byte: UInt8 = 0
        let n = recv(connection.socket.fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return n == 0
    }
}

package typealias HTTPHandler = @Sendable (HTTPServerRequest) -> HTTPServerResponse

/// An HTTP/1.1 server over POSIX stream sockets: one listener thread, one thread per connection
/// (at most `limits.maxConnections`), keep-alive, every read and write under a deadline. Handlers
/// run on the connection's thread; they must not block for long, except streamed responses,
/// which end when the client goes or the server stops.
package final class HTTPServer: @unchecked Sendable {
    package let limits: HTTPServerLimits
    let handler: HTTPHandler
    private let listener: StreamSocket
    package let address: SocketAddress

    private struct State {
        var stopping = false
        var connections: [ObjectIdentifier: HTTPServerConnection] = [:]
        var acceptThreadDone = false
    }
    private let state = Mutex(State())
    private let done = NSCondition()

    /// Binds `address` now (so the caller learns the port at once); serves after `start()`.
    package init(address: SocketAddress, limits: HTTPServerLimits = HTTPServerLimits(), handler: @escaping HTTPHandler) throws(SocketFailure) {
        self.limits = limits
        self.handler = handler
        self.listener = try StreamSocket.listen(address)
        self.address = listener.localAddress ?? address
    }

    package var isStopping: Bool { state.withLock { $0.stopping } }
    package var connectionCount: Int { state.withLock { $0.connections.count } }

    package func start() {
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "http-accept"
        thread.start()
    }

    private func acceptLoop() {
        while !isStopping {
            let accepted: (StreamSocket, SocketAddress?)?
            do { accepted = try listener.accept(timeoutMs: 200) } catch { accepted = nil; _ = poll(nil, 0, 50) }
            guard let (socket, peer) = accepted else { continue }
            let connection = HTTPServerConnection(socket: socket, peer: peer, server: self)
            let admitted = state.withLock { s -> Bool in
                guard !s.stopping, s.connections.count < limits.maxConnections else { return false }
                s.connections[ObjectIdentifier(connection)] = connection
                return true
            }
            guard admitted else {
                // Full: say so without waiting for the client, and close.
                let body = "The console is busy (too many connections). Try again in a moment.\n"
                let head = HTTPCodec.serializeResponseHead(status: 503, reason: "Service Unavailable", headers: [
                    HTTPHeader("Content-Type", "text/plain; charset=utf-8"), HTTPHeader("Content-Length", "\(body.utf8.count)"),
                    HTTPHeader("Connection", "close"), HTTPHeader("Retry-After", "1")])
                let bytes = head + Array(body.utf8)
                _ = bytes.withUnsafeBytes { send(socket.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
                socket.close()
                continue
            }
            let thread = Thread { [self] in
                connection.serve()
                state.withLock { _ = $0.connections.removeValue(forKey: ObjectIdentifier(connection)) }
                done.lock(); done.broadcast(); done.unlock()
            }
            thread.name = "http-connection"
            thread.stackSize = 1 << 20
            thread.start()
        }
        listener.close()
        state.withLock { $0.acceptThreadDone = true }
        done.lock(); done.broadcast(); done.unlock()
    }

    /// Stops accepting, wakes every connection (streamed responses see `isStopping`), and waits
    /// up to `grace` for their threads to finish. Idempotent.
    package func stop(grace: Duration = .seconds(5)) {
        let connections = state.withLock { s -> [HTTPServerConnection] in
            s.stopping = true
            return Array(s.connections.values)
        }
        // Idle keep-alive connections wake from their poll; busy ones finish their response.
        for c in connections where c.isIdle { c.socket.shutdown() }
        let deadline = Date().addingTimeInterval(Double(grace.clampedNanoseconds) / 1e9)
        done.lock()
        while state.withLock({ !$0.connections.isEmpty || !$0.acceptThreadDone }), Date() < deadline {
            _ = done.wait(until: min(deadline, Date().addingTimeInterval(0.1)))
            // A connection that became idle after the first pass.
            for c in state.withLock({ Array($0.connections.values) }) where c.isIdle { c.socket.shutdown() }
        }
        done.unlock()
        for c in state.withLock({ Array($0.connections.values) }) { c.socket.shutdown() }
    }
}

/// One client connection, served on its own thread.
final class HTTPServerConnection: @unchecked Sendable {
    let socket: StreamSocket
    let peer: SocketAddress?
    weak var server: HTTPServer?
    let limits: HTTPServerLimits
    var reader: HTTPWireReader
    var mustClose = false
    private let idleFlag = Atomic<Bool>(true)
    var isIdle: Bool { idleFlag.load(ordering: .relaxed) }

    init(socket: StreamSocket, peer: SocketAddress?, server: HTTPServer) {
        self.socket = socket
        self.peer = peer
        self.server = server
        self.limits = server.limits
        self.reader = HTTPWireReader(socket: socket, deadline: .none, bufferSize: 64 * 1024)
    }

    func ioDeadline() -> IODeadline { IODeadline(call: nil, idle: limits.ioIdle) }

    func serve() {
        defer { socket.close() }
        var served = 0
        while served < limits.maxRequestsPerConnection, let server, !server.isStopping || reader.hasBufferedBytes {
            // Wait for the first byte of the next request (kept alive), then for the whole head.
            idleFlag.store(true, ordering: .relaxed)
            if !reader.hasBufferedBytes {
                do { try socket.wait(for: Int16(POLLIN), deadline: IODeadline(call: MonotonicInstant.now().advanced(by: limits.keepAliveIdle), idle: nil)) } catch { return }
                if server.isStopping { return }
            }
            idleFlag.store(false, ordering: .relaxed)
            reader.deadline = IODeadline(call: MonotonicInstant.now().advanced(by: limits.headDeadline), idle: nil)
            let head: HTTPRequestHead
            do {
                guard let h = try reader.readRequestHead(maxBytes: limits.maxHeadBytes) else { return }
                head = h
            } catch {
                switch error {
                case .tooLarge: respondError(431, "Request Header Fields Too Large", "The request head is larger than \(limits.maxHeadBytes) bytes.")
                case .socket(.timedOut): respondError(408, "Request Timeout", "The request head did not arrive in time.")
                case .malformed(let detail): respondError(400, "Bad Request", "Malformed request: \(detail).")
                case .endOfStream, .socket: break
                }
                return
            }
            served += 1
            reader.deadline = ioDeadline()
            // Framing: refuse what could smuggle a second request.
            let framing: BodyFraming
            do {
                if head.header("Transfer-Encoding") != nil, head.header("Content-Length") != nil {
                    throw WireFailure.malformed("both Transfer-Encoding and Content-Length")
                }
                framing = try HTTPCodec.messageFraming(head.headers, isRequest: true)
                guard head.version == "HTTP/1.0" || !head.headers.all("Host").isEmpty else { throw WireFailure.malformed("no Host header") }
                guard head.headers.all("Host").count <= 1 else { throw WireFailure.malformed("more than one Host header") }
            } catch {
                respondError(400, "Bad Request", "Malformed request: \((error as? WireFailure).map { "\($0)" } ?? "\(error)").")
                return
            }
            let request = HTTPServerRequest(head: head, peer: peer, framing: framing, connection: self)
            var response = server.handler(request)
            // Whatever body the handler left unread: drain a little, or close.
            if !request.bodyDone, let declared = request.bodyFraming.declaredLength, declared > limits.maxDrainBytes { mustClose = true }
            if !request.bodyDone && !mustClose {
                do {
                    var drained: UInt64 = 0
                    try reader.readBody(framing) { chunk in
                        drained += UInt64(chunk.count)
                        if drained > limits.maxDrainBytes { throw HTTPServerError.tooLarge(limit: limits.maxDrainBytes) }
                    }
                } catch {
                    mustClose = true
                }
            }
            let close = mustClose || server.isStopping || head.version == "HTTP/1.0"
                || head.header("Connection")?.lowercased().contains("close") == true
            if close { response.headers.removeAll { $0.name.lowercased() == "connection" } }
            guard write(response, close: close, method: head.method) else { return }
            if close { return }
        }
    }

    private func respondError(_ status: Int, _ reason: String, _ text: String) {
        var response = HTTPServerResponse.text(status, text + "\n")
        response.headers.append(HTTPHeader("X-Content-Type-Options", "nosniff"))
        _ = write(response, close: true, method: "GET", reason: reason)
    }

    /// Writes a response; false when the client is gone.
    private func write(_ response: HTTPServerResponse, close: Bool, method: String, reason: String? = nil) -> Bool {
        var headers = response.headers.filter { !["content-length", "transfer-encoding"].contains($0.name.lowercased()) }
        if close { headers.append(HTTPHeader("Connection", "close")) }
        let reasonText = reason ?? Self.reason(response.status)
        switch response.body {
        case .bytes(let body):
            headers.append(HTTPHeader("Content-Length", "\(body.count)"))
            var bytes = HTTPCodec.serializeResponseHead(status: response.status, reason: reasonText, headers: headers)
            if method != "HEAD" { bytes += body }
            do { try socket.write(bytes, deadline: ioDeadline()) } catch { return false }
            return true
        case .stream(let produce):
            headers.append(HTTPHeader("Transfer-Encoding", "chunked"))
            do { try socket.write(HTTPCodec.serializeResponseHead(status: response.status, reason: reasonText, headers: headers), deadline: ioDeadline()) } catch { return false }
            let writer = HTTPResponseWriter(connection: self)
            do { try produce(writer) } catch { return false }
            do { try socket.write(HTTPCodec.lastChunk, deadline: ioDeadline()) } catch { return false }
            return true
        }
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 415: return "Unsupported Media Type"
        case 422: return "Unprocessable Content"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        case 507: return "Insufficient Storage"
        default: return "Status"
        }
    }
}
