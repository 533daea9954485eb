import CaissonCore
import Foundation

/// The stick round trip on the command line (issue 16): `inventory export/verify`, `receipt
/// export/verify`, and what `key generate --device`, `package build --against` and `package load
/// --receipt` print.
extension CaissonCLI {
    static let inventoryExportSpec = CommandSpec(
        ["inventory", "export"], summary: "Write this device's signed inventory (for thin packages), e.g. onto the stick",
        discussion: "A JSON document signed with the device key (make it once with 'caisson key generate --device'):\nthe device id, platform and Caisson version; per catalog service the image it runs (id, DiffIDs,\nChainIDs), its version and last outcome; the ChainIDs of every image on the device; free disk;\nthe audit chain's head; the device's age recipients. Writes PATH and PATH.minisig (minisign -Vm\nverifies it too) and keeps a copy in the state directory (package cleanup keeps the images it\nlists). Build a thin package from it with 'caisson package build ... --against PATH'.",
        options: [OptionSpec("--output", short: "-o", value: "PATH", help: "Where to write it (default: inventory.json)")])
    static let inventoryVerifySpec = CommandSpec(
        ["inventory", "verify"], summary: "Check a device inventory's signature (on the connected side)",
        discussion: "Checks FILE against FILE.minisig with the device's public key (its device.pub, or the base64\nline). Exit 0 authentic, 2 it does not verify or is not an inventory, 1 it cannot be read.",
        positionals: [("FILE", "The inventory (inventory.json)", false)],
        options: [OptionSpec("--device-key", value: "PUB", help: "The device's public key: device.pub or its base64 line (required)")])
    static let receiptExportSpec = CommandSpec(
        ["receipt", "export"], summary: "Write the signed receipt of an update (or of a refused package) into a folder",
        discussion: "UPDATE_ID is an update id (or unique prefix of 8+ characters), or the validation id of a package\nthat went no further. Writes DIR/receipt-ID.json and its .minisig, signed with the device key.",
        positionals: [("UPDATE_ID", "The update id (history list), or a validation id", false)],
        options: [OptionSpec("--output", short: "-o", value: "DIR", help: "The folder to write into (required)")])
    static let receiptVerifySpec = CommandSpec(
        ["receipt", "verify"], summary: "Check an update receipt's signature (on the connected side)",
        discussion: "Checks FILE against FILE.minisig with the device's public key and shows what it says.\nExit 0 authentic, 2 it does not verify or is not a receipt, 1 it cannot be read.",
        positionals: [("FILE", "The receipt (receipt-ID.json)", false)],
        options: [OptionSpec("--device-key", value: "PUB", help: "The device's public key: device.pub or its base64 line (required)")])

    static let roundTripCommandSpecs = [inventoryExportSpec, inventoryVerifySpec, receiptExportSpec, receiptVerifySpec]

    static func runRoundTrip(_ cmd: ParsedCommand, app: Application, out: Output) throws -> Int32 {
        switch cmd.path {
        case ["inventory", "export"]:
            let e = try app.exportInventory(to: cmd.value("--output") ?? "inventory.json")
            if out.json {
                out.document(InventoryExportDocument(path: e.path, signature: e.signaturePath, sha256: e.sha256, inventory: e.inventory))
                return 0
            }
            let inv = e.inventory
            out.line("Inventory of device \(inv.deviceID) written to \(e.path)")
            out.line("Signature: \(e.signaturePath) (device key \(inv.deviceKeyID))")
            out.line("Platform: \(inv.platform); \(inv.runtime); Caisson \(inv.caissonVersion)")
            for s in inv.services {
                out.line("- \(s.name): \(s.imageReference ?? "-") (\(Format.shortID(s.imageID)), \(s.diffIDs.count) layer(s))\(s.version.map { ", version \($0)" } ?? "")\(s.lastOutcome.map { ", last \($0.status)" } ?? "")")
            }
            out.line("Images: \(inv.images.count), layer chains: \(inv.heldChainIDs.count)")
            if let h = inv.auditHead { out.line("Audit head: #\(h.seq) \(h.hash.prefix(16))…") }
            return 0

        case ["inventory", "verify"]:
            guard let key = cmd.value("--device-key") else {
                throw CaissonError("usage.missing_option", "'caisson inventory verify' needs --device-key PUB")
            }
            return try verdict(out) {
                let v = try app.verifyInventory(cmd.positionals[0], deviceKey: key)
                if out.json { out.document(VerifyDocument(ok: true, sha256: v.sha256, trustedComment: v.signature.trustedComment, inventory: v.inventory, receipt: nil)); return }
                out.line("Inventory: authentic (device key \(v.signature.keyID))")
                out.line("Device \(v.inventory.deviceID), \(v.inventory.platform), exported \(v.inventory.exportedAt)")
                out.line("Services: \(v.inventory.services.map(\.name).joined(separator: ", ")); images: \(v.inventory.images.count)")
            }

        case ["receipt", "export"]:
            guard let dir = cmd.value("--output") else {
                throw CaissonError("usage.missing_option", "'caisson receipt export' needs --output DIR")
            }
            try app.recoverIfNeeded()
            let f = try app.writeReceipt(try app.receipt(id: cmd.positionals[0]), directory: dir)
            if out.json { out.document(["receipt": f.path, "signature": f.signaturePath, "outcome": f.receipt.outcome]); return 0 }
            out.line("Receipt \(f.receipt.receiptID) (\(f.receipt.outcome)) written to \(f.path)")
            return 0

        case ["receipt", "verify"]:
            guard let key = cmd.value("--device-key") else {
                throw CaissonError("usage.missing_option", "'caisson receipt verify' needs --device-key PUB")
            }
            return try verdict(out) {
                let v = try app.verifyReceipt(cmd.positionals[0], deviceKey: key)
                if out.json { out.document(VerifyDocument(ok: true, sha256: v.sha256, trustedComment: v.signature.trustedComment, inventory: nil, receipt: v.receipt)); return }
                let r = v.receipt
                out.line("Receipt: authentic (device key \(v.signature.keyID))")
                out.line("Device \(r.deviceID), written \(r.writtenAt)")
                out.line("Service: \(r.service ?? "-"); package \(r.package.version ?? "?")\(r.package.thin ? " (thin)" : "")")
                out.line("Outcome: \(r.outcome)\(r.exitCode.map { " (exit \($0))" } ?? "")")
                out.line("Version: \(r.versionBefore ?? "-") -> \(r.versionAfter ?? "-")")
                if let h = r.health { out.line("Health check: \(h.outcome.rawValue) - \(h.message)") }
                for i in r.issues { out.line("- \(i)") }
            }

        default:
            throw CaissonError("usage.unknown_command", "unknown command")
        }
    }

