import CaissonCore

/// How the simulated daemon goes down in `restartDaemon(_:)`.
public enum DaemonRestartKind: String, Sendable, Equatable, Hashable, Codable, CaseIterable {
    /// `systemctl restart docker`: running containers get SIGTERM, not marked manually stopped.
    case graceful
    /// dockerd crashes (containerd and containers live on); the new dockerd stops the survivors
    /// and marks them manually stopped.
    case crash
    /// The machine loses power: every process dies at once (exit code 255).
    case powerCut = "power-cut"
}

/// Docker's restart policies (`docker run --restart`). Encoded as Docker spells them.
public enum SimRestartPolicy: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    case no
    case always
    case unlessStopped
    /// `on-failure[:N]`; 0 means no limit.
    case onFailure(maxRetries: Int)

    /// `no`, `always`, `unless-stopped`, `on-failure`, `on-failure:N` (N >= 0); nil otherwise.
    public init?(parsing s: String) {
        switch s {
        case "no", "": self = .no
        case "always": self = .always
        case "unless-stopped": self = .unlessStopped
        case "on-failure": self = .onFailure(maxRetries: 0)
        default:
            guard s.hasPrefix("on-failure:"), let n = Int(s.dropFirst("on-failure:".count)), n >= 0 else { return nil }
            self = .onFailure(maxRetries: n)
        }
    }

    public var description: String {
        switch self {
        case .no: return "no"
        case .always: return "always"
        case .unlessStopped: return "unless-stopped"
        case .onFailure(let n): return n == 0 ? "on-failure" : "on-failure:\(n)"
        }
    }

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let p = SimRestartPolicy(parsing: s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "invalid restart policy \"\(s)\""))
        }
        self = p
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// How a container's process behaves over time, scripted by its image's label
/// `io.caisson.sim.health` (values below, with an optional `:seconds` suffix).
public enum SimBehaviour: Sendable, Equatable, Hashable, Codable {
    /// `healthy[:s]` (default, s = 2): health `starting`, then `healthy` after s seconds.
    case healthy(afterMillis: Int64)
    /// `unhealthy[:s]` (s = 3): `starting`, then `unhealthy` after s seconds; keeps running.
    case unhealthy(afterMillis: Int64)
    /// `crash[:s]` (s = 3): exits with `exitCode` (1, or the label `io.caisson.sim.exit_code`)
    /// s seconds (or `io.caisson.sim.crash_after_secs`) after every start. With a healthcheck it
    /// reads `healthy` from 2 s until it dies, like the real `caisson-test/app:crash` image.
    case crash(afterMillis: Int64, exitCode: Int)
    /// `exit[:s]` (s = 3): exits with code 0 s seconds after every start (a one-shot job).
    case exit(afterMillis: Int64)
    /// `never-ready`: health stays `starting`.
    case neverReady
    /// `flap[:s]` (s = 3): `starting` for 2 s, then healthy and unhealthy alternate every s seconds.
    case flap(periodMillis: Int64)
    /// `oom[:s]` (s = 3): killed by the kernel for memory s seconds after every start (exit code
    /// 137, `OOMKilled`), like `caisson-test/app:oom` under a `--memory` limit. Health as `crash`.
    case oom(afterMillis: Int64)

    public static let labelKey = "io.caisson.sim.health"
    public static let crashAfterLabelKey = "io.caisson.sim.crash_after_secs"
    public static let exitCodeLabelKey = "io.caisson.sim.exit_code"
    public static let `default` = SimBehaviour.healthy(afterMillis: 2000)

    /// The behaviour scripted by `labels` (unknown values fall back to the default).
    public static func from(labels: [String: String]) -> SimBehaviour {
        guard let raw = labels[labelKey] else { return .default }
        guard var b = parse(raw) else { return .default }
        if case .crash(var after, var code) = b {
            if !raw.contains(Character(":")), let s = labels[crashAfterLabelKey].flatMap(Double.init), s >= 0, s <= 86_400 * 365 {
                after = Int64((s * 1000).rounded())
            }
            if let c = labels[exitCodeLabelKey].flatMap(Int.init), c >= 0, c <= 255 { code = c }
            b = .crash(afterMillis: after, exitCode: code)
        }
        return b
    }

    public static func parse(_ raw: String) -> SimBehaviour? {
        var name = Substring(raw)
        var millis: Int64? = nil
        if let colon = raw.firstIndex(of: ":") {
            name = raw[..<colon]
            guard let secs = Double(raw[raw.index(after: colon)...]), secs >= 0, secs <= 86_400 * 365 else { return nil }
            millis = Int64((secs * 1000).rounded())
        }
        switch name {
        case "healthy": return .healthy(afterMillis: millis ?? 2000)
        case "unhealthy": return .unhealthy(afterMillis: millis ?? 3000)
        case "crash": return .crash(afterMillis: millis ?? 3000, exitCode: 1)
        case "exit": return .exit(afterMillis: millis ?? 3000)
        case "never-ready": return millis == nil ? .neverReady : nil
        case "flap": return .flap(periodMillis: max(1, millis ?? 3000))
        case "oom": return .oom(afterMillis: millis ?? 3000)
        default: return nil
        }
    }

