import CaissonApp
import CaissonCore
import CaissonHTTP
import Foundation

/// The stick round trip in the console (issue 16): the device's signed inventory and an update's
/// signed receipt. The browser's computer is the connected side: the console signs the document
/// with the device key into the state directory, then offers it and its `.minisig` as downloads
/// (the same bytes for both, whatever the order they are fetched in), which `caisson inventory
/// verify` and `caisson receipt verify` check there.
extension Console {
    /// Where the console keeps the receipts it signed (inside the state directory).
    static let receiptsFolder = "console-receipts"

    func receiptsDirectory(_ app: Application) -> String { app.stateDir + "/" + Self.receiptsFolder }

    /// `POST /inventory`: sign a fresh inventory (kept as the device's last one, which `package
    /// cleanup` honours, as the CLI's export does).
    func exportInventory(_ ctx: Context) -> HTTPServerResponse {
        let app = Application(options: config.options)
        do {
            let e = try app.exportInventory(to: app.lastInventoryPath)
            try? app.auditFrontEndAction("\(ctx.actor) exported the device inventory (sha256 \(e.sha256))")
            return Pages.redirect("/roundtrip")
        } catch {
            return Pages.message(self, ctx: ctx, status: 409, title: "The inventory could not be made", text: Self.words(error),
                                 link: ("/roundtrip", "Back"))
        }
    }

    /// `POST /receipt` (field `update`: an update id, or a validation id): sign its receipt.
    func writeReceipt(_ ctx: Context) -> HTTPServerResponse {
        let app = Application(options: config.options)
        guard let id = ctx.field("update"), Self.isReceiptID(id) else {
            return Pages.message(self, ctx: ctx, status: 404, title: "No such update", text: "There is no update with that id.", link: ("/history", "Back to the history"))
        }
        do {
            let f = try app.writeReceipt(try app.receipt(id: id), directory: receiptsDirectory(app))
            try? app.auditFrontEndAction("\(ctx.actor) made the receipt of \(id)", service: f.receipt.service)
            return Pages.redirect("/roundtrip")
        } catch {
            return Pages.message(self, ctx: ctx, status: 409, title: "The receipt could not be made", text: Self.words(error),
                                 link: ("/history", "Back to the history"))
        }
    }

    /// `GET /inventory.json`, `GET /inventory.json.minisig`: the last inventory and its signature.
    func downloadInventory(_ path: String) -> HTTPServerResponse {
        let app = Application(options: config.options)
        let file = path.hasSuffix(".minisig") ? app.lastInventoryPath + SignedDocument.signatureSuffix : app.lastInventoryPath
        return Self.download(file, name: String(path.dropFirst()))
    }

    /// `GET /receipts/receipt-ID.json[.minisig]`: only names the console writes, from its folder.
    func downloadReceipt(_ name: String) -> HTTPServerResponse {
        let base = name.hasSuffix(".minisig") ? String(name.dropLast(".minisig".count)) : name
        guard base.hasPrefix("receipt-"), base.hasSuffix(".json"),
              Self.isReceiptID(String(base.dropFirst("receipt-".count).dropLast(".json".count))) else {
            return Pages.plain(404, "There is no such receipt.")
        }
        return Self.download(receiptsDirectory(Application(options: config.options)) + "/" + name, name: name)
    }

    /// The receipts the console has signed, newest first.
    func signedReceipts() -> [(name: String, receipt: UpdateReceipt?)] {
        let dir = receiptsDirectory(Application(options: config.options))
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasPrefix("receipt-") && $0.hasSuffix(".json") }
        let found = names.map { n in (name: n, receipt: FileManager.default.contents(atPath: dir + "/" + n).flatMap { try? UpdateReceipt.decode(Array($0), path: n) }) }
        return found.sorted { ($0.receipt?.writtenAt ?? "", $0.name) > ($1.receipt?.writtenAt ?? "", $1.name) }
    }

    static func isReceiptID(_ id: String) -> Bool {
        (8...64).contains(id.utf8.count) && id.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || $0 == 45 }
    }

    static func download(_ file: String, name: String) -> HTTPServerResponse {
        guard let data = FileManager.default.contents(atPath: file) else { return Pages.plain(404, "There is nothing to download yet.") }
        let type = name.hasSuffix(".json") ? "application/json" : "text/plain; charset=utf-8"
        return HTTPServerResponse(status: 200, headers: [HTTPHeader("Content-Type", type),
                                                         HTTPHeader("Content-Disposition", "attachment; filename=\"\(name)\"")],
                                  body: Array(data))
    }

    static func words(_ error: any Error) -> String {
        if let e = error as? CaissonError { return "\(e.message) [\(e.code)]" }
        return "\(error)"
    }
}

extension Pages {
    /// `GET /roundtrip`: the inventory and the receipts, to take to the connected side.
    static func roundTrip(_ console: Console, ctx: Console.Context) -> HTTPServerResponse {
        let app = Application(options: console.config.options)
        var body = "<h1>For the connected side</h1>"
        body += "<p>Documents signed with this device's key. Check them there with <code>caisson inventory verify</code> and <code>caisson receipt verify</code> and the device's <code>device.pub</code>.</p>"
        body += "<section class=\"card\"><h2>Inventory</h2><p>What this device holds, to build packages that carry only the layers it lacks.</p>"
        if let data = FileManager.default.contents(atPath: app.lastInventoryPath), let inv = try? DeviceInventory.decode(Array(data), path: app.lastInventoryPath) {
            body += "<p id=\"inventory\">Made \(e(inv.exportedAt)): \(inv.services.count) service(s), \(inv.images.count) image(s). "
            body += "<a href=\"/inventory.json\" download>inventory.json</a> and <a href=\"/inventory.json.minisig\" download>inventory.json.minisig</a></p>"
        }
        body += "<form method=\"post\" action=\"/inventory\" class=\"inline\">\(csrfField(ctx))<button type=\"submit\" id=\"make-inventory\">Make a new inventory</button></form></section>"
        body += "<section class=\"card\"><h2>Update receipts</h2>"
        let receipts = console.signedReceipts()
        if receipts.isEmpty { body += "<p>No receipt yet: make one from an update in the <a href=\"/history\">history</a>.</p>" }
        body += "<ul class=\"receipts\">"
        for r in receipts {
            let what = r.receipt.map { "\($0.service ?? "-"): \($0.outcome), \($0.writtenAt)" } ?? r.name
            body += "<li>\(e(what)) <a href=\"/receipts/\(e(r.name))\" download>\(e(r.name))</a> <a href=\"/receipts/\(e(r.name)).minisig\" download>.minisig</a></li>"
        }
        body += "</ul></section>"
        return html(title: "For the connected side", ctx: ctx, console: console, body: body)
    }

    /// The attempt page's offer of a signed receipt.
    static func receiptForm(_ ctx: Console.Context, updateID: String) -> String {
        "<form method=\"post\" action=\"/receipt\" class=\"inline\">\(csrfField(ctx))<input type=\"hidden\" name=\"update\" value=\"\(e(updateID))\"><button type=\"submit\" id=\"make-receipt\">Make a signed receipt</button></form>"
    }
}
