/// What the updater reads from a container beyond `ContainerInfo`, for failure evidence and for
/// health probes (issue 12): its full state, its network addresses, its environment (only to
/// redact secrets, never recorded), its log tail, and probe answers.

/// `ContainerHost.containerDetails`: one inspection's worth of state, addresses and environment.
public struct ContainerDetails: Sendable, Equatable {
    public var info: ContainerInfo
    /// Killed by the kernel for exceeding its memory limit (Docker's `State.OOMKilled`).
    public var oomKilled: Bool
    /// The runtime's error text for the last start (Docker's `State.Error`), if any.
    public var error: String?
    /// RFC 3339 (Docker's `State.StartedAt` / `State.FinishedAt`); empty when never.
    public var startedAt: String
    public var finishedAt: String
    /// The last health probe results (Docker keeps 5), oldest first; empty without a HEALTHCHECK.
    public var healthLog: [HealthLogEntry]
    /// `KEY=VALUE` entries. Used to redact secret values out of text; never recorded.
    public var environment: [String]
    /// Network name → IP address, in Docker's order (sorted by network name).
    public var networks: [ContainerNetworkAddress]
    /// `HostConfig.NetworkMode` (`bridge`, `host`, `none`, a network name, `container:<id>`).
    public var networkMode: String
    /// The container's stdout/stderr go through a TTY (its log stream is not multiplexed).
    public var tty: Bool

    public init(info: ContainerInfo, oomKilled: Bool = false, error: String? = nil, startedAt: String = "",
                finishedAt: String = "", healthLog: [HealthLogEntry] = [], environment: [String] = [],
                networks: [ContainerNetworkAddress] = [], networkMode: String = "bridge", tty: Bool = false) {
        self.info = info
        self.oomKilled = oomKilled
        self.error = error
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.healthLog = healthLog
        self.environment = environment
        self.networks = networks
        self.networkMode = networkMode
        self.tty = tty
    }

    /// Where the device reaches the container: the first network (in Docker's order) with an
    /// address; `127.0.0.1` for host networking; nil when it has none (`none`, not running).
    public var probeAddress: String? {
        if networkMode == "host" { return "127.0.0.1" }
        return networks.first { !$0.ipAddress.isEmpty }?.ipAddress
    }
}

public struct ContainerNetworkAddress: Sendable, Equatable, Codable {
    public var network: String
    public var ipAddress: String
    public init(network: String, ipAddress: String) {
        self.network = network
        self.ipAddress = ipAddress
    }
}

/// One entry of Docker's health log (`State.Health.Log`).
public struct HealthLogEntry: Sendable, Equatable, Codable {
    public var start: String
    public var end: String
    public var exitCode: Int
    public var output: String

    public init(start: String, end: String, exitCode: Int, output: String) {
        self.start = start
        self.end = end
        self.exitCode = exitCode
        self.output = output
    }

    enum CodingKeys: String, CodingKey {
        case start, end, output
        case exitCode = "exit_code"
    }
}

public enum LogStream: String, Sendable, Equatable, Codable {
    case stdout, stderr
}

public struct LogLine: Sendable, Equatable, Codable {
    public var stream: LogStream
    public var text: String
    public init(_ stream: LogStream, _ text: String) {
        self.stream = stream
        self.text = text
    }
}

/// How much of a container's log to read: the last `maxLines` lines, and of those at most the
/// last `maxBytes` bytes of text (whichever is smaller).
public struct LogLimit: Sendable, Equatable, Codable {
    public var maxLines: Int
    public var maxBytes: Int
    public init(maxLines: Int = 200, maxBytes: Int = 64 * 1024) {
        self.maxLines = max(0, maxLines)
        self.maxBytes = max(0, maxBytes)
    }
    public static let `default` = LogLimit()
}

/// The end of a container's log, stdout and stderr interleaved as written.
public struct LogTail: Sendable, Equatable, Codable {
    public var lines: [LogLine]
    /// Earlier output existed and was left out (by the line or the byte limit).
    public var truncated: Bool
    public init(lines: [LogLine] = [], truncated: Bool = false) {
        self.lines = lines
        self.truncated = truncated
    }

    /// Keeps the last lines within `limit` (a single line longer than the byte budget keeps its end).
    public static func bounded(_ lines: [LogLine], limit: LogLimit, truncated: Bool = false) -> LogTail {
        var kept: [LogLine] = []
        var bytes = 0
        var cut = truncated
        for line in lines.reversed() {
            if kept.count >= limit.maxLines { cut = true; break }
            let n = line.text.utf8.count + 1
            if bytes + n > limit.maxBytes {
                cut = true
                let room = limit.maxBytes - bytes - 1
                if kept.isEmpty && room > 0 {
                    kept.append(LogLine(line.stream, String(decoding: line.text.utf8.suffix(room), as: UTF8.self)))
                }
                break
            }
            bytes += n
            kept.append(line)
        }
        return LogTail(lines: kept.reversed(), truncated: cut)
    }
}

