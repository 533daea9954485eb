import CaissonCore
import CaissonStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `caisson self-update` (issue 14): Caisson replaces its own executable from a signed updater
/// package, test-runs the new one before the swap, keeps the previous one beside it, and can
/// always go back. The flow is `SelfUpdateMachine` (Core), journaled in the store.
extension Application {
    public struct SelfUpdateFlags: Sendable {
        /// The executable to replace (default: the running one, through /proc/self/exe).
        public var installPath: String?
        public var allowDowngrade = false
        public var reinstall = false
        public var dryRun = false
        /// The deadline of each test-run step and of the first run (default 60 s; --version 10 s).
        public var testTimeoutSecs: Int?
        public init() {}
    }

    /// What the prompt shows.
    public struct SelfUpdatePlanView: Sendable, Encodable {
        public var installPath: String
        public var installedVersion: String
        public var installedSHA256: String
        public var newVersion: String
        public var newSHA256: String
        public var newSize: Int64
        public var platform: String
        public var executable: String
        public var signedBy: String?
        public var previousPath: String
        public var storeSchemaVersion: Int
        public var freeBytes: Int64?
        public var steps: [String]

        enum CodingKeys: String, CodingKey {
            case installPath = "install_path"
            case installedVersion = "installed_version"
            case installedSHA256 = "installed_sha256"
            case newVersion = "new_version"
            case newSHA256 = "new_sha256"
            case newSize = "new_size"
            case platform, executable
            case signedBy = "signed_by"
            case previousPath = "previous_path"
            case storeSchemaVersion = "store_schema_version"
            case freeBytes = "free_bytes"
            case steps
        }
    }

    public struct SelfUpdateOutcome: Sendable {
        public var validation: UpdaterValidationReport?
        public var validationRecord: ValidationRecord?
        public var plan: SelfUpdatePlanView?
        public var record: SelfUpdateRecord?
        public var declined = false
        /// Refused before anything was planned (an update in flight…): exit 1.
        public var refusal: Issue?

        public var exitCode: Int32 {
            if refusal != nil { return 1 }
            if let v = validation, v.status == .rejected { return 2 }
            if declined { return 3 }
            switch record?.status {
            case nil, .succeeded?: return 0
            case .rollbackFailed?: return 5
            default: return 4
            }
        }
    }

    public static var rollbackPointPath: (String) -> String { LocalSelfUpdateSystem.rollbackPointPath(stateDirectory:) }

    // MARK: Validation

    /// The installed executable's path: `given` or the running executable, symlinks resolved.
    public func resolveInstallPath(_ given: String?) throws -> String {
        let raw = given.map(Self.absolute) ?? "/proc/self/exe"
        guard let resolved = realpath(raw, nil) else {
            throw CaissonError("self_update.install_path_invalid", "the install path \(given ?? raw) cannot be resolved: \(ByteSourceError.describe(errno: errno))")
        }
        defer { free(resolved) }
        let path = String(cString: resolved)
        guard Self.regularFileSize(path) != nil else {
            throw CaissonError("self_update.install_path_invalid", "the install path \(path) is not a regular file")
        }
        return path
    }

    /// The version of the executable at `path`: this one's when it is the running executable,
    /// else what it answers to `--version` (nil when it does not answer).
    func installedVersion(at path: String) -> String? {
        if let me = try? resolveInstallPath(nil), me == path { return Self.version }
        let r = DeadlineProcess.run(path, ["--version"], environment: ProcessInfo.processInfo.environment, timeoutMillis: 10_000)
        guard case .exited(0) = r.outcome, let line = r.stdout.split(separator: "\n").first, line.hasPrefix("caisson ") else { return nil }
        let v = String(line.dropFirst("caisson ".count))
        return SemVer(v) != nil ? v : nil
    }