    /// When the process exits by itself, relative to its start, and with which code.
    var selfExit: (afterMillis: Int64, code: Int)? {
        switch self {
        case .crash(let ms, let code): return (ms, code)
        case .exit(let ms): return (ms, 0)
        case .oom(let ms): return (ms, 137)
        case .healthy, .unhealthy, .neverReady, .flap: return nil
        }
    }
}

/// What the container's process does on SIGTERM, from the image label `io.caisson.sim.stop`.
public enum SimStopMode: String, Sendable, Equatable, Hashable, Codable {
    /// `graceful` (default): handles SIGTERM and exits 0 at once.
    case graceful
    /// `sigterm`: dies of SIGTERM at once (exit code 143).
    case sigterm
    /// `ignore-sigterm`: ignores SIGTERM; killed after the grace period (exit code 137).
    case ignoreSigterm = "ignore-sigterm"

    public static let labelKey = "io.caisson.sim.stop"

    public static func from(labels: [String: String]) -> SimStopMode {
        labels[labelKey].flatMap(SimStopMode.init(rawValue:)) ?? .graceful
    }

    /// `io.caisson.sim.flush_secs=N`: on SIGTERM the process needs N seconds to flush its data
    /// before it exits 0 (a database, a queue). Stopped with a shorter grace it is SIGKILLed
    /// mid-flush: the simulator records a `SimFlushKill` (data lost) and the invariants forbid it.
    public static let flushLabelKey = "io.caisson.sim.flush_secs"

    /// The flush time scripted by `labels`, in ms (nil: none, the process exits at once).
    public static func flushMillis(labels: [String: String]) -> Int64? {
        guard let raw = labels[flushLabelKey], let secs = Double(raw), secs > 0, secs <= 86_400 else { return nil }
        return Int64((secs * 1000).rounded())
    }

    var exitCodeOnStop: Int {
        switch self {
        case .graceful: return 0
        case .sigterm: return 143
        case .ignoreSigterm: return 137
        }
    }
}

/// The operator's configuration of a container: what `createContainer(cloning:)` copies. Image
/// defaults (the image's labels, its healthcheck, its process behaviour) are not part of it: the
/// clone takes them from its new image.
public struct SimContainerConfig: Sendable, Equatable, Hashable, Codable {
    public var env: [String]
    public var cmd: [String]
    public var restartPolicy: SimRestartPolicy
    /// Labels the operator set (image labels are merged in at create time, as Docker does).
    public var labels: [String: String]
    public var ports: [String]
    public var mounts: [String]
    public var networks: [String]
    /// Docker's `StopTimeout`: the grace period when the daemon stops the container; nil when the
    /// operator did not set one (`docker run` without `--stop-timeout`: Docker's default, 10 s).
    public var stopTimeoutSecs: Int?
    /// The grace Docker gives: the container's own stop timeout, else Docker's default.
    public var stopGraceSecs: Int { stopTimeoutSecs ?? ContainerInfo.defaultStopTimeoutSecs }
    /// `HostConfig.NetworkMode` when not the default: `container:<id>` shares that container's
    /// network namespace (Docker stores the full id, even when given a name). Compose services
    /// say `service:<name>`, resolved to the service's container when it is created.
    public var networkMode: String?
    /// `Config.Hostname` when set: by the operator, or by Docker when the container joins another
    /// one's network namespace (it takes that container's hostname).
    public var hostname: String?

    public init(env: [String] = [], cmd: [String] = [], restartPolicy: SimRestartPolicy = .no,
                labels: [String: String] = [:], ports: [String] = [], mounts: [String] = [],
                networks: [String] = [], stopTimeoutSecs: Int? = 10, networkMode: String? = nil, hostname: String? = nil) {
        self.networkMode = networkMode
        self.hostname = hostname
        self.env = env
        self.cmd = cmd
        self.restartPolicy = restartPolicy
        self.labels = labels
        self.ports = ports
        self.mounts = mounts
        self.networks = networks
        self.stopTimeoutSecs = stopTimeoutSecs
    }
}

public struct SimImage: Sendable, Equatable, Codable {
    /// `sha256:<hex>`.
    public var id: String
    /// Normalised references (`repo:tag`), sorted.
    public var repoTags: [String]
    public var config: ImageConfig
    /// Bytes of disk the image occupies (its archive length when loaded).
    public var sizeBytes: Int64
    /// Its layer DiffIDs, bottom first: the simulated layer store is the ChainIDs of every image.
    public var layers: [String] = []

