import CaissonCore

/// One update of one service on a fresh simulated host: the unit of the apply/rollback matrix and
/// of the swarm. Provisions a service running its old image (with a service state recording that
/// release), loads a new image whose behaviour comes from its `io.caisson.sim.health` label, runs
/// the update machine with the given faults, crash points and outsiders, recovers like the next
/// `caisson` command would (as often as it takes), and judges the run: the invariants of DESIGN.md
/// and the exact expected outcome the scenario implies (`expectation()`, Oracle.swift).
public final class UpdateScenario {
    /// Someone else acting on the host during the update (see `SimIntervention`).
    public enum Outsider: String, Sendable, Equatable, Codable, CaseIterable {
        case none
        /// Docker: an unrelated container already holds the name Caisson stages the new one under.
        case holdsStagingName = "holds-staging-name"
        /// Docker: right after Caisson renames the old container away, someone else's container
        /// takes the service's name (a watchdog, `docker run --name app`).
        case takesServiceName = "takes-service-name"
        /// Docker: the backup container is force-removed by someone at the first health poll.
        case removesBackup = "removes-backup"
        /// Compose: a stray replica of the service on the old image appears at the first poll.
        case composeReplica = "compose-replica"

        public func applies(to mode: RuntimeMode) -> Bool {
            switch self {
            case .none: return true
            case .holdsStagingName, .takesServiceName, .removesBackup: return mode == .docker
            case .composeReplica: return mode == .compose
            }
        }
    }

    public struct Config: Sendable, Hashable, Codable, CustomStringConvertible {
        public var mode: RuntimeMode
        public var healthKind: HealthKind
        /// `io.caisson.sim.health` of the new image: healthy, unhealthy, crash[:s], never-ready, flap[:s]...
        public var newBehaviour: String
        /// Docker's restart policy of the service's containers (`no`, `on-failure[:N]`, `always`, `unless-stopped`).
        public var restartPolicy: String
        public var outsider: Outsider
        /// The service container's stop timeout (`--stop-timeout`; Compose `stop_grace_period`).
        public var stopTimeoutSecs: Int
        /// Seconds both images need after SIGTERM to flush their data (`io.caisson.sim.flush_secs`);
        /// 0: none. A stop with a shorter grace loses data, which the invariants forbid.
        public var flushSecs: Int

        public init(mode: RuntimeMode, healthKind: HealthKind, newBehaviour: String = "healthy",
                    restartPolicy: String = "unless-stopped", outsider: Outsider = .none,
                    stopTimeoutSecs: Int = 10, flushSecs: Int = 0) {
            self.mode = mode
            self.healthKind = healthKind
            self.newBehaviour = newBehaviour
            self.restartPolicy = restartPolicy
            self.outsider = outsider
            self.stopTimeoutSecs = stopTimeoutSecs
            self.flushSecs = flushSecs
        }

        public var description: String {
            var s = "\(mode.rawValue)/\(healthKind.rawValue)/\(newBehaviour)"
            if restartPolicy != "unless-stopped" { s += "/restart=\(restartPolicy)" }
            if flushSecs > 0 || stopTimeoutSecs != 10 { s += "/flush=\(flushSecs)s,stop-timeout=\(stopTimeoutSecs)s" }
            if outsider != .none { s += "/\(outsider.rawValue)" }
            return s
        }

        /// The labels every image of the scenario carries besides its health script.
        var extraImageLabels: [String: String] {
            flushSecs > 0 ? [SimStopMode.flushLabelKey: String(flushSecs)] : [:]
        }

        public var policy: SimRestartPolicy { SimRestartPolicy(parsing: restartPolicy) ?? .unlessStopped }
        public var behaviour: SimBehaviour { SimBehaviour.parse(newBehaviour) ?? .default }

        /// Would a correct updater keep the new release (absent faults)?
        public var newReleaseShouldPass: Bool {
            if case .pass = HealthReference.verdict(kind: healthKind, behaviour: behaviour, policy: UpdateScenario.healthPolicy(healthKind)).outcome {
                return true
            }
            return false
        }

        /// Must a correct updater refuse the new release, whatever happens?
        public var newReleaseMustFail: Bool {
            HealthReference.mustFail(kind: healthKind, behaviour: behaviour, policy: UpdateScenario.healthPolicy(healthKind))
        }
    }

