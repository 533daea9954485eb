import CaissonCore
import CaissonSimulator
import Foundation
import Testing
@testable import CaissonDocker

/// The simulator must be honest: the same update scenarios, driven by the same `UpdateMachine` +
/// `UpdateDriver` + `InMemoryJournal`, against `SimulatedHost` (virtual time) and `DockerHost` on a
/// real daemon (real time), must end with the same observable outcome.
///
/// Images: the real `caisson-test/app:*` images (scripts/make-test-images) carry
/// `io.caisson.sim.*` labels; the simulator gets images with exactly those labels, so its
/// behaviour is scripted by the same contract the real images implement.

/// Which body runs the scenario.
enum ConformanceHost: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case simulator, docker
    var testDescription: String { rawValue }
}

/// One scenario: the old image the service runs, the new image, the health policy, a twist.
struct ConformanceScenario: Sendable, CustomTestStringConvertible {
    enum Twist: String, Sendable {
        case none
        /// A container already holds the staging name `NAME-caisson-new-<id>`.
        case stagingNameTaken
        /// A container already holds the rollback name `NAME-caisson-rollback-<id>`: renaming the
        /// old container away fails after it was stopped (FORMATS §8 item 2).
        case backupNameTaken
        /// No container holds the service name.
        case serviceMissing
    }

    var name: String
    var mode = RuntimeMode.docker
    var oldVariant = "1"
    var newVariant: String
    var health: HealthKind
    var twist = Twist.none
    var stopGraceSecs = 10
    /// The health check's timeout (default `ConformanceTests.health.timeout`).
    var healthTimeoutSecs: Int? = nil
    /// The daemon restarts (gracefully) just before the `nth` call (0-based, counted from the
    /// start of the update) of this operation, which then proceeds: the simulator's
    /// `FaultKind.daemonRestart`, a real restart of a private daemon on Docker.
    var daemonRestart: (operation: SimOperation, nth: Int)? = nil
    /// When set, `daemonRestart.nth` counts only the calls made after this call (e.g. the
    /// restore's start of the old container), whatever number of health polls came before.
    var restartAfter: (operation: SimOperation, nth: Int)? = nil
    /// The restart comes after a health check's polls (e.g. the rollback's start follows the
    /// failed check). Docker runs the image's HEALTHCHECK on its own clock, so how many polls
    /// precede the restart may differ between the hosts: conformance compares the call the
    /// restart came before, not its index.
    var restartFollowsHealthPolls = false
    /// The service container's restart policy (`docker run --restart`).
    var restartPolicy = "unless-stopped"
    var expected: ConformanceOutcome

    var testDescription: String { name }

