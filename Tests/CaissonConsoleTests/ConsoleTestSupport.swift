import CaissonApp
import CaissonCore
import CaissonHTTP
import Foundation
import Testing
@testable import CaissonConsole
#if canImport(Glibc)
import Glibc
#endif

/// A console on the simulator in its own temporary directory, on a free loopback port.
final class TestConsole: @unchecked Sendable {
    let dir: String
    let media: String
    let console: Console
    var cookie: String?
    var csrf = ""

    /// With `dir`, a console of that directory's device (prepared by an earlier `TestConsole`).
    init(configure: (inout ConsoleConfig) -> Void = { _ in }, password: String? = nil, dir: String? = nil,
         keepDirectory: Bool = false) throws {
        self.dir = dir ?? FileManager.default.temporaryDirectory.appendingPathComponent("caisson-console-\(UUID().uuidString.prefix(8))").path
        self.keepDirectory = keepDirectory
        media = self.dir + "/media"
        if dir == nil { _ = try Demo.prepare(dir: media) }
        var options = AppOptions()
        options.servicesPath = media + "/services.toml"
        options.stateDir = self.dir + "/state"
        options.host = .sim
        if let password { try ConsoleAuth.setPassword(password, stateDir: options.stateDir) }
        var config = ConsoleConfig(options: options)
        config.port = 0
        config.mediaRoots = [media]
        config.simPace = 0
        configure(&config)
        console = try Console(config: config)
    }

    var port: UInt16 { console.port }
    var host: String { "127.0.0.1:\(port)" }
    var stateDir: String { console.config.options.stateDir }
    var options: AppOptions { console.config.options }

    func start() throws -> String { try console.start() }

    let keepDirectory: Bool

    deinit {
        console.stop(grace: .seconds(5))
        if !keepDirectory { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// Starts and signs in with the one-time token.
    static func signedIn(configure: (inout ConsoleConfig) -> Void = { _ in }) throws -> TestConsole {
        let c = try TestConsole(configure: configure)
        let url = try c.start()
        let target = String(url.dropFirst("http://".count).drop { $0 != "/" })
        let r = try c.request("GET", target)
        #expect(r.status == 303)
        c.cookie = r.cookie(ConsoleAuth.cookieName)
        let home = try c.request("GET", "/")
        c.csrf = home.bodyText.firstMatch(of: /data-csrf="([0-9a-f]+)"/).map { String($0.1) } ?? ""
        #expect(c.csrf.count == 64)
        return c
    }

    func request(_ method: String, _ target: String, headers: [(String, String)] = [], body: [UInt8] = [],
                 host: String? = nil, origin: Bool = true, cookie: Bool = true) throws -> TestResponse {
        var h = [("Host", host ?? self.host)]
        if origin && method == "POST" { h.append(("Origin", "http://\(host ?? self.host)")) }
        if cookie, let c = self.cookie { h.append(("Cookie", "\(ConsoleAuth.cookieName)=\(c)")) }
        h += headers
        if method == "POST" && !headers.contains(where: { $0.0 == "Content-Length" || $0.0 == "Transfer-Encoding" }) { h.append(("Content-Length", "\(body.count)")) }
        var text = "\(method) \(target) HTTP/1.1\r\n"
        for (n, v) in h { text += "\(n): \(v)\r\n" }
        text += "Connection: close\r\n\r\n"
        return try raw(Array(text.utf8) + body)
    }

    func post(_ target: String, form: [String: String], csrf: String? = nil) throws -> TestResponse {
        var fields = form
        fields["csrf"] = csrf ?? self.csrf
        let body = fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)" }.joined(separator: "&")
        return try request("POST", target, headers: [("Content-Type", "application/x-www-form-urlencoded")], body: Array(body.utf8))
    }

    func connect() throws -> StreamSocket {
        try StreamSocket.connect(.tcp(host: "127.0.0.1", port: port), deadline: IODeadline(call: MonotonicInstant.now().advanced(by: .seconds(5)), idle: nil))
    }

    /// Sends bytes as they are and reads one response.
    func raw(_ bytes: [UInt8], timeout: Duration = .seconds(20)) throws -> TestResponse {
        let socket = try connect()
        try socket.write(bytes, deadline: IODeadline(call: MonotonicInstant.now().advanced(by: timeout), idle: nil))
        return try TestResponse.read(socket, timeout: timeout)
    }

    func packageID(_ name: String) throws -> String {
        let p = try #require(console.media.scan().first { $0.name == name })
        return p.id
    }

    func app() -> Application { Application(options: options) }

    /// Waits until the console's operation reaches `phase`.
    func wait(for phase: ConsoleOperation.Phase, seconds: Double = 30) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if console.operation?.snapshot.phase == phase { return }
            usleep(20_000)
        }
        Issue.record("the operation never reached \(phase); it is \(String(describing: console.operation?.snapshot.phase))")
        throw CaissonError("test.timeout", "phase")
    }
}

struct TestResponse {
    var status: Int
    var headers: [HTTPHeader]
    var body: [UInt8]
    var bodyText: String { String(decoding: body, as: UTF8.self) }
    func header(_ n: String) -> String? { headers.first(n) }
    func cookie(_ name: String) -> String? {
        for v in headers.all("Set-Cookie") where v.hasPrefix(name + "=") {
            return String(v.dropFirst(name.count + 1).prefix { $0 != ";" })
        }
        return nil
    }

    static func read(_ socket: StreamSocket, timeout: Duration) throws -> TestResponse {
        var reader = HTTPWireReader(socket: socket, deadline: IODeadline(call: MonotonicInstant.now().advanced(by: timeout), idle: nil))
        let head = try reader.readResponseHead()
        var body: [UInt8] = []
        try reader.readBody(try HTTPCodec.responseFraming(head, method: "GET")) { body.append(contentsOf: $0) }
        return TestResponse(status: head.status, headers: head.headers, body: body)
    }
}
