/// Who holds a lock, as written into the lock file (and shown to the next operator).
public struct LockHolder: Sendable, Codable, Equatable {
    public var operation: String
    public var pid: Int32
    public var since: String
    /// The state directory of the holder: host-wide locks are shared by every Caisson on the
    /// host, whatever its state directory, so the next operator needs to know which one it is.
    public var stateDirectory: String?

    public init(operation: String, pid: Int32, since: String, stateDirectory: String? = nil) {
        self.operation = operation
        self.pid = pid
        self.since = since
        self.stateDirectory = stateDirectory
    }

    /// `package load frontend (pid 1234, since 2026-03-16T18:30:00Z)`
    public var description: String {
        "\(operation) (pid \(pid), since \(since)\(stateDirectory.map { ", state directory \($0)" } ?? ""))"
    }

    enum CodingKeys: String, CodingKey {
        case operation, pid, since
        case stateDirectory = "state_dir"
    }
}

/// A place where named, exclusive, non-waiting locks live: the state directory (one Caisson
/// operation at a time per state directory) or the host-wide lock directory under `/run` (one
/// operation at a time per service on the host, whatever the state directory). The store
/// implements it with `flock` (the kernel drops a dead process's locks); the simulator's harness
/// with a table that drops a process's locks when the process "dies".
public protocol LockSpace: AnyObject {
    /// Takes the lock `name` for `holder` without waiting.
    func tryLock(_ name: String, holder: LockHolder) throws -> LockAttempt
    /// Who holds `name` now, if anyone (what its lock file says; does not lock).
    func holder(of name: String) -> LockHolder?
}

public enum LockAttempt {
    case acquired(HeldLock)
    /// Held by someone else (nil: the holder has not written its description yet).
    case busy(LockHolder?)
}

/// A lock this process holds. Released by `release()` or when dropped.
public final class HeldLock {
    public let name: String
    public let holder: LockHolder
    private var onRelease: (() -> Void)?

    public init(name: String, holder: LockHolder, onRelease: @escaping () -> Void) {
        self.name = name
        self.holder = holder
        self.onRelease = onRelease
    }

    public var isHeld: Bool { onRelease != nil }

    /// Idempotent.
    public func release() {
        let body = onRelease
        onRelease = nil
        body?()
    }

    deinit { release() }
}

/// The names of the locks and how a busy one is refused.
public enum OperationLocks {
    /// The lock of a state directory: one Caisson operation at a time per state directory.
    public static let stateLockName = "lock"

    /// The host-wide lock name of a service: what the update touches on the host, so two catalogs
    /// naming one container (or compose service) differently still meet on one lock.
    /// `container+NAME` or `compose+PROJECT+SERVICE`, other bytes than `[A-Za-z0-9._-]` as `_`.
    public static func serviceLockName(_ service: ServiceSpec) -> String {
        switch service.runtimeMode {
        case .docker:
            return "container+" + sanitizeComponent(service.docker?.containerName ?? service.name)
        case .compose:
            return "compose+" + sanitizeComponent(service.compose?.project ?? "") + "+" + sanitizeComponent(service.compose?.service ?? service.name)
        }
    }

    public static func sanitizeComponent(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "A"..."Z", "a"..."z", "0"..."9", ".", "_", "-": out.unicodeScalars.append(u)
            default: out += "_"
            }
        }
        return out.isEmpty ? "_" : out
    }

    /// Takes the state directory's lock or throws `lock.busy` naming the holder.
    public static func acquireState(_ space: any LockSpace, holder: LockHolder) throws -> HeldLock {
        switch try space.tryLock(stateLockName, holder: holder) {
        case .acquired(let lock): return lock
        case .busy(let other):
            let who = other.map { ": \($0.description)" } ?? " (its description is not written yet)"
            throw CaissonError("lock.busy", "another Caisson operation is running\(who). Wait for it to finish and try again.")
        }
    }

    /// Takes the host-wide lock of `service` or throws `lock.service_busy` naming the holder.
    public static func acquireService(_ space: any LockSpace, service: ServiceSpec, holder: LockHolder) throws -> HeldLock {
        switch try space.tryLock(serviceLockName(service), holder: holder) {
        case .acquired(let lock): return lock
        case .busy(let other):
            let who = other.map { ": \($0.description)" } ?? ""
            throw CaissonError("lock.service_busy", "service \(service.name) is being changed by another Caisson on this host\(who). Wait for it to finish; if it uses another state directory, run its commands with that state directory (--state-dir or CAISSON_STATE_DIR).")
        }
    }
}
