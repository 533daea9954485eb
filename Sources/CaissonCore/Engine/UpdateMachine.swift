/// The update flow, once, for both runtime modes: a sans-I/O state machine. It never touches the
/// host, the clock or the store: it takes the outcome of the last command and returns the next
/// command. `UpdateDriver` executes the commands; the simulator and the real Docker body run the
/// very same machine.
///
/// Docker mode (FORMATS §7, with its weaknesses fixed):
///   inspect the service container → check the loaded image → pin the previous image by id →
///   create the new container under a temporary name (before anything is stopped) → stop old →
///   rename old to the rollback name → rename new into place → start → health-check →
///   commit (remove the backup) or restore.
/// Compose mode: look up the service's containers → check the image → pin the previous image by
///   id (so a re-tag can never steal it) → compose apply with the new image → health-check the
///   service's containers on the new image id → commit or restore (compose apply of the pin).
///
/// Restore is state-based: it inspects what is really on the host and converges to "the
/// previous container/image is in place and running", so the same code handles every failure
/// path, indeterminate outcomes, and recovery after the updater died at any point.
public struct UpdateMachine: Sendable, Codable, Equatable {
    // MARK: Inputs

    public struct Plan: Sendable, Codable, Equatable {
        public var updateID: String
        public var candidateReleaseID: String
        public var validationAttemptID: String?
        public var service: ServiceSpec
        public var targetImageReference: String
        public var targetImageID: String
        public var packageVersion: String?
        public var packageCreatedAt: String?
        /// `update` (a package) or `rollback` (`caisson rollback SERVICE`).
        public var kind: String
        /// The service state before this attempt (for the previous known-good bookkeeping).
        public var previousState: ServiceState?
        /// The grace to stop the previous container with. nil (the default): the container's own
        /// stop timeout (`docker run --stop-timeout`), else Docker's default, as `docker stop`
        /// does; a container that needs 30 s to flush must get them. Set only to override it.
        public var stopGraceSecs: Int?
        /// The container names of the catalog's Docker-mode services (other than this one). A
        /// Compose service's membership (by `com.docker.compose.*` labels) ignores them: a
        /// container of another catalog service is never this service's, whatever its labels.
        public var foreignContainerNames: [String]?
        /// Compose: the `image:` the compose file gives the service. When it is a tag, the update
        /// points it at the new image (by id) and applies the file as it is, with no override, so
        /// a later routine `docker compose up -d` keeps the new release; the restore points it
        /// back at the previous image. nil (or a digest reference): the image is pinned with an
        /// override file for the one `up`, as the Rust tool did (it does not last).
        public var composeImageReference: String?
        /// Go ahead when containers share the service's network namespace (`--network
        /// container:NAME`; Compose `network_mode: service:X`): recreate them against the new
        /// container, and restore them on rollback. Without it the update refuses
        /// (`update.network_dependents`) before any change.
        public var recreateNetworkDependents: Bool?
        /// Compose: the project's services sharing this one's network namespace (from the model).
        public var composeNetworkDependents: [String]?
        /// Start the new release even when the service was stopped before the update (`--start`).
        /// Otherwise a stopped service gets the new release installed but left stopped. Optional
        /// so journal snapshots written before it existed still decode (nil: false).
        public var startStopped: Bool?

        public init(updateID: String, candidateReleaseID: String, validationAttemptID: String?,
                    service: ServiceSpec, targetImageReference: String, targetImageID: String,
                    packageVersion: String? = nil, packageCreatedAt: String? = nil,
                    kind: String = "update", previousState: ServiceState? = nil, stopGraceSecs: Int? = nil,
                    startStopped: Bool? = nil) {
            self.updateID = updateID
            self.candidateReleaseID = candidateReleaseID
            self.validationAttemptID = validationAttemptID
            self.service = service
            self.targetImageReference = targetImageReference
            self.targetImageID = targetImageID
            self.packageVersion = packageVersion
            self.packageCreatedAt = packageCreatedAt
            self.kind = kind
            self.previousState = previousState
            self.stopGraceSecs = stopGraceSecs
            self.startStopped = startStopped
        }
    }

    // MARK: Commands and events

    public enum Command: Sendable, Equatable {
        case inspectContainer(String)
        case inspectImage(String)
        case tagImage(id: String, reference: String)
        /// `reference`: the name the new container shows for its image (nil: the id).
        case createContainer(name: String, template: String, imageID: String, labels: [String: String], reference: String? = nil)
        case startContainer(String)
        case stopContainer(String, graceSecs: Int)
        case renameContainer(String, to: String)
        case removeContainer(String)
        /// A remove that never kills: refused (`.conflict`) when the container runs.
        case removeStoppedContainer(String)
        case listContainers
        case createDependentContainer(name: String, template: String, owner: String, labels: [String: String])
        case composeUp(ComposeTarget, services: [String])
        case composeContainers(ComposeTarget)
        case composeApply(ComposeTarget, imageReference: String)
        /// The container's addresses (for an http/tcp probe).
        case containerDetails(String)
        /// One health probe (issue 12).
        case probe(ProbeRequest, timeoutMillis: Int64)
        /// Read a failed container's state and log tail before it goes (see `FailureEvidence`).
        case captureEvidence(container: String, role: FailureEvidence.Role)

        /// Side effects are journaled (intent before, outcome after); inspections are not.
        public var isMutating: Bool {
            switch self {
            case .inspectContainer, .inspectImage, .composeContainers, .listContainers, .containerDetails, .probe, .captureEvidence: return false
            default: return true
            }
        }

        public var stepName: String {
            switch self {
            case .inspectContainer: return "inspect_container"
            case .inspectImage: return "inspect_image"
            case .tagImage: return "tag_image"
            case .createContainer: return "create_container"
            case .startContainer: return "start_container"
            case .stopContainer: return "stop_container"
            case .renameContainer: return "rename_container"
            case .removeContainer, .removeStoppedContainer: return "remove_container"
            case .listContainers: return "list_containers"
            case .createDependentContainer: return "create_container"
            case .composeUp: return "compose_up"
            case .composeContainers: return "compose_containers"
            case .composeApply: return "compose_apply"
            case .containerDetails: return "container_details"
            case .probe: return "probe"
            case .captureEvidence: return "capture_evidence"
            }
        }

        /// Built by appending into one buffer (the driver journals it before every side effect).
        public var detail: String {
            var s = ""
            s.reserveCapacity(96)
            switch self {
            case .inspectContainer(let n): s += "inspect container "; s += n
            case .inspectImage(let r): s += "inspect image "; s += r
            case .tagImage(let id, let ref): s += "tag "; s.appendShortID(id); s += " as "; s += ref
            case .createContainer(let name, let template, let imageID, _, _):
                s += "create container "; s += name; s += " from "; s.appendShortID(template)
                s += " with image "; s.appendShortID(imageID)
            case .startContainer(let c): s += "start container "; s.appendShortID(c)
            case .stopContainer(let c, let g):
                s += "stop container "; s.appendShortID(c); s += " (grace "; s += String(g); s += "s)"
            case .renameContainer(let c, let to): s += "rename container "; s.appendShortID(c); s += " to "; s += to
            case .removeContainer(let c), .removeStoppedContainer(let c): s += "remove container "; s.appendShortID(c)
            case .listContainers: s += "list containers"
            case .createDependentContainer(let name, let template, let owner, _):
                s += "create container "; s += name; s += " from "; s.appendShortID(template)
                s += " sharing the network of "; s.appendShortID(owner)
            case .composeUp(let t, let services):
                s += "compose up "; s += t.project; s += "/"; s += services.joined(separator: ",")
            case .composeContainers(let t):
                s += "list containers of compose service "; s += t.project; s += "/"; s += t.service
            case .composeApply(let t, let ref):
                s += "compose up "; s += t.project; s += "/"; s += t.service; s += " with image "; s += ref
            case .containerDetails(let c): s += "inspect the addresses of container "; s.appendShortID(c)
            case .probe(let r, _): s += "probe "; s += r.target
            case .captureEvidence(let c, let role):
                s += "capture evidence of the "; s += role == .new ? "new" : "previous"; s += " container "; s.appendShortID(c)
            }
            return s
        }
    }

