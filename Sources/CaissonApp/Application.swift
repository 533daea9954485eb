import CaissonCore
import CaissonDocker
import CaissonSimulator
import CaissonStore
import Foundation

public enum HostKind: String, Sendable, CaseIterable {
    case docker, sim
}

public struct AppOptions: Sendable {
    public var servicesPath: String = "services.toml"
    /// `--state-dir`, else `CAISSON_STATE_DIR`, else `.caisson-state` (the Rust tool's default,
    /// relative to the working directory).
    public var stateDir: String = ".caisson-state"
    public var host: HostKind = .docker
    /// Where host-wide service locks live (`CAISSON_LOCK_DIR`; nil: `/run/caisson/locks`).
    public var lockDirectory: String?
    /// With `--host sim`: real seconds that pass for each simulated second the update waits
    /// (health checks). 0 (the default): simulated time passes at once. The console sets 1, so a
    /// person watching sees the health check's countdown as on a real device.
    public var simPace: Double = 0
    public init() {}

    /// The defaults a device sets once in its environment: `CAISSON_STATE_DIR` (an absolute
    /// path such as `/var/lib/caisson`) and `CAISSON_LOCK_DIR`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> AppOptions {
        var o = AppOptions()
        if let d = environment["CAISSON_STATE_DIR"], !d.isEmpty { o.stateDir = d }
        if let d = environment["CAISSON_LOCK_DIR"], !d.isEmpty { o.lockDirectory = d }
        return o
    }
}

/// Caisson's application logic, independent of how it is presented (CLI today, a local GUI
/// tomorrow). Every operation first recovers any attempt left in flight.
public final class Application {
    /// The version this build reports (`BuildVersion`: compiled in, or stamped into the executable).
    public static let version = BuildVersion.current

    public let options: AppOptions
    public let ids: any IDGenerator
    let systemClock = SystemClock()
    /// Progress and narration for long steps (the CLI prints it; a GUI would show it).
    public var onProgress: ((String) -> Void)?
    /// Messages the operator must see even with `--quiet` (e.g. when the medium may be removed).
    public var onNotice: ((String) -> Void)?
    /// A Rust caisson state was imported on first use of the state directory.
    public var onImport: ((RustStateImport.Report) -> Void)?
    /// A byte-progress display for a step of known size (nil: no display).
    public var makeProgress: ((ProgressPhase, Int64) -> ProgressMeter?)?
    /// Told every validation's outcome as soon as it is recorded (a front end shows the verdict
    /// while `load` goes on to its question).
    public var onValidated: ((ValidationOutcome) -> Void)?

    private var storeCache: CaissonStore?
    private var catalogCache: Catalog?
    private var hostCache: (any ContainerHost)?
    private var simHost: SimulatedHost?
    /// The state directory's lock, while this process holds it (load, rollback, cleanup).
    var heldStateLock: HeldLock?

    public init(options: AppOptions, ids: any IDGenerator = RandomIDGenerator()) {
        self.options = options
        self.ids = ids
    }

    // MARK: Parts

    public var stateDir: String { Self.absolute(options.stateDir) }

    public func store() throws -> CaissonStore {
        if let s = storeCache { return s }
        let s = try Self.openStore(stateDir)
        storeCache = s
        return s
    }