    static let all: [ConformanceScenario] = [
        ConformanceScenario(name: "good update", newVariant: "2", health: .containerHealth,
                            expected: .init(status: .succeeded, runs: .new, running: true, count: 1, health: .passed)),
        ConformanceScenario(name: "good update, running", newVariant: "2", health: .running,
                            expected: .init(status: .succeeded, runs: .new, running: true, count: 1, health: .passed)),
        ConformanceScenario(name: "unhealthy image, container_health", newVariant: "unhealthy", health: .containerHealth,
                            expected: .init(status: .rolledBack, runs: .old, running: true, count: 1, health: .failed)),
        ConformanceScenario(name: "crashing image, container_health", newVariant: "crash", health: .containerHealth,
                            expected: .init(status: .rolledBack, runs: .old, running: true, count: 1, health: .failed)),
        ConformanceScenario(name: "crashing image, running", newVariant: "crash", health: .running,
                            expected: .init(status: .rolledBack, runs: .old, running: true, count: 1, health: .failed)),
        ConformanceScenario(name: "no healthcheck, container_health", newVariant: "nohealth", health: .containerHealth,
                            expected: .init(status: .rolledBack, runs: .old, running: true, count: 1, health: .failed)),
        ConformanceScenario(name: "never ready, container_health", newVariant: "never-ready", health: .containerHealth,
                            expected: .init(status: .rolledBack, runs: .old, running: true, count: 1, health: .timedOut)),
        ConformanceScenario(name: "staging name taken", newVariant: "2", health: .containerHealth, twist: .stagingNameTaken,
                            expected: .init(status: .failed, runs: .old, running: true, count: 1, health: nil, intruderKept: true)),
        ConformanceScenario(name: "rollback name taken", newVariant: "2", health: .containerHealth, twist: .backupNameTaken,
                            expected: .init(status: .rolledBack, runs: .old, running: true, count: 1, health: nil, intruderKept: true)),
        ConformanceScenario(name: "service container missing", newVariant: "2", health: .containerHealth, twist: .serviceMissing,
                            expected: .init(status: .failed, runs: .none, running: false, count: 0, health: nil)),
        ConformanceScenario(name: "old ignores SIGTERM, good update", oldVariant: "stubborn", newVariant: "2",
                            health: .containerHealth, stopGraceSecs: 2,
                            expected: .init(status: .succeeded, runs: .new, running: true, count: 1, health: .passed)),
        ConformanceScenario(name: "old ignores SIGTERM, unhealthy update", oldVariant: "stubborn", newVariant: "unhealthy",
                            health: .containerHealth, stopGraceSecs: 2,
                            expected: .init(status: .rolledBack, runs: .old, running: true, count: 1, health: .failed)),
        ConformanceScenario(name: "compose: good update", mode: .compose, newVariant: "2", health: .containerHealth,
                            expected: .init(status: .succeeded, runs: .new, running: true, count: 1, health: .passed)),
        ConformanceScenario(name: "compose: unhealthy image", mode: .compose, newVariant: "unhealthy", health: .containerHealth,
                            expected: .init(status: .rolledBack, runs: .old, running: true, count: 1, health: .failed)),
        ConformanceScenario(name: "compose: crashing image, running", mode: .compose, newVariant: "crash", health: .running,
                            expected: .init(status: .rolledBack, runs: .old, running: true, count: 1, health: .failed)),
        ConformanceScenario(name: "compose: no healthcheck", mode: .compose, newVariant: "nohealth", health: .containerHealth,
                            expected: .init(status: .rolledBack, runs: .old, running: true, count: 1, health: .failed)),
    ]
}

/// What an observer sees after the attempt.
struct ConformanceOutcome: Equatable, Sendable, CustomStringConvertible {
    enum Runs: String, Sendable { case old, new, other, none }
    var status: UpdateStatus
    /// Which image the container under the service name runs.
    var runs: Runs
    var running: Bool
    /// Containers under the service name (0 or 1).
    var count: Int
    /// The new release's health record outcome (nil: no health check ran).
    var health: HealthOutcome?
    /// Twists `.stagingNameTaken`, `.backupNameTaken`: the pre-existing container under the staging name is still there.
    var intruderKept: Bool?
    /// Containers of ours left behind (`NAME-caisson-*`, besides an intruder we planted).
    var leftovers: [String] = []
    /// The side effects as journaled: `step=result` for every outcome entry, where result is `ok`,
    /// `created` or the `HostError` kind. Not part of the expectation: compared between hosts.
    var effects: [String] = []

    /// Equality of what the scenario table states (the effect list is compared separately).
    static func == (a: ConformanceOutcome, b: ConformanceOutcome) -> Bool {
        (a.status, a.runs, a.running, a.count) == (b.status, b.runs, b.running, b.count)
            && (a.health, a.intruderKept, a.leftovers) == (b.health, b.intruderKept, b.leftovers)
    }

    var description: String {
        "\(status.rawValue), runs \(runs.rawValue)\(running ? " (running)" : ""), \(count) under the name, health \(health?.rawValue ?? "-")"
            + (intruderKept.map { ", intruder \($0 ? "kept" : "gone")" } ?? "") + (leftovers.isEmpty ? "" : ", leftovers \(leftovers)")
    }
}