    public static func healthPolicy(_ kind: HealthKind) -> HealthPolicy {
        HealthPolicy(kind: kind, timeoutSecs: 30, pollIntervalSecs: 1, stableSecs: 5)
    }

    /// One planned death of an updater process, at a journal write (counted over the whole run:
    /// the first process's writes, then each recovering process's).
    public struct CrashPoint: Sendable, Equatable, Codable {
        public var write: Int
        /// Instead of the write (true) or right after it became durable (false).
        public var before: Bool
        public init(write: Int, before: Bool) {
            self.write = write
            self.before = before
        }
    }

    /// What one updater process (the update, then each recovery) did.
    public struct ProcessRecord: Sendable, Equatable {
        /// Host call index of its first and one past its last call.
        public var firstCall: Int
        public var endCall: Int
        public var startMillis: Int64
        /// Died at a planned crash point.
        public var crashed: Bool
        /// Failed with an error that is not a planned crash (always a violation).
        public var error: String?
        /// At its end: was the update's attempt recorded, and was its status terminal?
        public var attemptRecorded: Bool
        public var attemptTerminal: Bool
    }

    public let config: Config
    public let host: SimulatedHost
    /// The attempts, entries, events and service states every process of the run wrote.
    public let journal = InMemoryJournal()
    /// `journal` as the processes use it: reads for recovery go through the store's encoding.
    public let durable: ScenarioJournal
    public let service: ServiceSpec
    public let oldImageID: String
    public let newImageID: String
    public let oldContainerID: String?
    /// The service's container(s) before the update (Docker: the old container; Compose: its member).
    public let originalContainers: [ContainerInfo]
    /// The container an outsider holds the staging name with (`holdsStagingName`).
    public let foreignContainerID: String?
    /// The service state before the update (the release it runs, the downgrade floor).
    public let previousState: ServiceState
    public static let newReference = "example/app:2.0.0"
    public static let outsiderReference = "example/other:1"
    public var newReference: String { Self.newReference }
    let ids: SeededIDGenerator
    public private(set) var attempt: UpdateAttempt?
    /// A planned crash killed at least one process.
    public private(set) var crashed = false
    public internal(set) var recoveryReport: Recovery.Report?
    public private(set) var processes: [ProcessRecord] = []
    /// Host call index where the update began (the world's own calls, e.g. the image load, come before).
    public private(set) var firstCall = 0
    /// Host call index of the update's preflight (the look for another state directory's marks).
    public private(set) var preflightCall = 0
    public private(set) var runFaults = FaultPlan.none
    public private(set) var faultsDuringRecovery = false
    /// The step limit of every updater process (`UpdateDriver.maxSteps`).
    public var maxSteps = 100_000
    /// The expectation the last `violations()` judged the run by.
    public internal(set) var lastExpectation: Expectation?
    /// Only planned crashes (crash points, a second signal) count as crashes here.
    public var crashedByPlan: Bool { crashed }
    /// The state directory's locks and the host's `/run` (host-wide service locks).
    public let stateLocks = SimLockSpace()
    public let hostLocks = SimLockSpace()
    /// The update was refused before it began (another Caisson's marks or lock).
    public private(set) var refusal: CaissonError?
    /// What a second Caisson process did, when one ran (`SecondProcessPlan`).
    public internal(set) var secondProcessReport: SecondProcessReport?
    var secondProcessSawInFlight = false
    /// The host calls the second process made.
    var secondProcessCalls: Range<Int>?
    /// Signals and storage faults (see `Disruptions.swift`).
    var disruption = DisruptionState()
    /// The attempt as the updater's own process returned it (without later recovery).
    public internal(set) var inProcessAttempt: UpdateAttempt?
    /// Issue 16: the new image still to load, as a thin archive (nil: loaded with the world).
    public let thinPayload: ImagePayload?
    /// The thin package's plan, once its import ran, and whether it loaded.
    public internal(set) var thinImport: ThinImportPlan?
    public internal(set) var thinLoaded = false

