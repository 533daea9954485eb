import CaissonCore
import Testing

/// ChainIDs (OCI image spec) and what a thin package leaves out (issue 16).
@Suite struct LayerChainTests {
    static let a = "sha256:" + String(repeating: "a", count: 64)
    static let b = "sha256:" + String(repeating: "b", count: 64)
    static let c = "sha256:" + String(repeating: "c", count: 64)

    @Test func chainIDsFollowTheImageSpec() {
        let chains = LayerChain.chainIDs([Self.a, Self.b, Self.c])
        #expect(chains[0] == Self.a)
        let ab = SHA256.hash(Array((Self.a + " " + Self.b).utf8)).prefixed
        #expect(chains[1] == ab)
        #expect(chains[2] == SHA256.hash(Array((ab + " " + Self.c).utf8)).prefixed)
        #expect(LayerChain.chainIDs([]) == [])
        // The same layer on another base is another chain.
        #expect(LayerChain.chainIDs([Self.b, Self.b])[1] != LayerChain.chainIDs([Self.a, Self.b])[1])
    }

    static func facts(_ layers: [String], files: [String]) -> ImageFacts {
        var f = ImageFacts(layout: .legacy, imageID: "sha256:" + String(repeating: "f", count: 64), repoTags: ["x:1"], os: "linux",
                           architecture: "amd64", variant: nil, layers: layers, totalLayerBytes: 0, labels: [], hasHealthcheck: false,
                           env: [], cmd: nil, entrypoint: nil, workingDir: "", user: "", exposedPorts: [])
        f.layerFiles = files
        return f
    }

    @Test func thinPlanLeavesOutWhatTheDeviceHoldsButNeverAFileAKeptLayerUses() {
        let layers = [Self.a, Self.b, Self.c]
        let chains = LayerChain.chainIDs(layers)
        let plan = ThinPlan.make(facts: Self.facts(layers, files: ["1/layer.tar", "2/layer.tar", "3/layer.tar"]), held: [chains[0], chains[1]])
        #expect(plan.omittedLayers == [0, 1] && plan.requiredChainIDs == [chains[0], chains[1]])
        #expect(plan.omittedFiles == ["1/layer.tar", "2/layer.tar"])
        // Nothing in common: not thin.
        #expect(!ThinPlan.make(facts: Self.facts(layers, files: ["1", "2", "3"]), held: [Self.c]).isThin)
        // The held layer's file is also the top layer's (the same blob twice): it stays, and is not required.
        let shared = ThinPlan.make(facts: Self.facts(layers, files: ["blob-a", "blob-b", "blob-a"]), held: [chains[0], chains[1]])
        #expect(shared.omittedLayers == [1] && shared.omittedFiles == ["blob-b"] && shared.requiredChainIDs == [chains[1]])
    }

    @Test func thinManifestSectionRoundTrips() {
        let chains = LayerChain.chainIDs([Self.a, Self.b])
        let thin = Manifest.Thin(configDigest: Self.c, diffIDs: [Self.a, Self.b], requiredChainIDs: [chains[0]],
                                 inventorySHA256: String(repeating: "0", count: 64), deviceID: "dev \"1\"",
                                 bases: [.init(imageID: Self.a, references: ["base:1"], topChainID: chains[0])])
        let text = """
        format_version = 1
        package_type = "service"
        package_version = "1.0.0"
        created_at = "2026-01-01T00:00:00Z"
        [target]
        service = "s"
        service_revision = "r"
        platform = "linux/amd64"
        [image]
        reference = "x:1"
        """ + thin.toml
        let (m, issues) = Manifest.parse(Array(text.utf8))
        #expect(issues.isEmpty, "\(issues)")
        #expect(m?.thin == thin)
        #expect(thin.basesHolding(chains[0]).map(\.references) == [["base:1"]])
    }
}
