import CaissonApp
import CaissonCore
import CaissonHTTP
import CaissonStore
import Foundation
import Testing
@testable import CaissonConsole
#if canImport(Glibc)
import Glibc
#endif

/// The upload form without JavaScript: a streamed `multipart/form-data` body.
@Suite struct MultipartUploadTests {
    static func body(boundary: String, fields: [(String, String)], file: (name: String, bytes: [UInt8])?) -> [UInt8] {
        var out: [UInt8] = []
        for (n, v) in fields {
            out += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(n)\"\r\n\r\n\(v)\r\n".utf8)
        }
        if let file {
            out += Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(file.name)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
            out += file.bytes + Array("\r\n".utf8)
        }
        return out + Array("--\(boundary)--\r\n".utf8)
    }

    /// Fed in pieces of every size, the parts come out the same; the file's bytes are never
    /// kept back more than a delimiter's length.
    @Test func parsesAcrossAnyChunking() throws {
        let boundary = "----WebKitFormBoundaryX7abc"
        // File content that looks like the delimiter's beginning, CRLFs and dashes.
        var content = Array("\r\n--\r\n----WebKitFormBoundaryX7ab\r\n-".utf8)
        for i in 0..<3000 { content.append(UInt8(truncatingIfNeeded: i &* 31)) }
        let body = Self.body(boundary: boundary, fields: [("csrf", "abc123"), ("note", "a\r\nb")], file: ("pkg.edgepkg", content))
        for size in [1, 2, 3, 7, 13, 40, 41, 64, 1000, body.count] {
            let m = MultipartStream(boundary: boundary)
            var fields: [String: String] = [:]
            var file: [UInt8] = []
            var head: MultipartStream.PartHead?
            m.onField = { fields[$0] = $1 }
            m.onFileStart = { head = $0 }
            m.onFileData = { file += $0 }
            var i = 0
            while i < body.count {
                let piece = Array(body[i..<min(i + size, body.count)])
                try piece.withUnsafeBytes { try m.feed($0) }
                i += size
            }
            try m.finish()
            #expect(fields == ["csrf": "abc123", "note": "a\r\nb"], "chunk size \(size)")
            #expect(head == MultipartStream.PartHead(name: "file", filename: "pkg.edgepkg"))
            #expect(file == content, "chunk size \(size)")
        }
    }

    @Test func malformedBodiesAreRefused() throws {
        #expect(MultipartStream.boundary(contentType: "multipart/form-data; boundary=abc") == "abc")
        #expect(MultipartStream.boundary(contentType: "Multipart/Form-Data; charset=x; boundary=\"a=b\"") == "a=b")
        #expect(MultipartStream.boundary(contentType: "multipart/form-data") == nil)
        #expect(MultipartStream.boundary(contentType: "application/octet-stream; boundary=abc") == nil)
        #expect(MultipartStream.boundary(contentType: "multipart/form-data; boundary=" + String(repeating: "x", count: 71)) == nil)
        func run(_ text: String) throws {
            let m = MultipartStream(boundary: "b")
            try Array(text.utf8).withUnsafeBytes { try m.feed($0) }
            try m.finish()
        }
        // Cut before the closing boundary; no boundary at all; a part without a disposition.
        #expect(throws: CaissonError.self) { try run("--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nvalue") }
        #expect(throws: CaissonError.self) { try run(String(repeating: "z", count: 5000)) }
        #expect(throws: CaissonError.self) { try run("--b\r\nContent-Type: text/plain\r\n\r\nv\r\n--b--") }
        #expect(throws: CaissonError.self) { try run("--bXX") }
        #expect(throws: CaissonError.self) {
            try run("--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n" + String(repeating: "v", count: 5000) + "\r\n--b--")
        }
        #expect(throws: Never.self) { try run("--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n--b--\r\n") }
    }

    func formPost(_ c: TestConsole, _ body: [UInt8], boundary: String = "caissonFormBoundary") throws -> TestResponse {
        try c.request("POST", "/upload", headers: [("Content-Type", "multipart/form-data; boundary=\(boundary)")], body: body)
    }

    @Test func formUploadIsStreamedCheckedAndOffersTheCheck() throws {
        let c = try TestConsole.signedIn()
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: c.media + "/frontend-1.1.0.edgepkg")))
        let uploads = c.app().uploadDir
        func kept() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: uploads)) ?? []).sorted() }
        // The home page's form works without script: multipart, with its token first.
        let home = try c.request("GET", "/").bodyText
        #expect(home.contains("enctype=\"multipart/form-data\"><input type=\"hidden\" name=\"csrf\""))
        // No token, a wrong token, a token after the file: 403, nothing kept.
        let b = "caissonFormBoundary"
        #expect(try formPost(c, Self.body(boundary: b, fields: [], file: ("a.edgepkg", bytes))).status == 403)
        #expect(try formPost(c, Self.body(boundary: b, fields: [("csrf", String(repeating: "0", count: 64))], file: ("a.edgepkg", bytes))).status == 403)
        var late = Array("--\(b)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.edgepkg\"\r\n\r\n".utf8) + bytes
        late += Array("\r\n--\(b)\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n\(c.csrf)\r\n--\(b)--\r\n".utf8)
        #expect(try formPost(c, late).status == 403)
        #expect(kept().isEmpty)
        // No file chosen; not a package; cut before its end: refused in words, nothing kept.
        let none = try formPost(c, Self.body(boundary: b, fields: [("csrf", c.csrf)], file: ("", [])))
        #expect(none.status == 400 && none.bodyText.contains("Choose a package file first"))
        #expect(try formPost(c, Self.body(boundary: b, fields: [("csrf", c.csrf)], file: ("notes.txt", [1, 2, 3]))).status == 415)
        let whole = Self.body(boundary: b, fields: [("csrf", c.csrf)], file: ("from laptop.edgepkg", bytes))
        let cut = try formPost(c, Array(whole.dropLast(8)))
        #expect(cut.status == 400 && cut.bodyText.contains("Nothing was kept"))
        #expect(kept().isEmpty)
        // The whole form: stored under a safe name with its hash, and the page offers the check.
        let r = try formPost(c, whole)
        #expect(r.status == 201)
        var h = SHA256()
        h.update(bytes)
        #expect(r.bodyText.contains(h.hex) && r.bodyText.contains("Check this package"))
        #expect(kept() == ["from_laptop.edgepkg"])
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: uploads + "/from_laptop.edgepkg"))) == bytes)
        let id = try #require(r.bodyText.firstMatch(of: /name="package" value="([0-9a-f]{32})"/).map { String($0.1) })
        #expect(try c.post("/check", form: ["package": id]).status == 303)
        try c.wait(for: .confirming)
        _ = try c.post("/operation/cancel", form: ["op": try #require(c.console.operation).id])
        try c.wait(for: .finished)
        let audit = try c.app().store().auditEvents().records.map(\.event.message)
        #expect(audit.contains { $0.contains("uploaded from_laptop.edgepkg") && $0.contains("with the form") && $0.contains("from 127.0.0.1") })
    }
}

