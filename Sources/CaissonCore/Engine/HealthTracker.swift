/// The health policy as a pure function of observations over time.
///
/// - `running`: every container must be running, and stay running without a restart (same
///   restart count, same start marker) for `stableSecs`. An exit or restart is a failure, not a
///   timeout (FORMATS §8 item 3: the Rust tool passed on the first poll).
/// - `container_health`: every container must report Docker health `healthy` while running and
///   stay up through the same stability window; `unhealthy` fails at once; an exit or a crash
///   restart fails at once; a container with no HEALTHCHECK fails at once with a sentence saying so.
/// A restart that Docker does not count as a crash (a daemon restart: StartedAt changes, the
/// RestartCount does not) starts the stability window over instead of failing.
/// - When `expectedImageID` is set (Compose), containers not yet on that image keep the check
///   pending; if they never get there it times out saying which image runs.
/// - `http`, `tcp`, `exec` (issue 12): every container must be running as for `running`, and
///   its probe must answer healthy at every poll through the stability window (measured from the
///   first healthy answer of the current streak; an unhealthy answer starts it over). `observe`
///   answers `.probe(ids)`; the machine runs the probes, `recordProbe` takes each answer and
///   `judgeProbes` gives the verdict. At the deadline the check failed if the service answered
///   (a wrong status, a non-zero exit) and timed out if nothing answered (refused, no answer).
public struct HealthTracker: Sendable, Codable, Equatable {
    public enum Verdict: Sendable, Equatable {
        case pending
        case passed(String)
        case failed(String)
        case timedOut(String)
        /// Probe kinds: every container runs; probe these (ids), then `judgeProbes`.
        case probe([String])
    }

    struct Seen: Sendable, Codable, Equatable {
        var id: String
        var firstRunningMillis: Int64
        var startedAt: String
        var restartCount: Int
        var name: String = ""
        /// Probe kinds: since when every probe answered healthy (nil: the last one did not).
        var probeOKSince: Int64? = nil
        var probes: Int = 0
        /// The address resolved for this run of the container (`addressResolved`: asked).
        var address: String? = nil
        var addressResolved = false
        var lastTarget = ""
        var lastAnswer: ProbeAnswer? = nil
        /// The last probe could not be run (a host error): no verdict on the service.
        var lastWasHostError = false

        init(id: String, firstRunningMillis: Int64, startedAt: String, restartCount: Int, name: String = "") {
            self.id = id
            self.firstRunningMillis = firstRunningMillis
            self.startedAt = startedAt
            self.restartCount = restartCount
            self.name = name
        }
    }

    public var policy: HealthPolicy
    public var startMillis: Int64
    var seen: [Seen] = []
    /// Why the last observation was pending (rendered only if the check times out).
    var pending: Pending = .noObservation
    var lastPending: String { pending.description }
    /// Set by `evaluate`: everything not yet passed is only waiting out its stability window.
    var inWindowOnly = false
    /// Whether `observe` has been called before (the first look never times out).
    var observedOnce = false
    /// The current poll is the first one (set by `observe`, read by `judgeProbes`).
    var firstPoll = false
    /// Probe kinds: the containers `observe` asked to probe in this poll.
    var probing: [String] = []
    /// When `observe` last saw the containers: a probe streak counts only up to then (a slow
    /// probe that answers well after the container died proves nothing about the time between).
    var observedAtMillis: Int64 = 0
    /// The last `.timedOut` of `judgeProbes` came from probes that could not be run (host
    /// errors), not from the service: like a failed inspection, no verdict on it.
    public private(set) var noVerdict = false
    /// The containers of the last observation with their image ids (failure evidence targets).
    public private(set) var lastObserved: [Observed] = []

    public struct Observed: Sendable, Codable, Equatable {
        public var id: String
        public var imageID: String
        public var status: ContainerStatus
        public var health: HealthStatus
        public var isRunning: Bool { status == .running }
    }
    /// When a container was last seen restarted without a crash (a daemon restart): the timeout
    /// then runs from there, since the restart reset its health through no fault of its own
    /// (bounded: one extension per daemon restart actually observed).
    var lastBenignRestartMillis: Int64?

