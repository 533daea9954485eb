import CaissonCore

extension SimulatedHost {
    /// Docker's `GetContainer`: full id, then name (with or without the leading `/`), then unique
    /// id prefix. An ambiguous prefix is an error, as in Docker.
    func resolveContainer(_ nameOrID: String) throws(HostError) -> String? {
        let u = nameOrID.utf8
        if u.isEmpty { return nil }
        // Every key of `containers` is a full id (64 lowercase hex): a hit needs no hex check.
        if u.count == 64, state.containers[nameOrID] != nil { return nameOrID }
        if let id = state.names[nameOrID] { return id }
        if u.first == UInt8(ascii: "/"), let id = state.names[String(nameOrID.dropFirst())] { return id }
        guard u.count < 64, u.allSatisfy(SimReference.isLowerHex) else { return nil }
        var match: String? = nil
        for id in state.containers.keys where id.hasPrefix(nameOrID) {
            if match != nil {
                throw HostError(.failed, "multiple containers found with provided prefix: \(nameOrID)")
            }
            match = id
        }
        return match
    }

    /// `resolveContainer`, as a position in `state.containers` (valid until it changes).
    func resolveContainerIndex(_ nameOrID: String) throws(HostError) -> Dictionary<String, SimContainer>.Index? {
        let u = nameOrID.utf8
        if u.count == 64, let index = state.containers.index(forKey: nameOrID) { return index }
        guard let id = try resolveContainer(nameOrID) else { return nil }
        return state.containers.index(forKey: id)
    }

    func newContainerID() -> String {
        while true {
            let id = hex64(&state.idRNG)
            if state.containers[id] == nil { return id }
        }
    }

    /// Builds a created (not started) container. The caller checked the name.
    func makeContainer(name: String, image: SimImage, imageReference: String, config: SimContainerConfig,
                       extraLabels: [String: String]) -> SimContainer {
        var labels = image.config.labels
        labels.reserveCapacity(labels.count + config.labels.count + extraLabels.count)
        for (k, v) in config.labels { labels[k] = v }
        for (k, v) in extraLabels { labels[k] = v }
        var c = SimContainer(
            id: newContainerID(), name: name, imageID: image.id, imageReference: imageReference, config: config,
            labels: labels, behaviour: SimBehaviour.from(labels: image.config.labels),
            stopMode: SimStopMode.from(labels: image.config.labels), flushMillis: SimStopMode.flushMillis(labels: image.config.labels),
            hasHealthcheck: image.config.hasHealthcheck && image.config.labels["io.caisson.sim.healthcheck"] != "none",
            hostPorts: Self.hostBindings(config.ports), status: .created, exitCode: 0, restartCount: 0, startedAt: Self.neverStarted, startedAtMillis: 0,
            hasBeenStartedBefore: false, manuallyStopped: false, frozenHealth: .none, nextEventMillis: nil,
            backoffMillis: 0, createdAtMillis: clock.nowMillis)
        c.composeMembership = SimContainer.composeKey(labels: labels).map { .member($0) } ?? .none
        return c
    }

    func insert(_ c: SimContainer) {
        state.containers[c.id] = c
        state.names[c.name] = c.id
        schedule(c.nextEventMillis)
    }

    /// A user start: resets the restart count and the "stopped by the user" mark.
    func userStart(_ id: String) throws(HostError) -> String {
        guard var c = state.containers[id] else { throw HostError(.notFound, "No such container: \(id)") }
        if c.status == .running || c.status == .restarting { return "already running" }
        guard state.images[c.imageID] != nil else {
            throw HostError(.failed, "failed to start container \(c.name): image \(c.imageID) not found")
        }
        if hostPortConflict(for: c) {
            c.exitCode = 128
            state.containers[id] = c
            let ports = c.hostPorts.joined(separator: ", ")
            throw HostError(.failed, "failed to start container \(c.name): Bind for \(ports) failed: port is already allocated")
        }
        if let why = joinNetwork(&c) {
            throw HostError(.failed, "failed to start container \(c.name): \(why)")
        }
        c.restartCount = 0
        c.manuallyStopped = false
        c.backoffMillis = 0
        beginRun(&c, at: clock.nowMillis)
        state.containers[id] = c
        schedule(c.nextEventMillis)
        return "started " + c.startedAt
    }

