import CaissonCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The stick round trip through the real binary on the simulator (issue 16): a device key,
/// a signed inventory, a thin package built against it that loads where the base is and is
/// refused (`package.base_missing`, nothing loaded) where it is not, retention that keeps a
/// base the last inventory listed, and signed receipts that verify and catch tampering.
@Suite struct RoundTripCLITests {
    /// A 1 MiB base layer (shared) and a small app layer of `version`.
    static func image(_ version: String, base: String = "base-a") -> SyntheticImage {
        var img = SyntheticImage(reference: "example/frontend:\(version)")
        img.labels = ["io.caisson.sim.health": "healthy"]
        img.healthcheck = ["CMD", "/bin/true"]
        var seed = base.utf8.reduce(UInt64(7)) { $0 &* 31 &+ UInt64($1) }
        let noise = (0..<(1 << 20)).map { _ -> UInt8 in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: seed >> 33)
        }
        img.baseLayers = [[("opt/\(base)/big.bin", noise)]]
        img.files = [("app/version", Array("app \(version)\n".utf8))]
        return img
    }

    /// Writes the image's docker save tarball; returns its image id.
    @discardableResult
    static func saveTar(_ img: SyntheticImage, to path: String) throws -> String {
        let (bytes, id) = try img.archive()
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return id
    }

    static func simImages(_ c: Caisson) throws -> [[String: Any]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: c.dir + "/.caisson-state/sim-host.json"))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let images = try #require(root["images"] as? [String: Any])
        return images.keys.sorted().compactMap { images[$0] as? [String: Any] }
    }

    static func build(_ c: Caisson, tar: String, version: String, output: String, extra: [String] = []) throws -> Caisson.Result {
        try c.run(["package", "build", "--service", "frontend", "--from-tar", tar, "--version", version,
                   "--created-at", "2026-05-0\(min(9, Int(version.prefix(1)) ?? 1))T10:00:00Z", "--output", output, "--json"] + extra)
    }

    @Test func deviceKeyInventoryAndTamperedInventory() throws {
        let c = try Caisson()
        // No device key yet: said before anything is written.
        let none = try c.run(["inventory", "export"])
        #expect(none.status == 1 && none.stderr.contains("[device.no_key]"))
        #expect(!FileManager.default.fileExists(atPath: c.dir + "/inventory.json"))
        let gen = try c.run(["key", "generate", "--device", "--json"])
        #expect(gen.status == 0, "\(gen.stderr)")
        let keyID = try #require(gen.json?["key_id"] as? String)
        var st = stat()
        #expect(stat(c.dir + "/.caisson-state/device.key", &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(FileManager.default.fileExists(atPath: c.dir + "/.caisson-state/device.pub"))
        #expect(try c.run(["key", "generate", "--device"]).stderr.contains("[key.exists]"))

        let exp = try c.run(["inventory", "export", "--output", "stick/inv.json", "--json"])
        #expect(exp.status == 1, "a missing folder is an error")
        try FileManager.default.createDirectory(atPath: c.dir + "/stick", withIntermediateDirectories: true)
        let ok = try c.run(["inventory", "export", "--output", "stick/inv.json", "--json"])
        #expect(ok.status == 0, "\(ok.stderr)")
        let inv = try #require(ok.json?["inventory"] as? [String: Any])
        #expect(inv["device_key_id"] as? String == keyID)
        #expect(inv["device_id"] as? String == gen.json?["device_id"] as? String)
        #expect(inv["format"] as? String == "caisson-inventory/1")
        let services = try #require(inv["services"] as? [[String: Any]])
        #expect(services.map { $0["name"] as? String } == ["frontend", "backend"])
        let images = try #require(inv["images"] as? [[String: Any]])
        #expect(images.count == 2 && images.allSatisfy { ($0["chain_ids"] as? [String])?.count == 1 })

        let verify = try c.run(["inventory", "verify", "stick/inv.json", "--device-key", ".caisson-state/device.pub"], sim: false)
        #expect(verify.status == 0 && verify.stdout.contains("authentic"), "\(verify.stderr)")
        // The public key's base64 line works too, and minisign agrees.
        let pub = try String(contentsOfFile: c.dir + "/.caisson-state/device.pub", encoding: .utf8).split(separator: "\n")[1]
        #expect(try c.run(["inventory", "verify", "stick/inv.json", "--device-key", String(pub)], sim: false).status == 0)
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/minisign") {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/minisign")
            p.arguments = ["-Vm", c.dir + "/stick/inv.json", "-p", c.dir + "/.caisson-state/device.pub", "-q"]
            try p.run()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0, "minisign verifies the device's inventory")
        }
        // Tampering: one character of the document, or another device's key.
        var text = try String(contentsOfFile: c.dir + "/stick/inv.json", encoding: .utf8)
        text = text.replacingOccurrences(of: "\"frontend\"", with: "\"frontenD\"")
        try text.write(toFile: c.dir + "/stick/inv.json", atomically: true, encoding: .utf8)
        let bad = try c.run(["inventory", "verify", "stick/inv.json", "--device-key", ".caisson-state/device.pub"], sim: false)
        #expect(bad.status == 2 && bad.stderr.contains("[signature.invalid]"))
        let other = try Caisson()
        _ = try other.run(["key", "generate", "--device"])
        let wrongKey = try c.run(["inventory", "verify", "stick/inv.json", "--device-key", other.dir + "/.caisson-state/device.pub"], sim: false)
        #expect(wrongKey.status == 2 && wrongKey.stderr.contains("[signature.untrusted_key]"))
    }

    @Test func thinPackageLoadsWhereTheBaseIsAndIsRefusedWhereItIsNot() throws {
        let c = try Caisson()
        #expect(try c.run(["key", "generate", "--device"]).status == 0)
        let v1 = try Self.saveTar(Self.image("1.0.0"), to: c.dir + "/v1.tar")
        let v2 = try Self.saveTar(Self.image("2.0.0"), to: c.dir + "/v2.tar")
        #expect(try Self.build(c, tar: "v1.tar", version: "1.0.0", output: "v1.edgepkg").status == 0)
        let l1 = try c.run(["package", "load", "v1.edgepkg", "--yes"])
        #expect(l1.status == 0, "\(l1.stdout)\(l1.stderr)")
        #expect(try c.run(["inventory", "export", "-o", "inv.json"]).status == 0)

        // Built against the inventory: the 1 MiB base layer stays home.
        let full = try Self.build(c, tar: "v2.tar", version: "2.0.0", output: "v2-full.edgepkg")
        let thin = try Self.build(c, tar: "v2.tar", version: "2.0.0", output: "v2-thin.edgepkg",
                                  extra: ["--against", "inv.json", "--device-key", ".caisson-state/device.pub"])
        #expect(full.status == 0 && thin.status == 0, "\(thin.stderr)")
        let fullSize = try #require(FileManager.default.attributesOfItem(atPath: c.dir + "/v2-full.edgepkg")[.size] as? Int)
        let thinSize = try #require(FileManager.default.attributesOfItem(atPath: c.dir + "/v2-thin.edgepkg")[.size] as? Int)
        #expect(fullSize > 1 << 20 && thinSize < 64 * 1024, "full \(fullSize), thin \(thinSize)")
        let summary = try #require(thin.json?["thin"] as? [String: Any])
        #expect(summary["omitted_layers"] as? Int == 1 && summary["layers"] as? Int == 2 && summary["signature_verified"] as? Bool == true)
        let (pkgManifest, _) = try Self.manifest(of: c.dir + "/v2-thin.edgepkg")
        #expect(pkgManifest.thin?.configDigest == v2)
        #expect(pkgManifest.thin?.diffIDs.count == 2 && pkgManifest.thin?.requiredChainIDs.count == 1)
        #expect(pkgManifest.thin?.bases.first?.references == ["example/frontend:1.0.0"])
        // Stock tar sees the docker save layout minus one layer.tar.
        let entries = try Self.imageEntries(c.dir + "/v2-thin.edgepkg")
        #expect(entries.filter { $0.hasSuffix("layer.tar") }.count == 1 && entries.contains("manifest.json") && entries.contains("repositories"))

        // A device that never had the base: refused before any change, nothing loaded.
        let bare = try Caisson()
        #expect(try bare.run(["key", "generate", "--device"]).status == 0)
        try FileManager.default.copyItem(atPath: c.dir + "/v2-thin.edgepkg", toPath: bare.dir + "/v2-thin.edgepkg")
        #expect(try bare.run(["inventory", "export", "-o", "bare-inventory.json"]).status == 0)  // provisions the simulated host
        let before = try Self.simImages(bare)
        try FileManager.default.createDirectory(atPath: bare.dir + "/stick", withIntermediateDirectories: true)
        let refused = try bare.run(["package", "load", "v2-thin.edgepkg", "--yes", "--receipt", "stick"])
        #expect(refused.status == 2 && refused.stdout.contains("[package.base_missing]"), "\(refused.stdout)\(refused.stderr)")
        #expect(refused.stdout.contains("example/frontend:1.0.0"), "names the image the inventory saw the layers in")
        #expect(try Self.simImages(bare).map { $0["id"] as? String } == before.map { $0["id"] as? String })
        let receipts = try FileManager.default.contentsOfDirectory(atPath: bare.dir + "/stick").sorted()
        #expect(receipts.count == 2 && receipts.allSatisfy { $0.hasPrefix("receipt-") })
        let rejected = try bare.run(["receipt", "verify", "stick/" + receipts[0], "--device-key", ".caisson-state/device.pub", "--json"], sim: false)
        #expect(rejected.status == 0, "\(rejected.stderr)")
        let rr = try #require(rejected.json?["receipt"] as? [String: Any])
        #expect(rr["outcome"] as? String == "rejected" && rr["exit_code"] as? Int == 2)
        #expect((rr["issues"] as? [[String: Any]])?.contains { $0["code"] as? String == "package.base_missing" } == true)

        // The device that has it: loads, and the image is the full image.
        try FileManager.default.createDirectory(atPath: c.dir + "/stick", withIntermediateDirectories: true)
        let l2 = try c.run(["package", "load", "v2-thin.edgepkg", "--yes", "--receipt", "stick"])
        #expect(l2.status == 0, "\(l2.stdout)\(l2.stderr)")
        let loaded = try Self.simImages(c).first { $0["id"] as? String == v2 }
        #expect(loaded != nil && (loaded?["layers"] as? [String]) == pkgManifest.thin?.diffIDs)
        // Its receipt verifies on the connected side; a changed outcome does not.
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: c.dir + "/stick").first { $0.hasSuffix(".json") })
        let good = try c.run(["receipt", "verify", "stick/" + name, "--device-key", ".caisson-state/device.pub", "--json"], sim: false)
        #expect(good.status == 0, "\(good.stderr)")
        let receipt = try #require(good.json?["receipt"] as? [String: Any])
        #expect(receipt["outcome"] as? String == "succeeded" && receipt["version_before"] as? String == "1.0.0"
                && receipt["version_after"] as? String == "2.0.0")
        #expect((receipt["package"] as? [String: Any])?["thin"] as? Bool == true)
        #expect((receipt["health"] as? [String: Any])?["outcome"] as? String == "passed")
        #expect((receipt["audit_head"] as? [String: Any])?["seq"] as? Int ?? 0 > 0)
        let updateID = try #require((receipt["attempt"] as? [String: Any])?["update_id"] as? String)
        var text = try String(contentsOfFile: c.dir + "/stick/" + name, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"succeeded\"", with: "\"rolled_back\"")
        try text.write(toFile: c.dir + "/stick/" + name, atomically: true, encoding: .utf8)
        let tampered = try c.run(["receipt", "verify", "stick/" + name, "--device-key", ".caisson-state/device.pub"], sim: false)
        #expect(tampered.status == 2 && tampered.stderr.contains("[signature.invalid]"))
        // Exported again later from the records: the same attempt.
        let again = try c.run(["receipt", "export", String(updateID.prefix(8)), "--output", "later", "--json"])
        #expect(again.status == 0, "\(again.stderr)")
        let path = try #require(again.json?["receipt"] as? String)
        let later = try c.run(["receipt", "verify", path, "--device-key", ".caisson-state/device.pub", "--json"], sim: false)
        let lr = try #require(later.json?["receipt"] as? [String: Any])
        #expect(lr["outcome"] as? String == "succeeded" && lr["receipt_id"] as? String == updateID && lr["version_after"] as? String == "2.0.0")
    }

    @Test func cleanupKeepsTheBaseTheLastInventoryListedAndALaterLoadNamesItWhenGone() throws {
        let c = try Caisson()
        #expect(try c.run(["key", "generate", "--device"]).status == 0)
        // v1 on base A; v2 and v3 on base B: after v3, v1 is neither active nor previous.
        for (v, base) in [("1.0.0", "base-a"), ("2.0.0", "base-b"), ("3.0.0", "base-b")] {
            try Self.saveTar(Self.image(v, base: base), to: c.dir + "/\(v).tar")
            #expect(try Self.build(c, tar: "\(v).tar", version: v, output: "\(v).edgepkg").status == 0)
            let l = try c.run(["package", "load", "\(v).edgepkg", "--yes"])
            #expect(l.status == 0, "\(l.stdout)\(l.stderr)")
        }
        #expect(try c.run(["inventory", "export", "-o", "inv.json"]).status == 0)
        let v1 = try #require(try Self.simImages(c).first { ($0["repoTags"] as? [String])?.contains("example/frontend:1.0.0") == true })
        let kept = try c.run(["package", "cleanup", "--json"])
        #expect(kept.status == 0, "\(kept.stdout)\(kept.stderr)")
        #expect((kept.json?["kept_for_inventory"] as? [String]) == [v1["id"] as! String])
        #expect(try Self.simImages(c).contains { $0["id"] as? String == v1["id"] as? String })

        // A thin v4 on base A, built from that inventory; then the base goes anyway.
        try Self.saveTar(Self.image("4.0.0", base: "base-a"), to: c.dir + "/4.0.0.tar")
        let thin = try Self.build(c, tar: "4.0.0.tar", version: "4.0.0", output: "4.0.0.edgepkg", extra: ["--against", "inv.json"])
        #expect(thin.status == 0 && (thin.json?["thin"] as? [String: Any])?["omitted_layers"] as? Int == 1, "\(thin.stderr)")
        let removed = try c.run(["package", "cleanup", "--ignore-inventory", "--json"])
        #expect(removed.status == 0)
        #expect((removed.json?["removed_images"] as? [[String: Any]])?.contains { $0["image_id"] as? String == v1["id"] as? String } == true)
        let before = try Self.simImages(c).map { $0["id"] as? String }
        let l4 = try c.run(["package", "load", "4.0.0.edgepkg", "--yes", "--json"])
        #expect(l4.status == 2, "\(l4.stdout)")
        let issues = try #require(l4.json?["issues"] as? [[String: Any]])
        let missing = try #require(issues.first { $0["code"] as? String == "package.base_missing" })
        #expect((missing["message"] as? String)?.contains("example/frontend:1.0.0") == true)
        #expect(try Self.simImages(c).map { $0["id"] as? String } == before, "nothing was loaded")
    }

    @Test func thinManifestsThatLieAreRejected() throws {
        let c = try Caisson()
        let img = Self.image("2.0.0")
        let (bytes, id) = try img.archive()
        let diffIDs = try Self.diffIDs(bytes)
        // Leave out the base layer by hand, with and without [thin].
        let thinTar = try Self.dropFirstLayer(bytes)
        let head = EdgePackageWriter.manifest(service: "frontend", revision: "frontend-v1", platform: "linux/amd64",
                                              version: "2.0.0", createdAt: "2026-05-02T10:00:00Z", reference: "example/frontend:2.0.0")
        try EdgePackageWriter.write(manifest: head, image: thinTar, to: c.dir + "/plain.edgepkg")
        let plain = try c.run(["package", "validate", "plain.edgepkg"])
        #expect(plain.status == 2 && plain.stdout.contains("[image.invalid_archive]"), "\(plain.stdout)")
        let chains = LayerChain.chainIDs(diffIDs)
        func thin(_ config: String, _ diffs: [String], _ required: [String]) -> String {
            head + Manifest.Thin(configDigest: config, diffIDs: diffs, requiredChainIDs: required).toml
        }
        try EdgePackageWriter.write(manifest: thin(id, diffIDs, [chains[0]]), image: thinTar, to: c.dir + "/good.edgepkg")
        #expect(try c.run(["package", "validate", "good.edgepkg"]).status == 0)
        let cases: [(String, String)] = [
            (thin("sha256:" + String(repeating: "a", count: 64), diffIDs, [chains[0]]), "thin.config_mismatch"),
            (thin(id, [diffIDs[1], diffIDs[0]], [chains[0]]), "thin.diff_ids_mismatch"),
            (thin(id, diffIDs, [chains[1]]), "thin.layers_mismatch"),
            (thin(id, diffIDs, ["sha256:xyz"]), "thin.invalid"),
        ]
        for (i, (manifest, code)) in cases.enumerated() {
            try EdgePackageWriter.write(manifest: manifest, image: thinTar, to: c.dir + "/bad\(i).edgepkg")
            let r = try c.run(["package", "validate", "bad\(i).edgepkg"])
            #expect(r.status == 2 && r.stdout.contains("[\(code)]"), "\(code): \(r.stdout)")
        }
    }

    // MARK: Helpers

    static func manifest(of package: String) throws -> (Manifest, [UInt8]) {
        let (rc, out) = try tar(["-xOf", package, "manifest.toml"])
        #expect(rc == 0)
        let (m, issues) = Manifest.parse(out)
        #expect(issues.isEmpty, "\(issues)")
        return (try #require(m), out)
    }

    static func imageEntries(_ package: String) throws -> [String] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rt-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try tar(["-xf", package, "-C", dir, "image.tar"]).0 == 0)
        let (rc, out) = try tar(["-tf", dir + "/image.tar"])
        #expect(rc == 0)
        return String(decoding: out, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    static func tar(_ args: [String]) throws -> (Int32, [UInt8]) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["tar"] + args
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, Array(data))
    }

    /// What the scanner sees of an image archive (wrapped in a throwaway package).
    static func facts(_ archive: [UInt8]) throws -> ImageFacts {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rt-\(UUID().uuidString).edgepkg").path
        defer { unlink(path) }
        try EdgePackageWriter.write(manifest: "", image: archive, to: path)
        return try #require(PackageScanner().scan(path: path).image)
    }

    static func diffIDs(_ archive: [UInt8]) throws -> [String] { try facts(archive).layers }

    /// The archive without the first layer's layer.tar (what a thin build leaves out).
    static func dropFirstLayer(_ archive: [UInt8]) throws -> [UInt8] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rt-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        FileManager.default.createFile(atPath: dir + "/in.tar", contents: Data(archive))
        let facts = try Self.facts(archive)
        var out: [UInt8] = []
        _ = try ThinArchive.write(from: dir + "/in.tar", omitting: [facts.layerFiles[0]]) { out.append(contentsOf: $0) }
        return out
    }
}
