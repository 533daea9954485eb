import CaissonHTTP
import CaissonCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A child process with a hard time limit, in a process group of its own, so that a timeout
/// stops it *and everything it started* (`docker compose` is the docker CLI running the compose
/// plugin as a second process). Foundation's `Process` is not used: it cannot make a process
/// group, and it reports a child as running for as long as any grandchild keeps the descriptor it
/// watches open, so an orphaned plugin would hold a timed-out call forever.
enum Subprocess {
    enum Outcome: Equatable {
        case exited(Int32)
        /// Killed by a signal that we did not send.
        case signalled(Int32)
        case timedOut
    }

    /// Runs `executable` with `arguments` (argv[1...]) in `directory`, stdin from /dev/null,
    /// stdout to `stdoutPath` and stderr to `stderrPath` (both created/truncated; stderr joins
    /// stdout when nil). After `timeout` the group gets SIGTERM, and SIGKILL `killAfter` later.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String], directory: String,
                    stdoutPath: String, stderrPath: String?, timeout: Duration,
                    killAfter: Duration = .seconds(10)) throws(HostError) -> Outcome {
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        guard posix_spawn_file_actions_init(&actions) == 0 else { throw HostError(.failed, "cannot prepare to run \(executable)") }
        defer { posix_spawn_file_actions_destroy(&actions) }
        guard posix_spawnattr_init(&attributes) == 0 else { throw HostError(.failed, "cannot prepare to run \(executable)") }
        defer { posix_spawnattr_destroy(&attributes) }

        var rc: Int32 = 0
        let outFlags = O_WRONLY | O_CREAT | O_TRUNC
        rc |= posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        rc |= posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, outFlags, 0o600)
        if let stderrPath {
            rc |= posix_spawn_file_actions_addopen(&actions, 2, stderrPath, outFlags, 0o600)
        } else {
            rc |= posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        var executable = executable, arguments = arguments
        if let addChdir = Self.addChdir {
            rc |= addChdir(&actions, directory)
        } else {
            // A C library without posix_spawn_file_actions_addchdir_np (glibc < 2.29).
            arguments = ["-c", #"cd -- "$0" || exit 127; exec "$@""#, directory, executable] + arguments
            executable = "/bin/sh"
        }
        // A new process group (pgid = the child's pid); default signal dispositions and an empty
        // signal mask, whatever the test runner or the CLI set for itself.
        var defaults = sigset_t()
        sigfillset(&defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        rc |= posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        rc |= posix_spawnattr_setpgroup(&attributes, 0)
        rc |= posix_spawnattr_setsigdefault(&attributes, &defaults)
        rc |= posix_spawnattr_setsigmask(&attributes, &empty)
        guard rc == 0 else { throw HostError(.failed, "cannot prepare to run \(executable)") }

        let argv = [executable] + arguments
        let envp = environment.keys.sorted().map { "\($0)=\(environment[$0] ?? "")" }
        var pid = pid_t()
        let spawned = withCStrings(argv) { cArgv in
            withCStrings(envp) { cEnvp in
                posix_spawn(&pid, executable, &actions, &attributes, cArgv, cEnvp)
            }
        }
        guard spawned == 0 else {
            throw HostError(.failed, "cannot run \(executable) in \(directory): \(errnoDescription(spawned))")
        }

        let deadline = MonotonicInstant.now().advanced(by: timeout)
        var killAt: MonotonicInstant?
        while true {
            var status: Int32 = 0
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid {
                if killAt != nil {
                    // The leader is gone; make sure nothing of its group outlives the timeout.
                    kill(-pid, SIGKILL)
                    return .timedOut
                }
                if status & 0x7f == 0 { return .exited((status >> 8) & 0xff) }
                return .signalled(status & 0x7f)
            }
            if waited < 0 && errno != EINTR {
                // Cannot happen for our own child; do not spin.
                kill(-pid, SIGKILL)
                return killAt != nil ? .timedOut : .signalled(SIGKILL)
            }
            let now = MonotonicInstant.now()
            if let at = killAt {
                if at <= now {
                    kill(-pid, SIGKILL)
                    killAt = now.advanced(by: .seconds(3600))   // now only reaping
                }
            } else if deadline <= now {
                kill(-pid, SIGTERM)
                killAt = now.advanced(by: killAfter)
            }
            usleep(20_000)
        }
    }

    typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32

    /// `posix_spawn_file_actions_addchdir_np` (glibc 2.29+, musl 1.1.24+), looked up at run time
    /// because the Glibc module does not export it: the child changes directory, never us (the
    /// working directory is shared by every thread of this process).
    static let addChdir: AddChdir? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addchdir_np") else { return nil }
        return unsafeBitCast(symbol, to: AddChdir.self)
    }()

    private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return body(pointers)
    }
}