    /// Where the timeout runs from: the start, or the last benign restart observed — but never
    /// later than twice the timeout after the start, so a daemon that keeps restarting cannot
    /// keep the check (and the update) pending forever: it ends by three times the timeout.
    /// Three times the timeout after the start: not even a container only finishing its
    /// stability window (which daemon restarts keep starting over) is waited for any longer.
    func pastHardDeadline(_ now: Int64) -> Bool { now - startMillis >= Int64(policy.timeoutSecs) * 3000 }

    var timeoutStartMillis: Int64 {
        min(max(startMillis, lastBenignRestartMillis ?? startMillis), startMillis + Int64(policy.timeoutSecs) * 2000)
    }

    /// What kept the last observation pending.
    enum Pending: Sendable, Codable, Equatable, CustomStringConvertible {
        case noObservation
        case noContainer
        case wrongImage(name: String, imageID: String, expected: String)
        case notRunning(name: String, status: ContainerStatus)
        case healthStarting(name: String)
        case inWindow(name: String, healthy: Bool, upMillis: Int64, windowMillis: Int64)
        case probeFailing(name: String, target: String, answer: ProbeAnswer, probes: Int)

        var description: String {
            switch self {
            case .noObservation: return "no observation yet"
            case .noContainer: return "no container is running for the service"
            case .wrongImage(let name, let id, let expected):
                return "container \(name) runs image \(shortID(id)), not \(shortID(expected))"
            case .notRunning(let name, let status): return "container \(name) is \(status.rawValue)"
            case .healthStarting(let name): return "container \(name) health is still starting"
            case .inWindow(let name, let healthy, let up, let window):
                return healthy
                    ? "container \(name) is healthy, running for \(up / 1000)s of the \(window / 1000)s stability window"
                    : "container \(name) running for \(up / 1000)s of the \(window / 1000)s stability window"
            case .probeFailing(_, let target, let answer, let probes):
                return "\(target) → \(answer.text) after \(probes) probe\(probes == 1 ? "" : "s")"
            }
        }
    }

    public init(policy: HealthPolicy, startMillis: Int64) {
        self.policy = policy
        self.startMillis = startMillis
    }

    /// The stability window actually applied: never longer than the timeout allows.
    public var effectiveStableMillis: Int64 {
        Int64(max(0, min(policy.stableSecs, policy.timeoutSecs))) * 1000
    }

    public mutating func observe(_ containers: [ContainerInfo], expectedImageID: String?, now: Int64) -> Verdict {
        inWindowOnly = false
        let firstObservation = !observedOnce
        observedOnce = true
        firstPoll = firstObservation
        observedAtMillis = now
        probing = []
        lastObserved = containers.map { Observed(id: $0.id, imageID: $0.imageID, status: $0.status, health: $0.health) }
        let verdict = evaluate(containers, expectedImageID: expectedImageID, now: now)
        // A container already good and only finishing its stability window gets to finish it
        // (bounded: the window is at most `stableSecs` from when we first saw it good), so a
        // slow observation cannot turn a healthy release into a timeout.
        let timeoutFrom = timeoutStartMillis
        // Nor is the very first observation ever a timeout: if the first look came late (a slow
        // or timed-out inspection), the service gets one more poll before it is judged.
        if case .pending = verdict, now - timeoutFrom >= Int64(policy.timeoutSecs) * 1000,
           !inWindowOnly || pastHardDeadline(now), !firstObservation {
            return .timedOut("health check timed out after \(policy.timeoutSecs)s: \(lastPending)")
        }
        return verdict
    }

