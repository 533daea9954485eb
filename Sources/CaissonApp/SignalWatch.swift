import CaissonCore
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// Process-wide state the signal handler touches: lock-free atomics and one pipe (all
// async-signal-safe).
private let signalCount = Atomic<Int>(0)
private let firstSignalNanos = Atomic<Int64>(0)
private let lastSignalNumber = Atomic<Int32>(0)
private let wakePipeWrite = Atomic<Int32>(-1)

/// The nanoseconds a second signal may follow the first and still mean "quit now".
private let forceWindowNanos: Int64 = 3_000_000_000

private func monotonicNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// Ctrl-C (SIGINT) and SIGTERM while Caisson changes something (issue 10 item 4).
///
/// The first signal never kills the process: it is recorded, and each phase decides: at the
/// prompt it is "no" (exit 3); while staging, validating or loading, the update does not go ahead
/// (the image upload is vetoed before its end, the staged copy removed); during the swap and the
/// health check the update machine gets `.cancel` and restores the previous release (or finishes
/// a commit whose health check already passed). A second signal within 3 s exits at once (exit
/// 130 for SIGINT, 143 for SIGTERM) and leaves the attempt to `caisson recover` (and to the boot
/// unit in `contrib/systemd/`).
public final class SignalWatch: @unchecked Sendable {
    public enum Phase: Int, Sendable {
        case idle = 0, prompt, preparing, updating, recovering
    }

    public static let shared = SignalWatch()

    private let lock = NSLock()
    private var installed = false
    private var phaseValue: Phase = .idle
    private var hooks: [() -> Void] = []
    /// Where the "stopping safely" sentences go (the CLI's stderr).
    public var say: ((String) -> Void)?

    /// Installs the handlers for SIGINT and SIGTERM (once per process) and starts the thread that
    /// says what happens.
    public func install() {
        lock.lock()
        defer { lock.unlock() }
        guard !installed else { return }
        installed = true
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
        wakePipeWrite.store(fds[1], ordering: .sequentiallyConsistent)
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { sig in
            let now = monotonicNanos()
            let previous = signalCount.wrappingAdd(1, ordering: .sequentiallyConsistent).oldValue
            if previous > 0, now - firstSignalNanos.load(ordering: .sequentiallyConsistent) < forceWindowNanos {
                let text = "\ncaisson: second signal: stopping now; run `caisson recover` to finish safely\n"
                _ = text.withCString { write(2, $0, strlen($0)) }
                _exit(128 + sig)
            }
            if previous > 0 {
                // Too late to count as "quit now": a new first signal.
                signalCount.store(1, ordering: .sequentiallyConsistent)
            }
            firstSignalNanos.store(now, ordering: .sequentiallyConsistent)
            lastSignalNumber.store(sig, ordering: .sequentiallyConsistent)
            var byte = UInt8(truncatingIfNeeded: sig)
            _ = write(wakePipeWrite.load(ordering: .sequentiallyConsistent), &byte, 1)
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        sigaction(SIGINT, &action, nil)
        sigaction(SIGTERM, &action, nil)
        // A parent may have started us with these blocked (a mask is inherited): unblock them
        // here, before any thread is started (threads inherit the mask).
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        let readFD = fds[0]
        let thread = Thread { [self] in
            var byte: UInt8 = 0
            while true {
                let n = read(readFD, &byte, 1)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                self.announce()
            }
        }
        thread.name = "caisson-signals"
        thread.start()
    }

    /// Changes at every signal.
    var stamp: [Int64] {
        [Int64(signalCount.load(ordering: .sequentiallyConsistent)), firstSignalNanos.load(ordering: .sequentiallyConsistent)]
    }

    /// A signal arrived (since the process started).
    public var requested: Bool { signalCount.load(ordering: .sequentiallyConsistent) > 0 }

    /// `SIGINT` or `SIGTERM`, once one arrived.
    public var signalName: String {
        lastSignalNumber.load(ordering: .sequentiallyConsistent) == SIGTERM ? "SIGTERM" : "interrupt (Ctrl-C)"
    }

    public var phase: Phase {
        get { lock.withLock { phaseValue } }
        set { lock.withLock { phaseValue = newValue } }
    }

    /// Runs `body` (once) when a signal arrives, from the watch's thread (at once if one already
    /// did). For actions that must not wait for the main thread, like vetoing an upload.
    public func onSignal(_ body: @escaping () -> Void) {
        let now: Bool = lock.withLock {
            if requested { return true }
            hooks.append(body)
            return false
        }
        if now { body() }
    }

    /// Drops the hooks (the step they belonged to is over).
    public func clearHooks() { lock.withLock { hooks.removeAll() } }

    private func announce() {
        let (phase, run): (Phase, [() -> Void]) = lock.withLock {
            defer { hooks.removeAll() }
            return (phaseValue, hooks)
        }
        for h in run { h() }
        let again = "press Ctrl-C again within 3 s to quit at once"
        switch phase {
        case .idle, .prompt: break
        case .preparing:
            say?("stopping safely: the update will not go ahead (\(again))")
        case .updating:
            say?("stopping safely: restoring the previous release (\(again) and leave it to `caisson recover`)")
        case .recovering:
            say?("stopping safely: finishing the recovery first (\(again) and leave it to `caisson recover`)")
        }
    }

    /// Sleeps up to `millis`, returning early when a signal arrives meanwhile.
    public static func sleep(millis: Int64, clock: SystemClock) {
        let seen = signalCount.load(ordering: .sequentiallyConsistent)
        let start = firstSignalNanos.load(ordering: .sequentiallyConsistent)
        var left = millis
        while left > 0 && signalCount.load(ordering: .sequentiallyConsistent) == seen
                && firstSignalNanos.load(ordering: .sequentiallyConsistent) == start {
            let slice = min(left, 100)
            clock.sleep(millis: slice)
            left -= slice
        }
    }
}

/// The real clock for the update machine, whose waits (health polls) end early on a signal so
/// the machine hears of it at once.
final class SignalAwareClock: UpdateClock {
    let base: SystemClock