    public var info: ImageInfo { ImageInfo(id: id, repoTags: repoTags, repoDigests: [], config: config, layers: layers) }

    public init(id: String, repoTags: [String], config: ImageConfig, sizeBytes: Int64, layers: [String] = []) {
        self.id = id
        self.repoTags = repoTags
        self.config = config
        self.sizeBytes = sizeBytes
        self.layers = layers
    }

    enum CodingKeys: String, CodingKey {
        case id, repoTags, config, sizeBytes, layers
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        repoTags = try c.decode([String].self, forKey: .repoTags)
        config = try c.decode(ImageConfig.self, forKey: .config)
        sizeBytes = try c.decode(Int64.self, forKey: .sizeBytes)
        layers = try c.decodeIfPresent([String].self, forKey: .layers) ?? []
    }
}

public struct SimContainer: Sendable, Equatable, Codable {
    public var id: String
    public var name: String
    public var imageID: String
    public var imageReference: String
    public var config: SimContainerConfig
    /// Effective labels: the image's labels overlaid by the operator's and the create call's.
    public var labels: [String: String]
    public var behaviour: SimBehaviour
    public var stopMode: SimStopMode
    /// How long the process needs after SIGTERM to flush and exit (`SimStopMode.flushLabelKey`).
    public var flushMillis: Int64?
    public var hasHealthcheck: Bool
    /// Host port bindings derived from `config.ports` (`0.0.0.0:8080/tcp`), for clash checks.
    public var hostPorts: [String]

    public var status: ContainerStatus
    public var exitCode: Int
    public var restartCount: Int
    /// Docker-style RFC 3339 nano timestamp of the current run; empty before the first start.
    public var startedAt: String
    /// Virtual ms of the current run's start.
    public var startedAtMillis: Int64
    public var hasBeenStartedBefore: Bool
    /// Set by a user stop (not by a daemon shutdown); cleared by a user start.
    public var manuallyStopped: Bool
    /// Its last run was ended by the daemon going down (nil until then; cleared by any start).
    public var stoppedByDaemon: Bool?
    /// `container:` network mode: whose network namespace the current run joined, and that
    /// container's run marker then (its namespace dies with that run).
    public var joinedNetwork: SimNetworkJoin?
    /// Health frozen when the process is not running (Docker reports `unhealthy` once the
    /// health monitor stops).
    public var frozenHealth: HealthStatus
    /// The next scheduled change: a self-exit while running, a restart while restarting.
    public var nextEventMillis: Int64?
    /// Docker's restart-manager back-off (0 = reset; then 100 ms doubling up to 1 min).
    public var backoffMillis: Int64
    public var createdAtMillis: Int64
    // Issue 12 (optional: state files saved before them still load).
    /// stdout/stderr as written, the last `SimulatedHost.maxLogLines` lines.
    public var logs: [LogLine]? = nil
    /// The last exit was a kill for memory (reset by the next start, as Docker does).
    public var oomKilled: Bool? = nil
    /// Docker-style timestamp and virtual ms of the last exit.
    public var finishedAt: String? = nil
    public var finishedAtMillis: Int64? = nil
    /// The address on its network while running (nil: `none` or host networking).
    public var address: String? = nil
    /// The Compose service the labels make it a (non one-off) container of: derived from
    /// `labels` (which never change after create) when the container is made, not saved.
    var composeMembership: ComposeMembership = .unknown

    enum ComposeMembership: Sendable, Equatable {
        /// Not derived yet (a container decoded from a saved state): read the labels.
        case unknown
        case none
        case member(ComposeKey)

        /// A cache of what `labels` say: containers are equal when their saved fields are
        /// (a saved and reloaded container has `.unknown` here), so it never decides equality.
        static func == (lhs: ComposeMembership, rhs: ComposeMembership) -> Bool { true }
    }

    struct ComposeKey: Sendable, Equatable {
        var project: String
        var service: String
    }

    /// The Compose service this container belongs to, if any.
    var composeKey: ComposeKey? {
        switch composeMembership {
        case .member(let k): return k
        case .none: return nil
        case .unknown: return Self.composeKey(labels: labels)
        }
    }

    enum CodingKeys: String, CodingKey {
        case id, name, imageID, imageReference, config, labels, behaviour, stopMode, flushMillis, hasHealthcheck, hostPorts
        case status, exitCode, restartCount, startedAt, startedAtMillis, hasBeenStartedBefore, manuallyStopped, stoppedByDaemon
        case joinedNetwork
        case frozenHealth, nextEventMillis, backoffMillis, createdAtMillis
        case logs, oomKilled, finishedAt, finishedAtMillis, address
    }

