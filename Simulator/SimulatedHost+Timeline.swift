import CaissonCore

/// `a + b`, clamped to the Int64 range (values from a loaded state file are not trusted).
@inline(__always) func saturatingAdd(_ a: Int64, _ b: Int64) -> Int64 {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? (b > 0 ? Int64.max : Int64.min) : sum
}

/// A grace period in ms: negative → 0, at most a year.
@inline(__always) func graceMillis(seconds: Int) -> Int64 {
    Int64(min(max(0, seconds), 86_400 * 365)) * 1000
}

/// Container life over virtual time: self-exits, restart policies with back-off, daemon restarts.
extension SimulatedHost {
    static let restartBackoffInitialMillis: Int64 = 100
    static let restartBackoffMaxMillis: Int64 = 60_000
    /// Docker resets the back-off once a container has run this long.
    static let restartBackoffResetMillis: Int64 = 10_000
    /// Docker's StartedAt of a container that never started.
    static let neverStarted = "0001-01-01T00:00:00Z"

    /// Brings every container up to the clock's time. Cheap when nothing is due. Events are
    /// processed one at a time in (time, container id) order, so the outcome never depends on
    /// dictionary order (a restart may look at other containers' port bindings).
    func advanceAll() {
        let now = clock.nowMillis
        guard now >= nextEventMillis else { return }
        while true {
            var bestIndex: Dictionary<String, SimContainer>.Index? = nil
            var bestTime = Int64.max
            var i = state.containers.values.startIndex
            while i != state.containers.values.endIndex {
                if let t = state.containers.values[i].nextEventMillis, t <= now {
                    if t < bestTime || (t == bestTime && bestIndex.map({ state.containers.keys[$0] > state.containers.keys[i] }) ?? true) {
                        bestTime = t
                        bestIndex = i
                    }
                }
                state.containers.values.formIndex(after: &i)
            }
            guard let index = bestIndex else { break }
            // Copy out: an event may read other containers (port bindings).
            var c = state.containers.values[index]
            step(&c)
            state.containers.values[index] = c
        }
        recomputeNextEvent()
    }

    func recomputeNextEvent() {
        var next = Int64.max
        for c in state.containers.values { if let t = c.nextEventMillis, t < next { next = t } }
        nextEventMillis = next
    }

    @inline(__always) func schedule(_ t: Int64?) {
        if let t, t < nextEventMillis { nextEventMillis = t }
    }

    /// Processes `c`'s next scheduled event.
    func step(_ c: inout SimContainer) {
        guard let t = c.nextEventMillis else { return }
        switch c.status {
        case .running:
            guard let exit = c.behaviour.selfExit else { c.nextEventMillis = nil; return }
            processExit(&c, at: t, code: exit.code)
        case .restarting:
            if hostPortConflict(for: c) || joinNetwork(&c) != nil {
                // Docker gives up on this restart (the container stays exited).
                c.status = .exited
                c.exitCode = 128
                c.nextEventMillis = nil
            } else {
                beginRun(&c, at: t)
            }
        case .created, .paused, .removing, .exited, .dead:
            c.nextEventMillis = nil
        }
    }

    /// The process exited by itself at `t` with `code`: the restart policy decides what is next.
    func processExit(_ c: inout SimContainer, at t: Int64, code: Int) {
        let (diff, overflow) = t.subtractingReportingOverflow(c.startedAtMillis)
        let ran = overflow ? Int64.max : diff
        exited(&c, at: t, selfExit: true)
        c.exitCode = code
        c.frozenHealth = c.hasHealthcheck ? .unhealthy : .none
        if ran >= Self.restartBackoffResetMillis { c.backoffMillis = 0 }
        if policyRestarts(c, exitCode: code) {
            if c.backoffMillis <= 0 {
                c.backoffMillis = Self.restartBackoffInitialMillis
            } else {
                c.backoffMillis = min(min(c.backoffMillis, Self.restartBackoffMaxMillis) * 2, Self.restartBackoffMaxMillis)
            }
            c.restartCount = c.restartCount == Int.max ? Int.max : c.restartCount + 1
            c.status = .restarting
            c.nextEventMillis = saturatingAdd(t, c.backoffMillis)
        } else {
            c.status = .exited
            c.nextEventMillis = nil
        }
    }