    /// Runs a verification: a signature or document problem is exit 2, an unreadable file exit 1.
    static func verdict(_ out: Output, _ body: () throws -> Void) throws -> Int32 {
        do {
            try body()
            return 0
        } catch let e as CaissonError where e.code.hasPrefix("signature.") || e.code.hasSuffix(".invalid") || e.code.hasSuffix(".key_mismatch") {
            if out.json {
                out.document(ErrorDocument(error: ErrorDocument.Body(code: e.code, message: e.message)))
            } else {
                out.error("[\(e.code)] \(e.message)")
            }
            return 2
        }
    }

    static func keyGenerateDevice(_ cmd: ParsedCommand, app: Application, out: Output) throws -> Int32 {
        guard cmd.positionals.isEmpty else {
            throw CaissonError("usage.invalid", "'caisson key generate --device' takes no NAME (the key goes into the state directory)")
        }
        let k = try app.generateDeviceKey(force: cmd.flag("--force"))
        if out.json { out.document(k); return 0 }
        out.line("Device \(k.deviceID): key \(k.keyID)")
        out.line("Secret key: \(k.secretKeyFile) (mode 0600; it never leaves this device)")
        out.line("Public key: \(k.publicKeyFile)")
        out.line(k.publicKey)
        out.notice("Take device.pub to the connected side to verify this device's inventories and receipts.", always: true)
        return 0
    }

    /// `package load --receipt DIR`: after the load, whatever its outcome.
    /// A receipt that cannot be written is reported; the load's exit code stays what it was.
    static func writeLoadReceipt(_ outcome: Application.LoadOutcome, dryRun: Bool, directory: String,
                                 app: Application, out: Output) {
        do {
            let f = try app.writeReceipt(try app.receipt(for: outcome, dryRun: dryRun), directory: directory)
            out.notice("Receipt written to \(f.path)", always: true)
        } catch {
            out.error("[receipt.write_failed] the update receipt could not be written: \(error.message)")
        }
    }

    static func printThinBuild(_ t: Application.ThinBuildSummary?, out: Output) {
        guard let t else { return }
        let pct = t.fullImageTarBytes > 0 ? Double(t.thinImageTarBytes) * 100 / Double(t.fullImageTarBytes) : 0
        out.line("Thin package for device \(t.deviceID): \(t.omittedLayers) of \(t.layers) layer(s) left out; image.tar \(Format.bytes(t.thinImageTarBytes)) instead of \(Format.bytes(t.fullImageTarBytes)) (\(String(format: "%.1f", pct)) %)")
    }

    struct InventoryExportDocument: Encodable {
        var path: String
        var signature: String
        var sha256: String
        var inventory: DeviceInventory
    }

    struct VerifyDocument: Encodable {
        var ok: Bool
        var sha256: String
        var trustedComment: String
        var inventory: DeviceInventory?
        var receipt: UpdateReceipt?
        enum CodingKeys: String, CodingKey {
            case ok, sha256, inventory, receipt
            case trustedComment = "trusted_comment"
        }
    }
}
