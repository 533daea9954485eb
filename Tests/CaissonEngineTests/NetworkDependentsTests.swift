import CaissonCore
import CaissonSimulator
import Testing

/// Issue 10 item 7: containers sharing the service's network namespace, and a service that
/// itself runs in another container's namespace.
@Suite("Network namespace sharing")
struct NetworkDependentsTests {
    typealias F = SimFixture

    // MARK: The model (measured on Docker 20.10)

    static func hostWithDependent() throws -> SimulatedHost {
        let host = try F.hostWithApp()
        try host.runContainer(name: "side", imageReference: "app:1", networkMode: "container:app")
        return host
    }

    @Test func dockerStoresTheOwnersIDAndItsHostname() throws {
        let host = try Self.hostWithDependent()
        let app = try #require(host.container("app"))
        let side = try #require(host.simContainer("side"))
        #expect(side.config.networkMode == "container:" + app.id)
        #expect(side.config.hostname == String(app.id.prefix(12)))
        #expect(try host.inspectContainer("side")?.networkOwner == app.id)
        #expect(host.hasNetwork(named: "side"))
    }

    @Test func createRefusesAHostnameOrPortsInContainerMode() throws {
        let host = try F.hostWithApp()
        let e1 = simError { try host.runContainer(name: "xx", imageReference: "app:1", networkMode: "container:app", hostname: "x") }
        #expect(e1?.message == "conflicting options: hostname and the network mode")
        let e2 = simError { try host.runContainer(name: "yy", imageReference: "app:1", ports: ["9000:80"], networkMode: "container:app") }
        #expect(e2?.message == "conflicting options: port publishing and the container type network mode")
    }

    @Test func theDependentLosesItsNetworkWhenTheOwnersRunEnds() throws {
        let host = try Self.hostWithDependent()
        try host.stopContainer("app", graceSecs: 1)
        #expect(host.container("side")?.isRunning == true)
        #expect(!host.hasNetwork(named: "side"))
        #expect(host.containersWithoutNetwork.map(\.name) == ["side"])
        // It cannot start again while its owner is down, and rejoins once the owner runs.
        try host.stopContainer("side", graceSecs: 1)
        #expect(simError { try host.startContainer("side") }?.message.contains("cannot join network of a non running container") == true)
        try host.startContainer("app")
        try host.startContainer("side")
        #expect(host.hasNetwork(named: "side"))
    }

    @Test func theNameDoesNotFollowTheOwner() throws {
        // The swap: the name goes to a new container; the dependent still points at the old one.
        let host = try Self.hostWithDependent()
        try host.stopContainer("app", graceSecs: 1)
        try host.renameContainer("app", to: "app-old")
        try host.runContainer(name: "app", imageReference: "app:1")
        try host.stopContainer("side", graceSecs: 1)
        #expect(simError { try host.startContainer("side") } != nil)
    }

    @Test func aDaemonRestartBringsOwnersBackFirst() throws {
        let host = SimulatedHost(seed: 4)
        try host.addImage(id: F.v1, tags: ["app:1"], config: F.config(health: "healthy"))
        // A name sorting before its owner's.
        try host.runContainer(name: "zz-owner", imageReference: "app:1", restartPolicy: .always)
        try host.runContainer(name: "aa-dep", imageReference: "app:1", restartPolicy: .always, networkMode: "container:zz-owner")
        host.restartDaemon()
        #expect(host.container("aa-dep")?.isRunning == true)
        #expect(host.hasNetwork(named: "aa-dep"))
    }

    // MARK: Updates

    static func config(_ mode: RuntimeMode, _ behaviour: String, kind: HealthKind = .containerHealth) -> UpdateScenario.Config {
        var c = UpdateScenario.Config(mode: mode, healthKind: kind, newBehaviour: behaviour)
        c.dependent = true
        return c
    }

