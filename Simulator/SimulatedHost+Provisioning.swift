import CaissonCore

/// Setting up a world (tests, the CLI's `--host sim`) and looking at it (invariant checks).
/// None of these are host calls: they are not counted, faulted or given a call index, but
/// provisioning and explicit daemon restarts do add a line to the trace and the digest.
extension SimulatedHost {
    // MARK: Provisioning

    /// A deterministic 64-hex image id derived from `seed` (for fixtures).
    public static func fakeImageID(_ seed: String) -> String {
        var h = FNV1a64()
        h.add(seed)
        var rng = SplitMix64(seed: h.value)
        return "sha256:" + hex64(&rng)
    }

    /// Puts an image in the store (as if loaded) and points `tags` at it.
    @discardableResult
    public func addImage(id: String, tags: [String] = [], config: ImageConfig = ImageConfig(),
                         sizeBytes: Int64 = 0, layers: [String]? = nil) throws(HostError) -> String {
        guard let canonical = SimReference.canonicalImageID(id) else {
            throw HostError(.failed, "invalid image id \"\(id)\" (want sha256:<hex>)")
        }
        var norms: [String] = []
        for t in tags {
            guard let n = normalized(t), !n.utf8.contains(UInt8(ascii: "@")) else { throw invalidReference(t) }
            norms.append(n)
        }
        if state.images[canonical] == nil {
            // Without given layers: one of its own, derived from its id (a layer no other image has).
            state.images[canonical] = SimImage(id: canonical, repoTags: [], config: config, sizeBytes: max(0, sizeBytes),
                                               layers: layers ?? [SHA256.hash(Array(("sim-layer " + canonical).utf8)).prefixed])
            state.freeDiskBytes = saturatingAdd(state.freeDiskBytes, -max(0, sizeBytes))
        }
        for n in norms { moveTag(n, to: canonical) }
        note("provision image", canonical, norms.joined(separator: ","))
        return canonical
    }

    /// `docker run -d` (or `docker create` when `start` is false). Returns the container id.
    @discardableResult
    public func runContainer(name: String, imageReference: String, restartPolicy: SimRestartPolicy = .no,
                             labels: [String: String] = [:], env: [String] = [], ports: [String] = [],
                             stopTimeoutSecs: Int? = 10, networkMode: String? = nil, hostname: String? = nil,
                             start: Bool = true, networks: [String] = []) throws(HostError) -> String {
        advanceAll()
        guard SimReference.isValidContainerName(name) else {
            throw HostError(.failed, "Invalid container name (\(name))")
        }
        if state.names[name] != nil { throw HostError(.conflict, "The container name \"/\(name)\" is already in use") }
        guard case .found(let imageID) = lookupImage(imageReference), let image = state.images[imageID] else {
            throw HostError(.notFound, "No such image: \(imageReference)")
        }
        var config = SimContainerConfig(env: env, restartPolicy: restartPolicy, labels: labels, ports: ports,
                                        networks: networks, stopTimeoutSecs: stopTimeoutSecs, networkMode: networkMode, hostname: hostname)
        try checkNetworkConfig(&config)
        let c = makeContainer(name: name, image: image, imageReference: imageReference, config: config, extraLabels: [:])
        insert(c)
        note("provision container", name, c.id, imageReference, "restart=" + restartPolicy.description)
        if start { _ = try userStart(c.id) }
        return c.id
    }

    /// Registers a compose service (what its compose file says) and brings it up, as
    /// `docker compose up -d` would: container `<project>-<service>-1`, running. Returns its id.
    @discardableResult
    public func provisionCompose(target: ComposeTarget, imageReference: String,
                                 restartPolicy: SimRestartPolicy = .unlessStopped, labels: [String: String] = [:],
                                 env: [String] = [], ports: [String] = [], stopTimeoutSecs: Int? = 10,
                                 networkMode: String? = nil, start: Bool = true) throws(HostError) -> String {
        advanceAll()
        guard case .found(let imageID) = lookupImage(imageReference), let image = state.images[imageID] else {
            throw HostError(.notFound, "No such image: \(imageReference)")
        }
        let svc = SimComposeService(target: target, config: SimContainerConfig(
            env: env, restartPolicy: restartPolicy, labels: labels, ports: ports, stopTimeoutSecs: stopTimeoutSecs,
            networkMode: networkMode),
            image: imageReference)
        state.compose[Self.composeKey(target)] = svc
        let c = try composeCreate(svc, image: image, imageReference: imageReference)
        note("provision compose", target.project + "/" + target.service, c.id, imageReference)
        if start { _ = try userStart(c.id) }
        return c.id
    }

