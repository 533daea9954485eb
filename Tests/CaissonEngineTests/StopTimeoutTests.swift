import CaissonCore
import CaissonSimulator
import Testing

/// Issue 10 item 3 / issue 17 item 2: a container's own stop timeout. The simulator models a
/// process that needs time after SIGTERM to flush its data (`io.caisson.sim.flush_secs`) and
/// records a SIGKILL that comes before the flush ends; an update must never cause one.
@Suite("Stop timeout and slow-flushing containers")
struct StopTimeoutTests {
    typealias F = SimFixture

    static func flushingHost(flushSecs: Int, stopTimeoutSecs: Int) throws -> SimulatedHost {
        let host = SimulatedHost(seed: 3)
        try host.addImage(id: F.v1, tags: ["app:1"], config: F.config(health: "healthy", extra: [SimStopMode.flushLabelKey: String(flushSecs)]))
        try host.runContainer(name: "app", imageReference: "app:1", stopTimeoutSecs: stopTimeoutSecs)
        return host
    }

    // MARK: The model

    @Test func aStopLongEnoughLetsTheFlushEnd() throws {
        let host = try Self.flushingHost(flushSecs: 15, stopTimeoutSecs: 30)
        let t0 = host.clock.nowMillis
        try host.stopContainer("app", graceSecs: 30)
        #expect(host.clock.nowMillis == t0 + 15_000)
        #expect(host.container("app")?.exitCode == 0)
        #expect(host.flushKills == [])
    }

    @Test func aShorterStopKillsMidFlushAndIsRecorded() throws {
        let host = try Self.flushingHost(flushSecs: 15, stopTimeoutSecs: 30)
        let t0 = host.clock.nowMillis
        try host.stopContainer("app", graceSecs: 10)
        #expect(host.clock.nowMillis == t0 + 10_000)
        #expect(host.container("app")?.exitCode == 137)
        let kill = try #require(host.flushKills.first)
        #expect(kill.name == "app" && kill.graceMillis == 10_000 && kill.flushMillis == 15_000 && kill.cause == "stop")
    }

    @Test func aNegativeGraceMeansTheContainersOwnStopTimeout() throws {
        let host = try Self.flushingHost(flushSecs: 15, stopTimeoutSecs: 30)
        try host.stopContainer("app", graceSecs: -1)
        #expect(host.flushKills == [])
        #expect(host.container("app")?.exitCode == 0)
    }

    @Test func forceRemovingARunningFlusherIsAKill() throws {
        let host = try Self.flushingHost(flushSecs: 5, stopTimeoutSecs: 30)
        try host.removeContainer("app")
        #expect(host.flushKills.map(\.cause) == ["remove"])
        // A stopped one has nothing left to flush.
        let other = try Self.flushingHost(flushSecs: 5, stopTimeoutSecs: 30)
        try other.stopContainer("app", graceSecs: 30)
        try other.removeContainer("app")
        #expect(other.flushKills == [])
    }

    @Test func theDaemonStopsWithTheContainersStopTimeout() throws {
        let ok = try Self.flushingHost(flushSecs: 15, stopTimeoutSecs: 30)
        ok.restartDaemon(.graceful)
        #expect(ok.flushKills == [])
        let short = try Self.flushingHost(flushSecs: 15, stopTimeoutSecs: 10)
        short.restartDaemon(.graceful)
        #expect(short.flushKills.map(\.cause) == ["daemon"])
    }

    @Test func inspectReportsTheStopTimeout() throws {
        let host = try Self.flushingHost(flushSecs: 15, stopTimeoutSecs: 30)
        #expect(try host.inspectContainer("app")?.stopTimeoutSecs == 30)
        #expect(try host.inspectContainer("app")?.stopGraceSecs == 30)
    }

    // MARK: Updates