    /// The world just before the update: a host provisioned with the service on its old image,
    /// settled (healthy), with the new image loaded. It depends only on the config, so a swarm
    /// provisions each config once and every run starts from a copy (`SimState` is a value:
    /// copy-on-write).
    public struct World {
        public let config: Config
        public let state: SimState
        public let service: ServiceSpec
        public let oldImageID: String
        public let newImageID: String
        public let oldContainerID: String?
        public let originalContainers: [ContainerInfo]
        public let foreignContainerID: String?
        /// Thin (issue 16): the new image is not loaded yet; this is its thin archive, which relies
        /// on the base `ThinImportPlan.baseReference` the world holds.
        public let thinPayload: ImagePayload?
        let referenceCache: ReferenceCache

        public init(_ config: Config, thin: Bool = false) {
            self.config = config
            let clock = VirtualClock()
            let host = SimulatedHost(seed: 0, clock: clock, recordTrace: false)
            let health = UpdateScenario.healthPolicy(config.healthKind)
            oldImageID = SimulatedHost.fakeImageID("example/app:1.0.0")
            newImageID = SimulatedHost.fakeImageID("example/app:2.0.0/\(config.newBehaviour)")
            _ = try? host.addImage(id: oldImageID, tags: ["example/app:current"],
                          config: ImageConfig(labels: config.extraImageLabels.merging(["io.caisson.sim.health": "healthy"]) { $1 },
                                              hasHealthcheck: true))
            _ = try? host.addImage(id: SimulatedHost.fakeImageID(UpdateScenario.outsiderReference), tags: [UpdateScenario.outsiderReference],
                                   config: ImageConfig(labels: ["io.caisson.sim.health": "healthy"], hasHealthcheck: false))
            let policy = config.policy
            switch config.mode {
            case .docker:
                service = ServiceSpec(name: "app", serviceRevision: "app-v1", platform: "linux/amd64", runtimeMode: .docker,
                                      docker: DockerTarget(containerName: "app", imageReference: "example/app:current"),
                                      health: health)
                oldContainerID = try? host.runContainer(name: "app", imageReference: "example/app:current", restartPolicy: policy,
                                                        stopTimeoutSecs: config.stopTimeoutSecs)
            case .compose:
                let target = ComposeTarget(project: "stack", file: "/srv/stack/compose.yaml", service: "app")
                service = ServiceSpec(name: "app", serviceRevision: "app-v1", platform: "linux/amd64", runtimeMode: .compose,
                                      compose: target, health: health)
                _ = try? host.provisionCompose(target: target, imageReference: "example/app:current", restartPolicy: policy,
                                               stopTimeoutSecs: config.stopTimeoutSecs)
                oldContainerID = nil
            }
            if config.outsider == .holdsStagingName {
                let staging = UpdateMachine(plan: UpdateScenario.plan(service: service, newImageID: newImageID, previousState: nil),
                                            startedAt: "").stagingName
                foreignContainerID = try? host.runContainer(name: staging, imageReference: UpdateScenario.outsiderReference)
            } else {
                foreignContainerID = nil
            }
            // Let the old release settle (healthy) before the update.
            clock.sleep(millis: 10_000)
            // The image is loaded before the update machine runs (import is its own step).
            let newConfig = ImageConfig(labels: config.extraImageLabels.merging(["io.caisson.sim.health": config.newBehaviour]) { $1 },
                                        hasHealthcheck: true)
            if thin {
                // The base the device's inventory listed; the run loads the thin package itself.
                _ = try? host.addImage(id: ThinImportPlan.baseImageID, tags: [ThinImportPlan.baseReference],
                                       sizeBytes: 300 << 20, layers: [ThinImportPlan.baseLayer])
                thinPayload = ThinImportPlan.payload(newImageID: newImageID, behaviour: config.newBehaviour, config: newConfig)
            } else {
                let payload = ImagePayload(path: "/staged/app.edgepkg", offset: 1536, length: 4096, reference: UpdateScenario.newReference,
                                           expectedImageID: newImageID, config: newConfig)
                _ = try? host.loadImage(payload, progress: { _ in })
                thinPayload = nil
            }
            host.advanceAll()
            switch config.mode {
            case .docker: originalContainers = host.containers(named: "app")
            case .compose: originalContainers = (try? host.doComposeContainers(service.compose!)) ?? []
            }
            state = host.snapshot
            referenceCache = host.referenceCache
        }
    }