    public enum Reply: Sendable, Equatable {
        case container(ContainerInfo?)
        case image(ImageInfo?)
        case containers([ContainerInfo])
        case created(String)
        case done
        case error(HostError)
        case details(ContainerDetails?)
        case probe(ProbeAnswer)
        case evidence(FailureEvidence)
    }

    public enum Action: Sendable, Equatable {
        case call(Command)
        case sleep(millis: Int64)
        case finished
    }

    public enum Input: Sendable, Equatable {
        case start
        case reply(Reply)
        case woke
        /// The operator asked to stop (Ctrl-C, SIGTERM), delivered *instead of* executing the
        /// action the machine returned last (that action never ran). Before the service was
        /// touched the attempt ends with nothing changed; during the swap or the health check
        /// the previous release is restored; after the health check passed, or while restoring,
        /// the machine carries on to its end (see `cancelled(now:timestamp:)`).
        case cancel
    }

    // MARK: State (all Codable: a snapshot is written to the journal at every step)

    enum Phase: String, Sendable, Codable, Equatable {
        // Forward, Docker mode.
        case inspectOld, inspectTarget, pin, createNew, stopOld, renameOldAway, renameNewIn, startNew
        // Forward, Compose mode.
        case composeRetag, composeApply
        // Health of the new release (both modes); probe kinds resolve an address, then probe.
        case healthWait, healthPoll, healthAddress, healthProbe
        case commitRemoveBackup
        /// Commit: the backup is inspected and, when a daemon restart brought it back
        /// (`--restart always`), stopped with its stop timeout before it is removed.
        case commitInspectBackup, commitStopBackup
        // Restore (both modes): R1..R6 for Docker, compose re-apply for Compose.
        case restoreInspectName, restoreRemoveIntruder, restoreInspectOld, restoreRenameOld,
             restoreStartOld, restoreInspectLeftover, restoreRemoveLeftover, restoreComposeApply, restoreComposeRetag
        /// Our running containers are stopped with their own stop timeout before they are removed.
        case restoreStopIntruder, restoreInspectNew, restoreStopLeftover
        /// Containers sharing the service's network namespace (UpdateMachine+Dependents.swift).
        case listDependents, stopDependent, renameDependentAway, createDependent, startDependent
        case composeDependents, commitStopDependent, commitRemoveDependent
        case restoreDepInspectName, restoreDepStopClone, restoreDepRemoveClone, restoreDepInspectOriginal,
             restoreDepRenameBack, restoreDepInspectState, restoreDepStopStale, restoreDepStart, restoreComposeDependents
        case restoreHealthWait, restoreHealthPoll, restoreHealthAddress, restoreHealthProbe
        /// Reading failed containers' state and logs before they go (`FailureEvidence`).
        case captureEvidence
        /// Recovery of an attempt that died before touching anything: close it as failed.
        case abandon
        case done
    }

    /// The plan never changes: it is shared, not copied, by every snapshot of the machine (a
    /// journal write per step would otherwise copy each of its strings).
    private let planBox: PlanBox
    public var plan: Plan { planBox.value }
    /// The attempt record, shared with the journal writes that carry it (copied on change).
    private(set) var sharedAttempt: CopyOnWrite<UpdateAttempt>
    public internal(set) var attempt: UpdateAttempt {
        _read { yield sharedAttempt.value }
        _modify { yield &sharedAttempt.value }
    }
    var phase: Phase = .inspectOld
    /// Docker mode: the previous container. Compose: unused.
    var oldContainerID: String?
    var oldContainerName: String?
    var oldWasRunning = true
    var oldImageID: String?
    /// Docker mode: the previous container's own stop timeout (nil: unset, Docker's default).
    var oldStopTimeoutSecs: Int?
    /// A container of ours the restore is stopping (gracefully) before it removes it.
    var removingID: String?
    var pinReference: String?
    var newContainerID: String?
    /// True once the live service may have been touched (stop issued / compose apply issued).
    public internal(set) var touchedLive = false
    /// The health check of the new release passed: recovery finishes the commit.
    public internal(set) var healthPassed = false
    var health: HealthTracker?
    var restoreRound = 0
    /// Times the restore started the previous release again after finding it stopped during its
    /// health check (a daemon restart stops it; under `--restart no` it stays down).
    /// (Optional so snapshots journaled before it existed still decode.)
    var restoreRestarts: Int?
    /// Times the commit found the backup running again at its removal (optional: see above).
    var commitRetries: Int?
    /// Containers sharing the previous container's network namespace (nil until listed).
    var dependents: [Dependent]?
    /// The dependent the current step is about.
    var dependentIndex: Int?
    /// A dependent was stopped: the restore must put them back.
    var dependentsTouched: Bool?
    /// The restored previous container's current run (dependents must have joined it).
    var serviceStartedAt: String?
    /// The restore started the previous container once in this round (never loop on a crasher).
    var restoreStartIssued = false
    /// Set by `recovering`: the audit log of the interrupted attempt still lacks the ending of its
    /// health check and/or the start of its rollback (written with the recovery's first step).
    /// Transient: a recovery that dies before writing it owes it again from the same snapshot.
    /// (Optional: snapshots written before these existed decode.)
    var recoveryOwesHealthVerdict: Bool?
    var recoveryOwesRollbackStart: Bool?
    var pendingEvents: [AuditEvent] = []
    // Transient (not journaled: a recovered machine restores, it never resumes these).
    /// Probe kinds: the containers still to probe in this poll.
    var probeQueue: [String] = []
    /// Containers whose evidence is still to capture, and what to do once it is captured.
    var evidenceQueue: [String] = []
    var evidenceRole = FailureEvidence.Role.new
    var afterEvidence: AfterEvidence?
    /// Containers whose evidence was captured (never twice).
    var evidenceTaken: [String] = []
    /// Evidence captured since the last `takeEvidence()`; the driver stores it.
    var pendingEvidence: [FailureEvidence] = []
    /// Set when the durable state changed in a way that must be journaled before the next action.
    public internal(set) var needsPersist = false
    /// The service state to write with the final record (on commit).
    public private(set) var newServiceState: ServiceState?

    /// Restore rounds before giving up (each starts over from what the host really looks like,
    /// after a backoff): a restore must ride out a flaky daemon, not give up after 3 hiccups.
    public static let maxRestoreRounds = 20
    /// How often the restore starts a previous release again that it found exited during its
    /// health check, before it reports it as not healthy (bounded: never loop on a crasher).
    public static let maxRestoreRestarts = 3
    /// How often the commit goes back to stop a backup found running again when removing it.
    static let maxCommitRetries = 3
    /// Backoff before restore round `n` (1-based): 1 s, 2 s, 4 s, … capped at 30 s.
    static func restoreBackoffMillis(round: Int) -> Int64 {
        min(Int64(1000) << Int64(min(max(round - 1, 0), 5)), 30_000)
    }
    public static let updateLabel = "io.caisson.update-id"

    public init(plan: Plan, startedAt: String) {
        self.planBox = PlanBox(plan)
        self.sharedAttempt = CopyOnWrite(UpdateAttempt(
            updateID: plan.updateID, candidateReleaseID: plan.candidateReleaseID,
            validationAttemptID: plan.validationAttemptID, serviceName: plan.service.name,
            runtimeMode: plan.service.runtimeMode, targetImageReference: plan.targetImageReference,
            targetImageID: plan.targetImageID, packageVersion: plan.packageVersion,
            previousCandidateReleaseID: plan.previousState?.activeCandidateReleaseID,
            status: .applying, startedAt: startedAt, kind: plan.kind))
        if plan.service.runtimeMode == .docker {
            attempt.rollbackContainerName = backupName
        }
    }

    // MARK: Names

    var serviceContainerName: String { plan.service.docker?.containerName ?? plan.service.name }
    /// The first 8 hex digits of the update id, lowercased (ASCII scan: computed at every step).
    var idTag: String { Self.idTag(of: plan.updateID) }

