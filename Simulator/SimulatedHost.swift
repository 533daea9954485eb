import CaissonCore

/// A Docker daemon (plus Compose) simulated in-process: images, containers, restart policies,
/// health over virtual time, daemon restarts, and deterministic faults at every call.
///
/// Every `ContainerHost` call first brings the simulated world up to the clock's current time
/// (containers crash, restart and change health lazily, as a pure function of virtual time), then
/// consults the fault plan, then acts, and finally appends one line to `trace` and folds the same
/// fields into `traceDigest`. Same seed, same calls, same clock → same trace, byte for byte.
///
/// Observable behaviour follows the Docker Engine (25+) and Compose v2:
/// - tags move on load/tag; an untagged image stays usable by id; ids resolve from `sha256:<hex>`,
///   bare hex or a unique hex prefix; references are normalised (`nginx` = `nginx:latest` =
///   `docker.io/library/nginx:latest`);
/// - removing a tag that was an image's last deletes the image unless a container uses it (then
///   it is kept, dangling); removing by id is refused (`.conflict`) while a container uses it or
///   while it carries more than one tag;
/// - container names follow `[a-zA-Z0-9][a-zA-Z0-9_.-]+`; start of a running container and stop of
///   a stopped one succeed; a start that would bind a host port already bound by a running
///   container fails (`.failed`, exit code 128, state unchanged);
/// - restart policies with Docker's back-off (100 ms doubling to 1 min, reset after 10 s of
///   uptime), `restarting` status in between; a manual start resets `restartCount`;
/// - health: `starting` at every start, scripted by the image label `io.caisson.sim.health`;
///   `unhealthy` once the container stops (Docker closes the health monitor); `.none` without a
///   healthcheck and for never-started containers;
/// - daemon restart (`restartDaemon(_:)`, graceful / crash / power cut, as measured on Docker 20.10
///   in scripts/README-docker.md): then every container that was started before comes back if
///   `always`, `unless-stopped` and not stopped by the user, or `on-failure[:N]` after a non-zero
///   exit (and fewer than N restarts); in container-id order, so a port clash leaves the later
///   one exited (code 128).
public final class SimulatedHost: ContainerHost {
    public let clock: VirtualClock
    @exclusivity(unchecked) var state: SimState
    /// Keep the text of each call in `trace` (the digest is always kept).
    @exclusivity(unchecked) public var recordTrace: Bool
    /// Keep `calls` (cheap; turn off for very long single-host runs).
    @exclusivity(unchecked) public var recordCalls: Bool = true
    @exclusivity(unchecked) public private(set) var trace: [String] = []
    @exclusivity(unchecked) public private(set) var calls: [SimCall] = []
    /// How long a daemon restart takes, on top of stopping the running containers.
    public var daemonRestartMillis: Int64 = 1_000
    /// What `ping` answers.
    public var versionString = "Docker 28.2.2 (simulated), API 1.47"

    /// A lower bound of every container's `nextEventMillis` (Int64.max: nothing scheduled).
    @exclusivity(unchecked) var nextEventMillis: Int64 = .max
    /// Memoised `SimReference.normalize`; a pure function, so hosts started from the same
    /// provisioned world share one memo.
    @exclusivity(unchecked) var referenceCache = ReferenceCache()
    /// Files on the simulated removable medium, by path (the swarm's encrypted packages): read
    /// by an encrypted load instead of the file system. Not part of the persisted state.
    @exclusivity(unchecked) public var media: [String: [UInt8]] = [:]
    @exclusivity(unchecked) var line = ""

    /// - Parameters:
    ///   - seed: seeds container ids (faults have their own seed in `FaultPlan.swarm`).
    ///   - clock: shared with the update driver, so its sleeps move containers along.
    public init(seed: UInt64 = 0, clock: VirtualClock = VirtualClock(), recordTrace: Bool = true,
                faults: FaultPlan = .none) {
        self.clock = clock
        self.recordTrace = recordTrace
        var s = SimState()
        s.nowMillis = clock.nowMillis
        s.originEpochMillis = clock.originEpochMillis
        s.idRNG = SplitMix64(seed: seed ^ 0xC0FF_EE00_D0CC_E500)
        state = s
        self.faultPlan = faults
    }