    /// Docker's `RestartManager.ShouldRestart` for an exit the user did not ask for.
    func policyRestarts(_ c: SimContainer, exitCode: Int) -> Bool {
        switch c.config.restartPolicy {
        case .no: return false
        case .always: return true
        case .unlessStopped: return !c.manuallyStopped
        case .onFailure(let max): return exitCode != 0 && (max == 0 || c.restartCount < max)
        }
    }

    /// The process starts at `t` (a user start, a policy restart or a daemon restore).
    func beginRun(_ c: inout SimContainer, at t: Int64) {
        state.startCounter += 1
        c.status = .running
        c.exitCode = 0
        c.startedAtMillis = t
        c.startedAt = VirtualClock.rfc3339(epochMillis: state.originEpochMillis &+ t, fractionDigits: 9,
                                           extraNanos: state.startCounter % 1_000_000)
        c.hasBeenStartedBefore = true
        c.stoppedByDaemon = nil
        c.frozenHealth = c.hasHealthcheck ? .starting : .none
        c.nextEventMillis = c.behaviour.selfExit.map { saturatingAdd(t, max(0, $0.afterMillis)) }
        started(&c)
    }

    /// Stops a running container at the current time, waiting out the grace period if its process
    /// ignores SIGTERM (a self-exit due earlier wins). Advances the clock. Returns the exit code.
    func terminate(_ c: inout SimContainer, graceMillis: Int64, cause: String) -> (code: Int, atMillis: Int64) {
        let now = clock.nowMillis
        var exitAt = now
        var code = c.stopMode.exitCodeOnStop
        var killedMidFlush = false
        var selfExited = false
        if c.stopMode == .ignoreSigterm { exitAt = saturatingAdd(now, max(0, graceMillis)) }
        if c.stopMode == .graceful, let flush = c.flushMillis, flush > 0 {
            // It flushes after SIGTERM; a grace shorter than that ends in SIGKILL mid-flush.
            if max(0, graceMillis) >= flush {
                exitAt = saturatingAdd(now, flush)
            } else {
                exitAt = saturatingAdd(now, max(0, graceMillis))
                code = 137
                killedMidFlush = true
            }
        }
        if let t = c.nextEventMillis, t < exitAt, let selfExit = c.behaviour.selfExit {
            exitAt = max(t, now)
            code = selfExit.code
            killedMidFlush = false
            selfExited = true
        }
        if killedMidFlush { recordFlushKill(c, graceMillis: max(0, graceMillis), cause: cause, at: exitAt) }
        exited(&c, at: exitAt, selfExit: selfExited)
        c.status = .exited
        c.exitCode = code
        c.frozenHealth = c.hasHealthcheck ? .unhealthy : .none
        c.nextEventMillis = nil
        return (code, exitAt)
    }

    /// Records that `c` was SIGKILLed before its flush ended (nothing when it has no flush).
    func recordFlushKill(_ c: SimContainer, graceMillis: Int64, cause: String, at: Int64? = nil) {
        guard c.stopMode == .graceful, let flush = c.flushMillis, flush > graceMillis else { return }
        let kill = SimFlushKill(containerID: c.id, name: c.name, atMillis: at ?? clock.nowMillis, graceMillis: graceMillis,
                                flushMillis: flush, cause: cause)
        digest("flush-kill " + c.id)
        state.flushKills = (state.flushKills ?? []) + [kill]
    }

