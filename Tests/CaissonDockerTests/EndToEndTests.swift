import CaissonCore
import Foundation
import Testing
@testable import CaissonDocker
#if canImport(Glibc)
import Glibc
#endif

/// `caisson package load PKG --yes` — the built binary — against the real daemon, in Docker mode
/// and Compose mode: success, automatic rollback, and recovery after the updater is SIGKILLed
/// during the health check. Each test gets its own folder, catalog, container/project names and
/// image tags, and removes them afterwards.
@Suite("End to end: the caisson binary on a real daemon", .serialized)
struct EndToEndTests {
    /// The built `caisson` (next to the test bundle in `.build/<config>/`).
    static var binary: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let p = candidate.appendingPathComponent("caisson").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return dir.appendingPathComponent("caisson").path
    }

    /// One test's world: a folder with `services.toml`, `compose/backend.yaml` and packages.
    final class World {
        let tag: String
        let dir: String
        let container: String
        let project: String
        let frontendCurrent: String
        let backendCurrent: String
        private var tags: [String] = []

        init(_ name: String) throws {
            tag = "\(RealDocker.runID)-\(name)"
            dir = NSTemporaryDirectory() + "caisson-e2e-\(tag)"
            container = "caisson-e2e-\(tag)-frontend"
            project = "caisson-e2e-\(tag)"
            frontendCurrent = "caisson-e2e/frontend:current-\(tag)"
            backendCurrent = "caisson-e2e/backend:current-\(tag)"
            try? FileManager.default.removeItem(atPath: dir)
            try FileManager.default.createDirectory(atPath: dir + "/compose", withIntermediateDirectories: true)
            // The compose path in the catalog is relative: resolved against the catalog's folder.
            try """
            catalog_version = 1

            [[services]]
            name = "frontend"
            service_revision = "frontend-v1"
            platform = "linux/amd64"
            runtime_mode = "docker"
            [services.docker]
            container_name = "\(container)"
            image_reference = "\(frontendCurrent)"
            [services.health_check]
            kind = "container_health"
            timeout_secs = 15
            poll_interval_secs = 1
            stable_secs = 3
            [services.rollback]
            automatic = true

            [[services]]
            name = "backend"
            service_revision = "backend-v1"
            platform = "linux/amd64"
            runtime_mode = "compose"
            [services.compose]
            project = "\(project)"
            file = "compose/backend.yaml"
            service = "backend"
            [services.health_check]
            kind = "container_health"
            timeout_secs = 15
            poll_interval_secs = 1
            stable_secs = 3
            [services.rollback]
            automatic = true

            """.write(toFile: dir + "/services.toml", atomically: true, encoding: .utf8)
            try """
            services:
              backend:
                image: \(backendCurrent)
                pull_policy: never
                restart: unless-stopped
                depends_on:
                  - sidecar
              sidecar:
                image: caisson-test/app:nohealth
                pull_policy: never
                restart: unless-stopped

            """.write(toFile: dir + "/compose/backend.yaml", atomically: true, encoding: .utf8)
        }

        func imageID(_ reference: String) -> String? {
            (try? RealDocker.client?.inspectImageIfPresent(reference))??.id
        }

        /// The frontend container runs caisson-test/app:1, healthy (`docker run` with `extra`
        /// options too, e.g. `--stop-timeout 30`).
        func startFrontend(_ extra: [String] = []) throws {
            try RealDocker.docker(["tag", "caisson-test/app:1", frontendCurrent])
            tags.append(frontendCurrent)
            let r = try RealDocker.docker(["run", "-d", "--pull", "never", "--name", container, "--restart", "unless-stopped",
                                           "-e", "OPERATOR=kept"] + extra + [frontendCurrent])
            try #require(r.status == 0, "docker run: \(r.stderr)")
            try #require(waitHealthy(container), "the frontend never became healthy")
        }

        /// `docker compose -p P -f compose/backend.yaml up -d`, backend on caisson-test/app:1.
        func startBackend() throws {
            try RealDocker.docker(["tag", "caisson-test/app:1", backendCurrent])
            tags.append(backendCurrent)
            let r = try RealDocker.docker(["compose", "-p", project, "-f", "compose/backend.yaml", "up", "-d"], cwd: dir)
            try #require(r.status == 0, "compose up: \(r.stderr)")
            try #require(waitHealthy("\(project)-backend-1"), "the backend never became healthy")
        }

        func waitHealthy(_ name: String) -> Bool {
            RealDocker.waitUntil(seconds: 20) {
                guard let c = try? RealDocker.client?.inspectContainerIfPresent(name) else { return false }
                return DockerHost.containerInfo(c).isRunning && DockerHost.containerInfo(c).health == .healthy
            }
        }

        func info(_ name: String) -> ContainerInfo? {
            (try? RealDocker.client?.inspectContainerIfPresent(name))?.map(DockerHost.containerInfo)
        }

        /// A package for `service` holding `source` saved under `savedAs` (default: `reference`).
        func package(_ file: String, service: String, version: String, source: String,
                     reference: String? = nil, savedAs: String? = nil) throws -> String {
            let ref = reference ?? "caisson-e2e/\(service):\(version)-\(tag)"
            let saved = savedAs ?? ref
            let work = dir + "/pkg-\(file)"
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: work) }
            try """
            format_version = 1
            package_type = "service"
            package_version = "\(version)"
            created_at = "2026-03-16T18:30:00Z"
            [target]
            service = "\(service)"
            service_revision = "\(service)-v1"
            platform = "linux/amd64"
            [image]
            reference = "\(ref)"
            [compatibility]
            min_updater_version = "0.1.0"

            """.write(toFile: work + "/manifest.toml", atomically: true, encoding: .utf8)
            try RealDocker.docker(["tag", source, saved])
            let s = try RealDocker.docker(["save", "-o", work + "/image.tar", saved])
            try RealDocker.docker(["rmi", saved])
            try #require(s.status == 0, "docker save: \(s.stderr)")
            tags.append(ref)
            let t = try RealDocker.command("tar", ["-cf", dir + "/" + file, "-C", work, "manifest.toml", "image.tar"])
            try #require(t.status == 0, "tar: \(t.stderr)")
            return dir + "/" + file
        }

        func caissonProcess(_ args: [String]) -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: EndToEndTests.binary)
            p.currentDirectoryURL = URL(fileURLWithPath: dir)
            p.arguments = ["--services", dir + "/services.toml", "--state-dir", dir + "/state"] + args
            p.environment = RealDocker.childEnvironment
            return p
        }

        @discardableResult
        func caisson(_ args: [String]) throws -> RealDocker.CommandResult {
            try RealDocker.command(EndToEndTests.binary,
                                   ["--services", dir + "/services.toml", "--state-dir", dir + "/state"] + args, cwd: dir)
        }

        /// The attempts of `history list --json`, newest first, as (status, service).
        func history() throws -> [(status: String, service: String, health: String?)] {
            let r = try caisson(["history", "list", "--json"])
            let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "history: \(r.stdout) \(r.stderr)")
            let list = try #require(doc["attempts"] as? [[String: Any]])
            return list.map { a in
                (a["status"] as? String ?? "?", a["service_name"] as? String ?? "?",
                 (a["health_check"] as? [String: Any])?["outcome"] as? String)
            }
        }

        func cleanup() {
            RealDocker.removeContainers(prefix: container)
            _ = try? RealDocker.docker(["compose", "-p", project, "-f", "compose/backend.yaml", "down", "--remove-orphans", "-t", "1"], cwd: dir)
            RealDocker.removeContainers(prefix: project)
            for t in tags { _ = try? RealDocker.docker(["rmi", t]) }
            // (The updater's `caisson-pin/<service>:<id>` tags stay: they are shared by service
            // name with other runs, and only tag the shared test images.)
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    // MARK: Docker mode

    /// The upload overlaps validation but is held at its end: a declined prompt or a package
    /// validation rejects late (its archive would tag another reference) leaves Docker as it was.
    @Test func aDeclinedOrLateRejectedLoadLeavesDockerUnchanged() throws {
        guard RealDocker.usable("end-to-end declined and late-rejected loads") else { return }
        let w = try World("dec")
        defer { w.cleanup() }
        try w.startFrontend()
        let before = try #require(w.info(w.container))
        let pkg = try w.package("frontend-2.edgepkg", service: "frontend", version: "2.0.0", source: "caisson-test/app:2")
        let reference = "caisson-e2e/frontend:2.0.0-\(w.tag)"
        let declined = try RealDocker.command(EndToEndTests.binary,
                                              ["--services", w.dir + "/services.toml", "--state-dir", w.dir + "/state",
                                               "package", "load", pkg], stdin: "n\n", cwd: w.dir)
        #expect(declined.status == 3, "\(declined.stdout) \(declined.stderr)")
        #expect(w.imageID(reference) == nil, "a declined load must not load the image")

        let intruder = "caisson-e2e/intruder:\(w.tag)"
        defer { _ = try? RealDocker.docker(["rmi", intruder]) }
        let bad = try w.package("frontend-3.edgepkg", service: "frontend", version: "3.0.0", source: "caisson-test/app:2",
                                savedAs: intruder)
        let rejected = try w.caisson(["package", "load", bad, "--yes"])
        #expect(rejected.status == 2, "\(rejected.stdout) \(rejected.stderr)")
        #expect(rejected.stdout.contains("[image.unexpected_tags]"), "\(rejected.stdout)")
        #expect(w.imageID(intruder) == nil, "the archive's tag must never reach the daemon")
        let after = try #require(w.info(w.container))
        #expect(after.id == before.id && after.isRunning)
        #expect(try w.history().isEmpty)
    }

    @Test func dockerModeSuccessTakesNewImageDefaults() throws {
        guard RealDocker.usable("end-to-end Docker-mode success") else { return }
        let w = try World("dok")
        defer { w.cleanup() }
        try w.startFrontend()
        let before = try #require(w.info(w.container))
        let pkg = try w.package("frontend-2.edgepkg", service: "frontend", version: "2.0.0", source: "caisson-test/app:2")
        let pkgSize = (try FileManager.default.attributesOfItem(atPath: pkg)[.size] as? NSNumber)?.int64Value ?? 0

        let r = try w.caisson(["package", "load", pkg, "--yes"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let after = try #require(w.info(w.container))
        #expect(after.imageID == w.imageID("caisson-test/app:2"))
        #expect(after.isRunning)
        #expect(after.id != before.id)
        // §8 item 4: the new image's ENV defaults take effect; the operator's -e is carried over.
        let env = try RealDocker.docker(["inspect", "-f", "{{json .Config.Env}}", w.container]).stdout
        #expect(env.contains("APP_VERSION=2"))
        #expect(env.contains("APP_FEATURE=on"))
        #expect(env.contains("OPERATOR=kept"))
        #expect(!env.contains("APP_VERSION=1"))
        // No backup or staging container left behind.
        #expect(RealDocker.containerNames(prefix: w.container + "-caisson-").isEmpty)
        // §8 item 6: no copy of the package is left in the state folder once the load is done
        // (the staged copy off the medium is the only one, and it is removed after the commit).
        // (The journal's reserve, journal.reserve, is room kept for the journal, not a copy.)
        let reserve = (try? FileManager.default.attributesOfItem(atPath: w.dir + "/state/journal.reserve")[.size] as? NSNumber)?.int64Value ?? 0
        let stateBytes = directorySize(w.dir + "/state") - reserve
        #expect(stateBytes < pkgSize, "state folder holds \(stateBytes) bytes, package is \(pkgSize)")
        #expect(try w.history().first?.status == "succeeded")

        // Issue 11 item 7: `docker ps` shows the package's reference, not a bare sha256 id.
        let reference = "caisson-e2e/frontend:2.0.0-\(w.tag)"
        let configImage = try RealDocker.docker(["inspect", "-f", "{{.Config.Image}}", w.container]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(configImage == reference)
        let ps = try RealDocker.docker(["ps", "--filter", "name=^\(w.container)$", "--format", "{{.Image}}"]).stdout
        #expect(ps.trimmingCharacters(in: .whitespacesAndNewlines) == reference, "docker ps shows: \(ps)")
        // And after `caisson rollback`: the previous release's own name; pins never shown.
        let rb = try w.caisson(["rollback", "frontend", "--yes"])
        #expect(rb.status == 0, "\(rb.stdout) \(rb.stderr)")
        let back = try RealDocker.docker(["inspect", "-f", "{{.Config.Image}}", w.container]).stdout
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(back == w.frontendCurrent)
        for args in [["service", "show", "frontend"], ["service", "list"], ["history", "list"]] {
            let out = try w.caisson(args).stdout
            #expect(!out.contains("caisson-pin/"), "\(args): \(out)")
        }
    }

    @Test func dockerModeRollbackOnFailedHealth() throws {
        guard RealDocker.usable("end-to-end Docker-mode rollback") else { return }
        let w = try World("dkr")
        defer { w.cleanup() }
        try w.startFrontend()
        let before = try #require(w.info(w.container))
        let pkg = try w.package("frontend-3.edgepkg", service: "frontend", version: "3.0.0", source: "caisson-test/app:unhealthy")

        let r = try w.caisson(["package", "load", pkg, "--yes"])
        #expect(r.status == 4, "stderr: \(r.stderr)")
        let after = try #require(w.info(w.container))
        #expect(after.id == before.id)
        #expect(after.imageID == w.imageID("caisson-test/app:1"))
        #expect(after.isRunning)
        #expect(RealDocker.containerNames(prefix: w.container + "-caisson-").isEmpty)
        let h = try #require(try w.history().first)
        #expect(h.status == "rolled_back")
        #expect(h.health == "failed")
    }

    @Test func dockerModeRecoveryAfterSIGKILLDuringHealthCheck() throws {
        guard RealDocker.usable("end-to-end Docker-mode kill -9 recovery") else { return }
        let w = try World("dkk")
        defer { w.cleanup() }
        try w.startFrontend()
        let before = try #require(w.info(w.container))
        let pkg = try w.package("frontend-6.edgepkg", service: "frontend", version: "6.0.0", source: "caisson-test/app:never-ready")
        let newID = try #require(w.imageID("caisson-test/app:never-ready"))

        let p = w.caissonProcess(["--quiet", "package", "load", pkg, "--yes"])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // The new container is under the service name and started: the health check is running.
        let inHealthCheck = RealDocker.waitUntil(seconds: 60, interval: 0.1) {
            guard let c = w.info(w.container) else { return false }
            return c.imageID == newID && c.isRunning
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        try #require(inHealthCheck, "the new container never appeared under \(w.container)")
        #expect(p.terminationReason == .uncaughtSignal)

        let r = try w.caisson(["recover"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let after = try #require(w.info(w.container))
        #expect(after.id == before.id)
        #expect(after.imageID == w.imageID("caisson-test/app:1"))
        #expect(after.isRunning)
        #expect(RealDocker.containerNames(prefix: w.container + "-caisson-").isEmpty)
        let h = try #require(try w.history().first)
        #expect(["rolled_back", "failed"].contains(h.status), "status \(h.status)")
    }

    /// §8 item 7: image.tar carrying a tag other than the manifest's reference is rejected
    /// before anything is loaded; the foreign tag never reaches the daemon.
    @Test func foreignTagRejectedBeforeLoad() throws {
        guard RealDocker.usable("end-to-end foreign tag") else { return }
        let w = try World("dkt")
        defer { w.cleanup() }
        try w.startFrontend()
        let foreign = "caisson-e2e/backend:stolen-\(w.tag)"
        let pkg = try w.package("frontend-7.edgepkg", service: "frontend", version: "7.0.0", source: "caisson-test/app:2",
                                savedAs: foreign)
        #expect(w.imageID(foreign) == nil)
        let r = try w.caisson(["package", "load", pkg, "--yes"])
        #expect(r.status == 2)
        #expect(r.stdout.contains("image.unexpected_tags") || r.stderr.contains("image.unexpected_tags"), "out: \(r.stdout) err: \(r.stderr)")
        #expect(w.imageID(foreign) == nil, "the foreign tag was applied")
        #expect(w.info(w.container)?.imageID == w.imageID("caisson-test/app:1"))
    }

    // MARK: Compose mode

    @Test func composeModeSuccessWithNoDeps() throws {
        guard RealDocker.usable("end-to-end Compose-mode success") && RealDocker.composeAvailable else { return }
        let w = try World("cok")
        defer { w.cleanup() }
        try w.startBackend()
        let sidecar = try #require(w.info("\(w.project)-sidecar-1"))
        let pkg = try w.package("backend-2.edgepkg", service: "backend", version: "2.0.0", source: "caisson-test/app:2")

        let r = try w.caisson(["package", "load", pkg, "--yes"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let after = try #require(w.info("\(w.project)-backend-1"))
        #expect(after.imageID == w.imageID("caisson-test/app:2"))
        #expect(after.isRunning)
        // §8 item 10: relative compose path worked, and --no-deps left the sidecar alone.
        let sidecarAfter = try #require(w.info("\(w.project)-sidecar-1"))
        #expect(sidecarAfter.id == sidecar.id)
        #expect(sidecarAfter.startedAt == sidecar.startedAt)
        #expect(try w.history().first?.status == "succeeded")
    }

    @Test func composeModeRollbackOnFailedHealth() throws {
        guard RealDocker.usable("end-to-end Compose-mode rollback") && RealDocker.composeAvailable else { return }
        let w = try World("cor")
        defer { w.cleanup() }
        try w.startBackend()
        let pkg = try w.package("backend-4.edgepkg", service: "backend", version: "4.0.0", source: "caisson-test/app:crash")

        let r = try w.caisson(["package", "load", pkg, "--yes"])
        #expect(r.status == 4, "stderr: \(r.stderr)")
        let after = try #require(w.info("\(w.project)-backend-1"))
        #expect(after.imageID == w.imageID("caisson-test/app:1"))
        #expect(after.isRunning)
        #expect(try w.history().first?.status == "rolled_back")
    }

    @Test func composeModeRecoveryAfterSIGKILLDuringHealthCheck() throws {
        guard RealDocker.usable("end-to-end Compose-mode kill -9 recovery") && RealDocker.composeAvailable else { return }
        let w = try World("cok9")
        defer { w.cleanup() }
        try w.startBackend()
        let pkg = try w.package("backend-6.edgepkg", service: "backend", version: "6.0.0", source: "caisson-test/app:never-ready")
        let newID = try #require(w.imageID("caisson-test/app:never-ready"))

        let p = w.caissonProcess(["--quiet", "package", "load", pkg, "--yes"])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let inHealthCheck = RealDocker.waitUntil(seconds: 60, interval: 0.1) {
            guard let c = w.info("\(w.project)-backend-1") else { return false }
            return c.imageID == newID && c.isRunning
        }
        // Let compose itself finish (the journal records its outcome) before the kill.
        usleep(1_500_000)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        try #require(inHealthCheck, "the new backend container never appeared")

        let r = try w.caisson(["recover"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let after = try #require(w.info("\(w.project)-backend-1"))
        #expect(after.imageID == w.imageID("caisson-test/app:1"))
        #expect(after.isRunning)
        let h = try #require(try w.history().first)
        #expect(["rolled_back", "failed"].contains(h.status), "status \(h.status)")
    }
}

/// Total bytes of regular files under `path`.
func directorySize(_ path: String) -> Int64 {
    guard let e = FileManager.default.enumerator(atPath: path) else { return 0 }
    var total: Int64 = 0
    while let f = e.nextObject() as? String {
        if let a = try? FileManager.default.attributesOfItem(atPath: path + "/" + f), (a[.type] as? FileAttributeType) == .typeRegular {
            total += (a[.size] as? NSNumber)?.int64Value ?? 0
        }
    }
    return total
}
