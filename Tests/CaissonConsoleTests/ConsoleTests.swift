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

@Suite struct ConsoleSecurityTests {
    @Test func tokenSignsInOnceWithAStrictCookieAndSecurityHeaders() throws {
        let c = try TestConsole()
        let url = try c.start()
        #expect(url.hasPrefix("http://127.0.0.1:\(c.port)/?token="))
        let token = String(url.split(separator: "=").last!)
        #expect(token.count == 64)
        // Written 0600 under the state directory.
        var st = stat()
        #expect(stat(c.stateDir + "/console-token", &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(try String(contentsOfFile: c.stateDir + "/console-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) == token)
        // Not signed in: the page sends to the login page; the API says 401.
        #expect(try c.request("GET", "/").header("Location") == "/login")
        #expect(try c.request("GET", "/api/state").status == 401)
        let r = try c.request("GET", "/?token=\(token)")
        #expect(r.status == 303)
        let setCookie = try #require(r.header("Set-Cookie"))
        #expect(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict") && setCookie.contains("Max-Age=28800"))
        c.cookie = r.cookie(ConsoleAuth.cookieName)
        let home = try c.request("GET", "/")
        #expect(home.status == 200)
        for (name, value) in [("X-Frame-Options", "DENY"), ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer")] {
            #expect(home.header(name) == value)
        }
        let csp = try #require(home.header("Content-Security-Policy"))
        #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && csp.contains("default-src 'none'"))
        #expect(!home.bodyText.contains("<script>") && !home.bodyText.contains(" on"+"click="))
        #expect(!home.bodyText.contains("http://") && !home.bodyText.contains("https://"))  // nothing fetched from outside
        // The token was one-time.
        c.cookie = nil
        #expect(try c.request("GET", "/?token=\(token)").status == 403)
        #expect(!FileManager.default.fileExists(atPath: c.stateDir + "/console-token"))
        // Login and sign-in failures are audited with the peer address.
        let events = try c.app().store().auditEvents().records.filter { $0.event.kind == .consoleAction }.map(\.event.message)
        #expect(events.contains { $0.contains("signed in (token)") && $0.contains("from 127.0.0.1") })
        #expect(events.contains { $0.contains("invalid or used token refused from 127.0.0.1") })
    }

    @Test func hostOriginAndCSRFRefusals() throws {
        let c = try TestConsole.signedIn()
        // DNS rebinding: a foreign name in Host.
        #expect(try c.request("GET", "/", host: "evil.example:\(c.port)").status == 403)
        #expect(try c.request("GET", "/", host: "127.0.0.1:1").status == 403)
        #expect(try c.request("GET", "/", host: "localhost:\(c.port)").status == 200)
        // Cross-site: another Origin.
        let pkg = try c.packageID("frontend-1.1.0.edgepkg")
        let body = Array("csrf=\(c.csrf)&package=\(pkg)".utf8)
        let crossSite = try c.request("POST", "/check", headers: [("Origin", "http://evil.example")], body: body, origin: false)
        #expect(crossSite.status == 403)
        // `Origin: null` (a sandboxed frame, a data: page) is only taken with Sec-Fetch-Site same-origin.
        #expect(try c.request("POST", "/check", headers: [("Origin", "null")], body: body, origin: false).status == 403)
        #expect(try c.request("POST", "/check", headers: [("Origin", "null"), ("Sec-Fetch-Site", "cross-site")], body: body, origin: false).status == 403)
        // No or wrong CSRF token.
        #expect(try c.post("/check", form: ["package": pkg], csrf: "").status == 403)
        #expect(try c.post("/check", form: ["package": pkg], csrf: String(repeating: "0", count: 64)).status == 403)
        #expect(c.console.operation == nil)  // nothing started
        // Every refusal changed nothing: no validation recorded.
        #expect(try c.app().store().validations().records.isEmpty)
        // A POST without a session is refused too.
        let saved = c.cookie
        c.cookie = nil
        #expect(try c.post("/check", form: ["package": pkg]).status == 401)
        c.cookie = saved
    }

