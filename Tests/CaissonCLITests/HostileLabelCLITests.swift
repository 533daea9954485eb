import CaissonCore
import Foundation
import Testing

/// Issue 10 item 9 through the CLI, on the simulator: a frontend package whose image carries
/// Compose's project/service labels (its container would count as backend's) or Caisson's own
/// marks is refused by `package validate` and `package load` alike, before any change.
@Suite struct HostileLabelCLITests {
    func labelled(_ c: Caisson, _ labels: [String: String], name: String) throws -> String {
        let ref = "example/frontend:2.0.0"
        var img = SyntheticImage(reference: ref)
        img.labels = labels.merging(["io.caisson.sim.health": "healthy"]) { $1 }
        img.healthcheck = ["CMD", "/bin/true"]
        let (bytes, _) = try img.archive()
        let m = EdgePackageWriter.manifest(service: "frontend", revision: "frontend-v1", platform: "linux/amd64",
                                           version: "2.0.0", createdAt: "2026-03-16T18:30:00Z", reference: ref,
                                           sha256: SHA256.hash(bytes).hex, size: bytes.count)
        try EdgePackageWriter.write(manifest: m, image: bytes, to: c.dir + "/" + name)
        return name
    }

    @Test(arguments: [
        ["com.docker.compose.project": "stack", "com.docker.compose.service": "backend"],
        ["com.docker.compose.config-hash": "0"],
        ["io.caisson.update-id": "4057113e-0000-4000-8000-000000000001"],
    ])
    func reservedLabelsAreRefusedBeforeAnyChange(_ labels: [String: String]) throws {
        let c = try Caisson()
        let pkg = try labelled(c, labels, name: "evil.edgepkg")
        let v = try c.run(["package", "validate", pkg])
        #expect(v.status == 2, "\(v.stdout)\(v.stderr)")
        #expect(v.stdout.contains("[image.reserved_label]"), "\(v.stdout)")
        for key in labels.keys { #expect(v.stdout.contains(key), "\(v.stdout)") }
        let before = try c.run(["service", "show", "frontend", "--json"])
        let l = try c.run(["package", "load", pkg, "--yes"])
        #expect(l.status == 2, "\(l.stdout)\(l.stderr)")
        #expect((l.stdout + l.stderr).contains("[image.reserved_label]"), "\(l.stdout)\(l.stderr)")
        let none = try c.run(["history", "list", "--json"])
        #expect((none.json?["attempts"] as? [Any])?.isEmpty == true, "refused, yet an attempt was recorded: \(none.stdout)")
        let after = try c.run(["service", "show", "frontend", "--json"])
        #expect((before.json?["live"] as? [String: Any])?["containers"] as? NSArray
                == (after.json?["live"] as? [String: Any])?["containers"] as? NSArray, "the refused load changed the container")
    }

    /// The simulator's own scripting family and ordinary labels stay allowed.
    @Test func ordinaryLabelsLoad() throws {
        let c = try Caisson()
        let pkg = try labelled(c, ["org.opencontainers.image.version": "2.0.0", "io.caisson.sim.flush_secs": "0"], name: "ok.edgepkg")
        let l = try c.run(["package", "load", pkg, "--yes"])
        #expect(l.status == 0, "\(l.stdout)\(l.stderr)")
    }
}