    public convenience init(_ config: Config, seed: UInt64 = 1, recordTrace: Bool = false) {
        self.init(World(config), seed: seed, recordTrace: recordTrace)
    }

    /// A run starting from a copy of `world`; `seed` seeds the ids of containers created from
    /// here on (faults have their own seed).
    public init(_ world: World, seed: UInt64 = 1, recordTrace: Bool = false) {
        config = world.config
        host = SimulatedHost(state: world.state, recordTrace: recordTrace)
        host.reseedIDs(seed)
        host.referenceCache = world.referenceCache
        service = world.service
        oldImageID = world.oldImageID
        newImageID = world.newImageID
        oldContainerID = world.oldContainerID
        originalContainers = world.originalContainers
        foreignContainerID = world.foreignContainerID
        thinPayload = world.thinPayload
        ids = SeededIDGenerator(seed: seed)
        durable = ScenarioJournal(base: journal, clock: host.clock)
        previousState = Self.previousState(oldImageID: world.oldImageID)
        journal.setServiceState(previousState)
    }

    /// The release the service runs before the update, as Caisson recorded it when it installed it.
    static func previousState(oldImageID: String) -> ServiceState {
        ServiceState(serviceName: "app", activeCandidateReleaseID: "cr-1", activeImageReference: "example/app:1.0.0",
                     activeImageID: oldImageID, previousKnownGoodCandidateReleaseID: "cr-0",
                     previousKnownGoodImageReference: "example/app:0.9.0",
                     previousKnownGoodImageID: SimulatedHost.fakeImageID("example/app:0.9.0"),
                     highestPackageVersion: "1.0.0", newestCreatedAt: "2026-01-10T09:00:00Z",
                     updatedAt: "2026-01-10T09:05:00Z")
    }

    static func plan(service: ServiceSpec, newImageID: String, previousState: ServiceState?) -> UpdateMachine.Plan {
        UpdateMachine.Plan(updateID: "0badc0de-0000-4000-8000-000000000001", candidateReleaseID: "cr-2", validationAttemptID: "va-2",
                           service: service, targetImageReference: newReference, targetImageID: newImageID,
                           packageVersion: "2.0.0", packageCreatedAt: "2026-03-16T18:30:00Z", previousState: previousState)
    }

    public var plan: UpdateMachine.Plan {
        Self.plan(service: service, newImageID: newImageID, previousState: previousState)
    }

    /// The outsider's actions, as host interventions.
    func interventions() -> [SimIntervention] {
        let m = UpdateMachine(plan: plan, startedAt: "")
        switch config.outsider {
        case .none, .holdsStagingName: return []
        case .takesServiceName:
            return [SimIntervention(.occupyName("app", imageReference: Self.outsiderReference), .after, operation: .renameContainer, nth: 0)]
        case .removesBackup:
            // Before the first health poll (inspections before it: the service, the created container).
            return [SimIntervention(.forceRemove(m.backupName), .before, operation: .inspectContainer, nth: 2)]
        case .composeReplica:
            return [SimIntervention(.composeReplica(service.compose!, imageReference: "example/app:current", number: 2), .after,
                                    operation: .composeContainers, nth: 1)]
        }
    }

    /// Run the update with `faults` armed; if the journal write number `crashAtWrite` "kills" the
    /// updater, run recovery afterwards (with faults disarmed: a new process, a calmer host —
    /// unless `faultsDuringRecovery`).
    ///
    /// Like `caisson package load`, the update first takes the state directory's lock and the
    /// service's host-wide lock, and refuses another state directory's unfinished marks. With
    /// `secondProcess`, another Caisson process runs a command in the middle (see
    /// `SecondProcessPlan`); the recovery after a crash is a new process going through
    /// `RecoveryGate`, as every command does.
    @discardableResult
    public func run(faults: FaultPlan = .none, crashAtWrite: Int? = nil, crashBeforeWrite: Bool = false,
                    faultsDuringRecovery: Bool = false, secondProcess: SecondProcessPlan? = nil,
                    signal: SignalPlan? = nil, storage: StorageFault? = nil, thin: ThinImportPlan? = nil) -> UpdateAttempt? {
        run(faults: faults, crashes: crashAtWrite.map { [CrashPoint(write: $0, before: crashBeforeWrite)] } ?? [],
            faultsDuringRecovery: faultsDuringRecovery, secondProcess: secondProcess, signal: signal, storage: storage, thin: thin)
    }

