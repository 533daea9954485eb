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
        /// Someone points the package's reference at another image after validation, before the
        /// update inspects it (`docker tag example/other:1 example/app:2.0.0`): the update must
        /// refuse before any change (`docker.inspect_failed`). Drawn from its own stream.
        case retagsTarget = "retags-target"

        public func applies(to mode: RuntimeMode) -> Bool {
            switch self {
            case .none: return true
            case .holdsStagingName, .takesServiceName, .removesBackup: return mode == .docker
            case .composeReplica: return mode == .compose
            case .retagsTarget: return true
            }
        }
    }

    public struct Config: Sendable, Hashable, Codable, CustomStringConvertible {
        public var mode: RuntimeMode
        public var healthKind: HealthKind
        /// `io.caisson.sim.health` of the new image: healthy, unhealthy, crash[:s], never-ready, flap[:s], oom[:s]...
        public var newBehaviour: String
        /// Docker's restart policy of the service's containers (`no`, `on-failure[:N]`, `always`, `unless-stopped`).
        public var restartPolicy: String
        public var outsider: Outsider
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
        /// With `dependent`: the update is told to recreate it (`--recreate-dependents`); without
        /// that go-ahead it must refuse before any change (`update.network_dependents`).
        public var dependentGoAhead: Bool = true
        /// Docker mode: the service itself runs in another container's network namespace
        /// (`--network container:netns`), so its clone must drop what Docker refuses there.
        public var joinsNetwork: Bool = false
        /// Compose: another Caisson's unfinished mark among the service's containers
        /// (`ForeignMark`, issue 10 item 2). The update must refuse before any change.
        public var foreignMark: ForeignMark? = nil

        public init(mode: RuntimeMode, healthKind: HealthKind, newBehaviour: String = "healthy",
                    restartPolicy: String = "unless-stopped", outsider: Outsider = .none,
                    stopTimeoutSecs: Int = 10, flushSecs: Int = 0, probe: String? = nil) {
            self.mode = mode
            self.healthKind = healthKind
            self.newBehaviour = newBehaviour
            self.restartPolicy = restartPolicy
            self.outsider = outsider
            self.stopTimeoutSecs = stopTimeoutSecs
            self.flushSecs = flushSecs
            self.probe = probe ?? (healthKind == .exec ? "0" : "200")
        }

        public var description: String {
            var s = "\(mode.rawValue)/\(healthKind.rawValue)/\(newBehaviour)"
            if healthKind.isProbe { s += "/\(probe)" }
            if restartPolicy != "unless-stopped" { s += "/restart=\(restartPolicy)" }
            if flushSecs > 0 || stopTimeoutSecs != 10 { s += "/flush=\(flushSecs)s,stop-timeout=\(stopTimeoutSecs)s" }
            if outsider != .none { s += "/\(outsider.rawValue)" }
            if hijacker { s += "/hijacker" }
            if dependent { s += dependentGoAhead ? "/dependent" : "/dependent-refused" }
            if joinsNetwork { s += "/joins-network" }
            if let foreignMark { s += "/foreign-\(foreignMark.rawValue)" }
            return s
        }

        /// The labels every image of the scenario carries besides its health script.
        var extraImageLabels: [String: String] {
            flushSecs > 0 ? [SimStopMode.flushLabelKey: String(flushSecs)] : [:]
        }

        public var policy: SimRestartPolicy { SimRestartPolicy(parsing: restartPolicy) ?? .unlessStopped }
        public var behaviour: SimBehaviour { SimBehaviour.parse(newBehaviour) ?? .default }

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
            if case .pass? = HealthReference.verdictIfKnown(kind: healthKind, behaviour: behaviour, policy: healthPolicy, probe: probe)?.outcome {
                return true
            }
            return false
        }

        /// Must a correct updater refuse the new release, whatever happens?
        public var newReleaseMustFail: Bool {
            HealthReference.mustFail(kind: healthKind, behaviour: behaviour, policy: healthPolicy, probe: probe)
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
    /// Another tag of the previous image (what the service state recorded it as).
    public static let previousReference = "example/app:1.0.0"
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
        public let originalContainers: [ContainerInfo]
        public let foreignContainerID: String?
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
            _ = try? host.addImage(id: oldImageID, tags: ["example/app:current", UpdateScenario.previousReference],
                          config: ImageConfig(labels: config.extraImageLabels.merging(["io.caisson.sim.health": "healthy", SimScript.httpLabel: "200", SimScript.execLabel: "0"]) { $1 },
                                              hasHealthcheck: true))
            _ = try? host.addImage(id: SimulatedHost.fakeImageID(UpdateScenario.outsiderReference), tags: [UpdateScenario.outsiderReference],
                                   config: ImageConfig(labels: ["io.caisson.sim.health": "healthy"], hasHealthcheck: false))
            let policy = config.policy
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
            if config.outsider == .holdsStagingName {
                let staging = UpdateMachine(plan: UpdateScenario.plan(config: config, service: service, newImageID: newImageID, previousState: nil),
                                            startedAt: "").stagingName
                foreignContainerID = try? host.runContainer(name: staging, imageReference: UpdateScenario.outsiderReference)
            } else {
                foreignContainerID = nil
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
            switch config.mode {
            case .docker: originalContainers = host.containers(named: "app")
            case .compose: originalContainers = ((try? host.doComposeContainers(service.compose!)) ?? []).filter { !config.hijacker || $0.name != UpdateScenario.hijackerName }
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
        encryptedImageConfig = world.encryptedImageConfig
        ids = SeededIDGenerator(seed: seed)
        durable = ScenarioJournal(base: journal, clock: host.clock)
        previousState = Self.previousState(oldImageID: world.oldImageID)
        journal.setServiceState(previousState)
        mutatingCallsAtStart = host.mutatingCallCount
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

    static func plan(config: Config, service: ServiceSpec, newImageID: String, previousState: ServiceState?) -> UpdateMachine.Plan {
        var p = UpdateMachine.Plan(updateID: "0badc0de-0000-4000-8000-000000000001", candidateReleaseID: "cr-2", validationAttemptID: "va-2",
                           service: service, targetImageReference: newReference, targetImageID: newImageID,
                           packageVersion: "2.0.0", packageCreatedAt: "2026-03-16T18:30:00Z", previousState: previousState)
        if config.hijacker { p.foreignContainerNames = [hijackerName] }
        if config.mode == .compose { p.composeImageReference = composeFileImage }
        if config.dependent {
            p.recreateNetworkDependents = config.dependentGoAhead ? true : nil
            if config.mode == .compose { p.composeNetworkDependents = [dependentName] }
        }
        return p
    }

    /// The host's count of changing calls when the run began (provisioning's are not the run's).
    public let mutatingCallsAtStart: Int

    public var plan: UpdateMachine.Plan {
        Self.plan(config: config, service: service, newImageID: newImageID, previousState: previousState)
    }

    /// The outsider's actions, as host interventions.
    func interventions() -> [SimIntervention] {
        let m = UpdateMachine(plan: plan, startedAt: "")
        switch config.outsider {
        // (`.retagsTarget`: armed when the update begins, see `run`.)
        case .none, .holdsStagingName, .retagsTarget: return []
        case .takesServiceName:
            return [SimIntervention(.occupyName("app", imageReference: Self.outsiderReference), .after, operation: .renameContainer, nth: 0)]
        case .removesBackup:
            // Before the first health poll (inspections before it: the service, the created container).
            return [SimIntervention(.forceRemove(m.backupName), .before, operation: .inspectContainer, nth: 2)]
        case .composeReplica:
            // (By a tag of the previous image that the update's retag of the file's reference does not move.)
            // After the update's first look at the service's containers: the look for another
            // Caisson's marks before the update (`ForeignMarks`) is the 0th, the update's own the 1st.
            return [SimIntervention(.composeReplica(service.compose!, imageReference: Self.previousReference, number: 2), .after,
                                    operation: .composeContainers, nth: 2)]
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
                    signal: SignalPlan? = nil, storage: StorageFault? = nil, thin: ThinImportPlan? = nil,
                    encrypted: EncryptedImportPlan? = nil) -> UpdateAttempt? {
        run(faults: faults, crashes: crashAtWrite.map { [CrashPoint(write: $0, before: crashBeforeWrite)] } ?? [],
            faultsDuringRecovery: faultsDuringRecovery, secondProcess: secondProcess, signal: signal, storage: storage, thin: thin,
            encrypted: encrypted)
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
                    storage: StorageFault? = nil, thin: ThinImportPlan? = nil, encrypted: EncryptedImportPlan? = nil) -> UpdateAttempt? {
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
                // An encrypted package: validated (decrypted to its end) and loaded first (issue 15).
                if let encrypted { try importEncrypted(encrypted) }
                firstCall = host.callCount
                if config.outsider == .retagsTarget {
                    // Before the update's look at its target (its first image inspection).
                    host.interventions.append(SimIntervention(.retag(newReference, to: Self.outsiderReference), .before,
                                                              operation: .inspectImage))
                }
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
        // A disk still full when the next process recovers: it must bring the service back anyway.
        recoverOnFullDisk(faultsDuringRecovery: faultsDuringRecovery)
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
        out += fullDiskRecoveryViolations()
        out += foreignMarkViolations()
        out += encryptedViolations()
        let recorded = attempts.first(where: { $0.updateID == plan.updateID })
        if recorded == nil && !(crashed && attempts.isEmpty) && refusal == nil {
            out.append("no attempt record")
            return out
        }
        if config.mode == .compose, let a = recorded, a.status != .rollbackFailed, let target = service.compose {
            // The outcome lasts: the containers name no temporary file, and the operator's next
            // routine `docker compose up -d` keeps the release that runs (issue 10 item 10).
            host.advanceAll()
            let members = ((try? host.doComposeContainers(target)) ?? []).filter { !config.hijacker || $0.name != Self.hijackerName }
            if members.count == 1, let c = members.first {
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
        if let a = recorded {
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
            case recoveryCrashes = "recovery_crashes"
            case recoveryFaults = "recovery_faults"
            case outsiders
            case openOutcomes = "open_outcomes"
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

    public static let behaviours = ["healthy", "unhealthy", "crash", "crash:2.5", "never-ready", "flap", "oom"]
    public static let restartPolicies = ["unless-stopped", "always", "no", "on-failure", "on-failure:2"]
    /// The swarm's fault menu: every kind, daemon crashes included.
    public static let faultMenu = FaultKind.extended

    /// The seed of run `i` of a swarm seeded with `seed`.
    public static func runSeed(_ seed: UInt64, _ i: Int) -> UInt64 {
        var r = SplitMix64(seed: seed &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15)
        return r.next()
    }

    /// The provisioned worlds of a swarm, one per scenario config, each built on first use.
    /// The provisioned worlds of a swarm, one per scenario config, each built on first use.
    public struct Worlds {
        /// (`.retagsTarget` is drawn from a stream of its own, so that this draw stays what it was.)
        static let outsiders = UpdateScenario.Outsider.allCases.filter { $0 != .retagsTarget }
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
        let answers = UpdateScenario.Config.probeAnswers(kind)
        let probe = answers[rng.below(answers.count)]
        var config = UpdateScenario.Config(mode: mode, healthKind: kind,
                                           newBehaviour: behaviours[b], restartPolicy: restartPolicies[p],
                                           outsider: Worlds.outsiders[o],
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
        // Someone retags the package's reference to another image (issue 17: a wrong image at the
        // target reference must be refused), from its own stream too.
        var retag = SplitMix64(seed: runSeed ^ 0x7265_7461_6767_6564)
        if config.outsider == .none, retag.chance(0.04) { config.outsider = .retagsTarget }
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
        let d = disruptions ? Disruptions.draw(&rng) : { _ = Disruptions.draw(&rng); return Disruptions() }()
        scenario.run(faults: faults, crashes: crashes, faultsDuringRecovery: recoveryFaults,
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
            if scenario.processes.dropFirst().contains(where: \.crashed) { summary.recoveryCrashes += 1 }
            if scenario.crashed && scenario.faultsDuringRecovery { summary.recoveryFaults += 1 }
            if scenario.config.outsider != .none { summary.outsiders += 1 }
            if scenario.lastExpectation?.isOpen == true { summary.openOutcomes += 1 }
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
