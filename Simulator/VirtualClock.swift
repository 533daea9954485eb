import CaissonCore

/// Simulated time. `nowMillis` only moves when someone sleeps (the update driver polling health,
/// the simulated host taking a stop grace period or a slow call). Wall-clock renderings count
/// from `originEpochMillis` (default 2026-01-01T00:00:00Z).
public final class VirtualClock: UpdateClock {
    /// Unix time (ms) of 2026-01-01T00:00:00Z.
    public static let defaultOriginEpochMillis: Int64 = 1_767_225_600_000

    @exclusivity(unchecked) public private(set) var nowMillis: Int64
    public let originEpochMillis: Int64

    public init(nowMillis: Int64 = 0, originEpochMillis: Int64 = VirtualClock.defaultOriginEpochMillis) {
        self.nowMillis = max(0, nowMillis)
        self.originEpochMillis = originEpochMillis
    }

    /// Let `millis` pass (negative or zero: nothing happens; saturates instead of overflowing).
    public func sleep(millis: Int64) {
        guard millis > 0 else { return }
        let (sum, overflow) = nowMillis.addingReportingOverflow(millis)
        nowMillis = overflow ? Int64.max : sum
    }

    /// Move to `millis` if it is later than now (time never goes back).
    public func advance(to millis: Int64) {
        if millis > nowMillis { nowMillis = millis }
    }

    /// The last `timestamp()` rendering and its second (the driver asks for one at every step,
    /// and virtual time mostly stands still between steps).
    @exclusivity(unchecked) private var stampSecond: Int64 = .min
    @exclusivity(unchecked) private var stamp = ""

    /// RFC 3339 UTC with whole seconds, e.g. `2026-01-01T00:00:05Z`.
    public func timestamp() -> String {
        let ms = epochMillis
        let second = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
        if second != stampSecond {
            stamp = VirtualClock.rfc3339(epochMillis: ms, fractionDigits: 0)
            stampSecond = second
        }
        return stamp
    }

    /// RFC 3339 UTC with milliseconds, e.g. `2026-01-01T00:00:05.250Z`.
    public func preciseTimestamp() -> String {
        VirtualClock.rfc3339(epochMillis: epochMillis, fractionDigits: 3)
    }

    public var epochMillis: Int64 {
        let (sum, overflow) = originEpochMillis.addingReportingOverflow(nowMillis)
        return overflow ? Int64.max : sum
    }

    /// Renders Unix milliseconds as RFC 3339 UTC. `fractionDigits` 0 prints whole seconds; 3
    /// milliseconds; 9 nanoseconds (the extra digits come from `extraNanos`, 0 ..< 1_000_000,
    /// which lets callers make markers unique within one millisecond, like Docker's StartedAt).
    public static func rfc3339(epochMillis: Int64, fractionDigits: Int, extraNanos: Int64 = 0) -> String {
        let (secsQ, msR) = epochMillis.quotientAndRemainder(dividingBy: 1000)
        var secs = secsQ
        var ms = msR
        if ms < 0 { ms += 1000; secs -= 1 }
        var (days, secOfDay) = secs.quotientAndRemainder(dividingBy: 86_400)
        if secOfDay < 0 { secOfDay += 86_400; days -= 1 }
        let (y, m, d) = civilFromDays(days)
        // Written straight into the string's storage (this runs at every simulated start and
        // every new second of the driver's clock): `YYYY-MM-DDTHH:MM:SS[.fff|.fffffffff]Z`,
        // with a wider or signed year when it does not fit in 4 digits.
        let yearDigits = y >= 0 && y <= 9999 ? 4 : decimalWidth(y)
        let fraction = fractionDigits <= 0 ? 0 : (fractionDigits >= 9 ? 9 : 3)
        let count = yearDigits + 16 + (fraction > 0 ? fraction + 1 : 0)
        return String(unsafeUninitializedCapacity: count) { buf in
            var i = 0
            if yearDigits == 4 {
                putDigits(UInt64(y), width: 4, into: buf, at: &i)
            } else {
                var tmp = [UInt8]()
                appendDecimal(y, width: 4, to: &tmp)
                for b in tmp { buf[i] = b; i += 1 }
            }
            buf[i] = UInt8(ascii: "-"); i += 1
            putDigits(UInt64(m), width: 2, into: buf, at: &i)
            buf[i] = UInt8(ascii: "-"); i += 1
            putDigits(UInt64(d), width: 2, into: buf, at: &i)
            buf[i] = UInt8(ascii: "T"); i += 1
            putDigits(UInt64(secOfDay / 3600), width: 2, into: buf, at: &i)
            buf[i] = UInt8(ascii: ":"); i += 1
            putDigits(UInt64((secOfDay / 60) % 60), width: 2, into: buf, at: &i)
            buf[i] = UInt8(ascii: ":"); i += 1
            putDigits(UInt64(secOfDay % 60), width: 2, into: buf, at: &i)
            if fraction == 9 {
                buf[i] = UInt8(ascii: "."); i += 1
                putDigits(UInt64(ms * 1_000_000 + min(max(extraNanos, 0), 999_999)), width: 9, into: buf, at: &i)
            } else if fraction == 3 {
                buf[i] = UInt8(ascii: "."); i += 1
                putDigits(UInt64(ms), width: 3, into: buf, at: &i)
            }
            buf[i] = UInt8(ascii: "Z"); i += 1
            return i
        }
    }

    /// Characters `appendDecimal(value, width: 4)` writes (sign included).
    private static func decimalWidth(_ value: Int64) -> Int {
        var v = value.magnitude
        var n = 0
        repeat { v /= 10; n += 1 } while v > 0
        return max(n, 4) + (value < 0 ? 1 : 0)
    }

    /// Exactly `width` decimal digits of `value` (which must fit), most significant first.
    @inline(__always)
    private static func putDigits(_ value: UInt64, width: Int, into buf: UnsafeMutableBufferPointer<UInt8>, at i: inout Int) {
        var v = value
        var k = i + width - 1
        while k >= i {
            buf[k] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10)
            v /= 10
            k -= 1
        }
        i += width
    }

    /// Days since 1970-01-01 → proleptic Gregorian (year, month, day). Howard Hinnant's
    /// `civil_from_days`, valid for the whole Int64 day range we can produce.
    public static func civilFromDays(_ z0: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097                                   // [0, 146096]
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365  // [0, 399]
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)             // [0, 365]
        let mp = (5 * doy + 2) / 153                                  // [0, 11]
        let d = doy - (153 * mp + 2) / 5 + 1                          // [1, 31]
        let m = mp < 10 ? mp + 3 : mp - 9                             // [1, 12]
        return (m <= 2 ? y + 1 : y, m, d)
    }

    /// Proleptic Gregorian date → days since 1970-01-01 (Hinnant's `days_from_civil`).
    public static func daysFromCivil(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = month > 2 ? month - 3 : month + 9
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

/// Appends `value` in decimal, left-padded with zeros to `width` (a minus sign for negatives).
func appendDecimal(_ value: Int64, width: Int, to out: inout [UInt8]) {
    var v = value.magnitude
    if value < 0 { out.append(UInt8(ascii: "-")) }
    let start = out.count
    var n = 0
    repeat {
        out.append(UInt8(ascii: "0") + UInt8(v % 10))
        v /= 10
        n += 1
    } while v > 0
    while n < width {
        out.append(UInt8(ascii: "0"))
        n += 1
    }
    out[start...].reverse()
}
