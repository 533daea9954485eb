import CaissonCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Runs the built `caisson` binary (it sits next to the test bundle in `.build/<config>/`).
struct Caisson {
    static var binary: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let p = candidate.appendingPathComponent("caisson").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return dir.appendingPathComponent("caisson").path
    }

    let dir: String

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("caisson-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try Self.catalog.write(toFile: dir + "/services.toml", atomically: true, encoding: .utf8)
        // The compose file of `backend` (the simulator provisions the image it names).
        try FileManager.default.createDirectory(atPath: dir + "/compose", withIntermediateDirectories: true)
        try "services:\n  backend:\n    image: example/backend:current\n".write(toFile: dir + "/compose/backend.yaml", atomically: true, encoding: .utf8)
    }

    static let catalog = """
    catalog_version = 1

    [[services]]
    name = "frontend"
    service_revision = "frontend-v1"
    platform = "linux/amd64"
    runtime_mode = "docker"
    [services.docker]
    container_name = "frontend"
    image_reference = "example/frontend:current"
    [services.health_check]
    kind = "container_health"
    timeout_secs = 20

    [[services]]
    name = "backend"
    service_revision = "backend-v1"
    platform = "linux/amd64"
    runtime_mode = "compose"
    [services.compose]
    project = "stack"
    file = "compose/backend.yaml"
    service = "backend"

    """

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any]
        }
    }

    @discardableResult
    func run(_ args: [String], stdin: String? = nil, sim: Bool = true, env: [String: String] = [:]) throws -> Result {
        let p = Process()
        if !env.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 } }
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        p.arguments = (sim ? ["--host", "sim"] : []) + args
        let out = Pipe(), err = Pipe(), input = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// Writes a package for `frontend` whose image behaves as `behaviour` in the simulator.
    func package(_ name: String, version: String, behaviour: String = "healthy", tag: String? = nil,
                 service: String = "frontend", createdAt: String = "2026-03-16T18:30:00Z",
                 labels: [String: String] = [:], healthcheck: Bool = true) throws -> String {
        let ref = "example/\(service):\(version)"
        var img = SyntheticImage(reference: tag ?? ref)
        img.labels = ["io.caisson.sim.health": behaviour].merging(labels) { $1 }
        img.healthcheck = healthcheck ? ["CMD", "/bin/true"] : nil
        img.files = [("VERSION", Array(version.utf8))]
        let (bytes, _) = try img.archive()
        let m = EdgePackageWriter.manifest(service: service, revision: "\(service)-v1", platform: "linux/amd64",
                                           version: version, createdAt: createdAt, reference: ref,
                                           sha256: SHA256.hash(bytes).hex, size: bytes.count)
        try EdgePackageWriter.write(manifest: m, image: bytes, to: dir + "/" + name)
        return name
    }
}

@Suite struct CLITests {
    static let commands: [[String]] = [[], ["service"], ["service", "list"], ["service", "show"], ["package"],
                                       ["package", "validate"], ["package", "load"], ["package", "cleanup"], ["package", "build"], ["history"], ["history", "list"],
                                       ["history", "show"], ["history", "verify"], ["rollback"], ["recover"],
                                       ["sim", "swarm"], ["demo"]]