    /// Validates an updater package and records the validation (like `validate` for services).
    public func validateUpdater(_ path: String, installedVersion: String? = nil, allowDowngrade: Bool = false,
                                reinstall: Bool = false) throws -> (UpdaterValidationReport, ValidationRecord) {
        let trust = try catalog().trust
        let s = try store()
        let id = ids.next()
        let started = systemClock.timestamp()
        try s.appendAudit([AuditEvent(kind: .validationStarted, at: started, validationAttemptID: id, message: "validating updater package \(path)")])
        var validator = UpdaterPackageValidator(trust: trust, runningVersion: Self.version, installedVersion: installedVersion,
                                                hostPlatform: Self.hostPlatform())
        validator.allowDowngrade = allowDowngrade
        validator.reinstall = reinstall
        let source = Self.absolute(path)
        let meter = Self.regularFileSize(source).flatMap { makeProgress?(.validating, $0) }
        validator.progress = { meter?.update($0) }
        var report = validator.validate(path: source)
        meter?.finish(completed: report.status == .accepted)
        report.packagePath = path
        let record = ValidationRecord(
            validationAttemptID: id, packagePath: path, packageSize: report.packageSize, status: report.status,
            serviceName: nil, packageVersion: report.manifest?.packageVersion, imageReference: nil, imageID: nil,
            imageLayers: [], imageSize: nil, imageTarSHA256: nil, issues: report.issues, startedAt: started,
            finishedAt: systemClock.timestamp())
        try s.recordValidation(record)
        try s.appendAudit([AuditEvent(kind: report.status == .accepted ? .validationAccepted : .validationRejected,
                                      at: record.finishedAt, validationAttemptID: id,
                                      message: report.status == .accepted
                                        ? "updater package accepted: Caisson \(report.manifest?.packageVersion ?? "?")"
                                        : report.issues.map(\.description).joined(separator: "; "))])
        return (report, record)
    }

    // MARK: Self-update

