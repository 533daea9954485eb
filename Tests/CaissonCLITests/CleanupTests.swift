import CaissonCore
import Foundation
import Testing

@Suite struct CleanupTests {
    @Test func cleanupKeepsActiveAndPreviousGoodAndRemovesTheRest() throws {
        let c = try Caisson()
        for (i, v) in ["1.1.0", "1.2.0", "1.3.0"].enumerated() {
            let p = try c.package("f\(i).edgepkg", version: v, createdAt: "2026-03-1\(i + 1)T00:00:00Z")
            #expect(try c.run(["package", "load", p, "--yes"]).status == 0)
        }
        // A copy cut short by a crash, which no record names.
        try FileManager.default.createDirectory(atPath: c.dir + "/.caisson-state/staging", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: c.dir + "/.caisson-state/staging/dead.edgepkg.partial"))

        // --keep 3 keeps every release image.
        let kept = try c.run(["package", "cleanup", "--keep", "3", "--json"])
        #expect(kept.status == 0, "\(kept.stdout) \(kept.stderr)")
        let keptImages = try #require(kept.json?["removed_images"] as? [[String: Any]])
        #expect(!keptImages.contains { ($0["references"] as? [String])?.contains { $0.hasPrefix("example/frontend:1.") } == true })
        #expect((kept.json?["removed_staged_packages"] as? [String])?.count == 1)

        let r = try c.run(["package", "cleanup", "--json"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let removed = try #require(r.json?["removed_images"] as? [[String: Any]])
        let refs = removed.flatMap { ($0["references"] as? [String]) ?? [] }
        #expect(refs.contains("example/frontend:1.1.0"), "\(refs)")
        #expect(!refs.contains("example/frontend:1.2.0") && !refs.contains("example/frontend:1.3.0"))
        #expect(!refs.contains("example/frontend:current"), "the catalog image is not ours to delete")
        #expect((r.json?["kept_image_ids"] as? [String])?.count == 2)
        #expect(!FileManager.default.fileExists(atPath: c.dir + "/.caisson-state/staging/dead.edgepkg.partial"))

        // The previous known-good release still works: a rollback to 1.2.0 succeeds.
        let rb = try c.run(["rollback", "frontend", "--yes"])
        #expect(rb.status == 0, "\(rb.stdout) \(rb.stderr)")
        #expect(rb.stdout.contains("Target image: example/frontend:1.2.0\n"), "\(rb.stdout)")
        #expect(!rb.stdout.contains("caisson-pin/"), "pins are internal: \(rb.stdout)")

        // Text output, idempotent; the audit chain holds.
        let again = try c.run(["package", "cleanup"])
        #expect(again.status == 0 && again.stdout.contains("Package cleanup\nNo leftover package artifacts were found.\n") && again.stdout.contains("Removed images: 0; removed backup containers: 0"))
        #expect(try c.run(["history", "verify"]).status == 0)
        #expect(try c.run(["package", "cleanup", "--keep", "-1"]).status == 1)
    }

    @Test func withoutADockerHostStagedPackagesAreStillCleanedAndTheRestIsAProblem() throws {
        let c = try Caisson()
        try FileManager.default.createDirectory(atPath: c.dir + "/.caisson-state/staging", withIntermediateDirectories: true)
        try Data("x".utf8).write(to: URL(fileURLWithPath: c.dir + "/.caisson-state/staging/dead.edgepkg.partial"))
        // A DOCKER_HOST Caisson cannot use: the Docker host cannot even be set up.
        let r = try c.run(["package", "cleanup", "--json"], sim: false, env: ["DOCKER_HOST": "ssh://device"])
        #expect(r.status == 1, "\(r.stdout) \(r.stderr)")
        #expect((r.json?["removed_staged_packages"] as? [String])?.count == 1, "\(r.stdout)")
        let problems = (r.json?["problems"] as? [[String: Any]]) ?? []
        #expect(problems.contains { $0["code"] as? String == "cleanup.host_unavailable" }, "\(r.stdout)")
        #expect(!FileManager.default.fileExists(atPath: c.dir + "/.caisson-state/staging/dead.edgepkg.partial"))
    }
}