/// A host plus the means to set up a world on it and observe it.
protocol ConformanceWorld: AnyObject {
    var host: any ContainerHost { get }
    var clock: any UpdateClock { get }
    /// Make the test image `variant` available under a fresh reference; returns (reference, id).
    func image(_ variant: String) throws -> (reference: String, id: String)
    /// `docker run -d --restart POLICY --name NAME REF`.
    func runService(name: String, reference: String, restartPolicy: String) throws
    /// `docker create --name NAME REF` (not started).
    func createIdle(name: String, reference: String) throws
    /// `docker compose -p PROJECT up -d` of a file whose only service `app` runs `reference`;
    /// returns the target (with the file's path).
    func runCompose(project: String, reference: String) throws -> ComposeTarget
    /// Let the service settle (healthy) before the update.
    func settle(name: String)
    /// Names of all containers starting with `prefix`, sorted.
    func names(prefix: String) -> [String]
    /// Arrange a graceful daemon restart just before the `nth` call of `operation` from now on
    /// (counted after the `after` call, when given).
    func scheduleDaemonRestart(before operation: SimOperation, nth: Int, after: (operation: SimOperation, nth: Int)?) throws
    /// The operations before which the daemon did restart (call index from the schedule, name).
    var daemonRestarts: [String] { get }
    func cleanup()
}

extension ConformanceWorld {
    /// `docker run -d --restart unless-stopped --name NAME REF`.
    func runService(name: String, reference: String) throws {
        try runService(name: name, reference: reference, restartPolicy: "unless-stopped")
    }
}

final class SimulatorWorld: ConformanceWorld {
    let sim: SimulatedHost
    var clock: any UpdateClock { sim.clock }

    init() {
        sim = SimulatedHost(seed: 7, clock: VirtualClock(), recordTrace: false)
    }

    /// The labels (and healthcheck presence) of the real caisson-test/app images
    /// (`ProbeConformanceTests` checks them against the images built on the daemon).
    static func config(_ variant: String) -> ImageConfig {
        var labels = ["org.opencontainers.image.title": "caisson-test-app", "io.caisson.sim.healthcheck": "cmd",
                      "io.caisson.sim.http": "200", "io.caisson.sim.exec": "0"]
        var healthcheck = true
        func log(_ version: String, _ message: String, port: String = "8080") {
            labels["io.caisson.sim.log"] = "app: version \(version) serving on :\(port) (hello from \(message))"
        }
        switch variant {
        case "1", "stubborn": labels["io.caisson.sim.health"] = "healthy"; log("1", "1")
        case "2":
            labels["io.caisson.sim.health"] = "healthy"
            labels["io.caisson.sim.port"] = "8082"
            log("2", "2", port: "8082")
        case "unhealthy": labels["io.caisson.sim.health"] = "unhealthy"; log("3", "unhealthy")
        case "crash":
            labels["io.caisson.sim.health"] = "crash"
            labels["io.caisson.sim.crash_after_secs"] = "3"
            labels["io.caisson.sim.exit_code"] = "3"
            labels["io.caisson.sim.exit_log"] = "app: crashing after 3s (exit 3)"
            log("4", "crash")
        case "nohealth":
            labels["io.caisson.sim.health"] = "healthy"
            labels["io.caisson.sim.healthcheck"] = "none"
            healthcheck = false
            log("5", "nohealth")
        case "never-ready": labels["io.caisson.sim.health"] = "never-ready"; log("6", "never-ready")
        case "http-503": labels["io.caisson.sim.health"] = "healthy"; labels["io.caisson.sim.http"] = "503"; log("8", "http-503")
        case "http-hang": labels["io.caisson.sim.health"] = "healthy"; labels["io.caisson.sim.http"] = "hang"; log("9", "http-hang")
        case "http-never": labels["io.caisson.sim.health"] = "healthy"; labels["io.caisson.sim.http"] = "refused"; log("10", "http-never")
        case "exec-fail": labels["io.caisson.sim.health"] = "healthy"; labels["io.caisson.sim.exec"] = "1"; log("11", "exec-fail")
        case "oom":
            labels["io.caisson.sim.health"] = "oom:2"
            labels["io.caisson.sim.exit_log"] = "app: allocating memory"
            log("12", "oom")
        default: break
        }
        if variant == "stubborn" { labels["io.caisson.sim.stop"] = "ignore-sigterm" }
        return ImageConfig(labels: labels, hasHealthcheck: healthcheck)
    }