    public func selfUpdate(_ path: String, flags: SelfUpdateFlags = SelfUpdateFlags(),
                           confirm: (SelfUpdatePlanView) -> Bool) throws -> SelfUpdateOutcome {
        let lock = try acquireStateLock("self-update \(path)")
        defer { lock.release() }
        try recoverIfNeeded()
        let s = try store()
        var outcome = SelfUpdateOutcome()
        if let busy = try s.inFlightAttempts().first {
            outcome.refusal = Issue("self_update.update_in_flight", "an update of service \(busy.attempt.serviceName) (\(busy.attempt.updateID)) is still in flight; finish it (caisson recover) before updating Caisson itself")
            return outcome
        }
        let install = try resolveInstallPath(flags.installPath)
        let installed = installedVersion(at: install)
        let (report, record) = try validateUpdater(path, installedVersion: installed, allowDowngrade: flags.allowDowngrade,
                                                   reinstall: flags.reinstall)
        outcome.validation = report
        outcome.validationRecord = record
        guard report.status == .accepted, let manifest = report.manifest, let exe = report.executable else { return outcome }
        if flags.allowDowngrade, let have = SemVer(installed ?? Self.version), let new = SemVer(manifest.packageVersion), new < have {
            try s.appendAudit([AuditEvent(kind: .downgradeAllowed, at: systemClock.timestamp(), validationAttemptID: record.validationAttemptID,
                                          message: "self-update to the older Caisson \(manifest.packageVersion) allowed (--allow-downgrade; installed \(installed ?? Self.version))")])
        }
        guard let fromSHA = try? LocalSelfUpdateSystem.digest(install) else {
            throw CaissonError("self_update.install_path_invalid", "cannot read the installed executable \(install)")
        }
        var plan = SelfUpdateMachine.Plan.update(
            id: ids.next(), installPath: install,
            source: SelfUpdateSource(packagePath: Self.absolute(path), offset: exe.dataOffset, size: exe.size, sha256: exe.sha256),
            fromVersion: installed ?? "unknown", fromSHA256: fromSHA, toVersion: manifest.packageVersion,
            stateDirectory: stateDir, catalogPath: Self.absolute(options.servicesPath), storeSchemaVersion: try s.currentSchemaVersion())
        plan.packagePath = path
        plan.validationAttemptID = record.validationAttemptID
        if case .success(let p?) = LocalSelfUpdateSystem.readRollbackPoint(stateDirectory: stateDir), p.state == .armed {
            plan.previousRollbackPoint = p
        }
        if options.host == .docker, (try? host().ping()) != nil {
            // Docker answers this Caisson: the new one must reach it too.
            plan.selfTestArguments = ["--ping"]
        }
        if let t = flags.testTimeoutSecs {
            plan.selfTestTimeoutMillis = Int64(t) * 1000
            plan.confirmTimeoutMillis = Int64(t) * 1000
            plan.versionTimeoutMillis = min(plan.versionTimeoutMillis, Int64(t) * 1000)
        }
        let view = SelfUpdatePlanView(
            installPath: install, installedVersion: installed ?? "unknown (it did not answer --version)", installedSHA256: fromSHA,
            newVersion: manifest.packageVersion, newSHA256: exe.sha256, newSize: exe.size, platform: manifest.platform,
            executable: exe.elf?.summary ?? "?", signedBy: report.signature?.keyID, previousPath: plan.previousPath,
            storeSchemaVersion: plan.storeSchemaVersion, freeBytes: Self.freeBytes(plan.installDirectory),
            steps: ["stage the new executable beside the installed one as \(plan.stagedPath) (fsynced)",
                    "test-run it: --version must say \(manifest.packageVersion); self-test against a copy of the store (migrations, catalog, crypto\(plan.selfTestArguments.contains("--ping") ? ", Docker" : ""))",
                    "snapshot the store (schema \(plan.storeSchemaVersion)) for a rollback",
                    "swap atomically, keeping the installed one as \(plan.previousPath)",
                    "first run of the new one confirms it; if it fails, the previous one is put back",
                    "later: caisson self-update --rollback returns to Caisson \(installed ?? "the previous one")"])
        outcome.plan = view
        guard confirm(view) else {
            outcome.declined = true
            return outcome
        }
        if flags.dryRun { return outcome }
        outcome.record = try runSelfUpdateMachine(plan, store: s)
        return outcome
    }

    func runSelfUpdateMachine(_ plan: SelfUpdateMachine.Plan, store s: CaissonStore) throws -> SelfUpdateRecord {
        let clock = SystemSelfUpdateClock(systemClock)
        var machine = SelfUpdateMachine(plan: plan, startedAt: clock.timestamp())
        let driver = SelfUpdateDriver(system: LocalSelfUpdateSystem(store: s, stateDirectory: stateDir), journal: Self.selfUpdateJournal(s), clock: clock)
        driver.onStep = { [weak self] step in self?.onProgress?("  \(step)") }
        return try driver.run(&machine)
    }

    // MARK: Rollback

    public struct SelfUpdateRollbackView: Sendable, Encodable {
        public var installPath: String
        public var currentVersion: String
        public var previousVersion: String
        public var previousPath: String
        public var snapshot: String
        public var snapshotSchemaVersion: Int
        public var storeSchemaVersion: Int?
        public var restoresStore: Bool

        enum CodingKeys: String, CodingKey {
            case installPath = "install_path"
            case currentVersion = "current_version"
            case previousVersion = "previous_version"
            case previousPath = "previous_path"
            case snapshot
            case snapshotSchemaVersion = "snapshot_schema_version"
            case storeSchemaVersion = "store_schema_version"
            case restoresStore = "restores_store"
        }
    }