    /// A host restored from a saved state, with a fresh clock at the saved time.
    public init(state: SimState, recordTrace: Bool = true) {
        self.clock = VirtualClock(nowMillis: state.nowMillis, originEpochMillis: state.originEpochMillis)
        self.recordTrace = recordTrace
        self.state = state
        // A state saved before an operation was added has fewer counters.
        if self.state.operationCounts.count < SimOperation.allCases.count {
            self.state.operationCounts += Array(repeating: 0, count: SimOperation.allCases.count - self.state.operationCounts.count)
        }
        recomputeNextEvent()
    }

    /// Seeds the ids of containers created from now on (as `init(seed:)` does).
    public func reseedIDs(_ seed: UInt64) {
        state.idRNG = SplitMix64(seed: seed ^ 0xC0FF_EE00_D0CC_E500)
    }

    /// The whole state, with the clock's current time.
    public var snapshot: SimState {
        var s = state
        s.nowMillis = clock.nowMillis
        return s
    }

    // MARK: Faults, calls, trace

    /// Replacing the plan restarts its swarm stream (site activation is redrawn from its seed).
    public var faultPlan: FaultPlan {
        get { state.faultPlan }
        set {
            state.faultPlan = newValue
            state.swarm = newValue.swarm.map(SwarmState.init)
        }
    }

    public var swarm: SwarmState? { state.swarm }
    public var callCount: Int { state.callCount }
    public var traceDigest: UInt64 { state.traceDigest }
    public var daemonRestartCount: Int { state.daemonRestarts }

    /// Number of calls made so far of `operation`.
    public func callCount(of operation: SimOperation) -> Int { state.operationCounts[operation.ordinal] }

    /// Forget the recorded trace lines and calls (digest and counters are kept).
    public func clearRecords() {
        trace.removeAll(keepingCapacity: true)
        calls.removeAll(keepingCapacity: true)
    }

    func decideFault(_ op: SimOperation, index: Int, operationIndex: Int) -> FaultKind? {
        for rule in state.faultPlan.rules where rule.matches(callIndex: index, operation: op, operationIndex: operationIndex) {
            return rule.kind
        }
        if state.swarm != nil { return state.swarm?.draw(op) }
        return nil
    }

    @inline(__always) func digest(_ s: String) {
        var h = FNV1a64(state.traceDigest)
        h.addWords(s)
        state.traceDigest = h.value
    }

    @inline(__always) func digest(_ n: Int64) {
        var h = FNV1a64(state.traceDigest)
        h.addWord(n)
        state.traceDigest = h.value
    }

    /// Runs one host call: bookkeeping, fault injection, the body, the record.
    @discardableResult
    func perform<T>(_ op: SimOperation, _ a: String = "", _ b: String = "", _ c: String = "", _ d: String = "",
                    body: () throws(HostError) -> T, fold: (T, inout FNV1a64) -> Void,
                    summary: (T) -> String) throws(HostError) -> T {
        advanceAll()
        let index = state.callCount
        state.callCount = index + 1
        let opIndex = state.operationCounts[op.ordinal]
        state.operationCounts[op.ordinal] = opIndex + 1
        let at = clock.nowMillis
        let fault = decideFault(op, index: index, operationIndex: opIndex)

        digest(at)
        digest(Int64(index))
        digest(op.rawValue)
        digest(a); digest(b); digest(c); digest(d)
        if recordTrace {
            line = "t=\(at) #\(index) \(op.rawValue)"
            for arg in [a, b, c, d] where !arg.isEmpty {
                line += " "
                line += arg
            }
        }
        if let fault {
            let text = fault.description
            digest(text)
            if recordTrace { line += " [fault: " + text + "]" }
        }

        var error: HostError? = nil
        var applied = true
        switch fault {
        case nil, .failAfterApplying: break
        case .daemonRestart: restartDaemonInternal(.graceful)
        case .daemonCrash: restartDaemonInternal(.crash)
        case .slow(let ms): clock.sleep(millis: ms); advanceAll()
        case .fail:
            applied = false
            error = HostError(.failed, "simulated failure of \(op.rawValue)")
        case .timeout(let ms):
            applied = false
            clock.sleep(millis: ms); advanceAll()
            error = HostError(.indeterminate, "simulated timeout of \(op.rawValue) after \(ms) ms (it may or may not have happened)")
        case .diskFull:
            applied = false
            error = HostError(.diskFull, "write /var/lib/docker: no space left on device (simulated)")
        case .unreachable:
            applied = false
            error = HostError(.unreachable, "Cannot connect to the Docker daemon (simulated)")
        }

        var result: T? = nil
        if applied {
            do throws(HostError) {
                result = try body()
            } catch let e {
                error = e
            }
            if fault == .failAfterApplying {
                error = HostError(.indeterminate, "simulated connection drop after \(op.rawValue) was sent (it may have happened)")
            }
        }

        if let error {
            digest(error.kind.rawValue)
            digest(error.message)
            finish(op, index, opIndex, at, fault, error.kind) { "error " + error.kind.rawValue + ": " + error.message }
            throw error
        }
        guard let result else {
            // Unreachable: `applied` with no error always sets a result.
            let e = HostError(.failed, "internal simulator error")
            finish(op, index, opIndex, at, fault, e.kind) { e.message }
            throw e
        }
        var h = FNV1a64(state.traceDigest)
        fold(result, &h)
        state.traceDigest = h.value
        finish(op, index, opIndex, at, fault, nil) {
            let text = summary(result)
            return text.isEmpty ? "ok" : "ok " + text
        }
        return result
    }

