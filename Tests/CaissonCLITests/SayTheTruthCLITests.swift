import CaissonCore
import Foundation
import Testing

/// Issue 10 item 12 through the binary, on the simulator: what Caisson says is what is.
@Suite struct SayTheTruthCLITests {
    static func attempts(_ c: Caisson) throws -> [[String: Any]] {
        try #require(try c.run(["history", "list", "--json"]).json?["attempts"] as? [[String: Any]])
    }

    /// `[services.rollback] automatic = false`: the summary, the recorded state, `caisson
    /// rollback` (one release back, not two) and the kept backup (removed once replaced).
    @Test func automaticRollbackOffTellsTheTruth() throws {
        let c = try Caisson()
        #expect(Caisson.catalog.contains("timeout_secs = 20\n"))
        try Caisson.catalog.replacingOccurrences(of: "timeout_secs = 20\n", with: "timeout_secs = 20\n[services.rollback]\nautomatic = false\n")
            .write(toFile: c.dir + "/services.toml", atomically: true, encoding: .utf8)
        #expect(try c.run(["package", "load", try c.package("a.edgepkg", version: "1.1.0"), "--yes"]).status == 0)
        let bad = try c.run(["package", "load", try c.package("b.edgepkg", version: "1.2.0", behaviour: "unhealthy",
                                                           createdAt: "2026-04-01T00:00:00Z"), "--yes"])
        #expect(bad.status == 4)
        #expect(!bad.stdout.contains("runs its previous release"), "\(bad.stdout)")
        #expect(bad.stdout.contains("Automatic rollback is off: the new release example/frontend:1.2.0"), "\(bad.stdout)")
        let failed = try #require(try Self.attempts(c).first)
        let backup = try #require(failed["rollback_container_name"] as? String)
        #expect(try String(contentsOfFile: c.dir + "/.caisson-state/sim-host.json", encoding: .utf8).contains(backup))

        // The state says what runs.
        let show = try c.run(["service", "show", "frontend"])
        #expect(show.stdout.contains("Active image: example/frontend:1.2.0\n"), "\(show.stdout)")
        #expect(show.stdout.contains("Previous known-good image: example/frontend:1.1.0\n"), "\(show.stdout)")

        // A cleanup keeps the backup while it is the way back.
        _ = try c.run(["package", "cleanup"])
        #expect(try String(contentsOfFile: c.dir + "/.caisson-state/sim-host.json", encoding: .utf8).contains(backup))

        // Rollback goes to 1.1.0 (one release back) and the kept backup is gone.
        let rb = try c.run(["rollback", "frontend", "--yes"])
        #expect(rb.status == 0, "\(rb.stdout) \(rb.stderr)")
        #expect(rb.stdout.contains("Target image: example/frontend:1.1.0\n"), "\(rb.stdout)")
        let after = try c.run(["service", "show", "frontend", "--json"])
        let state = try #require(after.json?["state"] as? [String: Any])
        #expect(state["active_image_reference"] as? String == "example/frontend:1.1.0")
        #expect(state["highest_package_version"] as? String == "1.1.0")
        #expect(!(try String(contentsOfFile: c.dir + "/.caisson-state/sim-host.json", encoding: .utf8)).contains(backup),
                "the backup kept by the failed update is still there")
    }

    /// After `caisson rollback` the version in place is the restored one: the release rolled
    /// back from can be applied again (not "already installed").
    @Test func rollbackRecordsTheRestoredVersion() throws {
        let c = try Caisson()
        #expect(try c.run(["package", "load", try c.package("a.edgepkg", version: "1.1.0"), "--yes"]).status == 0)
        let b = try c.package("b.edgepkg", version: "1.2.0", createdAt: "2026-04-01T00:00:00Z")
        #expect(try c.run(["package", "load", b, "--yes"]).status == 0)
        #expect(try c.run(["rollback", "frontend", "--yes"]).status == 0)
        let show = try c.run(["service", "show", "frontend"])
        #expect(show.stdout.contains("Package version: 1.1.0\n"), "\(show.stdout)")
        #expect(!show.stdout.contains("caisson-pin/"), "\(show.stdout)")
        let again = try c.run(["package", "load", b, "--yes"])
        #expect(again.status == 0, "\(again.stdout)")
    }

    /// `package validate` gives the verdict `package load` gives, flags included.
    @Test func validateGivesLoadsVerdict() throws {
        let c = try Caisson()
        let a = try c.package("a.edgepkg", version: "1.1.0")
        #expect(try c.run(["package", "validate", a]).status == 0)
        #expect(try c.run(["package", "load", a, "--yes"]).status == 0)
        let same = try c.run(["package", "validate", a])
        #expect(same.status == 2 && same.stdout.contains("Status: rejected") && same.stdout.contains("- [package.already_applied]"), "\(same.stdout)")
        #expect(try c.run(["package", "validate", a, "--reinstall"]).status == 0)
        let old = try c.package("o.edgepkg", version: "1.0.5")
        #expect(try c.run(["package", "validate", old]).status == 2)
        #expect(try c.run(["package", "validate", old, "--allow-downgrade"]).status == 0)
        let stale = try c.package("s.edgepkg", version: "1.3.0", createdAt: "2025-01-01T00:00:00Z")
        let v = try c.run(["package", "validate", stale, "--json"])
        #expect(v.status == 2 && ((v.json?["issues"] as? [[String: Any]])?.first?["code"] as? String) == "package.stale", "\(v.stdout)")
        #expect(try c.run(["package", "load", stale, "--yes"]).status == 2)
        // The signature verdict is shown.
        #expect(try c.run(["package", "validate", a, "--reinstall"]).stdout.contains("Signature: none (the catalog does not require one)\n"))
    }

    /// The catalog asks for container_health and the image has no HEALTHCHECK: refused by
    /// validate and by load, before anything changes.
    @Test func aHealthCheckThatCanOnlyFailIsRefusedBeforeAnyDowntime() throws {
        let c = try Caisson()
        let pkg = try c.package("nohc.edgepkg", version: "1.1.0", healthcheck: false)
        let v = try c.run(["package", "validate", pkg])
        #expect(v.status == 2 && v.stdout.contains("[image.healthcheck_missing]"), "\(v.stdout)")
        let hostBefore = try String(contentsOfFile: c.dir + "/.caisson-state/sim-host.json", encoding: .utf8)
        let l = try c.run(["package", "load", pkg, "--yes"])
        #expect(l.status == 2 && l.stdout.contains("[image.healthcheck_missing]"), "\(l.stdout)")
        #expect(try Self.attempts(c).isEmpty)
        #expect(try String(contentsOfFile: c.dir + "/.caisson-state/sim-host.json", encoding: .utf8) == hostBefore,
                "the simulated host changed (an image was loaded or a container touched)")
        // The same image under `running` is fine.
        try Caisson.catalog.replacingOccurrences(of: "kind = \"container_health\"", with: "kind = \"running\"")
            .write(toFile: c.dir + "/services.toml", atomically: true, encoding: .utf8)
        #expect(try c.run(["package", "load", pkg, "--yes"]).status == 0)
    }
}
