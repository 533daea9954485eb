import CaissonCore

/// What the simulated processes print and answer (issue 12), scripted by image labels so a real
/// test image can carry the same labels and say what it does:
///
/// - `io.caisson.sim.log`: the line a process prints to stdout when it starts (default
///   `sim: started`); `io.caisson.sim.exit_log`: the line it prints to stderr just before it
///   exits by itself (`crash`, `exit`, `oom`; default `sim: exiting with code N`).
/// - `io.caisson.sim.http`: what its HTTP server on `io.caisson.sim.port` (default 8080) answers:
///   a status (`200`, `503`), `hang` (accepts, never answers), `refused` (nothing listens); absent
///   means nothing listens. A TCP probe of that port connects unless it is `refused` or absent.
/// - `io.caisson.sim.exec`: how the health command run inside it exits: a code (`0`, `1`) or
///   `hang`; absent means the command does not exist (exit 127, as Docker's exec reports it).
/// - `io.caisson.sim.health` `oom[:s]` (see `SimBehaviour.oom`): killed for memory, `OOMKilled`.
///
/// Logs are kept per container across restarts (the last `maxLogLines` lines); Docker's health log
/// (`State.Health.Log`, the last 5 results of a 1 s HEALTHCHECK) is derived from the behaviour.
/// Addresses: a container gets `172.18.x.y` on its first start (from a host-wide count), none on
/// network `none`, and answers on `127.0.0.1` with network `host`.
public enum SimScript {
    public static let logLabel = "io.caisson.sim.log"
    public static let exitLogLabel = "io.caisson.sim.exit_log"
    public static let httpLabel = "io.caisson.sim.http"
    public static let portLabel = "io.caisson.sim.port"
    public static let execLabel = "io.caisson.sim.exec"
    public static let defaultStartLine = "sim: started"
    public static let defaultPort = 8080
}

extension SimulatedHost {
    static let maxLogLines = 500
    static let healthLogEntries = 5

    // MARK: Timeline hooks (called by beginRun / processExit / terminate)

    /// A run begins: Docker clears OOMKilled; the process prints its start line.
    func started(_ c: inout SimContainer) {
        if c.oomKilled == true { c.oomKilled = false }
        appendLog(&c, LogLine(.stdout, c.labels[SimScript.logLabel] ?? SimScript.defaultStartLine))
        let net = c.config.networks.first ?? "bridge"
        if c.address == nil, net != "none", net != "host" {
            let n = (state.addressCount ?? 0) + 1
            state.addressCount = n
            c.address = "172.18.\((n + 1) / 256 % 256).\((n + 1) % 256)"
        }
    }

    /// A run ends at virtual time `t`; `selfExit`: the process exited by itself (its last words).
    func exited(_ c: inout SimContainer, at t: Int64, selfExit: Bool) {
        c.finishedAtMillis = t
        c.finishedAt = VirtualClock.rfc3339(epochMillis: state.originEpochMillis &+ t, fractionDigits: 9)
        guard selfExit, let exit = c.behaviour.selfExit else { return }
        appendLog(&c, LogLine(.stderr, c.labels[SimScript.exitLogLabel] ?? "sim: exiting with code \(exit.code)"))
        if case .oom = c.behaviour { c.oomKilled = true }
    }

    private func appendLog(_ c: inout SimContainer, _ line: LogLine) {
        if c.logs == nil { c.logs = [] }
        c.logs!.append(line)
        if c.logs!.count > Self.maxLogLines { c.logs!.removeFirst(c.logs!.count - Self.maxLogLines) }
    }

    // MARK: ContainerHost

    public func containerDetails(_ nameOrID: String) throws(HostError) -> ContainerDetails? {
        try perform(.containerDetails, nameOrID,
                    body: { () throws(HostError) -> ContainerDetails? in try doContainerDetails(nameOrID) },
                    fold: { d, h in Self.fold(d?.info, &h); h.add(byte: d?.oomKilled == true ? 1 : 0) },
                    summary: { $0.map { Self.describe($0.info) + " oom=\($0.oomKilled) address=\($0.probeAddress ?? "-")" } ?? "nil" })
    }

    public func containerLogs(_ nameOrID: String, limit: LogLimit) throws(HostError) -> LogTail {
        try perform(.containerLogs, nameOrID, String(limit.maxLines), String(limit.maxBytes),
                    body: { () throws(HostError) -> LogTail in try doContainerLogs(nameOrID, limit: limit) },
                    fold: { t, h in for l in t.lines { h.addWords(l.text) }; h.add(byte: t.truncated ? 1 : 0) },
                    summary: { "\($0.lines.count) line(s)\($0.truncated ? " (truncated)" : "")" })
    }

    public func probe(_ request: ProbeRequest, timeoutMillis: Int64) throws(HostError) -> ProbeAnswer {
        try perform(.probe, request.target, String(timeoutMillis),
                    body: { () throws(HostError) -> ProbeAnswer in try doProbe(request, timeoutMillis: timeoutMillis) },
                    fold: { a, h in h.addWords(a.text) }, summary: { $0.text })
    }

    // MARK: Bodies

