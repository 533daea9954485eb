import CaissonTOML

/// `[thin]` in manifest.toml (issue 16): the package's image.tar leaves out the layers a device
/// already holds. Signed with the rest of the manifest, it binds the *full* image (its config
/// digest and every DiffID) and names what the device must hold (the omitted layers' ChainIDs).
///
/// ```toml
/// [thin]
/// config_digest = "sha256:…"            # the full image's config digest (its image id)
/// diff_ids = ["sha256:…", "sha256:…"]   # every layer of the full image, bottom first
/// required_chain_ids = ["sha256:…"]     # the ChainIDs of the layers image.tar leaves out
/// inventory_sha256 = "…"                # the device inventory it was built against (optional)
/// device_id = "…"                       # that inventory's device (optional)
/// [[thin.bases]]                        # optional: images that held the required layers then
/// image_id = "sha256:…"
/// references = ["example/base:1"]
/// top_chain_id = "sha256:…"             # the highest required ChainID that image holds
/// ```
/// A tool that does not know `[thin]` ignores it (unknown manifest keys are ignored) and loads
/// image.tar, which Docker accepts exactly when it holds the omitted layers.
extension Manifest {
    public struct Thin: Sendable, Equatable, Codable {
        public var configDigest: String
        public var diffIDs: [String]
        public var requiredChainIDs: [String]
        public var inventorySHA256: String?
        public var deviceID: String?
        public var bases: [Base]

        public struct Base: Sendable, Equatable, Codable {
            public var imageID: String
            public var references: [String]
            public var topChainID: String

            public init(imageID: String, references: [String], topChainID: String) {
                self.imageID = imageID
                self.references = references
                self.topChainID = topChainID
            }
        }

        public init(configDigest: String, diffIDs: [String], requiredChainIDs: [String], inventorySHA256: String? = nil,
                    deviceID: String? = nil, bases: [Base] = []) {
            self.configDigest = configDigest
            self.diffIDs = diffIDs
            self.requiredChainIDs = requiredChainIDs
            self.inventorySHA256 = inventorySHA256
            self.deviceID = deviceID
            self.bases = bases
        }

        /// At most this many `[[thin.bases]]` are written (the manifest stays small).
        public static let maxBases = 8

        /// The `[thin]` table as TOML text (appended to a manifest).
        public var toml: String {
            func list(_ xs: [String]) -> String { "[" + xs.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
            var s = "\n[thin]\nconfig_digest = \"\(configDigest)\"\ndiff_ids = \(list(diffIDs))\nrequired_chain_ids = \(list(requiredChainIDs))\n"
            if let inventorySHA256 { s += "inventory_sha256 = \"\(inventorySHA256)\"\n" }
            if let deviceID { s += "device_id = \"\(Self.escape(deviceID))\"\n" }
            for b in bases.prefix(Self.maxBases) {
                s += "\n[[thin.bases]]\nimage_id = \"\(b.imageID)\"\nreferences = [" + b.references.map { "\"\(Self.escape($0))\"" }.joined(separator: ", ")
                    + "]\ntop_chain_id = \"\(b.topChainID)\"\n"
            }
            return s
        }

        static func escape(_ s: String) -> String {
            var out = ""
            for u in s.unicodeScalars {
                switch u {
                case "\\": out += "\\\\"
                case "\"": out += "\\\""
                default:
                    if u.value < 0x20 || u.value == 0x7f {
                        let hex = String(u.value, radix: 16, uppercase: true)
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                    } else {
                        out.unicodeScalars.append(u)
                    }
                }
            }
            return out
        }

        /// The images of `bases` that held `chainID`, for messages (`example/base:1 (sha256:…)`).
        public func basesHolding(_ chainID: String) -> [Base] {
            guard let need = requiredChainIDs.firstIndex(of: chainID) else { return [] }
            return bases.filter { b in (requiredChainIDs.firstIndex(of: b.topChainID) ?? -1) >= need }
        }
    }

