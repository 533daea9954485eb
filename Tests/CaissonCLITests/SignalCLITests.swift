import CaissonCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The real `caisson` binary running in the background: its output collected as it comes, so a
/// test can wait for a line, send a signal, answer a prompt.
final class Spawned: @unchecked Sendable {
    let process = Process()
    private let out = Pipe(), err = Pipe(), input = Pipe()
    private let lock = NSLock()
    private var stdoutData = Data(), stderrData = Data()

    init(_ binary: String, _ args: [String], cwd: String, env: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: binary)
        process.currentDirectoryURL = URL(fileURLWithPath: cwd)
        process.arguments = args
        process.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        out.fileHandleForReading.readabilityHandler = { [weak self] h in
            let d = h.availableData
            self?.lock.withLock { self?.stdoutData.append(d) }
        }
        err.fileHandleForReading.readabilityHandler = { [weak self] h in
            let d = h.availableData
            self?.lock.withLock { self?.stderrData.append(d) }
        }
        try process.run()
    }

    var stdout: String { lock.withLock { String(decoding: stdoutData, as: UTF8.self) } }
    var stderr: String { lock.withLock { String(decoding: stderrData, as: UTF8.self) } }
    var pid: Int32 { process.processIdentifier }

    /// Waits (up to `seconds`) until stdout or stderr contains `needle`.
    @discardableResult
    func waitFor(_ needle: String, seconds: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if stdout.contains(needle) || stderr.contains(needle) { return true }
            if !process.isRunning { return stdout.contains(needle) || stderr.contains(needle) }
            usleep(20_000)
        }
        return false
    }

    func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    func write(_ text: String) { input.fileHandleForWriting.write(Data(text.utf8)) }

    /// Waits for the exit (killing it after `seconds`): its status.
    func wait(seconds: Double = 120) -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? input.fileHandleForWriting.close()
        usleep(50_000)
        out.fileHandleForReading.readabilityHandler = nil
        err.fileHandleForReading.readabilityHandler = nil
        lock.withLock {
            stdoutData.append(out.fileHandleForReading.readDataToEndOfFile())
            stderrData.append(err.fileHandleForReading.readDataToEndOfFile())
        }
        return process.terminationStatus
    }
}

/// Issue 10 items 1 and 4 on the real binary (simulated host): Ctrl-C and SIGTERM at the prompt,
/// mid-load and mid-health check, a second Ctrl-C, and a second command while an update runs.
/// (The same on a real daemon: `ProcessSafetyEndToEndTests`.)
@Suite struct SignalCLITests {
    func spawn(_ c: Caisson, _ args: [String], pauseAt: String? = nil, pauseMillis: Int = 20_000) throws -> Spawned {
        var env: [String: String] = [:]
        if let pauseAt {
            env["CAISSON_DEBUG_PAUSE_AT"] = pauseAt
            env["CAISSON_DEBUG_PAUSE_MS"] = String(pauseMillis)
            env["CAISSON_DEBUG_RESUME_FILE"] = c.dir + "/resume"
        }
        return try Spawned(Caisson.binary, ["--host", "sim"] + args, cwd: c.dir, env: env)
    }

    func history(_ c: Caisson) throws -> [[String: Any]] {
        let h = try c.run(["history", "list", "--json"])
        return try #require(h.json?["attempts"] as? [[String: Any]], "history: \(h.stdout) \(h.stderr)")
    }

