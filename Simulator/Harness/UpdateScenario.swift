import CaissonCore

/// One update of one service on a fresh simulated host: the unit of the apply/rollback matrix and
/// of the swarm. Provisions a service running its old image, loads a new image whose behaviour
/// comes from its `io.caisson.sim.health` label, runs the update machine with the given faults
/// and crash point, recovers like the next `caisson` command would, and checks the invariants.
public final class UpdateScenario {
    public struct Config: Sendable, Hashable, Codable, CustomStringConvertible {
        public var mode: RuntimeMode
        public var healthKind: HealthKind
        /// `io.caisson.sim.health` of the new image: healthy, unhealthy, crash, never-ready, flap, oom.
        public var newBehaviour: String
        public var restartPolicy: String
        /// The service container's stop timeout (`--stop-timeout`; Compose `stop_grace_period`).
        public var stopTimeoutSecs: Int
        /// Seconds both images need after SIGTERM to flush their data (`io.caisson.sim.flush_secs`);
        /// 0: none. A stop with a shorter grace loses data, which the invariants forbid.
        public var flushSecs: Int
        /// Probe kinds: what the new image answers its probe (`io.caisson.sim.http` for http and
        /// tcp: `200`, `503`, `hang`, `refused`; `io.caisson.sim.exec` for exec: `0`, `1`, `hang`).
        /// The old image always answers healthy (`200`, `0`).
        public var probe: String
        /// Compose mode: another catalog service's Docker-mode container (`frontend`) whose image
        /// carries this compose service's `com.docker.compose.*` labels (issue 10 item 9). The
        /// update must refuse before any change (`compose.foreign_member`) and leave it alone.
        public var hijacker: Bool = false
        /// A container `sidecar` shares the service's network namespace (Docker: `--network
        /// container:app`; Compose: `network_mode: service:app`), and the update is told to
        /// recreate it (`recreateNetworkDependents`). It must end running with its network.
        public var dependent: Bool = false
        /// Docker mode: the service itself runs in another container's network namespace
        /// (`--network container:netns`), so its clone must drop what Docker refuses there.
        public var joinsNetwork: Bool = false
        /// Compose: another Caisson's unfinished mark among the service's containers
        /// (`ForeignMark`, issue 10 item 2). The update must refuse before any change.
        public var foreignMark: ForeignMark? = nil

        public init(mode: RuntimeMode, healthKind: HealthKind, newBehaviour: String = "healthy",
                    restartPolicy: String = "unless-stopped", stopTimeoutSecs: Int = 10, flushSecs: Int = 0,
                    probe: String? = nil) {
            self.mode = mode
            self.healthKind = healthKind
            self.newBehaviour = newBehaviour
            self.restartPolicy = restartPolicy
            self.stopTimeoutSecs = stopTimeoutSecs
            self.flushSecs = flushSecs
            self.probe = probe ?? (healthKind == .exec ? "0" : "200")
        }

        public var description: String {
            var d = "\(mode.rawValue)/\(healthKind.rawValue)/\(newBehaviour)"
            if healthKind.isProbe { d += "/\(probe)" }
            if restartPolicy != "unless-stopped" { d += "/restart=\(restartPolicy)" }
            if flushSecs > 0 || stopTimeoutSecs != 10 { d += "/flush=\(flushSecs)s,stop-timeout=\(stopTimeoutSecs)s" }
            if hijacker { d += "/hijacker" }
            if dependent { d += "/dependent" }
            if joinsNetwork { d += "/joins-network" }
            if let foreignMark { d += "/foreign-\(foreignMark.rawValue)" }
            return d
        }

        /// The labels every image of the scenario carries besides its health script.
        var extraImageLabels: [String: String] {
            flushSecs > 0 ? [SimStopMode.flushLabelKey: String(flushSecs)] : [:]
        }

        /// The new image's process exits by itself (whatever health says).
        var newExits: Bool { ["crash", "oom", "exit"].contains(newBehaviour.split(separator: ":").first.map(String.init) ?? "") }

