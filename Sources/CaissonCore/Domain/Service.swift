/// The catalog's description of one service the updater may touch (FORMATS.md §3).
public enum RuntimeMode: String, Sendable, Codable, Equatable, CaseIterable {
    case docker
    case compose
}

public enum HealthKind: String, Sendable, Codable, Equatable, CaseIterable {
    case running
    case containerHealth = "container_health"
}

public struct HealthPolicy: Sendable, Codable, Equatable {
    public var kind: HealthKind
    public var timeoutSecs: Int
    public var pollIntervalSecs: Int
    /// `running` only: how long the container must stay up, without restarting, to pass.
    public var stableSecs: Int

    public init(kind: HealthKind = .running, timeoutSecs: Int = 30, pollIntervalSecs: Int = 1, stableSecs: Int = 5) {
        self.kind = kind
        self.timeoutSecs = timeoutSecs
        self.pollIntervalSecs = pollIntervalSecs
        self.stableSecs = stableSecs
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