    /// `self-update --rollback`: the previous executable back, and the store snapshot when the
    /// newer one migrated the store. Works from either executable, also when the store is too new
    /// for the running one.
    public func selfUpdateRollback(confirm: (SelfUpdateRollbackView) -> Bool) throws -> (view: SelfUpdateRollbackView?, record: SelfUpdateRecord?) {
        let lock = try acquireStateLock("self-update --rollback")
        defer { lock.release() }
        guard let point = try Self.rollbackPoint(stateDir) else {
            throw CaissonError("self_update.no_rollback_point", "there is nothing to roll back: no self-update left a previous executable to return to")
        }
        let schemaNow = try? CaissonStore.schemaVersion(ofDatabaseAt: stateDir + "/" + CaissonStore.databaseFileName)
        let view = SelfUpdateRollbackView(installPath: point.installPath, currentVersion: point.newVersion,
                                          previousVersion: point.previousVersion, previousPath: point.previousPath,
                                          snapshot: point.snapshotPath, snapshotSchemaVersion: point.snapshotSchemaVersion,
                                          storeSchemaVersion: schemaNow,
                                          restoresStore: (schemaNow ?? 0) > point.snapshotSchemaVersion)
        if point.state == .armed {
            guard confirm(view) else { return (view, nil) }
        }
        // A store too new for this executable is restored first (this one cannot open it).
        let rollbackID = point.rollbackID ?? ids.next()
        if (schemaNow ?? 0) > CaissonStore.schemaVersion {
            try restoreStoreBeforeOpening(point, rollbackID: rollbackID)
        }
        // Finishes an interrupted rollback (or the one just begun) first.
        try recoverIfNeeded()
        let s = try store()
        guard let current = try Self.rollbackPoint(stateDir), current.state == .armed else {
            // Recovery did it.
            return (view, try s.selfUpdates(limit: 1).records.first)
        }
        if let busy = try s.inFlightAttempts().first {
            throw CaissonError("self_update.update_in_flight", "an update of service \(busy.attempt.serviceName) is still in flight; finish it (caisson recover) first")
        }
        let plan = SelfUpdateMachine.Plan.rollback(id: rollbackID, point: current, stateDirectory: stateDir,
                                                   catalogPath: Self.absolute(options.servicesPath),
                                                   storeSchemaVersion: try s.currentSchemaVersion())
        return (view, try runSelfUpdateMachine(plan, store: s))
    }

    static func rollbackPoint(_ stateDir: String) throws -> SelfUpdateRollbackPoint? {
        try LocalSelfUpdateSystem.readRollbackPoint(stateDirectory: stateDir).get()
    }

    /// An older executable facing a store migrated by the newer one: marks the rollback point
    /// (the journal of this rollback, outside the database), sets the newer database aside and
    /// restores the snapshot, without opening the store through `CaissonStore` (which refuses it).
    @discardableResult
    func restoreStoreBeforeOpening(_ point: SelfUpdateRollbackPoint, rollbackID: String) throws -> String {
        guard point.snapshotSchemaVersion <= CaissonStore.schemaVersion else {
            throw CaissonError("store.schema_too_new", "the store snapshot of this rollback has schema version \(point.snapshotSchemaVersion); this Caisson (\(Self.version)) reads up to \(CaissonStore.schemaVersion). Run the rollback with \(point.previousPath)")
        }
        var marked = point
        marked.state = .rollingBack
        marked.rollbackID = rollbackID
        let aside = point.workDirectory + "/replaced-store-\(String(rollbackID.prefix(8))).db"
        marked.replacedStore = aside
        let path = LocalSelfUpdateSystem.rollbackPointPath(stateDirectory: stateDir)
        do {
            try LocalSelfUpdateSystem.writeRollbackPoint(marked, path: path)
            let live = stateDir + "/" + CaissonStore.databaseFileName
            if access(aside, F_OK) != 0 {
                try CaissonStore.copyDatabase(at: live, to: aside)
            }
            onProgress?("Restoring the store from its snapshot (schema \(point.snapshotSchemaVersion)); the newer one is kept at \(aside)…")
            try CaissonStore.restore(databaseAt: live, from: point.snapshotPath)
            return aside
        } catch let e as SystemCallError {
            throw CaissonError("self_update.store_restore_failed", "could not restore the store from \(point.snapshotPath): \(e)")
        }
    }

