import CaissonApp
import CaissonCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `caisson console` and `caisson console password`, as a front end of the `caisson` command line.
public enum ConsoleCommand {
    public static let frontEnd = CLIFrontEnd(commands: [
        CommandSpec(["console"], summary: "Serve the Caisson console: a local web page to update this device",
                    discussion: """
                    Serves the console on 127.0.0.1:8484 and prints, as the first line, the address to open with a
                    one-time sign-in token (also written to <state-dir>/console-token, mode 0600). Any other
                    address than loopback needs a password (caisson console password). There is no TLS: from a
                    laptop, use an SSH tunnel (ssh -L 8484:127.0.0.1:8484 device) and open http://127.0.0.1:8484.
                    Ctrl-C or SIGTERM stop it; an update in progress is finished first (a second signal leaves it
                    to the journal's recovery). Packages are listed from /media, /run/media and /mnt (--media).
                    When a self-update replaces the executable it runs from, it restarts on the new one at the
                    same address once its own update is over (open pages reconnect); SIGHUP asks for that restart.
                    """,
                    options: [OptionSpec("--listen", value: "ADDR:PORT", help: "Where to listen (default 127.0.0.1:8484; port 0: any free port)"),
                              OptionSpec("--media", value: "DIR", help: "Look for packages under DIR (repeatable; default /media, /run/media, /mnt)"),
                              OptionSpec("--allow-host", value: "NAME", help: "Also accept this host name in requests (repeatable; IP addresses always work)")]),
        CommandSpec(["console", "password"], summary: "Set the console password (needed to listen beyond loopback)",
                    discussion: """
                    Reads the new password (at least 8 characters) twice from the terminal, or once from standard
                    input or CAISSON_CONSOLE_PASSWORD, and stores it scrypt-hashed in <state-dir>/console-password
                    (mode 0600). Wrong passwords are rate-limited (5 per 5 minutes per address).
                    """),
    ], run: { cmd, app, out in
        switch cmd.path {
        case ["console", "password"]: return try setPassword(app: app, out: out)
        default: return try serve(cmd, app: app, out: out)
        }
    })

    static func setPassword(app: Application, out: CLIPrinter) throws -> Int32 {
        let password: String
        if let p = ProcessInfo.processInfo.environment["CAISSON_CONSOLE_PASSWORD"] {
            password = p
        } else if isatty(0) == 1 {
            // --json never prompts (issue 11 item 8).
            if out.json {
                throw CaissonError("usage.json_needs_input", "--json never prompts: give the password in CAISSON_CONSOLE_PASSWORD or on standard input")
            }
            guard let first = readHidden("New console password: "), let second = readHidden("Again: ") else {
                throw CaissonError("console.password_failed", "no password was entered")
            }
            guard first == second else { throw CaissonError("console.password_mismatch", "the two passwords differ; nothing was changed") }
            password = first
        } else {
            guard let line = readLine(strippingNewline: true) else { throw CaissonError("console.password_failed", "no password on standard input") }
            password = line
        }
        try ConsoleAuth.setPassword(password, stateDir: app.stateDir)
        try? app.auditFrontEndAction("console password set from the command line (pid \(getpid()))")
        if out.json { out.document(PasswordDocument(password_file: ConsoleAuth.passwordPath(app.stateDir))) } else {
            out.line("Console password set (\(ConsoleAuth.passwordPath(app.stateDir))).")
        }
        return 0
    }

    /// `caisson console password --json`.
    struct PasswordDocument: Encodable {
        var password_file: String
        var status = "ok"
        var issues: [[String: String]] = []
        var exit_code = 0
    }

    /// `caisson console --json`: the first line of standard output once it listens.
    struct ServingDocument: Encodable {
        /// The address to open, with the one-time sign-in token.
        var url: String
        /// The same without the token.
        var address: String
        var listen: String
        var port: Int
        /// Where the token is also written (mode 0600).
        var token_file: String
        /// Beyond loopback: signing in needs the console password.
        var password_required: Bool
        var status = "serving"
        var issues: [[String: String]] = []
        var exit_code = 0
    }

