import CaissonCore
import CaissonSimulator
import Foundation
import Testing
@testable import CaissonDocker
#if canImport(Glibc)
import Glibc
#endif

/// A second private dockerd (own containerd, sockets, data/exec roots, pidfiles, bridge and
/// cgroup parent, all under `directory`) started with `scripts/docker.sh start-aux`, holding
/// copies of the shared daemon's `caisson-test/app:*` images. A test may restart it at will: the
/// shared daemon, which every suite uses at the same time, is never touched.
final class AuxDaemon {
    static let script = RealDocker.repoRoot + "/scripts/docker.sh"
    static let folderPrefix = "caisson-aux-"
    nonisolated(unsafe) private static var made = 0

    let directory: String
    let dockerHost: String
    let client: DockerClient
    private var stopped = false

    private init(directory: String, dockerHost: String, client: DockerClient) {
        self.directory = directory
        self.dockerHost = dockerHost
        self.client = client
    }

    /// Starts one (stopping any left behind by a test process that no longer exists) and loads
    /// `images` into it from the shared daemon. Stops it again if anything fails.
    static func start(images: [String]) throws -> AuxDaemon {
        reapStale()
        made += 1
        // Short, so the daemon's sockets stay inside the folder (unix socket paths are short).
        let directory = "/tmp/\(folderPrefix)\(getpid())-\(made)"
        var aux: AuxDaemon?
        defer { if aux == nil { _ = try? RealDocker.command(script, ["stop-aux", directory]) } }
        let started = try RealDocker.command(script, ["start-aux", directory])
        guard started.status == 0,
              let line = started.stdout.split(separator: "\n").last(where: { $0.hasPrefix("DOCKER_HOST=") }) else {
            throw HostError(.failed, "scripts/docker.sh start-aux \(directory) failed (exit \(started.status)): \(started.stderr.suffix(1500))")
        }
        let dockerHost = String(line.dropFirst("DOCKER_HOST=".count))
        let client = DockerClient(configuration: .init(
            endpoint: try DockerEndpoint.parse(dockerHost: dockerHost),
            timeouts: DockerTimeouts(connect: .seconds(5), call: .seconds(120)),
            loadTimeouts: DockerTimeouts(connect: .seconds(5), call: .seconds(300), idle: .seconds(120))))
        _ = try client.ping()
        // docker save from the shared daemon | docker load into this one.
        var copy = ["-c", #"set -euo pipefail; from=$1; to=$2; shift 2; docker --host "$from" save "$@" | docker --host "$to" load -q"#,
                    "copy-images", RealDocker.dockerHost ?? "unix://\(DockerEndpoint.defaultSocketPath)", dockerHost]
        copy += images
        let loaded = try RealDocker.command("/bin/bash", copy)
        guard loaded.status == 0 else {
            throw HostError(.failed, "copying \(images) into the aux daemon failed (exit \(loaded.status)): \(loaded.stderr.suffix(1500))")
        }
        let made = AuxDaemon(directory: directory, dockerHost: dockerHost, client: client)
        aux = made
        return made
    }

    /// A graceful restart on the same roots (SIGTERM: dockerd stops the containers; then its
    /// containerd), then start again: containers come back per their restart policies.
    func restart() throws {
        let r = try RealDocker.command(Self.script, ["restart-aux", directory])
        guard r.status == 0 else {
            throw HostError(.failed, "scripts/docker.sh restart-aux \(directory) failed (exit \(r.status)): \(r.stderr.suffix(1500))")
        }
    }

    /// Stops the daemon and deletes its folder (idempotent).
    func stop() {
        guard !stopped else { return }
        stopped = true
        if let r = try? RealDocker.command(Self.script, ["stop-aux", directory]), r.status != 0 {
            print("NOTICE: scripts/docker.sh stop-aux \(directory) failed: \(r.stderr.suffix(800))")
        }
    }

    deinit { stop() }

    /// Aux daemons whose test process is gone (killed before its cleanup ran) are stopped.
    static func reapStale() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/tmp") else { return }
        for entry in entries.sorted() where entry.hasPrefix(folderPrefix) {
            let pidText = entry.dropFirst(folderPrefix.count).prefix { $0 != "-" }
            guard let pid = Int32(pidText), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            _ = try? RealDocker.command(script, ["stop-aux", "/tmp/" + entry])
        }
    }

    /// An aux daemon for `what`, or nil with a visible notice (a recorded failure when
    /// `CAISSON_REQUIRE_DOCKER=1`) when there is no usable Docker or it cannot start one.
    static func startOrSkip(_ what: String, images: [String]) -> AuxDaemon? {
        guard RealDocker.usable(what) else { return nil }
        do {
            return try start(images: images)
        } catch {
            print("NOTICE: \(what) SKIPPED: cannot start a private aux dockerd: \(error)")
            if RealDocker.required { Issue.record("CAISSON_REQUIRE_DOCKER=1 but \(what) cannot start its aux dockerd: \(error)") }
            return nil
        }
    }
}

