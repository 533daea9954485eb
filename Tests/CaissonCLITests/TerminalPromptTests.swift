import CaissonCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `package load` on a real terminal (tmux): the prompt appears, the answer is honoured, progress
/// draws a bar, and NO_COLOR removes colour. Skipped with a notice when tmux is not installed.
@Suite struct TerminalPromptTests {
    static let tmux = ["/usr/bin/tmux", "/usr/local/bin/tmux", "/bin/tmux"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Runs tmux through `sh -c` with every descriptor redirected, so the server it may fork never
    /// holds a pipe of ours; only capture-pane's output is read (from a file).
    @discardableResult
    static func tmux(_ socket: String, _ args: [String]) throws -> String {
        let quoted = args.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let outFile = FileManager.default.temporaryDirectory.appendingPathComponent("\(socket).out").path
        // Not Foundation's Process: the tmux server that new-session daemonizes would inherit the
        // descriptor Process watches for the child's exit, and waitUntilExit would never return.
        // posix_spawn with every descriptor above stderr closed in the child, then waitpid.
        let command = "'\(tmux ?? "tmux")' -L '\(socket)' -f /dev/null \(quoted) </dev/null >'\(outFile)' 2>/dev/null"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let open = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).compactMap { Int32($0) }
        for fd in open where fd > 2 && fcntl(fd, F_GETFD) != -1 { posix_spawn_file_actions_addclose(&actions, fd) }
        let words: [String] = ["/bin/sh", "-c", command]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, "/bin/sh", &actions, nil, argv, environ) == 0 else { return "" }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        defer { try? FileManager.default.removeItem(atPath: outFile) }
        return (try? String(contentsOfFile: outFile, encoding: .utf8)) ?? ""
    }

    /// The pane's text (with SGR attributes when `escapes`) once it contains `needle`; the wait is
    /// bounded (30 s) so a hang fails the test instead of blocking it.
    static func waitFor(_ needle: String, socket: String, escapes: Bool = false) throws -> String {
        var screen = ""
        for _ in 0..<300 {
            screen = try tmux(socket, ["capture-pane", "-p", "-J"] + (escapes ? ["-e"] : []) + ["-t", "T"])
            if screen.contains(needle) { return screen }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return screen
    }

    @Test("the prompt on a real terminal", arguments: [("y", Int32(0), false), ("n", Int32(3), true)])
    func promptOnATerminal(_ answer: String, _ expected: Int32, _ noColor: Bool) throws {
        guard Self.tmux != nil else {
            print("notice: tmux is not installed; skipping the real-terminal prompt test (apt-get install -y tmux)")
            return
        }
        let c = try Caisson()
        let pkg = try c.package("t.edgepkg", version: "1.0.9")
        let socket = "caisson-test-\(getpid())-\(answer)"
        // Set exactly the environment under test: the runner's own (NO_COLOR, TERM) must not leak in.
        let env = noColor ? "env NO_COLOR=1 TERM=xterm-256color " : "env -u NO_COLOR TERM=xterm-256color "
        let command = "cd '\(c.dir)' && \(env)'\(Caisson.binary)' --host sim package load --stage \(pkg); echo EXIT=$?; sleep 30"
        try Self.tmux(socket, ["new-session", "-d", "-s", "T", "-x", "200", "-y", "50", command])
        defer { _ = try? Self.tmux(socket, ["kill-server"]) }

        let prompt = "Continue and update the service? [y/N]:"
        let before = try Self.waitFor(prompt, socket: socket, escapes: true)
        #expect(before.contains(prompt), "screen: \(before)")
        #expect(before.contains("Update plan"))
        #expect(before.contains("The package has been copied; you may remove the medium."))
        #expect(before.contains("########################"), "a progress bar on a terminal")
        #expect(before.contains("\u{1B}[32m") == !noColor, "colour unless NO_COLOR: \(before)")

        try Self.tmux(socket, ["send-keys", "-t", "T", answer, "Enter"])
        let after = try Self.waitFor("EXIT=", socket: socket)
        #expect(after.contains("EXIT=\(expected)"), "screen: \(after)")
        #expect(after.contains(expected == 0 ? "The service now runs example/frontend:1.0.9 (" : "Cancelled before changing the service."))
    }
}
