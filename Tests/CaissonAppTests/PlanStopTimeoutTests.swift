@testable import CaissonApp
import CaissonCore
import CaissonSimulator
import Foundation
import Testing

/// Issue 10 item 3: the plan shows the grace the current container gets between SIGTERM and
/// SIGKILL: its own `StopTimeout` (`--stop-timeout`, Compose `stop_grace_period`), else Docker's
/// default (10 s) when it has none.
@Suite struct PlanStopTimeoutTests {
    typealias F = ForesightTests

    @Test(arguments: [30, 3])
    func theDockerPlanShowsTheContainersOwnStopTimeout(_ secs: Int) throws {
        let h = try F.host()
        _ = try h.runContainer(name: "web", imageReference: "example/web:current", stopTimeoutSecs: secs)
        let p = try F.plan(F.app(), h)
        #expect(p.stopGraceSecs == secs)
        let stop = try #require(p.steps.first { $0.hasPrefix("stop web") })
        #expect(stop.contains("up to \(secs)s after SIGTERM: its own stop timeout"), "\(stop)")
    }

    @Test func anUnsetStopTimeoutShowsDockersDefault() throws {
        let h = try F.host()
        _ = try h.runContainer(name: "web", imageReference: "example/web:current", stopTimeoutSecs: nil)
        #expect(try h.inspectContainer("web")?.stopTimeoutSecs == nil)
        let p = try F.plan(F.app(), h)
        #expect(p.stopGraceSecs == ContainerInfo.defaultStopTimeoutSecs)
        let stop = try #require(p.steps.first { $0.hasPrefix("stop web") })
        #expect(stop.contains("up to 10s after SIGTERM: Docker's default stop timeout"), "\(stop)")
    }

    @Test func theComposePlanShowsTheServicesStopTimeout() throws {
        let h = try F.host()
        _ = try h.provisionCompose(target: F.target, imageReference: "example/api:current", stopTimeoutSecs: 45)
        let (m, issues) = Manifest.parse(Array("""
            format_version = 1
            package_type = "service"
            package_version = "2.0.0"
            created_at = "2026-03-16T18:30:00Z"
            [target]
            service = "api"
            service_revision = "api-v1"
            platform = "linux/amd64"
            [image]
            reference = "example/api:2.0.0"
            """.utf8))
        #expect(issues.isEmpty)
        let payload = ImagePayload(path: "/x.edgepkg", offset: 0, length: 1024, reference: "example/api:2.0.0",
                                   expectedImageID: SimulatedHost.fakeImageID("new"), config: F.healthy)
        let p = try F.app().makePlan(service: F.compose(), manifest: try #require(m), payload: payload, state: nil, host: h)
        #expect(p.stopGraceSecs == 45)
        #expect(p.steps.contains { $0.contains("up to 45s after SIGTERM: its stop timeout") }, "\(p.steps)")
    }
}
