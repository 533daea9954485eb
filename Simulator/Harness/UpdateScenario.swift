import CaissonCore

/// One update of one service on a fresh simulated host: the unit of the apply/rollback matrix and
/// of the swarm. Provisions a service running its old image, loads a new image whose behaviour
/// comes from its `io.caisson.sim.health` label, runs the update machine with the given faults
/// and crash point, recovers like the next `caisson` command would, and checks the invariants.
public final class UpdateScenario {
    public struct Config: Sendable, Hashable, Codable, CustomStringConvertible {
        public var mode: RuntimeMode
        public var healthKind: HealthKind
        /// `io.caisson.sim.health` of the new image: healthy, unhealthy, crash, never-ready, flap.
        public var newBehaviour: String
        public var restartPolicy: String
        /// The service container's stop timeout (`--stop-timeout`; Compose `stop_grace_period`).
        public var stopTimeoutSecs: Int
        /// Seconds both images need after SIGTERM to flush their data (`io.caisson.sim.flush_secs`);
        /// 0: none. A stop with a shorter grace loses data, which the invariants forbid.
        public var flushSecs: Int

        public init(mode: RuntimeMode, healthKind: HealthKind, newBehaviour: String = "healthy",
                    restartPolicy: String = "unless-stopped", stopTimeoutSecs: Int = 10, flushSecs: Int = 0) {
            self.mode = mode
            self.healthKind = healthKind
            self.newBehaviour = newBehaviour
            self.restartPolicy = restartPolicy
            self.stopTimeoutSecs = stopTimeoutSecs
            self.flushSecs = flushSecs
        }

        public var description: String {
            var d = "\(mode.rawValue)/\(healthKind.rawValue)/\(newBehaviour)"
            if restartPolicy != "unless-stopped" { d += "/restart=\(restartPolicy)" }
            if flushSecs > 0 || stopTimeoutSecs != 10 { d += "/flush=\(flushSecs)s,stop-timeout=\(stopTimeoutSecs)s" }
            return d
        }

        /// The labels every image of the scenario carries besides its health script.
        var extraImageLabels: [String: String] {
            flushSecs > 0 ? [SimStopMode.flushLabelKey: String(flushSecs)] : [:]
        }

        /// Would a correct updater keep the new release (absent faults)?
        public var newReleaseShouldPass: Bool {
            switch healthKind {
            // `running` cannot see Docker health: only an exit or restart fails it.
            case .running: return newBehaviour != "crash"
            case .containerHealth: return newBehaviour == "healthy"
            }
        }

        /// Must a correct updater refuse the new release, whatever happens?
        public var newReleaseMustFail: Bool {
            switch healthKind {
            case .running: return newBehaviour == "crash"
            case .containerHealth: return newBehaviour != "healthy" && newBehaviour != "flap"
            }
        }
    }

    public let config: Config
    public let host: SimulatedHost
    public let journal = InMemoryJournal()
    public let service: ServiceSpec
    public let oldImageID: String
    public let newImageID: String
    public let oldContainerID: String?
    public static let newReference = "example/app:2.0.0"
    public var newReference: String { Self.newReference }
    let ids: SeededIDGenerator
    public private(set) var attempt: UpdateAttempt?
    public private(set) var crashed = false
    /// The crash was a planned one (`crashAtWrite`, a second signal), not an error.
    public private(set) var crashedByPlan = false
    public internal(set) var recoveryReport: Recovery.Report?
    /// The state directory's locks and the host's `/run` (host-wide service locks).
    public let stateLocks = SimLockSpace()
    public let hostLocks = SimLockSpace()
    /// The update was refused before it began (another Caisson's marks or lock).
    public private(set) var refusal: CaissonError?
    /// What a second Caisson process did, when one ran (`SecondProcessPlan`).
    public internal(set) var secondProcessReport: SecondProcessReport?
    var secondProcessSawInFlight = false
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
        /// Thin (issue 16): the new image is not loaded yet; this is its thin archive, which relies
        /// on the base `ThinImportPlan.baseReference` the world holds.
        public let thinPayload: ImagePayload?
        let referenceCache: ReferenceCache

