import CaissonHTTP
/// Filters of `GET /containers/json`.
public struct ContainerListFilters: Sendable, Equatable {
    /// Exact container names (without `/`); sent as anchored regexes and re-checked locally.
    public var names: [String]
    /// `key` or `key=value`.
    public var labels: [String]
    /// Ids or id prefixes.
    public var ids: [String]
    /// Name prefixes (without `/`); sent as anchored regexes and re-checked locally. Not combined
    /// with `names`.
    public var namePrefixes: [String]

    public init(names: [String] = [], labels: [String] = [], ids: [String] = [], namePrefixes: [String] = []) {
        self.names = names
        self.labels = labels
        self.ids = ids
        self.namePrefixes = namePrefixes
    }
}

/// `condition` of `POST /containers/{id}/wait`.
public enum ContainerWaitCondition: String, Sendable {
    case notRunning = "not-running"
    case nextExit = "next-exit"
    case removed = "removed"
}

extension DockerClient {
    /// `GET /containers/json?all=&filters=`.
    public func listContainers(all: Bool = true, filters: ContainerListFilters = ContainerListFilters()) throws -> [ContainerSummary] {
        var filterMap: [String: [String]] = [:]
        if !filters.names.isEmpty { filterMap["name"] = filters.names.map { "^/\(Self.regexEscape($0))$" } }
        else if !filters.namePrefixes.isEmpty { filterMap["name"] = filters.namePrefixes.map { "^/\(Self.regexEscape($0))" } }
        if !filters.labels.isEmpty { filterMap["label"] = filters.labels }
        if !filters.ids.isEmpty { filterMap["id"] = filters.ids }
        var query = [("all", all ? "1" : "0")]
        if !filterMap.isEmpty { query.append(("filters", Self.filtersParameter(filterMap))) }
        let response = try call("GET", "/containers/json", query: query)
        try expect(response, [200], operation: "list containers", subject: .daemon)
        let json = try decodeJSON(response, operation: "list containers")
        guard let items = json.arrayValue else {
            throw DockerError(.protocolError(indeterminate: false), "cannot list containers: the answer is not a JSON array")
        }
        var summaries = items.compactMap(ContainerSummary.init(json:))
        if !filters.names.isEmpty {
            summaries = summaries.filter { summary in summary.names.contains { filters.names.contains($0) } }
        } else if !filters.namePrefixes.isEmpty {
            summaries = summaries.filter { summary in
                summary.names.contains { name in filters.namePrefixes.contains { name.hasPrefix($0) } }
            }
        }
        return summaries
    }

    /// `GET /containers/{id}/json`.
    public func inspectContainer(_ idOrName: String) throws -> ContainerInspect {
        let operation = "inspect container '\(idOrName)'"
        let response = try call("GET", try containerPath(idOrName, "/json"))
        try expect(response, [200], operation: operation, subject: .container(idOrName))
        guard let container = ContainerInspect(json: try decodeJSON(response, operation: operation)) else {
            throw DockerError(.protocolError(indeterminate: false), "cannot \(operation): the answer has no container Id")
        }
        return container
    }

    /// Like `inspectContainer`, but `nil` when there is no such container.
    public func inspectContainerIfPresent(_ idOrName: String) throws -> ContainerInspect? {
        do {
            return try inspectContainer(idOrName)
        } catch let error as DockerError where error.isNotFound {
            return nil
        }
    }

    /// `POST /containers/create?name=`: `body` is the whole JSON object the caller built
    /// (`Image`, `Env`, ..., `HostConfig`, `NetworkingConfig`), sent as is.
    /// 404: no such image; 409: the name is already in use.
    public func createContainer(name: String?, body: JSONValue, platform: String? = nil) throws -> ContainerCreateResult {
        let operation = name.map { "create container '\($0)'" } ?? "create a container"
        guard body.objectValue != nil else {
            throw DockerError(.invalidRequest, "cannot \(operation): the create body must be a JSON object")
        }
        var query: [(String, String)] = []
        if let name {
            guard !name.isEmpty else { throw DockerError(.invalidRequest, "cannot create a container with an empty name") }
            query.append(("name", name))
        }
        if let platform { query.append(("platform", platform)) }
        let response = try call("POST", "/containers/create", query: query,
                                body: .bytes(body.serialized(), contentType: "application/json"))
        if response.status == 404 {
            let image = body["Image"]?.stringValue ?? "?"
            throw DockerError(.httpStatus(404), "cannot \(operation): no such image '\(image)'",
                              daemonMessage: Self.daemonMessage(response.body))
        }
        try expect(response, [200, 201], operation: operation, subject: .container(name ?? ""),
                   conflict: "the name is already in use by another container")
        let json = try decodeJSON(response, operation: operation)
        guard let id = json["Id"]?.stringValue, !id.isEmpty else {
            throw DockerError(.protocolError(indeterminate: true), "cannot \(operation): the answer has no container Id")
        }
        return ContainerCreateResult(id: id, warnings: json["Warnings"]?.stringArrayValue ?? [])
    }