    /// The outcome is already in the digest; `text` is only rendered when the trace is recorded.
    private func finish(_ op: SimOperation, _ index: Int, _ opIndex: Int, _ at: Int64, _ fault: FaultKind?,
                        _ kind: HostError.Kind?, _ text: () -> String) {
        if recordTrace {
            line += " -> "
            line += text()
            trace.append(line)
        }
        if recordCalls {
            calls.append(SimCall(index: index, operation: op, operationIndex: opIndex, atMillis: at, fault: fault, error: kind))
        }
    }

    /// A line in the trace that is not a call (provisioning, explicit daemon restarts).
    func note(_ parts: String...) {
        digest(clock.nowMillis)
        for p in parts { digest(p) }
        if recordTrace { trace.append("t=\(clock.nowMillis) " + parts.joined(separator: " ")) }
    }

    // MARK: ContainerHost

    public func ping() throws(HostError) -> String {
        try perform(.ping, body: { () throws(HostError) -> String in versionString }, fold: Self.fold, summary: { $0 })
    }

    public func loadImage(_ payload: ImagePayload, progress: (Int64) -> Void) throws(HostError) -> ImageInfo {
        try perform(.loadImage, payload.reference, payload.expectedImageID, String(payload.length),
                    body: { () throws(HostError) -> ImageInfo in try doLoadImage(payload, progress: progress) },
                    fold: { i, h in Self.fold(i, &h) }, summary: Self.describe)
    }

    public func inspectImage(_ reference: String) throws(HostError) -> ImageInfo? {
        try perform(.inspectImage, reference, body: { () throws(HostError) -> ImageInfo? in try doInspectImage(reference) },
                    fold: Self.fold, summary: { $0.map(Self.describe) ?? "nil" })
    }

    public func listImages() throws(HostError) -> [ImageInfo] {
        try perform(.listImages, body: { () throws(HostError) -> [ImageInfo] in allImages },
                    fold: { list, h in
                        for i in list { Self.fold(i, &h); for l in i.layers { Self.fold(l, &h) } }
                        h.add(byte: 0x1D)
                    },
                    summary: { list in list.isEmpty ? "[]" : list.map { Self.describe($0) + " layers=" + String($0.layers.count) }.joined(separator: "; ") })
    }

    public func tagImage(_ imageID: String, as reference: String) throws(HostError) {
        try perform(.tagImage, imageID, reference, body: { () throws(HostError) in try doTagImage(imageID, as: reference) },
                    fold: { _, _ in }, summary: { "" })
    }

    public func removeImage(_ reference: String) throws(HostError) {
        try perform(.removeImage, reference, body: { () throws(HostError) -> String in try doRemoveImage(reference) },
                    fold: Self.fold, summary: { $0 })
    }

    public func inspectContainer(_ nameOrID: String) throws(HostError) -> ContainerInfo? {
        try perform(.inspectContainer, nameOrID,
                    body: { () throws(HostError) -> ContainerInfo? in try doInspectContainer(nameOrID) },
                    fold: Self.fold, summary: { $0.map(Self.describe) ?? "nil" })
    }