        public init(_ config: Config, thin: Bool = false) {
            self.config = config
            let clock = VirtualClock()
            let host = SimulatedHost(seed: 0, clock: clock, recordTrace: false)
            let health = HealthPolicy(kind: config.healthKind, timeoutSecs: 30, pollIntervalSecs: 1, stableSecs: 5)
            oldImageID = SimulatedHost.fakeImageID("example/app:1.0.0")
            newImageID = SimulatedHost.fakeImageID("example/app:2.0.0/\(config.newBehaviour)")
            _ = try? host.addImage(id: oldImageID, tags: ["example/app:current"],
                          config: ImageConfig(labels: config.extraImageLabels.merging(["io.caisson.sim.health": "healthy"]) { $1 },
                                              hasHealthcheck: true))
            let policy = SimRestartPolicy(parsing: config.restartPolicy) ?? .unlessStopped
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
        thinPayload = world.thinPayload
        ids = SeededIDGenerator(seed: seed)
    }

    public var plan: UpdateMachine.Plan {
        UpdateMachine.Plan(updateID: "0badc0de-0000-4000-8000-000000000001", candidateReleaseID: "cr-2", validationAttemptID: "va-2",
                           service: service, targetImageReference: newReference, targetImageID: newImageID,
                           packageVersion: "2.0.0", packageCreatedAt: "2026-03-16T18:30:00Z")
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
        host.faultPlan = faults
        journal.crashAtWrite = crashAtWrite
        journal.crashBeforeWrite = crashBeforeWrite
        armDisruptions(secondProcess: secondProcess, signal: signal, storage: storage)
        let me = holder(Self.firstPID, "package load")
        do {
            let stateLock = try OperationLocks.acquireState(stateLocks, holder: me)
            let serviceLock = try OperationLocks.acquireService(hostLocks, service: service, holder: me)
            defer {
                serviceLock.release()
                stateLock.release()
            }
            try ForeignMarks.refuse(service: service, host: host, journal: journal)
            // A thin package: its preflight and load come before the update (issue 16).
            if let thin { try importThin(thin) }
            var machine = UpdateMachine(plan: plan, startedAt: host.clock.timestamp())
            let driver = UpdateDriver(host: host, journal: journal, clock: host.clock)
            if signal != nil { armCancel(driver) }
            attempt = try driver.run(&machine)
            inProcessAttempt = attempt
        } catch let e as CaissonError where !journal.attempts.contains(where: { $0.updateID == plan.updateID }) {
            // Refused (marks, locks, no room for the journal) before anything of the attempt was durable.
            refusal = e
        } catch is SimulatedCrash {
            crashed = true
            crashedByPlan = true
        } catch {
            crashed = true
        }
        journal.afterWrite = nil
        noteProcessExit()
        // The process is gone: the kernel drops its locks.
        stateLocks.releaseAll(pid: Self.firstPID)
        hostLocks.releaseAll(pid: Self.firstPID)
        if let sp = secondProcess, sp.afterCrash, crashed {
            secondProcessSawInFlight = !((try? journal.inFlightAttempts()) ?? []).isEmpty
            secondProcessReport = runSecondProcess(sp.command)
        }
        // A disk still full when the next process recovers: it must bring the service back anyway.
        recoverOnFullDisk(faultsDuringRecovery: faultsDuringRecovery)
        if storage != nil, !crashed {
            // The next command, once there is room again, recovers what the journal could not finish.
            recoverAfterStorageFault()
        }
        if crashed {
            journal.crashAtWrite = nil
            journal.failFromWrite = nil
            if !faultsDuringRecovery { host.faultPlan = .none }
            let next = holder(Self.recoveryPID, "recover")
            recoveryReport = (try? RecoveryGate.run(stateLocks: stateLocks, serviceLocks: hostLocks, holder: next, journal: journal,
                                                    host: { host }, clock: { host.clock }))?.report
            attempt = journal.attempts.first { $0.updateID == plan.updateID }
        }
        return attempt
    }