    /// Run the update with `faults` armed and the updater dying at each of `crashes` (in write
    /// order; a point may fall in a recovery). After every death the next command recovers
    /// (through `RecoveryGate`, under the locks, as every command does) — with the faults still
    /// armed when `faultsDuringRecovery`, else against a calm host — until no attempt is left in
    /// flight. Only a planned crash counts as a crash: any other error of an updater process (a
    /// machine looping to its step limit, a journal it cannot read) is recorded in `processes`
    /// and is a violation. `secondProcess`, `signal` and `storage` are the disruptions of
    /// `Disruptions.swift`; after a storage fault the next command (with room again) recovers.
    /// `thin`: the new release comes as a thin package, imported (preflight, load) before the update.
    @discardableResult
    public func run(faults: FaultPlan, crashes: [CrashPoint], faultsDuringRecovery: Bool = false,
                    secondProcess: SecondProcessPlan? = nil, signal: SignalPlan? = nil,
                    storage: StorageFault? = nil, thin: ThinImportPlan? = nil) -> UpdateAttempt? {
        host.faultPlan = faults
        host.interventions = interventions()
        runFaults = faults
        self.faultsDuringRecovery = faultsDuringRecovery
        preflightCall = host.callCount
        firstCall = host.callCount
        var pending = crashes.sorted { $0.write < $1.write }[...]
        func armNextCrash() {
            while let p = pending.first, p.write < journal.writeCount { pending.removeFirst() }
            journal.crashAtWrite = pending.first?.write
            journal.crashBeforeWrite = pending.first?.before ?? false
        }
        armNextCrash()
        armDisruptions(secondProcess: secondProcess, signal: signal, storage: storage)
        let me = holder(Self.firstPID, "package load")
        var died = process {
            do {
                let stateLock = try OperationLocks.acquireState(stateLocks, holder: me)
                let serviceLock = try OperationLocks.acquireService(hostLocks, service: service, holder: me)
                defer {
                    serviceLock.release()
                    stateLock.release()
                }
                preflightCall = host.callCount
                try ForeignMarks.refuse(service: service, host: host, journal: durable)
                // A thin package: its preflight and load come before the update (issue 16).
                if let thin { try importThin(thin) }
                firstCall = host.callCount
                var machine = UpdateMachine(plan: plan, startedAt: host.clock.timestamp())
                let driver = UpdateDriver(host: host, journal: durable, clock: host.clock)
                driver.maxSteps = maxSteps
                if signal != nil { armCancel(driver) }
                attempt = try driver.run(&machine)
                inProcessAttempt = attempt
            } catch let e as CaissonError where !journal.attempts.contains(where: { $0.updateID == plan.updateID }) {
                // Refused (marks, locks, no room for the journal) before anything of the attempt was durable.
                refusal = e
            }
        }
        journal.afterWrite = nil
        noteProcessExit()
        // The process is gone: the kernel drops its locks.
        stateLocks.releaseAll(pid: Self.firstPID)
        hostLocks.releaseAll(pid: Self.firstPID)
        if died || storage != nil, !faultsDuringRecovery { host.faultPlan = .none }
        if let sp = secondProcess, sp.afterCrash, died {
            armNextCrash()
            secondProcessSawInFlight = !((try? journal.inFlightAttempts()) ?? []).isEmpty
            secondProcessReport = runSecondProcess(sp.command)
        }
        if storage != nil {
            // The next command has room again.
            journal.failFromWrite = nil
            journal.reserveFails = false
        }
        // Each later command recovers first; a recovery may die too (at a later crash point).
        var rounds = 0
        var recover = died || processes.last?.error != nil || (storage != nil && refusal == nil)
        while recover, rounds <= crashes.count {
            rounds += 1
            armNextCrash()
            let next = holder(Self.recoveryPID + Int32(rounds - 1), "recover")
            died = process {
                recoveryReport = try RecoveryGate.run(stateLocks: stateLocks, serviceLocks: hostLocks, holder: next, journal: durable,
                                                      host: { host }, clock: { host.clock }, maxSteps: maxSteps).report
            }
            stateLocks.releaseAll(pid: next.pid)
            hostLocks.releaseAll(pid: next.pid)
            recover = died || processes.last?.error != nil
        }
        journal.crashAtWrite = nil
        attempt = journal.attempts.first { $0.updateID == plan.updateID }
        return attempt
    }

