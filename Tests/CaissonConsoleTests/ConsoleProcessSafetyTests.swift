import CaissonApp
import CaissonCore
import CaissonStore
import Foundation
import Testing
@testable import CaissonConsole
#if canImport(Glibc)
import Glibc
#endif

/// Issue 10 item 1 in the console: another Caisson process is the normal case there. The
/// console shows a live process's update (pid, step, since when) and changes nothing; at start
/// it finishes what a killed one left (only then: under the state directory's lock).
@Suite(.serialized) struct ConsoleProcessSafetyTests {
    /// The `caisson` binary beside the test bundle.
    static var binary: String {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let p = candidate.appendingPathComponent("caisson").path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return dir.appendingPathComponent("caisson").path
    }

    /// `caisson package load` of the console's device, paused in its health check (debug build).
    final class PausedLoad: @unchecked Sendable {
        let process = Process()
        private let err = Pipe()
        private let lock = NSLock()
        private var text = ""

        init(_ c: TestConsole, package: String) throws {
            process.executableURL = URL(fileURLWithPath: ConsoleProcessSafetyTests.binary)
            process.arguments = ["--host", "sim", "--services", c.options.servicesPath, "--state-dir", c.stateDir,
                                 "package", "load", "--yes", c.media + "/" + package]
            process.environment = ProcessInfo.processInfo.environment.merging(
                ["CAISSON_DEBUG_PAUSE_AT": "health", "CAISSON_DEBUG_PAUSE_MS": "120000"]) { $1 }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = err
            err.fileHandleForReading.readabilityHandler = { [weak self] h in
                let d = h.availableData
                self?.lock.withLock { self?.text += String(decoding: d, as: UTF8.self) }
            }
            try process.run()
        }

        var pid: Int32 { process.processIdentifier }
        var stderr: String { lock.withLock { text } }

        func waitForPause() -> Bool {
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline && process.isRunning {
                if stderr.contains("caisson-debug: paused at health") { return true }
                usleep(20_000)
            }
            return false
        }

        func kill9() {
            kill(pid, SIGKILL)
            process.waitUntilExit()
            err.fileHandleForReading.readabilityHandler = nil
        }
    }

    @Test func aLiveUpdateIsShownAndLeftAloneAKilledOneIsRecoveredAtStart() throws {
        let first = try TestConsole(keepDirectory: true)
        defer { try? FileManager.default.removeItem(atPath: first.dir) }
        let load = try PausedLoad(first, package: "frontend-1.1.0.edgepkg")
        defer { if load.process.isRunning { load.kill9() } }
        #expect(load.waitForPause(), "\(load.stderr)")
        // A console started while the update runs: it recovers nothing and shows the update.
        let url = try first.start()
        #expect(try first.app().store().inFlightAttempts().count == 1, "the console's start touched a live update")
        let target = String(url.dropFirst("http://".count).drop { $0 != "/" })
        let signIn = try first.request("GET", target)
        first.cookie = signIn.cookie(ConsoleAuth.cookieName)
        let home = try first.request("GET", "/").bodyText
        #expect(home.contains("Another Caisson program is working on this device") && home.contains("Installing an update from frontend-1.1.0.edgepkg"), "\(home)")
        #expect(home.contains("Process <span id=\"other-pid\">\(load.pid)</span>, since"), "the page does not name the live process: \(home)")
        let step = try #require(try first.app().store().inFlightAttempts().first?.lastStep)
        #expect(home.contains("step <code>\(step)</code>") && home.contains("<span id=\"other-step-since\">"), "the page does not say where the update is (\(step)): \(home)")
        // The process dies (a power cut, kill -9): its lock goes, its description stays in the
        // lock file; the console no longer calls it "working".
        load.kill9()
        let after = try first.request("GET", "/").bodyText
        #expect(!after.contains("Another Caisson program is working on this device"), "a dead process is shown as working: \(after)")
        #expect(try first.app().store().inFlightAttempts().count == 1)
        first.console.stop(grace: .seconds(5))
        // The next console start finishes the interrupted update from its journal.
        let second = try TestConsole(dir: first.dir, keepDirectory: true)
        _ = try second.start()
        let store = try second.app().store()
        #expect(try store.inFlightAttempts().isEmpty, "the console's start did not recover the killed update")
        let attempts = try store.updateAttempts().records
        #expect(attempts.count == 1 && attempts.first?.status.isTerminal == true, "\(attempts.map(\.status))")
    }
}
