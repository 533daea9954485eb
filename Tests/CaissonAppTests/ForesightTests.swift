@testable import CaissonApp
import CaissonCore
import CaissonSimulator
import Foundation
import Testing

/// Issue 10 item 12: what the plan says and what is refused before any downtime, on the
/// simulator (the application layer, with a host the test provisions).
@Suite struct ForesightTests {
    static let healthy = ImageConfig(labels: ["io.caisson.sim.health": "healthy"], hasHealthcheck: true)
    static let noHealthcheck = ImageConfig(labels: ["io.caisson.sim.health": "healthy"], hasHealthcheck: false)

    static func app() -> Application {
        var o = AppOptions()
        o.stateDir = FileManager.default.temporaryDirectory.appendingPathComponent("caisson-app-\(UUID().uuidString)").path
        o.host = .sim
        return Application(options: o)
    }

    static func docker(_ kind: HealthKind = .containerHealth) -> ServiceSpec {
        ServiceSpec(name: "web", serviceRevision: "web-v1", platform: "linux/amd64", runtimeMode: .docker,
                    docker: DockerTarget(containerName: "web", imageReference: "example/web:current"),
                    health: HealthPolicy(kind: kind))
    }

    static let target = ComposeTarget(project: "stack", file: "/srv/stack/compose.yaml", service: "api")
    static func compose(_ kind: HealthKind = .containerHealth) -> ServiceSpec {
        ServiceSpec(name: "api", serviceRevision: "api-v1", platform: "linux/amd64", runtimeMode: .compose,
                    compose: target, health: HealthPolicy(kind: kind))
    }

    static func host(labels: [String: String] = [:]) throws -> SimulatedHost {
        let h = SimulatedHost(seed: 1, recordTrace: false)
        var config = healthy
        for (k, v) in labels { config.labels[k] = v }
        _ = try h.addImage(id: SimulatedHost.fakeImageID("old"), tags: ["example/web:current", "example/api:current"], config: config)
        return h
    }

    @Test func aMissingContainerOrComposeServiceIsRefusedBeforeAnything() throws {
        let h = try Self.host()
        let app = Self.app()
        let d = app.foresee(service: Self.docker(), image: Self.healthy, reference: "example/web:2", flags: .init(), host: h)
        #expect(d.preflight?.code == "docker.service_inspect_failed")
        let c = app.foresee(service: Self.compose(), image: Self.healthy, reference: "example/api:2", flags: .init(), host: h)
        #expect(c.preflight?.code == "compose.image_lookup_failed", "\(c)")
        #expect(h.allContainers.isEmpty)
    }

    @Test func aStoppedComposeServiceNeedsStart() throws {
        let h = try Self.host()
        _ = try h.provisionCompose(target: Self.target, imageReference: "example/api:current", start: false)
        let app = Self.app()
        #expect(app.foresee(service: Self.compose(), image: Self.healthy, reference: "example/api:2", flags: .init(), host: h)
            .preflight?.code == "update.service_stopped")
        var flags = Application.LoadFlags()
        flags.start = true
        #expect(app.foresee(service: Self.compose(), image: Self.healthy, reference: "example/api:2", flags: flags, host: h) == .init())
    }

    @Test func containerHealthWithoutAHealthcheckIsRefused() throws {
        let h = try Self.host()
        _ = try h.runContainer(name: "web", imageReference: "example/web:current")
        let app = Self.app()
        let f = app.foresee(service: Self.docker(), image: Self.noHealthcheck, reference: "example/web:2", flags: .init(), host: h)
        #expect(f.refusal?.code == "image.healthcheck_missing")
        #expect(f.refusal?.message.contains("example/web:2 has no HEALTHCHECK") == true)
        #expect(app.foresee(service: Self.docker(), image: Self.healthy, reference: "example/web:2", flags: .init(), host: h) == .init())
        #expect(app.foresee(service: Self.docker(.running), image: Self.noHealthcheck, reference: "example/web:2", flags: .init(), host: h) == .init())
        // A stopped service that stays stopped is not health-checked: nothing to foresee.
        try h.stopContainer("web", graceSecs: 10)
        #expect(app.foresee(service: Self.docker(), image: Self.noHealthcheck, reference: "example/web:2", flags: .init(), host: h) == .init())
    }

    static func plan(_ app: Application, _ h: SimulatedHost, state: ServiceState? = nil, start: Bool = false) throws -> Application.LoadPlan {
        let (m, issues) = Manifest.parse(Array("""
            format_version = 1
            package_type = "service"
            package_version = "2.0.0"
            created_at = "2026-03-16T18:30:00Z"
            [target]
            service = "web"
            service_revision = "web-v1"
            platform = "linux/amd64"
            [image]
            reference = "example/web:2.0.0"
            """.utf8))
        #expect(issues.isEmpty)
        let payload = ImagePayload(path: "/x.edgepkg", offset: 0, length: 1024, reference: "example/web:2.0.0",
                                   expectedImageID: SimulatedHost.fakeImageID("new"), config: Self.healthy)
        return try app.makePlan(service: Self.docker(), manifest: try #require(m), payload: payload, state: state, host: h, start: start)
    }

    /// No record of Caisson's: the plan reads the running image's OCI version label.
    @Test func thePlanReadsTheVersionLabelWhenCaissonHasNoRecord() throws {
        let h = try Self.host(labels: ["org.opencontainers.image.version": "1.4.2"])
        _ = try h.runContainer(name: "web", imageReference: "example/web:current")
        let app = Self.app()
        let p = try Self.plan(app, h)
        #expect(p.currentVersion == "1.4.2")
        #expect(p.currentVersionSource?.contains("org.opencontainers.image.version") == true)
        #expect(!p.staysStopped)
        // Caisson's own record wins.
        let recorded = try Self.plan(app, h, state: ServiceState(serviceName: "web", highestPackageVersion: "1.5.0", updatedAt: "2026-01-01T00:00:00Z"))
        #expect(recorded.currentVersion == "1.5.0")
    }

    @Test func thePlanSaysAStoppedServiceStaysStopped() throws {
        let h = try Self.host()
        _ = try h.runContainer(name: "web", imageReference: "example/web:current", start: false)
        let app = Self.app()
        let p = try Self.plan(app, h)
        #expect(p.staysStopped)
        #expect(p.steps.contains { $0.contains("NOT started") })
        #expect(!p.steps.contains { $0.hasPrefix("health check") })
        let started = try Self.plan(app, h, start: true)
        #expect(!started.staysStopped)
        #expect(started.steps.contains { $0.hasPrefix("health check") })
    }
}
