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
