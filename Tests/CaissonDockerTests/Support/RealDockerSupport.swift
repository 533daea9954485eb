import CaissonCore
import Foundation
import Testing
@testable import CaissonDocker
#if canImport(Glibc)
import Glibc
#endif

/// The real clock for driving the update machine against a real daemon (the test target does not
/// link CaissonApp, whose `SystemClock` is the same thing).
final class RealTestClock: UpdateClock {
    var nowMillis: Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    func timestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Timestamps.format(Instant(seconds: Int64(ts.tv_sec), nanos: 0))
    }

    func sleep(millis: Int64) {
        guard millis > 0 else { return }
        var req = timespec(tv_sec: Int(millis / 1000), tv_nsec: Int(millis % 1000) * 1_000_000)
        var rem = timespec()
        while nanosleep(&req, &rem) != 0 && errno == EINTR { req = rem }
    }
}

extension RealDocker {
    /// The repository root (for scripts/ and fixtures/).
    static let repoRoot: String = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static var required: Bool { ProcessInfo.processInfo.environment["CAISSON_REQUIRE_DOCKER"] == "1" }

    /// True when the real-daemon arm of a test can run. Otherwise prints a visible notice and,
    /// when `CAISSON_REQUIRE_DOCKER=1`, records a failure (a missing daemon must not pass in CI).
    static func usable(_ what: String) -> Bool {
        if availableWithBusybox && testImagesReady { return true }
        print("NOTICE: \(what) SKIPPED: no usable Docker daemon (or caisson-test images) at \(dockerHost ?? "the default socket")")
        if required {
            Issue.record("CAISSON_REQUIRE_DOCKER=1 but \(what) cannot run: no daemon or no caisson-test/app images")
        }
        return false
    }

    /// The environment for `docker` and `caisson` child processes: this daemon's DOCKER_HOST.
    static var childEnvironment: [String: String] { environment(dockerHost: dockerHost) }

    /// The environment for children talking to the daemon at `host` (another daemon than the
    /// shared one, e.g. an `AuxDaemon`).
    static func environment(dockerHost host: String?) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        if let host { env["DOCKER_HOST"] = host }
        return env
    }

    struct CommandResult {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a command to completion with this daemon's DOCKER_HOST (output captured).
    @discardableResult
    static func command(_ executable: String, _ args: [String], stdin: String? = nil,
                        cwd: String? = nil, dockerHost host: String? = nil) throws -> CommandResult {
        let p = Process()
        if executable.hasPrefix("/") {
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = args
        } else {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [executable] + args
        }
        p.environment = host.map { environment(dockerHost: $0) } ?? childEnvironment
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        let out = Pipe(), err = Pipe(), input = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = input
        try p.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        // Read both pipes concurrently so neither can fill up and block the child.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        return CommandResult(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                             stderr: String(decoding: errData, as: UTF8.self))
    }

    /// `docker ARGS` against this daemon.
    @discardableResult
    static func docker(_ args: [String], stdin: String? = nil, cwd: String? = nil,
                       dockerHost host: String? = nil) throws -> CommandResult {
        try command("docker", args, stdin: stdin, cwd: cwd, dockerHost: host)
    }

    static let testVariants = ["1", "2", "unhealthy", "crash", "nohealth", "never-ready",
                               "http-503", "http-hang", "http-never", "exec-fail", "oom"]

    /// The caisson-test/app images exist (built by scripts/make-test-images, run once if missing),
    /// plus `caisson-test/app:stubborn` (app:1 whose PID 1 ignores SIGTERM), built here.
    static let testImagesReady: Bool = {
        guard let client else { return false }
        func missing() -> [String] {
            testVariants.filter { (try? client.inspectImageIfPresent("caisson-test/app:\($0)")) == nil }
        }
        if !missing().isEmpty {
            let r = try? command(repoRoot + "/scripts/make-test-images", [])
            if r?.status != 0 { print("NOTICE: scripts/make-test-images failed: \(r?.stderr ?? "not runnable")") }
        }
        guard missing().isEmpty else { return false }
        if (try? client.inspectImageIfPresent("caisson-test/app:stubborn")) == nil {
            // Signals ignored on entry to a non-interactive sh cannot be trapped again, so app.sh's
            // TERM trap is void: `docker stop` has to wait out the grace period and SIGKILL it.
            let dockerfile = """
            FROM caisson-test/app:1
            LABEL io.caisson.sim.stop="ignore-sigterm" org.opencontainers.image.version="7.0.0"
            ENTRYPOINT ["/bin/sh", "-c", "trap '' TERM; exec /app/app.sh serve --port 8080"]
            CMD []
            """
            let ctx = NSTemporaryDirectory() + "caisson-stubborn-\(getpid())"
            try? FileManager.default.createDirectory(atPath: ctx, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: ctx) }
            try? dockerfile.write(toFile: ctx + "/Dockerfile", atomically: true, encoding: .utf8)
            var env = childEnvironment
            env["DOCKER_BUILDKIT"] = "0"
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["docker", "build", "--quiet", "-t", "caisson-test/app:stubborn", ctx]
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try? p.run()
            p.waitUntilExit()
        }
        return (try? client.inspectImageIfPresent("caisson-test/app:stubborn")) != nil
    }()

    /// Names of all containers (running or not) whose name starts with `prefix`.
    static func containerNames(prefix: String, on other: DockerClient? = nil) -> [String] {
        guard let client = other ?? client, let all = try? client.listContainers(all: true) else { return [] }
        return all.flatMap(\.names).filter { $0.hasPrefix(prefix) }.sorted()
    }

    /// Force-removes every container whose name starts with `prefix`.
    static func removeContainers(prefix: String, on other: DockerClient? = nil) {
        guard let client = other ?? client else { return }
        for name in containerNames(prefix: prefix, on: client) { try? client.removeContainer(name, force: true) }
    }

    /// Polls until `condition` holds or `seconds` pass (a wait, not an assertion).
    @discardableResult
    static func waitUntil(seconds: Double, interval: Double = 0.2, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(UInt32(interval * 1_000_000))
        }
        return condition()
    }
}