    /// `POST /containers/{id}/start`. Returns false when it was already running (304).
    @discardableResult
    public func startContainer(_ idOrName: String) throws -> Bool {
        let response = try call("POST", try containerPath(idOrName, "/start"))
        try expect(response, [204, 304], operation: "start container '\(idOrName)'", subject: .container(idOrName))
        return response.status == 204
    }

    /// `POST /containers/{id}/stop?t=`: SIGTERM (or the container's stop signal), then SIGKILL after
    /// `graceSeconds` (nil: the container's own StopTimeout, 10 s by default). Returns false when it
    /// was already stopped (304). The call deadline is the default one plus the grace period (plus
    /// 120 s when the grace is the container's own, which this call does not know).
    @discardableResult
    public func stopContainer(_ idOrName: String, graceSeconds: Int? = nil) throws -> Bool {
        var query: [(String, String)] = []
        if let graceSeconds { query.append(("t", String(graceSeconds))) }
        var timeouts = configuration.timeouts
        if let call = timeouts.call { timeouts.call = call + .seconds(graceSeconds.map { max(0, $0) } ?? 120) }
        let response = try call("POST", try containerPath(idOrName, "/stop"), query: query, timeouts: timeouts)
        try expect(response, [204, 304], operation: "stop container '\(idOrName)'", subject: .container(idOrName))
        return response.status == 204
    }

    /// `POST /containers/{id}/rename?name=`. 409: the new name is in use.
    public func renameContainer(_ idOrName: String, to newName: String) throws {
        guard !newName.isEmpty else { throw DockerError(.invalidRequest, "cannot rename container '\(idOrName)' to an empty name") }
        let operation = "rename container '\(idOrName)' to '\(newName)'"
        let response = try call("POST", try containerPath(idOrName, "/rename"), query: [("name", newName)])
        try expect(response, [200, 204], operation: operation, subject: .container(idOrName),
                   conflict: "the name '\(newName)' is already in use by another container")
    }

    /// `DELETE /containers/{id}?force=&v=`. 409: running (without `force`) or being removed.
    public func removeContainer(_ idOrName: String, force: Bool = false, removeVolumes: Bool = false) throws {
        let response = try call("DELETE", try containerPath(idOrName),
                                query: [("force", force ? "1" : "0"), ("v", removeVolumes ? "1" : "0")])
        try expect(response, [200, 204], operation: "remove container '\(idOrName)'", subject: .container(idOrName),
                   conflict: "the container is running or being removed (stop it first, or force)")
    }

    /// `POST /containers/{id}/kill?signal=`. 409: not running.
    public func killContainer(_ idOrName: String, signal: String = "SIGKILL") throws {
        let response = try call("POST", try containerPath(idOrName, "/kill"), query: [("signal", signal)])
        try expect(response, [200, 204], operation: "kill container '\(idOrName)'", subject: .container(idOrName),
                   conflict: "the container is not running")
    }

    /// `POST /containers/{id}/wait?condition=`: blocks until the condition holds (no whole-call
    /// deadline unless `timeout` is given).
    public func waitContainer(_ idOrName: String, condition: ContainerWaitCondition = .notRunning,
                              timeout: Duration? = nil) throws -> ContainerWaitResult {
        var timeouts = configuration.timeouts
        timeouts.call = timeout
        let operation = "wait for container '\(idOrName)'"
        let response = try call("POST", try containerPath(idOrName, "/wait"), query: [("condition", condition.rawValue)],
                                timeouts: timeouts)
        try expect(response, [200], operation: operation, subject: .container(idOrName))
        let json = try decodeJSON(response, operation: operation)
        guard let code = json["StatusCode"]?.intValue else {
            throw DockerError(.protocolError(indeterminate: true), "cannot \(operation): the answer has no StatusCode")
        }
        return ContainerWaitResult(statusCode: code, error: json["Error"]?["Message"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 })
    }

    /// Escapes regex metacharacters (container names may contain `.`).
    static func regexEscape(_ text: String) -> String {
        var out = ""
        for character in text {
            if "\\^$.|?*+()[]{}".contains(character) { out.append("\\") }
            out.append(character)
        }
        return out
    }
}
