import CaissonCore
import Foundation
import Testing
@testable import CaissonDocker

/// `Subprocess`: what runs `docker compose` (its own process group, hard time limit).
@Suite("Subprocess: bounded children in their own process group")
struct SubprocessTests {
    static func scratch(_ name: String) throws -> String {
        let directory = NSTemporaryDirectory() + "caisson-subprocess-\(name)-\(RealDocker.runID)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test func runsInTheGivenFolderWithTheGivenEnvironment() throws {
        let directory = try Self.scratch("plain")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let outcome = try Subprocess.run("/bin/sh", ["-c", #"pwd; echo "$GREETING"; echo oops >&2; exit 3"#],
                                         environment: ["GREETING": "hello", "PATH": "/usr/bin:/bin"], directory: directory,
                                         stdoutPath: directory + "/out", stderrPath: directory + "/err", timeout: .seconds(30))
        #expect(outcome == .exited(3))
        let out = try String(contentsOfFile: directory + "/out", encoding: .utf8)
        #expect(out == "\(URL(fileURLWithPath: directory).resolvingSymlinksInPath().path)\nhello\n")
        #expect(try String(contentsOfFile: directory + "/err", encoding: .utf8) == "oops\n")
        // Without a stderr path, stderr joins stdout.
        #expect(try Subprocess.run("/bin/sh", ["-c", "echo a; echo b >&2"], environment: [:], directory: directory,
                                   stdoutPath: directory + "/both", stderrPath: nil, timeout: .seconds(30)) == .exited(0))
        #expect(try String(contentsOfFile: directory + "/both", encoding: .utf8) == "a\nb\n")
        let missing = #expect(throws: HostError.self) {
            try Subprocess.run(directory + "/no-such-program", [], environment: [:], directory: directory,
                               stdoutPath: directory + "/x", stderrPath: nil, timeout: .seconds(30))
        }
        #expect(missing?.kind == .failed)
    }

    /// A child (and its own children) that ignore SIGTERM are killed `killAfter` later: the call
    /// returns, and nothing of the group survives.
    @Test func aTimeoutStopsTheWholeGroupEvenIfItIgnoresSIGTERM() throws {
        let directory = try Self.scratch("stubborn")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let outcome = try Subprocess.run("/bin/sh", ["-c", "trap '' TERM; sleep 60 & echo $! > child.pid; wait"],
                                         environment: ["PATH": "/usr/bin:/bin"], directory: directory,
                                         stdoutPath: directory + "/out", stderrPath: nil,
                                         timeout: .milliseconds(300), killAfter: .milliseconds(300))
        #expect(outcome == .timedOut)
        let text = try String(contentsOfFile: directory + "/child.pid", encoding: .utf8)
        let child = try #require(Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        RealDocker.waitUntil(seconds: 5) { !ComposeModelTests.alive(child) }
        #expect(!ComposeModelTests.alive(child))
    }
}
