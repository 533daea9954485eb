import CaissonCore
import Foundation

/// Builds `docker save` archives with real SHA-256 digests, in the legacy layout (Engine < 25)
/// or the OCI layout (Engine 25+, which also carries a legacy-style manifest.json), with knobs to
/// break them.
///
/// ```swift
/// let image = DockerSaveWriter.Image(layers: [layerTar], repoTags: ["example/app:1.0"])
/// var writer = DockerSaveWriter(layout: .oci, images: [image])
/// let bytes = writer.build()          // image.tar
/// writer.images[0].imageID            // "sha256:…" = digest of the config written
/// ```
struct DockerSaveWriter {
    enum Layout { case legacy, oci }

    /// One image: its layers (uncompressed layer tars, opaque here), config fields and tags.
    struct Image {
        var layers: [[UInt8]]
        var repoTags: [String]
        var os = "linux"
        var architecture = "amd64"
        var variant: String?
        var env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        var cmd: [String]? = ["/bin/app"]
        var entrypoint: [String]?
        var workingDir = ""
        var user = ""
        var labels: [String: String] = [:]
        var exposedPorts: [String] = []
        /// `Healthcheck.Test`, e.g. `["CMD", "true"]` or `["NONE"]`.
        var healthcheck: [String]?
        /// Diff ids written in the config instead of the real ones.
        var diffIDsOverride: [String]?
        /// Config bytes written instead of the generated JSON.
        var rawConfig: [UInt8]?

        init(layers: [[UInt8]], repoTags: [String] = ["example/app:1.0"]) {
            self.layers = layers
            self.repoTags = repoTags
        }

        /// The config JSON as written.
        var configBytes: [UInt8] {
            if let rawConfig { return rawConfig }
            var container: [String: Any] = ["Env": env, "WorkingDir": workingDir, "User": user]
            container["Cmd"] = cmd ?? NSNull()
            container["Entrypoint"] = entrypoint ?? NSNull()
            container["Labels"] = labels.isEmpty ? NSNull() : labels
            if !exposedPorts.isEmpty {
                container["ExposedPorts"] = Dictionary(uniqueKeysWithValues: exposedPorts.map { ($0, [String: Any]()) })
            }
            if let healthcheck { container["Healthcheck"] = ["Test": healthcheck, "Interval": 1_000_000_000] }
            var config: [String: Any] = [
                "architecture": architecture, "os": os, "config": container,
                "created": "2026-03-16T18:30:00Z",
                "rootfs": ["type": "layers", "diff_ids": diffIDsOverride ?? diffIDs],
            ]
            if let variant { config["variant"] = variant }
            return DockerSaveWriter.json(config)
        }

        var diffIDs: [String] { layers.map { "sha256:" + SHA256.hash($0).hex } }
        var configDigest: SHA256Digest { SHA256.hash(configBytes) }
        var imageID: String { configDigest.prefixed }
        /// A stable legacy layer id for layer `i` (any 64-hex string will do for docker load).
        func legacyLayerID(_ i: Int) -> String {
            SHA256.hash(Array("layer-\(i)-\(diffIDs[i])-\(configDigest.hex)".utf8)).hex
        }
        var ociManifestBytes: [UInt8] {
            DockerSaveWriter.json([
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": ["mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": imageID, "size": configBytes.count],
                "layers": layers.map { ["mediaType": "application/vnd.oci.image.layer.v1.tar",
                                        "digest": "sha256:" + SHA256.hash($0).hex, "size": $0.count] },
            ])
        }
    }

    /// Where manifest.json's `Layers` point in the OCI layout.
    enum OCILayerPaths {
        /// `blobs/sha256/<hex>` (Engine 25+).
        case blobs
        /// `<id>/layer.tar`, which are symlinks to `../blobs/sha256/<hex>`.
        case legacySymlinks
    }

    enum EntryOrder {
        /// Sorted paths, as docker save writes them (manifest.json near the end).
        case docker
        /// manifest.json, index.json and configs before the layers.
        case documentsFirst
        case reversed
    }

    var layout: Layout
    var images: [Image]
    var format: TarWriter.Format = .pax
    var order: EntryOrder = .docker
    var ociLayerPaths: OCILayerPaths = .blobs
    /// OCI: also write `<id>/VERSION`, `<id>/json` and `<id>/layer.tar` symlinks (older
    /// compatibility layouts; Engine 25+ writes only blobs).
    var ociLegacyDirectories = false
    /// OCI: write each layer's v1 JSON as a small blob too, as Engine 25+ does.
    var ociV1LayerBlobs = true
    var writeManifestJSON = true
    var writeIndexJSON = true
    var writeRepositories = true
    /// Replaces manifest.json / index.json bytes.
    var rawManifestJSON: [UInt8]?
    var rawIndexJSON: [UInt8]?
    /// Layer bytes written instead of the real ones (the digests stay those of `layers`).
    var tamperedLayers: [Int: [UInt8]] = [:]
    /// Additional files, e.g. ("blobs/sha256/<wrong>", bytes).
    var extraFiles: [(String, [UInt8])] = []
    /// Write directory entries.
    var directories = true

    init(layout: Layout, images: [Image]) {
        self.layout = layout
        self.images = images
    }

    /// A single-image archive.
    init(layout: Layout, layers: [[UInt8]], repoTags: [String] = ["example/app:1.0"]) {
        self.init(layout: layout, images: [Image(layers: layers, repoTags: repoTags)])
    }

    private enum Item {
        case file(String, [UInt8])
        case directory(String)
        case symlink(String, String)

        var path: String {
            switch self {
            case .file(let p, _), .directory(let p), .symlink(let p, _): return p
            }
        }
        var isDocument: Bool { path.hasSuffix(".json") || path == "repositories" || path == "oci-layout" }
    }

