/// The narrow interface the updater needs from a container runtime. Two bodies implement it:
/// `DockerHost` (Docker Engine API + Compose) and `SimulatedHost` (deterministic, in-process).
///
/// Every call either returns, or throws a `HostError` saying whether the operation definitely did
/// not happen (`.failed`, `.notFound`, `.conflict`, `.diskFull`) or may have happened
/// (`.indeterminate`: a timeout or a dropped connection). After an indeterminate outcome the
/// caller must inspect before acting again.
///
/// Calls are synchronous: the update machine runs one step at a time, so the simulator needs no
/// concurrency at all and a seed fully determines a run.
///
/// Evidence and probes (`containerDetails`, `containerLogs`, `probe`) are reads: they never change
/// what runs (an exec probe runs a command inside the container, nothing more).
public protocol ContainerHost: AnyObject {
    /// Is the runtime reachable? Returns a short description (e.g. "Docker 28.2.2, API 1.47").
    func ping() throws(HostError) -> String

    // MARK: Images

    /// Load an image archive (`docker save` output) whose bytes are the file range
    /// `payload.path[offset ..< offset+length]` (the `image.tar` entry inside a staged package).
    /// Implementations stream it; they never hold the whole archive in memory.
    /// Returns the image as the runtime now knows it under `payload.reference`.
    func loadImage(_ payload: ImagePayload, progress: (Int64) -> Void) throws(HostError) -> ImageInfo
    /// `nil` when no image has that reference or id.
    func inspectImage(_ reference: String) throws(HostError) -> ImageInfo?
    /// Point `reference` at the image `imageID` (moving the tag if it pointed elsewhere).
    func tagImage(_ imageID: String, as reference: String) throws(HostError)
    /// Remove a tag, or an image by id when unused. Not-found is success.
    func removeImage(_ reference: String) throws(HostError)

    // MARK: Containers (Docker mode)

    /// `nil` when no container has that name or id.
    func inspectContainer(_ nameOrID: String) throws(HostError) -> ContainerInfo?
    /// Create (not start) a container named `name` that carries the operator's configuration of
    /// `template` (env, ports, mounts, restart policy, networks, labels, resources, ...) but runs
    /// `imageID`, taking the new image's defaults where the template only had its old image's
    /// defaults. `labels` are added to the new container (the updater marks what it created).
    func createContainer(name: String, cloning template: String, imageID: String,
                         labels: [String: String]) throws(HostError) -> String
    /// Create (not start) a copy of `template` (its image and configuration) that shares the
    /// network namespace of container `owner` (`--network container:<owner>`), without what
    /// Docker refuses in that mode (a hostname, published or exposed ports, DNS settings, links).
    /// For the containers that shared the namespace of a container being replaced.
    func createDependentContainer(name: String, cloning template: String, networkOwner owner: String,
                                  labels: [String: String]) throws(HostError) -> String
    func startContainer(_ nameOrID: String) throws(HostError)
    /// Stop with a grace period (SIGTERM, then SIGKILL after `graceSecs`). Already stopped is success.
    func stopContainer(_ nameOrID: String, graceSecs: Int) throws(HostError)
    func renameContainer(_ nameOrID: String, to newName: String) throws(HostError)
    /// Force-remove. Not-found is success.
    func removeContainer(_ nameOrID: String) throws(HostError)
    /// Remove a container that is not running, never killing it: `.conflict` when it runs (a
    /// daemon restart may have started it again since it was stopped). Not-found is success.
    func removeStoppedContainer(_ nameOrID: String) throws(HostError)
    /// Containers in any state whose name starts with one of `namePrefixes`, or that carry the
    /// label `label` (any value), sorted by name: the marks an update leaves while it runs
    /// (`NAME-caisson-new-…`, `NAME-caisson-rollback-…`, `io.caisson.update-id`).
    func listContainers(namePrefixes: [String], label: String?) throws(HostError) -> [ContainerInfo]

