import CaissonCore
import CaissonSimulator
import Testing

@Suite("Simulator: daemon restarts")
struct SimulatorDaemonRestartTests {
    typealias F = SimFixture

    enum Before: String, Sendable { case running, userStopped }

    @Test(arguments: [
        (SimRestartPolicy.no, Before.running, ContainerStatus.exited),
        (.no, .userStopped, .exited),
        (.always, .running, .running),
        (.always, .userStopped, .running),
        (.unlessStopped, .running, .running),
        (.unlessStopped, .userStopped, .exited),
        (.onFailure(maxRetries: 0), .running, .exited),      // stopped by the daemon with exit 0
        (.onFailure(maxRetries: 0), .userStopped, .exited),
    ])
    func outcomePerRestartPolicy(policy: SimRestartPolicy, before: Before, after: ContainerStatus) throws {
        let host = try F.hostWithApp(policy: policy)
        if before == .userStopped { try host.stopContainer("app", graceSecs: 10) }
        let startedBefore = try #require(host.container("app")).startedAt
        let t0 = host.clock.nowMillis
        host.restartDaemon()
        #expect(host.clock.nowMillis >= t0 + 1000)
        let c = try #require(try host.inspectContainer("app"))
        #expect(c.status == after)
        if after == .running {
            #expect(c.startedAt != startedBefore)
            #expect(c.health == .starting)
        }
        #expect(host.daemonRestartCount == 1)
    }

    /// scripts/README-docker.md quirk 14, measured on Docker 20.10 with the test images (which
    /// trap SIGTERM and exit 0).
    @Test(arguments: [
        (DaemonRestartKind.graceful, SimRestartPolicy.always, ContainerStatus.running, 0),
        (.graceful, .unlessStopped, .running, 0),
        (.graceful, .onFailure(maxRetries: 0), .exited, 0),
        (.graceful, .no, .exited, 0),
        (.crash, .always, .running, 0),
        (.crash, .unlessStopped, .exited, 0),
        (.crash, .onFailure(maxRetries: 0), .exited, 0),
        (.crash, .no, .exited, 0),
        (.powerCut, .always, .running, 0),
        (.powerCut, .unlessStopped, .running, 0),
        (.powerCut, .onFailure(maxRetries: 0), .running, 0),
        (.powerCut, .no, .exited, 255),
    ])
    func measuredDockerTable(kind: DaemonRestartKind, policy: SimRestartPolicy, after: ContainerStatus, exitCode: Int) throws {
        let host = try F.hostWithApp(policy: policy)
        host.restartDaemon(kind)
        let c = try #require(host.container("app"))
        #expect(c.status == after)
        #expect(c.exitCode == exitCode)
    }

    @Test func daemonCrashFaultLeavesUnlessStoppedDown() throws {
        let host = try F.hostWithApp(policy: .unlessStopped)
        host.faultPlan = FaultPlan(rules: [.atCall(0, .daemonCrash)])
        #expect(try host.inspectContainer("app")?.status == .exited)
        #expect(host.calls.first?.fault == .daemonCrash)
        #expect(!FaultKind.all.contains(.daemonCrash) && FaultKind.extended.contains(.daemonCrash))
    }

    @Test func onFailureComesBackAfterANonZeroExit() throws {
        // A process killed after ignoring SIGTERM exits 137: Docker restores it (moby#35166).
        let host = try F.hostWithApp(stop: "ignore-sigterm", policy: .onFailure(maxRetries: 0))
        try host.stopContainer("app", graceSecs: 1)
        #expect(host.container("app")?.exitCode == 137)
        host.restartDaemon()
        #expect(host.container("app")?.status == .running)
    }

    @Test func onFailureThatExhaustedItsRetriesStaysDown() throws {
        let host = try F.hostWithApp(health: "crash", policy: .onFailure(maxRetries: 1))
        host.clock.advance(to: 60_000)
        #expect(host.container("app")?.status == .exited)
        host.restartDaemon()
        #expect(host.container("app")?.status == .exited)
    }

    @Test func aCreatedButNeverStartedContainerStaysCreated() throws {
        let host = try F.hostWithApp(policy: .always)
        _ = try host.createContainer(name: "app-next", cloning: "app", imageID: F.v1, labels: [:])
        host.restartDaemon()
        #expect(host.container("app-next")?.status == .created)
        #expect(host.container("app")?.status == .running)
    }

    @Test func shutdownWaitsForProcessesIgnoringSigterm() throws {
        let host = try F.hostWithApp(stop: "ignore-sigterm", policy: .always)
        host.restartDaemon()
        #expect(host.clock.nowMillis == 10_000 + 1000)       // StopTimeout 10 s, then the restart
        #expect(host.container("app")?.status == .running)
    }

    @Test func restoredContainersRestartCountIsReset() throws {
        let host = try F.hostWithApp(health: "crash", policy: .always)
        host.clock.advance(to: 7000)
        #expect((host.container("app")?.restartCount ?? 0) >= 2)
        host.restartDaemon()
        let c = try #require(host.container("app"))
        #expect(c.status == .running && c.restartCount == 0)
    }

    @Test func twoContainersOnOnePortOnlyOneComesBack() throws {
        // The classic: an old container kept for rollback with restart=always returns after a
        // daemon restart and fights the new one for the port (moby#12118).
        let host = try F.hostWithApp(policy: .always)
        _ = try host.createContainer(name: "app-next", cloning: "app", imageID: F.v1, labels: [:])
        try host.stopContainer("app", graceSecs: 10)
        try host.startContainer("app-next")
        host.restartDaemon()
        let running = host.allContainers.filter(\.isRunning)
        #expect(running.count == 1)
        let loser = try #require(host.allContainers.first { !$0.isRunning })
        #expect(loser.exitCode == 128)
    }
}

@Suite("Simulator: determinism across processes")
struct SimulatorCrossProcessTests {
    typealias F = SimFixture

    /// Crash loops of containers fighting for host ports, with daemon restarts. Who wins a port
    /// depends only on virtual time and container ids, never on dictionary order (which changes
    /// with each process's hash seed): these golden values pin that down.
    @Test func portFightsResolveTheSameWayInEveryProcess() throws {
        let host = SimulatedHost(seed: 42, recordTrace: false)
        try host.addImage(id: F.v1, tags: ["app:1"], config: F.config(health: "crash:1"))
        for i in 0..<8 {
            _ = try? host.runContainer(name: "c\(i)", imageReference: "app:1", restartPolicy: .always, ports: ["\(8000 + i % 2):80"])
        }
        for step in 1...40 {
            host.clock.sleep(millis: 700)
            if step % 5 == 0 { _ = try? host.startContainer("c\(step % 8)") }
            if step == 20 { host.restartDaemon() }
        }
        let summary = host.allContainers.map { "\($0.name):\($0.status.rawValue):\($0.restartCount):\($0.exitCode)" }
        #expect(summary == Self.golden, "\(summary)")
    }

    static let golden = ["c0:running:0:0", "c1:exited:6:128", "c2:exited:5:128", "c3:restarting:3:1",
                         "c4:exited:5:128", "c5:exited:6:128", "c6:restarting:5:1", "c7:exited:1:128"]
}
