/// Layer identity as the OCI image spec defines it (image-spec `config.md`, "Layer ChainID"):
///
///     ChainID(L₀)     = DiffID(L₀)
///     ChainID(L₀|…|Lₙ) = SHA-256(ChainID(L₀|…|Lₙ₋₁) + " " + DiffID(Lₙ))
///
/// where both ids are written `sha256:<hex>`. A ChainID names a layer *with everything below
/// it*: it is how Docker's layer store keys layers, and what `docker load` looks up before it
/// reads a layer from the archive (a layer whose chain it holds is not read at all).
public enum LayerChain {
    /// The ChainIDs of `diffIDs` (bottom layer first), one per layer.
    public static func chainIDs(_ diffIDs: [String]) -> [String] {
        var out: [String] = []
        out.reserveCapacity(diffIDs.count)
        for diffID in diffIDs {
            if let below = out.last {
                out.append(SHA256.hash(Array((below + " " + diffID).utf8)).prefixed)
            } else {
                out.append(diffID)
            }
        }
        return out
    }

    /// Whether `id` is `sha256:` and 64 lowercase hex digits.
    public static func isDigest(_ id: String) -> Bool {
        id.hasPrefix("sha256:") && SHA256Digest(hex: id.dropFirst(7)) != nil
    }

    /// `sha256:0123456789ab` (12 hex digits), for messages.
    public static func short(_ id: String) -> String {
        id.hasPrefix("sha256:") ? "sha256:" + id.dropFirst(7).prefix(12) : String(id.prefix(19))
    }
}

/// What a thin package leaves out, decided from the full image and the ChainIDs a device holds
/// (its inventory): every layer whose ChainID the device has. That is exactly the set `docker
/// load` skips (it looks each layer's chain up before it opens the layer's file), so what is
/// omitted is never read on a device that has it.
public struct ThinPlan: Sendable, Equatable {
    /// The full image: its config digest (the image id), DiffIDs and ChainIDs.
    public var configDigest: String
    public var diffIDs: [String]
    public var chainIDs: [String]
    /// Positions of the omitted layers, and their ChainIDs (what the device must hold).
    public var omittedLayers: [Int]
    public var requiredChainIDs: [String]
    /// Files of image.tar that are left out: the omitted layers' files, except a file a kept
    /// layer also uses (the same content at two places).
    public var omittedFiles: [String]

    public var isThin: Bool { !omittedLayers.isEmpty }

    /// - Parameters:
    ///   - facts: the full image as inspected (every layer present).
    ///   - held: the ChainIDs the device holds.
    public static func make(facts: ImageFacts, held: Set<String>) -> ThinPlan {
        let chains = LayerChain.chainIDs(facts.layers)
        guard facts.layerFiles.count == facts.layers.count, facts.absentLayers.isEmpty else {
            return ThinPlan(configDigest: facts.imageID, diffIDs: facts.layers, chainIDs: chains, omittedLayers: [],
                            requiredChainIDs: [], omittedFiles: [])
        }
        let files = facts.layerFiles
        // A file that a layer the device lacks also uses stays; so does every layer stored in it
        // (it is then not absent from the archive, and not required).
        var keptFiles = Set<String>()
        for (i, c) in chains.enumerated() where !held.contains(c) { keptFiles.insert(files[i]) }
        var omitted: [Int] = []
        var omittedFiles: [String] = []
        for (i, c) in chains.enumerated() where held.contains(c) && !keptFiles.contains(files[i]) {
            omitted.append(i)
            if !omittedFiles.contains(files[i]) { omittedFiles.append(files[i]) }
        }
        return ThinPlan(configDigest: facts.imageID, diffIDs: facts.layers, chainIDs: chains, omittedLayers: omitted,
                        requiredChainIDs: omitted.map { chains[$0] }, omittedFiles: omittedFiles)
    }

    /// The preflight of a thin package: the `required` ChainIDs that no image of `images` holds
    /// (Docker's layer store keeps a layer exactly as long as an image uses it), in order.
    public static func missing(_ required: [String], images: [ImageInfo]) -> [String] {
        var held = Set<String>()
        for i in images { held.formUnion(LayerChain.chainIDs(i.layers)) }
        return required.filter { !held.contains($0) }
    }
}
