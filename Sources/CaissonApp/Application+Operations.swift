import CaissonCore
import CaissonDocker
import CaissonStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Locks and "who is doing what": one operation at a time per state directory (its `lock` file),
/// one operation at a time per service on the host (`/run/caisson/locks`), recovery only under
/// the lock, and the status a console shows while another process works.
extension Application {
    /// Where host-wide locks live by default (`CAISSON_LOCK_DIR` overrides it).
    public static let defaultLockDirectory = "/run/caisson/locks"

    /// The state directory's lock space (`<state-dir>/lock`).
    public var stateLocks: any LockSpace { FileLockSpace.stateDirectory(stateDir) }

    /// The host-wide lock space for the host this command talks to: per Docker daemon (by its
    /// socket) under the lock directory; with `--host sim`, inside the state directory (the
    /// simulated host lives there, so its `/run` does too).
    public func hostLocks() throws -> any LockSpace {
        switch options.host {
        case .sim:
            return FileLockSpace(directory: stateDir + "/sim-run/locks")
        case .docker:
            let root = options.lockDirectory ?? Self.defaultLockDirectory
            let socket: String
            do {
                socket = try DockerClient(environment: ProcessInfo.processInfo.environment).socketPath
            } catch {
                throw CaissonError("docker.unreachable", "\(error)")
            }
            let resolved = (try? FileManager.default.destinationOfSymbolicLink(atPath: socket)).map {
                $0.hasPrefix("/") ? $0 : Paths.directory(of: socket) + "/" + $0
            } ?? socket
            let identity = "docker" + Paths.normalize(resolved).map { $0 == "/" ? "_" : $0 }
            return FileLockSpace(directory: root + "/" + OperationLocks.sanitizeComponent(String(identity)))
        }
    }

    /// This process, as written into the locks it takes.
    func holder(_ operation: String) -> LockHolder {
        LockHolder(operation: operation, pid: getpid(), since: systemClock.timestamp(), stateDirectory: stateDir)
    }

    /// Takes the state directory's lock for `operation` (`lock.busy` naming the holder).
    /// A refusal also says where the holder's update is (step, since when).
    func acquireStateLock(_ operation: String) throws -> HeldLock {
        let lock: HeldLock
        do {
            lock = try OperationLocks.acquireState(stateLocks, holder: holder(operation))
        } catch let e as CaissonError where e.code == "lock.busy" {
            let attempts = ((try? store().inFlightAttempts()) ?? []).map(AttemptInProgress.init)
            guard !attempts.isEmpty else { throw e }
            throw CaissonError(e.code, e.message + " In progress: " + attempts.map(\.description).joined(separator: "; ") + ".")
        }
        heldStateLock = lock
        return lock
    }

    /// Takes `service`'s host-wide lock (`lock.service_busy`) and refuses another state
    /// directory's unfinished marks on it (`update.foreign_attempt`): before anything changes.
    func guardService(_ service: ServiceSpec, operation: String) throws -> HeldLock {
        let lock: HeldLock
        do {
            lock = try OperationLocks.acquireService(try hostLocks(), service: service, holder: holder(operation))
        } catch let e as CaissonError where e.code == "lock.failed" {
            throw CaissonError("lock.failed", "\(e.message). The host-wide lock directory is \(options.lockDirectory ?? Self.defaultLockDirectory); run Caisson as root or set CAISSON_LOCK_DIR to a directory every Caisson on this host uses.")
        }
        try ForeignMarks.refuse(service: service, host: host(), journal: store())
        return lock
    }

    /// What is in flight in this state directory, by whom, at which step, since when; nil when
    /// no process holds the operation lock. Changes nothing, takes no lock.
    public func operationStatus() throws -> OperationInProgress? {
        try RecoveryGate.status(stateLocks: stateLocks, journal: store())
    }

    /// Drive any attempt left in flight by a killed updater to a terminal state, but only when no
    /// live process owns it: under the operation lock (taken here unless this command holds it).
    /// When another process holds it, `inProgress` says what it is doing and nothing is changed.
    /// Cheap when nothing is in flight (no lock, no host connection).
    @discardableResult
    public func recoverIfNeeded() throws -> RecoveryGate.Outcome {
        try recoverSelfUpdateIfNeeded()
        let s = try store()
        guard !(try s.inFlightAttempts()).isEmpty else { return RecoveryGate.Outcome() }
        let onStep: (String) -> Void = { [weak self] step in self?.onProgress?("  recovery: \(self?.operatorText(step) ?? step)") }
        if let held = heldStateLock, held.isHeld {
            onProgress?("Recovering an update interrupted earlier…")
            let report = try Recovery.run(host: host(), journal: s, clock: clock(), onStep: onStep,
                                          serviceLocks: try hostLocks(), holder: held.holder)
            finish()
            return RecoveryGate.Outcome(report: report)
        }
        let outcome = try RecoveryGate.run(stateLocks: stateLocks, serviceLocks: try hostLocks(), holder: holder("recover"),
                                           journal: s, host: { [unowned self] in
                                               self.onProgress?("Recovering an update interrupted earlier…")
                                               return try self.host()
                                           }, clock: { [unowned self] in try self.clock() }, onStep: onStep)
        if outcome.inProgress == nil { finish() }
        return outcome
    }

    /// For `recover`: what other Caissons (other state directories) do on this host's catalog
    /// services: the ones changing a service now (its host-wide lock's live holder), and the
    /// unfinished marks (Docker mode) of one that is gone, which this state directory cannot recover.
    public func foreignActivity() throws -> (live: [LockHolder], leftovers: [Issue]) {
        try ForeignMarks.survey(services: catalog().services, serviceLocks: hostLocks(), stateDirectory: stateDir,
                                host: host(), journal: store())
    }
}
