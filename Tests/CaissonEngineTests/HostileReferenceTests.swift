import CaissonCore
import CaissonSimulator
import Testing

/// Issue 10 items 8 and 9 against a host: the preflight's reference checks (Compose service
/// repositories, tags other containers were created from) and a Compose service that another
/// catalog service's container pretends to belong to.
@Suite("Hostile references and labels")
struct HostileReferenceTests {
    static let catalog: Catalog = {
        let text = """
        catalog_version = 1
        [[services]]
        name = "frontend"
        service_revision = "frontend-v1"
        platform = "linux/amd64"
        runtime_mode = "docker"
        [services.docker]
        container_name = "frontend"
        image_reference = "example/frontend:current"
        [[services]]
        name = "backend"
        service_revision = "backend-v1"
        platform = "linux/amd64"
        runtime_mode = "compose"
        [services.compose]
        project = "stack"
        file = "/srv/stack/compose.yaml"
        service = "backend"
        [[services]]
        name = "worker"
        service_revision = "worker-v1"
        platform = "linux/amd64"
        runtime_mode = "compose"
        [services.compose]
        project = "stack"
        file = "/srv/stack/compose.yaml"
        service = "worker"
        """
        return try! Catalog.parse(Array(text.utf8), path: "/srv/services.toml")
    }()

    /// frontend (docker), backend and worker (compose) running; a container `tools` outside the
    /// catalog created from `example/tools:1`, and `cron` from `example/backend:cron`.
    static func world() throws -> SimulatedHost {
        let host = SimulatedHost(seed: 11)
        for ref in ["example/frontend:current", "example/backend:current", "example/worker:current", "example/tools:1", "example/backend:cron"] {
            try host.addImage(id: SimulatedHost.fakeImageID(ref), tags: [ref], config: ImageConfig(labels: ["io.caisson.sim.health": "healthy"], hasHealthcheck: true))
        }
        try host.runContainer(name: "frontend", imageReference: "example/frontend:current")
        for s in ["backend", "worker"] {
            try host.provisionCompose(target: try #require(catalog.service(named: s)?.compose), imageReference: "example/\(s):current")
        }
        try host.runContainer(name: "tools", imageReference: "example/tools:1")
        try host.runContainer(name: "cron", imageReference: "example/backend:cron")
        return host
    }

    static func codes(_ service: String, _ reference: String) throws -> [String] {
        let host = try world()
        let spec = try #require(catalog.service(named: service))
        // As `package load` does: the host is asked only when validation accepted.
        let validation = ReferencePolicy.check(reference: reference, service: spec, catalog: catalog).map(\.code)
        if !validation.isEmpty { return validation }
        return try ReferencePolicy.checkOnHost(reference: reference, service: spec, catalog: catalog, host: host).map(\.code)
    }

    @Test("the preflight refuses references outside the service or held by others", arguments: [
        ("backend", "example/backend:2.0.0", [String]()),
        ("backend", "example/backend:current", []),                       // its own compose reference
        ("backend", "example/frontend:2.0.0", ["image.reference_outside_service"]),
        ("backend", "example/worker:current", ["image.reference_outside_service", "image.reference_in_use"]),
        ("backend", "example/backend:cron", ["image.reference_in_use"]),  // `cron` was created from it
        ("frontend", "example/frontend:2.0.0", []),
        ("frontend", "example/frontend:current", []),
        ("frontend", "example/tools:1", ["image.reference_outside_service"]),
        ("frontend", "example/backend:current", ["image.reference_outside_service"]),
        ("worker", "caisson-pin/worker:0123456789ab", ["image.reference_reserved"]),
    ])
    func preflight(_ service: String, _ reference: String, _ expected: [String]) throws {
        #expect(try Self.codes(service, reference) == expected, "\(service) \(reference)")
    }

    @Test func aHostThatCannotAnswerIsAnErrorNotAPass() throws {
        let host = try Self.world()
        host.faultPlan = FaultPlan(rules: [.on(.listContainers, .unreachable)])
        let spec = try #require(Self.catalog.service(named: "frontend"))
        #expect(throws: HostError.self) {
            try ReferencePolicy.checkOnHost(reference: "example/frontend:2.0.0", service: spec, catalog: Self.catalog, host: host)
        }
    }

    /// A frontend image labelled as compose service stack/app: Compose would take its container
    /// for the service's and recreate or remove it. Refused before anything changes.
    @Test(arguments: [HealthKind.running, .containerHealth])
    func aForeignComposeMemberIsRefusedAndLeftAlone(_ kind: HealthKind) throws {
        var config = UpdateScenario.Config(mode: .compose, healthKind: kind)
        config.hijacker = true
        let s = UpdateScenario(config)
        let a = try #require(s.run())
        #expect(a.status == .failed)
        #expect(a.issues.map(\.code) == ["compose.foreign_member"])
        #expect(s.violations() == [])
        #expect(s.host.callCount(of: .composeApply) == 0)
        #expect(s.host.container(UpdateScenario.hijackerName)?.isRunning == true)
    }

    /// Without the catalog's list the machine cannot tell: the other service's container is
    /// removed by the compose apply (what happened before the fix), and the checker says so.
    @Test func withoutTheListTheHijackerIsDestroyedAndTheCheckerSeesIt() throws {
        var config = UpdateScenario.Config(mode: .compose, healthKind: .running)
        config.hijacker = true
        let s = UpdateScenario(config)
        var plan = s.plan
        plan.foreignContainerNames = nil
        var machine = UpdateMachine(plan: plan, startedAt: s.host.clock.timestamp())
        _ = try UpdateDriver(host: s.host, journal: s.journal, clock: s.host.clock).run(&machine)
        #expect(s.violations().contains { $0.contains("was removed") || $0.contains("was not refused") })
    }

    @Test("faults and crashes never let the update touch the foreign member", arguments: [HealthKind.running, .containerHealth])
    func faultsAndCrashes(_ kind: HealthKind) throws {
        var config = UpdateScenario.Config(mode: .compose, healthKind: kind)
        config.hijacker = true
        let clean = UpdateScenario(config)
        clean.run()
        for index in 0..<clean.host.callCount {
            for fault in [FaultKind.fail, .failAfterApplying, .timeout(millis: 30_000), .daemonRestart] {
                let s = UpdateScenario(config)
                s.run(faults: FaultPlan(rules: [.atCall(index, fault)]))
                #expect(s.violations() == [], "\(fault) at \(index)")
                #expect(s.host.callCount(of: .composeApply) == 0)
            }
        }
    }
}
