import CaissonCore
import Foundation

/// `caisson demo`: the whole job, narrated, on the built-in simulator in a temporary directory.
/// Builds three packages, validates a hostile one, applies a good update, applies a bad one that
/// rolls back by itself, and shows the history. No Docker, no set-up.
public enum Demo {
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
    timeout_secs = 30
    poll_interval_secs = 1
    stable_secs = 5

    """

    public static func run(say: (String) -> Void, keep: Bool = false) throws -> Int32 {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("caisson-demo-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { if !keep { try? FileManager.default.removeItem(atPath: dir) } }
        try catalog.write(toFile: dir + "/services.toml", atomically: true, encoding: .utf8)

        say("Caisson demo: a device with one service, 'frontend', on the built-in simulator.")
        say("Working directory: \(dir) (removed afterwards)\n")

        let (good, bad, hostile) = try writePackages(dir: dir)
        say("Built three packages: frontend-1.1.0 (healthy), frontend-1.2.0 (its image turns unhealthy),")
        say("and frontend-evil (its image.tar would silently retag another service's image).\n")

        var options = AppOptions()
        options.servicesPath = dir + "/services.toml"
        options.stateDir = dir + "/state"
        options.host = .sim

        let cwd = FileManager.default.currentDirectoryPath
        _ = FileManager.default.changeCurrentDirectoryPath(dir)
        defer { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }

        func caisson(_ args: [String]) -> Int32 {
            say("$ caisson --host sim \(args.joined(separator: " "))")
            let rc = CaissonCLI.main(["--services", options.servicesPath, "--state-dir", options.stateDir, "--host", "sim", "--quiet"] + args)
            say("(exit code \(rc))\n")
            return rc
        }

        say("1. The device's services (first use of the simulator provisions them, running their catalog images):")
        _ = caisson(["service", "list"])
        say("2. A hostile package is rejected before anything touches the host:")
        let r0 = caisson(["package", "validate", "frontend-evil.edgepkg"])
        _ = hostile
        say("3. A good update: validated, planned, loaded, swapped, health-checked, committed:")
        let r1 = caisson(["package", "load", (good as NSString).lastPathComponent, "--yes"])
        say("4. A bad update: its health check fails, so Caisson restores the previous release by itself:")
        let r2 = caisson(["package", "load", (bad as NSString).lastPathComponent, "--yes"])
        say("5. Everything that happened is in the local history (and its audit log is hash-chained):")
        _ = caisson(["history", "list"])
        _ = caisson(["history", "verify"])
        let ok = r0 == 2 && r1 == 0 && r2 == 4
        say(ok ? "Demo finished: rejected (2), updated (0), rolled back (4) as expected." :
                 "Demo finished with unexpected exit codes: \(r0), \(r1), \(r2).")
        return ok ? 0 : 1
    }

    /// `caisson demo --prepare DIR`: the demo's catalog (`services.toml`) and packages in `DIR`,
    /// to try the console or the commands on the simulator by hand.
    public static func prepare(dir: String) throws -> [String] {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try catalog.write(toFile: dir + "/services.toml", atomically: true, encoding: .utf8)
        let (good, bad, hostile) = try writePackages(dir: dir)
        return [dir + "/services.toml", good, bad, hostile]
    }

    /// frontend-1.1.0 (healthy), frontend-1.2.0 (turns unhealthy), frontend-evil (retags another
    /// service's image).
    static func writePackages(dir: String) throws -> (good: String, bad: String, hostile: String) {
        func build(_ name: String, version: String, behaviour: String, tagAs: String? = nil) throws -> String {
            let ref = "example/frontend:\(version)"
            var img = SyntheticImage(reference: tagAs ?? ref)
            img.labels = ["io.caisson.sim.health": behaviour, "org.opencontainers.image.version": version]
            img.env = ["APP_VERSION=\(version)"]
            img.healthcheck = ["CMD", "/bin/true"]
            img.files = [("app/VERSION", Array("\(version)\n".utf8))]
            let (bytes, _) = try img.archive()
            let sha = SHA256.hash(bytes).hex
            let manifest = EdgePackageWriter.manifest(service: "frontend", revision: "frontend-v1", platform: "linux/amd64",
                                                      version: version, createdAt: "2026-11-0\(version.split(separator: ".")[1])T08:00:00Z",
                                                      reference: ref, sha256: sha, size: bytes.count)
            let path = "\(dir)/\(name).edgepkg"
            try EdgePackageWriter.write(manifest: manifest, image: bytes, to: path)
            return path
        }
        return (try build("frontend-1.1.0", version: "1.1.0", behaviour: "healthy"),
                try build("frontend-1.2.0", version: "1.2.0", behaviour: "unhealthy"),
                try build("frontend-evil", version: "1.3.0", behaviour: "healthy", tagAs: "example/backend:current"))
    }
}
