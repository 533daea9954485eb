import CaissonCore

/// Someone else acting on the host while Caisson works: an operator, a watchdog, another tool.
/// The service's world is not Caisson's alone; these are the outsiders the update must survive
/// (or, where it cannot, stop safely and say so). Each fires at most once, at the first call
/// that matches its selectors, before or after the call's body (whatever the call's fault).
public struct SimIntervention: Sendable, Equatable, Codable {
    public enum When: String, Sendable, Equatable, Codable {
        case before, after
    }

    public enum Action: Sendable, Equatable, Codable, CustomStringConvertible {
        /// `docker run -d --name NAME IMAGE` by someone else (no Caisson label), if the name is free.
        case occupyName(String, imageReference: String)
        /// `docker rm -f NAME`, if such a container exists.
        case forceRemove(String)
        /// A stray container of a Compose service (its project/service labels, container number
        /// `number`), running `imageReference`: e.g. `docker compose up -d --scale` with an old file.
        case composeReplica(ComposeTarget, imageReference: String, number: Int)
        /// `docker tag OTHER REFERENCE`: the reference now names OTHER's image, if OTHER exists.
        case retag(String, to: String)

        public var description: String {
            switch self {
            case .occupyName(let n, let ref): return "outsider runs container \(n) (\(ref))"
            case .forceRemove(let n): return "outsider force-removes container \(n)"
            case .composeReplica(let t, let ref, let n): return "outsider starts replica \(n) of compose service \(t.project)/\(t.service) on \(ref)"
            case .retag(let ref, let other): return "outsider tags \(other) as \(ref)"
            }
        }
    }

    public var operation: SimOperation?
    public var operationIndex: Int?
    public var callIndex: Int?
    public var when: When
    public var action: Action

    public init(_ action: Action, _ when: When, operation: SimOperation? = nil, nth operationIndex: Int? = nil,
                callIndex: Int? = nil) {
        self.operation = operation
        self.operationIndex = operationIndex
        self.callIndex = callIndex
        self.when = when
        self.action = action
    }

    func matches(_ when: When, _ op: SimOperation, _ index: Int, _ opIndex: Int) -> Bool {
        when == self.when && (callIndex == nil || callIndex == index) && (operation == nil || operation == op)
            && (operationIndex == nil || operationIndex == opIndex)
    }
}

/// What an intervention did.
public struct SimInterventionRecord: Sendable, Equatable {
    public var action: SimIntervention.Action
    public var callIndex: Int
    public var atMillis: Int64
    /// False when there was nothing to do (the name was taken, nothing to remove).
    public var applied: Bool
    /// The container it created, if any.
    public var containerID: String?
}

extension SimulatedHost {
    func intervene(_ when: SimIntervention.When, _ op: SimOperation, _ index: Int, _ opIndex: Int) {
        var i = 0
        while i < interventions.count {
            if interventions[i].matches(when, op, index, opIndex) {
                let action = interventions.remove(at: i).action
                let (applied, id) = perform(action)
                interventionLog.append(SimInterventionRecord(action: action, callIndex: index, atMillis: clock.nowMillis,
                                                             applied: applied, containerID: id))
                if recordTrace { trace.append("t=\(clock.nowMillis) \(action)\(applied ? "" : " (nothing to do)")") }
                digest(action.description)
            } else {
                i += 1
            }
        }
    }

    private func perform(_ action: SimIntervention.Action) -> (Bool, String?) {
        switch action {
        case .occupyName(let name, let ref):
            guard state.names[name] == nil, case .found(let imageID) = lookupImage(ref), let image = state.images[imageID] else {
                return (false, nil)
            }
            let c = makeContainer(name: name, image: image, imageReference: ref, config: SimContainerConfig(), extraLabels: [:])
            insert(c)
            _ = try? userStart(c.id)
            return (true, c.id)
        case .forceRemove(let name):
            guard let id = state.names[name] else { return (false, nil) }
            deleteContainer(id)
            return (true, id)
        case .composeReplica(let target, let ref, let number):
            let name = target.project + "-" + target.service + "-" + String(number)
            guard state.names[name] == nil, let svc = state.compose[Self.composeKey(target)],
                  case .found(let imageID) = lookupImage(ref), let image = state.images[imageID] else { return (false, nil) }
            let labels: [String: String] = [
                Self.composeProjectLabel: target.project,
                Self.composeServiceLabel: target.service,
                "com.docker.compose.container-number": String(number),
                "com.docker.compose.oneoff": "False",
                "com.docker.compose.project.config_files": target.file,
                Self.composeConfigHashLabel: Self.composeConfigHash(imageReference: ref, config: svc.config),
                "com.docker.compose.image": image.id,
            ]
            let c = makeContainer(name: name, image: image, imageReference: ref, config: svc.config, extraLabels: labels)
            insert(c)
            _ = try? userStart(c.id)
            return (true, c.id)
        case .retag(let ref, let other):
            guard case .found(let imageID) = lookupImage(other), (try? doTagImage(imageID, as: ref)) != nil else { return (false, nil) }
            return (true, nil)
        }
    }
}