    static let configs: [UpdateScenario.Config] = RuntimeMode.allCases.flatMap { m in
        ["healthy", "unhealthy", "crash"].map { config(m, $0) }
    }

    @Test("dependents are recreated against the new container and restored on rollback", arguments: configs)
    func dependentsFollowTheService(_ config: UpdateScenario.Config) throws {
        let s = UpdateScenario(config, recordTrace: true)
        let a = try #require(s.run())
        #expect(s.violations() == [], "\(s.host.trace.suffix(20))")
        #expect(a.status == (config.newBehaviour == "healthy" ? .succeeded : .rolledBack), "\(a.issues)")
        #expect(s.host.containersWithoutNetwork == [])
    }

    @Test("without the go-ahead the update refuses before any change", arguments: RuntimeMode.allCases)
    func refusedWithoutTheFlag(_ mode: RuntimeMode) throws {
        var config = Self.config(mode, "healthy")
        config.dependentGoAhead = false
        let s = UpdateScenario(config)
        let plan = s.plan
        #expect(plan.recreateNetworkDependents == nil)
        var machine = UpdateMachine(plan: plan, startedAt: s.host.clock.timestamp())
        let a = try UpdateDriver(host: s.host, journal: s.journal, clock: s.host.clock).run(&machine)
        #expect(a.status == .failed)
        #expect(a.issues.map(\.code) == ["update.network_dependents"])
        #expect(a.issues.first?.message.contains("sidecar") == true)
        #expect(s.host.callCount(of: .stopContainer) + s.host.callCount(of: .composeApply) + s.host.callCount(of: .tagImage) == 0)
        #expect(s.violations() == [])
    }

    /// The Rust tool's way (swap the service, leave its dependents alone): the invariant sees
    /// the dependent cut off.
    @Test func swappingTheServiceAloneCutsTheDependentOff() throws {
        let s = UpdateScenario(Self.config(.compose, "healthy"))
        var plan = s.plan
        plan.composeNetworkDependents = nil
        var machine = UpdateMachine(plan: plan, startedAt: s.host.clock.timestamp())
        let a = try UpdateDriver(host: s.host, journal: s.journal, clock: s.host.clock).run(&machine)
        #expect(a.status == .succeeded)
        #expect(s.violations().contains { $0.contains("runs without its network") })
    }

    @Test("faults and crashes never cut a dependent off", arguments: configs.filter { $0.newBehaviour != "crash" })
    func faultsAndCrashes(_ config: UpdateScenario.Config) throws {
        let clean = UpdateScenario(config)
        clean.run()
        for index in 0..<clean.host.callCount {
            for kind in [FaultKind.fail, .failAfterApplying, .timeout(millis: 30_000), .daemonRestart, .daemonCrash] {
                let s = UpdateScenario(config)
                s.run(faults: FaultPlan(rules: [.atCall(index, kind)]))
                #expect(s.violations() == [], "\(kind) at call \(index)")
            }
        }
        for point in 0..<clean.journal.writeCount {
            for before in [false, true] {
                let s = UpdateScenario(config)
                s.run(crashAtWrite: point, crashBeforeWrite: before)
                #expect(s.violations() == [], "crash \(before ? "before" : "after") write \(point)")
            }
        }
    }

    /// A service that itself runs in another container's namespace: its clone must not carry the
    /// hostname Docker filled in (Docker refuses it: "conflicting options").
    @Test(arguments: ["healthy", "unhealthy"])
    func aServiceInContainerNetworkModeCanBeUpdated(_ behaviour: String) throws {
        var config = UpdateScenario.Config(mode: .docker, healthKind: .containerHealth, newBehaviour: behaviour)
        config.joinsNetwork = true
        let s = UpdateScenario(config)
        let a = try #require(s.run())
        #expect(a.status == (behaviour == "healthy" ? .succeeded : .rolledBack), "\(a.issues)")
        #expect(s.violations() == [])
        #expect(s.host.hasNetwork(named: "app"))
    }
}
