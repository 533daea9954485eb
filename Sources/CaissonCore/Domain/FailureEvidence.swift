/// Why an update failed, kept with the attempt (issue 12): captured from a failed container just
/// before it is removed (the new release), or when a restore fails (the previous release). Bounded
/// (a log tail of at most 200 lines / 64 KiB), and with the container's secrets redacted.
public struct FailureEvidence: Sendable, Codable, Equatable {
    public enum Role: String, Sendable, Codable, Equatable {
        /// The new release's container, which failed its health check or its start.
        case new
        /// The previous release's container, when restoring it failed.
        case previous
    }

    /// The container's state when the evidence was captured.
    public struct State: Sendable, Codable, Equatable {
        public var status: ContainerStatus
        public var exitCode: Int
        public var oomKilled: Bool
        public var restartCount: Int
        public var error: String?
        public var startedAt: String
        public var finishedAt: String
        public var health: HealthStatus

        public init(status: ContainerStatus, exitCode: Int, oomKilled: Bool, restartCount: Int, error: String?,
                    startedAt: String, finishedAt: String, health: HealthStatus) {
            self.status = status
            self.exitCode = exitCode
            self.oomKilled = oomKilled
            self.restartCount = restartCount
            self.error = error
            self.startedAt = startedAt
            self.finishedAt = finishedAt
            self.health = health
        }

        enum CodingKeys: String, CodingKey {
            case status, error, health
            case exitCode = "exit_code"
            case oomKilled = "oom_killed"
            case restartCount = "restart_count"
            case startedAt = "started_at"
            case finishedAt = "finished_at"
        }
    }

    public var updateID: String
    public var role: Role
    public var containerID: String
    public var containerName: String
    public var imageID: String
    public var capturedAt: String
    /// Nil when the container could not be inspected (see `problems`).
    public var state: State?
    /// Docker's health log (the last probe outputs), oldest first.
    public var healthLog: [HealthLogEntry]
    /// The end of the log, stdout and stderr as written.
    public var logTail: [LogLine]
    /// Earlier log output exists and was left out.
    public var logTruncated: Bool
    /// What could not be captured, as sentences (an inspection or a log read that failed).
    public var problems: [String]
    /// How many occurrences of secret values were replaced.
    public var redactions: Int

    public init(updateID: String, role: Role, containerID: String, containerName: String, imageID: String,
                capturedAt: String, state: State? = nil, healthLog: [HealthLogEntry] = [], logTail: [LogLine] = [],
                logTruncated: Bool = false, problems: [String] = [], redactions: Int = 0) {
        self.updateID = updateID
        self.role = role
        self.containerID = containerID
        self.containerName = containerName
        self.imageID = imageID
        self.capturedAt = capturedAt
        self.state = state
        self.healthLog = healthLog
        self.logTail = logTail
        self.logTruncated = logTruncated
        self.problems = problems
        self.redactions = redactions
    }

    enum CodingKeys: String, CodingKey {
        case role, state, problems, redactions
        case updateID = "update_id"
        case containerID = "container_id"
        case containerName = "container_name"
        case imageID = "image_id"
        case capturedAt = "captured_at"
        case healthLog = "health_log"
        case logTail = "log_tail"
        case logTruncated = "log_truncated"
    }

    /// Reads the evidence of `container` from `host`: its details, then its log tail. A read that
    /// fails is noted in `problems`, never thrown: evidence must not stand in the way of a restore.
    public static func capture(from host: any ContainerHost, container: String, role: Role, updateID: String,
                               at timestamp: String, limit: LogLimit = .default) -> FailureEvidence {
        var e = FailureEvidence(updateID: updateID, role: role, containerID: container, containerName: container,
                                imageID: "", capturedAt: timestamp)
        var environment: [String] = []
        do {
            if let d = try host.containerDetails(container) {
                e.containerID = d.info.id
                e.containerName = d.info.name
                e.imageID = d.info.imageID
                e.state = State(status: d.info.status, exitCode: d.info.exitCode, oomKilled: d.oomKilled,
                                restartCount: d.info.restartCount, error: d.error, startedAt: d.startedAt,
                                finishedAt: d.finishedAt, health: d.info.health)
                e.healthLog = d.healthLog
                environment = d.environment
            } else {
                e.problems.append("the container no longer exists")
                return e
            }
        } catch {
            e.problems.append("could not inspect the container: \(error.message)")
        }
        do {
            let tail = try host.containerLogs(e.containerID, limit: limit)
            e.logTail = tail.lines
            e.logTruncated = tail.truncated
        } catch {
            e.problems.append("could not read the container's log: \(error.message)")
        }
        e.redact(SecretRedactor(environment: environment))
        return e
    }