    func image(_ variant: String) throws -> (reference: String, id: String) {
        let reference = "caisson-test/app:\(variant)"
        let id = SimulatedHost.fakeImageID(reference)
        try sim.addImage(id: id, tags: [reference], config: Self.config(variant))
        return (reference, id)
    }

    func runService(name: String, reference: String, restartPolicy: String) throws {
        try sim.runContainer(name: name, imageReference: reference, restartPolicy: SimRestartPolicy(parsing: restartPolicy) ?? .unlessStopped)
    }

    func createIdle(name: String, reference: String) throws {
        try sim.runContainer(name: name, imageReference: reference, start: false)
    }

    func runCompose(project: String, reference: String) throws -> ComposeTarget {
        let target = ComposeTarget(project: project, file: "/srv/\(project)/compose.yaml", service: "app")
        try sim.provisionCompose(target: target, imageReference: reference, restartPolicy: .unlessStopped)
        return target
    }

    func settle(name: String) { sim.clock.sleep(millis: 10_000) }

    func names(prefix: String) -> [String] {
        sim.allContainers.map(\.name).filter { $0.hasPrefix(prefix) }.sorted()
    }

    private var restartScheduledAt: Int?
    /// For a restart anchored after a call: the simulator behind the same injector as Docker's.
    private var injecting: RestartInjectingHost?
    var host: any ContainerHost { injecting ?? sim }

    func scheduleDaemonRestart(before operation: SimOperation, nth: Int, after: (operation: SimOperation, nth: Int)?) throws {
        if let after {
            let sim = self.sim
            let injecting = RestartInjectingHost(sim) { sim.restartDaemon(.graceful) }
            injecting.schedule(before: operation, nth: nth, after: after)
            self.injecting = injecting
            return
        }
        restartScheduledAt = sim.callCount
        sim.faultPlan = FaultPlan(rules: [.on(operation, nth: sim.callCount(of: operation) + nth, .daemonRestart)])
    }

    var daemonRestarts: [String] {
        if let injecting { return injecting.restarts }
        guard let from = restartScheduledAt else { return [] }
        return sim.calls.filter { $0.index >= from && $0.fault == .daemonRestart }
            .map { "#\($0.index - from) \($0.operation.rawValue)" }
    }

    func cleanup() {}
}

final class DockerWorld: ConformanceWorld {
    let docker: DockerHost
    let realClock = RealTestClock()
    /// The updater's view of the daemon: `docker`, or `docker` behind a restart injector.
    private let restarting: RestartInjectingHost?
    var host: any ContainerHost { restarting ?? docker }
    var clock: any UpdateClock { realClock }
    let prefix: String
    /// DOCKER_HOST of the daemon for `docker` CLI children (nil: the shared test daemon).
    let dockerHost: String?
    private var tags: [String] = []

    /// A world on the shared test daemon, or (with `aux`) on a private daemon that can restart.
    init(prefix: String, aux: AuxDaemon? = nil) {
        let docker = DockerHost(client: aux?.client ?? RealDocker.client!)
        docker.compose.timeout = .seconds(120)
        self.docker = docker
        self.prefix = prefix
        dockerHost = aux?.dockerHost
        restarting = aux.map { aux in RestartInjectingHost(docker) { try aux.restart() } }
    }

    func scheduleDaemonRestart(before operation: SimOperation, nth: Int, after: (operation: SimOperation, nth: Int)?) throws {
        guard let restarting else {
            throw HostError(.failed, "the shared test daemon is never restarted: use a DockerWorld on an AuxDaemon")
        }
        restarting.schedule(before: operation, nth: nth, after: after)
    }

    var daemonRestarts: [String] { restarting?.restarts ?? [] }