/// A host (`DockerHost`, or the simulator for restarts anchored after a call) with a graceful
/// daemon restart injected just before the `nth` call of an operation, counted from `schedule`
/// (or from the `after` call): what `FaultKind.daemonRestart` does in the simulator.
final class RestartInjectingHost: ContainerHost {
    let inner: any ContainerHost
    let restartDaemon: () throws -> Void
    private var target: (operation: SimOperation, nth: Int)?
    private var anchor: (operation: SimOperation, nth: Int)?
    private var anchorCount = 0
    private var counts: [SimOperation: Int] = [:]
    private var callIndex = 0
    /// `#<call index since schedule> <operation>` for each restart done.
    private(set) var restarts: [String] = []

    init(_ inner: any ContainerHost, restartDaemon: @escaping () throws -> Void) {
        self.inner = inner
        self.restartDaemon = restartDaemon
    }

    func schedule(before operation: SimOperation, nth: Int, after: (operation: SimOperation, nth: Int)? = nil) {
        target = (operation, nth)
        anchor = after
        anchorCount = 0
        counts = [:]
        callIndex = 0
    }

    private func before(_ operation: SimOperation) throws(HostError) {
        defer { callIndex += 1 }
        if let a = anchor {
            // Count nothing until the anchor call goes out; it arms the target.
            if a.operation == operation {
                if anchorCount == a.nth { anchor = nil }
                anchorCount += 1
            }
            return
        }
        let n = counts[operation, default: 0]
        counts[operation] = n + 1
        guard let target, target.operation == operation, target.nth == n else { return }
        self.target = nil
        do {
            try restartDaemon()
        } catch {
            // The test cannot go on meaningfully; the updater sees a daemon that is gone.
            throw HostError(.unreachable, "the test could not restart the daemon: \(error)")
        }
        restarts.append("#\(callIndex) \(operation.rawValue)")
    }

    func ping() throws(HostError) -> String { try before(.ping); return try inner.ping() }
    func loadImage(_ payload: ImagePayload, progress: (Int64) -> Void) throws(HostError) -> ImageInfo {
        try before(.loadImage); return try inner.loadImage(payload, progress: progress)
    }
    func inspectImage(_ reference: String) throws(HostError) -> ImageInfo? {
        try before(.inspectImage); return try inner.inspectImage(reference)
    }
    func tagImage(_ imageID: String, as reference: String) throws(HostError) {
        try before(.tagImage); try inner.tagImage(imageID, as: reference)
    }
    func removeImage(_ reference: String) throws(HostError) { try before(.removeImage); try inner.removeImage(reference) }
    func listImages() throws(HostError) -> [ImageInfo] { try before(.listImages); return try inner.listImages() }
    func inspectContainer(_ nameOrID: String) throws(HostError) -> ContainerInfo? {
        try before(.inspectContainer); return try inner.inspectContainer(nameOrID)
    }
    func createContainer(name: String, cloning template: String, imageID: String, labels: [String: String]) throws(HostError) -> String {
        try before(.createContainer); return try inner.createContainer(name: name, cloning: template, imageID: imageID, labels: labels)
    }
    func createDependentContainer(name: String, cloning template: String, networkOwner owner: String,
                                  labels: [String: String]) throws(HostError) -> String {
        try before(.createContainer)
        return try inner.createDependentContainer(name: name, cloning: template, networkOwner: owner, labels: labels)
    }
    func startContainer(_ nameOrID: String) throws(HostError) { try before(.startContainer); try inner.startContainer(nameOrID) }
    func stopContainer(_ nameOrID: String, graceSecs: Int) throws(HostError) {
        try before(.stopContainer); try inner.stopContainer(nameOrID, graceSecs: graceSecs)
    }
    func renameContainer(_ nameOrID: String, to newName: String) throws(HostError) {
        try before(.renameContainer); try inner.renameContainer(nameOrID, to: newName)
    }
    func listContainers(namePrefixes: [String], label: String?) throws(HostError) -> [ContainerInfo] {
        try before(.listContainers); return try inner.listContainers(namePrefixes: namePrefixes, label: label)
    }
    func removeContainer(_ nameOrID: String) throws(HostError) { try before(.removeContainer); try inner.removeContainer(nameOrID) }
    func removeStoppedContainer(_ nameOrID: String) throws(HostError) {
        try before(.removeContainer); try inner.removeStoppedContainer(nameOrID)
    }
    func listContainers() throws(HostError) -> [ContainerInfo] { try before(.listContainers); return try inner.listContainers() }
    func composeServiceFacts(_ target: ComposeTarget) throws(HostError) -> ComposeServiceFacts {
        try before(.composeModel); return try inner.composeServiceFacts(target)
    }
    func composeUp(_ target: ComposeTarget, services: [String]) throws(HostError) {
        try before(.composeApply); try inner.composeUp(target, services: services)
    }
    func composeContainers(_ target: ComposeTarget) throws(HostError) -> [ContainerInfo] {
        try before(.composeContainers); return try inner.composeContainers(target)
    }
    func composeApply(_ target: ComposeTarget, imageReference: String) throws(HostError) {
        try before(.composeApply); try inner.composeApply(target, imageReference: imageReference)
    }
    func containerDetails(_ nameOrID: String) throws(HostError) -> ContainerDetails? {
        try before(.containerDetails); return try inner.containerDetails(nameOrID)
    }
    func containerLogs(_ nameOrID: String, limit: LogLimit) throws(HostError) -> LogTail {
        try before(.containerLogs); return try inner.containerLogs(nameOrID, limit: limit)
    }
    func probe(_ request: ProbeRequest, timeoutMillis: Int64) throws(HostError) -> ProbeAnswer {
        try before(.probe); return try inner.probe(request, timeoutMillis: timeoutMillis)
    }
}

