import CaissonCore

/// Containers sharing another container's network namespace (`docker run --network
/// container:NAME`, Compose `network_mode: service:X`), as measured on Docker 20.10:
/// - Docker stores `container:<full id>` even when given a name, so the link is to that
///   container, not to whoever holds its name later;
/// - create refuses a hostname or published ports in that mode ("conflicting options");
/// - at start the container joins the owner's namespace (the owner must be running, else
///   "cannot join network of a non running container") and takes the owner's hostname into
///   its `Config.Hostname`;
/// - when the owner's run ends (stopped, restarted, removed), a joined container keeps running
///   but has lost its network, until it is started again against a running owner.
extension SimulatedHost {
    /// Validates and normalizes a config's network settings for create, as Docker does.
    func checkNetworkConfig(_ config: inout SimContainerConfig) throws(HostError) {
        guard let mode = config.networkMode, mode.hasPrefix("container:") else { return }
        let owner = String(mode.dropFirst("container:".count))
        guard !owner.isEmpty else {
            throw HostError(.failed, "Invalid network mode: invalid container format container:<name|id>")
        }
        if config.hostname != nil {
            throw HostError(.failed, "conflicting options: hostname and the network mode")
        }
        if !Self.hostBindings(config.ports).isEmpty {
            throw HostError(.failed, "conflicting options: port publishing and the container type network mode")
        }
        // A name is resolved to the id now (an unknown owner is kept as given: start fails).
        if let id = try? resolveContainer(owner) { config.networkMode = "container:" + id }
    }

    /// The owner a `container:` mode container must join, or nil when it has no such mode.
    func networkOwnerID(_ c: SimContainer) -> String?? {
        guard let mode = c.config.networkMode, mode.hasPrefix("container:") else { return .none }
        let owner = String(mode.dropFirst("container:".count))
        return .some((try? resolveContainer(owner)) ?? nil)
    }

    /// Joins `c` to its owner's namespace for the run starting now. Returns the error Docker
    /// gives when it cannot (no owner, or an owner that is not running); nil when it joined or
    /// needs no owner.
    func joinNetwork(_ c: inout SimContainer) -> String? {
        guard let resolved = networkOwnerID(c) else {
            c.joinedNetwork = nil
            return nil
        }
        let mode = c.config.networkMode ?? ""
        guard let ownerID = resolved, let owner = state.containers[ownerID] else {
            return "No such container: \(mode.dropFirst("container:".count))"
        }
        guard owner.status == .running else {
            return "cannot join network of a non running container: \(ownerID)"
        }
        c.joinedNetwork = SimNetworkJoin(ownerID: ownerID, ownerStartedAt: owner.startedAt)
        c.config.hostname = owner.config.hostname ?? String(owner.id.prefix(12))
        return nil
    }

    /// Whether a running `container:` mode container still has its network: its owner is still
    /// in the run whose namespace it joined.
    func hasNetwork(_ c: SimContainer) -> Bool {
        guard c.status == .running, let join = c.joinedNetwork else { return true }
        guard let owner = state.containers[join.ownerID] else { return false }
        return owner.status == .running && owner.startedAt == join.ownerStartedAt
    }

    /// Running containers that lost the network namespace they joined, sorted by name.
    public var containersWithoutNetwork: [ContainerInfo] {
        advanceAll()
        let now = clock.nowMillis
        return state.containers.values.filter { !hasNetwork($0) }.sorted { $0.name < $1.name }.map { $0.info(at: now) }
    }

    /// Whether the container named `name` runs with its network (false when it is missing).
    public func hasNetwork(named name: String) -> Bool {
        advanceAll()
        guard let id = state.names[name], let c = state.containers[id] else { return false }
        return hasNetwork(c)
    }

    /// Creates a copy of `template` (its image, its configuration) that joins the network
    /// namespace of `owner` instead: `--network container:<owner>`, without what Docker refuses
    /// in that mode.
    func doCreateDependentContainer(name: String, cloning template: String, networkOwner owner: String,
                                    labels: [String: String]) throws(HostError) -> String {
        guard SimReference.isValidContainerName(name) else {
            throw HostError(.failed, "Invalid container name (\(name)), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        }
        if let holder = state.names[name] {
            throw HostError(.conflict, "Conflict. The container name \"/\(name)\" is already in use by container \"\(holder)\". You have to remove (or rename) that container to be able to reuse that name.")
        }
        guard let templateID = try resolveContainer(template), let t = state.containers[templateID] else {
            throw HostError(.notFound, "No such container: \(template)")
        }
        guard let ownerID = try resolveContainer(owner) else { throw HostError(.notFound, "No such container: \(owner)") }
        guard let image = state.images[t.imageID] else { throw HostError(.notFound, "No such image: \(t.imageID)") }
        var config = t.config
        config.networkMode = "container:" + ownerID
        config.hostname = nil
        config.ports = []
        for (k, v) in labels { config.labels[k] = v }
        try checkNetworkConfig(&config)
        let c = makeContainer(name: name, image: image, imageReference: t.imageReference, config: config, extraLabels: [:])
        insert(c)
        return c.id
    }

    /// Compose: `network_mode: service:X` names X's container (the first running one, else the
    /// first), as `container:<id>`; other modes are kept.
    func resolvedComposeNetworkMode(_ svc: SimComposeService) throws(HostError) -> String? {
        guard let mode = svc.config.networkMode, mode.hasPrefix("service:") else { return svc.config.networkMode }
        let name = String(mode.dropFirst("service:".count))
        let target = ComposeTarget(project: svc.target.project, file: svc.target.file, service: name)
        let members = composeMembers(target)
        guard let owner = members.first(where: { $0.status == .running }) ?? members.first else {
            throw HostError(.failed, "service \(svc.target.service) depends on service \(name) which has no container")
        }
        return "container:" + owner.id
    }

    /// Services of the project sharing `target`'s network namespace, sorted.
    func composeNetworkDependents(_ target: ComposeTarget) -> [String] {
        state.compose.values.filter {
            $0.target.project == target.project && $0.target.file == target.file && $0.config.networkMode == "service:" + target.service
        }.map(\.target.service).sorted()
    }
}
