import CaissonCore
import Foundation
import Testing
@testable import CaissonDocker

/// Issue 10 on a real daemon, through the built `caisson`: containers sharing the service's
/// network namespace (item 7), a Compose update that lasts across the operator's next
/// `docker compose up -d` (item 10), and another Caisson's unfinished marks on a Compose service
/// (item 2). Each test has its own folder, names and tags (`EndToEndTests.World`).
@Suite("Service safety: network dependents, durable Compose updates, foreign marks on a real daemon", .serialized)
struct ServiceSafetyDockerTests {
    static func inspect(_ name: String, _ format: String) -> String {
        ((try? RealDocker.docker(["inspect", "-f", format, name]))?.stdout ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// What the process in `container` reads at `127.0.0.1:port` (its own network namespace).
    static func page(in container: String, port: Int) -> String {
        (try? RealDocker.docker(["exec", container, "timeout", "5", "wget", "-q", "-O-", "http://127.0.0.1:\(port)/"]))?.stdout ?? ""
    }

    /// A long-running container in `owner`'s network namespace (`--network container:OWNER`),
    /// listening on nothing (so it never competes with the service for a port).
    static func runSidecar(_ name: String, joining owner: String) throws {
        let r = try RealDocker.docker(["run", "-d", "--pull", "never", "--name", name, "--restart", "unless-stopped",
                                       "--stop-timeout", "2", "--network", "container:" + owner,
                                       "--entrypoint", "/bin/sleep", "caisson-test/app:nohealth", "1000000"])
        try #require(r.status == 0, "docker run sidecar: \(r.stderr)")
    }

    // MARK: Item 7, Docker mode

    /// `docker run --network container:SERVICE` beside a Docker-mode service: the plan lists it,
    /// the load refuses before any change without `--recreate-dependents`; with it the dependent
    /// is recreated joined to the new container (it reads the new release on 127.0.0.1), and a
    /// rollback puts the dependent it had back, joined to the restored container.
    @Test func dockerModeNetworkDependentFollowsTheUpdateAndTheRollback() throws {
        guard RealDocker.usable("network dependents, Docker mode") else { return }
        let w = try EndToEndTests.World("ndd")
        defer { w.cleanup() }
        try w.startFrontend()
        let side = w.container + "-sidecar"
        try Self.runSidecar(side, joining: w.container)
        let front1 = try #require(w.info(w.container))
        let side1 = try #require(w.info(side))
        #expect(Self.page(in: side, port: 8080).contains("version=1"))
        let pkg2 = try w.package("frontend-2.edgepkg", service: "frontend", version: "2.0.0", source: "caisson-test/app:2")

        // The plan names it; without the go-ahead the load refuses and changes nothing.
        let plan = try w.caisson(["package", "load", pkg2, "--dry-run", "--recreate-dependents"])
        #expect(plan.status == 0, "\(plan.stdout) \(plan.stderr)")
        #expect(plan.stdout.contains("Sharing its network") && plan.stdout.contains(side), "\(plan.stdout)")
        let refused = try w.caisson(["package", "load", pkg2, "--yes"])
        #expect(refused.status == 1 && refused.stderr.contains("[update.network_dependents]"), "\(refused.stdout) \(refused.stderr)")
        #expect(w.info(w.container)?.id == front1.id && w.info(side)?.id == side1.id && w.info(side)?.isRunning == true)
        #expect(try w.history().isEmpty)

        // With it: recreated against the new container.
        let ok = try w.caisson(["package", "load", pkg2, "--yes", "--recreate-dependents"])
        #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
        let front2 = try #require(w.info(w.container))
        #expect(front2.id != front1.id && front2.imageID == w.imageID("caisson-test/app:2") && front2.isRunning)
        let side2 = try #require(w.info(side), "the dependent is gone")
        #expect(side2.isRunning && side2.id != side1.id)
        #expect(Self.inspect(side, "{{.HostConfig.NetworkMode}}") == "container:" + front2.id)
        #expect(Self.page(in: side, port: 8082).contains("version=2"), "the dependent does not reach the new release")
        #expect(RealDocker.containerNames(prefix: side + "-caisson-").isEmpty)
        #expect(RealDocker.containerNames(prefix: w.container + "-caisson-").isEmpty)

        // A release that fails its health check: the rollback restores the service and its dependent.
        let pkg3 = try w.package("frontend-3.edgepkg", service: "frontend", version: "3.0.0", source: "caisson-test/app:unhealthy")
        let failed = try w.caisson(["package", "load", pkg3, "--yes", "--recreate-dependents"])
        #expect(failed.status == 4, "\(failed.stdout) \(failed.stderr)")
        #expect(try w.history().first?.status == "rolled_back")
        let front3 = try #require(w.info(w.container))
        #expect(front3.id == front2.id && front3.isRunning)
        let side3 = try #require(w.info(side), "the dependent is gone after the rollback")
        #expect(side3.id == side2.id && side3.isRunning, "not the dependent it had: \(side3.id) vs \(side2.id)")
        #expect(Self.inspect(side, "{{.HostConfig.NetworkMode}}") == "container:" + front3.id)
        #expect(Self.page(in: side, port: 8082).contains("version=2"), "the restored dependent does not reach the service")
        #expect(RealDocker.containerNames(prefix: side + "-caisson-").isEmpty)
        #expect(RealDocker.containerNames(prefix: w.container + "-caisson-").isEmpty)
    }

    /// A Docker-mode service that itself runs in another container's namespace
    /// (`--network container:X`) can be updated: the clone leaves out what Docker refuses there.
    @Test func aServiceInAnotherContainersNamespaceCanBeUpdated() throws {
        guard RealDocker.usable("a service with --network container:X") else { return }
        let w = try EndToEndTests.World("ndj")
        defer { w.cleanup() }
        let owner = w.container + "-netns"
        // The namespace's owner, on the default bridge.
        let o = try RealDocker.docker(["run", "-d", "--pull", "never", "--name", owner, "--stop-timeout", "2",
                                       "--entrypoint", "/bin/sleep", "caisson-test/app:nohealth", "1000000"])
        try #require(o.status == 0, "\(o.stderr)")
        try RealDocker.docker(["tag", "caisson-test/app:1", w.frontendCurrent])
        defer { _ = try? RealDocker.docker(["rmi", w.frontendCurrent]) }
        let r = try RealDocker.docker(["run", "-d", "--pull", "never", "--name", w.container, "--restart", "unless-stopped",
                                       "--network", "container:" + owner, w.frontendCurrent])
        try #require(r.status == 0, "docker run: \(r.stderr)")
        try #require(w.waitHealthy(w.container))
        let pkg = try w.package("frontend-2.edgepkg", service: "frontend", version: "2.0.0", source: "caisson-test/app:2")
        let ok = try w.caisson(["package", "load", pkg, "--yes"])
        #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
        let after = try #require(w.info(w.container))
        #expect(after.imageID == w.imageID("caisson-test/app:2") && after.isRunning)
        let ownerID = Self.inspect(owner, "{{.Id}}")
        #expect(Self.inspect(w.container, "{{.HostConfig.NetworkMode}}") == "container:" + ownerID)
        #expect(Self.page(in: owner, port: 8082).contains("version=2"))
    }

    // MARK: Item 7, Compose mode

    /// Compose `network_mode: service:backend`: the dependent service is brought up again
    /// against the new container, and against the restored one after a rollback.
    @Test func composeNetworkDependentFollowsTheUpdateAndTheRollback() throws {
        guard RealDocker.usable("network dependents, Compose mode") && RealDocker.composeAvailable else { return }
        let w = try EndToEndTests.World("ndc")
        defer { w.cleanup() }
        try """
        services:
          backend:
            image: \(w.backendCurrent)
            pull_policy: never
            restart: unless-stopped
          sidecar:
            image: caisson-test/app:nohealth
            pull_policy: never
            restart: unless-stopped
            entrypoint: ["/bin/sleep"]
            command: ["1000000"]
            stop_grace_period: 2s
            network_mode: "service:backend"

        """.write(toFile: w.dir + "/compose/backend.yaml", atomically: true, encoding: .utf8)
        try w.startBackend()
        let backend = "\(w.project)-backend-1", side = "\(w.project)-sidecar-1"
        let b1 = try #require(w.info(backend))
        #expect(Self.page(in: side, port: 8080).contains("version=1"))
        let pkg2 = try w.package("backend-2.edgepkg", service: "backend", version: "2.0.0", source: "caisson-test/app:2")
        let refused = try w.caisson(["package", "load", pkg2, "--yes"])
        #expect(refused.status == 1 && refused.stderr.contains("[update.network_dependents]"), "\(refused.stdout) \(refused.stderr)")
        #expect(w.info(backend)?.id == b1.id)

        let ok = try w.caisson(["package", "load", pkg2, "--yes", "--recreate-dependents"])
        #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
        let b2 = try #require(w.info(backend))
        #expect(b2.imageID == w.imageID("caisson-test/app:2") && b2.isRunning)
        #expect(w.info(side)?.isRunning == true)
        #expect(Self.inspect(side, "{{.HostConfig.NetworkMode}}") == "container:" + b2.id)
        #expect(Self.page(in: side, port: 8082).contains("version=2"), "the dependent does not reach the new release")

        let pkg3 = try w.package("backend-3.edgepkg", service: "backend", version: "3.0.0", source: "caisson-test/app:unhealthy")
        let failed = try w.caisson(["package", "load", pkg3, "--yes", "--recreate-dependents"])
        #expect(failed.status == 4, "\(failed.stdout) \(failed.stderr)")
        let b3 = try #require(w.info(backend))
        #expect(b3.imageID == w.imageID("caisson-test/app:2") && b3.isRunning)
        #expect(w.info(side)?.isRunning == true)
        #expect(Self.inspect(side, "{{.HostConfig.NetworkMode}}") == "container:" + b3.id)
        #expect(Self.page(in: side, port: 8082).contains("version=2"), "the dependent does not reach the restored release")
    }

    // MARK: Item 10

    /// After a Compose update, the operator's routine `docker compose up -d` (the whole project)
    /// keeps the new release; after `caisson rollback`, it keeps the restored one.
    @Test func aLaterComposeUpKeepsTheUpdateAndTheRollback() throws {
        guard RealDocker.usable("durable Compose updates") && RealDocker.composeAvailable else { return }
        let w = try EndToEndTests.World("dur")
        defer { w.cleanup() }
        try w.startBackend()
        let backend = "\(w.project)-backend-1"
        let v1 = try #require(w.imageID("caisson-test/app:1")), v2 = try #require(w.imageID("caisson-test/app:2"))
        let pkg = try w.package("backend-2.edgepkg", service: "backend", version: "2.0.0", source: "caisson-test/app:2")
        let ok = try w.caisson(["package", "load", pkg, "--yes"])
        #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
        let updated = try #require(w.info(backend))
        #expect(updated.imageID == v2)
        // The container names only the project's own file (no deleted override).
        let files = Self.inspect(backend, "{{index .Config.Labels \"com.docker.compose.project.config_files\"}}")
        #expect(!files.isEmpty && !files.contains(",") && files.hasSuffix("compose/backend.yaml"), "config_files: \(files)")

        func operatorUp() throws {
            let r = try RealDocker.docker(["compose", "-p", w.project, "-f", "compose/backend.yaml", "up", "-d"], cwd: w.dir)
            #expect(r.status == 0, "compose up: \(r.stderr)")
        }
        try operatorUp()
        let later = try #require(w.info(backend))
        #expect(later.imageID == v2, "docker compose up -d put \(later.imageID) back in place of the update")
        #expect(later.id == updated.id, "docker compose up -d recreated the updated container")
        #expect(later.isRunning)
        let show = try w.caisson(["service", "show", "backend"])
        #expect(show.status == 0 && !show.stdout.contains("DRIFT"), "\(show.stdout) \(show.stderr)")

        // Rollback is symmetric: the restored release lasts too.
        let rb = try w.caisson(["rollback", "backend", "--yes"])
        #expect(rb.status == 0, "\(rb.stdout) \(rb.stderr)")
        #expect(w.info(backend)?.imageID == v1)
        try operatorUp()
        let afterRollback = try #require(w.info(backend))
        #expect(afterRollback.imageID == v1, "docker compose up -d after the rollback runs \(afterRollback.imageID)")
        #expect(afterRollback.isRunning)
        let show2 = try w.caisson(["service", "show", "backend"])
        #expect(show2.status == 0 && !show2.stdout.contains("DRIFT"), "\(show2.stdout) \(show2.stderr)")
        // What runs drifts from the record (the operator stopped it): `service show` says so.
        _ = try RealDocker.docker(["stop", "-t", "1", backend])
        let drifted = try w.caisson(["service", "show", "backend"])
        #expect(drifted.stdout.contains("DRIFT"), "\(drifted.stdout) \(drifted.stderr)")
    }

    // MARK: Item 2, Compose mode

    /// Another Caisson (another state directory, whose catalog takes the compose container for a
    /// Docker-mode service) was interrupted: its backup `P-backend-1-caisson-rollback-…`, carrying
    /// the compose labels it was cloned with and its `io.caisson.update-id`, counts as a member of
    /// the compose service. `docker compose up` (v2.40) would recreate the service's container
    /// and start that backup beside it: a second copy of the previous release running, and the
    /// other Caisson's update broken. The load refuses (`update.foreign_attempt`) and changes
    /// nothing; `recover` names it; once it is gone the load goes ahead.
    @Test func composeServiceWithAnotherCaissonsMarksIsRefused() throws {
        guard RealDocker.usable("foreign marks, Compose mode") && RealDocker.composeAvailable else { return }
        let w = try EndToEndTests.World("cfm")
        defer { w.cleanup() }
        try w.startBackend()
        let backend = "\(w.project)-backend-1"
        let before = try #require(w.info(backend))
        let mark = backend + "-caisson-rollback-0badc0de"
        let c = try RealDocker.docker(["create", "--pull", "never", "--name", mark,
                                       "--label", "com.docker.compose.project=\(w.project)",
                                       "--label", "com.docker.compose.service=backend",
                                       "--label", "com.docker.compose.oneoff=False",
                                       "--label", "com.docker.compose.container-number=1",
                                       "--label", "io.caisson.update-id=0badc0de-0000-4000-8000-00000000f00d",
                                       "caisson-test/app:1"])
        try #require(c.status == 0, "docker create: \(c.stderr)")
        let markID = try #require(w.info(mark)).id
        let pkg = try w.package("backend-2.edgepkg", service: "backend", version: "2.0.0", source: "caisson-test/app:2")

        let refused = try w.caisson(["package", "load", pkg, "--yes"])
        #expect(refused.status == 1 && refused.stderr.contains("[update.foreign_attempt]") && refused.stderr.contains(mark),
                "\(refused.stdout) \(refused.stderr)")
        #expect(w.info(mark)?.id == markID, "the other Caisson's backup was removed")
        #expect(w.info(mark)?.isRunning == false, "the other Caisson's backup was started")
        let now = try #require(w.info(backend))
        #expect(now.id == before.id && now.imageID == before.imageID && now.isRunning)
        #expect(try w.history().isEmpty)
        let recover = try w.caisson(["recover"])
        #expect(recover.status == 5 && recover.stdout.contains("update.foreign_attempt"), "\(recover.stdout) \(recover.stderr)")

        // Resolved by hand (as the message says): the update goes ahead.
        _ = try RealDocker.docker(["rm", "-f", mark])
        let ok = try w.caisson(["package", "load", pkg, "--yes"])
        #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
        #expect(w.info(backend)?.imageID == w.imageID("caisson-test/app:2"))
    }
}