    /// Reads `[thin]` from a parsed manifest table; nil when absent. Wrong types are
    /// `manifest.parse_failed`; malformed digests `thin.invalid`.
    static func parseThin(_ table: TOMLTable) -> (Thin?, [Issue]) {
        guard let value = table["thin"] else { return (nil, []) }
        guard case .table(let t) = value else {
            return (nil, [Issue("manifest.parse_failed", "manifest.toml: `thin` must be a table, found \(value.typeDescription)")])
        }
        var issues: [Issue] = []
        func parseFailed(_ key: String, _ want: String, _ got: TOMLValue?) {
            issues.append(Issue("manifest.parse_failed", got == nil
                ? "manifest.toml: missing required field `thin.\(key)`"
                : "manifest.toml: `thin.\(key)` must be \(want), found \(got!.typeDescription)"))
        }
        func digest(_ key: String, _ v: TOMLValue?, in where_: String = "thin") -> String? {
            guard case .string(let s)? = v else { parseFailed(key, "a string", v); return nil }
            guard LayerChain.isDigest(s) else {
                issues.append(Issue("thin.invalid", "manifest \(where_).\(key) \"\(s.prefix(80))\" is not a sha256:<64 lowercase hex> digest"))
                return nil
            }
            return s
        }
        func digests(_ key: String) -> [String]? {
            guard case .array(let xs)? = t[key] else { parseFailed(key, "an array of digests", t[key]); return nil }
            var out: [String] = []
            for x in xs {
                guard let d = digest(key, x) else { return nil }
                out.append(d)
            }
            return out
        }
        let config = digest("config_digest", t["config_digest"])
        let diffIDs = digests("diff_ids")
        let required = digests("required_chain_ids")
        var inventory: String?
        if let v = t["inventory_sha256"] {
            if case .string(let s) = v, s.count == 64, s.allSatisfy({ $0.isHexDigit }) { inventory = s.lowercased() } else {
                issues.append(Issue("thin.invalid", "manifest thin.inventory_sha256 must be 64 hexadecimal digits"))
            }
        }
        var device: String?
        if let v = t["device_id"] {
            if case .string(let s) = v { device = s } else { parseFailed("device_id", "a string", v) }
        }
        var bases: [Thin.Base] = []
        if let v = t["bases"] {
            if case .array(let xs) = v {
                for x in xs {
                    guard case .table(let b) = x else { parseFailed("bases", "an array of tables", x); break }
                    var refs: [String] = []
                    if case .array(let rs)? = b["references"] { refs = rs.compactMap(\.string) }
                    if let id = digest("image_id", b["image_id"], in: "thin.bases"),
                       let top = digest("top_chain_id", b["top_chain_id"], in: "thin.bases") {
                        bases.append(Thin.Base(imageID: id, references: refs, topChainID: top))
                    }
                }
            } else {
                parseFailed("bases", "an array of tables", v)
            }
        }
        guard let config, let diffIDs, let required else { return (nil, issues) }
        if diffIDs.isEmpty {
            issues.append(Issue("thin.invalid", "manifest thin.diff_ids is empty; a thin package names every layer of its image"))
        }
        if required.isEmpty {
            issues.append(Issue("thin.invalid", "manifest thin.required_chain_ids is empty; a package that leaves nothing out is not thin"))
        }
        return (Thin(configDigest: config, diffIDs: diffIDs, requiredChainIDs: required, inventorySHA256: inventory,
                     deviceID: device, bases: bases), issues)
    }
}

extension PackageValidator {
    /// Issue 16: a thin image.tar must be the image `[thin]` binds (config digest, every DiffID),
    /// and leave out exactly the layers whose ChainIDs it requires. An image.tar that lacks
    /// layers without `[thin]` was already refused by the scanner (`image.invalid_archive`).
    public static func checkThin(_ facts: ImageFacts, manifest: Manifest) -> [Issue] {
        guard let thin = manifest.thin else { return [] }
        var issues: [Issue] = []
        if facts.imageID != thin.configDigest {
            issues.append(Issue("thin.config_mismatch", "image.tar holds image \(facts.imageID) but the manifest's [thin] binds config \(thin.configDigest)"))
        }
        if facts.layers != thin.diffIDs {
            issues.append(Issue("thin.diff_ids_mismatch", "the image's config lists \(facts.layers.count) layer DiffIDs that differ from the \(thin.diffIDs.count) the manifest's [thin] binds"))
            return issues
        }
        let chains = LayerChain.chainIDs(facts.layers)
        let absent = facts.absentLayers.map { chains[$0] }
        if absent != thin.requiredChainIDs {
            let extra = absent.filter { !thin.requiredChainIDs.contains($0) }
            let unused = thin.requiredChainIDs.filter { !absent.contains($0) }
            var parts: [String] = []
            if !extra.isEmpty { parts.append("leaves out \(extra.count) layer(s) the manifest does not require (\(extra.map(LayerChain.short).joined(separator: ", ")))") }
            if !unused.isEmpty { parts.append("holds \(unused.count) layer(s) the manifest says are left out (\(unused.map(LayerChain.short).joined(separator: ", ")))") }
            if parts.isEmpty { parts.append("leaves out its layers in another order than the manifest lists them") }
            issues.append(Issue("thin.layers_mismatch", "image.tar " + parts.joined(separator: " and ")))
        }
        return issues
    }
}