    /// Runs one updater process; returns whether it died at a planned crash point.
    private func process(_ body: () throws -> Void) -> Bool {
        let first = host.callCount
        let start = host.clock.nowMillis
        var died = false
        var failure: String? = nil
        do {
            try body()
        } catch is SimulatedCrash {
            died = true
            crashed = true
        } catch {
            failure = "\(error)"
        }
        let a = journal.attempts.first { $0.updateID == plan.updateID }
        processes.append(ProcessRecord(firstCall: first, endCall: host.callCount, startMillis: start, crashed: died,
                                       error: failure, attemptRecorded: a != nil, attemptTerminal: a?.status.isTerminal ?? false))
        return died
    }

    /// Every invariant of DESIGN.md "The simulator" and every mismatch with the scenario's
    /// expected outcome, as sentences; empty when all hold.
    public func violations() -> [String] {
        var out: [String] = []
        for p in processes {
            if let e = p.error { out.append("an updater process failed with an error that is not a planned crash: \(e)") }
        }
        out += durable.encodingProblems
        let attempts = journal.attempts
        for a in attempts where !a.status.isTerminal {
            out.append("attempt \(a.updateID) ended in non-terminal status \(a.status.rawValue)")
        }
        out += secondProcessViolations()
        out += signalViolations()
        out += storageViolations()
        out += thinViolations()
        let recorded = attempts.first(where: { $0.updateID == plan.updateID })
        if recorded == nil && !(crashed && attempts.isEmpty) && refusal == nil {
            out.append("no attempt record")
            return out
        }
        // Audit log and host agree.
        if let a = recorded {
            let kinds = journal.events.filter { $0.updateID == a.updateID }.map(\.kind)
            if a.status == .succeeded && !kinds.contains(.updateCommitted) { out.append("succeeded without update_committed event") }
            if a.status == .rolledBack && !kinds.contains(.rollbackSucceeded) { out.append("rolled_back without rollback_succeeded event") }
            if a.status != .succeeded && kinds.contains(.updateCommitted) { out.append("update_committed logged but status is \(a.status.rawValue)") }
            if kinds.contains(.rollbackStarted) && !(kinds.contains(.rollbackSucceeded) || kinds.contains(.rollbackFailed)) {
                out.append("rollback_started without an outcome event")
            }
        }
        // No container lost its data: every stop gave it the time it needs to flush.
        for kill in host.flushKills { out.append(kill.description) }
        out += oracleViolations()
        return out
    }
}

/// The swarm (TigerBeetle's VOPR, FoundationDB's BUGGIFY): many seeded runs, each picking a
/// random scenario (mode, health kind, image behaviour, restart policy, slow-flushing containers
/// with a long stop timeout, maybe an outsider), a
/// random subset of fault kinds (daemon crashes included), maybe faults during recovery, and up
/// to three crash points (a recovery may die too). Each run is judged by its exact expectation.
public struct Swarm {
    public struct Summary: Sendable, Codable, Equatable {
        public var runs: Int
        public var seed: UInt64
        public var violations: Int
        public var statuses: [String: Int]
        public var crashes: Int
        public var hostCalls: Int
        public var traceDigest: String
        public var firstViolation: Violation?
        public var runsPerSecond: Double?
        /// Runs whose recovery also died, runs with faults during recovery, runs with an outsider.
        public var recoveryCrashes = 0
        public var recoveryFaults = 0
        public var outsiders = 0
        /// Runs whose expected outcome was open (more than one status allowed).
        public var openOutcomes = 0
        /// Runs where a second Caisson process ran a command, a signal reached the updater, the
        /// state disk filled up (or the database was deleted).
        public var secondProcesses = 0
        public var signals = 0
        public var storageFaults = 0
        /// Runs whose new release came as a thin package (issue 16), and those refused because
        /// its base was gone (`package.base_missing`).
        public var thinPackages = 0
        public var basesMissing = 0