    // MARK: Recovery

    /// Finish or undo a self-update (or a rollback) a kill or power cut interrupted. Runs first in
    /// every command, from either executable; needs the operation lock (skipped, and left to the
    /// process at work, when another process holds it).
    func recoverSelfUpdateIfNeeded() throws {
        let point = try? Self.rollbackPoint(stateDir)
        if let p = point, p.state == .rollingBack,
           let v = try? CaissonStore.schemaVersion(ofDatabaseAt: stateDir + "/" + CaissonStore.databaseFileName),
           v > CaissonStore.schemaVersion {
            // A rollback this executable must finish, in a store too new for it: restore first.
            try withRecoveryLock { try restoreStoreBeforeOpening(p, rollbackID: p.rollbackID ?? ids.next()) }
        }
        let s = try store()
        let current = try? Self.rollbackPoint(stateDir)
        guard try SelfUpdateRecovery.isNeeded(journal: s, rollbackPoint: current) else { return }
        try withRecoveryLock {
            onProgress?(current?.state == .rollingBack ? "Finishing the rollback of Caisson…" : "Recovering a self-update interrupted earlier…")
            let context = SelfUpdateRecovery.Context(rollbackPoint: current, stateDirectory: stateDir,
                                                     catalogPath: Self.absolute(options.servicesPath),
                                                     storeSchemaVersion: try s.currentSchemaVersion(), newID: { [ids] in ids.next() })
            _ = try SelfUpdateRecovery.run(system: LocalSelfUpdateSystem(store: s, stateDirectory: stateDir), journal: Self.selfUpdateJournal(s),
                                           clock: SystemSelfUpdateClock(systemClock), context: context,
                                           onStep: { [weak self] step in self?.onProgress?("  recovery: \(step)") })
        }
    }

    /// Runs `body` under the operation lock, also when this process holds it already.
    func withRecoveryLock(_ body: () throws -> Void) throws {
        if let held = heldStateLock, held.isHeld { return try body() }
        let lock: OperationLock
        do {
            lock = try OperationLock.acquire(stateDir: stateDir, operation: "recover", since: systemClock.timestamp())
        } catch let e as CaissonError where e.code == "lock.busy" {
            // Ours already (a command that took it), or another Caisson's, which recovers itself.
            if OperationLock.currentHolder(stateDir: stateDir)?.pid == getpid() { try body() }
            return
        }
        defer { lock.release() }
        try body()
    }

    // MARK: First run

    /// `self-update --confirm ID`: the first run of a new executable, started by the self-update
    /// right after the swap (or by the next command after an interruption). It opens the store
    /// (applying its migrations for real), checks that it is the executable the self-update
    /// installed, runs its self-checks, and records the confirmation.
    public func confirmSelfUpdate(_ id: String) throws -> [SelfUpdateCheck] {
        // The self-update that started us holds the operation lock; anyone else takes it.
        var lock: OperationLock?
        if OperationLock.currentHolder(stateDir: stateDir)?.pid != getppid() {
            lock = try OperationLock.acquire(stateDir: stateDir, operation: "self-update --confirm", since: systemClock.timestamp())
        }
        defer { lock?.release() }
        let s = try store()
        guard let r = try s.selfUpdate(id) else {
            throw CaissonError("self_update.unknown_id", "no self-update has id \(id)")
        }
        guard r.status == .probation else {
            throw CaissonError("self_update.not_in_probation", "self-update \(id) is \(r.status.rawValue), not waiting for its first run")
        }
        guard r.toVersion == Self.version else {
            throw CaissonError("self_update.wrong_executable", "self-update \(id) installed Caisson \(r.toVersion); this is \(Self.version)")
        }
        let me = try resolveInstallPath(nil)
        guard me == r.installPath else {
            throw CaissonError("self_update.wrong_executable", "self-update \(id) installed \(r.installPath); this executable is \(me)")
        }
        if Self.testFault("confirm-fail") { throw CaissonError("self_update.injected_fault", "injected fault (CAISSON_TEST_FAULT confirm-fail)") }
        if Self.testFault("confirm-crash") { abort() }
        var checks = CryptoSelfTest.run()
        checks += storeChecks(s)
        checks.append(catalogCheck())
        if let bad = checks.first(where: { !$0.ok }) {
            throw CaissonError("self_update.first_run_failed", "the first run of Caisson \(Self.version) failed its check \(bad.name): \(bad.detail)")
        }
        try s.confirmSelfUpdate(id, at: systemClock.timestamp(), checks: [SelfUpdateCheck(name: "first run checks", ok: true, detail: "\(checks.count) checks passed")],
                                message: "the first run of Caisson \(Self.version) (pid \(getpid())) opened the store (schema \(try s.currentSchemaVersion())) and passed \(checks.count) checks")
        return checks
    }

