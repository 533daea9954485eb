import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a long byte-counting step is doing (the label of its progress line).
public enum ProgressPhase: String, Sendable {
    case staging = "Copying"
    case validating = "Validating"
    case loading = "Loading image"
    case inspecting = "Inspecting image"
    case writing = "Writing package"
    case encrypting = "Encrypting image"
    case compressing = "Compressing image"
    case decrypting = "Decrypting image"
}

/// One progress display for one step of known size, written to stderr.
///
/// On a terminal: a single line redrawn in place (`\r`) with a bar, bytes, rate and ETA, at most
/// ten times a second. Otherwise: a plain line at every 10% and at least every 5 s. Colour only on
/// a terminal, and never when `NO_COLOR` is set (https://no-color.org) or `TERM=dumb`.
/// The time source is the monotonic clock, read here (never in Core).
public final class ProgressMeter {
    public let label: String
    public let total: Int64
    let terminal: Bool
    let colour: Bool
    let write: (String) -> Void
    let now: () -> Int64

    /// Told the bytes done at every update and at the end (a front end's own display).
    public var onUpdate: ((Int64) -> Void)?

    private let started: Int64
    private var lastDraw: Int64?
    private var lastDecile = -1
    private var lastBytes: Int64 = 0
    private var finished = false
    private var drewLine = false

    public init(label: String, total: Int64, terminal: Bool, colour: Bool,
                now: @escaping () -> Int64 = ProgressMeter.monotonicMillis,
                write: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) }) {
        self.label = label
        self.total = max(0, total)
        self.terminal = terminal
        self.colour = colour
        self.now = now
        self.write = write
        self.started = now()
    }

    public static func monotonicMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// The environment's wishes: colour unless `NO_COLOR` is set (to anything) or `TERM=dumb`.
    public static func colourAllowed(_ env: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        env["NO_COLOR"] == nil && env["TERM"] != "dumb"
    }

    public static var stderrIsTerminal: Bool { isatty(2) == 1 }

    /// Bytes done so far (monotone; smaller values are ignored).
    public func update(_ bytes: Int64) {
        guard !finished else { return }
        let done = min(max(bytes, lastBytes), total > 0 ? total : max(bytes, lastBytes))
        lastBytes = done
        onUpdate?(done)
        let t = now()
        if terminal {
            if lastDraw.map({ t - $0 >= 100 }) ?? true {
                lastDraw = t
                draw(done, at: t)
            }
        } else {
            let decile = total > 0 ? Int(done * 10 / total) : 0
            if decile > lastDecile || (lastDraw.map { t - $0 >= 5000 } ?? true) {
                // The 100% line is printed by finish().
                if decile >= 10 { return }
                lastDecile = decile
                lastDraw = t
                write(plainLine(done, at: t) + "\n")
            }
        }
    }

    /// Draws the final state (100% when `completed`) and ends the line.
    public func finish(completed: Bool = true) {
        guard !finished else { return }
        let t = now()
        let done = completed ? total : lastBytes
        onUpdate?(done)
        if terminal {
            draw(done, at: t)
            write("\n")
        } else {
            write(plainLine(done, at: t) + (completed || done >= total ? "" : " (stopped)") + "\n")
        }
        finished = true
    }

    func rate(_ done: Int64, at t: Int64) -> Double? {
        let ms = t - started
        guard ms > 0 else { return nil }
        return Double(done) * 1000 / Double(ms)
    }

    func percent(_ done: Int64) -> Int {
        total > 0 ? Int(done * 100 / total) : 100
    }

    func plainLine(_ done: Int64, at t: Int64) -> String {
        var s = "\(label): \(percent(done))% (\(Format.bytes(done)) of \(Format.bytes(total))"
        if let r = rate(done, at: t), r > 0 { s += ", \(Format.bytes(Int64(r)))/s" }
        return s + ")"
    }

    func draw(_ done: Int64, at t: Int64) {
        let width = 24
        let filled = total > 0 ? Int(done * Int64(width) / total) : width
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        var s = "\(label) [\(colour ? "\u{1B}[32m" : "")\(bar)\(colour ? "\u{1B}[0m" : "")] \(String(format: "%3d", percent(done)))%"
        s += "  \(Format.bytes(done)) / \(Format.bytes(total))"
        if let r = rate(done, at: t), r > 0 {
            s += "  \(Format.bytes(Int64(r)))/s"
            if done < total { s += "  ETA \(Self.duration(Double(total - done) / r))" }
        }
        // \r to the start, then clear to the end of the line (no colour: a plain control code).
        write("\r" + s + "\u{1B}[K")
        drewLine = true
    }

    static func duration(_ secs: Double) -> String {
        guard secs.isFinite, secs >= 0 else { return "?" }
        let s = Int(secs.rounded(.up))
        if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
        if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s)s"
    }
}
