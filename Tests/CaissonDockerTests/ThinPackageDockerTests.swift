import CaissonCore
import Foundation
import Testing
@testable import CaissonDocker

/// Issue 16 on a real daemon, through the `caisson` binary: the inventory lists what Docker
/// holds; a thin package of `caisson-test/app:on-base` (built by scripts/make-test-images on
/// `caisson-test/base:1`, whose 16 MiB layer it leaves out) is refused with
/// `package.base_missing` and no Docker change once the base is removed after the inventory, and
/// loads once the base is back, giving the same image id as the full image; receipts verify.
///
/// It removes and restores `caisson-test/base:1` and `caisson-test/app:on-base` (from saved
/// archives: the same ids), which only this suite uses.
@Suite("Thin packages on a real daemon", .serialized)
struct ThinPackageDockerTests {
    let tag = "\(RealDocker.runID)-thin"

    func inspect(_ ref: String, _ format: String) throws -> String? {
        let r = try RealDocker.docker(["image", "inspect", "--format", format, ref])
        return r.status == 0 ? r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : nil
    }

    @Test func inventoryThinLoadAndBaseMissingOnARealDaemon() throws {
        guard RealDocker.usable("thin packages on a real daemon") else { return }
        guard try inspect("caisson-test/app:on-base", "{{.Id}}") != nil, try inspect("caisson-test/base:1", "{{.Id}}") != nil else {
            Issue.record("caisson-test/base:1 and caisson-test/app:on-base are missing: run scripts/make-test-images")
            return
        }
        let dir = NSTemporaryDirectory() + "caisson-thin-\(tag)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir + "/stick", withIntermediateDirectories: true)
        let container = "caisson-thin-\(tag)"
        // In the app's own repository: a package may only set references there (issue 10 item 8).
        let current = "caisson-test/app:thin-current-\(tag)"
        defer {
            RealDocker.removeContainers(prefix: container)
            _ = try? RealDocker.docker(["rmi", current])
            // Whatever happened: the base and the app are back as make-test-images left them.
            _ = try? RealDocker.docker(["load", "-i", dir + "/base.tar"])
            _ = try? RealDocker.docker(["load", "-i", dir + "/app.tar"])
            try? FileManager.default.removeItem(atPath: dir)
        }
        func caisson(_ args: [String]) throws -> RealDocker.CommandResult {
            try RealDocker.command(EndToEndTests.binary, ["--services", dir + "/services.toml", "--state-dir", dir + "/state"] + args, cwd: dir)
        }
        let appID = try #require(try inspect("caisson-test/app:on-base", "{{.Id}}"))
        let baseID = try #require(try inspect("caisson-test/base:1", "{{.Id}}"))
        let appLayers = try #require(try inspect("caisson-test/app:on-base", "{{json .RootFS.Layers}}"))
        #expect(try RealDocker.docker(["save", "-o", dir + "/app.tar", "caisson-test/app:on-base"]).status == 0)
        #expect(try RealDocker.docker(["save", "-o", dir + "/base.tar", "caisson-test/base:1"]).status == 0)
        // The service runs app:1 under a tag of its own; the app is not on the device yet.
        #expect(try RealDocker.docker(["tag", "caisson-test/app:1", current]).status == 0)
        #expect(try RealDocker.docker(["run", "-d", "--name", container, current]).status == 0)
        #expect(try RealDocker.docker(["rmi", "caisson-test/app:on-base"]).status == 0)
        try """
        catalog_version = 1
        [[services]]
        name = "frontend"
        service_revision = "frontend-v1"
        platform = "linux/amd64"
        runtime_mode = "docker"
        [services.docker]
        container_name = "\(container)"
        image_reference = "\(current)"
        [services.health_check]
        kind = "running"
        timeout_secs = 15
        stable_secs = 2
        """.write(toFile: dir + "/services.toml", atomically: true, encoding: .utf8)

        #expect(try caisson(["key", "generate", "--device"]).status == 0)
        let exported = try caisson(["inventory", "export", "--output", dir + "/stick/inventory.json", "--json"])
        #expect(exported.status == 0, "\(exported.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(exported.stdout.utf8)) as? [String: Any])
        let inv = try #require(doc["inventory"] as? [String: Any])
        // What Docker holds, as Docker says it.
        let service = try #require((inv["services"] as? [[String: Any]])?.first)
        let runningID = try #require(try inspect(current, "{{.Id}}"))
        let runningLayers = try #require(try inspect(current, "{{json .RootFS.Layers}}"))
        let diffIDs = try #require(service["diff_ids"] as? [String])
        #expect(service["image_id"] as? String == runningID)
        #expect(try JSONSerialization.jsonObject(with: Data(runningLayers.utf8)) as? [String] == diffIDs)
        #expect(service["chain_ids"] as? [String] == LayerChain.chainIDs(diffIDs))
        let images = try #require(inv["images"] as? [[String: Any]])
        // (Other suites load images on this daemon meanwhile: only what this one owns is compared.)
        let listed = Set(images.compactMap { $0["id"] as? String })
        #expect(listed.contains(baseID) && listed.contains(runningID) && !listed.contains(appID))
        let baseEntry = try #require(images.first { $0["id"] as? String == baseID })
        let baseLayersJSON = try #require(try inspect(baseID, "{{json .RootFS.Layers}}"))
        let baseLayers = try #require(try JSONSerialization.jsonObject(with: Data(baseLayersJSON.utf8)) as? [String])
        #expect(baseEntry["chain_ids"] as? [String] == LayerChain.chainIDs(baseLayers))
        // The ChainIDs are the daemon's own: its layer store keeps a folder per ChainID.
        let info = try RealDocker.docker(["info", "--format", "{{.DockerRootDir}} {{.Driver}}"]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ").map(String.init)
        if info.count == 2, FileManager.default.fileExists(atPath: info[0] + "/image/\(info[1])/layerdb/sha256") {
            for chain in LayerChain.chainIDs(baseLayers) + LayerChain.chainIDs(diffIDs) {
                #expect(FileManager.default.fileExists(atPath: info[0] + "/image/\(info[1])/layerdb/sha256/" + chain.dropFirst(7)), "\(chain)")
            }
        }
        #expect(((inv["free_disk"] as? [String: Any])?["image_store_bytes"] as? Int ?? 0) > 0)
        #expect(((inv["audit_head"] as? [String: Any])?["hash"] as? String)?.count == 64)
        #expect(try caisson(["inventory", "verify", dir + "/stick/inventory.json", "--device-key", dir + "/state/device.pub"]).status == 0)

        // On the connected side: full and thin packages of the app.
        let build = ["package", "build", "--service", "frontend", "--from-tar", dir + "/app.tar", "--version", "3.0.0",
                     "--created-at", "2026-06-01T10:00:00Z"]
        #expect(try caisson(build + ["--output", dir + "/full.edgepkg"]).status == 0)
        let thinBuild = try caisson(build + ["--output", dir + "/stick/thin.edgepkg", "--against", dir + "/stick/inventory.json",
                                             "--device-key", dir + "/state/device.pub"])
        #expect(thinBuild.status == 0, "\(thinBuild.stdout)\(thinBuild.stderr)")
        let fullSize = try #require(FileManager.default.attributesOfItem(atPath: dir + "/full.edgepkg")[.size] as? Int)
        let thinSize = try #require(FileManager.default.attributesOfItem(atPath: dir + "/stick/thin.edgepkg")[.size] as? Int)
        #expect(fullSize > 16 << 20 && thinSize * 50 < fullSize, "full \(fullSize) bytes, thin \(thinSize)")

        // The base goes after the inventory was taken: refused before any change.
        #expect(try RealDocker.docker(["rmi", "caisson-test/base:1"]).status == 0)
        let refused = try caisson(["package", "load", dir + "/stick/thin.edgepkg", "--yes", "--receipt", dir + "/stick"])
        #expect(refused.status == 2, "\(refused.stdout)\(refused.stderr)")
        #expect(refused.stdout.contains("[package.base_missing]") && refused.stdout.contains("caisson-test/base:1"), "\(refused.stdout)")
        #expect(try inspect(appID, "{{.Id}}") == nil, "nothing was loaded")
        #expect(try inspect("caisson-test/app:on-base", "{{.Id}}") == nil)
        #expect(try inspect(current, "{{.Id}}") == runningID)
        #expect(try RealDocker.docker(["inspect", "--format", "{{.State.Running}}", container]).stdout.contains("true"))

        // The base is back (the same image): the thin package loads and runs the full image.
        #expect(try RealDocker.docker(["load", "-i", dir + "/base.tar"]).status == 0)
        let loaded = try caisson(["package", "load", dir + "/stick/thin.edgepkg", "--yes", "--receipt", dir + "/stick", "--json"])
        #expect(loaded.status == 0, "\(loaded.stdout)\(loaded.stderr)")
        #expect(try inspect("caisson-test/app:on-base", "{{.Id}}") == appID)
        #expect(try inspect("caisson-test/app:on-base", "{{json .RootFS.Layers}}") == appLayers)
        #expect(try RealDocker.docker(["inspect", "--format", "{{.Image}}", container]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == appID)

        // Both receipts came back on the stick and verify; one changed byte does not.
        let receipts = try FileManager.default.contentsOfDirectory(atPath: dir + "/stick").filter { $0.hasPrefix("receipt-") && $0.hasSuffix(".json") }
        #expect(receipts.count == 2)
        var outcomes: [String] = []
        for r in receipts {
            let v = try caisson(["receipt", "verify", dir + "/stick/" + r, "--device-key", dir + "/state/device.pub", "--json"])
            #expect(v.status == 0, "\(v.stderr)")
            let receipt = (try JSONSerialization.jsonObject(with: Data(v.stdout.utf8)) as? [String: Any])?["receipt"] as? [String: Any]
            outcomes.append(receipt?["outcome"] as? String ?? "?")
        }
        #expect(outcomes.sorted() == ["rejected", "succeeded"])
        let path = dir + "/stick/" + receipts[0]
        var bytes = try #require(FileManager.default.contents(atPath: path))
        bytes[bytes.count / 2] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect(try caisson(["receipt", "verify", path, "--device-key", dir + "/state/device.pub"]).status == 2)
    }
}