    static let configs: [UpdateScenario.Config] = {
        var out: [UpdateScenario.Config] = []
        for mode in RuntimeMode.allCases {
            for b in ["healthy", "unhealthy", "crash"] {
                out.append(UpdateScenario.Config(mode: mode, healthKind: .containerHealth, newBehaviour: b,
                                                 stopTimeoutSecs: 30, flushSecs: 15))
            }
        }
        return out
    }()

    /// A `--stop-timeout 30` service that needs 15 s to flush: the update stops it with its own
    /// timeout (it used to get 10 s and lose its data), and the restore stops the failed new
    /// container gracefully instead of force-removing it.
    @Test("an update never kills a container before its flush", arguments: configs)
    func updateGivesTheContainerItsStopTimeout(_ config: UpdateScenario.Config) throws {
        let s = UpdateScenario(config, recordTrace: true)
        let a = try #require(s.run())
        #expect(s.violations() == [], "\(s.host.trace.suffix(30))")
        #expect(s.host.flushKills == [])
        #expect(a.status == (config.newBehaviour == "healthy" ? .succeeded : .rolledBack))
        if config.mode == .docker {
            // The previous container was stopped with its own 30 s, not 10 s.
            let stops = s.host.trace.filter { $0.contains(" stopContainer ") }
            #expect(stops.first?.contains(" 30 ") == true, "\(stops)")
        }
    }

    @Test("faults and crashes never kill a flushing container either", arguments: configs.filter { $0.mode == .docker })
    func faultsAndCrashes(_ config: UpdateScenario.Config) throws {
        let clean = UpdateScenario(config)
        clean.run()
        for index in 0..<clean.host.callCount {
            for kind in [FaultKind.fail, .failAfterApplying, .timeout(millis: 30_000), .daemonRestart] {
                let s = UpdateScenario(config)
                s.run(faults: FaultPlan(rules: [.atCall(index, kind)]))
                #expect(s.violations() == [], "fault \(kind) at call \(index)")
            }
        }
        for point in 0..<clean.journal.writeCount {
            let s = UpdateScenario(config)
            s.run(crashAtWrite: point)
            #expect(s.violations() == [], "crash at write \(point)")
        }
    }

    /// `--restart always`: a daemon restart between the commit's look at the backup and its
    /// removal brings the backup back up. It is stopped with its stop timeout (the remove never
    /// kills: it is refused while the container runs), not SIGKILLed mid-flush.
    @Test(arguments: [FaultKind.daemonRestart, .daemonCrash])
    func aBackupBroughtBackByADaemonRestartIsStoppedNotKilled(_ kind: FaultKind) throws {
        let config = UpdateScenario.Config(mode: .docker, healthKind: .containerHealth, newBehaviour: "healthy",
                                           restartPolicy: "always", stopTimeoutSecs: 30, flushSecs: 15)
        let clean = UpdateScenario(config)
        clean.run()
        let remove = try #require(clean.host.calls.last { $0.operation == .removeContainer })
        let s = UpdateScenario(config)
        let a = try #require(s.run(faults: FaultPlan(rules: [.atCall(remove.index, kind)])))
        #expect(a.status == .succeeded)
        #expect(s.host.flushKills == [], "\(s.host.flushKills)")
        #expect(s.violations() == [])
        #expect(s.host.allContainers.map(\.name) == ["app"])
    }

    /// The plan override still wins (tests use it to keep a stubborn container's stop short).
    @Test func thePlansOverrideWins() throws {
        let s = UpdateScenario(UpdateScenario.Config(mode: .docker, healthKind: .running, stopTimeoutSecs: 30), recordTrace: true)
        var plan = s.plan
        plan.stopGraceSecs = 3
        var machine = UpdateMachine(plan: plan, startedAt: s.host.clock.timestamp())
        _ = try UpdateDriver(host: s.host, journal: s.journal, clock: s.host.clock).run(&machine)
        #expect(s.host.trace.first { $0.contains(" stopContainer ") }?.contains(" 3 ") == true)
    }
}