        /// Does the new image answer its probe healthily (probe kinds)?
        var probePasses: Bool {
            switch healthKind {
            case .http: return Int(probe).map { (200...399).contains($0) } ?? false
            case .tcp: return probe != "refused"
            case .exec: return probe == "0"
            case .running, .containerHealth: return true
            }
        }

        /// Would a correct updater keep the new release (absent faults)?
        public var newReleaseShouldPass: Bool {
            switch healthKind {
            // `running` cannot see Docker health: only an exit or restart fails it.
            case .running: return !newExits
            case .containerHealth: return newBehaviour == "healthy"
            // Probes see neither Docker health nor anything but their answer and the process.
            case .http, .tcp, .exec: return !newExits && probePasses
            }
        }

        /// Must a correct updater refuse the new release, whatever happens?
        public var newReleaseMustFail: Bool {
            switch healthKind {
            case .running: return newExits
            case .containerHealth: return newBehaviour != "healthy" && newBehaviour != "flap"
            case .http, .tcp, .exec: return newExits || !probePasses
            }
        }

        /// The labels of the new image (what the simulator scripts).
        public var newImageLabels: [String: String] {
            var labels = ["io.caisson.sim.health": newBehaviour, SimScript.httpLabel: "200", SimScript.execLabel: "0"]
            switch healthKind {
            case .http, .tcp: labels[SimScript.httpLabel] = probe
            case .exec: labels[SimScript.execLabel] = probe
            case .running, .containerHealth: break
            }
            return labels
        }

        /// The health policy the scenario's catalog gives the service.
        public var healthPolicy: HealthPolicy {
            var p = HealthPolicy(kind: healthKind, timeoutSecs: 30, pollIntervalSecs: 1, stableSecs: 5)
            switch healthKind {
            case .http: p.port = 8080; p.path = "/healthz"
            case .tcp: p.port = 8080
            case .exec: p.command = ["/bin/check", "--quick"]
            case .running, .containerHealth: break
            }
            return p
        }