    // MARK: Self-test

    public struct SelfTestReport: Sendable, Encodable {
        public var ok: Bool
        public var version: String
        public var checks: [SelfUpdateCheck]
    }

    /// `caisson self-test`: what a test-run asks of a new executable, against the store of
    /// `--state-dir` (the self-update gives it a copy): opens it and applies its migrations, reads
    /// the records, reads the catalog, known-answer checks of the crypto, and with `ping` Docker.
    /// Never recovers anything and never touches a container.
    public func selfTest(ping: Bool) -> SelfTestReport {
        if Self.testFault("self-test-hang") { while true { sleep(3600) } }
        if Self.testFault("self-test-crash") { abort() }
        var checks = [SelfUpdateCheck(name: "version", ok: true, detail: "caisson \(Self.version)")]
        checks += CryptoSelfTest.run()
        do {
            let s = try store()
            checks.append(SelfUpdateCheck(name: "store open", ok: true, detail: "schema \(try s.currentSchemaVersion()) at \(s.databasePath)"))
            checks += storeChecks(s)
        } catch {
            checks.append(SelfUpdateCheck(name: "store open", ok: false, detail: error.message))
        }
        checks.append(catalogCheck())
        if ping {
            do {
                let v = try host().ping()
                checks.append(SelfUpdateCheck(name: "host ping", ok: true, detail: v))
            } catch {
                checks.append(SelfUpdateCheck(name: "host ping", ok: false, detail: error.message))
            }
        }
        if Self.testFault("self-test-fail") { checks.append(SelfUpdateCheck(name: "injected fault", ok: false, detail: "CAISSON_TEST_FAULT self-test-fail")) }
        return SelfTestReport(ok: checks.allSatisfy(\.ok), version: Self.version, checks: checks)
    }

    /// Reading every kind of record (a new executable must read what the old one wrote).
    func storeChecks(_ s: CaissonStore) -> [SelfUpdateCheck] {
        do {
            let problems = try s.integrityProblems()
            let states = try s.serviceStates()
            let attempts = try s.updateAttempts(limit: 50)
            let inflight = try s.inFlightAttempts()
            let validations = try s.validations(limit: 50)
            let selfUpdates = try s.selfUpdates(limit: 50)
            let chain = try s.verifyAuditChain()
            let unreadable = states.unreadable.count + attempts.unreadable.count + validations.unreadable.count + selfUpdates.unreadable.count
            var detail = "\(states.records.count) service state(s), \(attempts.records.count) attempt(s), \(inflight.count) in flight, \(selfUpdates.records.count) self-update(s), audit chain \(chain.firstBreak == nil ? "intact" : "broken") (\(chain.checked) events)"
            if unreadable > 0 { detail += ", \(unreadable) unreadable record(s)" }
            if !problems.isEmpty { detail += "; integrity: " + problems.prefix(3).joined(separator: "; ") }
            return [SelfUpdateCheck(name: "store read", ok: true, detail: detail)]
        } catch {
            return [SelfUpdateCheck(name: "store read", ok: false, detail: error.message)]
        }
    }