    func stagedFiles(_ c: Caisson) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: c.dir + "/.caisson-state/staging")) ?? []).sorted()
    }

    @Test("Ctrl-C or SIGTERM at the prompt is 'no' (exit 3); the staged copy goes", arguments: [SIGINT, SIGTERM])
    func signalAtThePrompt(_ sig: Int32) throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.1")
        let p = try spawn(c, ["package", "load", "--stage", pkg])
        #expect(p.waitFor("[y/N]: "), "stdout: \(p.stdout) stderr: \(p.stderr)")
        p.signal(sig)
        let status = p.wait()
        #expect(status == 3, "stdout: \(p.stdout) stderr: \(p.stderr)")
        #expect(p.stdout.contains("Cancelled before changing the service."))
        #expect(try history(c).isEmpty)
        #expect(stagedFiles(c).isEmpty, "staged: \(stagedFiles(c))")
    }

    @Test("a signal mid-load: the update does not begin, the staged copy goes", arguments: [SIGINT, SIGTERM])
    func signalMidLoad(_ sig: Int32) throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.2")
        let p = try spawn(c, ["package", "load", "--stage", "--yes", pkg], pauseAt: "load")
        #expect(p.waitFor("caisson-debug: paused at load"), "stderr: \(p.stderr)")
        p.signal(sig)
        let status = p.wait()
        #expect(status == 3, "stdout: \(p.stdout) stderr: \(p.stderr)")
        #expect(p.stderr.contains("stopping safely: the update will not go ahead"), "stderr: \(p.stderr)")
        #expect(p.stdout.contains("[update.cancelled]") && p.stdout.contains("the image was not loaded"), "stdout: \(p.stdout)")
        #expect(try history(c).isEmpty)
        #expect(stagedFiles(c).isEmpty, "staged: \(stagedFiles(c))")
        let show = try c.run(["service", "show", "frontend"])
        #expect(show.stdout.contains("Last update: none yet"), "\(show.stdout)")
    }

    @Test("a signal during the health check restores the previous release", arguments: [SIGINT, SIGTERM])
    func signalMidHealth(_ sig: Int32) throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.3")
        let p = try spawn(c, ["package", "load", "--yes", pkg], pauseAt: "health")
        #expect(p.waitFor("caisson-debug: paused at health"), "stderr: \(p.stderr)")
        p.signal(sig)
        let status = p.wait()
        #expect(status == 4, "stdout: \(p.stdout) stderr: \(p.stderr)")
        #expect(p.stderr.contains("stopping safely: restoring the previous release"), "stderr: \(p.stderr)")
        #expect(p.stdout.contains("Status: rolled back"), "stdout: \(p.stdout)")
        #expect(p.stdout.contains("[update.cancelled]"))
        let h = try history(c)
        #expect(h.count == 1 && h.first?["status"] as? String == "rolled_back")
    }

    @Test func aSecondCtrlCWithinThreeSecondsQuitsAndRecoveryFinishes() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.4")
        // Paused in the health check; the first Ctrl-C reaches the machine, which pauses again
        // (debug point `cancelled`) before it restores: the second one comes within 3 s.
        let p = try spawn(c, ["package", "load", "--yes", pkg], pauseAt: "health,cancelled")
        #expect(p.waitFor("caisson-debug: paused at health"), "stderr: \(p.stderr)")
        p.signal(SIGINT)
        #expect(p.waitFor("caisson-debug: paused at cancelled"), "stderr: \(p.stderr)")
        #expect(p.stderr.contains("stopping safely: restoring the previous release"))
        p.signal(SIGINT)
        let status = p.wait()
        #expect(status == 130, "stdout: \(p.stdout) stderr: \(p.stderr)")
        #expect(p.stderr.contains("second signal: stopping now"))
        // Left to recovery (the next command: here `recover`).
        let r = try c.run(["recover"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("Recovered update"), "\(r.stdout)")
        let h = try history(c)
        #expect(h.count == 1 && h.first?["status"] as? String == "rolled_back", "\(h)")
    }

    /// Issue 10 item 1: `service list`, `history list`, `package validate` and `recover` typed in
    /// another shell while `package load` is in its health check show the update in progress and
    /// change nothing; the load then succeeds.
    @Test func secondCommandsDuringAnUpdateShowItInProgressAndChangeNothing() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.5")
        let other = try c.package("q.edgepkg", version: "1.0.6")
        let p = try spawn(c, ["package", "load", "--yes", pkg], pauseAt: "health", pauseMillis: 60_000)
        #expect(p.waitFor("caisson-debug: paused at health"), "stderr: \(p.stderr)")
        for args in [["service", "list"], ["history", "list"], ["package", "validate", other], ["recover"], ["service", "show", "frontend"]] {
            let r = try c.run(args)
            #expect(r.status == 0 || (args[0] == "package" && r.status == 0), "\(args): \(r.stdout) \(r.stderr)")
            #expect(r.stdout.contains("In progress: package load"), "\(args): \(r.stdout)")
            #expect(r.stdout.contains("(pid \(p.pid),"), "\(args): \(r.stdout)")
        }
        let json = try c.run(["service", "list", "--json"])
        let busy = try #require(json.json?["in_progress"] as? [String: Any], "\(json.stdout)")
        let attempts = try #require(busy["attempts"] as? [[String: Any]])
        #expect(attempts.count == 1 && attempts.first?["step"] is String && attempts.first?["step_at"] is String)
        // Commands that take the operation lock are refused, naming the holder.
        let load = try c.run(["package", "load", "--yes", other])
        #expect(load.status == 1 && load.stderr.contains("[lock.busy]") && load.stderr.contains("pid \(p.pid)"), "\(load.stderr)")
        // ... and where the update is (its step, since when), as the commands above do.
        let step = try #require(attempts.first?["step"] as? String)
        #expect(load.stderr.contains("In progress: update ") && load.stderr.contains(": \(step) since "), "\(load.stderr)")
        let cleanup = try c.run(["package", "cleanup"])
        #expect(cleanup.status == 1 && cleanup.stderr.contains("[lock.busy]") && cleanup.stderr.contains(": \(step) since "), "\(cleanup.stderr)")
        // Let it go on.
        FileManager.default.createFile(atPath: c.dir + "/resume", contents: Data())
        let status = p.wait(seconds: 120)
        #expect(status == 0, "stdout: \(p.stdout) stderr: \(p.stderr)")
        #expect(p.stdout.contains("Status: succeeded"))
        let h = try history(c)
        #expect(h.count == 1 && h.first?["status"] as? String == "succeeded", "\(h)")
    }

    /// The boot-time recovery unit shipped in `contrib/systemd/` (issue 10 item 4): ordered after
    /// `docker.service`, with the state directory fixed to the absolute path the README
    /// documents, and its `ExecStart` a command line this binary runs (`recover`). With
    /// `systemd-analyze` on the machine, the unit verifies without a warning.
    @Test func theBootTimeRecoveryUnitRunsRecoverAfterDocker() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let path = root + "/contrib/systemd/caisson-recover.service"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var section = ""
        var keys: [(section: String, key: String, value: String)] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") { section = line; continue }
            let kv = line.split(separator: "=", maxSplits: 1).map(String.init)
            #expect(kv.count == 2, "not a key=value line: \(line)")
            if kv.count == 2 { keys.append((section, kv[0], kv[1])) }
        }
        func values(_ s: String, _ k: String) -> [String] {
            keys.filter { $0.section == s && $0.key == k }.flatMap { $0.value.split(separator: " ").map(String.init) }
        }
        #expect(values("[Unit]", "After").contains("docker.service"))
        #expect(values("[Unit]", "Requires").contains("docker.service") || values("[Unit]", "Wants").contains("docker.service"))
        #expect(values("[Service]", "Type") == ["oneshot"])
        #expect(values("[Install]", "WantedBy").contains("multi-user.target"))
        // The state directory: absolute, the one the README tells a device to fix.
        let env = values("[Service]", "Environment").first { $0.hasPrefix("CAISSON_STATE_DIR=") }
        let stateDir = try #require(env.map { String($0.dropFirst("CAISSON_STATE_DIR=".count)) })
        #expect(stateDir.hasPrefix("/"))
        let readme = try String(contentsOfFile: root + "/README.md", encoding: .utf8)
        #expect(readme.contains("CAISSON_STATE_DIR=\(stateDir)") && readme.contains("contrib/systemd/caisson-recover.service"))
        // ExecStart runs `recover`: the same arguments, with this test's catalog and state directory.
        let exec = values("[Service]", "ExecStart")
        #expect(exec.first?.hasPrefix("/") == true && exec.last == "recover", "\(exec)")
        var args = Array(exec.dropFirst())
        if let i = args.firstIndex(of: "--services"), i + 1 < args.count { args[i + 1] = "services.toml" }
        let c = try Caisson()
        let r = try Spawned(Caisson.binary, ["--host", "sim"] + args, cwd: c.dir, env: ["CAISSON_STATE_DIR": c.dir + "/var-lib-caisson"])
        #expect(r.wait() == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("Nothing to recover"), "\(r.stdout)")
        // systemd's own check, when it is here.
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze") else {
            print("NOTICE: systemd-analyze is not installed: the unit was not verified by systemd")
            return
        }
        let unit = c.dir + "/caisson-recover.service"
        try text.replacingOccurrences(of: exec[0], with: Caisson.binary).write(toFile: unit, atomically: true, encoding: .utf8)
        let v = try Spawned("/usr/bin/systemd-analyze", ["verify", unit], cwd: c.dir)
        #expect(v.wait() == 0, "\(v.stdout) \(v.stderr)")
        #expect(!v.stderr.contains("Unknown") && !v.stderr.contains("nvalid"), "\(v.stderr)")
    }
}