    /// Every invariant of DESIGN.md "The simulator", as sentences; empty when all hold.
    public func violations() -> [String] {
        var out: [String] = []
        let attempts = journal.attempts
        for a in attempts where !a.status.isTerminal {
            out.append("attempt \(a.updateID) ended in non-terminal status \(a.status.rawValue)")
        }
        out += secondProcessViolations()
        out += signalViolations()
        out += storageViolations()
        out += thinViolations()
        out += fullDiskRecoveryViolations()
        let recorded = attempts.first(where: { $0.updateID == plan.updateID })
        if recorded == nil && !(crashed && attempts.isEmpty) && refusal == nil {
            out.append("no attempt record")
            return out
        }
        guard let a = recorded else {
            out += hostViolations(for: nil)
            return out
        }
        out += hostViolations(for: a)
        // Audit log and host agree.
        let kinds = journal.events.filter { $0.updateID == a.updateID }.map(\.kind)
        if a.status == .succeeded && !kinds.contains(.updateCommitted) { out.append("succeeded without update_committed event") }
        if a.status == .rolledBack && !kinds.contains(.rollbackSucceeded) { out.append("rolled_back without rollback_succeeded event") }
        if a.status != .succeeded && kinds.contains(.updateCommitted) { out.append("update_committed logged but status is \(a.status.rawValue)") }
        if kinds.contains(.rollbackStarted) && !(kinds.contains(.rollbackSucceeded) || kinds.contains(.rollbackFailed)) {
            out.append("rollback_started without an outcome event")
        }
        // No container lost its data: every stop gave it the time it needs to flush.
        for kill in host.flushKills { out.append(kill.description) }
        // Nothing of ours left behind under the staging name on a clean outcome.
        if a.status != .rollbackFailed, config.mode == .docker {
            let leftovers = host.allContainers.filter { $0.name.utf8.containsSequence("-caisson-new-".utf8) }
            if !leftovers.isEmpty && !a.issues.contains(where: { $0.code == "rollback.remove_failed" }) {
                out.append("staging container left behind: \(leftovers.map(\.name))")
            }
        }
        return out
    }

    /// What the host must look like for attempt `a` (nil: none was recorded), as sentences.
    func hostViolations(for a: UpdateAttempt?) -> [String] {
        var out: [String] = []
        // Let the host settle a moment so "running" means running, not "about to crash".
        let running: [ContainerInfo]
        switch config.mode {
        case .docker:
            let named = host.containers(named: "app")
            if named.count != 1 {
                out.append("\(named.count) containers are named app (must be exactly 1)")
                return out
            }
            running = named
        case .compose:
            // Observe the host directly, like `containers(named:)`: the checker is not the
            // updater, so the armed fault plan must not make it see an empty service.
            host.advanceAll()
            do {
                running = try host.doComposeContainers(service.compose!)
            } catch {
                out.append("compose service app cannot be listed: \(error.message)")
                return out
            }
            if running.count != 1 {
                out.append("\(running.count) containers belong to compose service app (must be exactly 1)")
                return out
            }
        }
        var c = running[0]
        let onNew = c.imageID == newImageID
        let onOld = c.imageID == oldImageID
        // Stopped by a daemon restart after the verdict (the health check saw it up), under a
        // policy that keeps it down: Docker's doing, not the updater's; judge the rest.
        if !c.isRunning, host.simContainer(c.id)?.stoppedByDaemon == true { c.status = .running }
        guard let a else {
            // Died before its first durable write, or refused: nothing may have changed.
            if !onOld || !c.isRunning { out.append("the updater \(refusal == nil ? "died before journaling anything" : "refused (\(refusal!.code))"), yet the service changed") }
            return out
        }
        switch a.status {
        case .succeeded where a.issues.contains { $0.code == "update.left_stopped" }:
            // The service was found stopped (e.g. a daemon crash under restart=no took it down
            // before the update looked): the new release is installed, never started.
            if !onNew { out.append("status succeeded (left stopped) but the service runs \(c.imageID)") }
            if c.status != .created { out.append("the update said it left the service stopped, but it is \(c.status.rawValue)") }
        case .succeeded:
            if !onNew { out.append("status succeeded but the service runs \(c.imageID)") }
            if !c.isRunning { out.append("status succeeded but the service is \(c.status.rawValue)") }
            if config.newReleaseMustFail { out.append("a \(config.newBehaviour) image was committed under \(config.healthKind.rawValue)") }
        case .failed, .rolledBack:
            if !onOld { out.append("status \(a.status.rawValue) but the service runs \(c.imageID), not the previous image") }
            if !c.isRunning { out.append("status \(a.status.rawValue) but the previous release is \(c.status.rawValue)") }
            if config.mode == .docker, let old = oldContainerID, c.id != old {
                out.append("status \(a.status.rawValue) but the container under the name is not the original one")
            }
        case .rollbackFailed:
            // Correct only when the daemon kept stopping the restored release more often than
            // the restore may start it again (each restart of it needs a daemon restart here:
            // the previous image never exits by itself).
            let outRestarted = a.issues.last?.code == "rollback.health_check_failed"
                && host.daemonRestartCount > UpdateMachine.maxRestoreRestarts
            if !outRestarted {
                out.append("rollback_failed: \(a.issues.map(\.description).joined(separator: "; "))")
            }
        default:
            break
        }
        return out
    }
}

