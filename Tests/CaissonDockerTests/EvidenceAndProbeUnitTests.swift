import CaissonCore
import Foundation
import Testing
@testable import CaissonDocker

/// Issue 12, Docker side without a daemon: the attached-stream demultiplexer, the inspect → details
/// mapping, and the device-side probes against local listeners.
@Suite struct EvidenceAndProbeUnitTests {
    static func frame(_ stream: UInt8, _ text: String) -> [UInt8] {
        let b = Array(text.utf8)
        return [stream, 0, 0, 0, UInt8(b.count >> 24 & 0xFF), UInt8(b.count >> 16 & 0xFF), UInt8(b.count >> 8 & 0xFF), UInt8(b.count & 0xFF)] + b
    }

    @Test func multiplexedFramesSplitAnywhereGiveInterleavedLines() {
        let bytes = Self.frame(1, "hello\nwor") + Self.frame(2, "oops\r\n") + Self.frame(1, "ld\nlast without newline")
        for cut in 0...bytes.count {
            var d = DockerStreamDemuxer(multiplexed: true, limit: LogLimit())
            d.feed(Array(bytes[..<cut]))
            d.feed(Array(bytes[cut...]))
            let tail = d.finish()
            #expect(tail.lines == [LogLine(.stdout, "hello"), LogLine(.stderr, "oops"), LogLine(.stdout, "world"),
                                   LogLine(.stdout, "last without newline")], "cut at \(cut)")
            #expect(!tail.truncated)
        }
    }

    @Test func ttyStreamsAreRawStdout() {
        var d = DockerStreamDemuxer(multiplexed: false, limit: LogLimit())
        d.feed(Array("\u{1}\u{0}a\nb\n".utf8))
        #expect(d.finish().lines == [LogLine(.stdout, "\u{1}\u{0}a"), LogLine(.stdout, "b")])
    }

    @Test func outputIsBoundedByLinesAndBytesWhateverTheContainerPrinted() {
        var d = DockerStreamDemuxer(multiplexed: true, limit: LogLimit(maxLines: 3, maxBytes: 64))
        for i in 0..<10_000 { d.feed(Self.frame(i % 2 == 0 ? 1 : 2, "line \(i)\n")) }
        let tail = d.finish()
        #expect(tail.lines.map(\.text) == ["line 9997", "line 9998", "line 9999"])
        #expect(tail.truncated)
        // One enormous line keeps its end only.
        var big = DockerStreamDemuxer(multiplexed: true, limit: LogLimit(maxLines: 3, maxBytes: 16))
        for _ in 0..<1000 { big.feed(Self.frame(1, String(repeating: "x", count: 1000))) }
        big.feed(Self.frame(1, "THE-END\n"))
        let b = big.finish()
        #expect(b.lines.count == 1 && b.lines[0].text.hasSuffix("THE-END") && b.lines[0].text.utf8.count <= 16 && b.truncated)
    }

    @Test func inspectMapsToDetails() throws {
        let json = try JSONValue.parse("""
            {"Id": "abc123", "Name": "/app", "Image": "sha256:img", "RestartCount": 2,
             "State": {"Status": "exited", "Running": false, "OOMKilled": true, "ExitCode": 137, "Error": "",
                       "StartedAt": "2026-03-16T18:30:00.1Z", "FinishedAt": "2026-03-16T18:30:05.2Z",
                       "Health": {"Status": "unhealthy", "FailingStreak": 3,
                                  "Log": [{"Start": "s1", "End": "e1", "ExitCode": 1, "Output": "no answer"}]}},
             "Config": {"Image": "example/app:2", "Env": ["DB_PASSWORD=correct-horse"], "Tty": true, "Labels": {}},
             "HostConfig": {"NetworkMode": "default"},
             "NetworkSettings": {"Networks": {"zeta": {"IPAddress": "172.30.0.9"}, "alpha": {"IPAddress": ""},
                                              "beta": {"IPAddress": "172.20.0.4"}}}}
            """)
        let c = try #require(ContainerInspect(json: json))
        let d = DockerHost.details(c)
        #expect(d.info.status == .exited && d.info.exitCode == 137 && d.info.restartCount == 2 && d.info.health == .unhealthy)
        #expect(d.oomKilled && d.error == nil && d.startedAt == "2026-03-16T18:30:00.1Z" && d.finishedAt == "2026-03-16T18:30:05.2Z")
        #expect(d.healthLog == [HealthLogEntry(start: "s1", end: "e1", exitCode: 1, output: "no answer")])
        #expect(d.environment == ["DB_PASSWORD=correct-horse"] && d.tty)
        #expect(d.networkMode == "bridge")
        // Docker's order (sorted by network name), first with an address.
        #expect(d.networks.map(\.network) == ["alpha", "beta", "zeta"])
        #expect(d.probeAddress == "172.20.0.4")
    }

    /// The device-side probes against listeners on this machine: an HTTP server answering 503, a
    /// port that accepts and never answers, a closed port. A hang costs the probe's deadline, no more.
    @Test func networkProbesAnswerRefuseAndTimeOut() throws {
        let server = try LocalTCPServer { request in
            request.hasPrefix("GET /healthz HTTP/1.1\r\n") ? "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n" : nil
        }
        defer { server.stop() }
        #expect(NetworkProbe.run(.http(address: "127.0.0.1", port: server.port, path: "/healthz"), timeout: .seconds(2)) == .httpStatus(503))
        #expect(NetworkProbe.run(.tcp(address: "127.0.0.1", port: server.port), timeout: .seconds(2)) == .connected)
        let silent = try LocalTCPServer { _ in nil }
        defer { silent.stop() }
        let start = ContinuousClock.now
        #expect(NetworkProbe.run(.http(address: "127.0.0.1", port: silent.port, path: "/"), timeout: .milliseconds(300))
                == .noAnswer(afterMillis: 300))
        #expect(ContinuousClock.now - start < .seconds(2))
        let closed = silent.port
        silent.stop()
        #expect(NetworkProbe.run(.tcp(address: "127.0.0.1", port: closed), timeout: .seconds(1)) == .refused("connection refused"))
        if case .error = NetworkProbe.run(.http(address: "not-an-ip", port: 80, path: "/"), timeout: .seconds(1)) {} else {
            if case .refused = NetworkProbe.run(.http(address: "not-an-ip", port: 80, path: "/"), timeout: .seconds(1)) {} else {
                Issue.record("a non-numeric address must be refused or an error")
            }
        }
    }
}

