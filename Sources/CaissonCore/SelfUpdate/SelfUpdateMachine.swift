#if canImport(Glibc)
import Glibc
#endif

/// Self-update (issue 14) as a sans-I/O state machine, like `UpdateMachine`: it takes the outcome
/// of the last call and returns the next call to make against a `SelfUpdateSystem` (the
/// filesystem and process seam). `SelfUpdateDriver` executes the calls and journals the machine
/// before and after every one that changes something, so a kill or a power cut at any point is
/// finished or undone by the next command.
///
/// An update:
///   check room → stage the new executable beside the installed one (fsync file and directory) →
///   read it back → test-run it (`--version` must print the package's version; `self-test`
///   against a copy of the store) → snapshot the store → check the installed executable is the
///   one planned → write the rollback point → link the installed executable to a temporary name →
///   swap (rename the staged one over it) → rename the kept one to `<install>.previous` → fsync the
///   directory → first run of the new executable (`self-update --confirm`) → done.
/// Anything failing before the swap undoes what was done (the installed executable is untouched);
/// a failing first run (or fsync after the swap) rolls back: the previous executable is put back
/// and the store snapshot restored if the new one migrated the store.
///
/// At every instant the install path names a complete executable (the old one or the tested new
/// one): nothing is ever written in place, both files are fsynced before the rename that swaps
/// them, and `rename` is atomic.
public struct SelfUpdateMachine: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable, Equatable {
        case update
        case rollback
    }

    public struct Plan: Sendable, Codable, Equatable {
        public var id: String
        public var kind: Kind
        public var installPath: String
        public var previousPath: String
        public var previousTempPath: String
        public var stagedPath: String
        public var restoreTempPath: String
        public var source: SelfUpdateSource?
        public var fromVersion: String
        public var fromSHA256: String
        public var toVersion: String
        public var toSHA256: String
        /// The state directory (the first run confirms against it) and the catalog (the test-run reads it).
        public var stateDirectory: String
        public var catalogPath: String
        /// `<state-dir>/self-update/<id>`: the test copy of the store and the snapshot.
        public var workDirectory: String
        public var storeSchemaVersion: Int
        /// Extra arguments of the test-run's `self-test` (`--ping`, `--host sim`).
        public var selfTestArguments: [String] = []
        public var versionTimeoutMillis: Int64 = 10_000
        public var selfTestTimeoutMillis: Int64 = 60_000
        public var confirmTimeoutMillis: Int64 = 60_000
        /// Bytes left free in the install directory after staging.
        public var spaceReserveBytes: Int64 = 4 << 20
        /// The rollback point before this update (put back if the update is undone before its swap;
        /// its work directory is removed once this update succeeded).
        public var previousRollbackPoint: SelfUpdateRollbackPoint?
        /// A rollback: the point it goes back to.
        public var rollbackPoint: SelfUpdateRollbackPoint?
        public var packagePath: String?
        public var validationAttemptID: String?
        /// A rollback by a Caisson too old for the store: the store was restored before the
        /// machine ran (the newer database set aside here).
        public var replacedStoreBeforehand: String?

        public var installDirectory: String { Paths.directory(of: installPath) }
        public var testStateDirectory: String { workDirectory + "/test-state" }
        public var snapshotPath: String { workDirectory + "/store-snapshot.db" }
        public var replacedStorePath: String { workDirectory + "/replaced-store-\(String(id.prefix(8))).db" }

        /// The plan of an update of `installPath` (paths beside it derived from the id).
        public static func update(id: String, installPath: String, source: SelfUpdateSource, fromVersion: String,
                                  fromSHA256: String, toVersion: String, stateDirectory: String, catalogPath: String,
                                  storeSchemaVersion: Int) -> Plan {
            let dir = Paths.directory(of: installPath)
            let base = baseName(installPath)
            let short = String(id.prefix(8))
            return Plan(id: id, kind: .update, installPath: installPath, previousPath: installPath + ".previous",
                        previousTempPath: "\(dir)/.\(base).previous-\(short)", stagedPath: "\(dir)/.\(base).new-\(short)",
                        restoreTempPath: "\(dir)/.\(base).restore-\(short)", source: source, fromVersion: fromVersion,
                        fromSHA256: fromSHA256, toVersion: toVersion, toSHA256: source.sha256,
                        stateDirectory: stateDirectory, catalogPath: catalogPath,
                        workDirectory: stateDirectory + "/self-update/" + id, storeSchemaVersion: storeSchemaVersion)
        }

        /// The plan of a rollback to `point`.
        public static func rollback(id: String, point: SelfUpdateRollbackPoint, stateDirectory: String,
                                    catalogPath: String, storeSchemaVersion: Int) -> Plan {
            let dir = Paths.directory(of: point.installPath)
            let base = baseName(point.installPath)
            var plan = Plan(id: id, kind: .rollback, installPath: point.installPath, previousPath: point.previousPath,
                            previousTempPath: point.previousTempPath, stagedPath: "\(dir)/.\(base).new-\(String(id.prefix(8)))",
                            restoreTempPath: "\(dir)/.\(base).restore-\(String(id.prefix(8)))", source: nil,
                            fromVersion: point.newVersion, fromSHA256: point.newSHA256, toVersion: point.previousVersion,
                            toSHA256: point.previousSHA256, stateDirectory: stateDirectory, catalogPath: catalogPath,
                            workDirectory: point.workDirectory, storeSchemaVersion: storeSchemaVersion)
            plan.rollbackPoint = point
            return plan
        }
    }

    // MARK: Commands, replies

    public enum Command: Sendable, Equatable {
        case freeBytes(String)
        case writeExecutable(SelfUpdateSource, to: String)
        case syncDirectory(String)
        case digest(String)
        case run(SelfUpdateRun)
        case copyStore(to: String, recordAfterRestore: SelfUpdateRecord?)
        case storeSchemaVersion
        case restoreStore(from: String)
        case removeFile(String)
        case removeTree(String)
        case link(String, to: String)
        case copyFile(String, to: String)
        case rename(String, to: String)
        case writeRollbackPoint(SelfUpdateRollbackPoint?)

        /// Calls that change something are journaled before and after.
        public var isMutating: Bool {
            switch self {
            case .freeBytes, .digest, .storeSchemaVersion: return false
            case .run(let r): return r.arguments.first == "self-update"
            default: return true
            }
        }

        public var stepName: String {
            switch self {
            case .freeBytes: return "free_bytes"
            case .writeExecutable: return "write_executable"
            case .syncDirectory: return "sync_directory"
            case .digest: return "digest"
            case .run: return "run"
            case .copyStore: return "copy_store"
            case .storeSchemaVersion: return "store_schema_version"
            case .restoreStore: return "restore_store"
            case .removeFile: return "remove_file"
            case .removeTree: return "remove_tree"
            case .link: return "link"
            case .copyFile: return "copy_file"
            case .rename: return "rename"
            case .writeRollbackPoint: return "write_rollback_point"
            }
        }

        public var detail: String {
            switch self {
            case .freeBytes(let d): return "free space in \(d)"
            case .writeExecutable(let s, let to): return "write the new executable (\(s.size) bytes) to \(to)"
            case .syncDirectory(let d): return "fsync \(d)"
            case .digest(let p): return "SHA-256 of \(p)"
            case .run(let r): return "run \(r.executable) \(r.arguments.joined(separator: " "))"
            case .copyStore(let to, let rec): return "copy the store to \(to)\(rec == nil ? "" : " (snapshot)")"
            case .storeSchemaVersion: return "read the store's schema version"
            case .restoreStore(let from): return "restore the store from \(from)"
            case .removeFile(let p): return "remove \(p)"
            case .removeTree(let p): return "remove \(p) and its content"
            case .link(let a, let b): return "link \(a) to \(b)"
            case .copyFile(let a, let b): return "copy \(a) to \(b)"
            case .rename(let a, let b): return "rename \(a) to \(b)"
            case .writeRollbackPoint(let p):
                return p.map { "write the rollback point (\($0.state.rawValue)) of \($0.selfUpdateID)" } ?? "remove the rollback point"
            }
        }
    }

    public enum Reply: Sendable, Equatable {
        case done
        case bytes(Int64?)
        case digest(String?)
        case ran(SelfUpdateRunResult)
        case schema(Int)
        case failed(SystemCallError)
    }

    public enum Input: Sendable, Equatable {
        case start
        case reply(Reply)
    }

    public enum Action: Sendable, Equatable {
        case call(Command)
        case finished
    }

    // MARK: State

    enum Step: String, Sendable, Codable, Equatable {
        // Update, before the swap.
        case checkSpace, stage, syncStaged, verifyStaged, runVersion, clearTestStore, copyTestStore, runSelfTest,
             removeTestStore, snapshot, checkInstalled, writePoint, clearPreviousTemp, linkPrevious, copyPrevious
        // The swap and after.
        case swap, renamePrevious, syncSwap, confirm, cleanupObsolete
        // Recovery of an interrupted swap: what is installed now?
        case recoverInspect
        // Undo before the swap.
        case undoPreviousTemp, undoStaged, undoSync, undoWork, undoPoint
        // Rollback (by --rollback, or after a failed first run).
        case rbMarkPoint, rbInspectInstalled, rbInspectPrevious, rbInspectPreviousTemp, rbClearRestoreTemp, rbLink,
             rbCopy, rbRename, rbSync, rbSchema, rbClearAside, rbSetAside, rbRestore, rbClearPoint, rbCleanup, rbDisarm, rbRemoveRestoreTemp
        case done
    }

    public let plan: Plan
    public private(set) var record: SelfUpdateRecord
    var step: Step
    /// Why the update is being undone or rolled back.
    var failure: Issue?
    var spawnAttempts = 0
    /// The file the rollback restores from (the previous executable, or its temporary name).
    var rollbackSource: String?
    /// The rollback point after this update's swap (a rollback works from it).
    var point: SelfUpdateRollbackPoint?
    var pendingEvents: [AuditEvent] = []
    /// A status change not yet journaled.
    public private(set) var needsPersist = false
    /// A rollback: the record it undoes, and the status that record gets (journaled with it).
    public private(set) var relatedStatus: SelfUpdateStatus?

    public init(plan: Plan, startedAt: String) {
        self.plan = plan
        var r = SelfUpdateRecord(selfUpdateID: plan.id, kind: plan.kind.rawValue,
                                 status: plan.kind == .update ? .staging : .rollingBack,
                                 installPath: plan.installPath, previousPath: plan.previousPath,
                                 fromVersion: plan.fromVersion, toVersion: plan.toVersion, startedAt: startedAt)
        r.fromSHA256 = plan.fromSHA256
        r.toSHA256 = plan.toSHA256
        r.packagePath = plan.packagePath ?? plan.source?.packagePath
        r.validationAttemptID = plan.validationAttemptID
        r.rollsBack = plan.rollbackPoint?.selfUpdateID
        r.storeSnapshot = plan.kind == .update ? plan.snapshotPath : plan.rollbackPoint?.snapshotPath
        r.storeSchemaVersion = plan.kind == .update ? plan.storeSchemaVersion : plan.rollbackPoint?.snapshotSchemaVersion
        if let aside = plan.replacedStoreBeforehand {
            r.storeRestored = true
            r.replacedStore = aside
        }
        record = r
        point = plan.rollbackPoint
        step = plan.kind == .update ? .checkSpace : .rbMarkPoint
        if plan.kind == .update {
            event(.selfUpdateStarted, startedAt, "self-update of \(plan.installPath) from Caisson \(plan.fromVersion) to \(plan.toVersion)\(record.packagePath.map { " (package \($0))" } ?? "")")
        } else {
            event(.selfUpdateRollbackStarted, startedAt, "rollback of \(plan.installPath) from Caisson \(plan.fromVersion) to the previous \(plan.toVersion)")
        }
    }

    /// A machine taken from the journal after the process died: it goes on from a step that is
    /// safe to repeat (every step is idempotent or re-inspects first).
    public static func recovering(_ saved: SelfUpdateMachine, record: SelfUpdateRecord, at timestamp: String) -> SelfUpdateMachine {
        var m = saved
        m.record = record
        m.spawnAttempts = 0
        switch saved.step {
        case .checkSpace, .stage, .syncStaged, .verifyStaged, .runVersion, .clearTestStore, .copyTestStore,
             .runSelfTest, .removeTestStore, .snapshot, .checkInstalled:
            m.failure = m.failure ?? Issue("self_update.interrupted", "the self-update was interrupted before the swap; the installed executable was not changed")
            m.step = .undoPreviousTemp
        case .writePoint, .clearPreviousTemp, .linkPrevious, .copyPrevious, .swap, .renamePrevious, .syncSwap, .recoverInspect:
            // Swapped or not? (A power cut before the directory's fsync may have undone the swap.)
            m.step = .recoverInspect
        case .confirm, .cleanupObsolete:
            m.step = saved.step
        case .undoPreviousTemp, .undoStaged, .undoSync, .undoWork, .undoPoint:
            m.step = .undoPreviousTemp
        case .rbMarkPoint, .rbInspectInstalled, .rbInspectPrevious, .rbInspectPreviousTemp, .rbClearRestoreTemp, .rbLink,
             .rbCopy, .rbRename, .rbSync, .rbSchema, .rbClearAside, .rbSetAside, .rbRestore, .rbClearPoint, .rbCleanup:
            m.step = .rbMarkPoint
        case .rbDisarm, .rbRemoveRestoreTemp:
            m.step = .rbDisarm
        case .done:
            m.step = .done
        }
        m.event(.recoveryStarted, timestamp, "recovering a self-update interrupted at \(saved.step.rawValue)")
        return m
    }

    // MARK: Events

    mutating func event(_ kind: AuditKind, _ at: String, _ message: String) {
        pendingEvents.append(AuditEvent(kind: kind, at: at, updateID: plan.id, message: message))
    }

    public mutating func takeEvents() -> [AuditEvent] {
        defer { pendingEvents = [] }
        needsPersist = false
        return pendingEvents
    }

    public var hasEvents: Bool { !pendingEvents.isEmpty }

    mutating func setStatus(_ s: SelfUpdateStatus) {
        if record.status != s { record.status = s; needsPersist = true }
    }

    // MARK: Transitions

    public mutating func next(_ input: Input, timestamp: String) -> Action {
        let reply: Reply?
        switch input {
        case .start: reply = nil
        case .reply(let r): reply = r
        }
        return advance(reply, now: timestamp)
    }

    private mutating func advance(_ reply: Reply?, now: String) -> Action {
        switch step {
        // --- Update, before the swap -------------------------------------------------------
        case .checkSpace:
            guard let reply else { return .call(.freeBytes(plan.installDirectory)) }
            let need = (plan.source?.size ?? 0) + plan.spaceReserveBytes
            if case .bytes(let free?) = reply, free < need {
                return fail(Issue("self_update.insufficient_space", "\(plan.installDirectory) has \(free) bytes free; staging the new executable beside the installed one needs \(need) (its \(plan.source?.size ?? 0) bytes and a reserve of \(plan.spaceReserveBytes)). Nothing was changed"), now: now)
            }
            step = .stage
            return .call(.writeExecutable(plan.source!, to: plan.stagedPath))
        case .stage:
            guard let reply else { return .call(.writeExecutable(plan.source!, to: plan.stagedPath)) }
            if case .failed(let e) = reply { return fail(Self.issue(e, "staging the new executable"), now: now) }
            step = .syncStaged
            return .call(.syncDirectory(plan.installDirectory))
        case .syncStaged:
            guard let reply else { return .call(.syncDirectory(plan.installDirectory)) }
            if case .failed(let e) = reply { return fail(Self.issue(e, "staging the new executable"), now: now) }
            step = .verifyStaged
            return .call(.digest(plan.stagedPath))
        case .verifyStaged:
            guard let reply else { return .call(.digest(plan.stagedPath)) }
            switch reply {
            case .digest(let d?) where d == plan.toSHA256: break
            case .failed(let e): return fail(Self.issue(e, "reading the staged executable back"), now: now)
            default:
                return fail(Issue("self_update.stage_corrupt", "the staged executable read back differs from the package's (SHA-256 \(plan.toSHA256)); the disk may be failing. Nothing was changed"), now: now)
            }
            event(.selfUpdateStaged, now, "staged Caisson \(plan.toVersion) as \(plan.stagedPath)")
            setStatus(.testing)
            step = .runVersion
            spawnAttempts = 0
            return .call(.run(versionRun))
        case .runVersion:
            guard let reply else { return .call(.run(versionRun)) }
            guard case .ran(let r) = reply else { return fail(Issue("self_update.internal_error", "unexpected reply \(reply) to the --version run"), now: now) }
            if case .notStarted(let e) = r.outcome, e == ETXTBSY, spawnAttempts < 3 {
                // Another process still has it open for writing (a fork that inherited our
                // descriptor): try again.
                spawnAttempts += 1
                return .call(.run(versionRun))
            }
            let want = "caisson \(plan.toVersion)"
            let got = r.stdout.split(separator: "\n", omittingEmptySubsequences: true).first.map { String($0).trimmingSpacesString } ?? ""
            if let problem = Self.runProblem(r, what: "--version", timeoutMillis: plan.versionTimeoutMillis) {
                record.checks.append(SelfUpdateCheck(name: "version", ok: false, detail: problem.message))
                return refuse(problem, now: now)
            }
            guard got == want else {
                let problem = Issue("self_update.wrong_version", "the new executable says \"\(got.prefix(120))\" to --version, but the package is Caisson \(plan.toVersion); refused, the installed executable was not changed")
                record.checks.append(SelfUpdateCheck(name: "version", ok: false, detail: problem.message))
                return refuse(problem, now: now)
            }
            record.checks.append(SelfUpdateCheck(name: "version", ok: true, detail: want))
            step = .clearTestStore
            return .call(.removeTree(plan.testStateDirectory))
        case .clearTestStore:
            guard let reply else { return .call(.removeTree(plan.testStateDirectory)) }
            if case .failed(let e) = reply { return fail(Self.issue(e, "preparing the test copy of the store"), now: now) }
            step = .copyTestStore
            return .call(.copyStore(to: plan.testStateDirectory + "/caisson.db", recordAfterRestore: nil))
        case .copyTestStore:
            guard let reply else { return .call(.copyStore(to: plan.testStateDirectory + "/caisson.db", recordAfterRestore: nil)) }
            if case .failed(let e) = reply { return fail(Self.issue(e, "copying the store for the test-run"), now: now) }
            step = .runSelfTest
            spawnAttempts = 0
            return .call(.run(selfTestRun))
        case .runSelfTest:
            guard let reply else { return .call(.run(selfTestRun)) }
            guard case .ran(let r) = reply else { return fail(Issue("self_update.internal_error", "unexpected reply \(reply) to the self-test run"), now: now) }
            if case .notStarted(let e) = r.outcome, e == ETXTBSY, spawnAttempts < 3 {
                spawnAttempts += 1
                return .call(.run(selfTestRun))
            }
            if let problem = Self.runProblem(r, what: "self-test", timeoutMillis: plan.selfTestTimeoutMillis) {
                record.checks.append(SelfUpdateCheck(name: "self-test", ok: false, detail: problem.message))
                return refuse(problem, now: now)
            }
            record.checks.append(SelfUpdateCheck(name: "self-test", ok: true, detail: Self.summary(of: r.stdout)))
            event(.selfUpdateTested, now, "Caisson \(plan.toVersion) passed its test-run (--version, self-test on a copy of the store)")
            step = .removeTestStore
            return .call(.removeTree(plan.testStateDirectory))
        case .removeTestStore:
            guard let reply else { return .call(.removeTree(plan.testStateDirectory)) }
            if case .failed(let e) = reply { record.notes.append("the test copy of the store could not be removed: \(e)") }
            setStatus(.snapshotting)
            step = .snapshot
            return .call(.copyStore(to: plan.snapshotPath, recordAfterRestore: recordIfRestored))
        case .snapshot:
            guard let reply else { return .call(.copyStore(to: plan.snapshotPath, recordAfterRestore: recordIfRestored)) }
            if case .failed(let e) = reply { return fail(Self.issue(e, "snapshotting the store"), now: now) }
            event(.selfUpdateSnapshotTaken, now, "store snapshot (schema \(plan.storeSchemaVersion)) at \(plan.snapshotPath)")
            setStatus(.swapping)
            step = .checkInstalled
            return .call(.digest(plan.installPath))
        case .checkInstalled:
            guard let reply else { return .call(.digest(plan.installPath)) }
            switch reply {
            case .digest(let d) where d == plan.fromSHA256: break
            case .failed(let e): return fail(Self.issue(e, "reading the installed executable"), now: now)
            default:
                return fail(Issue("self_update.installed_changed", "\(plan.installPath) changed since the self-update was planned (another installer?); nothing was changed, try again"), now: now)
            }
            point = newPoint(now)
            step = .writePoint
            return .call(.writeRollbackPoint(point))
        case .writePoint:
            guard let reply else { return .call(.writeRollbackPoint(point)) }
            if case .failed(let e) = reply { return fail(Self.issue(e, "writing the rollback point"), now: now) }
            step = .clearPreviousTemp
            return .call(.removeFile(plan.previousTempPath))
        case .clearPreviousTemp:
            guard let reply else { return .call(.removeFile(plan.previousTempPath)) }
            if case .failed(let e) = reply { return fail(Self.issue(e, "keeping the installed executable"), now: now) }
            step = .linkPrevious
            return .call(.link(plan.installPath, to: plan.previousTempPath))
        case .linkPrevious:
            guard let reply else { return .call(.link(plan.installPath, to: plan.previousTempPath)) }
            if case .failed(let e) = reply {
                // A filesystem without hard links: copy it.
                if [EXDEV, EPERM, ENOTSUP, EOPNOTSUPP, EMLINK, ENOSYS].contains(e.errno) {
                    step = .copyPrevious
                    return .call(.copyFile(plan.installPath, to: plan.previousTempPath))
                }
                return fail(Self.issue(e, "keeping the installed executable"), now: now)
            }
            step = .swap
            return .call(.rename(plan.stagedPath, to: plan.installPath))
        case .copyPrevious:
            guard let reply else { return .call(.copyFile(plan.installPath, to: plan.previousTempPath)) }
            if case .failed(let e) = reply { return fail(Self.issue(e, "keeping the installed executable"), now: now) }
            step = .swap
            return .call(.rename(plan.stagedPath, to: plan.installPath))
        // --- The swap ----------------------------------------------------------------------
        case .swap:
            guard let reply else { return .call(.rename(plan.stagedPath, to: plan.installPath)) }
            if case .failed(let e) = reply { return fail(Self.issue(e, "swapping the executables"), now: now) }
            return swapped(now: now)
        case .recoverInspect:
            guard let reply else { return .call(.digest(plan.installPath)) }
            switch reply {
            case .digest(let d?) where d == plan.toSHA256:
                return swapped(now: now)
            case .digest(let d?) where d == plan.fromSHA256:
                failure = Issue("self_update.interrupted", "the self-update was interrupted before the swap; the installed executable was not changed")
                step = .undoPreviousTemp
                return .call(.removeFile(plan.previousTempPath))
            case .failed(let e):
                return finish(.failed, Issue("self_update.recovery_failed", "cannot tell which executable is installed after an interrupted self-update: \(e); nothing was touched, run the command again"), now: now)
            default:
                return finish(.failed, Issue("self_update.installed_changed", "\(plan.installPath) is neither the executable that was installed nor the new one (replaced by something else?); the self-update left it alone"), now: now)
            }
        case .renamePrevious:
            guard let reply else { return .call(.rename(plan.previousTempPath, to: plan.previousPath)) }
            if case .failed(let e) = reply, e.errno != ENOENT {
                // The previous executable stays under its temporary name (the rollback point
                // knows it); the update itself went through.
                record.notes.append("the previous executable stays at \(plan.previousTempPath): \(e)")
            }
            step = .syncSwap
            return .call(.syncDirectory(plan.installDirectory))
        case .syncSwap:
            guard let reply else { return .call(.syncDirectory(plan.installDirectory)) }
            if case .failed(let e) = reply {
                // The swap may not survive a power cut; do not run on it.
                return rollBack(Self.issue(e, "making the swap durable"), now: now)
            }
            if record.status != .probation {
                setStatus(.probation)
                event(.selfUpdateSwapped, now, "\(plan.installPath) is now Caisson \(plan.toVersion); the previous one is kept as \(plan.previousPath)")
            }
            step = .confirm
            spawnAttempts = 0
            return .call(.run(confirmRun))
        case .confirm:
            guard let reply else { return .call(.run(confirmRun)) }
            guard case .ran(let r) = reply else { return rollBack(Issue("self_update.internal_error", "unexpected reply \(reply) to the first run"), now: now) }
            if case .notStarted(let e) = r.outcome, e == ETXTBSY, spawnAttempts < 3 {
                spawnAttempts += 1
                return .call(.run(confirmRun))
            }
            if let problem = Self.runProblem(r, what: "its first run (self-update --confirm)", timeoutMillis: plan.confirmTimeoutMillis, code: "self_update.first_run_failed") {
                record.checks.append(SelfUpdateCheck(name: "first run", ok: false, detail: problem.message))
                return rollBack(problem, now: now)
            }
            record.checks.append(SelfUpdateCheck(name: "first run", ok: true, detail: Self.summary(of: r.stdout)))
            record.confirmedAt = now
            step = .cleanupObsolete
            if let old = plan.previousRollbackPoint?.workDirectory, old != plan.workDirectory {
                return .call(.removeTree(old))
            }
            return advance(.done, now: now)
        case .cleanupObsolete:
            guard let reply else {
                if let old = plan.previousRollbackPoint?.workDirectory, old != plan.workDirectory { return .call(.removeTree(old)) }
                return advance(.done, now: now)
            }
            if case .failed(let e) = reply { record.notes.append("the previous self-update's snapshot could not be removed: \(e)") }
            return finish(.succeeded, nil, now: now)

        // --- Undo before the swap ------------------------------------------------------------
        case .undoPreviousTemp:
            guard let reply else { return .call(.removeFile(plan.previousTempPath)) }
            note(reply, "remove \(plan.previousTempPath)")
            step = .undoStaged
            return .call(.removeFile(plan.stagedPath))
        case .undoStaged:
            guard let reply else { return .call(.removeFile(plan.stagedPath)) }
            note(reply, "remove \(plan.stagedPath)")
            step = .undoSync
            return .call(.syncDirectory(plan.installDirectory))
        case .undoSync:
            // The removals made durable: a power cut must not bring the staged copy back.
            guard let reply else { return .call(.syncDirectory(plan.installDirectory)) }
            note(reply, "fsync \(plan.installDirectory)")
            step = .undoWork
            return .call(.removeTree(plan.workDirectory))
        case .undoWork:
            guard let reply else { return .call(.removeTree(plan.workDirectory)) }
            note(reply, "remove \(plan.workDirectory)")
            step = .undoPoint
            return .call(.writeRollbackPoint(plan.previousRollbackPoint))
        case .undoPoint:
            guard let reply else { return .call(.writeRollbackPoint(plan.previousRollbackPoint)) }
            note(reply, "restore the previous rollback point")
            return finish(.failed, failure, now: now)

        // --- Rollback ---------------------------------------------------------------------
        case .rbMarkPoint:
            guard let p = point else {
                return finish(.rollbackFailed, Issue("self_update.no_rollback_point", "there is no previous executable to return to"), now: now)
            }
            var marked = p
            marked.state = .rollingBack
            marked.rollbackID = plan.id
            guard let reply else { return .call(.writeRollbackPoint(marked)) }
            if case .failed(let e) = reply {
                return finish(.rollbackFailed, Self.issue(e, "marking the rollback point"), now: now)
            }
            point = marked
            setStatus(.rollingBack)
            step = .rbInspectInstalled
            return .call(.digest(plan.installPath))
        case .rbInspectInstalled:
            guard let reply else { return .call(.digest(plan.installPath)) }
            if case .digest(let d?) = reply, d == point!.previousSHA256 {
                // Already back (an earlier run of this rollback got this far). That run may have
                // died before the fsync of its rename: make it durable before anything records the
                // rollback as done, or a power cut would bring the new executable back under a
                // `rolled_back` record (self-update swarm, seed 7 run 318).
                step = .rbSync
                return .call(.syncDirectory(plan.installDirectory))
            }
            step = .rbInspectPrevious
            return .call(.digest(point!.previousPath))
        case .rbInspectPrevious:
            guard let reply else { return .call(.digest(point!.previousPath)) }
            if case .digest(let d?) = reply, d == point!.previousSHA256 {
                rollbackSource = point!.previousPath
                step = .rbClearRestoreTemp
                return .call(.removeFile(plan.restoreTempPath))
            }
            step = .rbInspectPreviousTemp
            return .call(.digest(point!.previousTempPath))
        case .rbInspectPreviousTemp:
            guard let reply else { return .call(.digest(point!.previousTempPath)) }
            if case .digest(let d?) = reply, d == point!.previousSHA256 {
                rollbackSource = point!.previousTempPath
                step = .rbClearRestoreTemp
                return .call(.removeFile(plan.restoreTempPath))
            }
            return rollbackFailed(Issue("self_update.previous_missing", "the previous executable (Caisson \(point!.previousVersion), SHA-256 \(point!.previousSHA256)) is no longer at \(point!.previousPath); nothing was changed"), now: now)
        case .rbClearRestoreTemp:
            guard let reply else { return .call(.removeFile(plan.restoreTempPath)) }
            if case .failed(let e) = reply { return rollbackFailed(Self.issue(e, "preparing the previous executable"), now: now) }
            step = .rbLink
            return .call(.link(rollbackSource!, to: plan.restoreTempPath))
        case .rbLink:
            guard let reply else { return .call(.link(rollbackSource!, to: plan.restoreTempPath)) }
            if case .failed(let e) = reply {
                if [EXDEV, EPERM, ENOTSUP, EOPNOTSUPP, EMLINK, ENOSYS].contains(e.errno) {
                    step = .rbCopy
                    return .call(.copyFile(rollbackSource!, to: plan.restoreTempPath))
                }
                return rollbackFailed(Self.issue(e, "preparing the previous executable"), now: now)
            }
            step = .rbRename
            return .call(.rename(plan.restoreTempPath, to: plan.installPath))
        case .rbCopy:
            guard let reply else { return .call(.copyFile(rollbackSource!, to: plan.restoreTempPath)) }
            if case .failed(let e) = reply { return rollbackFailed(Self.issue(e, "preparing the previous executable"), now: now) }
            step = .rbRename
            return .call(.rename(plan.restoreTempPath, to: plan.installPath))
        case .rbRename:
            guard let reply else { return .call(.rename(plan.restoreTempPath, to: plan.installPath)) }
            if case .failed(let e) = reply { return rollbackFailed(Self.issue(e, "putting the previous executable back"), now: now) }
            step = .rbSync
            return .call(.syncDirectory(plan.installDirectory))
        case .rbSync:
            guard let reply else { return .call(.syncDirectory(plan.installDirectory)) }
            if case .failed(let e) = reply {
                // Both executables are complete files: whichever name survives a power cut works.
                record.notes.append("fsync of \(plan.installDirectory) after the rollback failed: \(e)")
            }
            step = .rbSchema
            return .call(.storeSchemaVersion)
        case .rbSchema:
            guard let reply else { return .call(.storeSchemaVersion) }
            switch reply {
            case .schema(let v) where v > point!.snapshotSchemaVersion:
                // The live store is still the newer one: a set-aside copy already there is a copy
                // of it that an interrupted rollback began (maybe partial). Make it anew.
                step = .rbClearAside
                return .call(.removeFile(plan.replacedStorePath))
            case .failed(let e):
                return rollbackFailed(Self.issue(e, "reading the store's schema version"), now: now)
            default:
                step = .rbClearPoint
                return .call(.writeRollbackPoint(nil))
            }
        case .rbClearAside:
            guard let reply else { return .call(.removeFile(plan.replacedStorePath)) }
            if case .failed(let e) = reply {
                return rollbackFailed(Self.issue(e, "setting the newer store aside before restoring the snapshot"), now: now)
            }
            step = .rbSetAside
            return .call(.copyStore(to: plan.replacedStorePath, recordAfterRestore: nil))
        case .rbSetAside:
            guard let reply else { return .call(.copyStore(to: plan.replacedStorePath, recordAfterRestore: nil)) }
            if case .failed(let e) = reply {
                return rollbackFailed(Self.issue(e, "setting the newer store aside before restoring the snapshot"), now: now)
            }
            record.replacedStore = plan.replacedStorePath
            step = .rbRestore
            return .call(.restoreStore(from: point!.snapshotPath))
        case .rbRestore:
            guard let reply else { return .call(.restoreStore(from: point!.snapshotPath)) }
            if case .failed(let e) = reply {
                return rollbackFailed(Issue("self_update.store_restore_failed", "the previous executable is back, but the store could not be restored from its snapshot \(point!.snapshotPath): \(e). Run `caisson self-update --rollback` again"), now: now)
            }
            record.storeRestored = true
            // The restored store has never heard of this record: journal it again at once.
            needsPersist = true
            step = .rbClearPoint
            return .call(.writeRollbackPoint(nil))
        case .rbClearPoint:
            guard let reply else { return .call(.writeRollbackPoint(nil)) }
            if case .failed(let e) = reply { record.notes.append("the rollback point could not be removed: \(e)") }
            // The snapshot has served; its folder stays only when it keeps a set-aside store.
            if record.storeRestored != true {
                step = .rbCleanup
                return .call(.removeTree(point!.workDirectory))
            }
            return finish(.rolledBack, failure, now: now)
        case .rbCleanup:
            guard let reply else { return .call(.removeTree(point!.workDirectory)) }
            note(reply, "remove \(point!.workDirectory)")
            return finish(.rolledBack, failure, now: now)
        case .rbDisarm:
            var armed = point
            armed?.state = .armed
            armed?.rollbackID = nil
            guard let reply else { return .call(.writeRollbackPoint(armed)) }
            note(reply, "re-arm the rollback point")
            step = .rbRemoveRestoreTemp
            return .call(.removeFile(plan.restoreTempPath))
        case .rbRemoveRestoreTemp:
            guard let reply else { return .call(.removeFile(plan.restoreTempPath)) }
            note(reply, "remove \(plan.restoreTempPath)")
            return finish(.rollbackFailed, failure, now: now)
        case .done:
            return .finished
        }
    }

    // MARK: Helpers

    var versionRun: SelfUpdateRun {
        SelfUpdateRun(executable: plan.stagedPath, arguments: ["--version"], timeoutMillis: plan.versionTimeoutMillis)
    }

    var selfTestRun: SelfUpdateRun {
        SelfUpdateRun(executable: plan.stagedPath,
                      arguments: ["self-test", "--state-dir", plan.testStateDirectory, "--services", plan.catalogPath, "--json"] + plan.selfTestArguments,
                      timeoutMillis: plan.selfTestTimeoutMillis)
    }

    var confirmRun: SelfUpdateRun {
        SelfUpdateRun(executable: plan.installPath,
                      arguments: ["self-update", "--confirm", plan.id, "--state-dir", plan.stateDirectory, "--services", plan.catalogPath, "--json"],
                      timeoutMillis: plan.confirmTimeoutMillis)
    }

    /// What the store must say about this update if its snapshot is ever restored: that it was
    /// rolled back (only a rollback restores it).
    var recordIfRestored: SelfUpdateRecord {
        var r = record
        r.status = .rolledBack
        r.notes.append("the store was restored from the snapshot taken before the swap")
        return r
    }

    func newPoint(_ now: String) -> SelfUpdateRollbackPoint {
        SelfUpdateRollbackPoint(selfUpdateID: plan.id, installPath: plan.installPath, previousPath: plan.previousPath,
                                previousTempPath: plan.previousTempPath, previousSHA256: plan.fromSHA256,
                                previousVersion: plan.fromVersion, newSHA256: plan.toSHA256, newVersion: plan.toVersion,
                                snapshotPath: plan.snapshotPath, snapshotSchemaVersion: plan.storeSchemaVersion,
                                workDirectory: plan.workDirectory, createdAt: now)
    }

    /// After the swap (in the normal run, or found done by recovery).
    private mutating func swapped(now: String) -> Action {
        if point == nil { point = newPoint(now) }
        step = .renamePrevious
        return .call(.rename(plan.previousTempPath, to: plan.previousPath))
    }

    private mutating func note(_ reply: Reply, _ what: String) {
        if case .failed(let e) = reply { record.notes.append("could not \(what): \(e)") }
    }

    /// Before the swap: undo what was done and end `failed`.
    private mutating func fail(_ issue: Issue, now: String) -> Action {
        failure = issue
        step = .undoPreviousTemp
        return .call(.removeFile(plan.previousTempPath))
    }

    /// A test-run refused the new executable.
    private mutating func refuse(_ issue: Issue, now: String) -> Action {
        event(.selfUpdateTestFailed, now, issue.message)
        return fail(issue, now: now)
    }

    /// After the swap: put the previous executable back.
    private mutating func rollBack(_ issue: Issue, now: String) -> Action {
        failure = issue
        event(.selfUpdateRollbackStarted, now, "\(issue.message); putting Caisson \(plan.fromVersion) back")
        if point == nil { point = newPoint(now) }
        step = .rbMarkPoint
        return advance(nil, now: now)
    }

    private mutating func rollbackFailed(_ issue: Issue, now: String) -> Action {
        if failure == nil {
            failure = issue
        } else {
            record.issues.append(issue)
        }
        step = .rbDisarm
        return advance(nil, now: now)
    }

    private mutating func finish(_ status: SelfUpdateStatus, _ issue: Issue?, now: String) -> Action {
        if let issue, !record.issues.contains(issue) { record.issues.insert(issue, at: 0) }
        setStatus(status)
        record.finishedAt = now
        step = .done
        switch (status, plan.kind) {
        case (.succeeded, _):
            event(.selfUpdateSucceeded, now, "Caisson \(plan.toVersion) is installed at \(plan.installPath) and confirmed by its first run")
        case (.failed, _):
            event(.selfUpdateFailed, now, (issue?.message ?? "failed") + "; \(plan.installPath) is still Caisson \(plan.fromVersion)")
        case (.rolledBack, .update):
            event(.selfUpdateRolledBack, now, "Caisson \(plan.fromVersion) is back at \(plan.installPath)\(record.storeRestored == true ? " and the store was restored from its snapshot" : "")")
        case (.rolledBack, .rollback):
            relatedStatus = .rolledBack
            event(.selfUpdateRolledBack, now, "Caisson \(plan.toVersion) is back at \(plan.installPath)\(record.storeRestored == true ? "; the store was restored from its snapshot (the replaced one is kept at \(plan.replacedStorePath))" : "")")
        case (.rollbackFailed, _):
            event(.selfUpdateRollbackFailed, now, issue?.message ?? "rollback failed")
        default: break
        }
        return .finished
    }

    public var isFinished: Bool { step == .done }
    public var stepName: String { step.rawValue }

    /// The issue of a run that did not pass (nil: it exited 0).
    static func runProblem(_ r: SelfUpdateRunResult, what: String, timeoutMillis: Int64,
                           code: String = "self_update.test_failed") -> Issue? {
        let tail = r.stderr.isEmpty ? "" : ": " + String(r.stderr.suffix(300)).trimmingSpacesString
        let kept = code == "self_update.first_run_failed" ? "the previous one is put back" : "refused, the installed executable was not changed"
        switch r.outcome {
        case .exited(0): return nil
        case .exited(let n): return Issue(code, "the new executable failed \(what) (exit status \(n))\(tail); \(kept)")
        case .signalled(let s): return Issue(code == "self_update.test_failed" ? "self_update.test_crashed" : code, "the new executable crashed during \(what) (signal \(s))\(tail); \(kept)")
        case .timedOut: return Issue(code == "self_update.test_failed" ? "self_update.test_timed_out" : code, "the new executable did not finish \(what) within \(timeoutMillis / 1000) s (it hangs?); \(kept)")
        case .notStarted(let e) where e == ENOEXEC:
            return Issue("self_update.wrong_machine", "this machine cannot run the new executable (exec format error: built for another CPU, or damaged); \(kept)")
        case .notStarted(let e):
            return Issue(code, "the new executable could not be started for \(what): \(ByteSourceError.describe(errno: e)); \(kept)")
        }
    }

    /// The issue of a failed system call while `doing` something.
    static func issue(_ e: SystemCallError, _ doing: String) -> Issue {
        switch e.errno {
        case ENOSPC, EDQUOT:
            return Issue("self_update.insufficient_space", "no room left while \(doing) (\(e)); nothing was changed, free some space and try again")
        case EACCES, EPERM, EROFS:
            return Issue("self_update.not_writable", "Caisson may not write beside the installed executable while \(doing) (\(e)); run it as the user that owns \(Paths.directory(of: e.path))")
        case EXDEV:
            return Issue("self_update.cross_device", "\(e.path) is on another filesystem than its directory (a bind-mounted file?), so it cannot be replaced atomically (\(e)); install Caisson in a plain directory or use --install-path")
        case EBUSY:
            return Issue("self_update.busy", "the system refused while \(doing) (\(e)): is the executable a mount point?")
        case ETXTBSY:
            return Issue("self_update.text_busy", "the file is busy while \(doing) (\(e)); try again")
        default:
            return Issue("self_update.io_failed", "\(doing) failed: \(e)")
        }
    }

    /// A short summary of a self-test's or first run's JSON output.
    static func summary(of stdout: String) -> String {
        struct Output: Decodable {
            struct Check: Decodable { var name: String; var ok: Bool }
            var checks: [Check]?
            var confirmed: String?
        }
        if let o = try? JSONCoding.decode(Output.self, from: Array(stdout.utf8)) {
            if let c = o.checks { return "\(c.filter(\.ok).count) of \(c.count) checks passed" }
            if o.confirmed != nil { return "confirmed by the new executable" }
        }
        let flat = stdout.split(whereSeparator: { $0 == "\n" }).map { String($0).trimmingSpacesString }.joined(separator: " ")
        return flat.count > 200 ? String(flat.prefix(200)) + "…" : flat
    }
}

/// The last component of a path.
private func baseName(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return path }
    return String(path[path.index(after: slash)...])
}

extension String {
    var trimmingSpacesString: String { String(trimmingSpaces) }
}

extension SelfUpdateMachine {
    /// The issue code a failed system call gets (for tests and front ends).
    public static func issueCode(_ e: SystemCallError) -> String { issue(e, "").code }
}
