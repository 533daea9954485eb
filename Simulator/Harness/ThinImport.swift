import CaissonCore

/// Issue 16 in the swarm: the new release arrives as a thin package, built from the device's
/// inventory. Its image.tar leaves out the base layer the inventory saw (in `example/base:2`, an
/// image no container uses), so before anything changes the load's preflight must find that
/// layer's ChainID in the layer store (`ThinPlan.missing`, the check `caisson package load`
/// makes), and afterwards the image must be the full one (every DiffID).
public struct ThinImportPlan: Sendable, Codable, Equatable, CustomStringConvertible {
    public enum BaseFate: String, Sendable, Codable, Equatable, CaseIterable {
        /// The base is still on the device: the thin package loads as the full image.
        case kept
        /// Removed between the inventory and the load (another operator's `docker rmi`): the
        /// preflight must refuse with `package.base_missing` and load nothing.
        case removedBeforeLoad = "removed-before-load"
        /// Removed after the preflight passed, just before the archive reaches Docker: Docker's
        /// load fails and loads nothing; the update must not begin.
        case removedAfterPreflight = "removed-after-preflight"
    }

    public var baseFate: BaseFate

    public init(baseFate: BaseFate) { self.baseFate = baseFate }

    public var description: String { "thin/base=\(baseFate.rawValue)" }

    /// The base image the inventory saw and the thin package relies on.
    public static let baseReference = "example/base:2"
    public static let baseImageID = SimulatedHost.fakeImageID("example/base:2")
    /// The base's one layer (DiffID), and the new image's own layer on top of it.
    public static let baseLayer = SHA256.hash(Array("sim base layer 2".utf8)).prefixed
    static func topLayer(_ behaviour: String) -> String { SHA256.hash(Array("sim app layer 2.0.0/\(behaviour)".utf8)).prefixed }

    /// The swarm's draw: a thin package in one run of five; its base is gone in half of those.
    public static func draw(_ rng: inout SplitMix64) -> ThinImportPlan? {
        guard rng.chance(0.2) else { return nil }
        let r = rng.below(10)
        return ThinImportPlan(baseFate: r < 5 ? .kept : (r < 8 ? .removedBeforeLoad : .removedAfterPreflight))
    }

    /// The thin archive of the new image (`config`: its labels), as validation hands it to the load.
    static func payload(newImageID: String, behaviour: String, config: ImageConfig) -> ImagePayload {
        var p = ImagePayload(path: "/staged/app-thin.edgepkg", offset: 1536, length: 1024, reference: UpdateScenario.newReference,
                             expectedImageID: newImageID, config: config)
        p.diffIDs = [baseLayer, topLayer(behaviour)]
        p.requiredChainIDs = [LayerChain.chainIDs(p.diffIDs)[0]]
        return p
    }
}

extension UpdateScenario {
    /// Like `caisson package load` of a thin package: preflight (every layer it leaves out is
    /// held), then the load, checked against the full image. Throws the load's refusal; nothing
    /// of the update has begun then.
    func importThin(_ plan: ThinImportPlan) throws {
        thinImport = plan
        guard let payload = thinPayload else {
            throw CaissonError("sim.not_thin", "this world was provisioned with the new image already loaded")
        }
        if plan.baseFate == .removedBeforeLoad { removeBase() }
        let images: [ImageInfo]
        do { images = try host.listImages() } catch {
            throw CaissonError("docker.list_failed", "could not list the images to check the layers a thin package needs: \(error.message)")
        }
        let missing = ThinPlan.missing(payload.requiredChainIDs, images: images)
        guard missing.isEmpty else {
            throw CaissonError("package.base_missing", "the thin package leaves out \(missing.map(LayerChain.short).joined(separator: ", ")), not on this device; nothing was loaded")
        }
        if plan.baseFate == .removedAfterPreflight { removeBase() }
        let info: ImageInfo
        do { info = try host.loadImage(payload, progress: { _ in }) } catch {
            throw CaissonError("docker.load_failed", "could not load the image: \(error.message)")
        }
        guard info.id == newImageID, info.layers == payload.diffIDs else {
            throw CaissonError("docker.load_failed", "the loaded image is \(info.id) with \(info.layers.count) layer(s), not the full image validated")
        }
        thinLoaded = true
    }

    /// Someone else's `docker rmi example/base:2` (not a call of the updater's: no fault applies).
    func removeBase() {
        host.deleteImage(ThinImportPlan.baseImageID)
    }

    /// The thin package's own invariants (the others hold as for any run).
    func thinViolations() -> [String] {
        guard let plan = thinImport, let payload = thinPayload else { return [] }
        var out: [String] = []
        let loaded = host.image(newImageID)
        let began = journal.attempts.contains { $0.updateID == self.plan.updateID }
        switch plan.baseFate {
        case .removedBeforeLoad:
            // (A host that cannot be listed is refused first, as cleanly.)
            if refusal?.code != "package.base_missing" && refusal?.code != "docker.list_failed" {
                out.append("a thin package whose base was removed was not refused with package.base_missing (\(refusal.map { $0.code } ?? "it went ahead"))")
            }
            if loaded != nil { out.append("a thin package whose base was missing left an image behind") }
        case .removedAfterPreflight:
            if refusal == nil && began { out.append("a thin package whose base vanished before the load went ahead") }
            if loaded != nil { out.append("a thin load whose base vanished left an image behind") }
        case .kept:
            if refusal?.code == "package.base_missing" { out.append("a thin package was refused although its base is on the device") }
            if let loaded, loaded.layers != payload.diffIDs {
                out.append("the thin load left \(loaded.id) with \(loaded.layers.count) layer(s), not the full image's \(payload.diffIDs.count)")
            }
            if thinLoaded && loaded == nil && !began { out.append("the thin load reported an image that is not there") }
        }
        if began && !thinLoaded { out.append("the update began although the thin package was not loaded") }
        return out
    }
}