    /// The image.tar bytes.
    func build() -> [UInt8] {
        var items: [Item] = []
        var manifest: [[String: Any]] = []
        var repositories: [String: [String: String]] = [:]
        var indexManifests: [[String: Any]] = []

        for image in images {
            let layerDigests = image.layers.map { SHA256.hash($0).hex }
            var layerPaths: [String] = []
            for (i, layer) in image.layers.enumerated() {
                let bytes = tamperedLayers[i] ?? layer
                let id = image.legacyLayerID(i)
                switch layout {
                case .legacy:
                    if directories { items.append(.directory(id + "/")) }
                    items.append(.file(id + "/VERSION", Array("1.0".utf8)))
                    items.append(.file(id + "/json", DockerSaveWriter.json(["id": id])))
                    items.append(.file(id + "/layer.tar", bytes))
                    layerPaths.append(id + "/layer.tar")
                case .oci:
                    items.append(.file("blobs/sha256/" + layerDigests[i], bytes))
                    if ociV1LayerBlobs {
                        let v1 = DockerSaveWriter.json(["id": id, "created": "1970-01-01T00:00:00Z", "os": image.os])
                        items.append(.file("blobs/sha256/" + SHA256.hash(v1).hex, v1))
                    }
                    if ociLegacyDirectories || ociLayerPaths == .legacySymlinks {
                        if directories { items.append(.directory(id + "/")) }
                        items.append(.file(id + "/VERSION", Array("1.0".utf8)))
                        items.append(.file(id + "/json", DockerSaveWriter.json(["id": id])))
                        items.append(.symlink(id + "/layer.tar", "../blobs/sha256/" + layerDigests[i]))
                    }
                    layerPaths.append(ociLayerPaths == .blobs ? "blobs/sha256/" + layerDigests[i] : id + "/layer.tar")
                }
            }
            let configPath: String
            switch layout {
            case .legacy:
                configPath = image.configDigest.hex + ".json"
            case .oci:
                configPath = "blobs/sha256/" + image.configDigest.hex
                let manifestBytes = image.ociManifestBytes
                let manifestDigest = SHA256.hash(manifestBytes)
                items.append(.file("blobs/sha256/" + manifestDigest.hex, manifestBytes))
                let tags = image.repoTags.isEmpty ? [nil] : image.repoTags.map { Optional($0) }
                for tag in tags {
                    var descriptor: [String: Any] = [
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": manifestDigest.prefixed, "size": manifestBytes.count,
                    ]
                    if let tag, let reference = try? ImageReference(tag) {
                        descriptor["annotations"] = [
                            "io.containerd.image.name": reference.normalized,
                            "org.opencontainers.image.ref.name": reference.tag ?? "latest",
                        ]
                    }
                    indexManifests.append(descriptor)
                }
            }
            items.append(.file(configPath, image.configBytes))
            manifest.append(["Config": configPath, "RepoTags": image.repoTags, "Layers": layerPaths])
            for tag in image.repoTags {
                guard let colon = tag.lastIndex(of: ":") else { continue }
                let top = layout == .legacy ? image.legacyLayerID(image.layers.count - 1) : layerDigests.last ?? ""
                repositories[String(tag[..<colon]), default: [:]][String(tag[tag.index(after: colon)...])] = top
            }
        }
        if layout == .oci {
            if directories {
                items.append(.directory("blobs/"))
                items.append(.directory("blobs/sha256/"))
            }
            items.append(.file("oci-layout", DockerSaveWriter.json(["imageLayoutVersion": "1.0.0"])))
            if writeIndexJSON {
                items.append(.file("index.json", rawIndexJSON ?? DockerSaveWriter.json([
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": indexManifests,
                ])))
            }
        }
        if writeManifestJSON { items.append(.file("manifest.json", rawManifestJSON ?? DockerSaveWriter.json(manifest))) }
        if writeRepositories, !repositories.isEmpty { items.append(.file("repositories", DockerSaveWriter.json(repositories))) }
        for (path, bytes) in extraFiles { items.append(.file(path, bytes)) }

        // Unique paths (several tags share blobs), then order.
        var seen = Set<String>()
        items = items.filter { seen.insert($0.path).inserted }
        switch order {
        case .docker: items.sort { $0.path < $1.path }
        case .documentsFirst: items.sort { ($0.isDocument ? 0 : 1, $0.path) < ($1.isDocument ? 0 : 1, $1.path) }
        case .reversed: items.sort { $0.path > $1.path }
        }

        var tar = TarWriter(format: format)
        for item in items {
            switch item {
            case .file(let path, let bytes): tar.addFile(path, bytes)
            case .directory(let path): tar.addDirectory(path)
            case .symlink(let path, let target): tar.addSymlink(path, target: target)
            }
        }
        tar.finish()
        return tar.bytes
    }

    /// Compact JSON with sorted keys and unescaped slashes, like Go's encoder output.
    static func json(_ value: Any) -> [UInt8] {
        let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])
        return Array(data ?? Data())
    }

    /// A small uncompressed layer tar holding `files` (path → content).
    static func layer(_ files: [(String, [UInt8])]) -> [UInt8] {
        var tar = TarWriter(format: .pax)
        for (path, data) in files { tar.addFile(path, data, options: .init(mode: 0o755)) }
        tar.finish()
        return tar.bytes
    }

    /// Deterministic pseudo-random bytes (SplitMix64), for layer contents.
    static func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        var out = [UInt8]()
        out.reserveCapacity(count + 8)
        while out.count < count {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            withUnsafeBytes(of: z.littleEndian) { out.append(contentsOf: $0) }
        }
        return Array(out.prefix(count))
    }
}
