import CaissonCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The real clock: monotonic milliseconds for durations, the system clock for record timestamps.
/// (Core and the simulator never read time themselves; it is injected from here.)
public final class SystemClock: UpdateClock {
    public init() {}

    public var nowMillis: Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    public func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamps.format(Instant(seconds: Int64(ts.tv_sec), nanos: 0))
    }

    public func sleep(millis: Int64) {
        guard millis > 0 else { return }
        var req = timespec(tv_sec: Int(millis / 1000), tv_nsec: Int(millis % 1000) * 1_000_000)
        var rem = timespec()
        while nanosleep(&req, &rem) != 0 && errno == EINTR { req = rem }
    }
}

/// Random v4 UUIDs for record ids (outside Core: Core only sees the `IDGenerator` protocol).
public final class RandomIDGenerator: IDGenerator {
    public init() {}
    public func next() -> String { UUID().uuidString.lowercased() }
}
