import CaissonCore
import CaissonSimulator
import Testing

/// The simulator's layer store (issue 16): images carry their layers, listImages reports them,
/// and a thin archive loads only where every layer it leaves out is held, like `docker load`
/// (which fails and loads nothing otherwise).
@Suite("Simulator: layer store and thin archives")
struct SimulatorLayerStoreTests {
    typealias F = SimFixture
    static let base = "sha256:" + String(repeating: "b", count: 64)
    static let top = "sha256:" + String(repeating: "c", count: 64)

    static func thinPayload() -> ImagePayload {
        var p = F.payload("example/app:2.0", F.v2, length: 2048)
        p.diffIDs = [base, top]
        p.requiredChainIDs = [LayerChain.chainIDs([base, top])[0]]
        return p
    }

    @Test func aThinArchiveLoadsOnlyWhereItsBaseIsAndLoadsNothingElsewhere() throws {
        let host = SimulatedHost(seed: 1)
        let free = host.freeDiskBytes
        #expect(throws: HostError.self) { try host.loadImage(Self.thinPayload(), progress: { _ in }) }
        #expect(host.allImages.isEmpty && host.freeDiskBytes == free)
        // The base arrives (another image with that bottom layer): now it loads, with the full layers.
        try host.addImage(id: F.v1, tags: ["example/base:1"], layers: [Self.base])
        let info = try host.loadImage(Self.thinPayload(), progress: { _ in })
        #expect(info.id == F.v2 && info.layers == [Self.base, Self.top])
        #expect(try host.listImages().map(\.id) == [F.v1, F.v2].sorted())
        #expect(try host.listImages().first { $0.id == F.v2 }?.layers == [Self.base, Self.top])
        #expect(ThinPlan.missing(Self.thinPayload().requiredChainIDs, images: try host.listImages()).isEmpty)
    }

    @Test func removingTheLastImageThatHoldsALayerTakesItOutOfTheStore() throws {
        let host = SimulatedHost(seed: 1)
        try host.addImage(id: F.v1, tags: ["example/base:1"], layers: [Self.base])
        try host.addImage(id: F.v3, tags: ["example/other:1"], layers: [Self.base, Self.top])
        try host.removeImage("example/base:1")
        // Still held by the other image.
        #expect(ThinPlan.missing(Self.thinPayload().requiredChainIDs, images: try host.listImages()).isEmpty)
        try host.removeImage("example/other:1")
        #expect(ThinPlan.missing(Self.thinPayload().requiredChainIDs, images: try host.listImages()) == Self.thinPayload().requiredChainIDs)
        #expect(throws: HostError.self) { try host.loadImage(Self.thinPayload(), progress: { _ in }) }
        #expect(try host.inspectImage("example/app:2.0") == nil)
    }

    @Test func listImagesIsAFaultableRead() throws {
        let host = SimulatedHost(seed: 1, faults: FaultPlan(rules: [FaultRule(operation: .listImages, kind: .fail)]))
        #expect(throws: HostError.self) { try host.listImages() }
        #expect(SimOperation.listImages.isReadOnly)
    }
}

/// A thin package in the update scenario (issue 16): the base removed between the inventory and
/// the load is refused with `package.base_missing` before anything changes; removed after the
/// preflight, Docker's load fails and loads nothing; kept, the full image loads and the update runs.
@Suite("Simulator: thin packages and a missing base")
struct SimulatorThinUpdateTests {
    static let config = UpdateScenario.Config(mode: .docker, healthKind: .containerHealth, newBehaviour: "healthy")

    @Test func aKeptBaseLoadsTheFullImageAndTheUpdateRuns() throws {
        let s = UpdateScenario(UpdateScenario.World(Self.config, thin: true))
        #expect(s.host.image(s.newImageID) == nil)
        let a = try #require(s.run(thin: ThinImportPlan(baseFate: .kept)))
        #expect(a.status == .succeeded)
        #expect(s.thinLoaded && s.refusal == nil)
        let payload = try #require(s.thinPayload)
        #expect(s.host.image(s.newImageID)?.layers == payload.diffIDs && payload.diffIDs.count == 2)
        #expect(s.violations().isEmpty, "\(s.violations())")
    }

    @Test func aBaseRemovedBeforeTheLoadIsRefusedAndNothingChanges() throws {
        let s = UpdateScenario(UpdateScenario.World(Self.config, thin: true))
        let before = s.host.snapshot.containers
        #expect(s.run(thin: ThinImportPlan(baseFate: .removedBeforeLoad)) == nil)
        #expect(s.refusal?.code == "package.base_missing")
        #expect(s.refusal?.message.contains(LayerChain.short(ThinImportPlan.baseLayer)) == true)
        #expect(s.host.image(s.newImageID) == nil && s.host.callCount(of: .loadImage) == 0)
        #expect(s.host.snapshot.containers == before && s.journal.attempts.isEmpty)
        #expect(s.violations().isEmpty, "\(s.violations())")
    }

    @Test func aBaseRemovedAfterThePreflightFailsTheLoadAndLoadsNothing() throws {
        let s = UpdateScenario(UpdateScenario.World(Self.config, thin: true))
        let before = s.host.snapshot.containers
        #expect(s.run(thin: ThinImportPlan(baseFate: .removedAfterPreflight)) == nil)
        #expect(s.refusal?.code == "docker.load_failed")
        #expect(s.host.callCount(of: .loadImage) == 1 && s.host.image(s.newImageID) == nil)
        #expect(s.host.snapshot.containers == before && s.journal.attempts.isEmpty)
        #expect(s.violations().isEmpty, "\(s.violations())")
    }

    @Test func theInvariantsCatchAThinLoadThatIgnoredAMissingBase() throws {
        // An updater that skipped the preflight and somehow got an image in: the checker objects.
        let s = UpdateScenario(UpdateScenario.World(Self.config, thin: true))
        _ = s.run(thin: ThinImportPlan(baseFate: .removedBeforeLoad))
        try s.host.addImage(id: s.newImageID, tags: [UpdateScenario.newReference])
        #expect(s.violations().contains { $0.contains("left an image behind") })
    }

    @Test func theSwarmDrawsThinPackagesAndMissingBasesWithoutViolations() {
        let summary = Swarm.run(runs: 600, seed: 16)
        #expect(summary.violations == 0, "first violation: \(String(describing: summary.firstViolation))")
        #expect(summary.thinPackages > 60 && summary.basesMissing > 5)
    }
}