    @Test("--help on every command", arguments: commands)
    func helpEverywhere(_ command: [String]) throws {
        let c = try Caisson()
        let r = try c.run(command + ["--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("Usage: caisson"))
    }

    @Test func version() throws {
        let r = try Caisson().run(["--version"])
        #expect(r.status == 0)
        #expect(r.stdout.hasPrefix("caisson "))
    }

    @Test("usage errors name the problem and exit 1", arguments: [
        (["bogus"], "unknown command 'bogus'"),
        (["package", "validate"], "needs PKG"),
        (["package", "validate", "a.edgepkg", "--frob"], "unknown option '--frob'"),
        (["history", "list", "--limit"], "needs a value"),
        (["package"], "needs a subcommand"),
        (["--host", "kubernetes", "service", "list"], "--host must be docker or sim"),
    ])
    func usageErrors(_ args: [String], _ needle: String) throws {
        let r = try Caisson().run(args, sim: false)
        #expect(r.status == 1)
        #expect(r.stderr.contains(needle), "stderr: \(r.stderr)")
    }

    @Test func globalOptionsBeforeOrAfterTheCommand() throws {
        let c = try Caisson()
        let a = try c.run(["--services", "services.toml", "--state-dir", "s1", "service", "list"])
        let b = try c.run(["service", "list", "--services", "services.toml", "--state-dir=s1"])
        #expect(a.status == 0 && b.status == 0)
        #expect(a.stdout == b.stdout)
        #expect(a.stdout.contains("frontend") && a.stdout.contains("backend"))
    }

    @Test func missingCatalogIsAnOperationalError() throws {
        let r = try Caisson().run(["--services", "nope.toml", "service", "list"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("error:") && r.stderr.contains("nope.toml"))
    }

    @Test func badCatalogNamesServiceAndField() throws {
        let c = try Caisson()
        try Caisson.catalog.replacingOccurrences(of: "timeout_secs = 20", with: "timeout_secs = 0")
            .write(toFile: c.dir + "/bad.toml", atomically: true, encoding: .utf8)
        let r = try c.run(["--services", "bad.toml", "service", "list"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("service \"frontend\"") && r.stderr.contains("health_check.timeout_secs"))
    }

    @Test func validateAcceptedAndRejectedWithJSON() throws {
        let c = try Caisson()
        let good = try c.package("good.edgepkg", version: "1.2.3")
        let r = try c.run(["package", "validate", good])
        #expect(r.status == 0)
        #expect(r.stdout.contains("Package validation"))
        #expect(r.stdout.contains("Status: accepted"))
        let j = try c.run(["package", "validate", good, "--json"])
        #expect(j.status == 0)
        let v = try #require(j.json?["validation"] as? [String: Any])
        #expect(v["status"] as? String == "accepted")
        #expect((v["image_id"] as? String)?.hasPrefix("sha256:") == true)
        #expect(v["validation_attempt_id"] is String)

        let evil = try c.package("evil.edgepkg", version: "1.2.4", tag: "example/backend:current")
        let e = try c.run(["package", "validate", evil])
        #expect(e.status == 2)
        #expect(e.stdout.contains("Status: rejected"))
        #expect(e.stdout.contains("- [image.unexpected_tags]"))
        let missing = try c.run(["package", "validate", "missing.edgepkg"])
        #expect(missing.status == 2)
        #expect(missing.stdout.contains("[package.not_found]"))
    }

    @Test("the prompt: only y and yes go on", arguments: [("y\n", Int32(0)), ("yes\n", 0), ("YES\n", 0), ("n\n", 3), ("\n", 3), ("", 3), ("maybe\n", 3)])
    func prompt(_ answer: String, _ expected: Int32) throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.1")
        let r = try c.run(["package", "load", pkg], stdin: answer)
        #expect(r.status == expected, "stdout: \(r.stdout) stderr: \(r.stderr)")
        #expect(r.stdout.contains("Continue and update the service? [y/N]: "))
        #expect(r.stdout.contains("Update plan"))
        let h = try c.run(["history", "list", "--json"])
        let attempts = try #require(h.json?["attempts"] as? [[String: Any]])
        #expect(attempts.count == (expected == 0 ? 1 : 0))
    }

    @Test func goodUpdateThenBadUpdateRollsBackThenManualRollback() throws {
        let c = try Caisson()
        let good = try c.package("good.edgepkg", version: "1.1.0")
        let bad = try c.package("bad.edgepkg", version: "1.2.0", behaviour: "unhealthy", createdAt: "2026-04-01T00:00:00Z")
        #expect(try c.run(["package", "load", good, "--yes"]).status == 0)
        let show1 = try c.run(["service", "show", "frontend", "--json"])
        let state1 = try #require(show1.json?["state"] as? [String: Any])
        #expect(state1["active_image_reference"] as? String == "example/frontend:1.1.0")

        let r = try c.run(["package", "load", bad, "--yes", "--json"])
        #expect(r.status == 4)
        let attempt = try #require(r.json?["attempt"] as? [String: Any])
        #expect(attempt["status"] as? String == "rolled_back")
        #expect((attempt["health_check"] as? [String: Any])?["outcome"] as? String == "failed")
        #expect((attempt["rollback_health_check"] as? [String: Any])?["outcome"] as? String == "passed")
        let show2 = try c.run(["service", "show", "frontend", "--json"])
        #expect((show2.json?["state"] as? [String: Any])?["active_image_reference"] as? String == "example/frontend:1.1.0")

        // History: newest first, with audit events on show.
        let list = try c.run(["history", "list", "--json", "--limit", "1"])
        let attempts = try #require(list.json?["attempts"] as? [[String: Any]])
        #expect(attempts.count == 1)
        let id = try #require(attempts.first?["update_id"] as? String)
        let shown = try c.run(["history", "show", String(id.prefix(8)), "--json"])
        let events = try #require(shown.json?["audit_events"] as? [[String: Any]])
        #expect(events.map { $0["kind"] as? String }.contains("rollback_succeeded"))
        #expect(try c.run(["history", "show", "00000000-nope"]).status == 1)
        #expect(try c.run(["history", "verify"]).status == 0)

        // The same package version again is refused; older too.
        let again = try c.run(["package", "load", good, "--yes"])
        #expect(again.status == 2)
        #expect(again.stdout.contains("package.already_applied"))

        // Manual rollback to the previous known-good (the catalog image).
        let rb = try c.run(["rollback", "frontend", "--yes"])
        #expect(rb.status == 0, "\(rb.stdout) \(rb.stderr)")
        let show3 = try c.run(["service", "show", "frontend", "--json"])
        #expect((show3.json?["state"] as? [String: Any])?["active_image_id"] as? String != (state1["active_image_id"] as? String))
    }

    @Test func composeServiceUpdateOnTheSimulator() throws {
        let c = try Caisson()
        let pkg = try c.package("b.edgepkg", version: "2.0.0", service: "backend")
        let r = try c.run(["package", "load", pkg, "--yes", "--json"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect((r.json?["attempt"] as? [String: Any])?["runtime_mode"] as? String == "compose")
    }

    @Test func dryRunChangesNothing() throws {
        let c = try Caisson()
        let pkg = try c.package("d.edgepkg", version: "1.0.5")
        let r = try c.run(["package", "load", pkg, "--dry-run"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("Update plan") && r.stdout.contains("Dry run"))
        #expect(try c.run(["history", "list", "--json"]).json?["attempts"] as? [Any] != nil)
        #expect((try c.run(["history", "list", "--json"]).json?["attempts"] as? [Any])?.isEmpty == true)
    }

    @Test func aSecondOperationIsRefusedWhileOneRuns() throws {
        let c = try Caisson()
        let pkg = try c.package("l.edgepkg", version: "1.0.7")
        try FileManager.default.createDirectory(atPath: c.dir + "/.caisson-state", withIntermediateDirectories: true)
        // Hold the state directory's lock from another process (flock(1) takes the same flock).
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        // -o: the lock fd is not inherited by `sleep`, so killing flock releases it.
        holder.arguments = ["-o", c.dir + "/.caisson-state/lock", "sleep", "20"]
        holder.standardOutput = FileHandle.nullDevice
        holder.standardError = FileHandle.nullDevice
        try holder.run()
        defer { holder.terminate() }
        Thread.sleep(forTimeInterval: 0.5)
        let r = try c.run(["package", "load", pkg, "--yes"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("another Caisson operation is running"), "stderr: \(r.stderr)")
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        // The lock dies with its holder: never a permanent block.
        #expect(try c.run(["package", "load", pkg, "--yes"]).status == 0)
    }

    @Test func recoverWithNothingInFlight() throws {
        let r = try Caisson().run(["recover"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("Nothing to recover"))
    }

    @Test func swarmJSON() throws {
        let r = try Caisson().run(["sim", "swarm", "--runs", "50", "--seed", "3", "--json"])
        let j = try #require(r.json)
        #expect(j["runs"] as? Int == 50)
        #expect(j["violations"] is Int)
        #expect(j["runs_per_second"] != nil)
        #expect((j["trace_digest"] as? String)?.isEmpty == false)
        #expect(r.status == ((j["violations"] as? Int) == 0 ? 0 : 1))
    }

    @Test func demoRunsWithNoSetUp() throws {
        let r = try Caisson().run(["demo"], sim: false)
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("rolled back (4) as expected"))
    }
}
