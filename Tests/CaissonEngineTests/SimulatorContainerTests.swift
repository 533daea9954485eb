import CaissonCore
import CaissonSimulator
import Testing

@Suite("Simulator: containers")
struct SimulatorContainerTests {
    typealias F = SimFixture

    @Test func createClonesTheTemplateConfigWithTheNewImage() throws {
        let host = try F.hostWithApp(policy: .unlessStopped)
        try host.addImage(id: F.v2, tags: ["app:2"], config: F.config(health: "healthy", extra: ["version": "2"]))
        let id = try host.createContainer(name: "app-next", cloning: "app", imageID: F.v2, labels: ["io.caisson.role": "candidate"])
        let info = try #require(try host.inspectContainer("app-next"))
        #expect(info.id == id && id.count == 64 && id.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(info.imageID == F.v2)
        #expect(info.imageReference == F.v2)
        #expect(info.status == .created)
        #expect(info.health == .none)
        #expect(info.labels["io.caisson.role"] == "candidate")
        #expect(info.labels["version"] == "2")               // the new image's label defaults
        let sim = try #require(host.simContainer("app-next"))
        #expect(sim.config.env == ["MODE=prod"])
        #expect(sim.config.restartPolicy == .unlessStopped)
        #expect(sim.config.ports == ["8080:80"])
        // The template is untouched.
        #expect(host.container("app")?.labels["io.caisson.role"] == nil)
    }

    @Test func createRefusesTakenNamesMissingTemplatesAndMissingImages() throws {
        let host = try F.hostWithApp()
        #expect(simError { try host.createContainer(name: "app", cloning: "app", imageID: F.v1, labels: [:]) }?.kind == .conflict)
        #expect(simError { try host.createContainer(name: "new", cloning: "ghost", imageID: F.v1, labels: [:]) }?.kind == .notFound)
        #expect(simError { try host.createContainer(name: "new", cloning: "app", imageID: F.v2, labels: [:]) }?.kind == .notFound)
        #expect(simError { try host.createContainer(name: "x", cloning: "app", imageID: F.v1, labels: [:]) }?.kind == .failed)
        #expect(simError { try host.createContainer(name: "bad name", cloning: "app", imageID: F.v1, labels: [:]) }?.kind == .failed)
        #expect(host.allContainers.map(\.name) == ["app"])
    }

    @Test func containersResolveByIDNameSlashNameAndUniquePrefix() throws {
        let host = try F.hostWithApp()
        let id = try #require(host.container("app")?.id)
        for key in [id, "app", "/app", String(id.prefix(8))] {
            #expect(try host.inspectContainer(key)?.id == id, "\(key)")
        }
        #expect(try host.inspectContainer("nope") == nil)
        #expect(try host.inspectContainer("") == nil)
    }

    @Test func startAndStopAreIdempotent() throws {
        let host = try F.hostWithApp()
        let before = try #require(try host.inspectContainer("app"))
        try host.startContainer("app")                      // already running: success, no restart
        #expect(try host.inspectContainer("app")?.startedAt == before.startedAt)
        try host.stopContainer("app", graceSecs: 10)
        let stopped = try #require(try host.inspectContainer("app"))
        #expect(stopped.status == .exited)
        #expect(stopped.exitCode == 0)
        try host.stopContainer("app", graceSecs: 10)        // already stopped: success
        try host.startContainer("app")
        let again = try #require(try host.inspectContainer("app"))
        #expect(again.status == .running)
        #expect(again.startedAt != before.startedAt)         // changes at every start, even at the same instant
        #expect(simError { try host.startContainer("ghost") }?.kind == .notFound)
        #expect(simError { try host.stopContainer("ghost", graceSecs: 1) }?.kind == .notFound)
    }

    @Test func startedAtIsDockerShapedAndNeverStartedIsZeroTime() throws {
        let host = try F.hostWithApp()
        #expect(host.container("app")?.startedAt == "2026-01-01T00:00:00.000000001Z")
        _ = try host.createContainer(name: "later", cloning: "app", imageID: F.v1, labels: [:])
        #expect(host.container("later")?.startedAt == "0001-01-01T00:00:00Z")
    }

    @Test func stopOfAProcessIgnoringSigtermTakesTheWholeGrace() throws {
        let host = try F.hostWithApp(stop: "ignore-sigterm")
        host.clock.sleep(millis: 500)
        try host.stopContainer("app", graceSecs: 7)
        #expect(host.clock.nowMillis == 7_500)
        #expect(host.container("app")?.exitCode == 137)
    }

    @Test(arguments: [("graceful", 0), ("sigterm", 143)])
    func stopOfACooperativeProcessIsImmediate(mode: String, code: Int) throws {
        let host = try F.hostWithApp(stop: mode)
        try host.stopContainer("app", graceSecs: 30)
        #expect(host.clock.nowMillis == 0)
        #expect(host.container("app")?.exitCode == code)
    }

    @Test func startFailsWhenTheHostPortIsTaken() throws {
        let host = try F.hostWithApp()
        _ = try host.createContainer(name: "app-next", cloning: "app", imageID: F.v1, labels: [:])
        #expect(simError { try host.startContainer("app-next") }?.kind == .failed)
        #expect(host.container("app-next")?.status == .created)
        try host.stopContainer("app", graceSecs: 10)
        try host.startContainer("app-next")
        #expect(host.container("app-next")?.status == .running)
    }

    @Test func renameMovesTheNameAndRefusesClashes() throws {
        let host = try F.hostWithApp()
        let id = try #require(host.container("app")?.id)
        _ = try host.createContainer(name: "app-next", cloning: "app", imageID: F.v1, labels: [:])
        #expect(simError { try host.renameContainer("app", to: "app-next") }?.kind == .conflict)
        #expect(simError { try host.renameContainer("app", to: "app") }?.kind == .failed)
        #expect(simError { try host.renameContainer("ghost", to: "other") }?.kind == .notFound)
        #expect(simError { try host.renameContainer("app", to: "no spaces") }?.kind == .failed)
        try host.renameContainer("app", to: "app-old")
        #expect(host.container("app-old")?.id == id)
        #expect(host.container("app") == nil)
        try host.renameContainer("app-next", to: "app")
        #expect(host.containers(named: "app").count == 1)
        #expect(host.allContainers.map(\.name) == ["app", "app-old"])
    }

    @Test func removeForcesAndNotFoundIsSuccess() throws {
        let host = try F.hostWithApp()
        try host.removeContainer("app")                     // running: force-removed
        #expect(host.allContainers.isEmpty)
        try host.removeContainer("app")
        // The name is free again.
        try host.runContainer(name: "app", imageReference: "app:1")
        #expect(host.containers(named: "app").count == 1)
    }

    @Test func containerIDsDependOnlyOnTheSeed() throws {
        let a = try F.hostWithApp(seed: 3)
        let b = try F.hostWithApp(seed: 3)
        let c = try F.hostWithApp(seed: 4)
        #expect(a.container("app")?.id == b.container("app")?.id)
        #expect(a.container("app")?.id != c.container("app")?.id)
    }
}