    /// The first 8 hex digits of `updateID`, lowercased: the suffix of the names an update gives
    /// its containers (`NAME-caisson-new-<tag>`, `NAME-caisson-rollback-<tag>`).
    public static func idTag(of updateID: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(8)
        for b in updateID.utf8 where out.count < 8 {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"): out.append(b)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): out.append(b + 0x20)
            default: continue
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
    /// `NAME-caisson-rollback-<8 hex of update id>` (FORMATS §7).
    public var backupName: String { "\(serviceContainerName)-caisson-rollback-\(idTag)" }
    /// The new container is created under this name first, before anything is stopped.
    public var stagingName: String { "\(serviceContainerName)-caisson-new-\(idTag)" }

    public var isFinished: Bool { phase == .done }
    /// The machine is restoring the previous release.
    public var isRestoring: Bool { phase.rawValue.hasPrefix("restore") }
    public var status: UpdateStatus { attempt.status }

    /// Evidence captured since the last call; the driver writes it with the next journal write.
    public mutating func takeEvidence() -> [FailureEvidence] {
        defer { pendingEvidence.removeAll() }
        return pendingEvidence
    }

    /// Events produced since the last `takeEvents()`; the driver journals them.
    public mutating func takeEvents() -> [AuditEvent] {
        defer { pendingEvents.removeAll(); needsPersist = false }
        return pendingEvents
    }

    // MARK: Recovery

    /// Rebuild a machine from its last journaled snapshot, after the updater died. The machine
    /// re-inspects the host: if the new release had passed its health check it finishes the
    /// commit, otherwise it restores the previous release.
    public static func recovering(_ saved: UpdateMachine, attempt: UpdateAttempt) -> UpdateMachine {
        var m = saved
        m.attempt.status = attempt.status
        m.pendingEvents = []
        m.health = nil
        if m.phase == .done {
            // The final record was written; nothing left to do but make the status terminal.
            return m
        }
        if m.phase == .abandon {
            // Recovered once already (a recovery that went on without the journal is recovered
            // again from its own durable snapshot): nothing was touched, nothing to restore.
            return m
        }
        // A recovery that died too left its own snapshot: say "interrupted" once.
        let saidInterrupted = m.attempt.issues.contains { $0.code == "update.interrupted" }
        if m.healthPassed {
            m.phase = .commitRemoveBackup
        } else if !m.touchedLive && [.inspectOld, .listDependents, .inspectTarget, .pin, .abandon].contains(m.phase) {
            // Died before creating or stopping anything (a pin tag is harmless): nothing to
            // restore. (`.abandon`: an earlier recovery decided so and died before finishing.)
            if !saidInterrupted {
                m.attempt.issues.append(Issue("update.interrupted", "the updater stopped before changing the service; nothing was changed"))
            }
            m.phase = .abandon
        } else {
            m.restoreRound = 0
            // The snapshot may have been written as the intent of a start that never ran.
            m.restoreStartIssued = false
            // The durable status says what the audit log holds: `health_checking` means a health
            // check started and has no verdict; `rollback_started` was written with its event.
            // (A verdict already journaled, e.g. before its failure evidence was read, is not owed again.)
            m.recoveryOwesHealthVerdict = attempt.status == .healthChecking && m.attempt.healthCheck == nil
            m.recoveryOwesRollbackStart = m.touchedLive && attempt.status != .rollbackStarted
            if saidInterrupted {
                if m.touchedLive { m.attempt.status = .rollbackStarted }
            } else {
                m.enterRestoreBookkeeping(reason: Issue("update.interrupted", "the updater stopped during the update; restoring the previous release"))
            }
            // The status changes with the event it stands for, at the recovery's first step.
            if m.recoveryOwesRollbackStart == true { m.attempt.status = attempt.status }
            m.phase = m.plan.service.runtimeMode == .docker ? .restoreInspectName : .restoreComposeApply
        }
        return m
    }

    // MARK: The transition function

    /// `now` is the injected monotonic time (ms); `timestamp` the injected wall time for records.
    public mutating func next(_ input: Input, now: Int64, timestamp: String) -> Action {
        if input == .cancel { return cancelled(now: now, timestamp) }
        switch (phase, input) {
        case (.inspectOld, .start):
            event(.updateStarted, timestamp, "\(plan.kind == "rollback" ? "rollback" : "update") of \(plan.service.name) to \(plan.targetImageReference) started")
            if plan.service.runtimeMode == .docker {
                return .call(.inspectContainer(serviceContainerName))
            }
            guard let target = plan.service.compose else {
                return fail(Issue("compose.image_lookup_failed", "service \(plan.service.name) has no [services.compose] table"), timestamp)
            }
            return .call(.composeContainers(target))

        case (.inspectOld, .reply(let reply)):
            return afterInspectOld(reply, timestamp)

        case (.inspectTarget, .reply(let reply)):
            switch reply {
            case .image(let info?) where info.id == plan.targetImageID:
                phase = .pin
                guard let oldImageID else { return fail(Issue("docker.inspect_failed", "the previous image id is unknown"), timestamp) }
                let ref = Self.pinReference(service: plan.service.name, imageID: oldImageID)
                pinReference = ref
                needsPersist = true
                return .call(.tagImage(id: oldImageID, reference: ref))
            case .image(let info?):
                return fail(Issue("docker.inspect_failed", "image \(plan.targetImageReference) is \(shortID(info.id)), expected \(shortID(plan.targetImageID)) as inspected at validation"), timestamp)
            case .image(nil):
                return fail(Issue("docker.inspect_failed", "image \(plan.targetImageReference) is not present on the host"), timestamp)
            case .error(let e):
                return fail(Issue("docker.inspect_failed", "could not inspect image \(plan.targetImageReference): \(e.message)"), timestamp)
            default:
                return unexpected(reply, timestamp)
            }

        case (.pin, .reply(let reply)):
            if case .error(let e) = reply {
                return fail(Issue("image.pin_failed", "could not pin the previous image \(shortID(oldImageID ?? "")) as \(pinReference ?? ""): \(e.message)"), timestamp)
            }
            if plan.service.runtimeMode == .docker {
                phase = .createNew
                // Named by the package's reference (what `docker ps` shows), never by a pin tag.
                let reference = plan.targetImageReference.hasPrefix("caisson-pin/") ? nil : plan.targetImageReference
                return .call(.createContainer(name: stagingName, template: oldContainerID ?? serviceContainerName,
                                              imageID: plan.targetImageID, labels: [Self.updateLabel: plan.updateID],
                                              reference: reference))
            }
            touchedLive = true
            needsPersist = true
            if let reference = durableComposeReference {
                // From here on any `docker compose up` deploys the new release: restore-worthy.
                phase = .composeRetag
                return .call(.tagImage(id: plan.targetImageID, reference: reference))
            }
            phase = .composeApply
            return .call(.composeApply(plan.service.compose!, imageReference: plan.targetImageReference))

        case (.composeRetag, .reply(let reply)):
            if case .error(let e) = reply {
                return startRestore(Issue("compose.apply_failed", "could not point \(durableComposeReference ?? "") at the new image \(shortID(plan.targetImageID)): \(e.message)"), timestamp)
            }
            phase = .composeApply
            return .call(.composeApply(plan.service.compose!, imageReference: durableComposeReference ?? plan.targetImageReference))

        case (.createNew, .reply(let reply)):
            switch reply {
            case .created(let id):
                newContainerID = id
                touchedLive = true
                needsPersist = true
                return stopNextDependent(from: 0)
            case .error(let e):
                return startRestore(Issue("docker.create_failed", "could not create the new container \(stagingName): \(e.message)"), timestamp)
            default:
                return unexpected(reply, timestamp)
            }

        case (.stopOld, .reply(let reply)):
            if case .error(let e) = reply {
                return startRestore(Issue("docker.stop_failed", "could not stop container \(serviceContainerName): \(e.message)"), timestamp)
            }
            phase = .renameOldAway
            return .call(.renameContainer(oldContainerID!, to: backupName))

        case (.renameOldAway, .reply(let reply)):
            if case .error(let e) = reply {
                return startRestore(Issue("docker.rename_failed", "could not rename \(serviceContainerName) to \(backupName): \(e.message)"), timestamp)
            }
            phase = .renameNewIn
            return .call(.renameContainer(newContainerID!, to: serviceContainerName))

        case (.renameNewIn, .reply(let reply)):
            if case .error(let e) = reply {
                return startRestore(Issue("docker.rename_failed", "could not rename the new container to \(serviceContainerName): \(e.message)"), timestamp)
            }
            if leavesServiceStopped {
                // Its dependents are recreated against the new container all the same (not
                // started: their namespace owner stays stopped), else the commit would remove
                // them with the previous container.
                return recreateNextDependent(from: 0, now: now, timestamp)
            }
            phase = .startNew
            return .call(.startContainer(newContainerID!))

        case (.startNew, .reply(let reply)):
            if case .error(let e) = reply {
                let issue = Issue("docker.start_failed", "could not start the new container: \(e.message)")
                return captureEvidence(of: newContainerID.map { [$0] } ?? [], role: .new, then: .restore(issue), timestamp)
            }
            return recreateNextDependent(from: 0, now: now, timestamp)

        case (.composeApply, .reply(let reply)):
            if case .error(let e) = reply {
                return startRestore(Issue("compose.apply_failed", "docker compose could not apply \(plan.targetImageReference): \(e.message)"), timestamp)
            }
            if let deps = plan.composeNetworkDependents, !deps.isEmpty {
                phase = .composeDependents
                return .call(.composeUp(plan.service.compose!, services: deps))
            }
            return beginHealth(now: now, timestamp)

        case (.healthWait, .woke):
            phase = .healthPoll
            return healthObservation()

        case (.healthPoll, .reply(let reply)):
            return afterHealthPoll(reply, now: now, timestamp)

        case (.healthAddress, .reply(let reply)), (.restoreHealthAddress, .reply(let reply)):
            return afterAddress(reply, now: now, timestamp)

        case (.healthProbe, .reply(let reply)), (.restoreHealthProbe, .reply(let reply)):
            return afterProbe(reply, now: now, timestamp)

        case (.captureEvidence, .reply(let reply)):
            return afterEvidenceReply(reply, now: now, timestamp)

        case (.commitRemoveBackup, .start), (.commitRemoveBackup, .woke):
            // Recovery resumes here after a passed health check.
            return commitBackup(timestamp)

        case (.commitInspectBackup, .reply(let reply)):
            guard let old = oldContainerID else { return commit(timestamp) }
            switch reply {
            case .container(nil):
                return commitNextDependent(from: 0, timestamp)
            case .container(let c?) where c.isRunning || c.status == .restarting:
                phase = .commitStopBackup
                return .call(.stopContainer(old, graceSecs: c.stopGraceSecs))
            case .container:
                phase = .commitRemoveBackup
                return .call(.removeStoppedContainer(old))
            case .error:
                // Unknown state: a stop (a no-op when it is stopped) before the remove.
                phase = .commitStopBackup
                return .call(.stopContainer(old, graceSecs: oldStopGraceSecs))
            default:
                return unexpected(reply, timestamp)
            }

        case (.commitStopBackup, .reply(let reply)):
            if case .error(let e) = reply, e.kind == .notFound {
                // Already gone (someone else removed it): nothing is left to clean up.
                return commit(timestamp)
            }
            if case .error(let e) = reply {
                // Never force-remove a running container (SIGKILL): keep it for cleanup.
                attempt.issues.append(Issue("docker.cleanup_failed", "the update succeeded but the backup container \(backupName) could not be stopped: \(e.message); `caisson package cleanup` will retry"))
                return commitNextDependent(from: 0, timestamp)
            }
            phase = .commitRemoveBackup
            return .call(.removeStoppedContainer(oldContainerID ?? backupName))

        case (.commitRemoveBackup, .reply(let reply)):
            if case .error(let e) = reply, e.kind == .conflict, (commitRetries ?? 0) < Self.maxCommitRetries {
                // Running again (a daemon restart under `--restart always`): stop it first.
                commitRetries = (commitRetries ?? 0) + 1
                needsPersist = true
                return commitBackup(timestamp)
            }
            if case .error(let e) = reply {
                attempt.issues.append(Issue("docker.cleanup_failed", "the update succeeded but the backup container \(backupName) could not be removed: \(e.message); `caisson package cleanup` will retry"))
            }
            return commitNextDependent(from: 0, timestamp)

        // MARK: Restore, Docker mode
        case (.restoreInspectName, .start), (.restoreInspectName, .woke):
            if case .start = input { settleRecoveryEvents(timestamp) }
            return .call(.inspectContainer(serviceContainerName))

        case (.restoreInspectName, .reply(let reply)):
            switch reply {
            case .container(nil):
                phase = .restoreInspectOld
                return .call(.inspectContainer(oldContainerID ?? backupName))
            case .container(let c?) where c.id == oldContainerID:
                phase = .restoreStartOld
                return ensureOldRunning(c, timestamp)
            case .container(let c?) where isOurs(c):
                return removeOurs(c, stopPhase: .restoreStopIntruder, removePhase: .restoreRemoveIntruder)
            case .container(let c?):
                return restoreFailed(Issue("rollback.rename_failed", "container \(c.name) (\(shortID(c.id))) holds the service name and was not created by this update; not touching it"), timestamp)
            case .error(let e):
                return restoreRetry(Issue("rollback.inspect_failed", "could not inspect \(serviceContainerName): \(e.message)"), timestamp)
            default:
                return unexpected(reply, timestamp)
            }

        case (.restoreStopIntruder, .reply(let reply)):
            if case .error(let e) = reply {
                return restoreRetry(Issue("rollback.stop_failed", "could not stop the new container: \(e.message)"), timestamp)
            }
            phase = .restoreRemoveIntruder
            return .call(.removeStoppedContainer(removingID ?? stagingName))

        case (.restoreRemoveIntruder, .reply(let reply)):
            if case .error(let e) = reply {
                return restoreRetry(Issue("rollback.remove_failed", "could not remove the new container: \(e.message)"), timestamp)
            }
            removingID = nil
            phase = .restoreInspectOld
            return .call(.inspectContainer(oldContainerID ?? backupName))

        case (.restoreInspectOld, .reply(let reply)):
            switch reply {
            case .container(let c?):
                if oldContainerID == nil { oldContainerID = c.id }
                if c.name == serviceContainerName {
                    phase = .restoreStartOld
                    return ensureOldRunning(c, timestamp)
                }
                phase = .restoreRenameOld
                return .call(.renameContainer(c.id, to: serviceContainerName))
            case .container(nil):
                return restoreFailed(Issue("rollback.rename_failed", "the previous container \(backupName) no longer exists; the service needs a human"), timestamp)
            case .error(let e):
                return restoreRetry(Issue("rollback.inspect_failed", "could not inspect the previous container: \(e.message)"), timestamp)
            default:
                return unexpected(reply, timestamp)
            }

        case (.restoreRenameOld, .reply(let reply)):
            if case .error(let e) = reply {
                return restoreRetry(Issue("rollback.rename_failed", "could not rename \(backupName) back to \(serviceContainerName): \(e.message)"), timestamp)
            }
            phase = .restoreStartOld
            return .call(.inspectContainer(oldContainerID!))

        case (.restoreStartOld, .reply(let reply)):
            switch reply {
            case .container(let c?):
                return ensureOldRunning(c, timestamp)
            case .container(nil):
                return restoreFailed(Issue("rollback.start_failed", "the previous container disappeared during the rollback"), timestamp)
            case .done:
                // Started; verify it by inspecting again.
                return .call(.inspectContainer(oldContainerID!))
            case .error(let e):
                return restoreRetry(Issue("rollback.start_failed", "could not start the previous container: \(e.message)"), timestamp)
            default:
                return unexpected(reply, timestamp)
            }

        case (.restoreInspectLeftover, .reply(let reply)):
            if case .error(let e) = reply {
                // Not knowing whether our staging container exists is not "it does not exist".
                return restoreRetry(Issue("rollback.inspect_failed", "could not inspect \(stagingName): \(e.message)"), timestamp)
            }
            if case .container(let c?) = reply, isOurs(c), c.id != oldContainerID {
                return removeOurs(c, stopPhase: .restoreStopLeftover, removePhase: .restoreRemoveLeftover)
            }
            if let id = newContainerID, id != oldContainerID {
                // The new container may still exist under another name.
                phase = .restoreInspectNew
                return .call(.inspectContainer(id))
            }
            return restoreNextDependent(from: 0, now: now, timestamp)

        case (.restoreInspectNew, .reply(let reply)):
            switch reply {
            case .container(let c?) where c.id != oldContainerID:
                return removeOurs(c, stopPhase: .restoreStopLeftover, removePhase: .restoreRemoveLeftover)
            case .container:
                newContainerID = nil
                return restoreNextDependent(from: 0, now: now, timestamp)
            case .error(let e):
                return restoreRetry(Issue("rollback.inspect_failed", "could not inspect the new container: \(e.message)"), timestamp)
            default:
                return unexpected(reply, timestamp)
            }

        case (.restoreStopLeftover, .reply(let reply)):
            if case .error(let e) = reply {
                return restoreRetry(Issue("rollback.stop_failed", "could not stop the failed new container: \(e.message)"), timestamp)
            }
            phase = .restoreRemoveLeftover
            return .call(.removeStoppedContainer(removingID ?? newContainerID ?? stagingName))

        case (.restoreRemoveLeftover, .reply(let reply)):
            if case .error(let e) = reply, e.kind == .conflict {
                // Running again (a daemon restart under `--restart always`): a new round stops it.
                return restoreRetry(Issue("rollback.remove_failed", "the failed new container could not be removed: \(e.message)"), timestamp)
            }
            if case .error(let e) = reply {
                attempt.issues.append(Issue("rollback.remove_failed", "the failed new container could not be removed: \(e.message); `caisson package cleanup` will retry"))
            }
            newContainerID = nil
            removingID = nil
            return restoreNextDependent(from: 0, now: now, timestamp)

        // MARK: Restore, Compose mode
        case (.restoreComposeApply, .start), (.restoreComposeApply, .woke):
            if case .start = input { settleRecoveryEvents(timestamp) }
            if !touchedLive {
                // Recovery of an attempt that never reached compose apply: nothing was changed.
                return finish(.failed, timestamp)
            }
            return restoreComposeStart(timestamp)

        case (.restoreComposeRetag, .reply(let reply)):
            if case .error(let e) = reply {
                return restoreRetry(Issue("rollback.compose_apply_failed", "could not point \(durableComposeReference ?? "") back at the previous image \(shortID(oldImageID ?? "")): \(e.message)"), timestamp)
            }
            phase = .restoreComposeApply
            return .call(.composeApply(plan.service.compose!, imageReference: durableComposeReference ?? pinReference ?? ""))

        case (.restoreComposeApply, .reply(let reply)):
            if case .error(let e) = reply {
                return restoreRetry(Issue("rollback.compose_apply_failed", "docker compose could not restore \(pinReference ?? ""): \(e.message)"), timestamp)
            }
            if let deps = plan.composeNetworkDependents, !deps.isEmpty {
                phase = .restoreComposeDependents
                return .call(.composeUp(plan.service.compose!, services: deps))
            }
            return restoreHealthBegin(now: now, timestamp)

        case (.restoreHealthWait, .woke):
            phase = .restoreHealthPoll
            return restoreHealthObservation()

        case (.restoreHealthPoll, .reply(let reply)):
            return afterRestoreHealthPoll(reply, now: now, timestamp)

        case (.listDependents, _), (.stopDependent, _), (.renameDependentAway, _), (.createDependent, _),
             (.startDependent, _), (.composeDependents, _), (.commitStopDependent, _), (.commitRemoveDependent, _),
             (.restoreDepInspectName, _), (.restoreDepStopClone, _), (.restoreDepRemoveClone, _), (.restoreDepInspectOriginal, _),
             (.restoreDepRenameBack, _), (.restoreDepInspectState, _), (.restoreDepStopStale, _), (.restoreDepStart, _),
             (.restoreComposeDependents, _):
            return nextDependents(input, now: now, timestamp)

        case (.abandon, _):
            return finish(.failed, timestamp)

        case (.done, _):
            return .finished

        default:
            return unexpected(nil, timestamp, input: input)
        }
    }

    // MARK: Cancel

    /// What a stop request does in each phase. The action returned before it never ran, so the
    /// machine re-derives from the phase (restores are state-based: they inspect the host first).
    private mutating func cancelled(now: Int64, _ timestamp: String) -> Action {
        let reason = "stopped by the operator (interrupt or terminate signal)"
        switch phase {
        case .inspectOld, .listDependents, .inspectTarget, .pin:
            // Nothing touched (a pin tag is harmless).
            attempt.issues.append(Issue("update.cancelled", "\(reason) before the service was changed; nothing was changed"))
            return finish(.failed, timestamp)
        case .createNew, .stopOld, .renameOldAway, .renameNewIn, .startNew, .composeApply, .healthWait, .healthPoll,
             .healthAddress, .healthProbe,
             .composeRetag, .stopDependent, .renameDependentAway, .createDependent, .startDependent, .composeDependents:
            if (phase == .stopOld && dependentsTouched != true) || phase == .composeRetag
                || (phase == .composeApply && durableComposeReference == nil) {
                // The cancel replaces the first change to the live service (the stop, the
                // compose file's retag or apply): it never ran, the service is untouched.
                touchedLive = false
            }
            if phase == .healthWait || phase == .healthPoll || phase == .healthAddress || phase == .healthProbe {
                // The health check ends here, without a verdict of its own: it is not kept.
                let msg = "\(reason) during the health check; the release is not kept"
                attempt.healthCheck = HealthCheckRecord(kind: plan.service.health.kind, outcome: .failed, message: msg, checkedAt: timestamp)
                event(.healthCheckFailed, timestamp, msg)
            }
            return startRestore(Issue("update.cancelled", touchedLive ? "\(reason); restoring the previous release"
                                                                      : "\(reason) before the service was changed; nothing was changed"), timestamp)
        case .commitRemoveBackup, .commitInspectBackup, .commitStopBackup:
            // The new release passed its health check: finish the commit (from a fresh look at
            // the backup).
            return commitBackup(timestamp)
        case .commitStopDependent, .commitRemoveDependent:
            return commitNextDependent(from: dependentIndex ?? 0, timestamp)
        case .restoreDepInspectName, .restoreDepStopClone, .restoreDepRemoveClone, .restoreDepInspectOriginal,
             .restoreDepRenameBack, .restoreDepInspectState, .restoreDepStopStale, .restoreDepStart:
            // Converges from what the host looks like (it inspects by name first).
            return restoreNextDependent(from: dependentIndex ?? 0, now: now, timestamp)
        case .restoreInspectName, .restoreRemoveIntruder, .restoreInspectOld, .restoreRenameOld, .restoreStartOld,
             .restoreInspectLeftover, .restoreRemoveLeftover, .restoreStopIntruder, .restoreInspectNew, .restoreStopLeftover:
            // Already restoring: start the round over from what the host looks like.
            restoreStartIssued = false
            phase = .restoreInspectName
            return .call(.inspectContainer(serviceContainerName))
        case .restoreComposeApply, .restoreComposeRetag, .restoreComposeDependents:
            phase = .restoreComposeApply
            return next(.start, now: now, timestamp: timestamp)
        case .restoreHealthWait, .restoreHealthPoll, .restoreHealthAddress, .restoreHealthProbe:
            phase = .restoreHealthPoll
            return restoreHealthObservation()
        case .captureEvidence:
            // Reading evidence changes nothing: skip what is left of it and go on to what
            // follows (the restore, or the end of the attempt).
            evidenceQueue = []
            return nextEvidence(timestamp)
        case .abandon:
            return finish(.failed, timestamp)
        case .done:
            return .finished
        }
    }

    // MARK: Forward helpers

    mutating func afterInspectOld(_ reply: Reply, _ timestamp: String) -> Action {
        switch reply {
        case .container(let c?):
            oldContainerID = c.id
            oldContainerName = c.name
            oldWasRunning = c.isRunning
            oldImageID = c.imageID
            oldStopTimeoutSecs = c.stopTimeoutSecs
            attempt.previousImageReference = knownReference(for: c)
            attempt.previousImageID = c.imageID
        case .container(nil):
            return fail(Issue("docker.service_inspect_failed", "container \(serviceContainerName) of service \(plan.service.name) does not exist on this host"), timestamp)
        case .containers(let all):
            let foreign = all.filter(isForeign)
            if !foreign.isEmpty {
                // Compose finds a service's containers by these labels: `up` would recreate or
                // remove the other service's container. Refuse before anything changes.
                return fail(Issue("compose.foreign_member", "container\(foreign.count == 1 ? "" : "s") \(foreign.map(\.name).joined(separator: ", ")) of another catalog service carr\(foreign.count == 1 ? "ies" : "y") the labels of compose service \(plan.service.compose?.project ?? "")/\(plan.service.compose?.service ?? ""); docker compose would recreate or remove \(foreign.count == 1 ? "it" : "them"). Recreate \(foreign.count == 1 ? "it" : "them") without com.docker.compose.* labels first; nothing was changed"), timestamp)
            }
            let cs = all
            guard let first = cs.first else {
                return fail(Issue("compose.image_lookup_failed", "compose service \(plan.service.compose?.service ?? plan.service.name) has no container; start it once with docker compose before updating"), timestamp)
            }
            oldImageID = first.imageID
            oldWasRunning = cs.contains { $0.isRunning }
            attempt.previousImageReference = knownReference(for: first)
            attempt.previousImageID = first.imageID
        case .error(let e):
            let code = plan.service.runtimeMode == .docker ? "docker.service_inspect_failed" : "compose.image_lookup_failed"
            return fail(Issue(code, "could not inspect service \(plan.service.name): \(e.message)"), timestamp)
        default:
            return unexpected(reply, timestamp)
        }
        if oldImageID == plan.targetImageID && plan.kind == "update" {
            // Already running exactly this image: nothing to change.
            attempt.issues.append(Issue("update.already_running", "service \(plan.service.name) already runs image \(shortID(plan.targetImageID))"))
        }
        if plan.service.runtimeMode == .docker {
            // Who shares its network namespace (they must move with it, or the update refuses).
            phase = .listDependents
            needsPersist = true
            return .call(.listContainers)
        }
        if let deps = plan.composeNetworkDependents, !deps.isEmpty, plan.recreateNetworkDependents != true {
            return fail(Self.dependentsRefusal(deps, of: "compose service \(plan.service.compose?.service ?? plan.service.name)", how: "network_mode: service:\(plan.service.compose?.service ?? "")"), timestamp)
        }
        return proceedToTarget()
    }

    mutating func proceedToTarget() -> Action {
        phase = .inspectTarget
        needsPersist = true
        return .call(.inspectImage(plan.targetImageReference))
    }

    /// A container created by an earlier update runs its image by id; name it by the reference
    /// the service state remembers for that id.
    func knownReference(for c: ContainerInfo) -> String {
        if let st = plan.previousState, st.activeImageID == c.imageID, let ref = st.activeImageReference { return ref }
        return c.imageReference
    }

    mutating func beginHealth(now: Int64, _ timestamp: String) -> Action {
        attempt.status = .healthChecking
        health = HealthTracker(policy: plan.service.health, startMillis: now)
        event(.healthCheckStarted, timestamp, "health check (\(plan.service.health.kind.rawValue)) of \(plan.service.name) started")
        phase = .healthPoll
        return healthObservation()
    }

    func healthObservation() -> Action {
        if plan.service.runtimeMode == .docker {
            return .call(.inspectContainer(newContainerID ?? serviceContainerName))
        }
        return .call(.composeContainers(plan.service.compose!))
    }

    /// What a health poll's reply says: containers to judge, or (for a failed or timed-out
    /// inspection, which is no verdict on the service) a wait before the next poll, within a
    /// bounded grace of twice the health timeout; past it, the error.
    enum PollReading {
        case observed([ContainerInfo])
        case wait(Action)
        case failed(HostError)
        case unexpected
    }

    mutating func read(_ reply: Reply, now: Int64, waitPhase: Phase) -> PollReading {
        switch reply {
        case .container(let c): return .observed(c.map { [$0] } ?? [])
        case .containers(let cs): return .observed(cs.filter { !isForeign($0) })
        case .error(let e):
            if let h = health, now - h.startMillis < Int64(plan.service.health.timeoutSecs) * 2000 {
                phase = waitPhase
                return .wait(.sleep(millis: Int64(plan.service.health.pollIntervalSecs) * 1000))
            }
            return .failed(e)
        default: return .unexpected
        }
    }

    mutating func afterHealthPoll(_ reply: Reply, now: Int64, _ timestamp: String) -> Action {
        let observed: [ContainerInfo]
        switch read(reply, now: now, waitPhase: .healthWait) {
        case .observed(let cs): observed = cs
        case .wait(let action): return action
        case .failed(let e): return healthFailed(.timedOut, "the container could not be inspected: \(e.message)", now: now, timestamp)
        case .unexpected: return unexpected(reply, timestamp)
        }
        let expected = plan.service.runtimeMode == .compose ? plan.targetImageID : nil
        var tracker = health ?? HealthTracker(policy: plan.service.health, startMillis: now)
        if case .container(nil) = reply {
            health = tracker
            return healthFailed(.failed, "the new container disappeared", now: now, timestamp)
        }
        let verdict = tracker.observe(observed, expectedImageID: expected, now: now)
        health = tracker
        return forwardVerdict(verdict, now: now, timestamp)
    }

    /// What the new release's health verdict leads to.
    mutating func forwardVerdict(_ verdict: HealthTracker.Verdict, now: Int64, _ timestamp: String) -> Action {
        switch verdict {
        case .probe(let ids):
            return startProbes(ids, now: now, timestamp)
        case .pending:
            phase = .healthWait
            return .sleep(millis: Int64(plan.service.health.pollIntervalSecs) * 1000)
        case .passed(let msg):
            attempt.healthCheck = HealthCheckRecord(kind: plan.service.health.kind, outcome: .passed, message: msg, checkedAt: timestamp)
            event(.healthCheckPassed, timestamp, msg)
            healthPassed = true
            phase = .commitRemoveBackup
            needsPersist = true
            return commitBackup(timestamp)
        case .failed(let msg):
            return healthFailed(.failed, msg, now: now, timestamp)
        case .timedOut(let msg):
            return healthFailed(.timedOut, msg, now: now, timestamp)
        }
    }

    mutating func healthFailed(_ outcome: HealthOutcome, _ msg: String, now: Int64, _ timestamp: String) -> Action {
        attempt.healthCheck = HealthCheckRecord(kind: plan.service.health.kind, outcome: outcome, message: msg, checkedAt: timestamp)
        event(.healthCheckFailed, timestamp, msg)
        let issue = Issue(outcome == .timedOut ? "health_check.timed_out" : "health_check.failed", msg)
        if !plan.service.automaticRollback {
            attempt.issues.append(issue)
            attempt.issues.append(Issue("rollback.disabled", "automatic rollback is off for \(plan.service.name); the new release stays in place and the backup is kept for `caisson rollback`"))
            return captureEvidence(of: newReleaseContainers, role: .new, then: .finishFailed, timestamp)
        }
        return captureEvidence(of: newReleaseContainers, role: .new, then: .restore(issue), timestamp)
    }

    /// Docker mode: look at the backup before removing it (a daemon restart may have started
    /// it again); Compose: nothing to remove.
    mutating func commitBackup(_ timestamp: String) -> Action {
        if plan.service.runtimeMode == .docker, let old = oldContainerID {
            phase = .commitInspectBackup
            return .call(.inspectContainer(old))
        }
        return commit(timestamp)
    }

    mutating func commit(_ timestamp: String) -> Action {
        newServiceState = stateAfterSwap(timestamp)
        event(.updateCommitted, timestamp, "\(plan.service.name) now runs \(plan.targetImageReference) (\(shortID(plan.targetImageID)))")
        return finish(.succeeded, timestamp)
    }

    /// The service state once the target release is the one in place.
    /// Automatic rollback off, once the evidence is captured: what runs now is the new release,
    /// the state says so, and the release it replaced becomes the one `caisson rollback` returns to.
    mutating func finishKeepingNewRelease(_ timestamp: String) -> Action {
        newServiceState = stateAfterSwap(timestamp)
        return finish(.failed, timestamp)
    }

    private func stateAfterSwap(_ timestamp: String) -> ServiceState {
        let prev = plan.previousState
        var state = ServiceState(serviceName: plan.service.name, updatedAt: timestamp)
        state.activeCandidateReleaseID = plan.candidateReleaseID
        state.activeImageReference = plan.targetImageReference
        state.activeImageID = plan.targetImageID
        if plan.kind == "rollback" {
            // Going back: the release we left becomes the previous known-good.
            state.previousKnownGoodCandidateReleaseID = prev?.activeCandidateReleaseID
            state.previousKnownGoodImageReference = prev?.activeImageReference ?? attempt.previousImageReference
            state.previousKnownGoodImageID = prev?.activeImageID ?? attempt.previousImageID
            // The version in place is the restored release's (nil when it is not known): the one
            // rolled back from may be applied again.
            state.highestPackageVersion = plan.packageVersion
            state.newestCreatedAt = prev?.newestCreatedAt
        } else {
            state.previousKnownGoodCandidateReleaseID = prev?.activeCandidateReleaseID
            state.previousKnownGoodImageReference = attempt.previousImageReference
            state.previousKnownGoodImageID = attempt.previousImageID
            state.highestPackageVersion = SemVer.max(prev?.highestPackageVersion, plan.packageVersion)
            state.newestCreatedAt = Timestamps.max(prev?.newestCreatedAt, plan.packageCreatedAt)
        }
        return state
    }

    /// The service was stopped before the update and `--start` was not given: the new release is
    /// in place but not started, so there is nothing to health-check. Committed like a pass
    /// (the backup goes); recovery finishes the commit.
    /// Docker mode: the service was stopped and `--start` was not given.
    var leavesServiceStopped: Bool { plan.service.runtimeMode == .docker && !oldWasRunning && plan.startStopped != true }

    mutating func commitLeftStopped(_ timestamp: String) -> Action {
        attempt.issues.append(Issue("update.left_stopped", "\(serviceContainerName) was stopped before the update: the new release is installed but not started (update with --start to start it)"))
        healthPassed = true
        phase = .commitRemoveBackup
        needsPersist = true
        return commitBackup(timestamp)
    }

    // MARK: Restore helpers

    mutating func enterRestoreBookkeeping(reason: Issue) {
        attempt.issues.append(reason)
        if touchedLive {
            attempt.status = .rollbackStarted
        }
        needsPersist = true
    }

    mutating func startRestore(_ reason: Issue, _ timestamp: String) -> Action {
        enterRestoreBookkeeping(reason: reason)
        if touchedLive {
            event(.rollbackStarted, timestamp, "restoring \(plan.service.name) to its previous release: \(reason.message)")
        }
        restoreRound = 0
        if plan.service.runtimeMode == .docker {
            phase = .restoreInspectName
            return .call(.inspectContainer(serviceContainerName))
        }
        phase = .restoreComposeApply
        if !touchedLive {
            return finish(.failed, timestamp)
        }
        return restoreComposeStart(timestamp)
    }

    /// The compose file's reference when the update moves it (a tag, not a digest).
    var durableComposeReference: String? {
        guard plan.service.runtimeMode == .compose, let r = plan.composeImageReference, !r.isEmpty, !r.contains("@") else { return nil }
        return r
    }

    /// Compose restore: point the compose file's reference back at the previous image (by id)
    /// and apply the file as it is; without one, apply the pin through an override.
    mutating func restoreComposeStart(_ timestamp: String) -> Action {
        guard let target = plan.service.compose else {
            return restoreFailed(Issue("rollback.compose_apply_failed", "service \(plan.service.name) has no [services.compose] table"), timestamp)
        }
        if let reference = durableComposeReference, let old = oldImageID {
            phase = .restoreComposeRetag
            return .call(.tagImage(id: old, reference: reference))
        }
        phase = .restoreComposeApply
        guard let pin = pinReference else {
            return restoreFailed(Issue("rollback.compose_apply_failed", "the previous image was never pinned; nothing to restore to"), timestamp)
        }
        return .call(.composeApply(target, imageReference: pin))
    }

    /// A recovery that restores writes what the audit log of the interrupted attempt lacks: the
    /// end of a health check that never reached a verdict, and the start of the rollback.
    private mutating func settleRecoveryEvents(_ timestamp: String) {
        if recoveryOwesHealthVerdict == true {
            recoveryOwesHealthVerdict = nil
            let msg = "the health check was interrupted (the updater stopped) before a verdict; the release is not kept"
            attempt.healthCheck = HealthCheckRecord(kind: plan.service.health.kind, outcome: .failed, message: msg, checkedAt: timestamp)
            event(.healthCheckFailed, timestamp, msg)
        }
        if recoveryOwesRollbackStart == true {
            recoveryOwesRollbackStart = nil
            attempt.status = .rollbackStarted
            event(.rollbackStarted, timestamp, "restoring \(plan.service.name) to its previous release: the updater stopped during the update")
        }
    }

    func isOurs(_ c: ContainerInfo) -> Bool {
        if let id = newContainerID, c.id == id { return true }
        return c.labels[Self.updateLabel] == plan.updateID
    }

    /// A container of another catalog (Docker-mode) service, whatever labels it carries.
    func isForeign(_ c: ContainerInfo) -> Bool {
        guard let names = plan.foreignContainerNames, !names.isEmpty else { return false }
        return names.contains(c.name)
    }

    /// The grace for stopping the previous container: the plan's override, else its own stop
    /// timeout, else Docker's default.
    var oldStopGraceSecs: Int { plan.stopGraceSecs ?? oldStopTimeoutSecs ?? ContainerInfo.defaultStopTimeoutSecs }

    /// Removes a container this update created. A running one is stopped first with its own
    /// stop timeout: a force-remove is a SIGKILL, and the new release may be writing the
    /// service's data.
    mutating func removeOurs(_ c: ContainerInfo, stopPhase: Phase, removePhase: Phase) -> Action {
        removingID = c.id
        needsPersist = true
        // A restarting one too: it may be running again by the time the remove arrives.
        if c.isRunning || c.status == .restarting {
            phase = stopPhase
            return .call(.stopContainer(c.id, graceSecs: c.stopGraceSecs))
        }
        phase = removePhase
        return .call(.removeStoppedContainer(c.id))
    }

    mutating func ensureOldRunning(_ c: ContainerInfo, _ timestamp: String) -> Action {
        phase = .restoreStartOld
        if c.isRunning { serviceStartedAt = c.startedAt }
        if oldWasRunning && !c.isRunning && !restoreStartIssued {
            restoreStartIssued = true
            needsPersist = true
            return .call(.startContainer(c.id))
        }
        // In place and in the state we found it: clean up what this update created.
        phase = .restoreInspectLeftover
        return .call(.inspectContainer(stagingName))
    }

    mutating func restoreRetry(_ issue: Issue, _ timestamp: String) -> Action {
        restoreRound += 1
        restoreStartIssued = false
        needsPersist = true
        if restoreRound >= Self.maxRestoreRounds {
            return restoreFailed(issue, timestamp)
        }
        // Start the restore over from what the host really looks like.
        if plan.service.runtimeMode == .docker {
            phase = .restoreInspectName
        } else {
            phase = .restoreComposeApply
        }
        return .sleep(millis: Self.restoreBackoffMillis(round: restoreRound))
    }

    mutating func restoreHealthBegin(now: Int64, _ timestamp: String) -> Action {
        if !touchedLive {
            // The live service was never touched: nothing to check, nothing was changed.
            return finish(.failed, timestamp)
        }
        // Docker leaves a container stopped as found; `compose up` of the pinned image starts
        // the service, so what it started is health-checked like any restored release.
        if !oldWasRunning && plan.service.runtimeMode == .docker {
            attempt.rollbackHealthCheck = HealthCheckRecord(kind: plan.service.health.kind, outcome: .passed, message: "the previous container was not running before the update and was left stopped", checkedAt: timestamp)
            event(.rollbackSucceeded, timestamp, "previous release of \(plan.service.name) restored (stopped, as found)")
            return finish(.rolledBack, timestamp)
        }
        health = HealthTracker(policy: plan.service.health, startMillis: now)
        phase = .restoreHealthPoll
        needsPersist = true
        return restoreHealthObservation()
    }

    func restoreHealthObservation() -> Action {
        if plan.service.runtimeMode == .docker {
            return .call(.inspectContainer(oldContainerID ?? serviceContainerName))
        }
        return .call(.composeContainers(plan.service.compose!))
    }

    mutating func afterRestoreHealthPoll(_ reply: Reply, now: Int64, _ timestamp: String) -> Action {
        let observed: [ContainerInfo]
        switch read(reply, now: now, waitPhase: .restoreHealthWait) {
        case .observed(let cs): observed = cs
        case .wait(let action): return action
        case .failed(let e):
            // Still no verdict on the restored release: start the restore round over.
            return restoreRetry(Issue("rollback.health_check_failed", "the restored release could not be inspected: \(e.message)"), timestamp)
        case .unexpected: return unexpected(reply, timestamp)
        }
        var tracker = health ?? HealthTracker(policy: plan.service.health, startMillis: now)
        let verdict = tracker.observe(observed, expectedImageID: oldImageID, now: now)
        health = tracker
        return restoreVerdict(verdict, now: now, timestamp)
    }

    /// What the restored release's health verdict leads to.
    mutating func restoreVerdict(_ verdict: HealthTracker.Verdict, now: Int64, _ timestamp: String) -> Action {
        let observed = health?.lastObserved ?? []
        switch verdict {
        case .probe(let ids):
            return startProbes(ids, now: now, timestamp)
        case .pending:
            phase = .restoreHealthWait
            return .sleep(millis: Int64(plan.service.health.pollIntervalSecs) * 1000)
        case .timedOut(let msg) where health?.noVerdict == true:
            // The probes could not be run (the daemon failed): start the restore round over.
            return restoreRetry(Issue("rollback.health_check_failed", "the restored release could not be probed: \(msg)"), timestamp)
        case .passed(let msg):
            attempt.rollbackHealthCheck = HealthCheckRecord(kind: plan.service.health.kind, outcome: .passed, message: msg, checkedAt: timestamp)
            event(.rollbackSucceeded, timestamp, "previous release of \(plan.service.name) restored and healthy: \(msg)")
            return finish(.rolledBack, timestamp)
        case .failed(let msg) where (restoreRestarts ?? 0) < Self.maxRestoreRestarts
                && observed.contains(where: { $0.status == .exited || $0.status == .dead })
                && !observed.contains(where: { $0.health == .unhealthy && $0.isRunning }),
             .timedOut(let msg) where (restoreRestarts ?? 0) < Self.maxRestoreRestarts:
            // Stopped under it (a daemon restart stops it, and `--restart no` or a dockerd crash
            // keeps it down), or kept from settling (daemon restarts reset its health, inspections
            // timed out): the known-good release is started again if it is down and given a new
            // check, as the forward check rides out a daemon restart, within the restore's budget
            // (a new round, with its backoff).
            restoreRestarts = (restoreRestarts ?? 0) + 1
            needsPersist = true
            return restoreRetry(Issue("rollback.health_check_failed", "the previous release was restored but is not healthy: \(msg)"), timestamp)
        case .failed(let msg), .timedOut(let msg):
            let outcome: HealthOutcome
            if case .timedOut = verdict { outcome = .timedOut } else { outcome = .failed }
            attempt.rollbackHealthCheck = HealthCheckRecord(kind: plan.service.health.kind, outcome: outcome, message: msg, checkedAt: timestamp)
            return restoreFailed(Issue("rollback.health_check_failed", "the previous release was restored but is not healthy: \(msg)"), timestamp)
        }
    }

    mutating func restoreFailed(_ issue: Issue, _ timestamp: String) -> Action {
        if afterEvidence == nil {
            let previous = previousReleaseContainers
            if !previous.isEmpty {
                return captureEvidence(of: previous, role: .previous, then: .restoreFailed(issue), timestamp)
            }
        }
        return endRestoreFailed(issue, timestamp)
    }

    mutating func endRestoreFailed(_ issue: Issue, _ timestamp: String) -> Action {
        attempt.issues.append(issue)
        event(.rollbackFailed, timestamp, issue.message)
        return finish(.rollbackFailed, timestamp)
    }

    // MARK: Endings

    mutating func fail(_ issue: Issue, _ timestamp: String) -> Action {
        attempt.issues.append(issue)
        return finish(.failed, timestamp)
    }

    mutating func finish(_ status: UpdateStatus, _ timestamp: String) -> Action {
        attempt.status = status
        attempt.finishedAt = timestamp
        if status == .failed {
            event(.updateFailed, timestamp, attempt.issues.last?.message ?? "update failed")
        }
        phase = .done
        needsPersist = true
        return .finished
    }

    mutating func unexpected(_ reply: Reply?, _ timestamp: String, input: Input? = nil) -> Action {
        // A programming error in the driver; never leave the attempt in flight because of it.
        let what = reply.map { "\($0)" } ?? input.map { "\($0)" } ?? "?"
        let issue = Issue("update.internal_error", "unexpected \(what) in phase \(phase.rawValue)")
        if phase.rawValue.hasPrefix("restore") || !touchedLive {
            return restoreFailed(issue, timestamp)
        }
        return startRestore(issue, timestamp)
    }

    mutating func event(_ kind: AuditKind, _ at: String, _ message: String) {
        pendingEvents.append(AuditEvent(kind: kind, at: at, serviceName: plan.service.name,
                                        updateID: plan.updateID, validationAttemptID: plan.validationAttemptID,
                                        message: message))
        needsPersist = true
    }

    /// The tag that keeps the previous image reachable (and re-taggable) whatever a load does to
    /// the catalog's tag: `caisson-pin/<service>:<12 hex of image id>`.
    public static func pinReference(service: String, imageID: String) -> String {
        var out = "caisson-pin/"
        // ASCII without CR (every catalog name): one byte is one character.
        if service.utf8.allSatisfy({ $0 < 0x80 && $0 != 0x0D }) {
            var repo = [UInt8]()
            repo.reserveCapacity(service.utf8.count)
            for b in service.utf8 {
                switch b {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): repo.append(b + 0x20)
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                     UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."): repo.append(b)
                default: repo.append(UInt8(ascii: "-"))
                }
            }
            out += String(decoding: repo, as: UTF8.self)
        } else {
            out += String(service.lowercased().map { c -> Character in
                (c.isLetter && c.isASCII) || c.isNumber || c == "-" || c == "_" || c == "." ? c : "-"
            })
        }
        out += ":"
        out.appendShortID(imageID)
        return out
    }

    // Codable: everything but the transient fields.
    enum CodingKeys: String, CodingKey {
        case planBox = "plan", sharedAttempt = "attempt", phase, oldContainerID, oldContainerName, oldWasRunning, oldImageID,
             oldStopTimeoutSecs, removingID, dependents, dependentIndex, dependentsTouched, serviceStartedAt, pinReference, newContainerID, touchedLive, healthPassed, restoreRound, restoreRestarts, commitRetries, restoreStartIssued,
             newServiceState
    }
}

/// An immutable `UpdateMachine.Plan` behind a reference; encodes exactly as the plan does.
final class PlanBox: Sendable, Codable, Equatable {
    let value: UpdateMachine.Plan

    init(_ value: UpdateMachine.Plan) { self.value = value }

    init(from decoder: any Decoder) throws { value = try UpdateMachine.Plan(from: decoder) }

    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }

    static func == (lhs: PlanBox, rhs: PlanBox) -> Bool { lhs === rhs || lhs.value == rhs.value }
}
