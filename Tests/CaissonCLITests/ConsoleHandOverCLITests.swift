import CaissonCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 14 item 5, end to end with real executables: `caisson console` runs from an installed
/// copy of this build; a signed updater package of a second copy stamped 9.1.0 is self-updated
/// onto that install path; the console notices, re-executes the new executable on the same
/// address and pid, keeps the browser's session, and its pages say what happened.
@Suite(.serialized) struct ConsoleHandOverCLITests {
    /// A running `caisson console` and its standard output, line by line.
    final class RunningConsole: @unchecked Sendable {
        let process = Process()
        private let out = Pipe()
        private let lock = NSLock()
        private var buffer = ""
        private(set) var stderrText = ""

        init(exe: String, dir: String) throws {
            process.executableURL = URL(fileURLWithPath: exe)
            process.currentDirectoryURL = URL(fileURLWithPath: dir)
            process.arguments = ["--host", "sim", "console", "--listen", "127.0.0.1:0", "--media", dir + "/media"]
            var env = ProcessInfo.processInfo.environment
            env["CAISSON_SIM_PACE"] = "0"
            process.environment = env
            process.standardOutput = out
            let err = Pipe()
            process.standardError = err
            process.standardInput = FileHandle.nullDevice
            out.fileHandleForReading.readabilityHandler = { [weak self] h in
                let d = h.availableData
                guard let self, !d.isEmpty else { return }
                self.lock.withLock { self.buffer += String(decoding: d, as: UTF8.self) }
            }
            err.fileHandleForReading.readabilityHandler = { [weak self] h in
                let d = h.availableData
                guard let self, !d.isEmpty else { return }
                self.lock.withLock { self.stderrText += String(decoding: d, as: UTF8.self) }
            }
            try process.run()
        }

        /// The `n`th line of standard output (1-based), waiting up to `seconds`.
        func line(_ n: Int, seconds: Double = 60) -> String? {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                let lines = lock.withLock { buffer.split(separator: "\n", omittingEmptySubsequences: true).map(String.init) }
                if lines.count >= n, lock.withLock({ buffer.hasSuffix("\n") || lines.count > n }) { return lines[n - 1] }
                usleep(50_000)
            }
            return nil
        }

        var errors: String { lock.withLock { stderrText } }

        func stop() {
            if process.isRunning { kill(process.processIdentifier, SIGTERM) }
            let deadline = Date().addingTimeInterval(20)
            while process.isRunning && Date() < deadline { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
    }

    struct Response {
        var status: Int
        var head: String
        var body: String
        func header(_ name: String) -> String? {
            for l in head.split(separator: "\r\n") where l.lowercased().hasPrefix(name.lowercased() + ":") {
                return l.dropFirst(name.count + 1).trimmingCharacters(in: .whitespaces)
            }
            return nil
        }
    }

    /// One GET over a fresh connection (`Connection: close`), read to the end; nil when nothing
    /// listens.
    static func get(port: UInt16, _ target: String, cookie: String? = nil) -> Response? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { return nil }
        var req = "GET \(target) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        if let cookie { req += "Cookie: caisson_session=\(cookie)\r\n" }
        req += "\r\n"
        let bytes = Array(req.utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else { return nil }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data += chunk[0..<n]
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { return nil }
        let head = String(text[..<split.lowerBound])
        let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? 0
        return Response(status: status, head: head, body: String(text[split.upperBound...]))
    }

    @Test func theConsoleRestartsOnTheSelfUpdatedExecutableAndThePageReconnects() throws {
        let i = try SelfUpdateCLITests.Install()
        try FileManager.default.createDirectory(atPath: i.c.dir + "/media", withIntermediateDirectories: true)
        let new = try i.stamped(SelfUpdateCLITests.newVersion, "caisson-new")
        let pkg = "caisson-\(SelfUpdateCLITests.newVersion).edgepkg"
        let built = try i.package(new, version: SelfUpdateCLITests.newVersion, name: pkg)
        #expect(built.status == 0, "\(built.stdout) \(built.stderr)")

        // The console, from the installed copy.
        let console = try RunningConsole(exe: i.installPath, dir: i.c.dir)
        defer { console.stop() }
        let pid = console.process.processIdentifier
        let url = try #require(console.line(1), "no address printed: \(console.errors)")
        let match = try #require(url.firstMatch(of: /^http:\/\/127\.0\.0\.1:([0-9]+)(\/\?token=[0-9a-f]+)$/), "\(url)")
        let port = try #require(UInt16(match.1))
        let signIn = try #require(Self.get(port: port, String(match.2)))
        #expect(signIn.status == 303)
        let cookie = try #require(signIn.header("Set-Cookie")?.firstMatch(of: /caisson_session=([0-9a-f]+)/).map { String($0.1) })
        let before = try #require(Self.get(port: port, "/", cookie: cookie))
        #expect(before.status == 200)
        #expect(before.body.contains("version \(i.installedVersion)"))
        // The device page listens for live events, and knows which version rendered it.
        #expect(before.body.contains("data-version=\"\(i.installedVersion)\"") && before.body.contains("data-live=\"1\""))

        // A self-update of the executable the console runs from (from the command line).
        let r = try i.selfUpdate(pkg)
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(try SelfUpdateCLITests.Install.version(of: i.installPath) == SelfUpdateCLITests.newVersion)

        // The console restarts on it: same pid (exec), a new sign-in line, the same address.
        let second = try #require(console.line(2, seconds: 60), "the console did not restart: \(console.errors)")
        #expect(second.hasPrefix("http://127.0.0.1:\(port)/?token="), "\(second)")
        #expect(console.process.isRunning && console.process.processIdentifier == pid)
        #expect(console.errors.contains("Restarting the console on it"), "\(console.errors)")
        // The browser's session still works; the page says what happened.
        let after = try #require(Self.get(port: port, "/", cookie: cookie))
        #expect(after.status == 200, "\(after.head)")
        #expect(after.body.contains("version \(SelfUpdateCLITests.newVersion)"))
        #expect(after.body.contains("data-version=\"\(SelfUpdateCLITests.newVersion)\""))
        #expect(after.body.contains("Caisson was updated from version \(i.installedVersion) to \(SelfUpdateCLITests.newVersion)"), "\(after.body)")
        #expect(after.body.contains("This console restarted on it"))
        // What an open page's live events now say: another version, so the page reloads.
        let state = try #require(Self.get(port: port, "/api/state", cookie: cookie))
        #expect(state.status == 200 && state.body.contains("\"version\":\"\(SelfUpdateCLITests.newVersion)\""), "\(state.body)")
        // The audit log (with the console's restart in it) is intact; the new console stops cleanly.
        let audit = try i.c.run(["history", "verify"])
        #expect(audit.status == 0, "\(audit.stdout) \(audit.stderr)")
        console.stop()
        #expect(!console.process.isRunning && console.process.terminationStatus == 0, "\(console.errors)")
    }
}
