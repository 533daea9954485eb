/// The catalog's description of one service the updater may touch (FORMATS.md §3).
public enum RuntimeMode: String, Sendable, Codable, Equatable, CaseIterable {
    case docker
    case compose
}

public enum HealthKind: String, Sendable, Codable, Equatable, CaseIterable {
    case running
    case containerHealth = "container_health"
    /// `GET http://<container address>:<port><path>` from the device; `expect_status` decides.
    case http
    /// A TCP connection to `<container address>:<port>` from the device.
    case tcp
    /// `command` run inside the container (Engine API exec); exit 0 is healthy.
    case exec

    /// Kinds whose verdict comes from a probe the updater runs (not from Docker's own state).
    public var isProbe: Bool {
        switch self {
        case .running, .containerHealth: return false
        case .http, .tcp, .exec: return true
        }
    }
}

public struct HealthPolicy: Sendable, Codable, Equatable {
    public var kind: HealthKind
    public var timeoutSecs: Int
    public var pollIntervalSecs: Int
    /// How long the service must stay healthy (running, without restarting; and for the probe
    /// kinds, answering every probe) to pass.
    public var stableSecs: Int
    /// `http`, `tcp`: the container port (not a published host port).
    public var port: Int?
    /// `http`: the request path (default `/`).
    public var path: String
    /// `http`: the statuses that count as healthy; empty means any 2xx or 3xx.
    public var expectStatus: [Int]
    /// `exec`: the command run inside the container (exit 0 = healthy).
    public var command: [String]
    /// One probe's own deadline: a probe that has not answered by then failed.
    public var probeTimeoutSecs: Int

    public init(kind: HealthKind = .running, timeoutSecs: Int = 30, pollIntervalSecs: Int = 1, stableSecs: Int = 5,
                port: Int? = nil, path: String = "/", expectStatus: [Int] = [], command: [String] = [],
                probeTimeoutSecs: Int = 2) {
        self.kind = kind
        self.timeoutSecs = timeoutSecs
        self.pollIntervalSecs = pollIntervalSecs
        self.stableSecs = stableSecs
        self.port = port
        self.path = path
        self.expectStatus = expectStatus
        self.command = command
        self.probeTimeoutSecs = probeTimeoutSecs
    }

    enum CodingKeys: String, CodingKey {
        case kind, timeoutSecs, pollIntervalSecs, stableSecs, port, path, expectStatus, command, probeTimeoutSecs
    }

    /// Snapshots journaled before the probe fields existed decode with their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        kind = try c.decode(HealthKind.self, forKey: .kind)
        timeoutSecs = try c.decode(Int.self, forKey: .timeoutSecs)
        pollIntervalSecs = try c.decode(Int.self, forKey: .pollIntervalSecs)
        stableSecs = try c.decode(Int.self, forKey: .stableSecs)
        port = try c.decodeIfPresent(Int.self, forKey: .port)
        path = try c.decodeIfPresent(String.self, forKey: .path) ?? "/"
        expectStatus = try c.decodeIfPresent([Int].self, forKey: .expectStatus) ?? []
        command = try c.decodeIfPresent([String].self, forKey: .command) ?? []
        probeTimeoutSecs = try c.decodeIfPresent(Int.self, forKey: .probeTimeoutSecs) ?? 2
    }

    /// One line for `service show`: the kind, what it probes, and its timings.
    public var summary: String {
        var s = kind.rawValue
        switch kind {
        case .http:
            s += " GET :\(port.map(String.init) ?? "?")\(path)"
            s += expectStatus.isEmpty ? " expecting 2xx/3xx" : " expecting " + expectStatus.map(String.init).joined(separator: "/")
        case .tcp: s += " port \(port.map(String.init) ?? "?")"
        case .exec: s += " " + ProbeRequest.render(command)
        case .running, .containerHealth: break
        }
        s += ", timeout \(timeoutSecs)s, poll \(pollIntervalSecs)s, stable \(stableSecs)s"
        if kind.isProbe { s += ", probe timeout \(probeTimeoutSecs)s" }
        return s
    }
}

public struct DockerTarget: Sendable, Codable, Equatable {
    public var containerName: String
    public var imageReference: String
    public init(containerName: String, imageReference: String) {
        self.containerName = containerName
        self.imageReference = imageReference
    }
}

public struct ComposeTarget: Sendable, Codable, Equatable {
    /// `docker compose -p`.
    public var project: String
    /// Absolute path (relative catalog paths are resolved against the catalog's folder).
    public var file: String
    /// The compose service name inside the project.
    public var service: String
    public init(project: String, file: String, service: String) {
        self.project = project
        self.file = file
        self.service = service
    }
}

public struct ServiceSpec: Sendable, Codable, Equatable {
    public var name: String
    public var serviceRevision: String
    public var platform: String
    public var runtimeMode: RuntimeMode
    public var docker: DockerTarget?
    public var compose: ComposeTarget?
    public var health: HealthPolicy
    public var automaticRollback: Bool

    public init(name: String, serviceRevision: String, platform: String, runtimeMode: RuntimeMode,
                docker: DockerTarget? = nil, compose: ComposeTarget? = nil,
                health: HealthPolicy = HealthPolicy(), automaticRollback: Bool = true) {
        self.name = name
        self.serviceRevision = serviceRevision
        self.platform = platform
        self.runtimeMode = runtimeMode
        self.docker = docker
        self.compose = compose
        self.health = health
        self.automaticRollback = automaticRollback
    }
}