    /// The `composeKey` that `labels` imply.
    static func composeKey(labels: [String: String]) -> ComposeKey? {
        guard let project = labels[SimulatedHost.composeProjectLabel],
              let service = labels[SimulatedHost.composeServiceLabel],
              labels["com.docker.compose.oneoff"]?.lowercased() != "true" else { return nil }
        return ComposeKey(project: project, service: service)
    }

    /// Health at virtual time `now` (the container must have been advanced to `now`).
    func health(at now: Int64) -> HealthStatus {
        guard hasHealthcheck else { return .none }
        guard status == .running else { return frozenHealth }
        let (diff, overflow) = now.subtractingReportingOverflow(startedAtMillis)
        let age = overflow ? Int64.max : diff
        switch behaviour {
        case .healthy(let after): return age >= after ? .healthy : .starting
        case .unhealthy(let after): return age >= after ? .unhealthy : .starting
        case .crash, .oom: return age >= 2000 ? .healthy : .starting
        case .exit, .neverReady: return .starting
        case .flap(let period):
            guard age >= 2000 else { return .starting }
            return ((age - 2000) / max(1, period)) % 2 == 0 ? .healthy : .unhealthy
        }
    }

    func info(at now: Int64) -> ContainerInfo {
        ContainerInfo(id: id, name: name, imageID: imageID, imageReference: imageReference, status: status,
                      health: health(at: now), restartCount: restartCount, startedAt: startedAt,
                      exitCode: exitCode, labels: labels, stopTimeoutSecs: config.stopTimeoutSecs,
                      networkMode: config.networkMode ?? "default")
    }
}

/// The network namespace a `container:` mode container joined when it started.
public struct SimNetworkJoin: Sendable, Equatable, Hashable, Codable {
    public var ownerID: String
    public var ownerStartedAt: String
}

/// A container SIGKILLed while it was still flushing after SIGTERM: its data is lost. Recorded by
/// the simulator whenever a stop's grace (or a force-remove, grace 0) is shorter than the
/// container's flush time; the harness's invariants forbid it.
public struct SimFlushKill: Sendable, Equatable, Codable, CustomStringConvertible {
    public var containerID: String
    public var name: String
    public var atMillis: Int64
    public var graceMillis: Int64
    public var flushMillis: Int64
    /// `stop` (a stop call), `remove` (a force-remove of a running container), `compose` (Compose
    /// recreating it), `daemon` (the daemon stopping it on shutdown).
    public var cause: String

    public var description: String {
        "container \(name) (\(containerID.prefix(12))) was killed before its flush at t=\(atMillis) ms by \(cause): it needs \(flushMillis / 1000)s after SIGTERM, got \(graceMillis / 1000)s"
    }
}

/// What `docker compose` knows of a service from its compose file.
public struct SimComposeService: Sendable, Equatable, Codable {
    public var target: ComposeTarget
    public var config: SimContainerConfig
    /// The `image:` the compose file names (nil: none; older saved states).
    public var image: String?
}

/// Everything a simulated daemon holds; `Codable` for `--host sim` persistence.
public struct SimState: Sendable, Equatable, Codable {
    public static let currentFormat = 1

    public var format: Int = SimState.currentFormat
    public var nowMillis: Int64 = 0
    public var originEpochMillis: Int64 = VirtualClock.defaultOriginEpochMillis
    public var images: [String: SimImage] = [:]
    /// Normalised reference → image id.
    public var tags: [String: String] = [:]
    public var containers: [String: SimContainer] = [:]
    /// Container name → id.
    public var names: [String: String] = [:]
    /// `project/service` → compose service.
    public var compose: [String: SimComposeService] = [:]
    public var freeDiskBytes: Int64 = 64 << 30
    /// A load needs `length * loadSpaceMultiplier + loadSpaceMarginBytes` free (DockerHost's
    /// preflight asks for 2x + 64 MiB; the default here is exactly the archive length).
    public var loadSpaceMultiplier: Int64 = 1
    public var loadSpaceMarginBytes: Int64 = 0
    public var idRNG: SplitMix64 = SplitMix64(seed: 0)
    /// Counts container starts: the sub-millisecond digits of `startedAt`, so markers always change.
    public var startCounter: Int64 = 0
    public var daemonRestarts: Int = 0
    public var callCount: Int = 0
    /// Per `SimOperation.allCases` index.
    public var operationCounts: [Int] = Array(repeating: 0, count: SimOperation.allCases.count)
    public var faultPlan: FaultPlan = FaultPlan()
    public var swarm: SwarmState? = nil
    public var traceDigest: UInt64 = FNV1a64.offsetBasis
    /// Containers killed before their flush (nil: none yet; optional so older saved states load).
    public var flushKills: [SimFlushKill]? = nil
    /// Containers given a network address so far (the next one is 172.18.x.y from this count).
    public var addressCount: Int? = nil

    public init() {}
}
