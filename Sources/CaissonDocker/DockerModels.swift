// Typed views of the daemon's JSON answers. Each keeps the whole document in `raw`, and extraction
// is lenient: a field of an unexpected shape reads as nil rather than failing the whole answer.

/// `GET /_ping`.
public struct DockerPing: Sendable, Equatable {
    public var apiVersion: String?
    public var osType: String?
    public var experimental: Bool
    public var builderVersion: String?
}

/// `GET /version`.
public struct DockerVersion: Sendable, Equatable {
    public var version: String?
    public var apiVersion: String?
    public var minAPIVersion: String?
    public var os: String?
    public var arch: String?
    public var kernelVersion: String?
    public var raw: JSONValue

    public init(json: JSONValue) {
        version = json["Version"]?.stringValue
        apiVersion = json["ApiVersion"]?.stringValue
        minAPIVersion = json["MinAPIVersion"]?.stringValue
        os = json["Os"]?.stringValue
        arch = json["Arch"]?.stringValue
        kernelVersion = json["KernelVersion"]?.stringValue
        raw = json
    }
}

/// `GET /info`.
public struct DockerInfo: Sendable, Equatable {
    /// Where images and containers live (`/var/lib/docker`): check its free space before a load.
    public var dockerRootDir: String?
    public var serverVersion: String?
    public var storageDriver: String?
    public var operatingSystem: String?
    public var osType: String?
    public var architecture: String?
    public var cpuCount: Int?
    public var memoryTotal: Int64?
    public var containers: Int?
    public var images: Int?
    public var raw: JSONValue

    public init(json: JSONValue) {
        dockerRootDir = json["DockerRootDir"]?.stringValue
        serverVersion = json["ServerVersion"]?.stringValue
        storageDriver = json["Driver"]?.stringValue
        operatingSystem = json["OperatingSystem"]?.stringValue
        osType = json["OSType"]?.stringValue
        architecture = json["Architecture"]?.stringValue
        cpuCount = json["NCPU"]?.intValue.map { Int($0) }
        memoryTotal = json["MemTotal"]?.intValue
        containers = json["Containers"]?.intValue.map { Int($0) }
        images = json["Images"]?.intValue.map { Int($0) }
        raw = json
    }
}

/// A container's (or an image's) `Healthcheck`. Durations are nanoseconds, as the API has them.
public struct HealthcheckConfig: Sendable, Equatable {
    /// `["NONE"]`, `["CMD", ...]`, `["CMD-SHELL", "..."]`; empty: inherit.
    public var test: [String]
    public var interval: Int64?
    public var timeout: Int64?
    public var startPeriod: Int64?
    public var retries: Int64?

    public init(json: JSONValue) {
        test = json["Test"]?.stringArrayValue ?? []
        interval = json["Interval"]?.intValue
        timeout = json["Timeout"]?.intValue
        startPeriod = json["StartPeriod"]?.intValue
        retries = json["Retries"]?.intValue
    }
}

/// The `Config` of an image or a container (`ContainerConfig` in the API).
public struct ContainerConfig: Sendable, Equatable {
    public var image: String?
    public var env: [String]
    public var cmd: [String]?
    public var entrypoint: [String]?
    public var workingDir: String?
    public var user: String?
    public var labels: [String: String]
    public var healthcheck: HealthcheckConfig?
    /// `80/tcp`, sorted.
    public var exposedPorts: [String]
    /// Volume mount points, sorted.
    public var volumes: [String]
    public var stopSignal: String?
    public var stopTimeout: Int64?
    public var raw: JSONValue