    /// Every container on the host (running or not), sorted by name.
    func listContainers() throws(HostError) -> [ContainerInfo]

    // MARK: Compose mode

    /// What the compose file says of the service (its `image:`, the services sharing its network
    /// namespace). Reads the project model; changes nothing.
    func composeServiceFacts(_ target: ComposeTarget) throws(HostError) -> ComposeServiceFacts
    /// `docker compose -p P -f FILE up -d --no-deps SERVICES...`, the file as written: Compose
    /// recreates those whose configuration changed (a service sharing a recreated service's
    /// network namespace, `network_mode: service:X`, is joined to the new container).
    func composeUp(_ target: ComposeTarget, services: [String]) throws(HostError)

    /// The containers currently belonging to the compose service, sorted by name.
    func composeContainers(_ target: ComposeTarget) throws(HostError) -> [ContainerInfo]
    /// `docker compose -p P -f FILE -f OVERRIDE up -d --no-deps SERVICE`, the override pinning
    /// only the service's image to `imageReference`.
    func composeApply(_ target: ComposeTarget, imageReference: String) throws(HostError)

    /// Whether the service's own settings give its containers a healthcheck, whatever the image
    /// says: a container-level `--health-cmd` (Docker mode, one that differs from its image's, so
    /// an update carries it over) or a Compose `healthcheck:`. True: one is set; false: it is
    /// explicitly disabled; nil: the image's applies (or the host cannot tell). For the preflight.
    func configuredHealthcheck(for service: ServiceSpec) throws(HostError) -> Bool?
    // MARK: Evidence and probes (issue 12)

    /// The container's full state, network addresses and environment; `nil` when it does not
    /// exist. (Docker: one `GET /containers/{id}/json`.)
    func containerDetails(_ nameOrID: String) throws(HostError) -> ContainerDetails?
    /// The end of the container's log, stdout and stderr demultiplexed, within `limit`.
    func containerLogs(_ nameOrID: String, limit: LogLimit) throws(HostError) -> LogTail
    /// Run one health probe: http/tcp from the device to a container address, exec inside a
    /// container. Never waits much past `timeoutMillis`: a probe that hangs answers `.noAnswer`.
    func probe(_ request: ProbeRequest, timeoutMillis: Int64) throws(HostError) -> ProbeAnswer

    /// Every image the runtime holds (untagged and intermediate ones too), with its layers,
    /// sorted by id: what a device inventory reports and which layer chains are present
    /// (Docker: `GET /images/json?all=1`, then each inspected).
    func listImages() throws(HostError) -> [ImageInfo]

    /// For the plan and the preflight: free space where images go (see the extension's default).
    func imageStorage(forArchiveBytes length: Int64) -> ImageStorage?
    /// Whether `loadImage` streams the archive and honours `ImagePayload.gate` (default false).
    var streamsImageArchives: Bool { get }
}

/// What a compose file says of one service.
public struct ComposeServiceFacts: Sendable, Equatable, Codable {
    /// `image:` after interpolation; nil for a build-only service.
    public var image: String?
    /// Other services of the project with `network_mode: service:<this one>`, sorted.
    public var networkDependents: [String]

    public init(image: String?, networkDependents: [String] = []) {
        self.image = image
        self.networkDependents = networkDependents
    }
}

/// Where the runtime keeps images, how much room is left, and how much a load would need.
public struct ImageStorage: Sendable, Equatable {
    public var path: String
    public var freeBytes: Int64
    public var neededBytes: Int64
    public init(path: String, freeBytes: Int64, neededBytes: Int64) {
        self.path = path
        self.freeBytes = freeBytes
        self.neededBytes = neededBytes
    }
    public var isEnough: Bool { freeBytes >= neededBytes }
}

extension ContainerHost {
    /// By default the image's healthcheck applies (the simulator's containers set none of their own).
    public func configuredHealthcheck(for service: ServiceSpec) throws(HostError) -> Bool? { nil }