extension ConformanceScenario {
    /// A graceful daemon restart in the middle of an update (issue 4's "daemon restart
    /// mid-update"). On Docker: a private aux daemon, restarted for real.
    static let daemonRestarts: [ConformanceScenario] = [
        // Health polls are inspectContainer #1, #2, … (#0 inspects the old container).
        ConformanceScenario(name: "daemon restart during the health check", newVariant: "2", health: .containerHealth,
                            healthTimeoutSecs: 30, daemonRestart: (.inspectContainer, 2),
                            expected: .init(status: .succeeded, runs: .new, running: true, count: 1, health: .passed)),
        // The old container is stopped and renamed away, the new one created but not started.
        ConformanceScenario(name: "daemon restart between stop and start", newVariant: "2", health: .containerHealth,
                            healthTimeoutSecs: 30, daemonRestart: (.startContainer, 0),
                            expected: .init(status: .succeeded, runs: .new, running: true, count: 1, health: .passed)),
        ConformanceScenario(name: "daemon restart during the health check of an unhealthy image", newVariant: "unhealthy",
                            health: .containerHealth, healthTimeoutSecs: 30, daemonRestart: (.inspectContainer, 2),
                            expected: .init(status: .rolledBack, runs: .old, running: true, count: 1, health: .failed)),
        // startContainer #1 is the rollback's start of the old container (renamed back, stopped).
        ConformanceScenario(name: "daemon restart during the rollback", newVariant: "unhealthy",
                            health: .containerHealth, healthTimeoutSecs: 30, daemonRestart: (.startContainer, 1),
                            restartFollowsHealthPolls: true,
                            expected: .init(status: .rolledBack, runs: .old, running: true, count: 1, health: .failed)),
        // Compose: composeContainers #0 reads the old state, #1, #2, … are health polls.
        // Issue 10 item 6: a restart during the restore's health check, with `--restart no`: the
        // daemon stops the restored container and does not bring it back. Inspections after the
        // restore's start: #0 verifies it, #1 looks for the staging name, #2 for the new
        // container, #3 and #4 are health polls; the restart comes before #4.
        ConformanceScenario(name: "daemon restart during the restore's health check (restart no)", newVariant: "unhealthy",
                            health: .containerHealth, healthTimeoutSecs: 30, daemonRestart: (.inspectContainer, 4),
                            restartAfter: (.startContainer, 1), restartFollowsHealthPolls: true, restartPolicy: "no",
                            expected: .init(status: .rolledBack, runs: .old, running: true, count: 1, health: .failed)),
        ConformanceScenario(name: "compose: daemon restart during the health check", mode: .compose, newVariant: "2",
                            health: .containerHealth, healthTimeoutSecs: 30, daemonRestart: (.composeContainers, 2),
                            expected: .init(status: .succeeded, runs: .new, running: true, count: 1, health: .passed)),
    ]
}

