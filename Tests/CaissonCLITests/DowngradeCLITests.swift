import Foundation
import Testing

/// Anti-downgrade and freshness without a clock (issue 6 part 3), through the binary.
@Suite struct DowngradeCLITests {
    @Test func olderVersionSameVersionAndStaleCreatedAtAreRefused() throws {
        let c = try Caisson()
        let v2 = try c.package("v2.edgepkg", version: "2.0.0", createdAt: "2026-05-01T00:00:00Z")
        let v1 = try c.package("v1.edgepkg", version: "1.0.0", createdAt: "2026-06-01T00:00:00Z")
        let v3old = try c.package("v3old.edgepkg", version: "3.0.0", createdAt: "2026-04-01T00:00:00Z")
        let v3 = try c.package("v3.edgepkg", version: "3.0.0", createdAt: "2026-07-01T00:00:00Z")
        #expect(try c.run(["package", "load", v2, "--yes"]).status == 0)

        let down = try c.run(["package", "load", v1, "--yes"])
        #expect(down.status == 2)
        #expect(down.stdout.contains("[package.downgrade_refused]"), "\(down.stdout)")

        let same = try c.run(["package", "load", v2, "--yes"])
        #expect(same.status == 2)
        #expect(same.stdout.contains("[package.already_applied]"))
        #expect(try c.run(["package", "load", v2, "--yes", "--reinstall"]).status == 0)

        let stale = try c.run(["package", "load", v3old, "--yes"])
        #expect(stale.status == 2)
        #expect(stale.stdout.contains("[package.stale]"))
        #expect(try c.run(["package", "load", v3, "--yes"]).status == 0)

        // The override works, and is audited.
        let forced = try c.run(["package", "load", v1, "--yes", "--allow-downgrade", "--json"])
        #expect(forced.status == 0, "\(forced.stdout) \(forced.stderr)")
        let id = try #require((forced.json?["attempt"] as? [String: Any])?["update_id"] as? String)
        #expect(!id.isEmpty)
        let db = c.dir + "/.caisson-state/caisson.db"
        let q = Process()
        q.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        q.arguments = ["python3", "-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select count(*) from audit_events where kind='downgrade_allowed'\").fetchone()[0])", db]
        let pipe = Pipe()
        q.standardOutput = pipe
        try q.run()
        q.waitUntilExit()
        let count = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(count == "1")
    }
}

/// Issue 5 preflight: the plan shows the image storage's free space, and a load that cannot fit
/// is refused before anything changes.
@Suite struct PreflightCLITests {
    @Test func planShowsImageStorageAndTooLittleSpaceRefusesWithNoChange() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.9")
        let plan = try c.run(["package", "load", pkg, "--dry-run"])
        #expect(plan.status == 0)
        #expect(plan.stdout.contains("Free disk (image storage"), "\(plan.stdout)")
        // Shrink the simulated host's disk (its state file is JSON) to 1 KiB.
        let path = c.dir + "/.caisson-state/sim-host.json"
        var text = try String(contentsOfFile: path, encoding: .utf8)
        let re = try NSRegularExpression(pattern: "\"freeDiskBytes\"\\s*:\\s*[0-9]+")
        text = re.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "\"freeDiskBytes\":1024")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try c.run(["package", "load", pkg, "--yes"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("docker.insufficient_space"), "\(r.stderr)")
        let h = try c.run(["history", "list", "--json"])
        #expect((h.json?["attempts"] as? [Any])?.isEmpty == true)
    }
}
