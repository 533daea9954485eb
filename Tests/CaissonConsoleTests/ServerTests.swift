import CaissonHTTP
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The HTTP/1.1 server on its own: malformed and oversized requests, slow and idle clients, the
/// connection bound, keep-alive, streamed bodies.
@Suite struct ServerTests {
    final class Echo: @unchecked Sendable {
        let server: HTTPServer
        init(limits: HTTPServerLimits = HTTPServerLimits()) throws {
            server = try HTTPServer(address: .tcp(host: "127.0.0.1", port: 0), limits: limits) { request in
                if request.head.path == "/body" {
                    do {
                        let body = try request.readWholeBody(limit: 1000)
                        return HTTPServerResponse(status: 200, body: body)
                    } catch {
                        return .text(413, "too large")
                    }
                }
                if request.head.path == "/stream" {
                    return HTTPServerResponse(status: 200) { writer in
                        for i in 0..<3 { try writer.write(Array("part \(i)\n".utf8)) }
                    }
                }
                return .text(200, "hello \(request.head.path ?? "?") from \(request.peerHost)")
            }
            server.start()
        }
        var port: UInt16 { if case .tcp(_, let p) = server.address { return p }; return 0 }
        deinit { server.stop(grace: .seconds(2)) }

        func connect() throws -> StreamSocket {
            try StreamSocket.connect(.tcp(host: "127.0.0.1", port: port), deadline: IODeadline(call: MonotonicInstant.now().advanced(by: .seconds(5)), idle: nil))
        }

        func send(_ text: String, timeout: Duration = .seconds(10)) throws -> TestResponse {
            let s = try connect()
            try s.write(Array(text.utf8), deadline: .none)
            return try TestResponse.read(s, timeout: timeout)
        }
    }

    @Test func answersAndKeepsConnectionsAlive() throws {
        let echo = try Echo()
        let s = try echo.connect()
        try s.write(Array("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n".utf8), deadline: .none)
        var reader = HTTPWireReader(socket: s, deadline: IODeadline(call: MonotonicInstant.now().advanced(by: .seconds(5)), idle: nil))
        for path in ["/a", "/b"] {
            let head = try reader.readResponseHead()
            var body: [UInt8] = []
            try reader.readBody(try HTTPCodec.responseFraming(head, method: "GET")) { body.append(contentsOf: $0) }
            #expect(head.status == 200)
            #expect(String(decoding: body, as: UTF8.self) == "hello \(path) from 127.0.0.1")
        }
    }

    @Test(arguments: [
        "GARBAGE\r\n\r\n",
        "GET /x HTTP/2.0\r\nHost: x\r\n\r\n",
        "GET x HTTP/1.1\r\nHost: x\r\n\r\n",
        "G(T /x HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /x HTTP/1.1\r\n folded: header\r\nHost: x\r\n\r\n",
        "GET /x HTTP/1.1\r\nNoColon\r\n\r\n",
        "GET /x HTTP/1.1\r\n\r\n",
        "GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    ])
    func malformedRequestsGet400(_ request: String) throws {
        let echo = try Echo()
        let r = try echo.send(request)
        #expect(r.status == 400)
        #expect(r.header("Connection") == "close")
    }

    @Test func oversizedHeadGets431() throws {
        let echo = try Echo()
        let big = String(repeating: "a", count: 17 * 1024)
        #expect(try echo.send("GET /x HTTP/1.1\r\nHost: x\r\nX-Big: \(big)\r\n\r\n").status == 431)
        // Many small headers adding up past 16 KiB too.
        let many = (0..<400).map { "X-H\($0): \(String(repeating: "b", count: 40))\r\n" }.joined()
        #expect(try echo.send("GET /x HTTP/1.1\r\nHost: x\r\n\(many)\r\n").status == 431)
        // And a request just under the bound passes.
        #expect(try echo.send("GET /x HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 15 * 1024))\r\n\r\n").status == 200)
    }

    @Test func bodyLimitsAndChunkedBodies() throws {
        let echo = try Echo()
        let r = try echo.send("POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        #expect(r.status == 200 && r.bodyText == "hello world")
        #expect(try echo.send("POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n").status == 413)
        let streamed = try echo.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(streamed.bodyText == "part 0\npart 1\npart 2\n")
    }

    @Test func slowClientCannotBlockOthersAndIsCutOff() throws {
        var limits = HTTPServerLimits()
        limits.headDeadline = .milliseconds(800)
        let echo = try Echo(limits: limits)
        // A client that sends half a head and stalls (slowloris).
        let slow = try echo.connect()
        try slow.write(Array("GET /slow HTTP/1.1\r\nHost: x\r\nX-A: ".utf8), deadline: .none)
        // Others are served meanwhile, at once.
        let start = Date()
        for _ in 0..<5 { #expect(try echo.send("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n").status == 200) }
        #expect(Date().timeIntervalSince(start) < 0.7)
        // The slow one is answered 408 and closed once its head deadline passes.
        let r = try TestResponse.read(slow, timeout: .seconds(5))
        #expect(r.status == 408)
        #expect(Date().timeIntervalSince(start) < 4)
    }

    @Test func idleKeepAliveConnectionsAreClosed() throws {
        var limits = HTTPServerLimits()
        limits.keepAliveIdle = .milliseconds(300)
        let echo = try Echo(limits: limits)
        let s = try echo.connect()
        var buffer = [UInt8](repeating: 0, count: 16)
        let start = Date()
        let n = try buffer.withUnsafeMutableBytes { try s.read(into: $0, deadline: IODeadline(call: MonotonicInstant.now().advanced(by: .seconds(5)), idle: nil)) }
        #expect(n == 0)  // closed by the server, quietly
        #expect(Date().timeIntervalSince(start) < 3)
    }

    @Test func connectionBoundAnswers503() throws {
        var limits = HTTPServerLimits()
        limits.maxConnections = 2
        let echo = try Echo(limits: limits)
        let a = try echo.connect(), b = try echo.connect()
        usleep(200_000)
        let r = try echo.send("GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(r.status == 503)
        a.close(); b.close()
        // Once they are gone, service resumes.
        var ok = false
        for _ in 0..<50 where !ok {
            usleep(50_000)
            ok = (try? echo.send("GET /x HTTP/1.1\r\nHost: x\r\n\r\n").status) == 200
        }
        #expect(ok)
    }

    @Test func stopEndsStreamsAndIdleConnections() throws {
        let server = try HTTPServer(address: .tcp(host: "127.0.0.1", port: 0)) { _ in
            HTTPServerResponse(status: 200) { writer in
                while !writer.isStopping { try writer.write([0x2e]); usleep(20_000) }
            }
        }
        server.start()
        guard case .tcp(_, let port) = server.address else { return }
        let s = try StreamSocket.connect(.tcp(host: "127.0.0.1", port: port), deadline: .none)
        try s.write(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), deadline: .none)
        let idle = try StreamSocket.connect(.tcp(host: "127.0.0.1", port: port), deadline: .none)
        usleep(200_000)
        #expect(server.connectionCount == 2)
        let start = Date()
        server.stop(grace: .seconds(3))
        #expect(Date().timeIntervalSince(start) < 2)
        #expect(server.connectionCount == 0)
        _ = idle
    }
}
