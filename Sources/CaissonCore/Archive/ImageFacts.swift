/// What the image inside a package is, read from its `docker save` archive (`image.tar`)
/// without loading it.
public struct ImageFacts: Equatable, Sendable {
    /// Which `docker save` layout the archive uses.
    public enum Layout: String, Equatable, Sendable {
        /// Docker Engine < 25: `manifest.json`, `<id>/layer.tar`, `<config hex>.json`, `repositories`.
        case legacy
        /// Docker Engine 25+: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`),
        /// usually with a legacy-style `manifest.json` pointing into `blobs/`.
        case oci
    }

    public var layout: Layout
    /// `sha256:<hex>`: the digest of the config file, which is the image id `docker load` reports.
    public var imageID: String
    /// Every tag `docker load` would apply (manifest.json `RepoTags`, `repositories`, index.json
    /// `io.containerd.image.name`), as the Docker CLI displays them (`busybox:1`,
    /// `example/app:1.0`, `registry:5000/app:latest`), sorted and without duplicates.
    public var repoTags: [String]
    public var os: String
    public var architecture: String
    public var variant: String?
    /// Config `rootfs.diff_ids`, in order (`sha256:<hex>`), each verified against its layer.
    public var layers: [String]
    /// Sum of the layer file sizes as stored in image.tar.
    public var totalLayerBytes: Int64
    /// `config.Labels`, sorted by key.
    public var labels: [ImageLabel]
    /// `config.Healthcheck` is set with a test other than `["NONE"]`.
    public var hasHealthcheck: Bool
    public var env: [String]
    public var cmd: [String]?
    public var entrypoint: [String]?
    public var workingDir: String
    public var user: String
    /// `config.ExposedPorts` keys (`80/tcp`), sorted.
    public var exposedPorts: [String]
    /// The file inside image.tar that holds each layer (links followed), in `layers` order;
    /// empty for a layer the archive does not hold.
    public var layerFiles: [String] = []
    /// Positions (in `layers`) of the layers image.tar does not hold: a thin package (issue 16)
    /// leaves out the layers the device already has. Only accepted when the manifest says so.
    public var absentLayers: [Int] = []

    /// `os/architecture[/variant]`, e.g. `linux/arm64/v8`.
    public var platform: String {
        [os, architecture, variant].compactMap { $0 }.joined(separator: "/")
    }

    public init(layout: Layout, imageID: String, repoTags: [String], os: String, architecture: String,
                variant: String?, layers: [String], totalLayerBytes: Int64, labels: [ImageLabel],
                hasHealthcheck: Bool, env: [String], cmd: [String]?, entrypoint: [String]?,
                workingDir: String, user: String, exposedPorts: [String]) {
        self.layout = layout
        self.imageID = imageID
        self.repoTags = repoTags
        self.os = os
        self.architecture = architecture
        self.variant = variant
        self.layers = layers
        self.totalLayerBytes = totalLayerBytes
        self.labels = labels
        self.hasHealthcheck = hasHealthcheck
        self.env = env
        self.cmd = cmd
        self.entrypoint = entrypoint
        self.workingDir = workingDir
        self.user = user
        self.exposedPorts = exposedPorts
    }
}

/// One image label.
public struct ImageLabel: Hashable, Sendable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

// MARK: - JSON shapes of docker save archives

/// One element of `manifest.json`.
struct DockerSaveManifestEntry: Decodable {
    var config: String
    var repoTags: [String]?
    var layers: [String]

    enum CodingKeys: String, CodingKey {
        case config = "Config"
        case repoTags = "RepoTags"
        case layers = "Layers"
    }
}

/// An OCI descriptor (in index.json and image manifests).
struct OCIDescriptor: Decodable {
    var mediaType: String?
    var digest: String
    var size: Int64?
    var annotations: [String: String]?
}

/// `index.json`, or an image index blob.
struct OCIIndex: Decodable {
    var schemaVersion: Int?
    var mediaType: String?
    var manifests: [OCIDescriptor]
}

/// An OCI (or Docker v2 schema 2) image manifest.
struct OCIImageManifest: Decodable {
    var schemaVersion: Int?
    var mediaType: String?
    var config: OCIDescriptor
    var layers: [OCIDescriptor]
}

/// The image config (`application/vnd.oci.image.config.v1+json`), the fields we read.
struct ImageConfigJSON: Decodable {
    var architecture: String?
    var os: String?
    var variant: String?
    var config: ContainerConfig?
    var rootfs: RootFS?

    struct RootFS: Decodable {
        var type: String?
        var diffIDs: [String]?

        enum CodingKeys: String, CodingKey {
            case type
            case diffIDs = "diff_ids"
        }
    }

    struct ContainerConfig: Decodable {
        var env: [String]?
        var cmd: [String]?
        var entrypoint: [String]?
        var workingDir: String?
        var user: String?
        var labels: [String: String]?
        var exposedPorts: [String: AnyJSON]?
        var healthcheck: Healthcheck?

        enum CodingKeys: String, CodingKey {
            case env = "Env"
            case cmd = "Cmd"
            case entrypoint = "Entrypoint"
            case workingDir = "WorkingDir"
            case user = "User"
            case labels = "Labels"
            case exposedPorts = "ExposedPorts"
            case healthcheck = "Healthcheck"
        }
    }

    struct Healthcheck: Decodable {
        var test: [String]?

        enum CodingKeys: String, CodingKey {
            case test = "Test"
        }
    }
}

/// Accepts and discards any JSON value.
struct AnyJSON: Decodable {
    init(from decoder: any Decoder) throws {}
}
