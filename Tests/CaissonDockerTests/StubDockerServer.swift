import CaissonHTTP
import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import CaissonDocker

/// An in-process HTTP server on a temporary unix socket that answers scripted responses: a thread
/// accepts connections one at a time, reads the request head, and runs the steps the script
/// returns for it (read the body, send bytes, pause, stall until the client gives up, close).
/// Every wait is bounded, so a broken test cannot hang the suite.
final class StubDockerServer: @unchecked Sendable {
    struct Request: Sendable {
        var method: String
        var target: String
        var headers: [HTTPHeader]
        var body: [UInt8]
        /// The body ended properly (Content-Length reached, or the last chunk arrived).
        var bodyComplete: Bool

        func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
        var path: String { String(target.split(separator: "?", maxSplits: 1).first ?? "") }
        var query: String { target.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init) ?? "" }
    }

    enum Step: Sendable {
        /// Read (and record) the request body according to its framing.
        case readBody
        case send([UInt8])
        case pause(milliseconds: Int)
        /// Read and discard until the client closes its side (at most 10 s).
        case stall
        /// Read nothing; wait (at most 10 s) until the client hangs up.
        case hang
        /// Close the connection now (also done after the last step).
        case close
    }

    typealias Script = @Sendable (Request) -> [Step]

    let directory: String
    let socketPath: String
    private let listenFD: Int32
    private let script: Script
    private let lock = NSLock()
    private var recorded: [Request] = []
    private var stopping = false
    private let finished = DispatchSemaphore(value: 0)
    private let served = DispatchSemaphore(value: 0)

    init(script: @escaping Script) throws {
        var template = Array("/tmp/cdt-XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { throw StubError("mkdtemp failed") }
        directory = String(cString: dir)
        socketPath = directory + "/d.sock"
        self.script = script
        var address = try StreamSocket.makeAddress(socketPath)
        let fd = try StreamSocket.newSocketDescriptor()
        // Accept blocks: clear O_NONBLOCK on the listener.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw StubError("bind/listen failed: \(errno)")
        }
        listenFD = fd
        let thread = Thread { [self] in self.acceptLoop() }
        thread.start()
    }

    deinit { stop() }

    var requests: [Request] { lock.withLock { recorded } }

    /// Waits (at most 10 s each) until `count` more connections have been served to the end.
    func waitUntilServed(_ count: Int = 1) {
        for _ in 0..<count { _ = served.wait(timeout: .now() + 10) }
    }

    /// Stops accepting, waits for the server thread, removes the socket.
    func stop() {
        let first = lock.withLock { () -> Bool in
            if stopping { return false }
            stopping = true
            return true
        }
        guard first else { return }
        shutdown(listenFD, Int32(SHUT_RDWR))
        _ = finished.wait(timeout: .now() + 15)
        close(listenFD)
        unlink(socketPath)
        rmdir(directory)
    }

    private func acceptLoop() {
        defer { finished.signal() }
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                return
            }
            if lock.withLock({ stopping }) {
                close(fd)
                return
            }
            serve(StreamSocket(adopting: fd))
            served.signal()
        }
    }

    private func serve(_ socket: StreamSocket) {
        defer { socket.close() }
        let deadline = IODeadline(call: MonotonicInstant.now().advanced(by: .seconds(10)), idle: nil)
        var reader = HTTPWireReader(socket: socket, deadline: deadline)
        guard let head = try? reader.readRawHead(context: "request"), let raw = Optional(head) ?? nil else { return }
        let parts = raw.startLine.split(separator: " ")
        guard parts.count == 3 else { return }
        var request = Request(method: String(parts[0]), target: String(parts[1]), headers: raw.headers,
                              body: [], bodyComplete: false)
        let index = lock.withLock { () -> Int in
            recorded.append(request)
            return recorded.count - 1
        }
        for step in script(request) {
            switch step {
            case .readBody:
                var body: [UInt8] = []
                do {
                    let framing = try HTTPCodec.messageFraming(raw.headers, isRequest: true)
                    try reader.readBody(framing) { body.append(contentsOf: $0) }
                    request.bodyComplete = true
                } catch {
                    request.bodyComplete = false
                }
                request.body = body
                lock.withLock { recorded[index] = request }
            case .send(let bytes):
                do throws(SocketFailure) { try socket.write(bytes, deadline: deadline) } catch { return }
            case .pause(let milliseconds):
                usleep(UInt32(milliseconds) * 1000)
            case .stall:
                var scratch = [UInt8](repeating: 0, count: 65536)
                let limit = IODeadline(call: MonotonicInstant.now().advanced(by: .seconds(10)), idle: nil)
                while true {
                    let n = scratch.withUnsafeMutableBytes { raw in (try? socket.read(into: raw, deadline: limit)) ?? 0 }
                    if n == 0 { break }
                }
            case .hang:
                var descriptor = pollfd(fd: socket.fd, events: 0, revents: 0)
                _ = poll(&descriptor, 1, 10_000)
            case .close:
                return
            }
        }
    }

    // MARK: - Canned answers

    static func response(_ status: Int, reason: String = "OK", headers: [(String, String)] = [],
                         body: String = "") -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(reason)\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        if status != 204 && status != 304 { text += "Content-Length: \(body.utf8.count)\r\n" }
        text += "\r\n" + body
        return Array(text.utf8)
    }

    static func json(_ status: Int, _ body: String, headers: [(String, String)] = []) -> [UInt8] {
        response(status, headers: [("Content-Type", "application/json")] + headers, body: body)
    }

    /// A head announcing a chunked body; follow with `chunk(...)` pieces and `lastChunk`.
    static func chunkedHead(_ status: Int = 200, headers: [(String, String)] = []) -> [UInt8] {
        var text = "HTTP/1.1 \(status) OK\r\nTransfer-Encoding: chunked\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        return Array((text + "\r\n").utf8)
    }

    static func chunk(_ text: String, extensions: String = "") -> [UInt8] {
        Array((String(text.utf8.count, radix: 16) + extensions + "\r\n" + text + "\r\n").utf8)
    }

    static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)

    static func ping(_ apiVersion: String?) -> [UInt8] {
        var headers = [("Content-Type", "text/plain; charset=utf-8"), ("OSType", "linux")]
        if let apiVersion { headers.append(("API-Version", apiVersion)) }
        return response(200, headers: headers, body: "OK")
    }
}

struct StubError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension StubDockerServer {
    /// A client pinned to API 1.41 (no negotiation round trip) talking to this server.
    func client(timeouts: DockerTimeouts = DockerTimeouts(connect: .seconds(2), call: .seconds(5), idle: nil),
                loadTimeouts: DockerTimeouts = DockerTimeouts(connect: .seconds(2), call: .seconds(5), idle: nil),
                apiVersion: DockerAPIVersion? = DockerAPIVersion(1, 41)) -> DockerClient {
        DockerClient(configuration: .init(endpoint: DockerEndpoint(socketPath: socketPath), timeouts: timeouts,
                                          loadTimeouts: loadTimeouts, apiVersion: apiVersion))
    }
}
