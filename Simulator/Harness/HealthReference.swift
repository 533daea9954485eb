import CaissonCore

/// What a correct health check concludes about a new release, derived from the image's scripted
/// behaviour alone (not from `HealthTracker`): the reference the oracles hold the engine to.
///
/// The check polls every `pollIntervalSecs` from the moment the container starts (the machine's
/// first poll is at its start, in both runtime modes). On that grid a correct check
/// - fails at the first poll at or after the process dies (restarting, exited, or running again
///   with a higher restart count) and, under `container_health`, at the first poll that reads
///   `unhealthy`;
/// - passes at the first poll where the container has been up (and, under `container_health`,
///   reads `healthy`) for the stability window, measured from the first poll that saw it running;
/// - times out at the first poll past the timeout that is not its first observation and not
///   merely finishing the window.
/// Polls whose inspection failed (an injected error that costs no time) observe nothing and keep
/// the grid; past twice the timeout an error ends the check as timed out.
public enum HealthReference {
    public enum Outcome: Sendable, Equatable {
        case pass
        case fail
        case timedOut

        public var code: String {
            switch self {
            case .pass: return ""
            case .fail: return "health_check.failed"
            case .timedOut: return "health_check.timed_out"
            }
        }
    }

    public struct Verdict: Sendable, Equatable {
        public var outcome: Outcome
        /// Milliseconds after the container started (the check's first poll).
        public var atMillis: Int64
    }

    /// Health of a running container of this behaviour, `age` ms after its start.
    public static func health(_ b: SimBehaviour, age: Int64) -> HealthStatus {
        switch b {
        case .healthy(let after): return age >= after ? .healthy : .starting
        case .unhealthy(let after): return age >= after ? .unhealthy : .starting
        case .crash, .oom: return age >= 2000 ? .healthy : .starting
        case .exit, .neverReady: return .starting
        case .flap(let period):
            if age < 2000 { return .starting }
            return ((age - 2000) / max(1, period)) % 2 == 0 ? .healthy : .unhealthy
        }
    }

    /// When the process dies by itself after its start, if it does.
    public static func deathMillis(_ b: SimBehaviour) -> Int64? {
        switch b {
        case .crash(let ms, _), .exit(let ms), .oom(let ms): return ms
        case .healthy, .unhealthy, .neverReady, .flap: return nil
        }
    }

    /// The first moment the release is observably bad (dies, or reads unhealthy under
    /// `container_health`), if ever (within `horizon`).
    public static func firstBadMillis(kind: HealthKind, behaviour b: SimBehaviour, horizon: Int64) -> Int64? {
        var bad = deathMillis(b)
        if kind == .containerHealth {
            switch b {
            case .unhealthy(let after): bad = min(bad ?? .max, after)
            case .flap(let period): bad = min(bad ?? .max, 2000 + max(1, period))
            default: break
            }
        }
        return bad.flatMap { $0 <= horizon ? $0 : nil }
    }

    /// The verdict on the regular grid, with the polls in `skipped` (0-based) observing nothing.
    /// nil when the grid cannot say (the first observation came after a restart: the check has
    /// no baseline restart count then).
    public static func verdict(kind: HealthKind, behaviour b: SimBehaviour, policy: HealthPolicy,
                               probe: String = "", skipped: [Int] = []) -> Verdict {
        verdictIfKnown(kind: kind, behaviour: b, policy: policy, probe: probe, skipped: skipped)
            ?? Verdict(outcome: .fail, atMillis: 0)
    }

    /// Probe kinds (http, tcp, exec): does the scripted answer pass, and does the service answer
    /// at all (a wrong status or exit code answers; `refused` and `hang` do not)? A check whose
    /// probes never pass fails at its deadline when something answered, else times out.
    public static func probeScript(kind: HealthKind, probe: String) -> (passes: Bool, answers: Bool) {
        switch kind {
        case .http:
            guard let status = Int(probe) else { return (false, false) }
            return ((200...399).contains(status), true)
        case .tcp: return (probe != "refused" && probe != "hang", probe != "refused" && probe != "hang")
        case .exec: return (probe == "0", probe != "hang")
        case .running, .containerHealth: return (true, true)
        }
    }

    /// The verdict on the regular grid (probe kinds: a probe that answers at once; a hanging one
    /// costs its probe timeout per poll, which the oracle bounds instead).
    public static func verdictIfKnown(kind: HealthKind, behaviour b: SimBehaviour, policy: HealthPolicy,
                                      probe: String = "", skipped: [Int] = []) -> Verdict? {
        let script = probeScript(kind: kind, probe: probe)
        let poll = Int64(max(1, policy.pollIntervalSecs)) * 1000
        let timeout = Int64(policy.timeoutSecs) * 1000
        let stable = Int64(max(0, min(policy.stableSecs, policy.timeoutSecs))) * 1000
        let death = deathMillis(b)
        var observedOnce = false
        var firstSeen: Int64 = 0
        var k = 0
        while k < 100_000 {
            let t = Int64(k) * poll
            defer { k += 1 }
            if skipped.contains(k) {
                if t >= 2 * timeout { return Verdict(outcome: .timedOut, atMillis: t) }
                continue
            }
            let first = !observedOnce
            observedOnce = true
            if first { firstSeen = t }
            if let d = death, t >= d {
                // Dead, restarting, or back with a higher restart count than first seen.
                if first { return nil }
                return Verdict(outcome: .fail, atMillis: t)
            }
            var windowOnly = true
            switch kind {
            case .running:
                if t - firstSeen >= stable { return Verdict(outcome: .pass, atMillis: t) }
            case .http, .tcp, .exec:
                if script.passes {
                    if t - firstSeen >= stable { return Verdict(outcome: .pass, atMillis: t) }
                } else {
                    windowOnly = false
                    if t >= timeout, !first { return Verdict(outcome: script.answers ? .fail : .timedOut, atMillis: t) }
                }
            case .containerHealth:
                switch health(b, age: t) {
                case .unhealthy: return Verdict(outcome: .fail, atMillis: t)
                case .healthy:
                    if t - firstSeen >= stable { return Verdict(outcome: .pass, atMillis: t) }
                case .starting, .none:
                    windowOnly = false
                }
            }
            if t >= timeout, !first, !windowOnly { return Verdict(outcome: .timedOut, atMillis: t) }
        }
        return nil
    }

    /// Must a correct check refuse this release, however its polls fall?
    public static func mustFail(kind: HealthKind, behaviour b: SimBehaviour, policy: HealthPolicy, probe: String = "") -> Bool {
        let stable = Int64(max(0, min(policy.stableSecs, policy.timeoutSecs))) * 1000
        if let d = deathMillis(b), d < stable { return true }
        if kind.isProbe { return !probeScript(kind: kind, probe: probe).passes }
        guard kind == .containerHealth else { return false }
        switch b {
        case .unhealthy, .neverReady, .exit: return true
        case .healthy(let after): return after >= Int64(policy.timeoutSecs) * 1000
        case .crash, .flap, .oom: return false
        }
    }
}