    private mutating func evaluate(_ containers: [ContainerInfo], expectedImageID: String?, now: Int64) -> Verdict {
        if containers.isEmpty {
            pending = .noContainer
            return .pending
        }
        if let expected = expectedImageID {
            let wrong = containers.filter { $0.imageID != expected }
            if let w = wrong.first {
                pending = .wrongImage(name: w.name, imageID: w.imageID, expected: expected)
                return .pending
            }
        }
        var allPassed = true
        var windowOnly = true
        var passMessages: [String] = []
        for c in containers {
            switch c.status {
            case .exited, .dead:
                return .failed("container \(c.name) exited with code \(c.exitCode)")
            case .restarting:
                return .failed("container \(c.name) is restarting after a crash")
            case .created, .paused, .removing:
                allPassed = false
                windowOnly = false
                pending = .notRunning(name: c.name, status: c.status)
                continue
            case .running:
                break
            }
            // Running: detect restarts since the first time we saw it running.
            if let i = seen.firstIndex(where: { $0.id == c.id }) {
                if c.restartCount > seen[i].restartCount {
                    return .failed("container \(c.name) crashed and was restarted during the health check (restart count \(c.restartCount))")
                }
                if seen[i].startedAt != c.startedAt {
                    // Restarted without a crash (a daemon restart): the stability window starts over.
                    seen[i] = Seen(id: c.id, firstRunningMillis: now, startedAt: c.startedAt, restartCount: c.restartCount, name: c.name)
                    lastBenignRestartMillis = now
                }
            } else {
                seen.append(Seen(id: c.id, firstRunningMillis: now, startedAt: c.startedAt, restartCount: c.restartCount, name: c.name))
            }
            guard let s = seen.first(where: { $0.id == c.id }) else { continue }
            switch policy.kind {
            case .http, .tcp, .exec:
                // Judged by the probes the machine runs next (`judgeProbes`).
                probing.append(c.id)
            case .running:
                let up = now - s.firstRunningMillis
                if up >= effectiveStableMillis {
                    passMessages.append("container \(c.name) stayed running for \(up / 1000)s")
                } else {
                    allPassed = false
                    pending = .inWindow(name: c.name, healthy: false, upMillis: up, windowMillis: effectiveStableMillis)
                }
            case .containerHealth:
                switch c.health {
                case .none:
                    return .failed("container \(c.name) has no HEALTHCHECK, but the catalog asks for container_health")
                case .unhealthy:
                    return .failed("container \(c.name) is unhealthy")
                case .starting:
                    allPassed = false
                    windowOnly = false
                    pending = .healthStarting(name: c.name)
                case .healthy:
                    // Healthy, and it must also stay up through the stability window: a
                    // container that reports healthy and dies a second later did not pass.
                    let up = now - s.firstRunningMillis
                    if up >= effectiveStableMillis {
                        passMessages.append("container \(c.name) is healthy and stayed up for \(up / 1000)s")
                    } else {
                        allPassed = false
                        pending = .inWindow(name: c.name, healthy: true, upMillis: up, windowMillis: effectiveStableMillis)
                    }
                }
            }
        }
        if policy.kind.isProbe {
            // Every container runs (nothing pending above): the probes decide.
            if allPassed { return .probe(probing) }
            probing = []
            return .pending
        }
        if allPassed { return .passed(passMessages.joined(separator: "; ")) }
        inWindowOnly = windowOnly
        return .pending
    }

    // MARK: Probes

    /// The address to probe `id` at, once resolved for its current run (`nil` inside: it has none).
    public func resolvedAddress(_ id: String) -> String?? {
        guard let s = seen.first(where: { $0.id == id }), s.addressResolved else { return nil }
        return .some(s.address)
    }

    public mutating func setAddress(_ address: String?, for id: String) {
        guard let i = seen.firstIndex(where: { $0.id == id }) else { return }
        seen[i].address = address
        seen[i].addressResolved = true
    }

    /// One probe's answer, at `now` (when it came back).
    public mutating func recordProbe(_ id: String, target: String, answer: ProbeAnswer, now: Int64) {
        guard let i = seen.firstIndex(where: { $0.id == id }) else { return }
        seen[i].probes += 1
        seen[i].lastWasHostError = false
        seen[i].lastTarget = target
        seen[i].lastAnswer = answer
        if policy.isHealthy(answer) {
            if seen[i].probeOKSince == nil { seen[i].probeOKSince = now }
        } else {
            seen[i].probeOKSince = nil
            // A container that answers badly no longer needs its address re-used blindly: an
            // answer of "nothing there" may mean the address moved.
            if !answer.isAnswer { seen[i].addressResolved = false }
        }
    }