    public func createContainer(name: String, cloning template: String, imageID: String,
                                labels: [String: String]) throws(HostError) -> String {
        try perform(.createContainer, name, template, imageID, Self.describe(labels),
                    body: { () throws(HostError) -> String in
                        try doCreateContainer(name: name, cloning: template, imageID: imageID, labels: labels)
                    },
                    fold: Self.fold, summary: { $0 })
    }

    public func startContainer(_ nameOrID: String) throws(HostError) {
        try perform(.startContainer, nameOrID, body: { () throws(HostError) -> String in try doStartContainer(nameOrID) },
                    fold: Self.fold, summary: { $0 })
    }

    public func stopContainer(_ nameOrID: String, graceSecs: Int) throws(HostError) {
        try perform(.stopContainer, nameOrID, String(graceSecs),
                    body: { () throws(HostError) -> String in try doStopContainer(nameOrID, graceSecs: graceSecs) },
                    fold: Self.fold, summary: { $0 })
    }

    public func renameContainer(_ nameOrID: String, to newName: String) throws(HostError) {
        try perform(.renameContainer, nameOrID, newName,
                    body: { () throws(HostError) in try doRenameContainer(nameOrID, to: newName) }, fold: { _, _ in }, summary: { "" })
    }

    public func removeContainer(_ nameOrID: String) throws(HostError) {
        try perform(.removeContainer, nameOrID, body: { () throws(HostError) -> String in try doRemoveContainer(nameOrID) },
                    fold: Self.fold, summary: { $0 })
    }

    public func listContainers() throws(HostError) -> [ContainerInfo] {
        try perform(.listContainers, body: { () throws(HostError) -> [ContainerInfo] in
                        let now = clock.nowMillis
                        return state.containers.values.sorted { ($0.name, $0.id) < ($1.name, $1.id) }.map { $0.info(at: now) }
                    },
                    fold: Self.fold, summary: { "\($0.count) container(s)" })
    }

    public func composeServiceFacts(_ target: ComposeTarget) throws(HostError) -> ComposeServiceFacts {
        try perform(.composeModel, target.project, target.service,
                    body: { () throws(HostError) -> ComposeServiceFacts in
                        guard let svc = state.compose[Self.composeKey(target)], svc.target.file == target.file else {
                            throw HostError(.failed, "compose file \(target.file) (project \(target.project)) has no service \"\(target.service)\"")
                        }
                        return ComposeServiceFacts(image: svc.image, networkDependents: composeNetworkDependents(target))
                    },
                    fold: { f, h in Self.fold(f.image ?? "-", &h); for d in f.networkDependents { Self.fold(d, &h) } },
                    summary: { ($0.image ?? "no image") + ($0.networkDependents.isEmpty ? "" : " dependents " + $0.networkDependents.joined(separator: ",")) })
    }

    public func composeUp(_ target: ComposeTarget, services: [String]) throws(HostError) {
        try perform(.composeApply, target.project, services.joined(separator: ","), "as-written",
                    body: { () throws(HostError) -> String in
                        var done: [String] = []
                        for name in services {
                            let t = ComposeTarget(project: target.project, file: target.file, service: name)
                            guard let svc = state.compose[Self.composeKey(t)] else {
                                throw HostError(.failed, "no such service: \(name) (project \(target.project))")
                            }
                            guard let image = svc.image ?? composeMembers(t).first?.imageReference else {
                                throw HostError(.failed, "service \(name) has no image")
                            }
                            done.append(name + " " + (try doComposeApply(t, imageReference: image)))
                        }
                        return done.joined(separator: "; ")
                    },
                    fold: Self.fold, summary: { $0 })
    }

    public func createDependentContainer(name: String, cloning template: String, networkOwner owner: String,
                                         labels: [String: String]) throws(HostError) -> String {
        try perform(.createContainer, name, template, "network=container:" + owner, Self.describe(labels),
                    body: { () throws(HostError) -> String in
                        try doCreateDependentContainer(name: name, cloning: template, networkOwner: owner, labels: labels)
                    },
                    fold: Self.fold, summary: { $0 })
    }

