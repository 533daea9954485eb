import CaissonCore
import Foundation
import Testing

/// Issue 10 items 7, 8 and 10 through the CLI, on the simulator: the plan lists the services
/// sharing the network namespace and the load refuses before any change without
/// `--recreate-dependents`; `service show` shows the live state.
@Suite struct NetworkDependentsCLITests {
    static let composeWithSidecar = """
    services:
      backend:
        image: example/backend:current
      sidecar:
        image: example/sidecar:1
        network_mode: "service:backend"
    """

    @Test func theLoadRefusesWithoutTheGoAheadAndRecreatesWithIt() throws {
        let c = try Caisson()
        try Self.composeWithSidecar.write(toFile: c.dir + "/compose/backend.yaml", atomically: true, encoding: .utf8)
        let pkg = try c.package("b.edgepkg", version: "2.0.0", service: "backend")
        let plan = try c.run(["package", "load", pkg, "--dry-run", "--recreate-dependents"])
        #expect(plan.status == 0, "\(plan.stdout)\(plan.stderr)")
        #expect(plan.stdout.contains("Sharing its network: sidecar"), "\(plan.stdout)")
        #expect(plan.stdout.contains("docker compose up -d --no-deps sidecar"), "\(plan.stdout)")

        let refused = try c.run(["package", "load", pkg, "--yes"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("[update.network_dependents]"), "\(refused.stderr)")
        #expect(refused.stderr.contains("--recreate-dependents"), "\(refused.stderr)")
        let none = try c.run(["history", "list", "--json"])
        #expect((none.json?["attempts"] as? [Any])?.isEmpty == true, "refused, yet an attempt was recorded: \(none.stdout)")

        let done = try c.run(["package", "load", pkg, "--yes", "--recreate-dependents"])
        #expect(done.status == 0, "\(done.stdout)\(done.stderr)")
        let show = try c.run(["service", "show", "backend"])
        #expect(show.stdout.contains("Live:"), "\(show.stdout)")
        #expect(show.stdout.contains("stack-backend-1: running"), "\(show.stdout)")
        #expect(!show.stdout.contains("DRIFT"), "\(show.stdout)")
    }

    @Test func aPackageMayNotMoveAnotherServicesTag() throws {
        let c = try Caisson()
        // A package for backend (compose image example/backend:current) whose manifest and image
        // both name frontend's reference: consistent, signed-looking, hostile.
        let ref = "example/frontend:current"
        var img = SyntheticImage(reference: ref)
        img.labels = ["io.caisson.sim.health": "healthy"]
        img.healthcheck = ["CMD", "/bin/true"]
        let (bytes, _) = try img.archive()
        let m = EdgePackageWriter.manifest(service: "backend", revision: "backend-v1", platform: "linux/amd64",
                                           version: "2.0.0", createdAt: "2026-03-16T18:30:00Z", reference: ref,
                                           sha256: SHA256.hash(bytes).hex, size: bytes.count)
        let pkg = "evil.edgepkg"
        try EdgePackageWriter.write(manifest: m, image: bytes, to: c.dir + "/" + pkg)
        let r = try c.run(["package", "load", pkg, "--yes"])
        #expect(r.status == 2, "\(r.stdout)\(r.stderr)")
        #expect((r.stdout + r.stderr).contains("image.reference_"), "\(r.stdout)\(r.stderr)")
        let none = try c.run(["history", "list", "--json"])
        #expect((none.json?["attempts"] as? [Any])?.isEmpty == true)
    }
}