    /// A probe that could not be run at all (the daemon failed or timed out): no verdict on the
    /// service, so the streak is neither broken nor extended, and (as for a failed inspection)
    /// the deadline gets a bounded grace of twice the timeout.
    public mutating func recordProbeError(_ id: String, target: String, message: String) {
        guard let i = seen.firstIndex(where: { $0.id == id }) else { return }
        seen[i].lastTarget = target
        if seen[i].probeOKSince == nil { seen[i].lastAnswer = .error(message) }
        seen[i].lastWasHostError = true
        seen[i].addressResolved = false
    }

    /// The verdict once every container asked for by `observe` was probed.
    public mutating func judgeProbes(now: Int64) -> Verdict {
        inWindowOnly = false
        var allPassed = true
        var windowOnly = true
        var messages: [String] = []
        var failing: (seen: Seen, prefix: String)? = nil
        let several = probing.count > 1
        for id in probing {
            guard let s = seen.first(where: { $0.id == id }) else { continue }
            let prefix = several ? "container \(s.name): " : ""
            if let since = s.probeOKSince {
                let up = max(0, observedAtMillis - since)
                if s.lastWasHostError {
                    // This poll's probe could not be run (the daemon may have just stopped the
                    // container): no pass on it; the next poll looks again.
                    allPassed = false
                    pending = .inWindow(name: s.name, healthy: true, upMillis: up, windowMillis: effectiveStableMillis)
                } else if up >= effectiveStableMillis {
                    messages.append("\(prefix)\(s.lastTarget) → \(s.lastAnswer?.text ?? "?"), healthy for \(up / 1000)s (\(s.probes) probe\(s.probes == 1 ? "" : "s"))")
                } else {
                    allPassed = false
                    pending = .inWindow(name: s.name, healthy: true, upMillis: up, windowMillis: effectiveStableMillis)
                }
            } else {
                allPassed = false
                windowOnly = false
                if failing == nil { failing = (s, prefix) }
            }
        }
        if let (s, prefix) = failing {
            pending = .probeFailing(name: s.name, target: prefix + s.lastTarget, answer: s.lastAnswer ?? .error("not probed"), probes: s.probes)
        }
        if allPassed { return .passed(messages.joined(separator: "; ")) }
        inWindowOnly = windowOnly
        let timeoutFrom = timeoutStartMillis
        guard now - timeoutFrom >= Int64(policy.timeoutSecs) * 1000, !inWindowOnly || pastHardDeadline(now), !firstPoll else { return .pending }
        if let f = failing, f.seen.lastWasHostError {
            if now - timeoutFrom < Int64(policy.timeoutSecs) * 2000 { return .pending }
            // Still no verdict on the service, only on the daemon.
            noVerdict = true
        }
        if let f = failing, let answer = f.seen.lastAnswer, answer.isAnswer {
            return .failed(lastPending)
        }
        return .timedOut(lastPending)
    }
}

func shortID(_ id: String) -> String {
    var s = ""
    s.appendShortID(id)
    return s
}

extension String {
    /// Appends `shortID(id)`: the first 12 characters of `id` without a `sha256:` prefix.
    mutating func appendShortID(_ id: String) {
        let u = id.utf8
        var start = u.startIndex
        if u.starts(with: "sha256:".utf8) { start = u.index(start, offsetBy: 7) }
        // ASCII without CR (every id): 12 bytes are 12 characters (unless a combining mark
        // follows); otherwise count characters.
        var end = start
        var n = 0
        while n < 12, end != u.endIndex, u[end] < 0x80, u[end] != 0x0D {
            u.formIndex(after: &end)
            n += 1
        }
        if end == u.endIndex || (n == 12 && u[end] < 0x80) {
            append(contentsOf: Substring(u[start..<end]))
        } else {
            append(contentsOf: id[start...].prefix(12))
        }
    }
}