    @Test func nonLoopbackNeedsAPasswordAndRateLimitsWrongOnes() throws {
        let noPassword = try TestConsole { $0.listenHost = "0.0.0.0" }
        #expect(throws: CaissonError.self) { try noPassword.start() }
        let c = try TestConsole(configure: { $0.listenHost = "0.0.0.0" }, password: "correct horse")
        _ = try c.start()
        let stored = try String(contentsOfFile: c.stateDir + "/console-password", encoding: .utf8)
        #expect(stored.hasPrefix("scrypt$15$8$1$") && !stored.contains("correct"))
        let login = try c.request("GET", "/login")
        #expect(login.status == 200 && login.bodyText.contains("type=\"password\""))
        func attempt(_ password: String) throws -> TestResponse {
            try c.request("POST", "/login", headers: [("Content-Type", "application/x-www-form-urlencoded")],
                          body: Array("password=\(password.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)".utf8), cookie: false)
        }
        // Host names other than IP literals are refused unless allowed.
        #expect(try c.request("GET", "/login", host: "device.local:\(c.port)").status == 403)
        let good = try attempt("correct horse")
        #expect(good.status == 303 && good.cookie(ConsoleAuth.cookieName) != nil)
        for _ in 0..<5 { #expect(try attempt("wrong guess").status == 401) }
        // Limited now, even with the right password.
        #expect(try attempt("correct horse").status == 429)
    }

    @Test func passwordHashing() {
        let h = ConsoleAuth.hashPassword("s3cret pass", salt: Array(repeating: 7, count: 16))!
        #expect(ConsoleAuth.verifyPassword("s3cret pass", against: h))
        #expect(!ConsoleAuth.verifyPassword("s3cret pasS", against: h))
        #expect(!ConsoleAuth.verifyPassword("s3cret pass", against: "scrypt$30$8$1$00$00"))  // hostile cost refused
        #expect(throws: CaissonError.self) { try ConsoleAuth.setPassword("short", stateDir: "/tmp/none") }
    }

    @Test func packagePathsOnlyFromMediaRootsAndUploads() throws {
        let c = try TestConsole.signedIn()
        // A symlink in the media root to a package outside it is not offered.
        let outside = c.dir + "/outside.edgepkg"
        try FileManager.default.copyItem(atPath: c.media + "/frontend-1.1.0.edgepkg", toPath: outside)
        try FileManager.default.createSymbolicLink(atPath: c.media + "/escape.edgepkg", withDestinationPath: outside)
        try FileManager.default.createDirectory(atPath: c.media + "/usb", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: c.media + "/usb/up", withDestinationPath: c.dir)
        let names = c.console.media.scan().map(\.name)
        #expect(!names.contains("escape.edgepkg") && !names.contains("outside.edgepkg"))
        #expect(names.contains("frontend-1.1.0.edgepkg"))
        // Paths or made-up ids are not accepted.
        for bad in ["../outside.edgepkg", c.dir + "/outside.edgepkg", MediaLibrary.id(outside), "zz"] {
            #expect(try c.post("/check", form: ["package": bad]).status == 404)
        }
        #expect(c.console.operation == nil)
    }
}

@Suite struct ConsoleOperationTests {
    @Test func goodUpdateLeavesTheCLIsRecordsPlusWhoAndWhere() throws {
        let c = try TestConsole.signedIn()
        let pkg = try c.packageID("frontend-1.1.0.edgepkg")
        #expect(try c.post("/check", form: ["package": pkg]).status == 303)
        try c.wait(for: .confirming)
        let page = try c.request("GET", "/operation")
        #expect(page.bodyText.contains("Update frontend now") && page.bodyText.contains("The package is valid"))
        let op = try #require(c.console.operation).id
        #expect(try c.post("/operation/go", form: ["op": op]).status == 303)
        try c.wait(for: .finished)
        let result = try c.request("GET", "/operation").bodyText
        #expect(result.contains("Updated and healthy"))
        // The same update by the CLI's call, on a fresh copy of the device.
        let cli = try TestConsole()
        let app = cli.app()
        let outcome = try app.load(cli.media + "/frontend-1.1.0.edgepkg", confirm: { _ in true })
        app.finish()
        #expect(outcome.attempt?.status == .succeeded)
        func kinds(_ a: Application) throws -> [String] {
            try a.store().auditEvents().records.map(\.event.kind.rawValue).filter { $0 != "console_action" }
        }
        #expect(try kinds(c.app()) == kinds(app))
        let consoleAttempt = try #require(try c.app().store().updateAttempts().records.first)
        let cliAttempt = try #require(try app.store().updateAttempts().records.first)
        #expect(consoleAttempt.status == cliAttempt.status && consoleAttempt.kind == cliAttempt.kind)
        #expect(consoleAttempt.targetImageReference == cliAttempt.targetImageReference)
        #expect(consoleAttempt.healthCheck?.outcome == cliAttempt.healthCheck?.outcome)
        // The console's own events say who and from where.
        let actions = try c.app().store().auditEvents().records.filter { $0.event.kind == .consoleAction }.map(\.event.message)
        #expect(actions.contains { $0.contains("asked to update from package frontend-1.1.0.edgepkg") && $0.contains("from 127.0.0.1") })
        #expect(actions.contains { $0.contains("confirmed the update") })
    }

