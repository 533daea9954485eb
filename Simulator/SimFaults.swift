import CaissonCore

/// The `ContainerHost` calls, as fault targets and in the call log.
public enum SimOperation: String, Sendable, Equatable, Hashable, Codable, CaseIterable {
    case ping, loadImage, inspectImage, tagImage, removeImage
    case inspectContainer, createContainer, startContainer, stopContainer, renameContainer, removeContainer
    case composeContainers, composeApply
    case listContainers
    /// Issue 12: failure evidence and health probes.
    case containerDetails, containerLogs, probe
    /// Listing every image with its layers (issue 16: inventory, preflight of thin packages).
    case listImages
    /// Reading a compose service's model (its `image:`).
    case composeModel

    /// Position in `allCases` (a dense index for counters).
    public var ordinal: Int {
        switch self {
        case .ping: return 0
        case .loadImage: return 1
        case .inspectImage: return 2
        case .tagImage: return 3
        case .removeImage: return 4
        case .inspectContainer: return 5
        case .createContainer: return 6
        case .startContainer: return 7
        case .stopContainer: return 8
        case .renameContainer: return 9
        case .removeContainer: return 10
        case .composeContainers: return 11
        case .composeApply: return 12
        case .listContainers: return 13
        case .containerDetails: return 14
        case .containerLogs: return 15
        case .probe: return 16
        case .listImages: return 17
        case .composeModel: return 18
        }
    }

    /// Reads change nothing on the host.
    public var isReadOnly: Bool {
        switch self {
        case .ping, .inspectImage, .inspectContainer, .composeContainers, .listContainers, .containerDetails, .containerLogs, .probe, .listImages, .composeModel: return true
        default: return false
        }
    }
}

/// What an injected fault does to one call.
public enum FaultKind: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    /// Definitely failed (`.failed`); nothing applied.
    case fail
    /// The call takes effect, then the answer is lost (`.indeterminate`).
    case failAfterApplying
    /// Nothing applied, `millis` pass, then `.indeterminate`.
    case timeout(millis: Int64)
    /// `millis` pass, then the call proceeds normally.
    case slow(millis: Int64)
    /// `.diskFull`; nothing applied.
    case diskFull
    /// The daemon cannot be reached (`.unreachable`); nothing applied.
    case unreachable
    /// The daemon restarts (gracefully) just before the call, which then proceeds.
    case daemonRestart
    /// dockerd crashes and comes back just before the call, which then proceeds (`unless-stopped`
    /// containers stay down afterwards, as measured on Docker 20.10). Not in `all`.
    case daemonCrash

    public static let defaultTimeout = FaultKind.timeout(millis: 30_000)
    public static let defaultSlow = FaultKind.slow(millis: 5_000)
    /// Every kind, with default durations (the swarm's menu).
    public static let all: [FaultKind] = [.fail, .failAfterApplying, defaultTimeout, defaultSlow, .diskFull,
                                          .unreachable, .daemonRestart]
    /// `all` plus `daemonCrash`.
    public static let extended: [FaultKind] = all + [.daemonCrash]

    public var description: String {
        switch self {
        case .fail: return "fail"
        case .failAfterApplying: return "fail-after-applying"
        case .timeout(let ms): return "timeout(\(ms)ms)"
        case .slow(let ms): return "slow(\(ms)ms)"
        case .diskFull: return "disk-full"
        case .unreachable: return "unreachable"
        case .daemonRestart: return "daemon-restart"
        case .daemonCrash: return "daemon-crash"
        }
    }
}

/// One targeted fault. A rule matches a call when every given selector matches:
/// `callIndex` (0-based index among all calls), `operation`, `operationIndex` (0-based index among
/// the calls of `operation`). A rule with no selector matches every call.
public struct FaultRule: Sendable, Equatable, Hashable, Codable {
    public var callIndex: Int?
    public var operation: SimOperation?
    public var operationIndex: Int?
    public var kind: FaultKind

    public init(callIndex: Int? = nil, operation: SimOperation? = nil, operationIndex: Int? = nil, kind: FaultKind) {
        self.callIndex = callIndex
        self.operation = operation
        self.operationIndex = operationIndex
        self.kind = kind
    }

    /// The `index`-th call overall (0-based).
    public static func atCall(_ index: Int, _ kind: FaultKind) -> FaultRule {
        FaultRule(callIndex: index, kind: kind)
    }

    /// The `nth` call (0-based) of `operation`, or every call of it when `nth` is nil.
    public static func on(_ operation: SimOperation, nth: Int? = nil, _ kind: FaultKind) -> FaultRule {
        FaultRule(operation: operation, operationIndex: nth, kind: kind)
    }

    func matches(callIndex i: Int, operation op: SimOperation, operationIndex n: Int) -> Bool {
        (callIndex == nil || callIndex == i) && (operation == nil || operation == op)
            && (operationIndex == nil || operationIndex == n)
    }
}

/// Targeted faults (first matching rule wins) and optionally a swarm. Rules take precedence.
public struct FaultPlan: Sendable, Equatable, Codable {
    public var rules: [FaultRule]
    public var swarm: SwarmFaults?

    public init(rules: [FaultRule] = [], swarm: SwarmFaults? = nil) {
        self.rules = rules
        self.swarm = swarm
    }

    public static let none = FaultPlan()
}

/// Random faults, BUGGIFY style: each (operation, kind) site is decided active or inactive once
/// per run (with `siteActivationProbability`); at each call of an operation with active sites, a
/// fault fires with `probability`, its kind drawn among that operation's active kinds.
public struct SwarmFaults: Sendable, Equatable, Codable {
    public var seed: UInt64
    public var kinds: [FaultKind]
    public var probability: Double
    public var siteActivationProbability: Double
    public var operations: [SimOperation]