        /// Every probe answer the simulator scripts for `kind`.
        public static func probeAnswers(_ kind: HealthKind) -> [String] {
            switch kind {
            case .http: return ["200", "503", "hang", "refused"]
            case .tcp: return ["200", "refused"]
            case .exec: return ["0", "1", "hang"]
            case .running, .containerHealth: return [""]
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
    /// `Config.dependent`'s container (Docker) or compose service (Compose), and its image.
    public static let dependentName = "sidecar"
    public static let sidecarImage = "example/sidecar:1"
    /// What the compose file of a Compose scenario names as the service's `image:`.
    public static let composeFileImage = "example/app:current"
    /// The Docker-mode catalog container of `Config.hijacker`.
    public static let hijackerName = "frontend"
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
    /// Issue 15: the new image still to load from an encrypted package (nil: loaded with the
    /// world, or thin); its config, the plan once its import ran, and whether it loaded.
    public let encryptedImageConfig: ImageConfig?
    public internal(set) var encryptedImport: EncryptedImportPlan?
    public internal(set) var encryptedLoaded = false

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
        /// Encrypted (issue 15): the new image is not loaded yet; it comes from the encrypted
        /// package on the stick (`EncryptedStick`), with this config.
        public let encryptedImageConfig: ImageConfig?
        let referenceCache: ReferenceCache

        public init(_ config: Config, thin: Bool = false, encrypted: Bool = false) {
            self.config = config
            let clock = VirtualClock()
            let host = SimulatedHost(seed: 0, clock: clock, recordTrace: false)
            let health = config.healthPolicy
            oldImageID = SimulatedHost.fakeImageID("example/app:1.0.0")
            newImageID = SimulatedHost.fakeImageID("example/app:2.0.0/\(config.newBehaviour)/\(config.probe)")
            _ = try? host.addImage(id: oldImageID, tags: ["example/app:current"],
                          config: ImageConfig(labels: config.extraImageLabels.merging(["io.caisson.sim.health": "healthy", SimScript.httpLabel: "200", SimScript.execLabel: "0"]) { $1 },
                                              hasHealthcheck: true))
            let policy = SimRestartPolicy(parsing: config.restartPolicy) ?? .unlessStopped
            switch config.mode {
            case .docker:
                service = ServiceSpec(name: "app", serviceRevision: "app-v1", platform: "linux/amd64", runtimeMode: .docker,
                                      docker: DockerTarget(containerName: "app", imageReference: "example/app:current"),
                                      health: health)
                if config.joinsNetwork {
                    _ = try? host.addImage(id: SimulatedHost.fakeImageID(UpdateScenario.sidecarImage), tags: [UpdateScenario.sidecarImage],
                                           config: ImageConfig(labels: ["io.caisson.sim.health": "healthy"], hasHealthcheck: true))
                    _ = try? host.runContainer(name: "netns", imageReference: UpdateScenario.sidecarImage, restartPolicy: .always)
                }
                oldContainerID = try? host.runContainer(name: "app", imageReference: "example/app:current", restartPolicy: policy,
                                                        stopTimeoutSecs: config.stopTimeoutSecs,
                                                        networkMode: config.joinsNetwork ? "container:netns" : nil)
                if config.dependent {
                    _ = try? host.addImage(id: SimulatedHost.fakeImageID(UpdateScenario.sidecarImage), tags: [UpdateScenario.sidecarImage],
                                           config: ImageConfig(labels: config.extraImageLabels.merging(["io.caisson.sim.health": "healthy"]) { $1 }, hasHealthcheck: true))
                    _ = try? host.runContainer(name: UpdateScenario.dependentName, imageReference: UpdateScenario.sidecarImage,
                                               restartPolicy: policy, stopTimeoutSecs: config.stopTimeoutSecs, networkMode: "container:app")
                }
            case .compose:
                let target = ComposeTarget(project: "stack", file: "/srv/stack/compose.yaml", service: "app")
                service = ServiceSpec(name: "app", serviceRevision: "app-v1", platform: "linux/amd64", runtimeMode: .compose,
                                      compose: target, health: health)
                _ = try? host.provisionCompose(target: target, imageReference: "example/app:current", restartPolicy: policy,
                                               stopTimeoutSecs: config.stopTimeoutSecs)
                oldContainerID = nil
                if config.dependent {
                    _ = try? host.addImage(id: SimulatedHost.fakeImageID(UpdateScenario.sidecarImage), tags: [UpdateScenario.sidecarImage],
                                           config: ImageConfig(labels: config.extraImageLabels.merging(["io.caisson.sim.health": "healthy"]) { $1 }, hasHealthcheck: true))
                    _ = try? host.provisionCompose(target: ComposeTarget(project: target.project, file: target.file, service: UpdateScenario.dependentName),
                                                   imageReference: UpdateScenario.sidecarImage, restartPolicy: policy,
                                                   stopTimeoutSecs: config.stopTimeoutSecs, networkMode: "service:app")
                }
                if config.hijacker {
                    let front = SimulatedHost.fakeImageID("example/front:1")
                    _ = try? host.addImage(id: front, tags: ["example/front:1"], config: ImageConfig(labels: [
                        "io.caisson.sim.health": "healthy", SimulatedHost.composeProjectLabel: target.project,
                        SimulatedHost.composeServiceLabel: target.service], hasHealthcheck: true))
                    _ = try? host.runContainer(name: UpdateScenario.hijackerName, imageReference: "example/front:1", restartPolicy: .unlessStopped)
                }
                if let mark = config.foreignMark {
                    UpdateScenario.provisionForeignMark(mark, host: host, target: target)
                }
            }
            // Let the old release settle (healthy) before the update.
            clock.sleep(millis: 10_000)
            // The image is loaded before the update machine runs (import is its own step).
            let newConfig = ImageConfig(labels: config.extraImageLabels.merging(config.newImageLabels) { $1 },
                                        hasHealthcheck: true)
            if thin {
                // The base the device's inventory listed; the run loads the thin package itself.
                _ = try? host.addImage(id: ThinImportPlan.baseImageID, tags: [ThinImportPlan.baseReference],
                                       sizeBytes: 300 << 20, layers: [ThinImportPlan.baseLayer])
                thinPayload = ThinImportPlan.payload(newImageID: newImageID, behaviour: config.newBehaviour, config: newConfig)
                encryptedImageConfig = nil
            } else if encrypted {
                // The run decrypts and loads the new image itself.
                thinPayload = nil
                encryptedImageConfig = newConfig
            } else {
                let payload = ImagePayload(path: "/staged/app.edgepkg", offset: 1536, length: 4096, reference: UpdateScenario.newReference,
                                           expectedImageID: newImageID, config: newConfig)
                _ = try? host.loadImage(payload, progress: { _ in })
                thinPayload = nil
                encryptedImageConfig = nil
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
        encryptedImageConfig = world.encryptedImageConfig
        ids = SeededIDGenerator(seed: seed)
        mutatingCallsAtStart = host.mutatingCallCount
    }

    /// The host's count of changing calls when the run began (provisioning's are not the run's).
    public let mutatingCallsAtStart: Int

    public var plan: UpdateMachine.Plan {
        var p = UpdateMachine.Plan(updateID: "0badc0de-0000-4000-8000-000000000001", candidateReleaseID: "cr-2", validationAttemptID: "va-2",
                           service: service, targetImageReference: newReference, targetImageID: newImageID,
                           packageVersion: "2.0.0", packageCreatedAt: "2026-03-16T18:30:00Z")
        if config.hijacker { p.foreignContainerNames = [Self.hijackerName] }
        if config.mode == .compose { p.composeImageReference = Self.composeFileImage }
        if config.dependent {
            p.recreateNetworkDependents = true
            if config.mode == .compose { p.composeNetworkDependents = [Self.dependentName] }
        }
        return p
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
                    signal: SignalPlan? = nil, storage: StorageFault? = nil, thin: ThinImportPlan? = nil,
                    encrypted: EncryptedImportPlan? = nil) -> UpdateAttempt? {
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
            // An encrypted package: validated (decrypted to its end) and loaded first (issue 15).
            if let encrypted { try importEncrypted(encrypted) }
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
        out += foreignMarkViolations()
        out += encryptedViolations()
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
                // Another catalog service's container is never a member, whatever its labels.
                // (Nor another Caisson's unfinished mark, `Config.foreignMark`: judged on its own.)
                running = try host.doComposeContainers(service.compose!).filter {
                    (!config.hijacker || $0.name != Self.hijackerName) && config.foreignMark.map(Self.foreignMarkName) != $0.name
                }
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
            // (With a dependent: its start found the restored release stopped again.)
            let last = a.issues.last
            let outRestarted = (last?.code == "rollback.health_check_failed"
                                || last?.code == "rollback.start_failed" && last?.message.contains("cannot join network of a non running container") == true)
                && host.daemonRestartCount > UpdateMachine.maxRestoreRestarts
            if !outRestarted {
                out.append("rollback_failed: \(a.issues.map(\.description).joined(separator: "; "))")
            }
        default:
            break
        }
        if config.mode == .compose, a.status != .rollbackFailed, let target = service.compose {
            // The outcome lasts: the containers name no temporary file, and the operator's next
            // routine `docker compose up -d` keeps the release that runs (issue 10 item 10).
            if let files = host.simContainer(c.id)?.labels[SimulatedHost.composeConfigFilesLabel], files != target.file {
                out.append("the service's container names compose files \(files), not only \(target.file)")
            }
            let later = SimulatedHost(state: host.snapshot, recordTrace: false)
            do {
                try later.operatorComposeUp(target)
                let after = try later.doComposeContainers(target).filter { !config.hijacker || $0.name != Self.hijackerName }
                if after.map(\.imageID) != [c.imageID] {
                    out.append("a later docker compose up -d puts \(after.map(\.imageID)) in place of \(c.imageID) (status \(a.status.rawValue))")
                }
            } catch {
                out.append("a later docker compose up -d fails: \(error.message)")
            }
        }
        if config.hijacker {
            // Refused before any change, and the other service's container left alone.
            // (A fault at the first listing fails it earlier, with another code: also no change.)
            if a.status != .failed || host.callCount(of: .composeApply) > 0 {
                out.append("a compose service with a foreign member was not refused: \(a.status.rawValue) \(a.issues.map(\.code))")
            }
            let front = host.simContainer(Self.hijackerName)
            if front == nil { out.append("the other service's container \(Self.hijackerName) was removed") }
            if let f = front, f.imageID != SimulatedHost.fakeImageID("example/front:1") {
                out.append("the other service's container \(Self.hijackerName) was recreated on \(f.imageID)")
            }
            if let f = front, f.status != .running, f.stoppedByDaemon != true {
                out.append("the other service's container \(Self.hijackerName) is \(f.status.rawValue)")
            }
        }
        for issue in a.issues where issue.message.contains("conflicting options") {
            out.append("the updater asked Docker for what it refuses: \(issue)")
        }
        if a.status != .rollbackFailed {
            // Nobody sharing a network namespace was cut off (issue 10 item 7).
            for lost in host.containersWithoutNetwork {
                out.append("container \(lost.name) runs without its network: the container whose namespace it joined is gone or restarted")
            }
            if config.dependent {
                let name = config.mode == .docker ? Self.dependentName : "stack-\(Self.dependentName)-1"
                let side = host.simContainer(name)
                if side == nil { out.append("the container sharing the service's network (\(name)) is gone") }
                // (A daemon restart may have left it down, as the service: it then stays down.)
                if let s = side, s.status != .running, s.stoppedByDaemon != true, host.daemonRestartCount == 0 {
                    out.append("the container sharing the service's network (\(name)) is \(s.status.rawValue)")
                }
                let strays = host.allContainers.filter { $0.name.hasPrefix(Self.dependentName + "-caisson-") }
                if !strays.isEmpty, !a.issues.contains(where: { $0.code == "docker.cleanup_failed" || $0.code == "rollback.remove_failed" }) {
                    out.append("left behind: \(strays.map(\.name))")
                }
            }
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
        /// Compose runs with another Caisson's unfinished mark among the service's containers.
        public var foreignMarks = 0
        /// Runs whose new release came encrypted (issue 15), and those refused because the age
        /// file was damaged, cut short, for another device, or changed after validation.
        public var encryptedPackages = 0
        public var encryptedRefused = 0

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
            case foreignMarks = "foreign_marks"
            case encryptedPackages = "encrypted_packages"
            case encryptedRefused = "encrypted_refused"
        }
    }

    public struct Violation: Sendable, Codable, Equatable {
        public var run: Int
        public var seed: UInt64
        public var scenario: String
        public var problems: [String]
        public var trace: [String]
    }

    public static let behaviours = ["healthy", "unhealthy", "crash", "never-ready", "flap", "oom"]

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
            var encrypted = false
        }

        mutating func world(_ config: UpdateScenario.Config, thin: Bool = false, encrypted: Bool = false) -> UpdateScenario.World {
            let key = Key(config: config, thin: thin, encrypted: encrypted)
            if let w = worlds[key] { return w }
            let w = UpdateScenario.World(config, thin: thin, encrypted: encrypted)
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
        let kind = HealthKind.allCases[rng.below(HealthKind.allCases.count)]
        let b = rng.below(behaviours.count)
        let policy = restartPolicies[rng.below(restartPolicies.count)]
        // Slow-flushing containers: 15 s after SIGTERM, under a 30 s stop timeout.
        let flush = rng.chance(0.25)
        let answers = UpdateScenario.Config.probeAnswers(kind)
        let probe = answers[rng.below(answers.count)]
        var config = UpdateScenario.Config(mode: docker ? .docker : .compose, healthKind: kind,
                                           newBehaviour: behaviours[b], restartPolicy: policy,
                                           stopTimeoutSecs: flush ? 30 : 10, flushSecs: flush ? 15 : 0,
                                           probe: kind.isProbe ? probe : nil)
        // Compose: sometimes another catalog service's container carries its labels.
        config.hijacker = !docker && rng.chance(0.1)
        // A container sharing the service's network namespace (recreated with it), and Docker
        // mode: the service itself in another container's namespace (issue 10 item 7).
        config.dependent = !config.hijacker && rng.chance(0.1)
        config.joinsNetwork = docker && rng.chance(0.1)
        // Compose: another Caisson's unfinished mark among the service's containers (issue 10
        // item 2), from a generator of its own so that every other draw stays what it was.
        var marks = SplitMix64(seed: runSeed ^ 0x666F_7265_6967_6E6D)
        if !docker, !config.hijacker, marks.chance(0.06) {
            config.foreignMark = ForeignMark.allCases[marks.below(ForeignMark.allCases.count)]
        }
        // Drawn last, so that the draws above stay what they were for every seed.
        var tail = SplitMix64(seed: runSeed ^ 0x7468_696E_2D70_6B67)
        let thin = ThinImportPlan.draw(&tail)
        // An encrypted package (issue 15) when it is not thin, from its own stream.
        var encryptedDraw = SplitMix64(seed: runSeed ^ 0x656E_6372_7970_7465)
        let encrypted = thin == nil ? EncryptedImportPlan.draw(&encryptedDraw) : nil
        let world = worlds.world(config, thin: thin != nil, encrypted: encrypted != nil)
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
                     secondProcess: d.secondProcess, signal: d.signal, storage: d.storage, thin: thin, encrypted: encrypted)
        return (scenario, scenario.violations())
    }

