import CaissonApp
import CaissonCore
import Foundation
import Testing
@testable import CaissonConsole

/// The stick round trip in the console (issue 16): a signed inventory and an update's signed
/// receipt, downloaded with their signatures, verify on the connected side; no key, no document.
@Suite("Console: inventory and receipts", .serialized)
struct ConsoleRoundTripTests {
    /// Writes a downloaded body to `dir/name`.
    static func save(_ r: TestResponse, _ dir: String, _ name: String) throws -> String {
        #expect(r.status == 200)
        #expect(r.header("Content-Disposition") == "attachment; filename=\"\(name)\"")
        let path = dir + "/" + name
        #expect(FileManager.default.createFile(atPath: path, contents: Data(r.body)))
        return path
    }

    @Test func inventoryAndReceiptDownloadAndVerify() throws {
        let c = try TestConsole.signedIn()
        // Without a device key: said plainly, nothing written.
        let noKey = try c.post("/inventory", form: [:])
        #expect(noKey.status == 409 && noKey.bodyText.contains("The inventory could not be made"))
        #expect(!FileManager.default.fileExists(atPath: c.app().lastInventoryPath))

        _ = try c.app().generateDeviceKey(force: false)
        #expect(try c.post("/inventory", form: [:]).status == 303)
        let page = try c.request("GET", "/roundtrip").bodyText
        #expect(page.contains("id=\"inventory\"") && page.contains("/inventory.json.minisig"))
        let out = c.dir + "/connected"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        // The signature first, then the document: the same export either way.
        _ = try Self.save(try c.request("GET", "/inventory.json.minisig"), out, "inventory.json.minisig")
        let inv = try Self.save(try c.request("GET", "/inventory.json"), out, "inventory.json")
        let v = try c.app().verifyInventory(inv, deviceKey: c.app().devicePublicKeyPath)
        #expect(v.inventory.services.map(\.name).contains("frontend"))

        // An update, then its receipt from the attempt page.
        #expect(try c.post("/check", form: ["package": try c.packageID("frontend-1.1.0.edgepkg")]).status == 303)
        try c.wait(for: .confirming)
        #expect(try c.post("/operation/go", form: ["op": try #require(c.console.operation).id]).status == 303)
        try c.wait(for: .finished)
        let attempt = try #require(try c.app().store().updateAttempts().records.first)
        #expect(try c.request("GET", "/history/\(attempt.updateID)").bodyText.contains("id=\"make-receipt\""))
        #expect(try c.post("/receipt", form: ["update": attempt.updateID]).status == 303)
        let name = "receipt-\(attempt.updateID).json"
        #expect(try c.request("GET", "/roundtrip").bodyText.contains("/receipts/\(name)"))
        _ = try Self.save(try c.request("GET", "/receipts/\(name).minisig"), out, name + ".minisig")
        let rpath = try Self.save(try c.request("GET", "/receipts/\(name)"), out, name)
        let rv = try c.app().verifyReceipt(rpath, deviceKey: c.app().devicePublicKeyPath)
        #expect(rv.receipt.outcome == "succeeded" && rv.receipt.service == "frontend")
        // Tampered on the way: refused.
        var text = try String(contentsOfFile: rpath, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"succeeded\"", with: "\"failed\"")
        try text.write(toFile: rpath, atomically: true, encoding: .utf8)
        #expect(throws: CaissonError.self) { try c.app().verifyReceipt(rpath, deviceKey: c.app().devicePublicKeyPath) }
        // Only names the console writes, from its own folder.
        #expect(try c.request("GET", "/receipts/..%2Fdevice.key").status == 404)
        #expect(try c.request("GET", "/receipts/receipt-..%2F..%2Fdevice.key.json").status == 404)
        #expect(try c.request("GET", "/receipts/device.key").status == 404)
        #expect(try c.post("/receipt", form: ["update": "../../x"]).status == 404)
        // Audited: who asked for what.
        let actions = try c.app().store().auditEvents().records.filter { $0.event.kind == .consoleAction }.map(\.event.message)
        #expect(actions.contains { $0.contains("exported the device inventory") } && actions.contains { $0.contains("made the receipt of") })
    }
}