    public func catalog() throws -> Catalog {
        if let c = catalogCache { return c }
        let path = Self.absolute(options.servicesPath)
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
                throw CaissonError("catalog.read_failed", "cannot read the catalog \(options.servicesPath)\(isDir.boolValue ? ": it is a directory" : "")")
            }
            throw CaissonError("catalog.not_found", "the catalog \(options.servicesPath) does not exist (use --services PATH)")
        }
        let c = try Catalog.parse(Array(data), path: path)
        catalogCache = c
        return c
    }

    /// The clock the update machine runs on: virtual with the simulator (record timestamps
    /// still come from the system clock), real with Docker.
    public func clock() throws -> any UpdateClock {
        if options.host == .sim {
            _ = try host()
            return SimCLIClock(virtual: simHost!.clock, system: systemClock, pace: options.simPace)
        }
        // Waits (health polls) end early on a signal, so the update machine hears of it at once.
        return SignalAwareClock(base: systemClock)
    }

    public func host() throws -> any ContainerHost {
        if let h = hostCache { return h }
        switch options.host {
        case .docker:
            // Reachable before anything is changed, or exit 1 with docker.unreachable (FORMATS §5).
            do {
                let h = DockerHost(client: try DockerClient(environment: ProcessInfo.processInfo.environment))
                _ = try h.ping()
                hostCache = h
                return h
            } catch {
                throw CaissonError("docker.unreachable", "the Docker daemon cannot be reached: \(error.message)")
            }
        case .sim:
            let path = simHostPath
            let h: SimulatedHost
            if FileManager.default.fileExists(atPath: path) {
                do { h = try SimulatedHost.load(from: path, recordTrace: false) } catch {
                    throw CaissonError("sim.unreadable", "the simulated host in \(path) cannot be read: \(error)")
                }
            } else {
                h = SimulatedHost(seed: 1, recordTrace: false)
                try Self.provision(h, catalog: catalog())
                try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
                try h.save(to: path)
            }
            simHost = h
            hostCache = h
            return h
        }
    }

    var simHostPath: String { stateDir + "/sim-host.json" }

    /// First use of `--host sim`: every catalog service runs its catalog image, healthy.
    static func provision(_ h: SimulatedHost, catalog: Catalog) throws {
        for s in catalog.services {
            let ref: String
            switch s.runtimeMode {
            case .docker: ref = s.docker!.imageReference
            case .compose: ref = Self.simComposeServices(file: s.compose!.file)[s.compose!.service]?.image ?? "caisson-sim/\(s.name):current"
            }
            let id = SimulatedHost.fakeImageID(ref)
            do {
                if h.image(id) == nil {
                    _ = try h.addImage(id: id, tags: [ref], config: ImageConfig(labels: ["io.caisson.sim.health": "healthy"], hasHealthcheck: true))
                }
                switch s.runtimeMode {
                case .docker:
                    _ = try h.runContainer(name: s.docker!.containerName, imageReference: ref, restartPolicy: .unlessStopped)
                case .compose:
                    _ = try h.provisionCompose(target: s.compose!, imageReference: ref)
                    try provisionSimComposeDependents(h, of: s.compose!)
                }
            } catch {
                throw CaissonError("sim.provision_failed", "could not provision service \(s.name) on the simulated host: \(error.message)")
            }
        }
        h.clock.sleep(millis: 30_000)
    }

    /// Persist the simulated host after a command (the real Docker host persists itself).
    public func finish() {
        if let h = simHost { try? h.save(to: simHostPath) }
    }

    // MARK: Validation

    public struct ValidationOutcome: Sendable {
        public var record: ValidationRecord
        public var report: ValidationReport
    }

    /// Validates the package at `path` (reading `readPath` instead when given: the staged copy).
    public func validate(_ path: String, readPath: String? = nil, progress: ((Int64) -> Void)? = nil,
                         extraIdentities: [any AgeIdentity] = [], plaintextFeed: PlaintextFeed? = nil) throws -> ValidationOutcome {
        let catalog = try catalog()
        let identities = try ageIdentities() + extraIdentities
        let s = try store()
        let id = ids.next()
        let started = systemClock.timestamp()
        try s.appendAudit([AuditEvent(kind: .validationStarted, at: started, validationAttemptID: id, message: "validating \(path)")])
        var validator = PackageValidator(catalog: catalog, updaterVersion: Self.version)
        validator.ageIdentities = identities
        validator.plaintextFeed = plaintextFeed
        let source = readPath ?? Self.absolute(path)
        let meter = Self.regularFileSize(source).flatMap { makeProgress?(.validating, $0) }
        validator.progress = { bytes in
            progress?(bytes)
            meter?.update(bytes)
        }
        var report = validator.validate(path: source)
        meter?.finish(completed: report.status == .accepted)
        report.packagePath = path
        let f = report.image
        let record = ValidationRecord(
            validationAttemptID: id, packagePath: path, packageSize: report.packageSize, status: report.status,
            serviceName: report.manifest?.target.service, packageVersion: report.manifest?.packageVersion,
            imageReference: report.manifest?.image.reference, imageID: f?.imageID, imageLayers: f?.layers ?? [],
            imageSize: f?.totalLayerBytes, imageTarSHA256: report.scan?.imageTar?.sha256, issues: report.issues,
            startedAt: started, finishedAt: systemClock.timestamp())
        try s.recordValidation(record)
        let kind: AuditKind = report.status == .accepted ? .validationAccepted : .validationRejected
        try s.appendAudit([AuditEvent(kind: kind, at: record.finishedAt, serviceName: record.serviceName, validationAttemptID: id,
                                      message: report.status == .accepted ? "package accepted" : report.issues.map(\.description).joined(separator: "; "))])
        let outcome = ValidationOutcome(record: record, report: report)
        onValidated?(outcome)
        return outcome
    }

    // MARK: Load

    public struct LoadPlan: Sendable {
        public var service: ServiceSpec
        public var currentImage: String
        public var currentImageID: String?
        /// The grace the current container gets between SIGTERM and SIGKILL (its stop timeout).
        public var stopGraceSecs: Int?
        public var newImage: String
        public var newImageID: String
        public var currentVersion: String?
        /// Where `currentVersion` comes from: Caisson's record, or the running image's
        /// `org.opencontainers.image.version` label when Caisson has none.
        public var currentVersionSource: String?
        /// The service is stopped now and the update leaves it stopped (no `--start`).
        public var staysStopped = false
        public var newVersion: String
        public var bytesToLoad: Int64
        public var steps: [String]
        public var freeDiskState: Int64?
        /// Free space where the runtime stores images (Docker's data root), and what the load needs.
        public var imageStorage: ImageStorage?
        /// Containers (Docker) or compose services sharing the service's network namespace.
        public var networkDependents: [String] = []
    }

    public struct LoadOutcome: Sendable {
        public var validation: ValidationOutcome
        public var plan: LoadPlan?
        public var attempt: UpdateAttempt?
        /// What the failed containers left behind (issue 12), when the update did not succeed.
        public var evidence: [FailureEvidence] = []
        public var declined = false
        public var importIssue: Issue?
        /// The id Docker gave the loaded image (the Rust tool's `Image import` block shows it).
        public var importedImageID: String?
        public var refusal: Issue?
        /// The preflight refused (no room to load the image): nothing was changed.
        public var preflightIssue: Issue?
        /// A signal (Ctrl-C, SIGTERM) stopped the load before the update began: the service was
        /// not changed (exit 3, like a declined prompt).
        public var cancelled: Issue?

        public var exitCode: Int32 {
            if cancelled != nil { return 3 }
            if let a = attempt, a.status == .failed, a.issues.contains(where: { $0.code == "update.cancelled" }) { return 3 }
            if validation.report.status == .rejected || refusal != nil { return 2 }
            if preflightIssue != nil { return 1 }
            if declined { return 3 }
            if importIssue != nil { return 4 }
            return attempt?.status.exitCode ?? 0
        }
    }

    public struct LoadFlags: Sendable {
        public var dryRun = false
        public var reinstall = false
        public var allowDowngrade = false
        /// Start the service after the update even if it is stopped now.
        public var start = false
        public var staging: StagingMode = .auto
        /// Send the image to a host that streams archives while validation runs, holding the end
        /// of the upload until the update goes ahead (see `PipelinedUpload`).
        public var overlapUpload = true
        /// Recreate the containers sharing the service's network namespace (else refuse).
        public var recreateDependents = false
        public init() {}
    }

    /// When `package load` copies the package into the state directory first.
    public enum StagingMode: String, Sendable, CaseIterable {
        /// When the package lives on another filesystem than the state directory (a USB stick, a
        /// mount): it can go away mid-update. On the state directory's own filesystem it cannot,
        /// and a copy would only cost time and space.
        case auto
        /// Always copy.
        case always
        /// Never copy: load straight from where the package is (the medium must stay in).
        case never
    }

    /// Whether `load` copies `path` first under `mode`.
    public func shouldStage(_ path: String, mode: StagingMode) -> Bool {
        switch mode {
        case .always: return true
        case .never: return false
        case .auto:
            guard let package = FileIdentity.device(of: Self.absolute(path)) else { return true }
            guard let state = FileIdentity.device(of: stateDir) else { return true }
            return package != state
        }
    }

    /// Validate, plan, confirm, import, update. `confirm` sees the plan and says yes or no.
    public func load(_ path: String, flags: LoadFlags = LoadFlags(), confirm: (LoadPlan) -> Bool,
                     progress: ((Int64) -> Void)? = nil) throws -> LoadOutcome {
        let lock = try acquireStateLock("package load \(path)")
        defer { lock.release() }
        // An updater package is not loaded (package.updater_package, exit 2), Docker or not.
        if UpdaterPackageValidator.packageType(path: Self.absolute(path)) == UpdaterManifest.packageType {
            return LoadOutcome(validation: try recordRejection(path, issue: Issue(
                "package.updater_package", "\(path) is an updater package for Caisson itself, not a service package; install it with `caisson self-update \(path)`")))
        }
        // The host must answer before anything is done (docker.unreachable, exit 1).
        _ = try host()
        try recoverIfNeeded()
        // Copy the package off a removable medium once; everything after reads the copy.
        var staged: StagedCopy?
        switch shouldStage(path, mode: flags.staging) ? try stage(path) : nil {
        case nil: break
        case .failed(let issue)?:
            var stopped = LoadOutcome(validation: try recordRejection(path, issue: issue))
            if issue.code == "update.cancelled" { stopped.cancelled = issue }
            return stopped
        case .copied(let copy)?:
            staged = copy
            onNotice?("The package has been copied; you may remove the medium.")
        }
        // The copy goes once the attempt is over; a crash leaves it recorded for `package cleanup`.
        defer { if let staged { discardStaged(staged) } }
        // What validation reads must be what the host loads: the file's identity is taken before
        // validation, checked after it, and checked again by the host before its upload ends.
        let readPath = staged?.path ?? Self.absolute(path)
        let identity = FileIdentity(path: readPath)
        let pipelined = startPipelinedUpload(readPath: readPath, identity: identity, flags: flags)
        // Every way out before the release drops the upload before its end: nothing is loaded.
        defer { pipelined?.abandon("the update did not go ahead") }
        // A signal vetoes the upload at once, whatever the main thread is doing.
        if let pipelined { SignalWatch.shared.onSignal { pipelined.stop("stopped by the operator") } }
        defer { SignalWatch.shared.clearHooks() }
        debugPause("validate")
        var validation = try validate(path, readPath: staged?.path, progress: progress, plaintextFeed: pipelined?.payload.plaintextFeed)
        // A package whose validation never decrypted image.tar.age to its end: the feed ends failed.
        pipelined?.payload.plaintextFeed?.close(complete: false, reason: "validation did not decrypt the image to its end")
        if validation.report.status == .accepted, identity == nil || FileIdentity(path: readPath) != identity {
            validation = try recordRejection(path, issue: Issue(
                "package.changed", "\(path) was modified or replaced while it was validated; nothing was changed"))
        }
        var outcome = LoadOutcome(validation: validation)
        if let stop = stopRequested("the package was validated; the update did not begin") {
            outcome.cancelled = stop
            return outcome
        }
        guard validation.report.status == .accepted, let manifest = validation.report.manifest,
              let service = validation.report.service, var payload = validation.report.imagePayload else {
            return outcome
        }
        payload.path = readPath
        payload.identity = identity
        payload.sha256 = validation.report.scan?.imageTar?.sha256
        let s = try store()
        let state = try s.serviceState(service.name)
        // Anti-downgrade and freshness, without a clock.
        if let refusal = try versionVerdict(&outcome.validation, flags: flags) {
            outcome.refusal = refusal
            return outcome
        }
        let host = try host()
        // One update of this service at a time on the host, whatever the state directory.
        let serviceLock = try guardService(service, operation: "package load \(path)")
        defer { serviceLock.release() }
        // What can be seen to fail before anything changes (no image loaded yet, no downtime):
        // among it the references the package may set (issue 10 item 8), the upload still held.
        let foresight = foresee(service: service, image: payload.config, reference: payload.reference, flags: flags, host: host)
        if let refusal = foresight.refusal {
            try reject(&outcome.validation, refusal)
            outcome.refusal = refusal
            return outcome
        }
        if let p = foresight.preflight {
            outcome.preflightIssue = p
            return outcome
        }
        let composeImage = try composeImageReference(of: service)
        var plan = try makePlan(service: service, manifest: manifest, payload: payload, state: state, host: host, start: flags.start)
        let dependents = try networkDependents(of: service, host: host)
        let dependentsRefusal = Self.dependentsPlan(&plan, dependents: dependents, recreate: flags.recreateDependents)
        outcome.plan = plan
        if let dependentsRefusal {
            outcome.preflightIssue = dependentsRefusal
            return outcome
        }
        if let st = plan.imageStorage, !st.isEnough {
            // Preflight: refuse before anything changes.
            outcome.preflightIssue = Issue("docker.insufficient_space", "not enough free space in \(st.path) to load the image: \(Format.bytes(st.freeBytes)) free, about \(Format.bytes(st.neededBytes)) needed")
            return outcome
        }
        // A thin package (issue 16): the layers it leaves out must be here, before anything changes.
        if let thin = manifest.thin, let issue = try baseMissingIssue(thin, host: host) {
            return try refuse(outcome, issue, service: service.name, validationID: validation.record.validationAttemptID)
        }
        if flags.dryRun { return outcome }
        guard confirm(plan) else {
            outcome.declined = true
            return outcome
        }
        if let stop = stopRequested("the update did not begin") {
            outcome.cancelled = stop
            return outcome
        }
        if flags.allowDowngrade, let st = state, let hv = st.highestPackageVersion,
           let a = SemVer(manifest.packageVersion), let b = SemVer(hv), a < b {
            try s.appendAudit([AuditEvent(kind: .downgradeAllowed, at: systemClock.timestamp(), serviceName: service.name,
                                          message: "operator allowed a downgrade from \(hv) to \(manifest.packageVersion)")])
        }
        // The prompt may have waited a long time: the package must still be what was validated
        // (the host checks again while it loads).
        if let identity = payload.identity, FileIdentity(path: payload.path) != identity {
            let issue = Issue("package.changed", "\(path) was modified or replaced after it was validated; nothing was changed")
            outcome.refusal = issue
            try s.appendAudit([AuditEvent(kind: .validationRejected, at: systemClock.timestamp(), serviceName: service.name,
                                          validationAttemptID: validation.record.validationAttemptID, message: issue.description)])
            return outcome
        }
        // And still here after the prompt (a base removed meanwhile is refused, not half-loaded).
        if let thin = manifest.thin, let issue = try baseMissingIssue(thin, host: host) {
            return try refuse(outcome, issue, service: service.name, validationID: validation.record.validationAttemptID)
        }
        // Import (from the staged copy, recorded so that a crash from here on leaves it findable).
        if let staged {
            try s.recordStagedPackage(StagedPackage(packageID: staged.packageID, path: staged.path, originalPath: Self.absolute(path),
                                                    size: staged.size, sha256: staged.sha256, serviceName: service.name,
                                                    validationAttemptID: validation.record.validationAttemptID,
                                                    stagedAt: systemClock.timestamp()))
        }
        debugPause("load")
        if let stop = stopRequested("the image was not loaded") {
            outcome.cancelled = stop
            return outcome
        }
        // Room for the journal before anything changes (`store.disk_full` otherwise).
        try s.reserveSpace()
        let importID = ids.next()
        // Known before the import, so that whatever stops it (a signal, a kill, a power cut), an
        // image Docker finishes loading anyway is recorded for `package cleanup`.
        let releaseID = ids.next()
        let facts = validation.report.image
        try s.recordCandidateRelease(CandidateRelease(
            candidateReleaseID: releaseID, serviceName: service.name, packageVersion: manifest.packageVersion,
            imageReference: payload.reference, imageID: payload.expectedImageID, repoTags: [payload.reference], repoDigests: [],
            architecture: facts?.architecture ?? "", os: facts?.os ?? "", validationAttemptID: validation.record.validationAttemptID,
            packageCreatedAt: Timestamps.normalize(manifest.createdAt), createdAt: systemClock.timestamp()))
        let importStarted = systemClock.timestamp()
        try s.appendAudit([AuditEvent(kind: .imageImportStarted, at: importStarted, serviceName: service.name,
                                      validationAttemptID: validation.record.validationAttemptID, message: "loading \(payload.reference) (\(payload.length) bytes)")])
        onProgress?("Loading image \(payload.reference) (\(Format.bytes(payload.length)))…")
        let info: ImageInfo
        let meter = makeProgress?(.loading, payload.length)
        defer { meter?.finish(completed: false) }
        do {
            if let pipelined, pipelined.payload.offset == payload.offset, pipelined.payload.encryption == payload.encryption, pipelined.payload.length == payload.length,
               pipelined.payload.reference == payload.reference {
                // Most of the archive went out during validation; let it end.
                info = try pipelined.release(progress: { bytes in
                    progress?(bytes)
                    meter?.update(bytes)
                }).get()
            } else {
                pipelined?.abandon("validation located the image elsewhere in the package")
                info = try host.loadImage(payload, progress: { bytes in
                    progress?(bytes)
                    meter?.update(bytes)
                })
            }
            meter?.finish()
            guard info.id == payload.expectedImageID else {
                throw HostError(.failed, "the loaded image is \(info.id), not \(payload.expectedImageID) as validated")
            }
            if let mismatch = Self.layerMismatch(info, payload: payload) { throw HostError(.failed, mismatch) }
        } catch {
            let issue = Issue("docker.load_failed", "could not load the image: \(error.message)")
            outcome.importIssue = issue
            try s.recordImport(ImageImportRecord(importID: importID, validationAttemptID: validation.record.validationAttemptID,
                                                 serviceName: service.name, imageReference: payload.reference, imageID: nil,
                                                 status: "failed", issues: [issue], startedAt: importStarted, finishedAt: systemClock.timestamp()))
            try s.appendAudit([AuditEvent(kind: .imageImportFailed, at: systemClock.timestamp(), serviceName: service.name,
                                          validationAttemptID: validation.record.validationAttemptID, message: issue.message)])
            finish()
            return outcome
        }
        outcome.importedImageID = info.id
        try s.recordImport(ImageImportRecord(importID: importID, validationAttemptID: validation.record.validationAttemptID,
                                             serviceName: service.name, imageReference: payload.reference, imageID: info.id,
                                             status: "succeeded", issues: [], startedAt: importStarted, finishedAt: systemClock.timestamp()))
        try s.appendAudit([AuditEvent(kind: .imageImportSucceeded, at: systemClock.timestamp(), serviceName: service.name,
                                      validationAttemptID: validation.record.validationAttemptID, message: "loaded \(payload.reference) as \(info.id)")])
        if let stop = stopRequested("the image was loaded and is recorded for `caisson package cleanup`; the service was not changed") {
            outcome.cancelled = stop
            return outcome
        }
        let release = CandidateRelease(candidateReleaseID: releaseID, serviceName: service.name, packageVersion: manifest.packageVersion,
                                       imageReference: payload.reference, imageID: info.id, repoTags: info.repoTags,
                                       repoDigests: info.repoDigests, architecture: info.config.architecture, os: info.config.os,
                                       validationAttemptID: validation.record.validationAttemptID,
                                       packageCreatedAt: Timestamps.normalize(manifest.createdAt), createdAt: systemClock.timestamp())
        var machinePlan = UpdateMachine.Plan(updateID: ids.next(), candidateReleaseID: release.candidateReleaseID,
                                             validationAttemptID: validation.record.validationAttemptID, service: service,
                                             targetImageReference: payload.reference, targetImageID: info.id,
                                             packageVersion: manifest.packageVersion,
                                             packageCreatedAt: Timestamps.normalize(manifest.createdAt), previousState: state,
                                             startStopped: flags.start)
        machinePlan.foreignContainerNames = try foreignContainerNames(of: service)
        machinePlan.composeImageReference = composeImage
        machinePlan.recreateNetworkDependents = flags.recreateDependents
        if service.runtimeMode == .compose { machinePlan.composeNetworkDependents = dependents }
        outcome.attempt = try runMachine(machinePlan, release: release)
        if let a = outcome.attempt, a.status != .succeeded {
            outcome.evidence = (try? store().failureEvidence(updateID: a.updateID).records) ?? []
        }
        return outcome
    }

    static func versionRefusal(manifest: Manifest, state: ServiceState?, flags: LoadFlags) -> Issue? {
        guard let state, !flags.allowDowngrade else { return nil }
        if let hv = state.highestPackageVersion, let have = SemVer(hv), let new = SemVer(manifest.packageVersion) {
            if new < have {
                return Issue("package.downgrade_refused", "package version \(manifest.packageVersion) is older than \(hv), already installed on \(state.serviceName) (use --allow-downgrade to go back on purpose)")
            }
            if new.samePrecedence(as: have) && !flags.reinstall {
                return Issue("package.already_applied", "package version \(manifest.packageVersion) is already installed on \(state.serviceName) (use --reinstall to apply it again)")
            }
        }
        if let newest = state.newestCreatedAt, let n = Timestamps.parse(newest), let c = Timestamps.parse(manifest.createdAt), c < n {
            return Issue("package.stale", "package created_at \(manifest.createdAt) is older than the newest package already accepted for \(state.serviceName) (\(newest))")
        }
        return nil
    }

    func makePlan(service: ServiceSpec, manifest: Manifest, payload: ImagePayload, state: ServiceState?,
                  host: any ContainerHost, start: Bool = false) throws -> LoadPlan {
        var current = "unknown"
        var currentID: String?
        var currentReference: String?
        var stopGrace: Int?
        var running = true
        var steps: [String] = []
        let health = "health check (\(service.health.summary))"
        switch service.runtimeMode {
        case .docker:
            let name = service.docker!.containerName
            var stop = "stop \(name)"
            if let c = try? host.inspectContainer(name) {
                currentReference = state?.activeImageID == c.imageID ? (state?.activeImageReference ?? c.imageReference) : c.imageReference
                currentID = c.imageID
                current = displayImage(currentReference, id: c.imageID, service: service.name, withID: true)
                running = c.isRunning
                stopGrace = c.stopGraceSecs
                stop += c.stopTimeoutSecs == nil
                    ? " (up to \(c.stopGraceSecs)s after SIGTERM: Docker's default stop timeout)"
                    : " (up to \(c.stopGraceSecs)s after SIGTERM: its own stop timeout)"
            } else {
                current = "no container named \(name)"
            }
            steps = ["load image \(payload.reference) (\(Format.bytes(payload.length)))",
                     "create the new container beside the running one (\(name)-caisson-new-…)",
                     "\(stop) and keep it as \(name)-caisson-rollback-…"]
            if running || start {
                steps += ["start the new container as \(name)\(running ? "" : " (--start: the service is stopped now)")", health,
                          service.automaticRollback ? "if it fails: restore the previous container automatically" : "if it fails: keep the new container (automatic rollback is off)"]
            } else {
                steps += ["put the new container in place as \(name), NOT started: the service is stopped now and stays stopped (use --start to start it and health-check it)",
                          "remove the previous container"]
            }
        case .compose:
            let t = service.compose!
            if let cs = try? host.composeContainers(t), let c = cs.first {
                currentReference = state?.activeImageID == c.imageID ? (state?.activeImageReference ?? c.imageReference) : c.imageReference
                currentID = c.imageID
                current = displayImage(currentReference, id: c.imageID, service: service.name, withID: true)
                running = cs.contains { $0.isRunning }
                stopGrace = c.stopGraceSecs
            }
            steps = ["load image \(payload.reference) (\(Format.bytes(payload.length)))",
                     "pin the current image so a rollback can always find it",
                     "docker compose -p \(t.project) up -d --no-deps \(t.service) with the new image"
                        + (stopGrace.map { " (Compose stops the old container with up to \($0)s after SIGTERM: its stop timeout)" } ?? "")
                        + (running ? "" : " (--start: the service is stopped now)"),
                     health,
                     service.automaticRollback ? "if it fails: re-apply the previous image automatically" : "if it fails: keep the new release (automatic rollback is off)"]
        }
        // The version in place: Caisson's record, else what the running image says it is.
        var version = state?.highestPackageVersion
        var source: String? = version == nil ? nil : "recorded by Caisson"
        if version == nil, let id = currentID, let label = (try? host.inspectImage(id))??.config.labels["org.opencontainers.image.version"],
           !label.isEmpty {
            version = label
            source = "label org.opencontainers.image.version of the running image"
        }
        var plan = LoadPlan(service: service, currentImage: current, currentImageID: currentID, stopGraceSecs: stopGrace,
                            newImage: payload.reference, newImageID: payload.expectedImageID, currentVersion: version,
                            newVersion: manifest.packageVersion, bytesToLoad: payload.length, steps: steps,
                            freeDiskState: Self.freeBytes(stateDir), imageStorage: host.imageStorage(forArchiveBytes: payload.unpackedBytes))
        plan.currentVersionSource = source
        plan.staysStopped = !running && !start
        return plan
    }

    /// The container names of the catalog's other Docker-mode services (never members of a
    /// Compose service, whatever labels they carry).
    func foreignContainerNames(of service: ServiceSpec) throws -> [String] {
        try catalog().services.filter { $0.name != service.name }.compactMap { $0.docker?.containerName }.sorted()
    }

    /// Compose: the `image:` the service's compose file names (the reference an update moves).
    func composeImageReference(of service: ServiceSpec) throws -> String? {
        guard service.runtimeMode == .compose, let target = service.compose else { return nil }
        do {
            return try host().composeServiceFacts(target).image
        } catch let error as HostError {
            throw CaissonError("compose.image_lookup_failed", "could not read the compose model of \(service.name): \(error.message); nothing was changed")
        }
    }

    func runMachine(_ plan: UpdateMachine.Plan, release: CandidateRelease?) throws -> UpdateAttempt {
        let clock = FirstSleepHook(inner: try clock(), hook: { [weak self] in self?.debugPause("health") })
        var machine = UpdateMachine(plan: plan, startedAt: clock.timestamp())
        let driver = UpdateDriver(host: try host(), journal: try store(), clock: clock)
        let watch = SignalWatch.shared
        let before = watch.phase
        watch.phase = .updating
        defer { watch.phase = before }
        driver.isCancelRequested = { watch.requested }
        driver.onCancel = { [weak self] effect in
            self?.debugPause("cancelled")
            switch effect {
            case .stoppedUntouched: self?.onNotice?("stopped before the service was changed; nothing was changed")
            case .restoring: break  // said when the signal arrived
            case .finishing: self?.onNotice?("the update had already passed its health check (or is restoring): finishing it")
            }
        }
        driver.candidateRelease = release
        driver.onStep = { [weak self] step in self?.onProgress?("  \(self?.operatorText(step) ?? step)") }
        defer { finish() }
        return try driver.run(&machine)
    }

    // MARK: Rollback

    public func rollback(service name: String, recreateDependents: Bool = false, confirm: (String) -> Bool) throws -> UpdateAttempt? {
        let lock = try acquireStateLock("rollback \(name)")
        defer { lock.release() }
        try recoverIfNeeded()
        let catalog = try catalog()
        guard let service = catalog.service(named: name) else {
            throw CaissonError("service.unknown", "service \(name) is not in the catalog")
        }
        let serviceLock = try guardService(service, operation: "rollback \(name)")
        defer { serviceLock.release() }
        let s = try store()
        guard let state = try s.serviceState(name), let prevID = state.previousKnownGoodImageID else {
            throw CaissonError("rollback.no_previous_release", "service \(name) has no previous known-good release to return to")
        }
        let host = try host()
        let pin = UpdateMachine.pinReference(service: name, imageID: prevID)
        guard try host.inspectImage(pin) != nil || host.inspectImage(prevID) != nil else {
            throw CaissonError("rollback.image_missing", "the previous image \(prevID) of \(name) is no longer on this host")
        }
        let from = displayImage(state.activeImageReference, id: state.activeImageID, service: name, withID: true)
        let to = displayImage(state.previousKnownGoodImageReference, id: prevID, service: name, withID: true)
        guard confirm("Roll \(name) back from \(from) to \(to)?") else {
            return nil
        }
        // The name the restored release is known by, when it still names that image (what the new
        // container shows); else the pin, which always does (never shown to the operator).
        var reference = pin
        if let r = state.previousKnownGoodImageReference, !r.hasPrefix("caisson-pin/"), (try? host.inspectImage(r))??.id == prevID {
            reference = r
        } else if try host.inspectImage(pin) == nil {
            reference = prevID
        }
        let restored = try state.previousKnownGoodCandidateReleaseID.flatMap { try store().candidateRelease($0) }
        var plan = UpdateMachine.Plan(updateID: ids.next(), candidateReleaseID: state.previousKnownGoodCandidateReleaseID ?? "unknown",
                                      validationAttemptID: nil, service: service,
                                      targetImageReference: reference, targetImageID: prevID,
                                      packageVersion: restored?.packageVersion, packageCreatedAt: restored?.packageCreatedAt,
                                      kind: "rollback", previousState: state)
        plan.foreignContainerNames = try foreignContainerNames(of: service)
        plan.composeImageReference = try composeImageReference(of: service)
        plan.recreateNetworkDependents = recreateDependents
        if service.runtimeMode == .compose { plan.composeNetworkDependents = try networkDependents(of: service, host: host) }
        // A backup kept by an update whose health check failed with automatic rollback off: the
        // rollback replaces what runs, so that backup is no longer anyone's way back.
        let kept = try keptBackup(service: name)
        let attempt = try runMachine(plan, release: nil)
        if attempt.status == .succeeded, let kept, kept != attempt.rollbackContainerName {
            do {
                try host.removeContainer(kept)
                finish()
            } catch {
                onNotice?("The backup container \(kept) kept by an earlier failed update could not be removed (\(error.message)); `caisson package cleanup` will retry.")
            }
        }
        return attempt
    }

    /// The backup container the newest attempt of `service` kept because its health check failed
    /// with automatic rollback off (`rollback.disabled`), if that is still the service's state.
    func keptBackup(service: String) throws -> String? {
        let s = try store()
        guard let a = try s.updateAttempts(service: service, limit: 1).records.first, a.status == .failed,
              a.issues.contains(where: { $0.code == "rollback.disabled" }), a.runtimeMode == .docker else { return nil }
        return a.rollbackContainerName
    }

    // MARK: Queries

    /// A catalog service with what Caisson knows of it (`service list/show`, their `--json`).
    public struct ServiceView: Sendable, Encodable {
        public struct Target: Sendable, Encodable {
            /// `container` (Docker mode) or `compose`.
            public var kind: String
            public var containerName: String?
            public var imageReference: String?
            public var project: String?
            public var file: String?
            public var service: String?

            enum CodingKeys: String, CodingKey {
                case kind, project, file, service
                case containerName = "container_name"
                case imageReference = "image_reference"
            }
        }

        public struct HealthCheck: Sendable, Encodable {
            public var kind: String
            public var timeoutSecs: Int
            public var pollIntervalSecs: Int
            public var stableSecs: Int
            /// Probe kinds only (issue 12): what is probed and one probe's deadline.
            public var port: Int?
            public var path: String?
            public var expectStatus: [Int]?
            public var command: [String]?
            public var probeTimeoutSecs: Int?
            /// One line: the kind, what it probes, and its timings.
            public var summary: String

            public init(_ h: HealthPolicy) {
                kind = h.kind.rawValue
                timeoutSecs = h.timeoutSecs
                pollIntervalSecs = h.pollIntervalSecs
                stableSecs = h.stableSecs
                summary = h.summary
                switch h.kind {
                case .http: port = h.port; path = h.path; expectStatus = h.expectStatus
                case .tcp: port = h.port
                case .exec: command = h.command
                case .running, .containerHealth: break
                }
                if h.kind.isProbe { probeTimeoutSecs = h.probeTimeoutSecs }
            }

            enum CodingKeys: String, CodingKey {
                case kind, port, path, command, summary
                case timeoutSecs = "timeout_secs"
                case pollIntervalSecs = "poll_interval_secs"
                case stableSecs = "stable_secs"
                case expectStatus = "expect_status"
                case probeTimeoutSecs = "probe_timeout_secs"
            }
        }

        public var name: String
        public var runtimeMode: String
        public var serviceRevision: String
        public var platform: String
        public var target: Target
        public var healthCheck: HealthCheck
        public var automaticRollback: Bool
        public var state: ServiceState?
        /// The newest update attempt of the service (any kind), if any.
        public var lastUpdate: UpdateAttempt?
        /// What runs now, and how it differs from `state` (nil when not asked for).
        public var live: LiveState?

        enum CodingKeys: String, CodingKey {
            case name
            case runtimeMode = "runtime_mode"
            case serviceRevision = "service_revision"
            case platform, target
            case healthCheck = "health_check"
            case automaticRollback = "automatic_rollback"
            case state, live
            case lastUpdate = "last_update"
        }
    }

    /// The catalog's services with their recorded state and (when `live`) what runs now.
    public func services(live: Bool = true) throws -> [ServiceView] {
        let catalog = try catalog()
        let s = try store()
        return try catalog.services.map { svc in
            let target: ServiceView.Target
            switch svc.runtimeMode {
            case .docker:
                target = ServiceView.Target(kind: "container", containerName: svc.docker!.containerName,
                                            imageReference: svc.docker!.imageReference)
            case .compose:
                target = ServiceView.Target(kind: "compose", project: svc.compose!.project, file: svc.compose!.file,
                                            service: svc.compose!.service)
            }
            let state = try s.serviceState(svc.name)
            let h = svc.health
            return ServiceView(name: svc.name, runtimeMode: svc.runtimeMode.rawValue, serviceRevision: svc.serviceRevision,
                               platform: svc.platform, target: target,
                               healthCheck: ServiceView.HealthCheck(h),
                               automaticRollback: svc.automaticRollback,
                               state: state,
                               lastUpdate: try s.updateAttempts(service: svc.name, limit: 1).records.first,
                               live: live ? liveState(of: svc, state: state) : nil)
        }
    }

    /// How an operator reads an image: `REFERENCE (short id)`, where REFERENCE is never one of
    /// Caisson's internal pin tags (`caisson-pin/...`) nor a bare id when a better name is known
    /// (the release recorded for that image, or the service state's name for it).
    /// With `withID` false, a reference that names the image plainly is shown alone (the Rust
    /// tool's lines show the bare reference); a pin or an id always comes as `NAME (short id)`.
    public func displayImage(_ reference: String?, id: String?, service: String, withID: Bool = false) -> String {
        if !withID, let r = reference, !r.hasPrefix("caisson-pin/"), !r.hasPrefix("sha256:") { return r }
        var name = reference
        if name == nil || name!.hasPrefix("caisson-pin/") || name!.hasPrefix("sha256:") {
            name = nil
            if let id, let s = try? store() {
                if let st = try? s.serviceState(service) {
                    if st.activeImageID == id, let r = st.activeImageReference, !r.hasPrefix("caisson-pin/"), !r.hasPrefix("sha256:") { name = r }
                    if name == nil, st.previousKnownGoodImageID == id, let r = st.previousKnownGoodImageReference,
                       !r.hasPrefix("caisson-pin/"), !r.hasPrefix("sha256:") { name = r }
                }
                if name == nil, let r = (try? s.candidateReleases(service: service))?.records.first(where: { $0.imageID == id }) {
                    name = r.imageReference
                }
            }
        }
        guard let id else { return name ?? "unknown" }
        return "\(name ?? "image") (\(Format.shortID(id)))"
    }

    // MARK: Helpers

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return Paths.normalize(path) }
        return Paths.normalize(FileManager.default.currentDirectoryPath + "/" + path)
    }

    static func freeBytes(_ path: String) -> Int64? {
        var dir = path
        while !FileManager.default.fileExists(atPath: dir), dir != "/" { dir = Paths.directory(of: dir) }
        guard let attrs = try? FileManager.default.attributesOfFileSystem(forPath: dir),
              let free = attrs[.systemFreeSize] as? NSNumber else { return nil }
        return free.int64Value
    }
}