    /// One run in 20 is a hostile-reference run instead of an update scenario.
    public static func isHostileReferenceRun(_ runSeed: UInt64) -> Bool {
        var r = SplitMix64(seed: runSeed ^ 0x4057_113E_5EED_0001)
        return r.chance(0.05)
    }

    /// A package for `backend` with a reference drawn from `HostileReferenceScenario.menu`, the
    /// preflight and update run with random faults armed.
    public static func runHostileReference(runSeed: UInt64) -> (HostileReferenceScenario, [String]) {
        var rng = SplitMix64(seed: runSeed ^ 0x4057_113E_5EED_0002)
        let menuIndex = rng.below(HostileReferenceScenario.menu.count)
        let h = HostileReferenceScenario(menuIndex: menuIndex, labelIndex: rng.below(HostileReferenceScenario.labelMenu.count), seed: runSeed)
        h.run(faults: FaultPlan(swarm: SwarmFaults.randomized(seed: rng.next(), menu: FaultKind.extended)))
        return (h, h.violations())
    }

    public static func run(runs: Int, seed: UInt64, disruptions: Bool = true) -> Summary {
        var summary = Summary(runs: runs, seed: seed, violations: 0, statuses: [:], crashes: 0, hostCalls: 0,
                              traceDigest: "", firstViolation: nil)
        var digest = FNV1a64()
        var worlds = Worlds()
        for i in 0..<runs {
            let s = runSeed(seed, i)
            if isHostileReferenceRun(s) {
                // A package whose reference may be hostile (issue 10 item 8).
                let (h, problems) = runHostileReference(runSeed: s)
                let status = h.preflightError != nil ? "preflight_error" : !h.refusal.isEmpty ? "refused" : h.attempt?.status.rawValue ?? "none"
                summary.statuses[status, default: 0] += 1
                summary.hostCalls += h.host.callCount
                digest.add(Int64(bitPattern: h.host.traceDigest))
                digest.add(status)
                if !problems.isEmpty {
                    summary.violations += 1
                    if summary.firstViolation == nil {
                        summary.firstViolation = Violation(run: i, seed: s, scenario: "hostile reference \(h.reference)", problems: problems, trace: [])
                    }
                }
                continue
            }
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
            if scenario.config.foreignMark != nil { summary.foreignMarks += 1 }
            if let e = scenario.encryptedImport {
                summary.encryptedPackages += 1
                if e.expectedRefusal != nil, scenario.refusal?.code == e.expectedRefusal { summary.encryptedRefused += 1 }
            }
            summary.hostCalls += scenario.host.callCount
            digest.add(Int64(bitPattern: scenario.host.traceDigest))
            digest.add(status)
            if !problems.isEmpty {
                summary.violations += 1
                if summary.firstViolation == nil {
                    // Re-run with the trace text on, to show how to reproduce.
                    let (replay, _) = runOne(runSeed: s, recordTrace: true, worlds: &worlds, disruptions: disruptions)
                    summary.firstViolation = Violation(run: i, seed: s, scenario: scenario.config.description + (scenario.thinImport.map { "/\($0)" } ?? "")
                                                           + (scenario.encryptedImport.map { "/\($0)" } ?? ""),
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