    init(base: SystemClock) { self.base = base }

    var nowMillis: Int64 { base.nowMillis }
    func timestamp() -> String { base.timestamp() }
    func sleep(millis: Int64) { SignalWatch.sleep(millis: millis, clock: base) }
}

/// Runs `hook` before the first wait of an update (the health check has begun): debug builds
/// pause there for the signal tests.
final class FirstSleepHook: UpdateClock {
    let inner: any UpdateClock
    private var hook: (() -> Void)?

    init(inner: any UpdateClock, hook: @escaping () -> Void) {
        self.inner = inner
        self.hook = hook
    }

    var nowMillis: Int64 { inner.nowMillis }
    func timestamp() -> String { inner.timestamp() }
    func sleep(millis: Int64) {
        if let h = hook {
            hook = nil
            h()
        }
        inner.sleep(millis: millis)
    }
}

extension Application {
    /// Set when a signal asked to stop: the issue saying so, and what `state` says was (not) done.
    func stopRequested(_ state: String) -> Issue? {
        guard SignalWatch.shared.requested else { return nil }
        return Issue("update.cancelled", "stopped by \(SignalWatch.shared.signalName): \(state)")
    }
}

extension Application {
    /// Debug builds only (the tests' build): `CAISSON_DEBUG_PAUSE_AT=point[,point]` pauses at
    /// `validate` (before validation), `load` (before the image is loaded), `health` (at the first
    /// wait of the health check), `cancelled` (when a signal reached the update machine), saying `caisson-debug: paused at POINT` on stderr, for
    /// `CAISSON_DEBUG_PAUSE_MS` (default 5000), until a (further) signal arrives or until the file
    /// `CAISSON_DEBUG_RESUME_FILE` exists. A release build has no
    /// such switch.
    func debugPause(_ point: String) {
        #if DEBUG
        let env = ProcessInfo.processInfo.environment
        guard let points = env["CAISSON_DEBUG_PAUSE_AT"], points.split(separator: ",").contains(Substring(point)) else { return }
        let millis = env["CAISSON_DEBUG_PAUSE_MS"].flatMap { Int64($0) } ?? 5000
        FileHandle.standardError.write(Data("caisson-debug: paused at \(point) (pid \(getpid()))\n".utf8))
        // Also ends when CAISSON_DEBUG_RESUME_FILE appears.
        let resume = env["CAISSON_DEBUG_RESUME_FILE"]
        var left = millis
        let stamp = SignalWatch.shared.stamp
        while left > 0 && SignalWatch.shared.stamp == stamp && !(resume.map { FileManager.default.fileExists(atPath: $0) } ?? false) {
            SignalWatch.sleep(millis: min(left, 100), clock: systemClock)
            left -= 100
        }
        #endif
    }
}