    func image(_ variant: String) throws -> (reference: String, id: String) {
        // A fresh tag per test on the shared test image: removing it never removes the image.
        let reference = "caisson-conf/app:\(variant)-\(prefix)"
        try docker.client.tagImage("caisson-test/app:\(variant)", as: reference)
        tags.append(reference)
        let info = try #require(try docker.inspectImage(reference))
        return (reference, info.id)
    }

    func runService(name: String, reference: String, restartPolicy: String) throws {
        try createIdle(name: name, reference: reference, restart: restartPolicy)
        try docker.startContainer(name)
    }

    func createIdle(name: String, reference: String) throws {
        try createIdle(name: name, reference: reference, restart: "no")
    }

    private func createIdle(name: String, reference: String, restart: String) throws {
        _ = try docker.client.createContainer(name: name, body: [
            "Image": .string(reference),
            "Labels": ["io.caisson.test.run": .string(prefix)],
            "HostConfig": ["RestartPolicy": ["Name": .string(restart)]],
        ])
    }

    private var composeDir: String?

    func runCompose(project: String, reference: String) throws -> ComposeTarget {
        let dir = NSTemporaryDirectory() + "caisson-conf-\(project)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        composeDir = dir
        // On a private daemon, no network: its user networks would take subnets from the same
        // default pools as the shared daemon's (a daemon does not see the other's bridges).
        try """
        services:
          app:
            image: \(reference)
            pull_policy: never
            restart: unless-stopped
        \(dockerHost == nil ? "" : "    network_mode: none\n")
        """.write(toFile: dir + "/compose.yaml", atomically: true, encoding: .utf8)
        let r = try RealDocker.docker(["compose", "-p", project, "-f", dir + "/compose.yaml", "up", "-d"], dockerHost: dockerHost)
        try #require(r.status == 0, "compose up: \(r.stderr)")
        return ComposeTarget(project: project, file: dir + "/compose.yaml", service: "app")
    }

    func settle(name: String) {
        RealDocker.waitUntil(seconds: 20) {
            guard let c = try? docker.inspectContainer(name) else { return false }
            return c.isRunning && (c.health == .healthy || c.health == .none)
        }
    }

    func names(prefix: String) -> [String] { RealDocker.containerNames(prefix: prefix, on: docker.client) }

    func cleanup() {
        if let dir = composeDir {
            _ = try? RealDocker.docker(["compose", "-p", prefix, "-f", dir + "/compose.yaml", "down", "-t", "1"], dockerHost: dockerHost)
            try? FileManager.default.removeItem(atPath: dir)
        }
        RealDocker.removeContainers(prefix: prefix, on: docker.client)
        for tag in tags { _ = try? docker.client.removeImage(tag) }
        // The machine's pin tags (caisson/<service>:rollback-…) for our service names.
        if let images = try? RealDocker.docker(["images", "--format", "{{.Repository}}:{{.Tag}}"], dockerHost: dockerHost) {
            for ref in images.stdout.split(separator: "\n") where ref.contains(prefix) {
                _ = try? docker.client.removeImage(String(ref))
            }
        }
    }
}

@Suite("Conformance: SimulatedHost and DockerHost agree", .serialized)
struct ConformanceTests {
    static let health = (timeout: 15, poll: 1, stable: 5)