// MARK: - Probes

/// One health probe, as the update machine asks the host to run it.
public enum ProbeRequest: Sendable, Equatable, Codable {
    /// `GET http://address:port path` from the device.
    case http(address: String, port: Int, path: String)
    /// A TCP connection to `address:port` from the device.
    case tcp(address: String, port: Int)
    /// `command` run inside `container` (Engine API exec).
    case exec(container: String, command: [String])

    /// What was probed, as the result message says it: `GET http://172.18.0.5:8080/healthz`.
    public var target: String {
        switch self {
        case .http(let a, let p, let path): return "GET http://\(Self.hostPort(a, p))\(path)"
        case .tcp(let a, let p): return "TCP \(Self.hostPort(a, p))"
        case .exec(_, let command): return "exec " + Self.render(command)
        }
    }

    static func hostPort(_ address: String, _ port: Int) -> String {
        address.utf8.contains(UInt8(ascii: ":")) ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    /// `["/bin/check", "--quick"]` → `/bin/check --quick` (arguments with spaces quoted).
    public static func render(_ command: [String]) -> String {
        var out = ""
        for (i, arg) in command.enumerated() {
            if i > 0 { out += " " }
            if !arg.isEmpty && !arg.utf8.contains(where: { $0 == 0x20 || $0 == 0x22 }) {
                out += arg
                continue
            }
            out += "\""
            for c in arg {
                if c == "\"" || c == "\\" { out += "\\" }
                out.append(c)
            }
            out += "\""
        }
        return out
    }
}

/// What came back from one probe.
public enum ProbeAnswer: Sendable, Equatable, Codable {
    /// The HTTP status of the answer.
    case httpStatus(Int)
    /// TCP: the connection was accepted.
    case connected
    /// exec: the command ran and exited (its output, bounded).
    case exited(code: Int, output: String)
    /// Nothing listens there (connection refused, no route), or the container is not running.
    case refused(String)
    /// No answer within the probe's deadline.
    case noAnswer(afterMillis: Int64)
    /// The probe could not be run at all (a daemon error, an invalid answer).
    case error(String)

    /// The bytes of exec output kept in an answer.
    public static let maxOutputBytes = 512

    /// `→ 503`, `→ connection refused`, `→ no answer within 2s`, `→ exit 1 ("db down")`.
    public var text: String {
        switch self {
        case .httpStatus(let s): return String(s)
        case .connected: return "connected"
        case .exited(let code, let output):
            let o = output.trimmingSpaces
            return o.isEmpty ? "exit \(code)" : "exit \(code) (\"\(o.prefix(120))\")"
        case .refused(let why): return why
        case .noAnswer(let ms): return ms % 1000 == 0 ? "no answer within \(ms / 1000)s" : "no answer within \(ms)ms"
        case .error(let why): return "error: \(why)"
        }
    }

    /// Did the service itself answer (as opposed to nothing answering)? A service that answers
    /// "unhealthy" until the deadline failed its check; one that never answered timed out.
    public var isAnswer: Bool {
        switch self {
        case .httpStatus, .connected, .exited: return true
        case .refused, .noAnswer, .error: return false
        }
    }
}

extension HealthPolicy {
    /// The probe this policy runs against a container (nil for the non-probe kinds, or when an
    /// http/tcp check has no address to go to).
    public func probe(container: String, address: String?) -> ProbeRequest? {
        switch kind {
        case .running, .containerHealth: return nil
        case .http: return address.map { .http(address: $0, port: port ?? 80, path: path) }
        case .tcp: return address.map { .tcp(address: $0, port: port ?? 0) }
        case .exec: return .exec(container: container, command: command)
        }
    }

    /// Whether `answer` counts as healthy under this policy.
    public func isHealthy(_ answer: ProbeAnswer) -> Bool {
        switch (kind, answer) {
        case (.http, .httpStatus(let s)): return expectStatus.isEmpty ? (200...399).contains(s) : expectStatus.contains(s)
        case (.tcp, .connected): return true
        case (.exec, .exited(let code, _)): return code == 0
        default: return false
        }
    }
}

extension String {
    /// Whether `needle` occurs in the string's UTF-8 bytes (no Foundation).
    func containsBytes(of needle: String) -> Bool {
        let h = Array(utf8), n = Array(needle.utf8)
        guard !n.isEmpty else { return true }
        guard h.count >= n.count else { return false }
        for i in 0...(h.count - n.count) where h[i] == n[0] && h[i..<(i + n.count)].elementsEqual(n) { return true }
        return false
    }
}