@Suite("Conformance: a daemon restart mid-update, simulated and on a private real daemon", .serialized)
struct DaemonRestartConformanceTests {
    static let images = ["caisson-test/app:1", "caisson-test/app:2", "caisson-test/app:unhealthy"]

    @Test("same outcome on both hosts", arguments: ConformanceHost.allCases, ConformanceScenario.daemonRestarts)
    func scenario(_ kind: ConformanceHost, _ scenario: ConformanceScenario) throws {
        let index = 50 + (ConformanceScenario.daemonRestarts.firstIndex { $0.name == scenario.name } ?? 0)
        let service = "caisson-restart-\(RealDocker.runID)-\(index)"
        let restart = try #require(scenario.daemonRestart)
        let expectedRestart = ["\(restart.operation.rawValue)"]
        switch kind {
        case .simulator:
            let world = SimulatorWorld()
            let outcome = try ConformanceTests.run(scenario, on: world, service: service, index: index)
            #expect(outcome == scenario.expected, "simulator: \(scenario.name): got \(outcome), want \(scenario.expected)")
            #expect(world.daemonRestarts.map { String($0.split(separator: " ").last ?? "") } == expectedRestart)
        case .docker:
            let what = "daemon-restart scenario '\(scenario.name)' on Docker"
            guard RealDocker.usable(what) else { return }
            if scenario.mode == .compose && !RealDocker.composeAvailable {
                print("NOTICE: '\(scenario.name)' on Docker SKIPPED: no docker compose v2")
                if RealDocker.required { Issue.record("CAISSON_REQUIRE_DOCKER=1 but docker compose is missing") }
                return
            }
            guard let aux = AuxDaemon.startOrSkip(what, images: Self.images) else { return }
            defer { aux.stop() }
            let world = DockerWorld(prefix: service, aux: aux)
            defer { world.cleanup() }
            let outcome = try ConformanceTests.run(scenario, on: world, service: service, index: index)
            let simWorld = SimulatorWorld()
            let simulated = try ConformanceTests.run(scenario, on: simWorld, service: service, index: index)
            // The restart really happened, before the same call on both hosts.
            #expect(world.daemonRestarts.count == 1, "Docker restarts: \(world.daemonRestarts)")
            // After a health check's polls, their count may differ between the hosts: compare the call.
            let afterPolls = scenario.restartFollowsHealthPolls
            func call(_ list: [String]) -> [String] { !afterPolls ? list : list.map { String($0.split(separator: " ").last ?? "") } }
            #expect(call(world.daemonRestarts) == call(simWorld.daemonRestarts),
                    "\(scenario.name): Docker restarted before \(world.daemonRestarts), the simulator before \(simWorld.daemonRestarts)")
            #expect(outcome == scenario.expected, "docker: \(scenario.name): got \(outcome), want \(scenario.expected)")
            #expect(outcome == simulated, "\(scenario.name): Docker \(outcome), the simulator \(simulated)")
            #expect(outcome.effects == simulated.effects, "\(scenario.name): Docker did \(outcome.effects), the simulator \(simulated.effects)")
        }
    }

    /// The aux daemon never shares anything with the shared test daemon, and stop-aux leaves
    /// nothing behind (no process, no folder).
    @Test func auxDaemonIsPrivateAndCleanedUp() throws {
        guard let aux = AuxDaemon.startOrSkip("aux daemon isolation test", images: ["caisson-test/app:1"]) else { return }
        defer { aux.stop() }
        let shared = try #require(RealDocker.client)
        #expect(aux.dockerHost != RealDocker.dockerHost)
        #expect(try aux.client.info().dockerRootDir != shared.info().dockerRootDir)
        #expect(try aux.client.inspectImageIfPresent("caisson-test/app:1")?.id == shared.inspectImageIfPresent("caisson-test/app:1")?.id)
        let name = "caisson-aux-probe-\(RealDocker.runID)"
        _ = try aux.client.createContainer(name: name, body: ["Image": "caisson-test/app:1"])
        #expect(try shared.inspectContainerIfPresent(name) == nil)
        try aux.restart()
        #expect(try aux.client.inspectContainerIfPresent(name) != nil)   // same data root after a restart
        aux.stop()
        #expect(!FileManager.default.fileExists(atPath: aux.directory))
        #expect(throws: (any Error).self) { _ = try aux.client.ping() }
    }
}
