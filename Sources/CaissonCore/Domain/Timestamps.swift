/// RFC 3339 timestamps without Foundation's Date: parse to an instant (UTC seconds + nanos) and
/// render in UTC. Deterministic, and exact for ordering `created_at` values.
public struct Instant: Sendable, Equatable, Comparable, Hashable {
    public var seconds: Int64
    public var nanos: Int32

    public init(seconds: Int64, nanos: Int32 = 0) {
        self.seconds = seconds
        self.nanos = nanos
    }

    public static func < (a: Instant, b: Instant) -> Bool {
        (a.seconds, a.nanos) < (b.seconds, b.nanos)
    }
}

public enum Timestamps {
    /// Parse `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; `t`/space separator and lowercase `z`
    /// accepted as RFC 3339 allows. `nil` if invalid.
    public static func parse(_ text: String) -> Instant? {
        let b = Array(text.utf8)
        func num(_ i: Int, _ n: Int) -> Int? {
            guard i + n <= b.count else { return nil }
            var v = 0
            for k in i..<(i + n) {
                guard b[k] >= 48 && b[k] <= 57 else { return nil }
                v = v * 10 + Int(b[k] - 48)
            }
            return v
        }
        guard b.count >= 20, let y = num(0, 4), b[4] == 45, let mo = num(5, 2), b[7] == 45, let d = num(8, 2),
              b[10] == 84 || b[10] == 116 || b[10] == 32,
              let h = num(11, 2), b[13] == 58, let mi = num(14, 2), b[16] == 58, let s = num(17, 2) else { return nil }
        guard (1...12).contains(mo), d >= 1, d <= daysIn(month: mo, year: y), h <= 23, mi <= 59, s <= 60 else { return nil }
        var i = 19
        var nanos: Int32 = 0
        if i < b.count && b[i] == 46 {
            i += 1
            let start = i
            var digits = 0
            var v: Int64 = 0
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                if digits < 9 { v = v * 10 + Int64(b[i] - 48); digits += 1 }
                i += 1
            }
            guard i > start else { return nil }
            while digits < 9 { v *= 10; digits += 1 }
            nanos = Int32(v)
        }
        guard i < b.count else { return nil }
        var offset = 0
        if b[i] == 90 || b[i] == 122 {
            i += 1
        } else if b[i] == 43 || b[i] == 45 {
            guard let oh = num(i + 1, 2), i + 3 < b.count, b[i + 3] == 58, let om = num(i + 4, 2), oh <= 23, om <= 59 else { return nil }
            offset = (oh * 60 + om) * 60 * (b[i] == 45 ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = daysFromCivil(y, mo, d)
        let secs = Int64(days) * 86400 + Int64(h * 3600 + mi * 60 + min(s, 59)) - Int64(offset)
        return Instant(seconds: secs, nanos: nanos)
    }

    /// Render as `YYYY-MM-DDTHH:MM:SSZ` (with `.fffffffff` trimmed when there are nanos).
    public static func format(_ t: Instant) -> String {
        var days = t.seconds / 86400
        var rem = t.seconds % 86400
        if rem < 0 { rem += 86400; days -= 1 }
        let (y, m, d) = civilFromDays(Int(days))
        func p(_ v: Int, _ w: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: Swift.max(0, w - s.count)) + s
        }
        var out = "\(p(y, 4))-\(p(m, 2))-\(p(d, 2))T\(p(Int(rem / 3600), 2)):\(p(Int(rem % 3600 / 60), 2)):\(p(Int(rem % 60), 2))"
        if t.nanos > 0 {
            var frac = p(Int(t.nanos), 9)
            while frac.hasSuffix("0") { frac.removeLast() }
            out += "." + frac
        }
        return out + "Z"
    }

    /// Normalize any valid RFC 3339 text to UTC `Z` form; `nil` if invalid.
    public static func normalize(_ text: String) -> String? {
        parse(text).map(format)
    }

    /// The later of two optional timestamps (invalid ones lose).
    public static func max(_ a: String?, _ b: String?) -> String? {
        guard let a, let ia = parse(a) else { return b }
        guard let b, let ib = parse(b) else { return a }
        return ia < ib ? b : a
    }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Days since 1970-01-01 (Howard Hinnant's algorithm).
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp + (mp < 10 ? 3 : -9)
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