    /// Free space for image loads (each load of a new image consumes its archive length).
    public var freeDiskBytes: Int64 {
        get { state.freeDiskBytes }
        set { state.freeDiskBytes = newValue }
    }

    /// A load needs `length * multiplier + marginBytes` free bytes (default 1x + 0; the real
    /// `DockerHost` preflight asks for 2x + 64 MiB). It then consumes `length`.
    public func imageStorage(forArchiveBytes length: Int64) -> ImageStorage? {
        let (scaled, o1) = length.multipliedReportingOverflow(by: max(1, state.loadSpaceMultiplier))
        let (needed, o2) = scaled.addingReportingOverflow(max(0, state.loadSpaceMarginBytes))
        return ImageStorage(path: "/var/lib/docker (simulated)", freeBytes: state.freeDiskBytes,
                            neededBytes: o1 || o2 ? Int64.max : needed)
    }

    public func setLoadSpaceRequirement(multiplier: Int64, marginBytes: Int64) {
        state.loadSpaceMultiplier = max(1, multiplier)
        state.loadSpaceMarginBytes = max(0, marginBytes)
    }

    /// The daemon goes down (`graceful`: `systemctl restart docker`; `crash`; `powerCut`) and
    /// comes back; containers return per their restart policies (see `DaemonRestartKind`).
    /// Advances the clock by the shutdown and `daemonRestartMillis`.
    public func restartDaemon(_ kind: DaemonRestartKind = .graceful) {
        restartDaemonInternal(kind)
        note("daemon restarted", kind.rawValue)
    }

    // MARK: Observation

    /// Containers SIGKILLed before their flush ended (data lost), in order.
    public var flushKills: [SimFlushKill] { state.flushKills ?? [] }

    /// The containers named exactly `name` (zero or one: names are unique).
    public func containers(named name: String) -> [ContainerInfo] {
        advanceAll()
        guard let id = state.names[name], let c = state.containers[id] else { return [] }
        return [c.info(at: clock.nowMillis)]
    }

    /// Containers carrying label `key` (with `value`, when given), sorted by name.
    public func containers(withLabel key: String, value: String? = nil) -> [ContainerInfo] {
        advanceAll()
        let now = clock.nowMillis
        return state.containers.values
            .filter { c in c.labels[key].map { value == nil || $0 == value } ?? false }
            .sorted { $0.name < $1.name }
            .map { $0.info(at: now) }
    }

    /// Every container, sorted by name.
    public var allContainers: [ContainerInfo] {
        advanceAll()
        let now = clock.nowMillis
        return state.containers.values.sorted { $0.name < $1.name }.map { $0.info(at: now) }
    }

    /// The container by name or id (or unique id prefix), as `inspectContainer` would see it.
    public func container(_ nameOrID: String) -> ContainerInfo? {
        advanceAll()
        guard let id = try? resolveContainer(nameOrID), let c = state.containers[id] else { return nil }
        return c.info(at: clock.nowMillis)
    }

    /// The full simulated record (config, restart policy, behaviour, ...).
    public func simContainer(_ nameOrID: String) -> SimContainer? {
        advanceAll()
        guard let id = try? resolveContainer(nameOrID) else { return nil }
        return state.containers[id]
    }

    /// The image with this id (or reference, or unique id prefix).
    public func image(_ idOrReference: String) -> ImageInfo? {
        guard case .found(let id) = lookupImage(idOrReference) else { return nil }
        return state.images[id]?.info
    }

    /// Every image, sorted by id.
    public var allImages: [ImageInfo] {
        state.images.keys.sorted().compactMap { state.images[$0]?.info }
    }

    /// The id `reference` resolves to (a tag, an id or a unique id prefix), if any.
    public func imageIDForReference(_ reference: String) -> String? {
        guard case .found(let id) = lookupImage(reference) else { return nil }
        return id
    }

    /// What the compose file of `target` says, if it was provisioned.
    public func composeService(_ target: ComposeTarget) -> SimComposeService? {
        state.compose[Self.composeKey(target)]
    }
}
