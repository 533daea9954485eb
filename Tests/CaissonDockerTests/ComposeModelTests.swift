import CaissonCore
import Foundation
import Testing
@testable import CaissonDocker

/// The Compose driver reads the project model with `docker compose config --format json`.
@Suite("Compose project model")
struct ComposeModelTests {
    static let fixtures = RealDocker.repoRoot + "/fixtures/compose"

    static func fixture(_ name: String) throws -> [UInt8] {
        [UInt8](try #require(FileManager.default.contents(atPath: fixtures + "/" + name)))
    }

    /// Captured from Compose v2.40.3: `docker compose -p caisson-stack -f backend.yaml config --format json`.
    @Test func parsesCapturedOutputOfBackendYAML() throws {
        let model = try ComposeModel.parse(Self.fixture("backend.config.json"))
        #expect(model.name == "caisson-stack")
        #expect(model.serviceNames == ["backend", "sidecar"])
        #expect(model.services["backend"] == ComposeModel.Service(name: "backend", image: "example/backend:current"))
        #expect(model.services["sidecar"]?.image == "caisson-test/app:nohealth")
        #expect(model.services["backend"]?.containerName == nil)
    }

    /// Captured with `--profile '*'` from profiles.yaml: declared `name:`, interpolated image,
    /// `container_name`, a profile-only service.
    @Test func parsesNameContainerNameAndProfiles() throws {
        let model = try ComposeModel.parse(Self.fixture("profiles.config.json"))
        #expect(model.name == "caisson-named")
        #expect(model.services["web"] == ComposeModel.Service(name: "web", image: "example/web:1.0.0", containerName: "caisson-web"))
        #expect(model.services["tools"]?.profiles == ["tools"])
        #expect(model.services["tools"]?.containerName == nil)
    }

    @Test func buildOnlyServiceAndEmptyProject() throws {
        let model = try ComposeModel.parse(Array(#"{"name":"p","services":{"b":{"build":{"context":"/src"},"container_name":""}}}"#.utf8))
        #expect(model.services["b"] == ComposeModel.Service(name: "b", image: nil, containerName: nil, hasBuild: true))
        #expect(try ComposeModel.parse(Array(#"{"name":"p"}"#.utf8)).services.isEmpty)
    }

    @Test(arguments: [
        ("", "did not print a JSON project model"),
        ("services:\n  web: {}\n", "did not print a JSON project model"),
        ("[1, 2]", "not a JSON object"),
        (#"{"services": {}}"#, "no project name"),
        (#"{"name": "", "services": {}}"#, "no project name"),
        (#"{"name": "p", "services": []}"#, "`services` is not an object"),
        (#"{"name": "p", "services": {"web": "nginx"}}"#, "service \"web\" is not an object"),
        (#"{"name": "p", "services": {"web": {"image": 7}}}"#, "non-string `image`"),
    ])
    func badModelsAreClearErrors(text: String, says: String) {
        let error = #expect(throws: HostError.self) { try ComposeModel.parse(Array(text.utf8)) }
        #expect(error?.kind == .failed)
        #expect(error?.message.contains(says) == true, "\(error?.message ?? "")")
    }

    @Test func anOversizedModelIsRefusedBeforeParsing() {
        let big = [UInt8](repeating: UInt8(ascii: " "), count: ComposeModel.maxBytes + 1)
        let error = #expect(throws: HostError.self) { try ComposeModel.parse(big) }
        #expect(error?.message.contains("larger than") == true)
    }

    /// Alive and not a zombie (orphans are reaped late here).
    static func alive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).prefix(1)
        return state != "Z" && state != "X"
    }

    @Test func pathsAreMadeAbsolute() {
        #expect(DockerHost.absolutePath("/a/b.yaml") == "/a/b.yaml")
        #expect(DockerHost.absolutePath("x/y.yaml") == FileManager.default.currentDirectoryPath + "/x/y.yaml")
        #expect(DockerHost.folder(of: "/srv/stack/compose.yaml") == "/srv/stack")
        #expect(DockerHost.folder(of: "/compose.yaml") == "/")
    }

    /// A compose command that never answers is stopped at `modelTimeout`.
    @Test func aHangingConfigIsStoppedAtTheTimeout() throws {
        let directory = NSTemporaryDirectory() + "caisson-model-hang-\(RealDocker.runID)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/compose.yaml"
        try "services: {}\n".write(toFile: file, atomically: true, encoding: .utf8)
        let host = DockerHost(client: DockerClient(configuration: .init(endpoint: try DockerEndpoint.parse(dockerHost: "unix:///nonexistent.sock"))),
                              compose: ComposeSettings(command: ["/bin/sh", "-c", "sleep 30 & echo $! > \(directory)/child.pid; wait", "fake-compose"],
                                                       modelTimeout: .milliseconds(300)))
        let error = #expect(throws: HostError.self) { try host.composeModel(ComposeTarget(project: "p", file: file, service: "web")) }
        #expect(error?.message.contains("did not finish within") == true, "\(error?.message ?? "")")
        // The whole process group was stopped: the command's own child (as the docker CLI's
        // compose plugin) is gone too, not left running.
        let childText = try String(contentsOfFile: directory + "/child.pid", encoding: .utf8)
        let child = try #require(Int32(childText.trimmingCharacters(in: .whitespacesAndNewlines)))
        RealDocker.waitUntil(seconds: 5) { !Self.alive(child) }
        #expect(!Self.alive(child), "the compose command's child \(child) outlived the timeout")
        // A missing file is reported before any command runs.
        let missing = #expect(throws: HostError.self) {
            try host.composeModel(ComposeTarget(project: "p", file: directory + "/nope.yaml", service: "web"))
        }
        #expect(missing?.message.contains("does not exist") == true)
    }

    /// The captured fixtures are what this Compose prints today (so the unit tests above parse
    /// real output, not a guess), and the driver reads the same model from the file.
    @Test(.enabled(if: RealDocker.composeAvailable))
    func liveConfigMatchesTheCapturedFixture() throws {
        let host = DockerHost(client: try #require(RealDocker.client))
        let backend = try host.composeModel(ComposeTarget(project: "caisson-stack", file: Self.fixtures + "/backend.yaml", service: "backend"))
        #expect(backend == (try ComposeModel.parse(Self.fixture("backend.config.json"))))
        // A profile-only service is found with every profile on; without, the file shows only web.
        let target = ComposeTarget(project: "", file: Self.fixtures + "/profiles.yaml", service: "tools")
        #expect(try host.composeModel(target).serviceNames == ["web"])
        let (model, tools) = try host.composeService(target)
        #expect(model == (try ComposeModel.parse(Self.fixture("profiles.config.json"))))
        #expect(tools.profiles == ["tools"])
        let error = #expect(throws: HostError.self) {
            try host.composeService(ComposeTarget(project: "caisson-stack", file: Self.fixtures + "/backend.yaml", service: "frontend"))
        }
        #expect(error?.message.contains(#"has no service "frontend"; it defines: backend, sidecar"#) == true, "\(error?.message ?? "")")
    }
}

/// The Compose driver on a real daemon: the project name, relative paths, container_name and a
/// missing service, all as Compose itself resolves them.
@Suite("Compose driver on a real daemon", .serialized)
struct RealComposeModelTests {
    /// A project folder with `.env` (the image, by interpolation) and a relative `env_file`.
    static func project(_ name: String, body: String) throws -> String {
        let directory = NSTemporaryDirectory() + "caisson-compose-model-\(name)-\(RealDocker.runID)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try body.write(toFile: directory + "/compose.yaml", atomically: true, encoding: .utf8)
        return directory
    }

    /// Project name from the file's `name:` (no `-p`), image from `.env`, `env_file` relative to
    /// the file's folder, `container_name`: apply from another working directory, then find the
    /// container by the project name Compose used.
    @Test func modelDrivesApplyAndLookup() throws {
        guard RealDocker.usable("compose model test on Docker"), RealDocker.composeAvailable else {
            if RealDocker.required && !RealDocker.composeAvailable { Issue.record("CAISSON_REQUIRE_DOCKER=1 but docker compose is missing") }
            return
        }
        let run = RealDocker.runID
        let projectName = "caisson-model-\(run)"
        let containerName = "caisson-model-web-\(run)"
        let v1 = "caisson-test/app:1", v2 = "caisson-test/app:2"
        let directory = try Self.project("named", body: """
        name: \(projectName)
        services:
          web:
            image: ${CAISSON_TEST_IMAGE}
            container_name: \(containerName)
            env_file: ./app.env
            pull_policy: never
            network_mode: none
            stop_grace_period: 1s

        """)
        try "CAISSON_TEST_IMAGE=\(v1)\n".write(toFile: directory + "/.env", atomically: true, encoding: .utf8)
        try "APP_MESSAGE=from-env-file\n".write(toFile: directory + "/app.env", atomically: true, encoding: .utf8)
        let host = DockerHost(client: try #require(RealDocker.client))
        host.compose.timeout = .seconds(120)
        let target = ComposeTarget(project: "", file: directory + "/compose.yaml", service: "web")
        defer {
            _ = try? RealDocker.docker(["compose", "-f", target.file, "down", "-t", "1"], cwd: directory)
            RealDocker.removeContainers(prefix: containerName)
            try? FileManager.default.removeItem(atPath: directory)
        }

        let (model, web) = try host.composeService(target)
        #expect(model.name == projectName)
        #expect(web.image == v1)
        #expect(web.containerName == containerName)
        #expect(try host.composeContainers(target).isEmpty)

        // The test process's working directory is not the project's: relative paths still resolve.
        #expect(FileManager.default.currentDirectoryPath != directory)
        try host.composeApply(target, imageReference: v2)
        let members = try host.composeContainers(target)
        #expect(members.map(\.name) == [containerName])
        #expect(members.first?.labels[DockerHost.composeProjectLabel] == projectName)
        #expect(members.first?.imageID == (try host.inspectImage(v2))?.id)
        let inspect = try #require(try RealDocker.client?.inspectContainer(containerName))
        #expect(inspect.config.env.contains("APP_MESSAGE=from-env-file"))

        // A foreign container holding the container_name: a clear conflict, not "no container".
        _ = try RealDocker.docker(["compose", "-f", target.file, "down", "-t", "1"], cwd: directory)
        _ = try RealDocker.client?.createContainer(name: containerName, body: ["Image": .string(v1)])
        let conflict = #expect(throws: HostError.self) { try host.composeContainers(target) }
        #expect(conflict?.kind == .conflict)
        #expect(conflict?.message.contains("belongs to no compose project, not to \(projectName)/web") == true, "\(conflict?.message ?? "")")
    }

    /// A catalog naming a service the compose file does not define: the update fails at its
    /// first step with a clear issue, and nothing on the host changes (no recreate, no pin tag,
    /// no journaled side effect).
    @Test func missingServiceFailsBeforeAnyChange() throws {
        guard RealDocker.usable("compose missing-service test on Docker"), RealDocker.composeAvailable else {
            if RealDocker.required && !RealDocker.composeAvailable { Issue.record("CAISSON_REQUIRE_DOCKER=1 but docker compose is missing") }
            return
        }
        let run = RealDocker.runID
        let project = "caisson-missing-\(run)"
        let directory = try Self.project("missing", body: """
        services:
          app:
            image: caisson-test/app:1
            pull_policy: never
            network_mode: none
            stop_grace_period: 1s

        """)
        let file = directory + "/compose.yaml"
        defer {
            _ = try? RealDocker.docker(["compose", "-p", project, "-f", file, "down", "-t", "1"])
            try? FileManager.default.removeItem(atPath: directory)
        }
        let up = try RealDocker.docker(["compose", "-p", project, "-f", file, "up", "-d"])
        try #require(up.status == 0, "compose up: \(up.stderr)")
        let host = DockerHost(client: try #require(RealDocker.client))
        host.compose.timeout = .seconds(120)
        let real = ComposeTarget(project: project, file: file, service: "app")
        let before = try #require(try host.composeContainers(real).first)

        let wrong = ComposeTarget(project: project, file: file, service: "backend")
        let serviceName = "caisson-missing-backend-\(run)"
        let new = try #require(try host.inspectImage("caisson-test/app:2"))
        let plan = UpdateMachine.Plan(
            updateID: "c0ffee99-0000-4000-8000-000000000001", candidateReleaseID: "cr-missing", validationAttemptID: nil,
            service: ServiceSpec(name: serviceName, serviceRevision: "backend-v1", platform: "linux/amd64", runtimeMode: .compose,
                                 docker: nil, compose: wrong,
                                 health: HealthPolicy(kind: .containerHealth, timeoutSecs: 10, pollIntervalSecs: 1, stableSecs: 1)),
            targetImageReference: "caisson-test/app:2", targetImageID: new.id, packageVersion: "2.0.0", stopGraceSecs: 10)
        var machine = UpdateMachine(plan: plan, startedAt: RealTestClock().timestamp())
        let journal = InMemoryJournal()
        let attempt = try UpdateDriver(host: host, journal: journal, clock: RealTestClock()).run(&machine)

        #expect(attempt.status == .failed)
        let issue = try #require(attempt.issues.first)
        #expect(issue.code == "compose.image_lookup_failed")
        #expect(issue.message.contains(#"has no service "backend"; it defines: app"#), "\(issue)")
        #expect(issue.message.contains(file))
        // Nothing was done: no side effect journaled, the service's container untouched.
        #expect(journal.entries.filter { $0.entry.phase == .outcome }.isEmpty, "\(journal.entries.map(\.entry))")
        let after = try #require(try host.composeContainers(real).first)
        #expect(after.id == before.id && after.startedAt == before.startedAt && after.isRunning)
        #expect(try host.inspectImage(UpdateMachine.pinReference(service: serviceName, imageID: before.imageID)) == nil)

        // composeApply itself refuses too, before writing or running anything.
        let error = #expect(throws: HostError.self) { try host.composeApply(wrong, imageReference: "caisson-test/app:2") }
        #expect(error?.message.contains(#"has no service "backend""#) == true)
        let still = try host.composeContainers(real)
        #expect(still.map(\.id) == [before.id])
        #expect(RealDocker.containerNames(prefix: "\(project)-backend").isEmpty)
    }
}