/// A loopback TCP listener on a free port: each connection's request head goes to `answer`; a nil
/// answer keeps the connection open without a word (until `stop`).
final class LocalTCPServer: @unchecked Sendable {
    final class Held: @unchecked Sendable {
        let lock = NSLock()
        var fds: [Int32] = []
        func add(_ c: Int32) { lock.lock(); fds.append(c); lock.unlock() }
    }
    let fd: Int32
    let port: Int
    private let held = Held()
    private var stopped = false

    init(answer: @escaping @Sendable (String) -> String?) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(listener, 16)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &len) } }
        fd = listener
        port = Int(UInt16(bigEndian: addr.sin_port))
        let held = self.held
        Thread {
            while true {
                let c = accept(listener, nil, nil)
                guard c >= 0 else { return }
                var buf = [UInt8](repeating: 0, count: 4096)
                let n = read(c, &buf, buf.count)
                let request = String(decoding: buf[0..<max(0, n)], as: UTF8.self)
                if let reply = answer(request) {
                    _ = reply.utf8CString.withUnsafeBufferPointer { write(c, $0.baseAddress, $0.count - 1) }
                    close(c)
                } else {
                    held.add(c)
                }
            }
        }.start()
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
        held.lock.lock()
        for c in held.fds { close(c) }
        held.lock.unlock()
    }
}