    public init(json: JSONValue) {
        image = json["Image"]?.stringValue
        env = json["Env"]?.stringArrayValue ?? []
        cmd = json["Cmd"]?.stringArrayValue
        entrypoint = json["Entrypoint"]?.stringArrayValue
        workingDir = json["WorkingDir"]?.stringValue
        user = json["User"]?.stringValue
        labels = json["Labels"]?.stringMapValue ?? [:]
        healthcheck = json["Healthcheck"].flatMap { $0.objectValue == nil ? nil : HealthcheckConfig(json: $0) }
        exposedPorts = (json["ExposedPorts"]?.objectValue?.keys).map { $0.sorted() } ?? []
        volumes = (json["Volumes"]?.objectValue?.keys).map { $0.sorted() } ?? []
        stopSignal = json["StopSignal"]?.stringValue
        stopTimeout = json["StopTimeout"]?.intValue
        raw = json
    }
}

/// `GET /images/{name}/json`.
public struct ImageInspect: Sendable, Equatable {
    /// `sha256:...`
    public var id: String
    public var repoTags: [String]
    public var repoDigests: [String]
    public var os: String?
    public var architecture: String?
    public var variant: String?
    public var size: Int64?
    public var created: String?
    public var config: ContainerConfig
    /// `RootFS.Layers`: the layer DiffIDs, bottom first.
    public var layers: [String]
    public var raw: JSONValue

    /// `linux/amd64` or `linux/arm64/v8`.
    public var platform: String {
        [os ?? "unknown", architecture ?? "unknown"].joined(separator: "/") + (variant.map { "/\($0)" } ?? "")
    }

    public init?(json: JSONValue) {
        guard let id = json["Id"]?.stringValue, !id.isEmpty else { return nil }
        self.id = id
        repoTags = json["RepoTags"]?.stringArrayValue ?? []
        repoDigests = json["RepoDigests"]?.stringArrayValue ?? []
        os = json["Os"]?.stringValue
        architecture = json["Architecture"]?.stringValue
        variant = json["Variant"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        size = json["Size"]?.intValue
        created = json["Created"]?.stringValue
        config = ContainerConfig(json: json["Config"] ?? .object([:]))
        layers = json["RootFS"]?["Layers"]?.stringArrayValue ?? []
        raw = json
    }
}

/// One entry of `DELETE /images/{name}`.
public struct ImageDeleteItem: Sendable, Equatable {
    public var untagged: String?
    public var deleted: String?
}

/// The result of `POST /images/load`.
public struct ImageLoadResult: Sendable, Equatable {
    /// References from `Loaded image: REF` lines (the tags inside the tarball).
    public var loadedReferences: [String]
    /// Ids from `Loaded image ID: sha256:...` lines (untagged images).
    public var loadedImageIDs: [String]
    /// Every `stream` text line the daemon sent, in order (at most 1000 kept).
    public var streamLines: [String]
}

/// One JSON message of a streamed answer (`docker load`, `pull`, `build`).
public struct DockerStreamMessage: Sendable, Equatable {
    public var stream: String?
    public var status: String?
    public var id: String?
    public var progress: String?
    public var current: Int64?
    public var total: Int64?
    public var error: String?
    public var raw: JSONValue

    public init(json: JSONValue) {
        stream = json["stream"]?.stringValue
        status = json["status"]?.stringValue
        id = json["id"]?.stringValue
        progress = json["progress"]?.stringValue
        current = json["progressDetail"]?["current"]?.intValue
        total = json["progressDetail"]?["total"]?.intValue
        let detail = json["errorDetail"]?["message"]?.stringValue
        let plain = json["error"]?.stringValue
        error = [detail, plain].compactMap { $0 }.first { !$0.isEmpty }
        raw = json
    }
}

/// A container's `State`.
public struct ContainerState: Sendable, Equatable {
    /// `created`, `running`, `paused`, `restarting`, `removing`, `exited`, `dead`.
    public var status: String
    public var running: Bool
    public var paused: Bool
    public var restarting: Bool
    public var oomKilled: Bool
    public var dead: Bool
    public var pid: Int64?
    public var exitCode: Int64?
    public var error: String?
    public var startedAt: String?
    public var finishedAt: String?
    /// `starting`, `healthy`, `unhealthy` (`nil` without a health check).
    public var healthStatus: String?
    public var healthFailingStreak: Int64?