    @Test func failingHealthCheckRollsBackAndRejectedPackageChangesNothing() throws {
        let c = try TestConsole.signedIn()
        #expect(try c.post("/check", form: ["package": try c.packageID("frontend-1.2.0.edgepkg")]).status == 303)
        try c.wait(for: .confirming)
        _ = try c.post("/operation/go", form: ["op": try #require(c.console.operation).id])
        try c.wait(for: .finished)
        #expect(c.console.operation?.snapshot.result?.outcome == "rolled_back")
        #expect(try c.request("GET", "/operation").bodyText.contains("the previous version is running again"))
        // A hostile package: rejected in plain words, nothing changed.
        let before = try c.app().store().updateAttempts().records.count
        #expect(try c.post("/check", form: ["package": try c.packageID("frontend-evil.edgepkg")]).status == 303)
        try c.wait(for: .finished)
        let page = try c.request("GET", "/operation").bodyText
        #expect(page.contains("This package was not accepted") && page.contains("image.unexpected_tags"))
        #expect(page.contains("Made for this device's service <strong>frontend</strong>"))
        #expect(page.contains(IssueExplanations.explain("image.unexpected_tags").meaning.replacingOccurrences(of: "'", with: "&#39;")))
        #expect(try c.app().store().updateAttempts().records.count == before)
    }

    @Test func twoAppliesAtOnceOneIsRefused() throws {
        let c = try TestConsole.signedIn()
        #expect(try c.post("/check", form: ["package": try c.packageID("frontend-1.1.0.edgepkg")]).status == 303)
        try c.wait(for: .confirming)
        let second = try c.post("/check", form: ["package": try c.packageID("frontend-1.2.0.edgepkg")])
        #expect(second.status == 409)
        #expect(second.bodyText.contains("Another update is in progress"))
        // Another process holding the store's lock: the console's operation is refused, nothing changes.
        _ = try c.post("/operation/cancel", form: ["op": try #require(c.console.operation).id])
        try c.wait(for: .finished)
        #expect(c.console.operation?.snapshot.result?.outcome == "declined")
        let lock = try OperationLock.acquire(stateDir: c.stateDir, operation: "package load /elsewhere/x.edgepkg", since: "2026-01-01T00:00:00Z")
        defer { lock.release() }
        let refused = try c.post("/check", form: ["package": try c.packageID("frontend-1.1.0.edgepkg")])
        #expect(refused.status == 409 && refused.bodyText.contains("Nothing was changed"))
        #expect(c.console.operation?.snapshot.result?.outcome == "declined", "no new operation started")
        #expect(try c.app().store().updateAttempts().records.isEmpty)
        // Meanwhile the home page shows the other operation, read-only.
        let home = try c.request("GET", "/").bodyText
        #expect(home.contains("Another Caisson program is working on this device") && home.contains("Installing an update from x.edgepkg"))
        #expect(home.contains("Process <span id=\"other-pid\">\(getpid())</span>, since <span id=\"other-since\">2026-01-01 00:00:00 UTC</span>"))
        // Should another process take the lock between the page and the operation, the store's lock refuses it.
        let session = try #require(c.console.auth.session(cookie: c.cookie))
        _ = try #require(c.console.begin(.update(packageName: "frontend-1.1.0.edgepkg", path: c.media + "/frontend-1.1.0.edgepkg", upload: false),
                                         session: session, peer: "127.0.0.1"))
        try c.wait(for: .finished)
        let r = try #require(c.console.operation?.snapshot.result)
        #expect(r.outcome == "refused" && r.issues.first?.code == "lock.busy")
        #expect(try c.app().store().updateAttempts().records.isEmpty)
    }

    @Test func aSecondBrowserWatchesButCannotAnswer() throws {
        let c = try TestConsole.signedIn()
        _ = try c.post("/check", form: ["package": try c.packageID("frontend-1.1.0.edgepkg")])
        try c.wait(for: .confirming)
        let op = try #require(c.console.operation).id
        // Another session (as another browser would have).
        let (cookie, session) = c.console.auth.createSession(method: "password", peer: "10.0.0.2")
        let mine = (c.cookie, c.csrf)
        c.cookie = cookie
        c.csrf = session.csrf
        let page = try c.request("GET", "/operation").bodyText
        #expect(page.contains("Started from another browser") && !page.contains("Update frontend now"))
        #expect(try c.post("/operation/go", form: ["op": op]).status == 403)
        #expect(c.console.operation?.snapshot.phase == .confirming)
        (c.cookie, c.csrf) = mine
        _ = try c.post("/operation/cancel", form: ["op": op])
        try c.wait(for: .finished)
    }

    @Test func rollbackFromHistoryAndAuditVerify() throws {
        let c = try TestConsole.signedIn()
        _ = try c.post("/check", form: ["package": try c.packageID("frontend-1.1.0.edgepkg")])
        try c.wait(for: .confirming)
        _ = try c.post("/operation/go", form: ["op": try #require(c.console.operation).id])
        try c.wait(for: .finished)
        let confirm = try c.request("GET", "/rollback?service=frontend")
        #expect(confirm.status == 200 && confirm.bodyText.contains("Yes, go back to the previous version"))
        #expect(try c.post("/rollback", form: ["service": "frontend"]).status == 303)
        try c.wait(for: .finished)
        let result = try #require(c.console.operation?.snapshot.result)
        #expect(result.outcome == "updated" && result.attempt?.kind == "rollback")
        let history = try c.request("GET", "/history").bodyText
        #expect(history.contains("Rollback succeeded") && history.contains("Update succeeded"))
        let id = try #require(result.attempt?.updateID)
        let detail = try c.request("GET", "/history/\(id)").bodyText
        #expect(detail.contains("What happened") && detail.contains("rollback"))
        let verify = try c.post("/audit/verify", form: [:])
        #expect(verify.status == 200 && verify.bodyText.contains("The audit log is intact"))
    }

    @Test func uploadIsStreamedToStagingAndCutUploadsLeaveNothing() throws {
        let c = try TestConsole.signedIn()
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: c.media + "/frontend-1.1.0.edgepkg")))
        let headers = [("X-CSRF-Token", c.csrf), ("X-Filename", "from%20laptop.edgepkg"), ("Content-Type", "application/octet-stream")]
        let r = try c.request("POST", "/upload", headers: headers, body: bytes)
        #expect(r.status == 201)
        var h = SHA256()
        h.update(bytes)
        #expect(r.bodyText.contains(h.hex))
        let uploads = c.app().uploadDir
        #expect(try FileManager.default.contentsOfDirectory(atPath: uploads) == ["from_laptop.edgepkg"])
        #expect(c.console.media.scan().contains { $0.source == "upload" && $0.name == "from_laptop.edgepkg" })
        // Cut mid-way: the client announces everything, sends half, and goes away.
        let s = try c.connect()
        var head = "POST /upload HTTP/1.1\r\nHost: \(c.host)\r\nOrigin: http://\(c.host)\r\nCookie: \(ConsoleAuth.cookieName)=\(c.cookie!)\r\n"
        head += "X-CSRF-Token: \(c.csrf)\r\nX-Filename: cut.edgepkg\r\nContent-Length: \(bytes.count)\r\n\r\n"
        try s.write(Array(head.utf8) + Array(bytes.prefix(bytes.count / 2)), deadline: .none)
        usleep(300_000)
        s.close()
        var clean = false
        for _ in 0..<50 where !clean {
            usleep(50_000)
            clean = try FileManager.default.contentsOfDirectory(atPath: uploads) == ["from_laptop.edgepkg"]
        }
        #expect(clean)
        // Not a package name, too big for the disk, no length: refused before a byte is kept.
        #expect(try c.request("POST", "/upload", headers: [("X-CSRF-Token", c.csrf), ("X-Filename", "notes.txt")], body: [1, 2, 3]).status == 415)
        #expect(try c.request("POST", "/upload", headers: [("X-CSRF-Token", c.csrf), ("X-Filename", "x.edgepkg"), ("Transfer-Encoding", "chunked")], body: Array("0\r\n\r\n".utf8)).status == 411)
        #expect(try c.request("POST", "/upload", headers: [("X-CSRF-Token", c.csrf), ("X-Filename", "x.edgepkg"), ("Content-Length", "\(Int64(1) << 45)")]).status == 413)
        #expect(try FileManager.default.contentsOfDirectory(atPath: uploads) == ["from_laptop.edgepkg"])
    }

    @Test func uploadRefusedWhenTheDiskLacksRoom() throws {
        let c = try TestConsole.signedIn { $0.maxUploadBytes = .max }
        let r = try c.request("POST", "/upload", headers: [("X-CSRF-Token", c.csrf), ("X-Filename", "x.edgepkg"), ("Content-Length", "\(Int64(1) << 50)")])
        #expect(r.status == 507)
        #expect(r.bodyText.contains("staging.insufficient_space"))
        #expect((try? FileManager.default.contentsOfDirectory(atPath: c.app().uploadDir)) ?? [] == [])
    }

    @Test func eventsResumeAfterLastEventID() throws {
        let c = try TestConsole.signedIn()
        _ = try c.post("/check", form: ["package": try c.packageID("frontend-1.1.0.edgepkg")])
        try c.wait(for: .confirming)
        _ = try c.post("/operation/go", form: ["op": try #require(c.console.operation).id])
        try c.wait(for: .finished)
        let all = try c.app().store().auditEvents().records
        #expect(all.count > 6)
        let resumeAfter = all[3].seq
        // Reconnect as EventSource does, naming the last id it saw.
        let s = try c.connect()
        try s.write(Array("GET /events HTTP/1.1\r\nHost: \(c.host)\r\nCookie: \(ConsoleAuth.cookieName)=\(c.cookie!)\r\nLast-Event-ID: \(resumeAfter)\r\n\r\n".utf8), deadline: .none)
        var reader = HTTPWireReader(socket: s, deadline: IODeadline(call: MonotonicInstant.now().advanced(by: .seconds(10)), idle: nil))
        let head = try reader.readResponseHead()
        #expect(head.status == 200 && head.header("Content-Type") == "text/event-stream")
        var text = ""
        var ids: [Int64] = []
        do {
            try reader.readBody(.chunked) { chunk in
                text += String(decoding: chunk, as: UTF8.self)
                ids = text.matches(of: /id: (\d+)\n/).compactMap { Int64($0.1) }
                if ids.contains(all.last!.seq) && text.contains("event: state") { throw CancellationError() }
            }
        } catch is CancellationError {}
        let expected = all.filter { $0.seq > resumeAfter }.map(\.seq)
        #expect(Array(ids.prefix(expected.count)) == expected)
        #expect(text.contains("\"phase\":\"finished\""))
    }

    @Test func stopCancelsAQuestionAndLeavesNothingHalfDone() throws {
        let c = try TestConsole.signedIn()
        _ = try c.post("/check", form: ["package": try c.packageID("frontend-1.1.0.edgepkg")])
        try c.wait(for: .confirming)
        c.console.stop(grace: .seconds(10))
        #expect(c.console.operation?.snapshot.result?.outcome == "declined")
        #expect(try c.app().store().updateAttempts().records.isEmpty)
        #expect(try c.app().store().inFlightAttempts().isEmpty)
    }
}
