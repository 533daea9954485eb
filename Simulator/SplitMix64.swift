import CaissonCore

/// Sebastiano Vigna's SplitMix64: a tiny, fast, seedable 64-bit generator. Every random decision
/// of the simulator comes from one of these, so a seed fully determines a run.
public struct SplitMix64: RandomNumberGenerator, Sendable, Codable, Equatable, Hashable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in `0 ..< n` (Lemire's multiply-shift with rejection; unbiased). `n <= 0` gives 0.
    public mutating func below(_ n: Int) -> Int {
        guard n > 1 else { return 0 }
        let bound = UInt64(n)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
        }
        return Int(m.high)
    }

    /// A double uniform in `[0, 1)` with 53 bits of randomness.
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// True with probability `p` (p <= 0 never, p >= 1 always; no draw is skipped either way, so
    /// the stream position does not depend on p).
    public mutating func chance(_ p: Double) -> Bool { unit() < p }

    /// A generator for an independent sub-stream (derived by mixing `salt` into a fresh draw).
    public mutating func fork(salt: UInt64) -> SplitMix64 {
        var mixer = SplitMix64(seed: next() ^ (salt &* 0xD1B5_4A32_D192_ED03))
        return SplitMix64(seed: mixer.next())
    }
}

/// Lowercase RFC 4122 version-4-shaped ids from a seeded stream (the CLI uses random UUIDs).
public final class SeededIDGenerator: IDGenerator {
    public private(set) var rng: SplitMix64

    public init(seed: UInt64) { rng = SplitMix64(seed: seed ^ 0x1D5E_ED1D_5EED_1D5E) }

    public func next() -> String {
        var hi = rng.next()
        var lo = rng.next()
        hi = (hi & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000   // version 4
        lo = (lo & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000   // variant 10
        var out = [UInt8]()
        out.reserveCapacity(36)
        appendHex(hi >> 32, digits: 8, to: &out)
        out.append(UInt8(ascii: "-"))
        appendHex((hi >> 16) & 0xFFFF, digits: 4, to: &out)
        out.append(UInt8(ascii: "-"))
        appendHex(hi & 0xFFFF, digits: 4, to: &out)
        out.append(UInt8(ascii: "-"))
        appendHex(lo >> 48, digits: 4, to: &out)
        out.append(UInt8(ascii: "-"))
        appendHex(lo & 0xFFFF_FFFF_FFFF, digits: 12, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}


/// Appends the low `digits` hex digits of `value`, most significant first.
@inlinable func appendHex(_ value: UInt64, digits: Int, to out: inout [UInt8]) {
    var shift = (digits - 1) * 4
    while shift >= 0 {
        let d = UInt8(truncatingIfNeeded: (value >> UInt64(shift)) & 0xF)
        out.append(d < 10 ? UInt8(ascii: "0") + d : UInt8(ascii: "a") - 10 + d)
        shift -= 4
    }
}

/// 64 lowercase hex digits from four draws: a Docker-shaped object id.
func hex64(_ rng: inout SplitMix64) -> String {
    var out = [UInt8]()
    out.reserveCapacity(64)
    for _ in 0..<4 { appendHex(rng.next(), digits: 16, to: &out) }
    return String(decoding: out, as: UTF8.self)
}