    /// Free space for loading an archive of `length` bytes; nil when the host cannot tell.
    public func imageStorage(forArchiveBytes length: Int64) -> ImageStorage? { nil }

    /// `createContainer(name:cloning:imageID:labels:)` with the new container's image named by
    /// `reference` (its `Config.Image`: what `docker ps` shows) rather than a bare `sha256:` id.
    /// The id it got is checked after create: when the reference no longer names `imageID` (the
    /// tag moved), that container is removed and the image is given by id instead.
    public func createContainer(name: String, cloning template: String, reference: String, imageID: String,
                                labels: [String: String]) throws(HostError) -> String {
        let id = try createContainer(name: name, cloning: template, imageID: reference, labels: labels)
        let made: ContainerInfo?
        do {
            made = try inspectContainer(id)
        } catch {
            // Created, but what it runs is unknown: never leave it for the caller to start.
            try? removeContainer(id)
            throw HostError(.indeterminate, "created \(name) but could not check its image: \(error.message)")
        }
        if made?.imageID == imageID { return id }
        try removeContainer(id)
        return try createContainer(name: name, cloning: template, imageID: imageID, labels: labels)
    }

    /// Whether `loadImage` streams the archive's bytes and honours `ImagePayload.gate` (so the
    /// updater may start it while validation still runs). False unless the host says so.
    public var streamsImageArchives: Bool { false }
}

/// Where an image archive's bytes are, and what validation found inside it.
public struct ImagePayload: Sendable, Equatable {
    public var path: String
    public var offset: Int64
    public var length: Int64
    /// `[image] reference` of the manifest: the only tag the archive applies (validated).
    public var reference: String
    /// The image id (config digest) inspected at validation.
    public var expectedImageID: String
    /// The image config as inspected at validation (the simulator scripts behaviour from labels).
    public var config: ImageConfig
    /// SHA-256 (hex) of the archive bytes, when validation computed it: a host that streams the
    /// archive hashes what it sends and withholds the end of the upload unless it matches.
    public var sha256: String?
    /// The file as it was when it was validated: a host that streams the archive checks, before
    /// the end of the upload, that the file is still that file (not modified, not replaced).
    public var identity: FileIdentity?
    /// When set, a host that streams the archive holds the end of the upload until the gate
    /// decides (see `UploadGate`); `ContainerHost.streamsImageArchives` says whether it does.
    public var gate: UploadGate?
    /// When set, `[offset, offset + length)` is an age file of the archive (`image.tar.age`): the
    /// host decrypts it as it reads, hands on only authenticated chunks, and (streaming hosts)
    /// ends the upload only after the final chunk authenticated and `sha256` (of the plaintext)
    /// matched. A host that cannot decrypt must refuse the payload.
    public var encryption: ImageEncryption?
    /// With `encryption` and `gate`, on a streaming host: the upload sends this feed, the
    /// plaintext validation decrypts and authenticates as it reads the age file (one decryption
    /// for both), instead of decrypting the file again. Its end comes only once the final chunk
    /// authenticated; the gate, released only after validation accepted (both digests of the
    /// signed manifest matched), still decides whether that end reaches the host.
    public var plaintextFeed: PlaintextFeed?
    /// How the archive is stored: the bytes go to the host as they are (`docker load` reads gzip).
    public var compression: ImageCompression = .none
    /// The size of the tar stream inside a compressed archive, when validation read it all.
    public var unpackedLength: Int64?

    /// What the host unpacks: the tar stream's size (the archive's size when not compressed, or
    /// when validation did not read it all).
    public var unpackedBytes: Int64 { max(length, unpackedLength ?? length) }
    /// The image's layer DiffIDs (bottom first), as its config lists them: what the loaded image
    /// must report (a host that knows an image's layers checks them).
    public var diffIDs: [String] = []
    /// A thin archive (issue 16) leaves out these layers, by ChainID: the runtime must already
    /// hold them, or the load fails and loads nothing (as `docker load` does).
    public var requiredChainIDs: [String] = []

