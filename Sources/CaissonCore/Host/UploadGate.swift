#if canImport(Glibc)
import Glibc
#endif

/// Holds the end of an image upload until the updater decides: `release()` once validation has
/// accepted the package (and the operator confirmed), `veto(_:)` otherwise.
///
/// This lets a host that streams the archive (Docker) receive it *while* it is validated: the
/// bytes go out as they are read, but the upload cannot end, and the daemon (which reads the
/// whole archive before it tags anything) cannot load it, before the verdict. A veto drops the
/// upload mid-body and nothing is loaded. One decision only: the first `release` or `veto` wins.
public final class UploadGate: @unchecked Sendable, Equatable {
    public enum Decision: Sendable, Equatable {
        case release
        case veto(String)
    }

    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var decision: Decision?

    public init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    public static func == (a: UploadGate, b: UploadGate) -> Bool { a === b }

    /// Lets the upload end (its own checks still apply). No effect after a decision.
    public func release() { decide(.release) }

    /// Stops the upload before its end; `reason` becomes the host's error. No effect after a decision.
    public func veto(_ reason: String) { decide(.veto(reason)) }

    /// The decision, if one was made (does not wait).
    public var current: Decision? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return decision
    }

    /// Waits for the decision (the uploading side, at the end of the archive).
    public func wait() -> Decision {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while decision == nil { pthread_cond_wait(&condition, &mutex) }
        return decision!
    }

    private func decide(_ d: Decision) {
        pthread_mutex_lock(&mutex)
        if decision == nil {
            decision = d
            pthread_cond_broadcast(&condition)
        }
        pthread_mutex_unlock(&mutex)
    }
}