    public init(json: JSONValue) {
        status = json["Status"]?.stringValue ?? "unknown"
        running = json["Running"]?.boolValue ?? false
        paused = json["Paused"]?.boolValue ?? false
        restarting = json["Restarting"]?.boolValue ?? false
        oomKilled = json["OOMKilled"]?.boolValue ?? false
        dead = json["Dead"]?.boolValue ?? false
        pid = json["Pid"]?.intValue
        exitCode = json["ExitCode"]?.intValue
        error = json["Error"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        startedAt = json["StartedAt"]?.stringValue
        finishedAt = json["FinishedAt"]?.stringValue
        healthStatus = json["Health"]?["Status"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
        healthFailingStreak = json["Health"]?["FailingStreak"]?.intValue
    }
}

/// One entry of `NetworkSettings.Networks`.
public struct ContainerNetwork: Sendable, Equatable {
    public var name: String
    public var networkID: String?
    public var ipAddress: String?
    public var aliases: [String]
    public var raw: JSONValue
}

/// `GET /containers/{id}/json`.
public struct ContainerInspect: Sendable, Equatable {
    public var id: String
    /// Without the leading `/`.
    public var name: String
    /// The image id (`sha256:...`) the container runs.
    public var image: String
    public var state: ContainerState
    /// Top-level `RestartCount` (restarts by the restart policy).
    public var restartCount: Int64
    public var config: ContainerConfig
    /// `HostConfig`, whole.
    public var hostConfig: JSONValue
    /// `HostConfig.RestartPolicy.Name` (`no`, `always`, `unless-stopped`, `on-failure`).
    public var restartPolicy: String?
    /// `NetworkSettings.Networks`, sorted by network name.
    public var networks: [ContainerNetwork]
    public var created: String?
    public var raw: JSONValue

    public init?(json: JSONValue) {
        guard let id = json["Id"]?.stringValue, !id.isEmpty else { return nil }
        self.id = id
        let name = json["Name"]?.stringValue ?? ""
        self.name = name.hasPrefix("/") ? String(name.dropFirst()) : name
        image = json["Image"]?.stringValue ?? ""
        state = ContainerState(json: json["State"] ?? .object([:]))
        restartCount = json["RestartCount"]?.intValue ?? 0
        config = ContainerConfig(json: json["Config"] ?? .object([:]))
        hostConfig = json["HostConfig"] ?? .object([:])
        restartPolicy = json["HostConfig"]?["RestartPolicy"]?["Name"]?.stringValue
        let networkObject = json["NetworkSettings"]?["Networks"]?.objectValue ?? [:]
        networks = networkObject.keys.sorted().map { key in
            let value = networkObject[key] ?? .null
            return ContainerNetwork(name: key, networkID: value["NetworkID"]?.stringValue,
                                    ipAddress: value["IPAddress"]?.stringValue,
                                    aliases: value["Aliases"]?.stringArrayValue ?? [], raw: value)
        }
        created = json["Created"]?.stringValue
        raw = json
    }
}

/// One entry of `GET /containers/json`.
public struct ContainerSummary: Sendable, Equatable {
    public var id: String
    /// Without leading `/`.
    public var names: [String]
    public var image: String?
    public var imageID: String?
    public var state: String?
    public var status: String?
    public var labels: [String: String]
    public var raw: JSONValue

    public init?(json: JSONValue) {
        guard let id = json["Id"]?.stringValue, !id.isEmpty else { return nil }
        self.id = id
        names = (json["Names"]?.stringArrayValue ?? []).map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 }
        image = json["Image"]?.stringValue
        imageID = json["ImageID"]?.stringValue
        state = json["State"]?.stringValue
        status = json["Status"]?.stringValue
        labels = json["Labels"]?.stringMapValue ?? [:]
        raw = json
    }
}

/// `POST /containers/create`.
public struct ContainerCreateResult: Sendable, Equatable {
    public var id: String
    public var warnings: [String]
}

/// `POST /containers/{id}/wait`.
public struct ContainerWaitResult: Sendable, Equatable {
    public var statusCode: Int64
    public var error: String?
}
