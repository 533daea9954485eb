import CaissonCore

/// `docker compose -p P -f FILE up -d --no-deps SERVICE`, as Compose v2 converges one service.
extension SimulatedHost {
    public static let composeProjectLabel = "com.docker.compose.project"
    public static let composeServiceLabel = "com.docker.compose.service"
    public static let composeConfigHashLabel = "com.docker.compose.config-hash"

    static func composeKey(_ t: ComposeTarget) -> String { t.project + "/" + t.service }

    static func canonicalName(_ t: ComposeTarget) -> String { t.project + "-" + t.service + "-1" }

    /// Stands in for Compose's hash of the service's resolved configuration (image string included).
    static func composeConfigHash(imageReference: String, config: SimContainerConfig) -> String {
        var h = FNV1a64()
        h.add(imageReference); h.add(byte: 0)
        h.add(config.restartPolicy.description); h.add(byte: 0)
        func add(_ list: [String]) {
            for s in list { h.add(s); h.add(byte: 1) }
            h.add(byte: 0)
        }
        add(config.env); add(config.cmd); add(config.ports); add(config.mounts); add(config.networks)
        if !config.labels.isEmpty {
            for k in config.labels.keys.sorted() { h.add(k); h.add(byte: 2); h.add(config.labels[k] ?? ""); h.add(byte: 1) }
        }
        h.add(Int64(config.stopGraceSecs))
        var out = [UInt8]()
        appendHex(h.value, digits: 16, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    func composeMembers(_ target: ComposeTarget) -> [SimContainer] {
        composeMemberIndices(target).map { state.containers.values[$0] }
    }

    /// Where the service's containers are in `state.containers`, sorted by name (no copies of
    /// the containers: this runs at every health poll of a Compose service).
    func composeMemberIndices(_ target: ComposeTarget) -> [Dictionary<String, SimContainer>.Index] {
        var out: [Dictionary<String, SimContainer>.Index] = []
        let key = SimContainer.ComposeKey(project: target.project, service: target.service)
        let values = state.containers.values
        var i = values.startIndex
        while i != values.endIndex {
            if values[i].composeKey == key { out.append(i) }
            values.formIndex(after: &i)
        }
        if out.count > 1 { out.sort { values[$0].name < values[$1].name } }
        return out
    }

    /// Like Docker's driver, which reads the project model first: a service the compose file does
    /// not define (or another file than the service's) is an error, not an empty list.
    func doComposeContainers(_ target: ComposeTarget) throws(HostError) -> [ContainerInfo] {
        guard let svc = state.compose[Self.composeKey(target)], svc.target.file == target.file else {
            let defined = state.compose.values.filter { $0.target.file == target.file && $0.target.project == target.project }
                .map(\.target.service).sorted()
            if defined.isEmpty {
                throw HostError(.failed, "open \(target.file): no such file or directory")
            }
            throw HostError(.failed, "compose file \(target.file) (project \(target.project)) has no service \"\(target.service)\"; it defines: \(defined.joined(separator: ", "))")
        }
        let now = clock.nowMillis
        let values = state.containers.values
        return composeMemberIndices(target).map { values[$0].info(at: now) }
    }

    /// Creates the service's container `<project>-<service>-1` (not started).
    /// Where the simulated Compose writes the one-off override of an `up` with another image than
    /// the file's (a temporary file, gone once `up` returns, as DockerHost's).
    public static let overrideFile = "/tmp/caisson-compose-sim/caisson-override.yaml"
    public static let composeConfigFilesLabel = "com.docker.compose.project.config_files"

    func composeCreate(_ svc: SimComposeService, image: SimImage, imageReference: String,
                       configHash: String? = nil) throws(HostError) -> SimContainer {
        let name = Self.canonicalName(svc.target)
        if let holder = state.names[name] {
            throw HostError(.failed, "Error response from daemon: Conflict. The container name \"/\(name)\" is already in use by container \"\(holder)\"")
        }
        let labels: [String: String] = [
            Self.composeProjectLabel: svc.target.project,
            Self.composeServiceLabel: svc.target.service,
            "com.docker.compose.container-number": "1",
            "com.docker.compose.oneoff": "False",
            // An image other than the file's needs an override file: the label names it too.
            Self.composeConfigFilesLabel: svc.image == nil || svc.image == imageReference ? svc.target.file : svc.target.file + "," + Self.overrideFile,
            Self.composeConfigHashLabel: configHash ?? Self.composeConfigHash(imageReference: imageReference, config: svc.config),
            "com.docker.compose.image": image.id,
        ]
        var config = svc.config
        config.networkMode = try resolvedComposeNetworkMode(svc)
        let c = makeContainer(name: name, image: image, imageReference: imageReference, config: config,
                              extraLabels: labels)
        insert(c)
        return c
    }

    /// The operator's routine `docker compose up -d SERVICE`, the compose file as written (its
    /// own `image:`). Not a call of the updater: neither counted nor faulted. Returns what Compose
    /// did.
    @discardableResult
    public func operatorComposeUp(_ target: ComposeTarget) throws(HostError) -> String {
        advanceAll()
        guard let svc = state.compose[Self.composeKey(target)], let image = svc.image else {
            throw HostError(.failed, "no compose file image for \(target.project)/\(target.service)")
        }
        let what = try doComposeApply(target, imageReference: image)
        note("operator compose up", target.project + "/" + target.service, what)
        return what
    }

    /// Returns what Compose did, for the trace.
    func doComposeApply(_ target: ComposeTarget, imageReference: String) throws(HostError) -> String {
        guard let svc = state.compose[Self.composeKey(target)] else {
            throw HostError(.failed, "no such service: \(target.service) (project \(target.project))")
        }
        guard svc.target.file == target.file else {
            throw HostError(.failed, "open \(target.file): no such file or directory")
        }
        let image: SimImage
        switch lookupImage(imageReference) {
        case .found(let id):
            guard let found = state.images[id] else { throw HostError(.failed, "no such image: \(imageReference)") }
            image = found
        case .missing:
            throw HostError(.failed, "service \(target.service): No such image: \(imageReference) (up --pull never; no registry is reachable)")
        case .invalid:
            throw invalidReference(imageReference)
        }
        let members = composeMembers(target)
        let hash = Self.composeConfigHash(imageReference: imageReference, config: svc.config)
        // (Compose also recreates a container whose `service:` network owner was recreated.)
        let networkMode = try resolvedComposeNetworkMode(svc)
        if members.count == 1, let c = members.first, c.name == Self.canonicalName(target),
           c.imageID == image.id, c.labels[Self.composeConfigHashLabel] == hash, c.config.networkMode == networkMode {
            if c.status == .running || c.status == .restarting { return "up-to-date" }
            _ = try userStart(c.id)
            return "started " + c.name
        }
        // Recreate: stop and remove what is there, then create and start the new container.
        let grace = graceMillis(seconds: svc.config.stopGraceSecs)
        for c in members { _ = userStop(c.id, graceMillis: grace, cause: "compose") }
        for c in members { deleteContainer(c.id) }
        let created = try composeCreate(svc, image: image, imageReference: imageReference, configHash: hash)
        _ = try userStart(created.id)
        return "recreated " + created.name + " " + String(created.id.prefix(12))
    }
}