/// Another Caisson process (the `caisson` binary, from a terminal) mid-update on the same state
/// directory: the console shows it — process, step, since — and changes nothing.
@Suite(.serialized) struct OtherProcessTests {
    static var binary: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let p = candidate.appendingPathComponent("caisson").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return dir.appendingPathComponent("caisson").path
    }

    @Test func anUpdateFromTheCommandLineIsShownAndTheConsoleChangesNothing() throws {
        let c = try TestConsole.signedIn()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = ["--services", c.options.servicesPath, "--state-dir", c.stateDir, "--host", "sim",
                       "package", "load", c.media + "/frontend-1.1.0.edgepkg", "--yes"]
        var env = ProcessInfo.processInfo.environment
        env["CAISSON_DEBUG_PAUSE_AT"] = "health"
        env["CAISSON_DEBUG_PAUSE_MS"] = "60000"
        env["CAISSON_DEBUG_RESUME_FILE"] = c.dir + "/resume"
        p.environment = env
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // Wait until it sits in the health check, holding the lock.
        var paused = false
        let deadline = Date().addingTimeInterval(60)
        while !paused && Date() < deadline && p.isRunning {
            usleep(50_000)
            paused = (try? c.app().store().inFlightAttempts().first?.attempt.status) == .healthChecking
        }
        #expect(paused, "the command line's update never reached its health check")
        let pid = p.processIdentifier
        let state = try c.request("GET", "/api/state").bodyText
        #expect(state.contains("\"pid\":\(pid)") && state.contains("\"status\":\"health_checking\"") && state.contains("Installing an update from frontend-1.1.0.edgepkg"), "\(state)")
        let home = try c.request("GET", "/").bodyText
        #expect(home.contains("Another Caisson program is working on this device"))
        #expect(home.contains("Process <span id=\"other-pid\">\(pid)</span>"))
        #expect(home.contains("frontend: Checking that it is healthy"))
        #expect(home.contains("Check this package</button>") && home.contains(" disabled>Check this package"))
        #expect(home.contains("data-phase=\"external\""))
        // Its buttons are refused server-side too: 409 naming the process, nothing started.
        let refused = try c.post("/check", form: ["package": try c.packageID("frontend-1.2.0.edgepkg")])
        #expect(refused.status == 409 && refused.bodyText.contains(">\(pid)<") && refused.bodyText.contains("Nothing was changed"))
        #expect(try c.post("/rollback", form: ["service": "frontend"]).status == 409)
        #expect(c.console.operation == nil)
        #expect(try c.app().store().updateAttempts().records.count == 1)
        let operation = try c.request("GET", "/operation").bodyText
        #expect(operation.contains("other-step") && operation.contains("data-phase=\"external\""))
        // It finishes by itself; then the console is free again and the command line's attempt stands.
        FileManager.default.createFile(atPath: c.dir + "/resume", contents: nil)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))")
        #expect(try c.app().store().updateAttempts().records.map(\.status) == [.succeeded])
        #expect(!(try c.request("GET", "/").bodyText.contains("Another Caisson program")))
        let audit = try c.app().store().auditEvents().records.map(\.event.message)
        #expect(audit.contains { $0.contains("refused: another Caisson operation is running") && $0.contains("pid \(pid)") })
    }

    /// On the simulator the console paces simulated waits in real time: the health check counts down.
    @Test func theSimulatorsHealthCheckCountsDown() throws {
        let c = try TestConsole.signedIn { $0.simPace = 1 }
        _ = try c.post("/check", form: ["package": try c.packageID("frontend-1.1.0.edgepkg")])
        try c.wait(for: .confirming)
        _ = try c.post("/operation/go", form: ["op": try #require(c.console.operation).id])
        var seen: [Int] = []
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, c.console.operation?.isFinished == false {
            let doc = c.console.currentState(app: c.app())
            if let left = doc.in_flight.first?.health_remaining_secs, seen.last != left { seen.append(left) }
            usleep(100_000)
        }
        #expect(c.console.operation?.snapshot.result?.outcome == "updated")
        // The demo's health check allows 30 s; the image is healthy after 2 simulated seconds.
        #expect(seen.count >= 2, "\(seen)")
        #expect(seen.first.map { $0 <= 30 && $0 >= 27 } == true, "\(seen)")
        #expect(seen == seen.sorted(by: >), "\(seen)")
    }
}

/// `caisson console --json` and `caisson console password --json`: one document each.
@Suite struct ConsoleJSONTests {
    @Test func consoleAndPasswordPrintOneDocument() throws {
        let c = try TestConsole()
        let env = ["CAISSON_CONSOLE_PASSWORD": "kiosk-pass-1234"]
        func run(_ args: [String], until line: Bool) throws -> (String, Process) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: OtherProcessTests.binary)
            p.arguments = ["--services", c.options.servicesPath, "--state-dir", c.stateDir, "--host", "sim", "--json"] + args
            p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            if line {
                var data = Data()
                while !data.contains(10) {
                    let d = out.fileHandleForReading.availableData
                    if d.isEmpty { break }
                    data += d
                }
                return (String(decoding: data, as: UTF8.self), p)
            }
            p.waitUntilExit()
            return (String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self), p)
        }
        let (pw, pp) = try run(["console", "password"], until: false)
        #expect(pp.terminationStatus == 0)
        let pwDoc = try #require(try JSONSerialization.jsonObject(with: Data(pw.utf8)) as? [String: Any])
        #expect(pwDoc["password_file"] as? String == c.stateDir + "/console-password")
        #expect(pwDoc["status"] as? String == "ok" && pwDoc["exit_code"] as? Int == 0)
        let (first, console) = try run(["console", "--listen", "127.0.0.1:0", "--media", c.media], until: true)
        defer { console.terminate(); console.waitUntilExit() }
        #expect(first.hasSuffix("\n") && first.dropLast().split(separator: "\n").count == 1, "one line: \(first)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any])
        let port = try #require(doc["port"] as? Int)
        #expect(port > 0 && doc["status"] as? String == "serving" && doc["password_required"] as? Bool == false)
        let url = try #require(doc["url"] as? String)
        #expect(url.hasPrefix("http://127.0.0.1:\(port)/?token="))
        let token = String(url.split(separator: "=").last!)
        #expect(token.count == 64)
        #expect(doc["token_file"] as? String == c.stateDir + "/console-token")
        var st = stat()
        #expect(stat(c.stateDir + "/console-token", &st) == 0 && st.st_mode & 0o777 == 0o600)
    }
}