    public init(path: String, offset: Int64, length: Int64, reference: String,
                expectedImageID: String, config: ImageConfig) {
        self.path = path
        self.offset = offset
        self.length = length
        self.reference = reference
        self.expectedImageID = expectedImageID
        self.config = config
    }
}

/// How to decrypt an encrypted image archive: the file key validation unwrapped (no identity or
/// passphrase work again) and the plaintext size.
public struct ImageEncryption: Sendable, Equatable {
    public var fileKey: AgeFileKey
    public var plaintextSize: Int64

    public init(fileKey: AgeFileKey, plaintextSize: Int64) {
        self.fileKey = fileKey
        self.plaintextSize = plaintextSize
    }
}

/// Reads the image archive of a payload as the host must send it: the byte range as it is, or
/// (encrypted) its decryption, authenticated chunk by chunk; hashes what it hands out and, at the
/// end, checks it against `payload.sha256`. Shared by the Docker body (streamed upload) and the
/// simulator (which reads the whole archive before "loading", as the daemon does).
public final class PayloadArchiveReader {
    private enum Inner {
        case clear(FileByteSource)
        case encrypted(AgeDecryptingSource<FileByteSource>)
    }
    private var inner: Inner
    private var sha = SHA256()
    private let expected: String?
    /// Archive bytes handed out.
    public private(set) var count: Int64 = 0

    /// Opens the payload's range (the header of an encrypted one is read and checked here).
    public init(_ payload: ImagePayload, open: (String, Int64, Int64) throws -> FileByteSource) throws {
        let file = try open(payload.path, payload.offset, payload.length)
        if let e = payload.encryption {
            inner = .encrypted(try AgeDecryptingSource(file, fileKey: e.fileKey))
        } else {
            inner = .clear(file)
        }
        expected = payload.sha256?.lowercased()
    }

    /// Fills `buffer`; 0 at the end, once the end checks passed (throws otherwise).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n: Int
        switch inner {
        case .clear(let f): n = try f.read(into: buffer)
        case .encrypted(let a): n = try a.read(into: buffer)
        }
        if n > 0 {
            sha.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            count += Int64(n)
            return n
        }
        if case .encrypted(let a) = inner, !a.isComplete {
            throw AgeError(.payloadInvalid, "the encrypted image ended before its final chunk")
        }
        if let expected {
            let hex = sha.finalizeDigest().hex
            guard hex == expected else {
                throw CaissonError("package.changed", "the image archive read has SHA-256 \(hex), not \(expected) as validated")
            }
        }
        return 0
    }
}

/// The parts of an image config the updater reasons about.
public struct ImageConfig: Sendable, Equatable, Codable {
    public var os: String
    public var architecture: String
    public var variant: String?
    /// Sorted by key.
    public var labels: [String: String]
    public var hasHealthcheck: Bool

    public init(os: String = "linux", architecture: String = "amd64", variant: String? = nil,
                labels: [String: String] = [:], hasHealthcheck: Bool = false) {
        self.os = os
        self.architecture = architecture
        self.variant = variant
        self.labels = labels
        self.hasHealthcheck = hasHealthcheck
    }
}

public struct ImageInfo: Sendable, Equatable, Codable {
    /// `sha256:<hex>`.
    public var id: String
    public var repoTags: [String]
    public var repoDigests: [String]
    public var config: ImageConfig
    /// The image's layer DiffIDs, bottom first (Docker: `RootFS.Layers`); empty when unknown.
    public var layers: [String]

    public init(id: String, repoTags: [String], repoDigests: [String] = [], config: ImageConfig, layers: [String] = []) {
        self.id = id
        self.repoTags = repoTags
        self.repoDigests = repoDigests
        self.config = config
        self.layers = layers
    }