        enum CodingKeys: String, CodingKey {
            case runs, seed, violations, statuses, crashes
            case hostCalls = "host_calls"
            case traceDigest = "trace_digest"
            case firstViolation = "first_violation"
            case runsPerSecond = "runs_per_second"
            case recoveryCrashes = "recovery_crashes"
            case recoveryFaults = "recovery_faults"
            case outsiders
            case openOutcomes = "open_outcomes"
            case secondProcesses = "second_processes"
            case signals
            case storageFaults = "storage_faults"
            case thinPackages = "thin_packages"
            case basesMissing = "bases_missing"
        }
    }

    public struct Violation: Sendable, Codable, Equatable {
        public var run: Int
        public var seed: UInt64
        public var scenario: String
        public var problems: [String]
        public var trace: [String]
    }

    public static let behaviours = ["healthy", "unhealthy", "crash", "crash:2.5", "never-ready", "flap"]
    public static let restartPolicies = ["unless-stopped", "always", "no", "on-failure", "on-failure:2"]
    /// The swarm's fault menu: every kind, daemon crashes included.
    public static let faultMenu = FaultKind.extended

    /// The seed of run `i` of a swarm seeded with `seed`.
    public static func runSeed(_ seed: UInt64, _ i: Int) -> UInt64 {
        var r = SplitMix64(seed: seed &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15)
        return r.next()
    }

    /// The provisioned worlds of a swarm, one per scenario config, each built on first use.
    public struct Worlds {
        static let outsiders = UpdateScenario.Outsider.allCases
        /// Indexed by config (and thin or not), never iterated (no hash-order dependence).
        var worlds: [UpdateScenario.World?] = Array(repeating: nil, count: 2 * 2 * Swarm.behaviours.count
                                                    * Swarm.restartPolicies.count * Worlds.outsiders.count * 2 * 2)
        public init() {}

        mutating func world(_ config: UpdateScenario.Config, thin: Bool, index: Int) -> UpdateScenario.World {
            if let w = worlds[index] { return w }
            let w = UpdateScenario.World(config, thin: thin)
            worlds[index] = w
            return w
        }
    }

    /// One run, fully determined by `runSeed`.
    public static func runOne(runSeed: UInt64, recordTrace: Bool = false) -> (UpdateScenario, [String]) {
        var worlds = Worlds()
        return runOne(runSeed: runSeed, recordTrace: recordTrace, worlds: &worlds)
    }