    /// Replaces every secret value in the free text (log lines, error, health log outputs).
    mutating func redact(_ redactor: SecretRedactor) {
        guard !redactor.isEmpty else { return }
        var n = 0
        for i in logTail.indices {
            logTail[i].text = redactor.redact(logTail[i].text, count: &n, allowPartialPrefix: i == 0 && logTruncated)
        }
        if let err = state?.error { state?.error = redactor.redact(err, count: &n) }
        for i in healthLog.indices { healthLog[i].output = redactor.redact(healthLog[i].output, count: &n) }
        for i in problems.indices { problems[i] = redactor.redact(problems[i], count: &n) }
        redactions += n
    }

    /// A one-line summary: `app (new): exited, exit code 3, OOM killed`.
    public var summary: String {
        var s = "\(containerName) (\(role == .new ? "new release" : "previous release"))"
        if let st = state {
            s += ": \(st.status.rawValue)"
            if st.status != .running && st.status != .created || st.exitCode != 0 { s += ", exit code \(st.exitCode)" }
            if st.oomKilled { s += ", killed for memory (OOM)" }
            if st.restartCount > 0 { s += ", \(st.restartCount) restart\(st.restartCount == 1 ? "" : "s")" }
            if st.health != .none { s += ", health \(st.health.rawValue)" }
        }
        return s
    }
}

/// Redacts the values of a container's secret-looking environment variables out of text: a value
/// longer than 6 characters whose name contains PASSWORD, TOKEN, SECRET or KEY (any case).
public struct SecretRedactor: Sendable, Equatable {
    struct Secret: Sendable, Equatable {
        var name: String
        var value: [UInt8]
    }
    /// Longest first (a secret containing another is replaced whole).
    var secrets: [Secret]

    public static let markers = ["PASSWORD", "TOKEN", "SECRET", "KEY"]
    public static let minimumLength = 7
    /// A log tail cut inside a secret may begin with its end: this many bytes of it are enough to redact.
    static let minimumPartial = 4

    public init(environment: [String]) {
        var out: [Secret] = []
        for entry in environment {
            guard let eq = entry.firstIndex(of: "=") else { continue }
            let name = String(entry[..<eq])
            let value = entry[entry.index(after: eq)...]
            guard value.count >= Self.minimumLength else { continue }
            let upper = name.uppercased()
            guard Self.markers.contains(where: { upper.containsBytes(of: $0) }) else { continue }
            let bytes = Array(value.utf8)
            if !out.contains(where: { $0.value == bytes }) { out.append(Secret(name: name, value: bytes)) }
        }
        // Deterministic: by length (longest first), then by bytes.
        secrets = out.sorted { a, b in
            a.value.count != b.value.count ? a.value.count > b.value.count : a.value.lexicographicallyPrecedes(b.value)
        }
    }

    public var isEmpty: Bool { secrets.isEmpty }

    public static func marker(_ name: String) -> String { "[redacted \(name)]" }

    /// `text` with every occurrence of a secret value replaced by `[redacted NAME]`; `count` grows
    /// by the number of replacements. With `allowPartialPrefix`, a text that starts with the end
    /// of a secret (a tail cut inside it) has that end replaced too.
    public func redact(_ text: String, count: inout Int) -> String {
        redact(text, count: &count, allowPartialPrefix: false)
    }

    public func redact(_ text: String, count: inout Int, allowPartialPrefix: Bool) -> String {
        guard !secrets.isEmpty else { return text }
        var bytes = Array(text.utf8)
        var changed = false
        if allowPartialPrefix {
            for s in secrets {
                var cut = 0
                // The longest proper suffix of the secret that the text starts with.
                var len = min(s.value.count - 1, bytes.count)
                while len >= Self.minimumPartial {
                    if bytes[0..<len].elementsEqual(s.value[(s.value.count - len)...]) { cut = len; break }
                    len -= 1
                }
                if cut > 0 {
                    bytes.replaceSubrange(0..<cut, with: Array(Self.marker(s.name).utf8))
                    count += 1
                    changed = true
                    break
                }
            }
        }
        for s in secrets {
            var out: [UInt8] = []
            var i = 0
            var found = false
            let v = s.value
            while i < bytes.count {
                if bytes[i] == v[0], i + v.count <= bytes.count, bytes[i..<(i + v.count)].elementsEqual(v) {
                    out.append(contentsOf: Self.marker(s.name).utf8)
                    i += v.count
                    count += 1
                    found = true
                } else {
                    out.append(bytes[i])
                    i += 1
                }
            }
            if found {
                bytes = out
                changed = true
            }
        }
        return changed ? String(decoding: bytes, as: UTF8.self) : text
    }
}
