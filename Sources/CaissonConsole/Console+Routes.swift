import CaissonApp
import CaissonCore
import CaissonHTTP
import Foundation

/// Request handling: the security checks every request passes, then the routes. Handlers only
/// read, or start an operation through `ConsoleOperation` (which calls `Application`).
extension Console {
    static let securityHeaders: [HTTPHeader] = [
        HTTPHeader("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
        HTTPHeader("X-Frame-Options", "DENY"),
        HTTPHeader("X-Content-Type-Options", "nosniff"),
        HTTPHeader("Referrer-Policy", "no-referrer"),
        HTTPHeader("Cache-Control", "no-store"),
        HTTPHeader("Cross-Origin-Opener-Policy", "same-origin"),
        HTTPHeader("Cross-Origin-Resource-Policy", "same-origin"),
    ]

    /// Everything a handler needs about the request and who sent it.
    struct Context {
        var request: HTTPServerRequest
        var path: String
        var session: ConsoleAuth.Session?
        var cookie: String?
        var peer: String
        var form: [(name: String, value: String)] = []

        func field(_ name: String) -> String? { form.first { $0.name == name }?.value }
        var actor: String { session.map { Console.actor($0, peer: peer) } ?? "anonymous from \(peer)" }
    }

    func handle(_ request: HTTPServerRequest) -> HTTPServerResponse {
        var response = route(request)
        response.headers += Self.securityHeaders
        return response
    }

    /// `Host` must name this console: an IP literal with our port, `localhost` on loopback, or a
    /// name given with `--allow-host`. A DNS-rebinding page has its own name in `Host`.
    func hostAllowed(_ host: String?) -> Bool {
        guard let host, !host.isEmpty, host.utf8.count <= 255 else { return false }
        var name = host
        var portText: String?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            name = String(host[host.index(after: host.startIndex)..<close])
            let rest = host[host.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return false }
                portText = String(rest.dropFirst())
            }
        } else if let colon = host.lastIndex(of: ":") {
            name = String(host[..<colon])
            portText = String(host[host.index(after: colon)...])
        }
        guard (portText.flatMap { UInt16($0) } ?? 80) == port else { return false }
        let lower = name.lowercased()
        if (try? StreamSocket.makeAddress(host: lower, port: 0)) != nil {
            // An IP literal. On loopback only loopback literals; otherwise any (the console
            // listens on an address, and a rebinding attack cannot produce an IP literal).
            return !config.isLoopback || ConsoleConfig.isLoopback(lower)
        }
        if lower == "localhost" && config.isLoopback { return true }
        return config.allowedHosts.contains { $0.lowercased() == lower }
    }

    static func cookie(_ request: HTTPServerRequest, _ name: String) -> String? {
        for header in request.head.headers.all("Cookie") {
            for part in header.split(separator: ";") {
                let kv = part.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
                if kv.count == 2, kv[0] == name { return kv[1] }
            }
        }
        return nil
    }

    func route(_ request: HTTPServerRequest) -> HTTPServerResponse {
        let head = request.head
        guard hostAllowed(head.header("Host")) else {
            return Pages.plain(403, "Forbidden: this console is not reachable under the name \(head.header("Host") ?? "(none)").")
        }
        // A browser says `Origin: null` for a form sent under `Referrer-Policy: no-referrer`;
        // then its `Sec-Fetch-Site` must say the form came from this console.
        if let origin = head.header("Origin"), origin != "http://\(head.header("Host")!)",
           origin != "null" || head.header("Sec-Fetch-Site") != "same-origin" {
            return Pages.plain(403, "Forbidden: a request from another site (\(origin)) was refused.")
        }
        if head.header("Sec-Fetch-Site") == "cross-site" {
            return Pages.plain(403, "Forbidden: a request from another site was refused.")
        }
        guard let path = head.path else { return Pages.plain(400, "Bad request: the address is not valid.") }
        let cookie = Self.cookie(request, ConsoleAuth.cookieName)
        var ctx = Context(request: request, path: path, session: auth.session(cookie: cookie), cookie: cookie, peer: request.peerHost)
        let method = head.method

        // Public: assets and the login page.
        switch (method, path) {
        case ("GET", "/app.css"), ("HEAD", "/app.css"):
            return HTTPServerResponse(status: 200, headers: [HTTPHeader("Content-Type", "text/css; charset=utf-8")], body: ConsoleAssets.css)
        case ("GET", "/app.js"), ("HEAD", "/app.js"):
            return HTTPServerResponse(status: 200, headers: [HTTPHeader("Content-Type", "text/javascript; charset=utf-8")], body: ConsoleAssets.js)
        case ("GET", "/favicon.ico"):
            return HTTPServerResponse(status: 204)
        default: break
        }
        if method == "GET", let token = head.queryValue("token") {
            return redeemToken(token, ctx: ctx)
        }
        if path == "/login" {
            if method == "GET" { return Pages.login(self, ctx: ctx, message: nil) }
            if method == "POST" { return passwordLogin(&ctx) }
            return Pages.plain(405, "Method not allowed.")
        }
        guard let session = ctx.session else {
            if method == "GET" && !path.hasPrefix("/api/") && path != "/events" { return Pages.redirect("/login") }
            return Pages.plain(401, "Sign in first.")
        }
        if method == "POST" {
            // Uploads carry the token in a header; forms in a field.
            if path != "/upload" {
                do {
                    let body = try request.readWholeBody(limit: config.maxFormBytes)
                    ctx.form = FormDecoding.pairs(String(decoding: body, as: UTF8.self))
                } catch {
                    return Pages.plain(413, "The form is too large.")
                }
            }
            // The upload form without JavaScript sends its token inside the multipart body,
            // ahead of the file: checked there before a byte of the file is kept.
            let multipartUpload = path == "/upload" && MultipartStream.boundary(contentType: head.header("Content-Type")) != nil
            let sent = ctx.field("csrf") ?? head.header("X-CSRF-Token") ?? ""
            guard multipartUpload || ConsoleAuth.equal(sent, session.csrf) else {
                return Pages.plain(403, "Forbidden: this form is out of date or did not come from the console. Reload the page and try again.")
            }
        } else if method != "GET" && method != "HEAD" {
            return Pages.plain(405, "Method not allowed.")
        }

        switch (method, path) {
        case ("GET", "/"): return Pages.home(self, ctx: ctx)
        case ("GET", "/operation"): return Pages.operation(self, ctx: ctx)
        case ("GET", "/history"): return Pages.history(self, ctx: ctx)
        case ("GET", "/rollback"): return Pages.rollbackConfirm(self, ctx: ctx)
        case ("GET", "/events"): return events(ctx)
        case ("GET", "/api/state"): return stateDocument()
        case ("POST", "/logout"):
            auth.endSession(cookie: ctx.cookie)
            try? Application(options: config.options).auditFrontEndAction("\(ctx.actor) signed out")
            var r = Pages.redirect("/login")
            r.headers.append(HTTPHeader("Set-Cookie", "\(ConsoleAuth.cookieName)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"))
            return r
        case ("POST", "/check"): return startUpdate(ctx)
        case ("POST", "/upload"): return upload(ctx)
        case ("POST", "/operation/go"), ("POST", "/operation/cancel"): return decide(ctx, go: path == "/operation/go")
        case ("POST", "/rollback"): return startRollback(ctx)
        case ("POST", "/audit/verify"): return Pages.auditVerified(self, ctx: ctx)
        // The stick round trip (issue 16): signed inventory and receipts, downloaded.
        case ("GET", "/roundtrip"): return Pages.roundTrip(self, ctx: ctx)
        case ("POST", "/inventory"): return exportInventory(ctx)
        case ("GET", "/inventory.json"), ("GET", "/inventory.json.minisig"): return downloadInventory(path)
        case ("POST", "/receipt"): return writeReceipt(ctx)
        default:
            if method == "GET", path.hasPrefix("/receipts/") { return downloadReceipt(String(path.dropFirst(10))) }
            if method == "GET", path.hasPrefix("/history/") { return Pages.attempt(self, ctx: ctx, id: String(path.dropFirst(9))) }
            return Pages.plain(404, "There is no such page.")
        }
    }

    // MARK: Login

    func redeemToken(_ token: String, ctx: Context) -> HTTPServerResponse {
        guard auth.redeemLoginToken(token) else {
            try? Application(options: config.options).auditFrontEndAction("console login with an invalid or used token refused from \(ctx.peer)")
            return Pages.login(self, ctx: ctx, message: "This sign-in link has already been used or is not valid. Restart the console for a new link, or use the password.", status: 403)
        }
        return signIn(method: "token", ctx: ctx)
    }

    func passwordLogin(_ ctx: inout Context) -> HTTPServerResponse {
        guard ctx.request.head.header("Origin") != nil || ctx.request.head.header("Sec-Fetch-Site") == "same-origin" else {
            return Pages.plain(403, "Forbidden: sign in from the console's own page.")
        }
        if auth.isRateLimited(peer: ctx.peer) {
            return Pages.login(self, ctx: ctx, message: "Too many wrong passwords. Wait a few minutes, then try again.", status: 429)
        }
        guard let body = try? ctx.request.readWholeBody(limit: config.maxFormBytes) else { return Pages.plain(413, "The form is too large.") }
        let form = FormDecoding.pairs(String(decoding: body, as: UTF8.self))
        let password = form.first { $0.name == "password" }?.value ?? ""
        guard ConsoleAuth.passwordIsSet(stateDir: auth.stateDir), !password.isEmpty, auth.checkPassword(password) else {
            auth.recordFailure(peer: ctx.peer)
            try? Application(options: config.options).auditFrontEndAction("console login with a wrong password refused from \(ctx.peer)")
            return Pages.login(self, ctx: ctx, message: "That password is not right.", status: 401)
        }
        return signIn(method: "password", ctx: ctx)
    }

    func signIn(method: String, ctx: Context) -> HTTPServerResponse {
        let (cookie, session) = auth.createSession(method: method, peer: ctx.peer)
        try? Application(options: config.options).auditFrontEndAction("\(Console.actor(session, peer: ctx.peer)) signed in (\(method))")
        var r = Pages.redirect("/")
        r.headers.append(HTTPHeader("Set-Cookie", "\(ConsoleAuth.cookieName)=\(cookie); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(ConsoleAuth.sessionLifetime)"))
        return r
    }

    // MARK: Actions

    func startUpdate(_ ctx: Context) -> HTTPServerResponse {
        guard let id = ctx.field("package"), let package = media.package(id: id) else {
            return Pages.message(self, ctx: ctx, status: 404, title: "Package not found",
                                 text: "That package is not on a USB stick or in the uploads any more. Go back and look again.")
        }
        if let other = otherOperation(Application(options: config.options)) {
            return refusedBusy(ctx, other, action: "update from package \(package.name)")
        }
        guard begin(.update(packageName: package.name, path: package.path, upload: package.source == "upload"),
                    session: ctx.session!, peer: ctx.peer) != nil else {
            return Pages.message(self, ctx: ctx, status: 409, title: "Another update is in progress",
                                 text: "Only one update can run at a time. Watch the one in progress, then try again.", link: ("/operation", "See the update in progress"))
        }
        return Pages.redirect("/operation")
    }

    func startRollback(_ ctx: Context) -> HTTPServerResponse {
        guard let service = ctx.field("service"), (try? Application(options: config.options).catalog().service(named: service)) != nil else {
            return Pages.message(self, ctx: ctx, status: 404, title: "No such service", text: "That service is not on this device.")
        }
        if let other = otherOperation(Application(options: config.options)) {
            return refusedBusy(ctx, other, action: "roll \(service) back to its previous version")
        }
        guard begin(.rollback(service: service), session: ctx.session!, peer: ctx.peer) != nil else {
            return Pages.message(self, ctx: ctx, status: 409, title: "Another update is in progress",
                                 text: "Only one change can run at a time. Watch the one in progress, then try again.", link: ("/operation", "See the update in progress"))
        }
        return Pages.redirect("/operation")
    }

    func decide(_ ctx: Context, go: Bool) -> HTTPServerResponse {
        guard let op = operation, op.id == ctx.field("op") else {
            return Pages.message(self, ctx: ctx, status: 409, title: "Nothing is waiting for an answer", text: "This question is no longer open.", link: ("/operation", "See the latest update"))
        }
        let snap = op.snapshot
        guard snap.sessionLabel == ctx.session!.label else {
            return Pages.message(self, ctx: ctx, status: 403, title: "Only the person who started it can answer",
                                 text: "This update was started from another browser (\(snap.actor)). You can watch it here.", link: ("/operation", "Watch it"))
        }
        guard op.decide(go ? .go : .cancel) else {
            return Pages.message(self, ctx: ctx, status: 409, title: "Nothing is waiting for an answer", text: "This question is no longer open.", link: ("/operation", "See the latest update"))
        }
        try? Application(options: config.options).auditFrontEndAction("\(ctx.actor) \(go ? "confirmed the update" : "cancelled the update")",
                                                                    service: snap.plan?.service.name)
        return Pages.redirect("/operation")
    }

    func upload(_ ctx: Context) -> HTTPServerResponse {
        let request = ctx.request
        if let boundary = MultipartStream.boundary(contentType: request.head.header("Content-Type")) {
            return formUpload(ctx, boundary: boundary)
        }
        guard let length = request.bodyFraming.declaredLength, !request.bodyFraming.isChunked else {
            return Pages.json(411, ["error": "console.length_required", "message": "an upload must say its size (Content-Length)"])
        }
        guard Int64(clamping: length) <= config.maxUploadBytes else {
            return Pages.json(413, ["error": "upload.too_large", "message": "the package is larger than this console accepts (\(Format.bytes(config.maxUploadBytes)))"])
        }
        let name = MediaLibrary.uploadName(request.head.header("X-Filename").flatMap { $0.removingPercentEncoding })
        let app = Application(options: config.options)
        do {
            let stored = try app.receiveUpload(name: name, length: Int64(length)) { sink in
                try request.readBody(limit: length) { chunk in try sink(chunk) }
            }
            try? app.auditFrontEndAction("\(ctx.actor) uploaded \(Console.fileName(stored.path)) (\(stored.size) bytes, sha256 \(stored.sha256))")
            return Pages.json(201, ["id": MediaLibrary.id(stored.path), "name": Console.fileName(stored.path), "sha256": stored.sha256])
        } catch let e as CaissonError {
            let status = e.code == "staging.insufficient_space" ? 507 : (e.code == "package.invalid_extension" ? 415 : 400)
            return Pages.json(status, ["error": e.code, "message": e.message])
        } catch {
            return Pages.json(400, ["error": "upload.incomplete", "message": "the upload was cut off; nothing was kept"])
        }
    }
}

extension Console {
    static func fileName(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }
}
