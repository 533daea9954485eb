import CaissonApp
import CaissonCore
import CaissonHTTP
import Foundation

/// Another Caisson process at work on this state directory (a `caisson package load` from a
/// terminal, the boot-time recovery, another console): the console shows what it does — which
/// process, which step, since when — from the lock file and the journal, and changes nothing
/// until it is over (`Application.operationStatus`, the same view every CLI command prints).
extension Console {
    /// The operation another process holds the store's lock for, when this console runs none.
    func otherOperation(_ app: Application) -> OperationInProgress? {
        guard !operationInProgress else { return nil }
        return (try? app.operationStatus()) ?? nil
    }

    /// What the state document says about it (`other` in `/api/state` and the `state` events).
    struct OtherDocument: Encodable, Equatable {
        struct Attempt: Encodable, Equatable {
            var update_id: String
            var service: String
            var kind: String
            var status: String
            var words: String
            var step: String?
            var step_at: String?
            var started_at: String
        }
        var operation: String
        var words: String
        var pid: Int32
        var since: String
        var attempts: [Attempt]
    }

    static func otherDocument(_ o: OperationInProgress) -> OtherDocument {
        let h = o.holder
        return OtherDocument(operation: h?.operation ?? "unknown", words: operationWords(h?.operation), pid: h?.pid ?? 0,
                             since: h?.since ?? "", attempts: o.attempts.map {
            .init(update_id: $0.updateID, service: $0.serviceName, kind: $0.kind, status: $0.status.rawValue,
                  words: statusWords($0.status, kind: $0.kind), step: $0.step, step_at: $0.stepAt, started_at: $0.startedAt)
        })
    }

    /// The lock holder's operation (`package load /media/usb/x.edgepkg`, `rollback web`, ...) in words.
    static func operationWords(_ operation: String?) -> String {
        guard let op = operation else { return "Another Caisson program is working" }
        if op.hasPrefix("package load ") {
            return "Installing an update from \(Console.fileName(String(op.dropFirst("package load ".count))))"
        }
        if op.hasPrefix("self-update") { return "Updating Caisson itself" }
        if op.hasPrefix("rollback ") { return "Going back to the previous version of \(op.dropFirst("rollback ".count))" }
        switch op {
        case "package cleanup": return "Removing old update packages"
        case "recover": return "Finishing an update that was interrupted"
        case "console start": return "A console is starting"
        default: return op
        }
    }

    static func statusWords(_ s: UpdateStatus, kind: String) -> String {
        switch s {
        case .applying: return kind == "rollback" ? "Switching back to the previous version" : "Switching over to the new version"
        case .healthChecking: return "Checking that it is healthy"
        case .rollbackStarted: return "Putting the previous version back"
        case .succeeded: return "Done"
        case .failed, .rolledBack: return "Failed; the previous version is back"
        case .rollbackFailed: return "Failed; needs a technician"
        }
    }

    /// The banner on every page while another process works: plain words, then the process.
    static func otherBanner(_ d: OtherDocument) -> String {
        var out = "<section class=\"alert warn\" role=\"status\" id=\"other\"><p><strong>Another Caisson program is working on this device:</strong> "
        out += "<span id=\"other-words\">\(Pages.e(d.words))</span>.</p>"
        out += "<p>Process <span id=\"other-pid\">\(d.pid)</span>, since <span id=\"other-since\">\(Pages.e(Pages.when(d.since)))</span>."
        if let a = d.attempts.first {
            out += " Now: <span id=\"other-step\">\(Pages.e(a.service)): \(Pages.e(a.words))</span>"
            if let at = a.step_at { out += " (since <span id=\"other-step-since\">\(Pages.e(Pages.when(at)))</span>)" }
            out += "."
        }
        out += "</p><p>Nothing can be changed from this console until it is over; this page follows it.</p>"
        if let a = d.attempts.first {
            out += "<details><summary>Technical details</summary><code>\(Pages.e(d.operation))</code>; \(Pages.e(a.kind)) <code>\(Pages.e(a.update_id))</code>, status <code>\(Pages.e(a.status))</code>, step <code>\(Pages.e(a.step ?? "-"))</code></details>"
        }
        return out + "</section>"
    }

    /// An action refused because another process works: the page says who and at which step.
    func refusedBusy(_ ctx: Context, _ other: OperationInProgress, action: String) -> HTTPServerResponse {
        let d = Self.otherDocument(other)
        try? Application(options: config.options).auditFrontEndAction(
            "\(ctx.actor) asked to \(action); refused: another Caisson operation is running (\(d.operation), pid \(d.pid), since \(d.since))")
        return Pages.html(409, title: "Another update is in progress", ctx: ctx, console: self, body: """
        <h1>Another update is in progress</h1>\(Self.otherBanner(d))<p>Nothing was changed. Wait until it is over, then try again.</p>
        <p><a class="button" href="/operation">Watch it</a> <a class="button" href="/">Back to this device</a></p>
        """, attributes: ["live": "1", "phase": "external", "after": "\((try? Application(options: config.options).store().lastAuditSeq()) ?? 0)"])
    }
}
