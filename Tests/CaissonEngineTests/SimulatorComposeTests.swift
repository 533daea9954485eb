import CaissonCore
import CaissonSimulator
import Testing

@Suite("Simulator: compose")
struct SimulatorComposeTests {
    typealias F = SimFixture
    static let target = ComposeTarget(project: "stack", file: "/srv/stack/compose.yaml", service: "api")

    static func host() throws -> SimulatedHost {
        let host = SimulatedHost(seed: 11)
        try host.addImage(id: F.v1, tags: ["api:1"], config: F.config(health: "healthy"))
        try host.addImage(id: F.v2, tags: ["api:2"], config: F.config(health: "healthy"))
        try host.addImage(id: F.v3, tags: ["other:1"])
        try host.provisionCompose(target: target, imageReference: "api:1", env: ["A=1"], ports: ["9000:9000"])
        try host.runContainer(name: "unrelated", imageReference: "other:1",
                              labels: ["com.docker.compose.project": "stack", "com.docker.compose.service": "db"])
        return host
    }

    @Test func composeContainersListsTheServiceByLabels() throws {
        let host = try Self.host()
        let list = try host.composeContainers(Self.target)
        #expect(list.map(\.name) == ["stack-api-1"])
        #expect(list.first?.imageID == F.v1)
        #expect(list.first?.isRunning == true)
        #expect(list.first?.labels["com.docker.compose.project"] == "stack")
        #expect(list.first?.labels["com.docker.compose.service"] == "api")
        // Like Docker's driver (which reads the project model first): a service the file does not
        // define, or a file that is not the service's, is refused, not an empty list.
        let missing = #expect(throws: HostError.self) {
            try host.composeContainers(ComposeTarget(project: "stack", file: Self.target.file, service: "none"))
        }
        #expect(missing?.kind == .failed && missing?.message.contains("has no service \"none\"; it defines: api") == true,
                "\(String(describing: missing))")
        let otherFile = #expect(throws: HostError.self) {
            try host.composeContainers(ComposeTarget(project: "stack", file: "/x", service: "api"))
        }
        #expect(otherFile?.kind == .failed)
    }

    @Test func applyOfANewImageRecreatesTheContainer() throws {
        let host = try Self.host()
        let oldID = try #require(try host.composeContainers(Self.target).first?.id)
        try host.composeApply(Self.target, imageReference: "api:2")
        let list = try host.composeContainers(Self.target)
        #expect(list.count == 1)
        let c = try #require(list.first)
        #expect(c.name == "stack-api-1" && c.id != oldID)
        #expect(c.imageID == F.v2 && c.imageReference == "api:2")
        #expect(c.status == .running && c.health == .starting)
        #expect(host.simContainer(c.id)?.config.env == ["A=1"])
        #expect(host.container(oldID) == nil)
        #expect(host.container("unrelated")?.isRunning == true)   // --no-deps: nothing else touched
    }

    @Test func applyOfTheRunningImageIsANoOp() throws {
        let host = try Self.host()
        let before = try #require(try host.composeContainers(Self.target).first)
        try host.composeApply(Self.target, imageReference: "api:1")
        #expect(host.trace.last?.hasSuffix("composeApply stack api api:1 -> ok up-to-date") == true)
        #expect(try host.composeContainers(Self.target) == [before])
    }

    @Test func applyStartsAnUpToDateStoppedContainer() throws {
        let host = try Self.host()
        let before = try #require(try host.composeContainers(Self.target).first)
        try host.stopContainer(before.name, graceSecs: 10)
        try host.composeApply(Self.target, imageReference: "api:1")
        let after = try #require(try host.composeContainers(Self.target).first)
        #expect(after.id == before.id && after.isRunning && after.startedAt != before.startedAt)
    }

    @Test func applyRecreatesWhenTheTagMovedToAnotherImage() throws {
        let host = try Self.host()
        try host.tagImage(F.v2, as: "api:1")
        try host.composeApply(Self.target, imageReference: "api:1")
        #expect(try host.composeContainers(Self.target).first?.imageID == F.v2)
    }

    @Test func applyOfAnUnknownImageFailsLikeAPullWithoutNetworkAndChangesNothing() throws {
        let host = try Self.host()
        let before = try host.composeContainers(Self.target)
        #expect(simError { try host.composeApply(Self.target, imageReference: "api:9") }?.kind == .failed)
        #expect(try host.composeContainers(Self.target) == before)
    }

    @Test func applyToAnUnknownServiceOrFileFails() throws {
        let host = try Self.host()
        let ghost = ComposeTarget(project: "stack", file: Self.target.file, service: "ghost")
        #expect(simError { try host.composeApply(ghost, imageReference: "api:2") }?.kind == .failed)
        let otherFile = ComposeTarget(project: "stack", file: "/elsewhere.yaml", service: "api")
        #expect(simError { try host.composeApply(otherFile, imageReference: "api:2") }?.kind == .failed)
    }

    @Test func applyCleansUpLeftoversAndRecreatesTheCanonicalContainer() throws {
        let host = try Self.host()
        // A leftover of an interrupted recreate, renamed the way Compose does.
        let first = try #require(try host.composeContainers(Self.target).first)
        try host.stopContainer(first.name, graceSecs: 10)
        try host.renameContainer(first.name, to: String(first.id.prefix(12)) + "_stack-api-1")
        try host.composeApply(Self.target, imageReference: "api:1")
        let list = try host.composeContainers(Self.target)
        #expect(list.map(\.name) == ["stack-api-1"])
        #expect(list.first?.isRunning == true)
    }

    @Test func composeServicesRestartPolicyAppliesOnDaemonRestart() throws {
        let host = try Self.host()                         // provisioned unless-stopped
        host.restartDaemon()
        #expect(try host.composeContainers(Self.target).first?.isRunning == true)
        #expect(host.container("unrelated")?.isRunning == false)   // restart "no"
    }
}
