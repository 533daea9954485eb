import CaissonCore
import CaissonSimulator
import Testing

/// Issue 10 item 10: a Compose update must last. The override file of the Rust tool's design
/// pins the image for one `up` only, so the operator's next routine `docker compose up -d` puts
/// the old image back, and the container's labels name a deleted file. The update now points the
/// compose file's own `image:` tag at the new image (by id) and applies the file as written; the
/// restore points it back.
@Suite("Compose updates last")
struct ComposeDurabilityTests {
    static let configs = ["healthy", "unhealthy", "crash"].flatMap { b in
        HealthKind.allCases.map { UpdateScenario.Config(mode: .compose, healthKind: $0, newBehaviour: b) }
    }

    @Test("a later docker compose up -d keeps what the update left", arguments: configs)
    func aLaterComposeUpKeepsTheOutcome(_ config: UpdateScenario.Config) throws {
        let s = UpdateScenario(config)
        let a = try #require(s.run())
        #expect(s.violations() == [])
        let target = try #require(s.service.compose)
        let before = try #require(s.host.composeMembersForTest(target).first)
        #expect(before.imageID == (a.status == .succeeded ? s.newImageID : s.oldImageID))
        #expect(before.labels["com.docker.compose.project.config_files"] == target.file)
        #expect(try s.host.operatorComposeUp(target) == "up-to-date")
        #expect(s.host.composeMembersForTest(target).map(\.imageID) == [before.imageID])
        // The compose file's reference follows the release that runs.
        #expect(s.host.imageIDForReference(UpdateScenario.composeFileImage) == before.imageID)
    }

    /// The Rust tool's design (no compose reference: an override file for the one `up`): what
    /// the invariant catches.
    @Test func withAnOverrideOnlyTheUpdateDoesNotLast() throws {
        let s = UpdateScenario(UpdateScenario.Config(mode: .compose, healthKind: .running))
        var plan = s.plan
        plan.composeImageReference = nil
        var machine = UpdateMachine(plan: plan, startedAt: s.host.clock.timestamp())
        let a = try UpdateDriver(host: s.host, journal: s.journal, clock: s.host.clock).run(&machine)
        #expect(a.status == .succeeded)
        let v = s.violations()
        #expect(v.contains { $0.contains("a later docker compose up -d puts") }, "\(v)")
        #expect(v.contains { $0.contains("names compose files") }, "\(v)")
    }

    /// `caisson rollback` is the same machine: the compose reference goes back too.
    @Test func aRollbackLastsToo() throws {
        let s = UpdateScenario(UpdateScenario.Config(mode: .compose, healthKind: .running))
        let first = try #require(s.run())
        #expect(first.status == .succeeded)
        var back = UpdateMachine.Plan(updateID: "ba5eba11-0000-4000-8000-000000000002", candidateReleaseID: "cr-1", validationAttemptID: nil,
                                      service: s.service, targetImageReference: UpdateMachine.pinReference(service: "app", imageID: s.oldImageID),
                                      targetImageID: s.oldImageID, kind: "rollback")
        back.composeImageReference = UpdateScenario.composeFileImage
        var machine = UpdateMachine(plan: back, startedAt: s.host.clock.timestamp())
        let a = try UpdateDriver(host: s.host, journal: s.journal, clock: s.host.clock).run(&machine)
        #expect(a.status == .succeeded)
        let target = try #require(s.service.compose)
        #expect(try s.host.operatorComposeUp(target) == "up-to-date")
        #expect(s.host.composeMembersForTest(target).map(\.imageID) == [s.oldImageID])
    }

    /// A crash after the compose reference moved and before `up`: recovery points it back.
    @Test func aCrashBetweenTheRetagAndTheApplyIsRestored() throws {
        let config = UpdateScenario.Config(mode: .compose, healthKind: .running)
        let clean = UpdateScenario(config, recordTrace: true)
        clean.run()
        let tagWrites = clean.journal.entries.enumerated().filter { $0.element.entry.step == "tag_image" }.map(\.offset)
        #expect(tagWrites.count >= 4)   // intent and outcome of the pin and of the retag
        for point in 0..<clean.journal.writeCount {
            let s = UpdateScenario(config)
            s.run(crashAtWrite: point)
            #expect(s.violations() == [], "crash at write \(point)")
        }
    }
}

extension SimulatedHost {
    /// The compose service's containers as a checker sees them (no call, no fault).
    func composeMembersForTest(_ target: ComposeTarget) -> [ContainerInfo] {
        allContainers.filter {
            $0.labels[SimulatedHost.composeProjectLabel] == target.project && $0.labels[SimulatedHost.composeServiceLabel] == target.service
        }
    }
}