/// `--host sim` from the CLI: the machine waits on virtual time (health transitions), while
/// records carry real timestamps.
final class SimCLIClock: UpdateClock {
    let virtual: VirtualClock
    let system: SystemClock
    /// Real seconds per simulated second of waiting (0: none).
    let pace: Double
    init(virtual: VirtualClock, system: SystemClock, pace: Double = 0) {
        self.virtual = virtual
        self.system = system
        self.pace = pace
    }
    var nowMillis: Int64 { virtual.nowMillis }
    func timestamp() -> String { system.timestamp() }
    func sleep(millis: Int64) {
        if pace > 0, millis > 0 {
            // At most a minute of real time per wait, in short naps (a signal is heard between them).
            var left = min(Double(millis) * pace, 60_000)
            while left > 0 {
                let nap = min(left, 100)
                usleep(useconds_t(nap * 1000))
                left -= nap
            }
        }
        virtual.sleep(millis: millis)
    }
}

public enum Format {
    public static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
    }

    public static func shortID(_ id: String?) -> String {
        guard let id else { return "-" }
        let hex = id.hasPrefix("sha256:") ? String(id.dropFirst(7)) : id
        return String(hex.prefix(12))
    }
}

extension Error {
    /// The sentence to show an operator.
    var message: String {
        if let e = self as? HostError { return e.message }
        if let e = self as? CaissonError { return e.message }
        return "\(self)"
    }
}
