import CaissonCore
import CaissonSimulator
import Testing

@Suite("Simulator: health and restart policies over virtual time")
struct SimulatorHealthTests {
    typealias F = SimFixture

    /// Health (and status) of container `app` at each virtual time.
    static func timeline(_ host: SimulatedHost, at times: [Int64]) throws -> [String] {
        var out: [String] = []
        for t in times {
            host.clock.advance(to: t)
            let c = try #require(try host.inspectContainer("app"))
            out.append(c.status.rawValue + "/" + c.health.rawValue)
        }
        return out
    }

    @Test(arguments: [
        ("healthy", ["running/starting", "running/starting", "running/healthy", "running/healthy"]),
        ("unhealthy", ["running/starting", "running/starting", "running/starting", "running/unhealthy"]),
        ("never-ready", ["running/starting", "running/starting", "running/starting", "running/starting"]),
        ("healthy:0.5", ["running/starting", "running/healthy", "running/healthy", "running/healthy"]),
    ])
    func healthTimelinePerLabel(label: String, expected: [String]) throws {
        let host = try F.hostWithApp(health: label)
        #expect(try Self.timeline(host, at: [0, 1999, 2000, 3_600_000]) == expected)
    }

    @Test func defaultWithAHealthcheckIsHealthyAfterTwoSeconds() throws {
        let host = try F.hostWithApp()
        #expect(try Self.timeline(host, at: [1000, 2000]) == ["running/starting", "running/healthy"])
    }

    @Test func withoutAHealthcheckHealthIsNoneAndTheContainerJustRuns() throws {
        for label in [nil, "unhealthy", "never-ready", "flap"] {
            let host = try F.hostWithApp(health: label, healthcheck: false)
            #expect(try Self.timeline(host, at: [0, 10_000, 100_000]) == Array(repeating: "running/none", count: 3))
        }
    }

