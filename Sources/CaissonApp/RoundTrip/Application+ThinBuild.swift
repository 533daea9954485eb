import CaissonCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `package build --against inventory.json` (issue 16): image.tar without the layers the device
/// already holds; the manifest's `[thin]` binds the full image and names what must be there.
extension Application {
    public struct ThinBuildSummary: Sendable, Codable, Equatable {
        public var inventory: String
        public var deviceID: String
        /// Whether the inventory's signature was checked (with `--device-key`).
        public var signatureVerified: Bool
        public var layers: Int
        public var omittedLayers: Int
        public var requiredChainIDs: [String]
        public var fullImageTarBytes: Int64
        public var thinImageTarBytes: Int64

        enum CodingKeys: String, CodingKey {
            case inventory, layers
            case deviceID = "device_id", signatureVerified = "signature_verified", omittedLayers = "omitted_layers"
            case requiredChainIDs = "required_chain_ids", fullImageTarBytes = "full_image_tar_bytes"
            case thinImageTarBytes = "thin_image_tar_bytes"
        }
    }

    struct ThinImage {
        var path: String
        var size: Int64
        var sha256: String
        var thin: Manifest.Thin
        var summary: ThinBuildSummary
    }

    /// Reads the inventory (verified with `deviceKey` when given) and, when the device holds some
    /// of the image's layers, writes the thin image.tar to `destination`. Nil: nothing in common
    /// (the package stays full).
    func thinImage(from tarPath: String, size: Int64, facts: ImageFacts, against inventoryPath: String,
                   deviceKey: String?, to destination: String) throws -> ThinImage? {
        let path = Self.absolute(inventoryPath)
        let bytes: [UInt8]
        if let deviceKey {
            bytes = try verifyInventory(path, deviceKey: deviceKey).bytes
        } else {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw CaissonError("inventory.read_failed", "cannot read the inventory \(inventoryPath)")
            }
            bytes = Array(data)
        }
        let inventory = try DeviceInventory.decode(bytes, path: inventoryPath)
        if deviceKey == nil {
            onNotice?("The inventory's signature was not checked (give --device-key device.pub to check it).")
        }
        let plan = ThinPlan.make(facts: facts, held: inventory.heldChainIDs)
        guard plan.isThin else {
            onNotice?("The device holds none of this image's layers: the package is full.")
            return nil
        }
        onProgress?("Leaving out \(plan.omittedLayers.count) of \(plan.diffIDs.count) layer(s) the device holds…")
        let w = try BuildFileWriter(path: destination)
        var sha = SHA256()
        let summary: ThinArchive.Summary
        do {
            summary = try ThinArchive.write(from: tarPath, omitting: Set(plan.omittedFiles)) { chunk in
                sha.update(chunk)
                try w.write(chunk)
            }
            try w.close()
        } catch {
            w.abandon()
            if let e = error as? CaissonError { throw e }
            throw CaissonError("package.write_failed", "could not write the thin image: \(error.message)")
        }
        // The images that held the required layers, most complete first (for base_missing messages).
        var bases: [(held: Int, base: Manifest.Thin.Base)] = []
        for image in inventory.images {
            let held = plan.requiredChainIDs.lastIndex { image.chainIDs.contains($0) }
            guard let held else { continue }
            // Its own tags first, Caisson's pins after.
            let refs = image.repoTags.filter { !$0.hasPrefix("caisson-pin/") } + image.repoTags.filter { $0.hasPrefix("caisson-pin/") }
            bases.append((held, Manifest.Thin.Base(imageID: image.id, references: refs,
                                                   topChainID: plan.requiredChainIDs[held])))
        }
        bases.sort { a, b in
            if a.held != b.held { return a.held > b.held }
            if a.base.references.isEmpty != b.base.references.isEmpty { return !a.base.references.isEmpty }
            return a.base.imageID < b.base.imageID
        }
        let thin = Manifest.Thin(configDigest: plan.configDigest, diffIDs: plan.diffIDs, requiredChainIDs: plan.requiredChainIDs,
                                 inventorySHA256: SHA256.hash(bytes).hex, deviceID: inventory.deviceID,
                                 bases: Array(bases.prefix(Manifest.Thin.maxBases).map(\.base)))
        return ThinImage(path: destination, size: summary.bytes, sha256: sha.finalizeDigest().hex, thin: thin,
                         summary: ThinBuildSummary(inventory: path, deviceID: inventory.deviceID, signatureVerified: deviceKey != nil,
                                                   layers: plan.diffIDs.count, omittedLayers: plan.omittedLayers.count,
                                                   requiredChainIDs: plan.requiredChainIDs, fullImageTarBytes: size,
                                                   thinImageTarBytes: summary.bytes))
    }
}