/// The swarm (TigerBeetle's VOPR, FoundationDB's BUGGIFY): many seeded runs, each picking a
/// random scenario, a random subset of fault kinds and maybe a crash point.
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
        /// Runs where a second Caisson process ran a command, a signal reached the updater, the
        /// state disk filled up (or the database was deleted).
        public var secondProcesses = 0
        public var signals = 0
        public var storageFaults = 0
        /// Runs whose new release came as a thin package (issue 16), and those refused because
        /// its base was gone (`package.base_missing`).
        public var thinPackages = 0
        public var basesMissing = 0
        /// Runs where the next process recovered while the state disk was still full.
        public var fullDiskRecoveries = 0

        enum CodingKeys: String, CodingKey {
            case runs, seed, violations, statuses, crashes
            case hostCalls = "host_calls"
            case traceDigest = "trace_digest"
            case firstViolation = "first_violation"
            case runsPerSecond = "runs_per_second"
            case secondProcesses = "second_processes"
            case signals
            case storageFaults = "storage_faults"
            case thinPackages = "thin_packages"
            case basesMissing = "bases_missing"
            case fullDiskRecoveries = "full_disk_recoveries"
        }
    }

    public struct Violation: Sendable, Codable, Equatable {
        public var run: Int
        public var seed: UInt64
        public var scenario: String
        public var problems: [String]
        public var trace: [String]
    }

    public static let behaviours = ["healthy", "unhealthy", "crash", "never-ready", "flap"]

    /// The seed of run `i` of a swarm seeded with `seed`.
    public static func runSeed(_ seed: UInt64, _ i: Int) -> UInt64 {
        var r = SplitMix64(seed: seed &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15)
        return r.next()
    }

    /// The provisioned worlds of a swarm, one per scenario config, each built on first use.
    public struct Worlds {
        /// Looked up by config, never iterated (no hash-order dependence).
        var worlds: [Key: UpdateScenario.World] = [:]
        public init() {}

        struct Key: Hashable {
            var config: UpdateScenario.Config
            var thin: Bool
        }

        mutating func world(_ config: UpdateScenario.Config, thin: Bool = false) -> UpdateScenario.World {
            let key = Key(config: config, thin: thin)
            if let w = worlds[key] { return w }
            let w = UpdateScenario.World(config, thin: thin)
            worlds[key] = w
            return w
        }
    }

    /// The service container's restart policies the swarm draws (`no` and a dockerd crash are
    /// what leave a container down after a daemon restart).
    public static let restartPolicies = ["unless-stopped", "no", "always"]

    /// One run, fully determined by `runSeed`.
    public static func runOne(runSeed: UInt64, recordTrace: Bool = false, disruptions: Bool = true) -> (UpdateScenario, [String]) {
        var worlds = Worlds()
        return runOne(runSeed: runSeed, recordTrace: recordTrace, worlds: &worlds, disruptions: disruptions)
    }

    /// One run, fully determined by `runSeed` (`worlds` only saves provisioning work). Without
    /// `disruptions`, the issue-10 disruptions (a second process, signals, a full state disk) are
    /// drawn but not applied: the same runs otherwise (a baseline for their cost).
    public static func runOne(runSeed: UInt64, recordTrace: Bool = false, worlds: inout Worlds,
                              disruptions: Bool = true) -> (UpdateScenario, [String]) {
        var rng = SplitMix64(seed: runSeed)
        let docker = rng.chance(0.5)
        let running = rng.chance(0.5)
        let b = rng.below(behaviours.count)
        let policy = restartPolicies[rng.below(restartPolicies.count)]
        // Slow-flushing containers: 15 s after SIGTERM, under a 30 s stop timeout.
        let flush = rng.chance(0.25)
        let config = UpdateScenario.Config(mode: docker ? .docker : .compose, healthKind: running ? .running : .containerHealth,
                                           newBehaviour: behaviours[b], restartPolicy: policy,
                                           stopTimeoutSecs: flush ? 30 : 10, flushSecs: flush ? 15 : 0)
        // Drawn last, so that the draws above stay what they were for every seed.
        var tail = SplitMix64(seed: runSeed ^ 0x7468_696E_2D70_6B67)
        let thin = ThinImportPlan.draw(&tail)
        let world = worlds.world(config, thin: thin != nil)
        let scenario = UpdateScenario(world, seed: runSeed, recordTrace: recordTrace)
        scenario.journal.keepEntries = recordTrace
        scenario.host.recordCalls = recordTrace
        // Daemon crashes too (with `unless-stopped`, what they stop stays down).
        let faults = FaultPlan(swarm: SwarmFaults.randomized(seed: rng.next(), menu: FaultKind.extended))
        let crashAt: Int? = rng.chance(0.3) ? rng.below(30) : nil
        let crashBefore = rng.chance(0.5)
        // The updater's real world (issue 10): another Caisson process, signals, a full state disk.
        let d = disruptions ? Disruptions.draw(&rng) : { _ = Disruptions.draw(&rng); return Disruptions() }()
        scenario.run(faults: faults, crashAtWrite: crashAt, crashBeforeWrite: crashBefore,
                     secondProcess: d.secondProcess, signal: d.signal, storage: d.storage, thin: thin)
        return (scenario, scenario.violations())
    }

    public static func run(runs: Int, seed: UInt64, disruptions: Bool = true) -> Summary {
        var summary = Summary(runs: runs, seed: seed, violations: 0, statuses: [:], crashes: 0, hostCalls: 0,
                              traceDigest: "", firstViolation: nil)
        var digest = FNV1a64()
        var worlds = Worlds()
        for i in 0..<runs {
            let s = runSeed(seed, i)
            let (scenario, problems) = runOne(runSeed: s, worlds: &worlds, disruptions: disruptions)
            let status = scenario.attempt?.status.rawValue ?? "none"
            summary.statuses[status, default: 0] += 1
            if scenario.crashed { summary.crashes += 1 }
            if scenario.secondProcessReport != nil { summary.secondProcesses += 1 }
            if scenario.signalled { summary.signals += 1 }
            if scenario.storageFaulted { summary.storageFaults += 1 }
            if scenario.thinImport != nil { summary.thinPackages += 1 }
            if scenario.refusal?.code == "package.base_missing" { summary.basesMissing += 1 }
            if scenario.fullDiskRecoveryOutcome != nil { summary.fullDiskRecoveries += 1 }
            summary.hostCalls += scenario.host.callCount
            digest.add(Int64(bitPattern: scenario.host.traceDigest))
            digest.add(status)
            if !problems.isEmpty {
                summary.violations += 1
                if summary.firstViolation == nil {
                    // Re-run with the trace text on, to show how to reproduce.
                    let (replay, _) = runOne(runSeed: s, recordTrace: true, worlds: &worlds, disruptions: disruptions)
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