    /// Runs `scenario` on `world` and reports what an observer sees.
    static func run(_ scenario: ConformanceScenario, on world: any ConformanceWorld, service: String, index: Int) throws -> ConformanceOutcome {
        let old = try world.image(scenario.oldVariant)
        let new = try world.image(scenario.newVariant)
        let compose: ComposeTarget? = scenario.mode == .compose
            ? try world.runCompose(project: service, reference: old.reference) : nil
        let plan = UpdateMachine.Plan(
            updateID: "c0ffee\(String(format: "%02d", index))-0000-4000-8000-000000000001",
            candidateReleaseID: "cr-conf", validationAttemptID: nil,
            service: ServiceSpec(name: service, serviceRevision: "\(service)-v1", platform: "linux/amd64", runtimeMode: scenario.mode,
                                 docker: compose == nil ? DockerTarget(containerName: service, imageReference: old.reference) : nil,
                                 compose: compose,
                                 health: HealthPolicy(kind: scenario.health, timeoutSecs: scenario.healthTimeoutSecs ?? health.timeout,
                                                      pollIntervalSecs: health.poll, stableSecs: health.stable)),
            targetImageReference: new.reference, targetImageID: new.id, packageVersion: "2.0.0",
            stopGraceSecs: scenario.stopGraceSecs)
        var machine = UpdateMachine(plan: plan, startedAt: world.clock.timestamp())
        let intruder = scenario.twist == .backupNameTaken ? machine.backupName : machine.stagingName
        // Compose names the container <project>-<service>-1.
        let observed = compose == nil ? service : "\(service)-app-1"
        if compose != nil {
            world.settle(name: observed)
        } else if scenario.twist != .serviceMissing {
            try world.runService(name: service, reference: old.reference, restartPolicy: scenario.restartPolicy)
            world.settle(name: service)
        }
        if scenario.twist == .stagingNameTaken || scenario.twist == .backupNameTaken {
            try world.createIdle(name: intruder, reference: old.reference)
        }
        if let restart = scenario.daemonRestart {
            try world.scheduleDaemonRestart(before: restart.operation, nth: restart.nth, after: scenario.restartAfter)
        }
        let journal = InMemoryJournal()
        let driver = UpdateDriver(host: world.host, journal: journal, clock: world.clock)
        let attempt = try driver.run(&machine)

        let all = try compose.map { try world.host.composeContainers($0) } ?? [try world.host.inspectContainer(service)].compactMap { $0 }
        let current = all.first
        var outcome = ConformanceOutcome(status: attempt.status, runs: .none, running: current?.isRunning ?? false,
                                         count: all.count, health: attempt.healthCheck?.outcome)
        #expect(compose == nil || current?.name == observed)
        if let c = current {
            outcome.runs = c.imageID == new.id ? .new : c.imageID == old.id ? .old : .other
        }
        let ours = world.names(prefix: service + "-caisson-")
        let planted = scenario.twist == .stagingNameTaken || scenario.twist == .backupNameTaken
        if planted { outcome.intruderKept = ours.contains(intruder) }
        outcome.leftovers = ours.filter { !planted || $0 != intruder }
        outcome.effects = journal.entries.filter { $0.updateID == plan.updateID && $0.entry.phase == .outcome }.map { e in
            let d = e.entry.detail
            let result = d == "ok" ? "ok" : d.hasPrefix("created ") ? "created" : String(d.prefix { $0 != ":" })
            return "\(e.entry.step)=\(result)"
        }
        // The journal agrees with the outcome.
        #expect(attempt.status.isTerminal)
        #expect(journal.attempts.count == 1)
        return outcome
    }

    @Test("same outcome on both hosts", arguments: ConformanceHost.allCases, ConformanceScenario.all)
    func scenario(_ kind: ConformanceHost, _ scenario: ConformanceScenario) throws {
        let index = ConformanceScenario.all.firstIndex { $0.name == scenario.name } ?? 0
        let service = "caisson-conf-\(RealDocker.runID)-\(index)"
        let world: any ConformanceWorld
        switch kind {
        case .simulator:
            world = SimulatorWorld()
        case .docker:
            guard RealDocker.usable("conformance scenario '\(scenario.name)' on Docker") else { return }
            world = DockerWorld(prefix: service)
        }
        defer { world.cleanup() }
        let outcome = try Self.run(scenario, on: world, service: service, index: index)
        #expect(outcome == scenario.expected, "\(kind.rawValue): \(scenario.name): got \(outcome), want \(scenario.expected)")
        if kind == .docker {
            // Step for step: the simulator must issue the same side effects with the same results.
            let simulated = try Self.run(scenario, on: SimulatorWorld(), service: service, index: index)
            #expect(outcome.effects == simulated.effects, "\(scenario.name): Docker did \(outcome.effects), the simulator \(simulated.effects)")
        }
    }
}