    @Test func flapAlternates() throws {
        let host = try F.hostWithApp(health: "flap")
        #expect(try Self.timeline(host, at: [1000, 2000, 4999, 5000, 7999, 8000, 11_000])
                == ["running/starting", "running/healthy", "running/healthy", "running/unhealthy",
                    "running/unhealthy", "running/healthy", "running/unhealthy"])
    }

    @Test func crashWithoutRestartPolicyExitsOnceWithCodeOne() throws {
        let host = try F.hostWithApp(health: "crash")
        // Like the real caisson-test/app:crash image: healthy for a moment, then dead.
        #expect(try Self.timeline(host, at: [1999, 2999, 3000, 60_000])
                == ["running/starting", "running/healthy", "exited/unhealthy", "exited/unhealthy"])
        let c = try #require(try host.inspectContainer("app"))
        #expect(c.exitCode == 1 && c.restartCount == 0)
    }

    @Test func crashTimeAndExitCodeComeFromTheTestImageLabels() throws {
        let host = SimulatedHost(seed: 2)
        try host.addImage(id: F.v1, tags: ["caisson-test/app:crash"], config: F.config(
            health: "crash", extra: ["io.caisson.sim.crash_after_secs": "5", "io.caisson.sim.exit_code": "3"]))
        try host.runContainer(name: "app", imageReference: "caisson-test/app:crash")
        #expect(try Self.timeline(host, at: [4999, 5000]) == ["running/healthy", "exited/unhealthy"])
        #expect(host.container("app")?.exitCode == 3)
        #expect(SimBehaviour.from(labels: [SimBehaviour.labelKey: "crash:2", SimBehaviour.crashAfterLabelKey: "9"])
                == .crash(afterMillis: 2000, exitCode: 1))      // an explicit suffix wins
    }

    @Test func healthcheckNoneLabelMeansNoHealth() throws {
        let host = SimulatedHost(seed: 2)
        try host.addImage(id: F.v1, tags: ["app:nohealth"], config: F.config(health: "healthy", extra: ["io.caisson.sim.healthcheck": "none"]))
        try host.runContainer(name: "app", imageReference: "app:nohealth")
        #expect(try Self.timeline(host, at: [0, 5000]) == ["running/none", "running/none"])
    }

    @Test func unknownLabelValuesFallBackToTheDefault() {
        #expect(SimBehaviour.from(labels: [SimBehaviour.labelKey: "sometimes"]) == .default)
        #expect(SimBehaviour.from(labels: [SimBehaviour.labelKey: "crash:-1"]) == .default)
        #expect(SimBehaviour.parse("never-ready:3") == nil)
        #expect(SimBehaviour.parse("flap:4") == .flap(periodMillis: 4000))
    }

    @Test func crashWithRestartAlwaysRestartsWithDockerBackoff() throws {
        let host = try F.hostWithApp(health: "crash", policy: .always)
        let first = try #require(host.container("app")).startedAt
        host.clock.advance(to: 3000)
        var c = try #require(try host.inspectContainer("app"))
        #expect(c.status == .restarting && c.restartCount == 1 && c.exitCode == 1 && c.health == .unhealthy)
        host.clock.advance(to: 3100)                        // back-off 100 ms
        c = try #require(try host.inspectContainer("app"))
        #expect(c.status == .running && c.restartCount == 1 && c.health == .starting && c.exitCode == 0)
        #expect(c.startedAt != first)
        host.clock.advance(to: 6100)                        // crashes again 3 s later
        #expect(try host.inspectContainer("app")?.status == .restarting)
        host.clock.advance(to: 6299)                        // back-off doubled to 200 ms
        #expect(try host.inspectContainer("app")?.status == .restarting)
        host.clock.advance(to: 6300)
        c = try #require(try host.inspectContainer("app"))
        #expect(c.status == .running && c.restartCount == 2)
    }

    @Test func onFailureWithALimitGivesUp() throws {
        let host = try F.hostWithApp(health: "crash", policy: .onFailure(maxRetries: 2))
        host.clock.advance(to: 600_000)
        let c = try #require(try host.inspectContainer("app"))
        #expect(c.status == .exited && c.restartCount == 2 && c.exitCode == 1)
    }

    @Test(arguments: [(SimRestartPolicy.no, false), (.always, true), (.unlessStopped, true), (.onFailure(maxRetries: 0), false)])
    func cleanExitRestartsOnlyUnderAlwaysAndUnlessStopped(policy: SimRestartPolicy, restarts: Bool) throws {
        let host = try F.hostWithApp(health: "exit:1", policy: policy)
        host.clock.advance(to: 1050)
        let c = try #require(try host.inspectContainer("app"))
        #expect(c.exitCode == 0)
        #expect((c.status == .restarting) == restarts)
        #expect(c.restartCount == (restarts ? 1 : 0))
    }

    @Test func manualStartResetsRestartCountAndStopCancelsAPendingRestart() throws {
        let host = try F.hostWithApp(health: "crash", policy: .always)
        host.clock.advance(to: 3050)
        #expect(try host.inspectContainer("app")?.status == .restarting)
        try host.stopContainer("app", graceSecs: 10)
        host.clock.advance(to: 60_000)
        var c = try #require(try host.inspectContainer("app"))
        #expect(c.status == .exited && c.exitCode == 1 && c.restartCount == 1)
        try host.startContainer("app")
        c = try #require(try host.inspectContainer("app"))
        #expect(c.status == .running && c.restartCount == 0)
    }

    @Test func healthGoesBackToStartingOnRestart() throws {
        let host = try F.hostWithApp(health: "unhealthy")
        host.clock.advance(to: 4000)
        #expect(try host.inspectContainer("app")?.health == .unhealthy)
        try host.stopContainer("app", graceSecs: 10)
        #expect(try host.inspectContainer("app")?.health == .unhealthy)   // Docker: monitor stopped
        try host.startContainer("app")
        #expect(try host.inspectContainer("app")?.health == .starting)
        host.clock.sleep(millis: 3000)
        #expect(try host.inspectContainer("app")?.health == .unhealthy)
    }

    @Test func stopOfAnIgnoringProcessThatCrashesDuringTheGraceEndsAtTheCrash() throws {
        let host = try F.hostWithApp(health: "crash", stop: "ignore-sigterm", policy: .always)
        host.clock.advance(to: 1000)
        try host.stopContainer("app", graceSecs: 10)
        #expect(host.clock.nowMillis == 3000)
        let c = try #require(try host.inspectContainer("app"))
        #expect(c.status == .exited && c.exitCode == 1 && c.restartCount == 0)   // no restart after a user stop
    }

    @Test func evaluationIsLazyAndPathIndependent() throws {
        let oneJump = try F.hostWithApp(health: "crash", policy: .always)
        let smallSteps = try F.hostWithApp(health: "crash", policy: .always)
        oneJump.clock.advance(to: 3_600_000)
        for _ in 0..<3600 {
            smallSteps.clock.sleep(millis: 1000)
            _ = try smallSteps.inspectContainer("app")
        }
        let a = try #require(oneJump.container("app"))
        let b = try #require(smallSteps.container("app"))
        #expect(a == b)
        #expect(a.restartCount > 50)
    }
}