    static func readHidden(_ prompt: String) -> String? {
        FileHandle.standardError.write(Data(prompt.utf8))
        var old = termios()
        tcgetattr(0, &old)
        var quiet = old
        quiet.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(0, TCSANOW, &quiet)
        defer {
            tcsetattr(0, TCSANOW, &old)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        return readLine(strippingNewline: true)
    }

    static func serve(_ cmd: ParsedCommand, app: Application, out: CLIPrinter) throws -> Int32 {
        var config = ConsoleConfig(options: app.options)
        if let l = cmd.value("--listen") {
            guard let (host, port) = ConsoleConfig.parseListen(l) else {
                throw CaissonError("usage.invalid", "--listen takes ADDR:PORT with a numeric address (127.0.0.1:8484, [::1]:8484, 0.0.0.0:8484), not '\(l)'")
            }
            config.listenHost = host
            config.port = port
        }
        let media = cmd.values("--media")
        if !media.isEmpty { config.mediaRoots = media }
        config.allowedHosts = cmd.values("--allow-host")
        if let pace = ProcessInfo.processInfo.environment["CAISSON_SIM_PACE"] {
            guard let p = Double(pace), p >= 0, p <= 10 else {
                throw CaissonError("usage.invalid", "CAISSON_SIM_PACE takes real seconds per simulated second, from 0 to 10, not '\(pace)'")
            }
            config.simPace = p
        }
        // Signals are taken by a waiting thread, never delivered to whatever runs.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGHUP)
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let console = try Console(config: config)
        if let id = takeHandedOver() { console.handedOver.withLock { $0 = id } }
        // Issue 14 item 5: the executable to restart on after a self-update, resolved before one
        // can rename another file over it.
        let since = console.clock.timestamp()
        let executable = Application.runningExecutablePath()
        let url = try console.start()
        if out.json {
            // One document, on one line (the first of standard output), as soon as it listens.
            let base = String(url.split(separator: "?").first ?? "")
            out.line(JSONCoding.string(ServingDocument(url: url, address: base, listen: config.listenHost, port: Int(console.port),
                                                       token_file: app.stateDir + "/" + ConsoleAuth.tokenFile,
                                                       password_required: !config.isLoopback), pretty: false))
        } else {
            out.line(url)
        }
        out.progress("Caisson console on \(url.split(separator: "?").first ?? "")  (Ctrl-C to stop)")
        if !config.isLoopback {
            out.progress("Listening beyond this device: sign-in needs the console password. There is no TLS; prefer an SSH tunnel.")
        }
        let handOver = HandOverBox()
        if let executable {
            watchForSelfUpdate(options: app.options, since: since, executable: executable, console: console, box: handOver)
        }
        var signal: Int32 = 0
        sigwait(&set, &signal)
        while signal == SIGHUP {
            // A self-update replaced Caisson (or SIGHUP by hand): restart on the installed one.
            guard let h = handOver.value.withLock({ $0 }) ?? executable.map({
                HandOver(path: $0, selfUpdateID: nil, message: "Restart asked (SIGHUP): the console restarts on \($0).")
            }) else {
                out.progress("Cannot tell which executable this console runs from: restart it by hand.")
                sigwait(&set, &signal)
                continue
            }
            out.progress(h.message + " Restarting the console on it (the same address; open pages reconnect by themselves)…")
            try? app.auditFrontEndAction("console restarting on \(h.path) (pid \(getpid()))\(h.selfUpdateID.map { " after self-update \($0)" } ?? "")")
            console.stop()
            let failure = reexec(h, arguments: restartArguments(Array(CommandLine.arguments.dropFirst()), host: config.listenHost, port: console.port))
            FileHandle.standardError.write(Data("error: [\(failure.code)] \(failure.message)\n".utf8))
            return 1
        }
        out.progress(console.operationInProgress ? "Stopping: finishing the update in progress first (signal again to leave it to recovery)…" : "Stopping.")
        let stopper = Thread {
            console.stop()
            exit(0)
        }
        stopper.start()
        sigwait(&set, &signal)
        out.progress("Stopped at once; the next Caisson command finishes the interrupted update from its journal.")
        return 130
    }
}
