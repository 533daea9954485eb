/// A TOML date/time value of one of the four TOML kinds.
///
/// Components are kept as written: fractional seconds are the exact digits after the '.'
/// (no rounding), and the offset is kept in minutes (`Z` is an offset of 0).
public struct TOMLDateTime: Hashable, Sendable, CustomStringConvertible {
    public enum Kind: String, Hashable, Sendable, CaseIterable {
        /// `1979-05-27T07:32:00Z`, `1979-05-27 07:32:00-07:00`
        case offsetDateTime
        /// `1979-05-27T07:32:00`
        case localDateTime
        /// `1979-05-27`
        case localDate
        /// `07:32:00.999`
        case localTime

        /// The toml-test type tag: `datetime`, `datetime-local`, `date-local`, `time-local`.
        public var tomlTestType: String {
            switch self {
            case .offsetDateTime: return "datetime"
            case .localDateTime: return "datetime-local"
            case .localDate: return "date-local"
            case .localTime: return "time-local"
            }
        }

        /// "an offset date-time", "a local date-time", "a local date", "a local time".
        public var typeDescription: String {
            switch self {
            case .offsetDateTime: return "an offset date-time"
            case .localDateTime: return "a local date-time"
            case .localDate: return "a local date"
            case .localTime: return "a local time"
            }
        }

        public var hasDate: Bool { self != .localTime }
        public var hasTime: Bool { self != .localDate }
    }

    public var kind: Kind
    /// 0...9999; 0 for a local time.
    public var year: Int
    /// 1...12; 0 for a local time.
    public var month: Int
    /// 1...31; 0 for a local time.
    public var day: Int
    /// 0...23; 0 for a local date.
    public var hour: Int
    /// 0...59; 0 for a local date.
    public var minute: Int
    /// 0...60 (60 only for a leap second); 0 for a local date.
    public var second: Int
    /// The digits after the decimal point exactly as written ("" when there are none).
    public var fraction: String
    /// Minutes east of UTC for an offset date-time (`Z` is 0); nil for the local kinds.
    public var offsetMinutes: Int?

    public init(kind: Kind, year: Int = 0, month: Int = 0, day: Int = 0, hour: Int = 0, minute: Int = 0,
                second: Int = 0, fraction: String = "", offsetMinutes: Int? = nil) {
        self.kind = kind
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
        self.fraction = fraction
        self.offsetMinutes = offsetMinutes
    }

    /// Parses one TOML date/time literal (any of the four kinds), e.g. an RFC 3339 string from a
    /// manifest. Returns nil if `text` is not exactly one valid date/time.
    public init?(parsing text: String) {
        let bytes = Array(text.utf8)
        guard let dt = try? TOMLParser.parseStandaloneDateTime(bytes) else { return nil }
        self = dt
    }

    /// Nanoseconds from the fraction (first nine digits; further digits are truncated).
    public var nanosecond: Int {
        var n = 0
        var digits = 0
        for c in fraction.utf8 where digits < 9 {
            n = n * 10 + Int(c &- 0x30)
            digits += 1
        }
        while digits < 9 { n *= 10; digits += 1 }
        return n
    }

    /// Seconds since 1970-01-01T00:00:00Z for an offset date-time (leap second 60 counts as the
    /// next second); nil for the local kinds, which name no instant.
    public var epochSeconds: Int64? {
        guard kind == .offsetDateTime, let offsetMinutes else { return nil }
        let days = Int64(TOMLDateTime.daysFromCivil(year: year, month: month, day: day))
        let secs = days * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        return secs - Int64(offsetMinutes) * 60
    }

    /// The canonical text: RFC 3339 for an offset date-time (`T` separator, `Z` for offset 0),
    /// and the RFC 3339 partial forms for the local kinds. Fraction digits are kept as written.
    public var rfc3339: String {
        var s = ""
        if kind.hasDate {
            s += pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2)
        }
        if kind.hasTime {
            if kind.hasDate { s += "T" }
            s += pad(hour, 2) + ":" + pad(minute, 2) + ":" + pad(second, 2)
            if !fraction.isEmpty { s += "." + fraction }
        }
        if kind == .offsetDateTime, let off = offsetMinutes {
            if off == 0 {
                s += "Z"
            } else {
                let a = abs(off)
                s += (off < 0 ? "-" : "+") + pad(a / 60, 2) + ":" + pad(a % 60, 2)
            }
        }
        return s
    }

    public var description: String { rfc3339 }

    private func pad(_ v: Int, _ width: Int) -> String {
        let d = String(v)
        return d.count >= width ? d : String(repeating: "0", count: width - d.count) + d
    }

    static func isLeapYear(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 1, 3, 5, 7, 8, 10, 12: return 31
        case 4, 6, 9, 11: return 30
        case 2: return isLeapYear(year) ? 29 : 28
        default: return 0
        }
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}

extension TOMLDateTime: Decodable {
    /// Outside `TOMLDecoder` (which hands the value over as it is), a date/time decodes from its
    /// text form, e.g. an RFC 3339 string in JSON.
    public init(from decoder: any Decoder) throws {
        if let d = decoder as? TOMLValueDecoderImpl, case .datetime(let dt) = d.value {
            self = dt
            return
        }
        let c = try decoder.singleValueContainer()
        let text = try c.decode(String.self)
        guard let dt = TOMLDateTime(parsing: text) else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a valid date/time: \(text)")
        }
        self = dt
    }
}