    enum CodingKeys: String, CodingKey {
        case id, repoTags, repoDigests, config, layers
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        repoTags = try c.decode([String].self, forKey: .repoTags)
        repoDigests = try c.decode([String].self, forKey: .repoDigests)
        config = try c.decode(ImageConfig.self, forKey: .config)
        layers = try c.decodeIfPresent([String].self, forKey: .layers) ?? []
    }
}

public enum ContainerStatus: String, Sendable, Codable, Equatable {
    case created, running, paused, restarting, removing, exited, dead
}

public enum HealthStatus: String, Sendable, Codable, Equatable {
    /// The container has no healthcheck.
    case none
    case starting, healthy, unhealthy
}

public struct ContainerInfo: Sendable, Equatable, Codable {
    public var id: String
    /// Without Docker's leading slash.
    public var name: String
    /// The image id the container runs (`sha256:<hex>`).
    public var imageID: String
    /// The reference the container was created from (Config.Image).
    public var imageReference: String
    public var status: ContainerStatus
    public var health: HealthStatus
    public var restartCount: Int
    /// An opaque marker that changes every time the container (re)starts (Docker: State.StartedAt).
    public var startedAt: String
    public var exitCode: Int
    public var labels: [String: String]
    /// Docker's `Config.StopTimeout`: the grace the container asked for between SIGTERM and
    /// SIGKILL (`docker run --stop-timeout`, Compose `stop_grace_period`); nil when unset, which
    /// means Docker's default (`ContainerInfo.defaultStopTimeoutSecs`).
    public var stopTimeoutSecs: Int?
    /// Docker's `HostConfig.NetworkMode` (`default`, `bridge`, `host`, `none`, a network name, or
    /// `container:<id>`: it shares that container's network namespace); nil when unknown.
    public var networkMode: String?

    /// Docker's stop timeout when a container sets none.
    public static let defaultStopTimeoutSecs = 10

    /// The grace to stop this container with: its own stop timeout, else Docker's default.
    public var stopGraceSecs: Int { stopTimeoutSecs ?? Self.defaultStopTimeoutSecs }

    public init(id: String, name: String, imageID: String, imageReference: String,
                status: ContainerStatus, health: HealthStatus, restartCount: Int = 0,
                startedAt: String = "", exitCode: Int = 0, labels: [String: String] = [:],
                stopTimeoutSecs: Int? = nil, networkMode: String? = nil) {
        self.id = id
        self.name = name
        self.imageID = imageID
        self.imageReference = imageReference
        self.status = status
        self.health = health
        self.restartCount = restartCount
        self.startedAt = startedAt
        self.exitCode = exitCode
        self.labels = labels
        self.stopTimeoutSecs = stopTimeoutSecs
        self.networkMode = networkMode
    }

    /// The container whose network namespace this one shares (`container:<id or name>`).
    public var networkOwner: String? {
        guard let mode = networkMode, mode.hasPrefix("container:") else { return nil }
        let owner = String(mode.dropFirst("container:".count))
        return owner.isEmpty ? nil : owner
    }

    public var isRunning: Bool { status == .running }
}

public struct HostError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable, Codable {
        /// Definitely did not happen.
        case failed
        /// The named object does not exist.
        case notFound
        /// A name is already in use.
        case conflict
        /// No space left on the runtime's storage.
        case diskFull
        /// The runtime cannot be reached at all (nothing happened).
        case unreachable
        /// Timed out or connection dropped: the operation may or may not have happened.
        case indeterminate
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var isIndeterminate: Bool { kind == .indeterminate }
    public var description: String { message }
}

/// Time, injected. The simulator's clock is virtual; the real one reads the monotonic clock.
public protocol UpdateClock: AnyObject {
    /// Milliseconds since an arbitrary origin; monotonic.
    var nowMillis: Int64 { get }
    /// Wall-clock time for records, RFC 3339 UTC (`2026-03-16T18:30:00Z`).
    func timestamp() -> String
    /// Let `millis` pass.
    func sleep(millis: Int64)
}