    public init(seed: UInt64, kinds: [FaultKind] = FaultKind.all, probability: Double = 0.05,
                siteActivationProbability: Double = 0.5, operations: [SimOperation] = SimOperation.allCases) {
        self.seed = seed
        self.kinds = kinds
        self.probability = probability
        self.siteActivationProbability = siteActivationProbability
        self.operations = operations
    }

    /// VOPR style: a random non-empty subset of `menu` and a random probability, from `seed`.
    public static func randomized(seed: UInt64, menu: [FaultKind] = FaultKind.all) -> SwarmFaults {
        var rng = SplitMix64(seed: seed ^ 0x5EED_5A12_0F0F_A17)
        var kinds = menu.filter { _ in rng.chance(0.5) }
        if kinds.isEmpty, !menu.isEmpty { kinds = [menu[rng.below(menu.count)]] }
        let probabilities = [0.01, 0.02, 0.05, 0.1, 0.2]
        return SwarmFaults(seed: seed, kinds: kinds, probability: probabilities[rng.below(probabilities.count)])
    }
}

/// A swarm in progress: its stream and the sites it activated.
public struct SwarmState: Sendable, Equatable, Codable {
    public var config: SwarmFaults
    public var rng: SplitMix64
    /// Per operation ordinal: indexes into `config.kinds` of the active sites.
    public var activeSites: [[Int]]

    public init(_ config: SwarmFaults) {
        self.config = config
        var rng = SplitMix64(seed: config.seed)
        let ops = SimOperation.allCases
        var enabled = [Bool](repeating: false, count: ops.count)
        for op in config.operations { enabled[op.ordinal] = true }
        var sites: [[Int]] = []
        sites.reserveCapacity(ops.count)
        var active: [Int] = []
        active.reserveCapacity(config.kinds.count)
        for op in ops {
            active.removeAll(keepingCapacity: true)
            for k in config.kinds.indices {
                // Always draw, so the stream does not depend on which operations are enabled.
                let on = rng.chance(config.siteActivationProbability)
                if on, enabled[op.ordinal] { active.append(k) }
            }
            sites.append(active.isEmpty ? [] : Array(active))
        }
        self.rng = rng
        self.activeSites = sites
    }

    mutating func draw(_ op: SimOperation) -> FaultKind? {
        guard op.ordinal < activeSites.count else { return nil }
        let sites = activeSites[op.ordinal]
        guard !sites.isEmpty, rng.chance(config.probability) else { return nil }
        return config.kinds[sites[rng.below(sites.count)]]
    }

    /// The active (operation, kind) sites, for reports.
    public var activeSiteList: [(SimOperation, FaultKind)] {
        var out: [(SimOperation, FaultKind)] = []
        for op in SimOperation.allCases { for k in activeSites[op.ordinal] { out.append((op, config.kinds[k])) } }
        return out
    }
}

/// One host call, as recorded in `SimulatedHost.calls`.
public struct SimCall: Sendable, Equatable, Codable {
    /// 0-based index among all calls (what `FaultRule.atCall` targets).
    public var index: Int
    public var operation: SimOperation
    /// 0-based index among the calls of `operation`.
    public var operationIndex: Int
    /// Virtual time when the call began.
    public var atMillis: Int64
    public var fault: FaultKind?
    /// nil when the call returned normally.
    public var error: HostError.Kind?
}

/// 64-bit FNV-1a, for the running trace digest.
public struct FNV1a64: Sendable, Equatable {
    public static let offsetBasis: UInt64 = 0xCBF2_9CE4_8422_2325
    public static let prime: UInt64 = 0x0000_0100_0000_01B3
    public var value: UInt64

    public init(_ value: UInt64 = FNV1a64.offsetBasis) { self.value = value }

    @inline(__always) public mutating func add(byte: UInt8) {
        value = (value ^ UInt64(byte)) &* FNV1a64.prime
    }

    public mutating func add(_ s: String) {
        var v = value
        var copy = s
        copy.withUTF8 { buf in
            for b in buf { v = (v ^ UInt64(b)) &* FNV1a64.prime }
        }
        value = v
    }

    /// Folds the UTF-8 of `s` eight bytes at a time (FNV-1a's xor-multiply over little-endian
    /// words, plus a xor-shift so high bits reach the low ones), then its length. A different
    /// function from `add(_:)`, several times faster on 64-digit ids: the trace digest uses it.
    public mutating func addWords(_ s: String) {
        var v = value
        var copy = s
        copy.withUTF8 { buf in
            guard let base = UnsafeRawPointer(buf.baseAddress) else { return }
            let n = buf.count
            var i = 0
            while i + 8 <= n {
                let w = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                v = (v ^ w) &* FNV1a64.prime
                v ^= v >> 32
                i += 8
            }
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while i < n {
                tail |= UInt64(buf[i]) << shift
                shift += 8
                i += 1
            }
            v = (v ^ tail ^ (UInt64(n) << 56)) &* FNV1a64.prime
            v ^= v >> 32
        }
        value = v
    }

    /// Folds `n` as one word (the same step as `addWords(_:)`).
    @inline(__always) public mutating func addWord(_ n: Int64) {
        value = (value ^ UInt64(bitPattern: n)) &* FNV1a64.prime
        value ^= value >> 32
    }

    public mutating func add(_ n: Int64) {
        var v = value
        var x = UInt64(bitPattern: n)
        for _ in 0..<8 {
            v = (v ^ (x & 0xFF)) &* FNV1a64.prime
            x >>= 8
        }
        value = v
    }
}