    /// The host port bindings of a config: `HOST:CONTAINER` → `HOST`, `IP:HOST:CONTAINER` →
    /// `IP:HOST` (each with its `/proto`, default tcp). Entries without a host part bind nothing.
    static func hostBindings(_ ports: [String]) -> [String] {
        var out: [String] = []
        for p in ports {
            var spec = Substring(p)
            var proto: Substring = "tcp"
            if let slash = spec.lastIndex(of: "/") {
                proto = spec[spec.index(after: slash)...]
                spec = spec[..<slash]
            }
            guard let colon = spec.lastIndex(of: ":") else { continue }
            let host = spec[..<colon]
            let ip = host.contains(Character(":")) ? "" : "0.0.0.0:"
            out.append(ip + String(host) + "/" + String(proto))
        }
        return out
    }

    /// Would starting `c` bind a host port a running container already holds?
    func hostPortConflict(for c: SimContainer) -> Bool {
        guard !c.hostPorts.isEmpty else { return false }
        // Docker releases a container's port mappings when its process exits, even while a
        // policy restart is pending: only running containers hold ports.
        for other in state.containers.values where !other.hostPorts.isEmpty && other.status == .running && other.id != c.id {
            for b in other.hostPorts where c.hostPorts.contains(b) { return true }
        }
        return false
    }

    /// The daemon goes down and comes back, restoring containers per their restart policies.
    /// What happens to running containers depends on `kind` (measured on Docker 20.10,
    /// scripts/README-docker.md quirk 14):
    /// - `graceful`: dockerd stops them (SIGTERM, StopTimeout), not "manually";
    /// - `crash`: dockerd dies, they keep running; the new dockerd stops them and marks them
    ///   manually stopped (so `unless-stopped` stays down);
    /// - `powerCut`: everything dies at once (exit code 255, not manually stopped).
    func restartDaemonInternal(_ kind: DaemonRestartKind = .graceful) {
        advanceAll()
        let now = clock.nowMillis
        var shutdownEnds = now
        var i = state.containers.values.startIndex
        while i != state.containers.values.endIndex {
            var c = state.containers.values[i]
            switch c.status {
            case .running:
                c.stoppedByDaemon = true
                switch kind {
                case .graceful, .crash:
                    let grace = graceMillis(seconds: c.config.stopGraceSecs)
                    let r = terminate(&c, graceMillis: grace, cause: "daemon")
                    shutdownEnds = max(shutdownEnds, r.atMillis)
                    if kind == .crash { c.manuallyStopped = true }
                case .powerCut:
                    exited(&c, at: now, selfExit: false)
                    c.status = .exited
                    c.exitCode = 255
                    c.frozenHealth = c.hasHealthcheck ? .unhealthy : .none
                    c.nextEventMillis = nil
                }
                state.containers.values[i] = c
            case .restarting:
                c.status = .exited
                c.nextEventMillis = nil
                state.containers.values[i] = c
            case .created, .paused, .removing, .exited, .dead:
                break
            }
            state.containers.values.formIndex(after: &i)
        }
        clock.advance(to: shutdownEnds)
        clock.sleep(millis: daemonRestartMillis)
        state.daemonRestarts += 1
        let t = clock.nowMillis
        // Containers sharing another's network namespace come back after the others.
        let ids = state.containers.keys.sorted()
        let order = ids.filter { state.containers[$0]?.config.networkMode?.hasPrefix("container:") != true }
            + ids.filter { state.containers[$0]?.config.networkMode?.hasPrefix("container:") == true }
        for id in order {
            guard var c = state.containers[id], c.hasBeenStartedBefore, c.status == .exited else { continue }
            let comesBack: Bool
            switch c.config.restartPolicy {
            case .no: comesBack = false
            case .always: comesBack = true
            case .unlessStopped: comesBack = !c.manuallyStopped
            case .onFailure(let max): comesBack = c.exitCode != 0 && (max == 0 || c.restartCount < max)
            }
            guard comesBack else { continue }
            if hostPortConflict(for: c) || joinNetwork(&c) != nil {
                c.exitCode = 128
            } else {
                c.restartCount = 0
                c.manuallyStopped = false
                c.backoffMillis = 0
                beginRun(&c, at: t)
            }
            state.containers[id] = c
        }
        recomputeNextEvent()
    }
}