    func catalogCheck() -> SelfUpdateCheck {
        do {
            let c = try catalog()
            return SelfUpdateCheck(name: "catalog", ok: true, detail: "\(c.services.count) service(s) in \(options.servicesPath)")
        } catch {
            return SelfUpdateCheck(name: "catalog", ok: false, detail: error.message)
        }
    }

    /// Test hook, in debug builds only (the tests' build): `CAISSON_TEST_FAULT=VERSION:POINT,…`
    /// makes the executable whose version is VERSION misbehave at POINT (`version-exit`,
    /// `version-hang`, `self-test-fail`, `self-test-hang`, `self-test-crash`, `confirm-fail`,
    /// `confirm-crash`): the "fake new binaries" of the self-update tests. A release build has
    /// no such switch.
    public static func testFault(_ point: String) -> Bool {
        #if DEBUG
        guard let spec = ProcessInfo.processInfo.environment["CAISSON_TEST_FAULT"] else { return false }
        for item in spec.split(separator: ",") {
            let parts = item.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0] == version, parts[1] == point { return true }
        }
        #endif
        return false
    }

    /// Test hook, debug builds only: N from `CAISSON_TEST_FAULT=VERSION:PREFIXN` for this version.
    public static func testFaultNumber(_ prefix: String) -> Int? {
        #if DEBUG
        guard let spec = ProcessInfo.processInfo.environment["CAISSON_TEST_FAULT"] else { return nil }
        for item in spec.split(separator: ",") {
            let parts = item.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0] == version, parts[1].hasPrefix(prefix) { return Int(parts[1].dropFirst(prefix.count)) }
        }
        #endif
        return nil
    }
}

extension Application {
    /// The store as the self-update journal (in debug builds, maybe wrapped by the kill hook).
    static func selfUpdateJournal(_ s: CaissonStore) -> any SelfUpdateJournal {
        if let n = testFaultNumber("kill-after-write-") { return DyingSelfUpdateJournal(s, killAfterWrite: n) }
        return s
    }
}

/// Test hook (`CAISSON_TEST_FAULT=VERSION:kill-after-write-N`, debug builds): the self-update
/// process is killed (SIGKILL: no cleanup, no flush) right after its N-th (0-based) durable journal
/// write, like a power cut or an OOM kill; the next command must finish or undo the self-update.
final class DyingSelfUpdateJournal: SelfUpdateJournal {
    let inner: any SelfUpdateJournal
    let killAfterWrite: Int
    var writes = 0
    init(_ inner: any SelfUpdateJournal, killAfterWrite: Int) {
        self.inner = inner
        self.killAfterWrite = killAfterWrite
    }
    func write(_ write: SelfUpdateJournalWrite) throws {
        try inner.write(write)
        if writes == killAfterWrite { kill(getpid(), SIGKILL) }
        writes += 1
    }
    func inFlightSelfUpdates() throws -> [InFlightSelfUpdate] { try inner.inFlightSelfUpdates() }
}

final class SystemSelfUpdateClock: SelfUpdateClock {
    let clock: SystemClock
    init(_ clock: SystemClock) { self.clock = clock }
    func timestamp() -> String { clock.timestamp() }
}

extension Application {
    /// Opens the store; a store too new for this executable says how to get out when a
    /// self-update left a rollback point (`store.schema_too_new`, exit 1, nothing changed).
    static func openStore(_ stateDir: String) throws -> CaissonStore {
        do {
            return try CaissonStore(stateDirectory: stateDir)
        } catch let e as CaissonError where e.code == "store.schema_too_new" {
            if case .success(let p?) = LocalSelfUpdateSystem.readRollbackPoint(stateDirectory: stateDir) {
                throw CaissonError(e.code, e.message + " A self-update installed Caisson \(p.newVersion) at \(p.installPath) (this is \(version)): run that one, or `caisson self-update --rollback` to return to Caisson \(p.previousVersion) and the store it understands.", cause: e.cause)
            }
            throw e
        }
    }
}
