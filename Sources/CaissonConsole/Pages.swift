import CaissonApp
import CaissonCore
import CaissonHTTP
import CaissonStore
import Foundation

/// The console's HTML, rendered on the server (every value escaped), enhanced by `/app.js` (live
/// progress, upload). Plain words first; ids, images and codes inside `<details>`.
enum Pages {
    /// HTML-escapes text for element content and attribute values.
    static func e(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func html(_ status: Int = 200, title: String, ctx: Console.Context?, console: Console, body: String,
                     attributes: [String: String] = [:]) -> HTTPServerResponse {
        var attrs = ""
        if let s = ctx?.session { attrs += " data-csrf=\"\(e(s.csrf))\"" }
        // The page reloads when its live events come from another Caisson version (the console
        // restarted on a self-updated executable).
        attrs += " data-version=\"\(e(Application.version))\""
        for (k, v) in attributes.sorted(by: { $0.key < $1.key }) { attrs += " data-\(k)=\"\(e(v))\"" }
        var nav = ""
        if let s = ctx?.session {
            nav = """
            <nav aria-label="Main"><a href="/">This device</a><a href="/history">History</a>\
            <form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="\(e(s.csrf))">\
            <button type="submit" class="link">Sign out</button></form></nav>
            """
        }
        // Without JavaScript (no live events), a page following work in progress reloads itself.
        let phase = attributes["phase"] ?? ""
        let refresh = attributes["live"] == "1" && ["preparing", "running", "external"].contains(phase)
            ? "<noscript><meta http-equiv=\"refresh\" content=\"2\"></noscript>" : ""
        let page = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">\(refresh)
        <title>\(e(title)) · Caisson</title><link rel="stylesheet" href="/app.css"><script src="/app.js" defer></script></head>
        <body\(attrs)><a class="skip" href="#main">Skip to the content</a>
        <header class="top"><span class="brand">Caisson</span>\(nav)</header>
        <main id="main">
        \(body)
        </main></body></html>
        """
        return HTTPServerResponse(status: status, headers: [HTTPHeader("Content-Type", "text/html; charset=utf-8")], body: Array(page.utf8))
    }

    static func plain(_ status: Int, _ text: String) -> HTTPServerResponse {
        .text(status, text + "\n")
    }

    static func redirect(_ location: String) -> HTTPServerResponse {
        HTTPServerResponse(status: 303, headers: [HTTPHeader("Location", location)])
    }

    static func json(_ status: Int, _ doc: [String: String]) -> HTTPServerResponse {
        HTTPServerResponse(status: status, headers: [HTTPHeader("Content-Type", "application/json")],
                           body: Array(JSONCoding.string(doc, pretty: false).utf8))
    }

    static func csrfField(_ ctx: Console.Context) -> String {
        "<input type=\"hidden\" name=\"csrf\" value=\"\(e(ctx.session?.csrf ?? ""))\">"
    }

    static func message(_ console: Console, ctx: Console.Context, status: Int, title: String, text: String,
                        link: (String, String)? = nil) -> HTTPServerResponse {
        let l = link ?? ("/", "Back to this device")
        return html(status, title: title, ctx: ctx, console: console, body: """
        <h1>\(e(title))</h1><p>\(e(text))</p><p><a class="button" href="\(e(l.0))">\(e(l.1))</a></p>
        """)
    }

    // MARK: Login

    static func login(_ console: Console, ctx: Console.Context, message: String?, status: Int = 200) -> HTTPServerResponse {
        let hasPassword = ConsoleAuth.passwordIsSet(stateDir: console.auth.stateDir)
        var body = "<h1>Sign in to the Caisson console</h1>"
        if let message { body += "<p class=\"alert bad\" role=\"alert\">\(e(message))</p>" }
        if hasPassword {
            body += """
            <form method="post" action="/login" class="card narrow">
            <label for="password">Console password</label>
            <input type="password" id="password" name="password" autocomplete="current-password" required autofocus>
            <button type="submit" class="primary">Sign in</button>
            </form>
            """
        }
        body += "<p class=\"muted\">On the device itself, open the address that <code>caisson console</code> printed when it started: it signs you in once.</p>"
        return html(status, title: "Sign in", ctx: nil, console: console, body: body)
    }

    // MARK: Home

    static func healthWords(_ s: Application.ServiceStatus) -> (String, String) {
        switch (s.running, s.health) {
        case ("running", "healthy"): return ("Running and healthy", "good")
        case ("running", "none"): return ("Running", "good")
        case ("running", "starting"): return ("Starting up", "warn")
        case ("running", _): return ("Running, but not healthy", "bad")
        case ("stopped", _): return ("Stopped", "bad")
        case ("missing", _): return ("Not found on this device", "bad")
        default: return ("Unknown (cannot ask)", "warn")
        }
    }

    static func outcomeWords(_ a: UpdateAttempt) -> String {
        let what = a.kind == "rollback" ? "Rollback" : "Update"
        switch a.status {
        case .succeeded: return "\(what) succeeded"
        case .rolledBack, .failed: return "\(what) failed, previous version restored"
        case .rollbackFailed: return "\(what) failed, needs a technician"
        default: return "\(what) in progress"
        }
    }

    static func when(_ timestamp: String?) -> String {
        guard let t = timestamp else { return "" }
        return t.replacingOccurrences(of: "T", with: " ").replacingOccurrences(of: "Z", with: " UTC")
    }

    static func activityBanner(_ console: Console, app: Application) -> String {
        handOverBanner(console, app: app) + workBanner(console, app: app)
    }

    /// Issue 14 item 5: what the console's hand-over after a self-update did.
    static func handOverBanner(_ console: Console, app: Application) -> String {
        if let notice = console.handOverNotice.withLock({ $0 }) {
            return "<p class=\"alert warn\" role=\"status\" id=\"handover\">\(e(notice))</p>"
        }
        guard let id = console.handedOver.withLock({ $0 }) else { return "" }
        guard id != "restart", let r = (try? app.store().selfUpdate(id)) ?? nil else {
            return "<p class=\"alert\" role=\"status\" id=\"handed-over\">This console restarted on the installed Caisson (version \(e(Application.version))).</p>"
        }
        let what = r.kind == "rollback" ? "put back to version \(r.toVersion)" : (r.status == .succeeded ? "updated from version \(r.fromVersion) to \(r.toVersion)" : "left at version \(r.fromVersion)")
        return "<p class=\"alert\" role=\"status\" id=\"handed-over\"><strong>Caisson was \(e(what))</strong>\(r.finishedAt.map { " (\(e(when($0))))" } ?? ""). This console restarted on it and now runs version \(e(Application.version)).</p>"
    }

    static func workBanner(_ console: Console, app: Application) -> String {
        if let op = console.operation, !op.isFinished {
            let s = op.snapshot
            let what: String
            switch s.kind {
            case .update(let name, _, _): what = "An update from \(name) is in progress"
            case .rollback(let service): what = "A rollback of \(service) is in progress"
            }
            return "<p class=\"alert warn\" role=\"status\">\(e(what)). <a href=\"/operation\">Watch it</a></p>"
        }
        if let other = console.otherOperation(app) {
            return Console.otherBanner(Console.otherDocument(other))
        }
        return ""
    }

    static func home(_ console: Console, ctx: Console.Context) -> HTTPServerResponse {
        let app = Application(options: console.config.options)
        let device = app.deviceStatus()
        let services = (try? app.serviceStatuses()) ?? []
        let packages = console.media.scan()
        let other = console.otherOperation(app)
        var body = activityBanner(console, app: app)
        body += """
        <h1>\(e(device.name))</h1>
        <section class="card" aria-labelledby="dev"><h2 id="dev">This device</h2><dl class="facts">
        <dt>Caisson</dt><dd>version \(e(device.version))\(device.host == "sim" ? " (simulated services, for practice)" : "")</dd>
        <dt>Service software</dt><dd class="\(device.runtimeReachable ? "good" : "bad")">\(device.runtimeReachable ? "Working" : "Not answering")</dd>
        <dt>Free disk space</dt><dd>\(e(device.freeDiskBytes.map { Format.bytes($0) } ?? "unknown"))</dd>
        </dl></section>
        <section class="card" aria-labelledby="svc"><h2 id="svc">Services</h2>
        """
        if services.isEmpty { body += "<p>No services are set up on this device.</p>" }
        body += "<ul class=\"services\">"
        for s in services {
            let (words, tone) = healthWords(s)
            body += "<li class=\"service\"><div class=\"name\">\(e(s.name))</div>"
            body += "<div>Version: <strong>\(e(s.version ?? "as delivered"))</strong></div>"
            body += "<div class=\"\(tone)\">\(e(words))</div>"
            if let a = s.lastAttempt {
                body += "<div class=\"muted\">Last change: \(e(outcomeWords(a))), \(e(when(a.finishedAt ?? a.startedAt))). <a href=\"/history/\(e(a.updateID))\">Details</a></div>"
            } else {
                body += "<div class=\"muted\">Never updated here.</div>"
            }
            if s.canRollBack && other == nil {
                body += "<div><a class=\"button\" href=\"/rollback?service=\(e(s.name.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? s.name))\">Go back to the previous version\(s.previousVersion.map { " (\(e($0)))" } ?? "")</a></div>"
            }
            body += "</li>"
        }
        body += "</ul></section>"
        body += "<section class=\"card\" aria-labelledby=\"pkg\"><h2 id=\"pkg\">Update packages</h2>"
        if packages.isEmpty {
            body += "<p>No update package found. Plug in the USB stick and <a href=\"/\">look again</a>, or upload a package below.</p>"
        } else {
            body += "<ul class=\"packages\">"
            for p in packages {
                let whereText = p.source == "upload" ? "Uploaded" : "USB stick (\(p.location))"
                body += """
                <li><form method="post" action="/check">\(csrfField(ctx))<input type="hidden" name="package" value="\(e(p.id))">\
                <span class="name">\(e(p.name))</span> <span class="muted">\(e(whereText)), \(e(Format.bytes(p.size)))</span> \
                <button type="submit" class="primary"\(other == nil ? "" : " disabled")>Check this package</button></form></li>
                """
            }
            body += "</ul>"
        }
        body += """
        <form id="upload" class="upload" method="post" action="/upload" enctype="multipart/form-data">\(csrfField(ctx))
        <label for="upload-file">Upload a package from this computer</label>
        <input type="file" id="upload-file" name="file" accept=".edgepkg" required>
        <button type="submit">Upload</button>
        <progress id="upload-progress" max="100" value="0" hidden aria-label="Upload progress"></progress>
        <p id="upload-status" role="status" aria-live="polite"></p>
        </form></section>
        """
        // While another process works, the page follows it and reloads when it is over.
        // Otherwise it listens too ("idle"), to follow the console onto a self-updated Caisson.
        let live = ["live": "1", "phase": other == nil ? "idle" : "external", "after": "\((try? app.store().lastAuditSeq()) ?? 0)"]
        return html(title: device.name, ctx: ctx, console: console, body: body, attributes: live)
    }

    // MARK: Operation

    static func issueList(_ issues: [Issue]) -> String {
        guard !issues.isEmpty else { return "" }
        var out = "<ul class=\"issues\">"
        for i in issues {
            let x = IssueExplanations.explain(i.code)
            out += "<li><strong>\(e(x.meaning))</strong> \(e(x.action))<details><summary>Technical details</summary><code>\(e(i.code))</code>: \(e(i.message))</details></li>"
        }
        return out + "</ul>"
    }

    static func checks(_ v: Application.ValidationOutcome?, plan: Application.LoadPlan?, app: Application) -> String {
        guard let v else { return "" }
        var out = "<ul class=\"checks\">"
        let ok = v.report.status == .accepted
        out += "<li class=\"\(ok ? "good" : "bad")\">\(ok ? "The package is complete and undamaged" : "The package did not pass its checks")</li>"
        if let m = v.report.manifest {
            // A tick only for a service this device has (a hostile or wrong package names another).
            if (try? app.catalog().service(named: m.target.service)) != nil {
                out += "<li class=\"good\">Made for this device's service <strong>\(e(m.target.service))</strong></li>"
            } else {
                out += "<li class=\"bad\">Made for a service this device does not have: <strong>\(e(m.target.service))</strong></li>"
            }
        }
        if let sig = v.report.signature {
            out += "<li class=\"good\">Signed by a trusted publisher (key \(e(sig.keyID)))</li>"
        } else if ok {
            out += "<li class=\"muted\">Not signed (this device does not require a signature)</li>"
        }
        if let p = plan {
            out += "<li class=\"good\">Version \(e(p.currentVersion ?? "as delivered")) → <strong>\(e(p.newVersion))</strong></li>"
        }
        return out + "</ul>"
    }

    static func operation(_ console: Console, ctx: Console.Context) -> HTTPServerResponse {
        let app = Application(options: console.config.options)
        let state = console.currentState(app: app)
        var attrs = ["after": "\(state.last_audit_seq)", "live": "1"]
        guard let op = console.operation else {
            var body = "<h1>Updates</h1>"
            if let other = state.other {
                body += Console.otherBanner(other)
                attrs["phase"] = "external"
            } else if !state.in_flight.isEmpty {
                body += "<p class=\"alert warn\" role=\"status\">An update was interrupted; Caisson finishes it safely at its next start.</p>"
                for f in state.in_flight {
                    body += "<p>\(e(f.service)): <span id=\"journal-step\">\(e(f.step_detail ?? f.status))</span></p>"
                }
                attrs["phase"] = "none"
            } else {
                body += "<p>No update is running from this console.</p>"
                if let last = try? app.store().updateAttempts(limit: 1).records.first {
                    body += "<p>The latest: \(e(last.serviceName)), \(e(outcomeWords(last))), \(e(when(last.finishedAt ?? last.startedAt))). <a href=\"/history/\(e(last.updateID))\">Details</a></p>"
                }
                attrs["phase"] = "none"
            }
            body += "<h2>Activity</h2><ol id=\"events\" class=\"events\" aria-live=\"polite\"></ol><p><a class=\"button\" href=\"/\">Back to this device</a></p>"
            return html(title: "Updates", ctx: ctx, console: console, body: body, attributes: attrs)
        }
        let s = op.snapshot
        attrs["phase"] = s.phase.rawValue
        attrs["op"] = s.id
        let mine = s.sessionLabel == ctx.session?.label
        var title: String
        switch s.kind {
        case .update(let name, _, _): title = "Update from \(name)"
        case .rollback(let service): title = "Going back to the previous version of \(service)"
        }
        var body = "<h1>\(e(title))</h1>"
        if !mine { body += "<p class=\"alert warn\">Started from another browser (\(e(s.actor))). You are watching; only that browser can answer.</p>" }
        var fromStick = false
        if case .update(_, _, false) = s.kind { fromStick = true }
        let removable = fromStick && (s.mediumRemovable || s.phase == .finished)
        let stick = fromStick ? "<p id=\"stick\" class=\"alert good\" role=\"status\"\(removable ? "" : " hidden")>It is safe to remove the USB stick.</p>" : ""
        switch s.phase {
        case .preparing:
            body += "<p>Checking the package. This reads the whole file once.</p>"
            body += progressBlock(s)
            body += stick
        case .confirming:
            body += stick
            body += "<section class=\"card\" aria-labelledby=\"verdict\"><h2 id=\"verdict\">The package is valid</h2>\(checks(s.validation, plan: s.plan, app: app))</section>"
            if let p = s.plan {
                body += """
                <section class="card" aria-labelledby="plan"><h2 id="plan">What will happen</h2>
                <p><strong>\(e(p.service.name))</strong> goes from version \(e(p.currentVersion ?? "as delivered")) to <strong>\(e(p.newVersion))</strong>.</p>
                <p>The service stops for a moment while the new version starts. Caisson then checks it stays healthy (up to \(p.service.health.timeoutSecs) seconds); if it does not, the previous version is put back automatically.</p>
                <dl class="facts"><dt>To install</dt><dd>\(e(Format.bytes(p.bytesToLoad)))</dd>\
                \(p.freeDiskState.map { "<dt>Free disk space</dt><dd>\(e(Format.bytes($0)))</dd>" } ?? "")\
                \(p.imageStorage.map { "<dt>Space needed</dt><dd>about \(e(Format.bytes($0.neededBytes))) of \(e(Format.bytes($0.freeBytes))) free</dd>" } ?? "")</dl>
                <details><summary>Technical details</summary><p>Now: <code>\(e(p.currentImage))</code> (\(e(Format.shortID(p.currentImageID))))<br>New: <code>\(e(p.newImage))</code> (\(e(Format.shortID(p.newImageID))))</p>
                <ol>\(p.steps.map { "<li>\(e($0))</li>" }.joined())</ol></details>
                </section>
                """
            }
            if mine {
                body += """
                <div class="actions"><form method="post" action="/operation/go">\(csrfField(ctx))<input type="hidden" name="op" value="\(e(s.id))">\
                <button type="submit" class="primary big" id="go">Update \(e(s.plan?.service.name ?? "the service")) now</button></form>\
                <form method="post" action="/operation/cancel">\(csrfField(ctx))<input type="hidden" name="op" value="\(e(s.id))">\
                <button type="submit" id="cancel">Cancel</button></form></div>
                """
            } else {
                body += "<p class=\"muted\">Waiting for the person who started it to go ahead.</p>"
            }
        case .running:
            body += stick
            body += "<p>Working. Keep the device switched on; this page follows along by itself.</p>"
            body += progressBlock(s)
        case .finished:
            let r = s.result!
            let tone = r.outcome == "updated" ? "good" : (r.outcome == "declined" ? "muted" : "bad")
            body += "<section class=\"card result \(tone)\" aria-labelledby=\"result\"><h2 id=\"result\" data-outcome=\"\(e(r.outcome))\">\(e(r.headline))</h2><p>\(e(r.detail))</p>"
            if r.outcome == "rejected", s.validation != nil { body += checks(s.validation, plan: nil, app: app) }
            body += issueList(r.issues)
            body += evidenceBlock(r.evidence, tail: 10)
            if let a = r.attempt {
                if let h = a.healthCheck { body += "<p class=\"muted\">Health check: \(e(h.outcome.rawValue.replacingOccurrences(of: "_", with: " "))), \(e(h.message))</p>" }
                body += "<p><a href=\"/history/\(e(a.updateID))\">All the details of this update</a></p>"
            }
            body += "</section>"
            if case .update = s.kind { body += stick }
            body += "<p><a class=\"button primary\" href=\"/\">Back to this device</a></p>"
        }
        body += "<details class=\"log\"><summary>Activity log</summary><ol id=\"events\" class=\"events\" aria-live=\"off\"></ol></details>"
        return html(title: title, ctx: ctx, console: console, body: body, attributes: attrs)
    }

    static func progressBlock(_ s: ConsoleOperation.Snapshot) -> String {
        let percent = s.bytesTotal > 0 ? Int(s.bytesDone * 100 / s.bytesTotal) : 0
        let stages = ["Copying", "Validating", "Loading image"]
        var out = "<ol class=\"stages\" id=\"stages\">"
        for st in stages {
            let label = st == "Loading image" ? "Installing" : (st == "Validating" ? "Checking" : st)
            out += "<li data-stage=\"\(e(st))\"\(s.byteLabel == st ? " class=\"now\"" : "")>\(e(label))</li>"
        }
        out += "<li data-stage=\"swap\">Switching over</li><li data-stage=\"health\">Health check <span id=\"countdown\"></span></li></ol>"
        out += "<label for=\"bar\" id=\"bar-label\">\(e(s.byteLabel.map { ($0 == "Loading image" ? "Installing" : ($0 == "Validating" ? "Checking" : $0)) } ?? "Starting"))</label>"
        out += "<progress id=\"bar\" max=\"100\" value=\"\(percent)\">\(percent)%</progress>"
        out += "<p id=\"step\" class=\"muted\" role=\"status\" aria-live=\"polite\">\(e(s.steps.last ?? ""))</p>"
        return out
    }

    // MARK: Rollback

    static func rollbackConfirm(_ console: Console, ctx: Console.Context) -> HTTPServerResponse {
        let app = Application(options: console.config.options)
        guard let name = ctx.request.head.queryValue("service"),
              let s = (try? app.serviceStatuses())?.first(where: { $0.name == name }) else {
            return message(console, ctx: ctx, status: 404, title: "No such service", text: "That service is not on this device.")
        }
        guard s.canRollBack else {
            return message(console, ctx: ctx, status: 409, title: "Nothing to go back to", text: "\(name) has no earlier version on this device.")
        }
        return html(title: "Go back to the previous version", ctx: ctx, console: console, body: """
        <h1>Go back to the previous version of \(e(name))?</h1>
        <p>\(e(name)) runs version <strong>\(e(s.version ?? "unknown"))</strong> now. It will go back to <strong>\(e(s.previousVersion ?? s.previousImageReference ?? "the previous version"))</strong>, then be health-checked.</p>
        <div class="actions"><form method="post" action="/rollback">\(csrfField(ctx))<input type="hidden" name="service" value="\(e(name))">\
        <button type="submit" class="primary big" id="confirm-rollback">Yes, go back to the previous version</button></form>\
        <a class="button" href="/">No, keep it as it is</a></div>
        """)
    }

    // MARK: History

    static func history(_ console: Console, ctx: Console.Context) -> HTTPServerResponse {
        let app = Application(options: console.config.options)
        let list = (try? app.store().updateAttempts(limit: 50).records) ?? []
        var body = "<h1>History</h1>"
        body += "<form method=\"post\" action=\"/audit/verify\" class=\"inline\">\(csrfField(ctx))<button type=\"submit\" id=\"verify\">Verify the audit log</button></form>"
        body += " <a href=\"/roundtrip\">Inventory and receipts for the connected side</a>"
        if list.isEmpty { body += "<p>Nothing has been updated on this device yet.</p>" }
        body += "<ul class=\"history\">"
        for a in list {
            body += "<li><a href=\"/history/\(e(a.updateID))\"><strong>\(e(a.serviceName))</strong> \(e(a.packageVersion.map { "version \($0)" } ?? ""))</a> <span class=\"\(a.status == .succeeded ? "good" : "bad")\">\(e(outcomeWords(a)))</span> <span class=\"muted\">\(e(when(a.startedAt)))</span></li>"
        }
        body += "</ul>"
        return html(title: "History", ctx: ctx, console: console, body: body)
    }

    static func auditText(_ e: AuditEvent) -> String {
        switch e.kind {
        case .validationStarted: return "Checking the package"
        case .validationAccepted: return "The package passed its checks"
        case .validationRejected: return "The package was not accepted"
        case .imageImportStarted: return "Installing the new version"
        case .imageImportSucceeded: return "New version installed"
        case .imageImportFailed: return "Installing the new version failed"
        case .updateStarted: return "Switching over"
        case .healthCheckStarted: return "Checking that it is healthy"
        case .healthCheckPassed: return "It is healthy"
        case .healthCheckFailed: return "It is not healthy"
        case .rollbackStarted: return "Putting the previous version back"
        case .rollbackSucceeded: return "The previous version runs again"
        case .rollbackFailed: return "Putting the previous version back failed"
        case .updateCommitted: return "Done"
        case .updateFailed: return "The update failed"
        case .recoveryStarted: return "Finishing an interrupted update"
        case .recoveryFinished: return "Interrupted update finished"
        case .downgradeAllowed: return "Going back to an older version was allowed"
        case .packageCleanup: return "Old packages removed"
        case .consoleAction: return "Console"
        case .stateImported: return "History imported from the previous updater"
        case .selfUpdateStarted: return "Updating Caisson itself"
        case .selfUpdateStaged: return "New Caisson copied beside the installed one"
        case .selfUpdateTested: return "New Caisson passed its test-run"
        case .selfUpdateTestFailed: return "New Caisson failed its test-run"
        case .selfUpdateSnapshotTaken: return "Caisson's records saved for a way back"
        case .selfUpdateSwapped: return "New Caisson put in place"
        case .selfUpdateConfirmed: return "New Caisson confirmed by its first run"
        case .selfUpdateSucceeded: return "Caisson updated"
        case .selfUpdateFailed: return "Updating Caisson failed; it was not changed"
        case .selfUpdateRollbackStarted: return "Putting the previous Caisson back"
        case .selfUpdateRolledBack: return "The previous Caisson is back"
        case .selfUpdateRollbackFailed: return "Putting the previous Caisson back failed"
        case .inventoryExported: return "The device's inventory was written (for the stick)"
        case .receiptWritten: return "An update receipt was written (for the stick)"
        case .deviceKeyCreated: return "The device's signing key was made"
        }
    }

    static func attempt(_ console: Console, ctx: Console.Context, id: String) -> HTTPServerResponse {
        let app = Application(options: console.config.options)
        guard id.count >= 8, let d = try? app.attemptDetail(id) else {
            return message(console, ctx: ctx, status: 404, title: "Not found", text: "There is no update with that id.", link: ("/history", "Back to the history"))
        }
        let a = d.attempt
        let r = ConsoleOperation.describe(a)
        var body = "<h1>\(e(a.serviceName)): \(e(outcomeWords(a)))</h1>"
        body += "<section class=\"card result \(a.status == .succeeded ? "good" : "bad")\"><h2>\(e(r.headline))</h2><p>\(e(r.detail))</p>\(issueList(a.issues))"
        body += "<dl class=\"facts\"><dt>Started</dt><dd>\(e(when(a.startedAt)))</dd><dt>Finished</dt><dd>\(e(when(a.finishedAt)))</dd>"
        if let v = a.packageVersion { body += "<dt>Version</dt><dd>\(e(v))</dd>" }
        if let h = a.healthCheck { body += "<dt>Health check</dt><dd>\(e(h.outcome.rawValue.replacingOccurrences(of: "_", with: " "))): \(e(h.message))</dd>" }
        if let h = a.rollbackHealthCheck { body += "<dt>After going back</dt><dd>\(e(h.outcome.rawValue.replacingOccurrences(of: "_", with: " "))): \(e(h.message))</dd>" }
        body += "</dl></section>"
        body += evidenceBlock(d.evidence, tail: nil)
        body += "<section class=\"card\"><h2>What happened</h2><ol class=\"events\">"
        for ev in d.events {
            body += "<li><span class=\"muted\">\(e(when(ev.event.at)))</span> \(e(auditText(ev.event))) <details><summary>Details</summary><code>\(e(ev.event.kind.rawValue))</code>: \(e(ev.event.message))</details></li>"
        }
        body += "</ol></section>"
        body += "<details class=\"card\"><summary>Technical details</summary><dl class=\"facts\"><dt>Update id</dt><dd><code>\(e(a.updateID))</code></dd>"
        body += "<dt>Image</dt><dd><code>\(e(a.previousImageReference ?? "?"))</code> → <code>\(e(a.targetImageReference))</code></dd>"
        body += "<dt>Status</dt><dd><code>\(e(a.status.rawValue))</code></dd></dl><ol class=\"journal\">"
        for j in d.journal { body += "<li><code>\(e(j.phase.rawValue)) \(e(j.step))</code> \(e(app.operatorText(j.detail)))</li>" }
        body += "</ol></details><p>\(receiptForm(ctx, updateID: a.updateID)) <a href=\"/roundtrip\">Inventory and receipts</a></p>"
        body += "<p><a class=\"button\" href=\"/history\">Back to the history</a></p>"
        return html(title: "Update \(a.serviceName)", ctx: ctx, console: console, body: body)
    }

    /// Failure evidence (issue 12): a plain sentence per container, then its log's last lines and
    /// the technical state folded away. `tail`: how many log lines (nil: all that was kept).
    static func evidenceBlock(_ list: [FailureEvidence], tail: Int?) -> String {
        guard !list.isEmpty else { return "" }
        var out = "<section class=\"card evidence\" aria-labelledby=\"why\"><h2 id=\"why\">Why it failed</h2>"
        for ev in list {
            out += "<div class=\"evidence-item\" data-role=\"\(e(ev.role.rawValue))\"><p>\(e(ev.plainSentence))</p>"
            let lines = tail.map { Array(ev.logTail.suffix($0)) } ?? ev.logTail
            if let last = lines.last {
                out += "<p class=\"muted\">Its last words: <code>\(e(last.text))</code></p>"
                let more = lines.count < ev.logTail.count || ev.logTruncated
                out += "<details><summary>The last \(lines.count) line\(lines.count == 1 ? "" : "s") of its log\(more ? " (earlier output left out)" : "")</summary><pre class=\"log-tail\">"
                out += lines.map { e(($0.stream == .stderr ? "err | " : "out | ") + $0.text) }.joined(separator: "\n")
                out += "</pre>\(ev.redactions > 0 ? "<p class=\"muted\">\(ev.redactions) secret value(s) were hidden.</p>" : "")</details>"
            }
            out += "<details><summary>Technical details</summary><dl class=\"facts\"><dt>Container</dt><dd><code>\(e(ev.containerName))</code> (\(e(Format.shortID(ev.containerID))))</dd>"
            if let st = ev.state {
                out += "<dt>State</dt><dd><code>\(e(st.status.rawValue))</code>, exit code \(st.exitCode), out of memory: \(st.oomKilled ? "yes" : "no"), restarts: \(st.restartCount)</dd>"
                out += "<dt>Ran</dt><dd>\(e(st.startedAt)) to \(e(st.finishedAt))</dd>"
                if let err = st.error, !err.isEmpty { out += "<dt>Error</dt><dd>\(e(err))</dd>" }
            }
            for p in ev.problems { out += "<dt>Not captured</dt><dd>\(e(p))</dd>" }
            out += "</dl>"
            if !ev.healthLog.isEmpty {
                out += "<p>Health log:</p><ol class=\"journal\">"
                for h in ev.healthLog { out += "<li><code>\(e(h.start)) exit \(h.exitCode)</code> \(e(String(h.output.prefix(200))))</li>" }
                out += "</ol>"
            }
            out += "</details></div>"
        }
        return out + "</section>"
    }

    static func auditVerified(_ console: Console, ctx: Console.Context) -> HTTPServerResponse {
        let app = Application(options: console.config.options)
        try? app.auditFrontEndAction("\(ctx.actor) verified the audit log")
        let body: String
        do {
            let report = try app.store().verifyAuditChain()
            if let b = report.firstBreak {
                body = "<h1>Audit log</h1><p class=\"alert bad\" role=\"alert\" id=\"verify-result\">The audit log has been altered: it breaks after \(report.checked) good entries.</p><details><summary>Technical details</summary><code>\(e("\(b)"))</code></details>"
            } else {
                body = "<h1>Audit log</h1><p class=\"alert good\" role=\"status\" id=\"verify-result\">The audit log is intact: all \(report.checked) entries check out.</p>"
            }
        } catch {
            body = "<h1>Audit log</h1><p class=\"alert bad\" role=\"alert\" id=\"verify-result\">The audit log could not be read: \(e("\(error)"))</p>"
        }
        return html(title: "Audit log", ctx: ctx, console: console, body: body + "<p><a class=\"button\" href=\"/history\">Back to the history</a></p>")
    }
}