    public func removeStoppedContainer(_ nameOrID: String) throws(HostError) {
        try perform(.removeContainer, nameOrID, "unforced",
                    body: { () throws(HostError) -> String in try doRemoveContainer(nameOrID, force: false) },
                    fold: Self.fold, summary: { $0 })
    }

    public func listContainers(namePrefixes: [String], label: String?) throws(HostError) -> [ContainerInfo] {
        try perform(.listContainers, namePrefixes.joined(separator: ","), label ?? "",
                    body: { () throws(HostError) -> [ContainerInfo] in doListContainers(namePrefixes: namePrefixes, label: label) },
                    fold: Self.fold, summary: { list in list.isEmpty ? "[]" : list.map(Self.describe).joined(separator: "; ") })
    }

    public func composeContainers(_ target: ComposeTarget) throws(HostError) -> [ContainerInfo] {
        try perform(.composeContainers, target.project, target.service,
                    body: { () throws(HostError) -> [ContainerInfo] in try doComposeContainers(target) },
                    fold: Self.fold, summary: { list in list.isEmpty ? "[]" : list.map(Self.describe).joined(separator: "; ") })
    }

    public func composeApply(_ target: ComposeTarget, imageReference: String) throws(HostError) {
        try perform(.composeApply, target.project, target.service, imageReference,
                    body: { () throws(HostError) -> String in try doComposeApply(target, imageReference: imageReference) },
                    fold: Self.fold, summary: { $0 })
    }

    // MARK: Digest folds (the same facts the trace text shows, without building it)

    static func fold(_ s: String, _ h: inout FNV1a64) {
        h.addWords(s)
    }

    static func fold(_ i: ImageInfo, _ h: inout FNV1a64) {
        fold(i.id, &h)
        for t in i.repoTags { fold(t, &h) }
        h.add(byte: 0x1E)
    }

    static func fold(_ i: ImageInfo?, _ h: inout FNV1a64) {
        if let i { fold(i, &h) } else { h.add(byte: 0x15) }
    }

    static func fold(_ c: ContainerInfo, _ h: inout FNV1a64) {
        fold(c.id, &h)
        fold(c.name, &h)
        fold(c.imageID, &h)
        fold(c.startedAt, &h)
        h.addWord(Int64(c.restartCount) << 32 | Int64(truncatingIfNeeded: c.exitCode) & 0xFFFF_FFFF)
        h.add(byte: UInt8(truncatingIfNeeded: c.status.rawValue.utf8.count))
        h.add(byte: c.status.rawValue.utf8.first ?? 0)
        h.add(byte: c.health.rawValue.utf8.first ?? 0)
        h.add(byte: 0x1E)
    }

    static func fold(_ c: ContainerInfo?, _ h: inout FNV1a64) {
        if let c { fold(c, &h) } else { h.add(byte: 0x15) }
    }

    static func fold(_ list: [ContainerInfo], _ h: inout FNV1a64) {
        for c in list { fold(c, &h) }
        h.add(byte: 0x1D)
    }

    // MARK: Renderings (trace)

    static func describe(_ i: ImageInfo) -> String {
        i.repoTags.isEmpty ? i.id + " <none>" : i.id + " " + i.repoTags.joined(separator: ",")
    }

    static func describe(_ c: ContainerInfo) -> String {
        c.name + " " + String(c.id.prefix(12)) + " " + c.status.rawValue + "/" + c.health.rawValue
            + " image=" + c.imageID + " rc=" + String(c.restartCount) + " exit=" + String(c.exitCode)
            + " started=" + c.startedAt
    }

    static func describe(_ labels: [String: String]) -> String {
        if labels.isEmpty { return "{}" }
        return "{" + labels.keys.sorted().map { $0 + "=" + (labels[$0] ?? "") }.joined(separator: ",") + "}"
    }
}

/// Memoised `SimReference.normalize` (nil entries: invalid references), bounded.
final class ReferenceCache {
    @exclusivity(unchecked) private var normalized: [String: String?] = [:]

    func normalize(_ reference: String) -> String? {
        if let cached = normalized[reference] { return cached }
        let n = SimReference.normalize(reference)
        if normalized.count > 4096 { normalized.removeAll(keepingCapacity: true) }
        normalized[reference] = .some(n)
        return n
    }
}
