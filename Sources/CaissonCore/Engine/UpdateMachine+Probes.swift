/// Health probes (issue 12): for `http`, `tcp` and `exec` checks, every poll that finds the
/// service's containers running probes each of them, one host command at a time (sans-I/O: the
/// host runs the probe, the machine judges the answer). An http/tcp probe first resolves the
/// container's address (once per run of the container), then probes it.
extension UpdateMachine {
    var inRestoreHealth: Bool {
        switch phase {
        case .restoreHealthPoll, .restoreHealthWait, .restoreHealthAddress, .restoreHealthProbe: return true
        default: return false
        }
    }

    mutating func startProbes(_ ids: [String], now: Int64, _ timestamp: String) -> Action {
        probeQueue = ids
        return nextProbe(now: now, timestamp)
    }

    /// Probes the next container of this poll, or (none left) judges them all.
    mutating func nextProbe(now: Int64, _ timestamp: String) -> Action {
        let restoring = inRestoreHealth
        let policy = plan.service.health
        guard var tracker = health else { return unexpected(nil, timestamp, input: .woke) }
        while let id = probeQueue.first {
            var address: String? = nil
            if policy.kind == .http || policy.kind == .tcp {
                guard let resolved = tracker.resolvedAddress(id) else {
                    phase = restoring ? .restoreHealthAddress : .healthAddress
                    return .call(.containerDetails(id))
                }
                address = resolved
            }
            if let request = policy.probe(container: id, address: address) {
                phase = restoring ? .restoreHealthProbe : .healthProbe
                return .call(.probe(request, timeoutMillis: Int64(policy.probeTimeoutSecs) * 1000))
            }
            // An http/tcp check of a container without a network address: nothing to connect to.
            let target = policy.probe(container: id, address: "<no address>")?.target ?? policy.kind.rawValue
            tracker.recordProbe(id, target: target, answer: .refused("the container has no network address"), now: now)
            health = tracker
            probeQueue.removeFirst()
        }
        let verdict = tracker.judgeProbes(now: now)
        health = tracker
        return restoring ? restoreVerdict(verdict, now: now, timestamp) : forwardVerdict(verdict, now: now, timestamp)
    }

    mutating func afterAddress(_ reply: Reply, now: Int64, _ timestamp: String) -> Action {
        guard let id = probeQueue.first, var tracker = health else { return unexpected(reply, timestamp) }
        switch reply {
        case .details(let d?):
            tracker.setAddress(d.info.isRunning ? d.probeAddress : nil, for: id)
            health = tracker
        case .details(nil):
            // Gone since the poll: the next poll sees it.
            let target = plan.service.health.probe(container: id, address: "<no address>")?.target ?? ""
            tracker.recordProbe(id, target: target, answer: .refused("the container no longer exists"), now: now)
            health = tracker
            probeQueue.removeFirst()
        case .error(let e):
            // Not knowing the address is no verdict on the service.
            let target = plan.service.health.probe(container: id, address: "<no address>")?.target ?? ""
            tracker.recordProbeError(id, target: target, message: "could not inspect the container: \(e.message)")
            health = tracker
            probeQueue.removeFirst()
        default:
            return unexpected(reply, timestamp)
        }
        return nextProbe(now: now, timestamp)
    }

    mutating func afterProbe(_ reply: Reply, now: Int64, _ timestamp: String) -> Action {
        guard let id = probeQueue.first, var tracker = health else { return unexpected(reply, timestamp) }
        let policy = plan.service.health
        let address = tracker.resolvedAddress(id) ?? nil
        let target = policy.probe(container: id, address: address ?? "<no address>")?.target ?? ""
        switch reply {
        case .probe(let answer):
            tracker.recordProbe(id, target: target, answer: answer, now: now)
        case .error(let e):
            tracker.recordProbeError(id, target: target, message: e.message)
        default:
            return unexpected(reply, timestamp)
        }
        health = tracker
        probeQueue.removeFirst()
        return nextProbe(now: now, timestamp)
    }
}
