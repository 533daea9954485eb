/// Semantic Versioning 2.0.0: parse, validate, order (build metadata ignored for precedence).
public struct SemVer: Sendable, Equatable, Comparable, CustomStringConvertible, Codable {
    public var major: UInt64
    public var minor: UInt64
    public var patch: UInt64
    public var prerelease: [String]
    public var build: [String]

    public init(major: UInt64, minor: UInt64, patch: UInt64, prerelease: [String] = [], build: [String] = []) {
        self.major = major
        self.minor = minor
        self.patch = patch
        self.prerelease = prerelease
        self.build = build
    }

    /// `nil` when `text` is not a valid SemVer 2.0 version.
    public init?(_ text: String) {
        var rest = Substring(text)
        var build: [String] = []
        if let plus = rest.firstIndex(of: "+") {
            let b = rest[rest.index(after: plus)...]
            build = b.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !build.isEmpty, build.allSatisfy({ !$0.isEmpty && $0.allSatisfy(SemVer.isIdentChar) }) else { return nil }
            rest = rest[..<plus]
        }
        var pre: [String] = []
        if let dash = rest.firstIndex(of: "-") {
            let p = rest[rest.index(after: dash)...]
            pre = p.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !pre.isEmpty else { return nil }
            for id in pre {
                guard !id.isEmpty, id.allSatisfy(SemVer.isIdentChar) else { return nil }
                if id.allSatisfy(\.isASCIIDigit), id.count > 1, id.first == "0" { return nil }
            }
            rest = rest[..<dash]
        }
        let parts = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var nums: [UInt64] = []
        for p in parts {
            guard !p.isEmpty, p.allSatisfy(\.isASCIIDigit), !(p.count > 1 && p.first == "0"), let n = UInt64(p) else { return nil }
            nums.append(n)
        }
        self.init(major: nums[0], minor: nums[1], patch: nums[2], prerelease: pre, build: build)
    }

    static func isIdentChar(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "-")
    }

    public var description: String {
        var s = "\(major).\(minor).\(patch)"
        if !prerelease.isEmpty { s += "-" + prerelease.joined(separator: ".") }
        if !build.isEmpty { s += "+" + build.joined(separator: ".") }
        return s
    }

    public static func < (a: SemVer, b: SemVer) -> Bool {
        if a.major != b.major { return a.major < b.major }
        if a.minor != b.minor { return a.minor < b.minor }
        if a.patch != b.patch { return a.patch < b.patch }
        if a.prerelease.isEmpty != b.prerelease.isEmpty { return !a.prerelease.isEmpty }
        for (x, y) in zip(a.prerelease, b.prerelease) where x != y {
            let xn = x.allSatisfy(\.isASCIIDigit), yn = y.allSatisfy(\.isASCIIDigit)
            switch (xn, yn) {
            case (true, true): return (UInt64(x) ?? 0, x.count) < (UInt64(y) ?? 0, y.count)
            case (true, false): return true
            case (false, true): return false
            case (false, false): return x < y
            }
        }
        return a.prerelease.count < b.prerelease.count
    }

    /// Precedence equality (build metadata ignored).
    public func samePrecedence(as other: SemVer) -> Bool { !(self < other) && !(other < self) }

    /// The higher of two optional version strings (invalid strings lose).
    public static func max(_ a: String?, _ b: String?) -> String? {
        guard let a, let va = SemVer(a) else { return b }
        guard let b, let vb = SemVer(b) else { return a }
        return va < vb ? b : a
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