    /// A user stop with a grace period; advances the clock if the process ignores SIGTERM.
    func userStop(_ id: String, graceMillis: Int64, cause: String = "stop") -> String {
        guard var c = state.containers[id] else { return "not found" }
        switch c.status {
        case .running:
            c.manuallyStopped = true
            let r = terminate(&c, graceMillis: graceMillis, cause: cause)
            state.containers[id] = c
            clock.advance(to: r.atMillis)
            advanceAll()
            return "exited " + String(r.code)
        case .restarting:
            // Docker cancels the pending restart; the last exit code stays.
            c.manuallyStopped = true
            c.status = .exited
            c.nextEventMillis = nil
            state.containers[id] = c
            return "exited " + String(c.exitCode)
        case .created, .paused, .removing, .exited, .dead:
            return "not running"
        }
    }

    func deleteContainer(_ id: String) {
        guard let c = state.containers.removeValue(forKey: id) else { return }
        if state.names[c.name] == id { state.names.removeValue(forKey: c.name) }
    }

    // MARK: Operations

    func doListContainers(namePrefixes: [String], label: String?) -> [ContainerInfo] {
        let now = clock.nowMillis
        return state.containers.values
            .filter { c in namePrefixes.contains { c.name.hasPrefix($0) } || label.map { c.labels[$0] != nil } == true }
            .sorted { $0.name < $1.name }
            .map { $0.info(at: now) }
    }

    func doInspectContainer(_ nameOrID: String) throws(HostError) -> ContainerInfo? {
        guard let index = try resolveContainerIndex(nameOrID) else { return nil }
        return state.containers.values[index].info(at: clock.nowMillis)
    }

    func doCreateContainer(name: String, cloning template: String, imageID: String,
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
        let image: SimImage
        switch lookupImage(imageID) {
        case .found(let id):
            guard let found = state.images[id] else { throw HostError(.notFound, "No such image: \(imageID)") }
            image = found
        case .missing: throw HostError(.notFound, "No such image: \(imageID)")
        case .invalid: throw invalidReference(imageID)
        }
        var config = t.config
        for (k, v) in labels { config.labels[k] = v }
        if config.networkMode?.hasPrefix("container:") == true {
            // As DockerHost's clone: drop what Docker refuses in that mode (the hostname Docker
            // filled in from the namespace owner at start, published ports).
            config.hostname = nil
            config.ports = []
        }
        try checkNetworkConfig(&config)
        let c = makeContainer(name: name, image: image, imageReference: imageID, config: config, extraLabels: [:])
        insert(c)
        return c.id
    }

    func doStartContainer(_ nameOrID: String) throws(HostError) -> String {
        guard let id = try resolveContainer(nameOrID) else { throw HostError(.notFound, "No such container: \(nameOrID)") }
        return try userStart(id)
    }

    func doStopContainer(_ nameOrID: String, graceSecs: Int) throws(HostError) -> String {
        guard let id = try resolveContainer(nameOrID), let c = state.containers[id] else {
            throw HostError(.notFound, "No such container: \(nameOrID)")
        }
        // Docker: a negative timeout means the container's own StopTimeout.
        let secs = graceSecs < 0 ? c.config.stopGraceSecs : min(graceSecs, 86_400 * 365)
        return userStop(id, graceMillis: graceMillis(seconds: secs))
    }

    func doRenameContainer(_ nameOrID: String, to newName: String) throws(HostError) {
        guard let id = try resolveContainer(nameOrID), var c = state.containers[id] else {
            throw HostError(.notFound, "No such container: \(nameOrID)")
        }
        let target = newName.hasPrefix("/") ? String(newName.dropFirst()) : newName
        guard SimReference.isValidContainerName(target) else {
            throw HostError(.failed, "Invalid container name (\(newName)), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        }
        if target == c.name {
            throw HostError(.failed, "Renaming a container with the same name as its current name")
        }
        if let holder = state.names[target] {
            throw HostError(.conflict, "Conflict. The container name \"/\(target)\" is already in use by container \"\(holder)\". You have to remove (or rename) that container to be able to reuse that name.")
        }
        state.names.removeValue(forKey: c.name)
        c.name = target
        state.names[target] = id
        state.containers[id] = c
    }

    func doRemoveContainer(_ nameOrID: String, force: Bool = true) throws(HostError) -> String {
        guard let id = try resolveContainer(nameOrID) else { return "not found" }
        if !force, let c = state.containers[id], c.status == .running || c.status == .restarting {
            throw HostError(.conflict, "You cannot remove a \(c.status == .running ? "running" : "restarting") container \(id). Stop the container before attempting removal or force remove")
        }
        // A force-remove of a running container is a SIGKILL, at once.
        if let c = state.containers[id], c.status == .running { recordFlushKill(c, graceMillis: 0, cause: "remove") }
        deleteContainer(id)
        return "removed " + String(id.prefix(12))
    }
}