    func doContainerDetails(_ nameOrID: String) throws(HostError) -> ContainerDetails? {
        guard let index = try resolveContainerIndex(nameOrID) else { return nil }
        let c = state.containers.values[index]
        let now = clock.nowMillis
        let running = c.status == .running
        let mode = c.config.networks.first ?? "bridge"
        var networks: [ContainerNetworkAddress] = []
        if mode != "host" && mode != "none" {
            networks.append(ContainerNetworkAddress(network: mode, ipAddress: running ? c.address ?? "" : ""))
        }
        return ContainerDetails(info: c.info(at: now), oomKilled: c.oomKilled ?? false, error: nil,
                                startedAt: c.hasBeenStartedBefore ? c.startedAt : Self.neverStarted,
                                finishedAt: c.finishedAt ?? Self.neverStarted, healthLog: healthLog(c, now: now),
                                environment: c.config.env, networks: networks, networkMode: mode)
    }

    func doContainerLogs(_ nameOrID: String, limit: LogLimit) throws(HostError) -> LogTail {
        guard let index = try resolveContainerIndex(nameOrID) else { throw HostError(.notFound, "No such container: \(nameOrID)") }
        return LogTail.bounded(state.containers.values[index].logs ?? [], limit: limit)
    }

    func doProbe(_ request: ProbeRequest, timeoutMillis: Int64) throws(HostError) -> ProbeAnswer {
        switch request {
        case .http(let address, let port, _), .tcp(let address, let port):
            guard let c = runningContainer(at: address) else { return .refused("no route to host") }
            let listens = Int(c.labels[SimScript.portLabel] ?? "") ?? SimScript.defaultPort
            let script = c.labels[SimScript.httpLabel] ?? "refused"
            guard port == listens, script != "refused" else { return .refused("connection refused") }
            if case .tcp = request { return .connected }
            if script == "hang" { return hang(timeoutMillis) }
            guard let status = Int(script), (100...599).contains(status) else { return .refused("connection refused") }
            return .httpStatus(status)
        case .exec(let container, let command):
            guard let index = try resolveContainerIndex(container) else { throw HostError(.notFound, "No such container: \(container)") }
            let c = state.containers.values[index]
            guard c.status == .running else {
                throw HostError(.conflict, "Container \(c.id) is not running")
            }
            guard let script = c.labels[SimScript.execLabel] else {
                return .exited(code: 127, output: "exec: \"\(command.first ?? "")\": not found")
            }
            if script == "hang" { return hang(timeoutMillis) }
            guard let code = Int(script), (0...255).contains(code) else { return .exited(code: 126, output: "") }
            return .exited(code: code, output: "")
        }
    }

    /// The probe's deadline passes with no answer.
    private func hang(_ timeoutMillis: Int64) -> ProbeAnswer {
        clock.sleep(millis: max(0, timeoutMillis))
        advanceAll()
        return .noAnswer(afterMillis: max(0, timeoutMillis))
    }

    /// The running container that answers at `address` (`127.0.0.1`: one on host networking, the
    /// lowest id if several). Addresses are unique, so the search does not depend on order.
    func runningContainer(at address: String) -> SimContainer? {
        var found: SimContainer? = nil
        for c in state.containers.values where c.status == .running {
            let matches = address == "127.0.0.1" ? c.config.networks.first == "host" : c.address == address
            if matches, found == nil || c.id < found!.id { found = c }
        }
        return found
    }

    /// Docker's `State.Health.Log`: the last 5 results of a 1 s HEALTHCHECK during the current (or
    /// last) run, oldest first.
    func healthLog(_ c: SimContainer, now: Int64) -> [HealthLogEntry] {
        guard c.hasHealthcheck, c.hasBeenStartedBefore else { return [] }
        let end = c.status == .running ? now : min(now, c.finishedAtMillis ?? now)
        let probes = max(0, (end - c.startedAtMillis) / 1000)
        guard probes > 0 else { return [] }
        var out: [HealthLogEntry] = []
        for k in max(1, probes - Int64(Self.healthLogEntries) + 1)...probes {
            let t = c.startedAtMillis + k * 1000
            let ok = c.behaviour.healthAt(age: k * 1000) == .healthy
            let stamp = VirtualClock.rfc3339(epochMillis: state.originEpochMillis &+ t, fractionDigits: 9)
            out.append(HealthLogEntry(start: stamp, end: stamp, exitCode: ok ? 0 : 1, output: ok ? "sim healthcheck: ok" : "sim healthcheck: failing"))
        }
        return out
    }
}

extension SimBehaviour {
    /// The health a running process with this behaviour reports `age` ms after its start.
    func healthAt(age: Int64) -> HealthStatus {
        switch self {
        case .healthy(let after): return age >= after ? .healthy : .starting
        case .unhealthy(let after): return age >= after ? .unhealthy : .starting
        case .crash, .oom: return age >= 2000 ? .healthy : .starting
        case .exit, .neverReady: return .starting
        case .flap(let period):
            guard age >= 2000 else { return .starting }
            return ((age - 2000) / max(1, period)) % 2 == 0 ? .healthy : .unhealthy
        }
    }
}