    /// One run, fully determined by `runSeed` (`worlds` only saves provisioning work).
    public static func runOne(runSeed: UInt64, recordTrace: Bool = false, worlds: inout Worlds) -> (UpdateScenario, [String]) {
        var rng = SplitMix64(seed: runSeed)
        let docker = rng.chance(0.5)
        let running = rng.chance(0.5)
        let b = rng.below(behaviours.count)
        // Most runs keep Docker's usual policy; the others draw any.
        let p = rng.chance(0.5) ? 0 : rng.below(restartPolicies.count)
        let mode: RuntimeMode = docker ? .docker : .compose
        var o = 0
        if rng.chance(0.1) {
            let fitting = Worlds.outsiders.indices.filter { $0 != 0 && Worlds.outsiders[$0].applies(to: mode) }
            o = fitting[rng.below(fitting.count)]
        }
        // Slow-flushing containers: 15 s after SIGTERM, under a 30 s stop timeout.
        let flush = rng.chance(0.25)
        let config = UpdateScenario.Config(mode: mode, healthKind: running ? .running : .containerHealth,
                                           newBehaviour: behaviours[b], restartPolicy: restartPolicies[p],
                                           outsider: Worlds.outsiders[o],
                                           stopTimeoutSecs: flush ? 30 : 10, flushSecs: flush ? 15 : 0)
        // Drawn last, so that the draws above stay what they were for every seed.
        var tail = SplitMix64(seed: runSeed ^ 0x7468_696E_2D70_6B67)
        let thin = ThinImportPlan.draw(&tail)
        let index = ((((((docker ? 0 : 2) + (running ? 0 : 1)) * behaviours.count + b) * restartPolicies.count + p)
            * Worlds.outsiders.count + o) * 2 + (flush ? 1 : 0)) * 2 + (thin != nil ? 1 : 0)
        let world = worlds.world(config, thin: thin != nil, index: index)
        let scenario = UpdateScenario(world, seed: runSeed, recordTrace: recordTrace)
        scenario.journal.keepEntries = recordTrace
        scenario.host.recordCalls = recordTrace
        let faults = FaultPlan(swarm: SwarmFaults.randomized(seed: rng.next(), menu: faultMenu))
        var crashes: [UpdateScenario.CrashPoint] = []
        if rng.chance(0.3) {
            crashes.append(.init(write: rng.below(30), before: rng.chance(0.5)))
            // Sometimes the recovery dies too (a later write), once or twice.
            if rng.chance(0.2) { crashes.append(.init(write: crashes[0].write + 1 + rng.below(12), before: rng.chance(0.5))) }
            if crashes.count == 2, rng.chance(0.3) { crashes.append(.init(write: crashes[1].write + 1 + rng.below(8), before: rng.chance(0.5))) }
        }
        let recoveryFaults = !crashes.isEmpty && rng.chance(0.3)
        // The updater's real world (issue 10): another Caisson process, signals, a full state disk.
        let d = Disruptions.draw(&rng)
        scenario.run(faults: faults, crashes: crashes, faultsDuringRecovery: recoveryFaults,
                     secondProcess: d.secondProcess, signal: d.signal, storage: d.storage, thin: thin)
        return (scenario, scenario.violations())
    }

    public static func run(runs: Int, seed: UInt64) -> Summary {
        var summary = Summary(runs: runs, seed: seed, violations: 0, statuses: [:], crashes: 0, hostCalls: 0,
                              traceDigest: "", firstViolation: nil)
        var digest = FNV1a64()
        var worlds = Worlds()
        for i in 0..<runs {
            let s = runSeed(seed, i)
            let (scenario, problems) = runOne(runSeed: s, worlds: &worlds)
            let status = scenario.attempt?.status.rawValue ?? "none"
            summary.statuses[status, default: 0] += 1
            if scenario.crashed { summary.crashes += 1 }
            if scenario.processes.dropFirst().contains(where: \.crashed) { summary.recoveryCrashes += 1 }
            if scenario.crashed && scenario.faultsDuringRecovery { summary.recoveryFaults += 1 }
            if scenario.config.outsider != .none { summary.outsiders += 1 }
            if scenario.lastExpectation?.isOpen == true { summary.openOutcomes += 1 }
            if scenario.secondProcessReport != nil { summary.secondProcesses += 1 }
            if scenario.signalled { summary.signals += 1 }
            if scenario.storageFaulted { summary.storageFaults += 1 }
            if scenario.thinImport != nil { summary.thinPackages += 1 }
            if scenario.refusal?.code == "package.base_missing" { summary.basesMissing += 1 }
            summary.hostCalls += scenario.host.callCount
            digest.add(Int64(bitPattern: scenario.host.traceDigest))
            digest.add(status)
            if !problems.isEmpty {
                summary.violations += 1
                if summary.firstViolation == nil {
                    // Re-run with the trace text on, to show how to reproduce.
                    let (replay, _) = runOne(runSeed: s, recordTrace: true, worlds: &worlds)
                    summary.firstViolation = Violation(run: i, seed: s, scenario: scenario.config.description + (scenario.thinImport.map { "/\($0)" } ?? ""),
                                                       problems: problems, trace: replay.host.trace)
                }
            }
        }
        summary.traceDigest = String(digest.value, radix: 16)
        return summary
    }
}

extension String.UTF8View {
    /// Whether `needle` occurs as a contiguous run of bytes.
    func containsSequence(_ needle: String.UTF8View) -> Bool {
        guard !needle.isEmpty else { return true }
        var i = startIndex
        while i != endIndex {
            if self[i...].starts(with: needle) { return true }
            formIndex(after: &i)
        }
        return false
    }
}
