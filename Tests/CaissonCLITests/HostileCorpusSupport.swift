import CaissonCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

// Support for HostileCorpusTests: a byte-exact tar writer that can write anything (raw name
// bytes, any type flag, lying sizes, pax and GNU records), a child-process runner that measures
// the child's peak RSS with wait4 and kills it at a deadline, and snapshots of what a rejected
// package must leave unchanged (the simulated host, the SQLite store, a real Docker daemon).

// MARK: - Raw tar

/// Tar bytes written block by block, with no checks: hostile archives on purpose.
struct RawTar {
    private(set) var bytes: [UInt8] = []

    enum Magic { case ustar, gnu }

    /// One 512-byte header. `size` is what the header claims, whatever follows it.
    static func header(name: [UInt8], size: Int64, type: UInt8 = UInt8(ascii: "0"), linkName: [UInt8] = [],
                       mode: Int = 0o644, magic: Magic = .ustar, devMajor: Int = 0, devMinor: Int = 0,
                       gnuSparse: (realSize: Int64, map: [(offset: Int64, count: Int64)])? = nil) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ b: [UInt8], _ off: Int, _ len: Int) {
            for (i, c) in b.prefix(len).enumerated() { h[off + i] = c }
        }
        func octal(_ v: Int64, _ off: Int, _ len: Int) {
            let s = String(v, radix: 8)
            put(Array((String(repeating: "0", count: max(0, len - 1 - s.count)) + s).utf8), off, len - 1)
        }
        put(name, 0, 100)
        octal(Int64(mode), 100, 8)
        octal(0, 108, 8)
        octal(0, 116, 8)
        if size <= 0o77777777777 {
            octal(size, 124, 12)
        } else {
            h[124] = 0x80
            var v = size
            for i in stride(from: 135, through: 125, by: -1) { h[i] = UInt8(v & 0xff); v >>= 8 }
        }
        octal(0, 136, 12)
        h[156] = type
        put(linkName, 157, 100)
        switch magic {
        case .ustar: put(Array("ustar".utf8) + [0] + Array("00".utf8), 257, 8)
        case .gnu: put(Array("ustar  ".utf8) + [0], 257, 8)
        }
        put(Array("root".utf8), 265, 32)
        put(Array("root".utf8), 297, 32)
        octal(Int64(devMajor), 329, 8)
        octal(Int64(devMinor), 337, 8)
        if let sparse = gnuSparse {
            // Old GNU sparse header: up to 4 (offset, numbytes) pairs at 386, realsize at 483.
            for (i, piece) in sparse.map.prefix(4).enumerated() {
                octal(piece.offset, 386 + i * 24, 12)
                octal(piece.count, 386 + i * 24 + 12, 12)
            }
            octal(sparse.realSize, 483, 12)
        }
        for i in 148..<156 { h[i] = 0x20 }
        let sum = h.reduce(0) { $0 + Int($1) }
        octal(Int64(sum), 148, 7)
        h[154] = 0
        h[155] = 0x20
        return h
    }

    static func padding(_ count: Int) -> [UInt8] { [UInt8](repeating: 0, count: (512 - count % 512) % 512) }

    /// A regular file (or any `type`) whose header claims `declaredSize` (default: the truth).
    mutating func file(_ name: String, _ data: [UInt8], type: UInt8 = UInt8(ascii: "0"), declaredSize: Int64? = nil) {
        entry(Array(name.utf8), data, type: type, declaredSize: declaredSize)
    }

    mutating func entry(_ name: [UInt8], _ data: [UInt8], type: UInt8 = UInt8(ascii: "0"), declaredSize: Int64? = nil,
                        linkName: [UInt8] = [], magic: Magic = .ustar, devMajor: Int = 0, devMinor: Int = 0) {
        bytes += Self.header(name: name, size: declaredSize ?? Int64(data.count), type: type, linkName: linkName,
                             magic: magic, devMajor: devMajor, devMinor: devMinor)
        bytes += data
        bytes += Self.padding(data.count)
    }

    /// A header-only entry (link, device, FIFO, directory).
    mutating func special(_ name: String, type: Character, linkName: String = "", devMajor: Int = 0, devMinor: Int = 0) {
        entry(Array(name.utf8), [], type: type.asciiValue!, linkName: Array(linkName.utf8), devMajor: devMajor, devMinor: devMinor)
    }

    /// A pax extended header ('x') applying `records` to the next entry.
    mutating func pax(_ records: [(String, [UInt8])]) {
        var body: [UInt8] = []
        for (key, value) in records { body += Self.paxRecord(key, value) }
        entry(Array("PaxHeaders/x".utf8), body, type: UInt8(ascii: "x"))
    }

    static func paxRecord(_ key: String, _ value: [UInt8]) -> [UInt8] {
        let rest = [0x20] + Array(key.utf8) + [UInt8(ascii: "=")] + value + [0x0a]
        var n = rest.count + 1
        while String(n).utf8.count + rest.count != n { n = String(n).utf8.count + rest.count }
        return Array(String(n).utf8) + rest
    }

    /// A GNU long name ('L') for the next entry.
    mutating func gnuLongName(_ name: [UInt8]) {
        entry(Array("././@LongLink".utf8), name + [0], type: UInt8(ascii: "L"), magic: .gnu)
    }

    mutating func raw(_ b: [UInt8]) { bytes += b }

    /// The two zero blocks that end an archive.
    mutating func end() { bytes += [UInt8](repeating: 0, count: 1024) }

    func finished() -> [UInt8] { bytes + [UInt8](repeating: 0, count: 1024) }
}

// MARK: - Child processes

/// One child run to completion (or killed at its deadline), with its peak RSS from wait4.
struct ChildRun: CustomStringConvertible {
    /// Exit status, or 128 + signal when it was killed by a signal.
    var status: Int32
    var signaled: Bool
    var timedOut: Bool
    /// `ru_maxrss` of the child, in KiB (Linux).
    var maxRSSKiB: Int
    var seconds: Double
    var stdout: String
    var stderr: String

    var maxRSSMiB: Double { Double(maxRSSKiB) / 1024 }

    var description: String {
        "exit \(status)\(signaled ? " (signal)" : "")\(timedOut ? " TIMED OUT" : ""), \(String(format: "%.2f", seconds)) s, peak RSS \(String(format: "%.1f", maxRSSMiB)) MiB\nstdout: \(stdout.prefix(2000))\nstderr: \(stderr.prefix(2000))"
    }
}

enum Child {
    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// GNU time, the hop that makes the peak RSS exact (see `run`).
    static let gnuTime: String? = FileManager.default.isExecutableFile(atPath: "/usr/bin/time") ? "/usr/bin/time" : nil

    /// Runs `executable args` with posix_spawn (stdin from /dev/null, stdout and stderr to files)
    /// in its own process group, and SIGKILLs the group after `deadline` seconds (a hang detector:
    /// a generous bound, not a performance assertion).
    ///
    /// With `measureMemory`, the child's peak RSS is read from wait4's `ru_maxrss`, but one hop
    /// away: on Linux, `ru_maxrss` of a process keeps the high-water mark of the memory it had
    /// before `execve`, and a child spawned straight from this (large, multi-threaded) test
    /// process starts from a copy or share of the test process's memory, so its figure would be
    /// the test's. GNU time (`/usr/bin/time -f %M`) is a small fresh process that forks and execs
    /// the command and reports its wait4 `ru_maxrss`, which is then the command's own. Without
    /// GNU time, the child's `VmHWM` (the high-water mark of its post-exec memory, in
    /// /proc/PID/status) is sampled every 2 ms until it exits.
    static func run(_ executable: String, _ args: [String], environment: [String: String]? = nil,
                    deadline: Double = 60, measureMemory: Bool = false) throws -> ChildRun {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("caisson-hostile-io-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let outPath = scratch + "/stdout", errPath = scratch + "/stderr", rssPath = scratch + "/rss"
        let viaTime = measureMemory ? gnuTime : nil
        let command = viaTime.map { [$0, "-f", "%M", "-o", rssPath, "--", executable] } ?? [executable]

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))

        let env = environment ?? ProcessInfo.processInfo.environment
        let argv: [UnsafeMutablePointer<CChar>?] = (command + args).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = env.keys.sorted().map { strdup("\($0)=\(env[$0]!)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var pid = pid_t()
        let start = monotonicSeconds()
        let rc = posix_spawn(&pid, command[0], &actions, &attributes, argv, envp)
        guard rc == 0 else {
            throw CaissonError("test.spawn_failed", "posix_spawn \(command[0]): \(String(cString: strerror(rc)))")
        }
        var status: Int32 = 0
        var usage = rusage()
        var timedOut = false
        var sampledKiB = 0
        while true {
            let r = wait4(pid, &status, timedOut ? 0 : WNOHANG, &usage)
            if r == pid { break }
            if r < 0 {
                if errno == EINTR { continue }
                throw CaissonError("test.wait_failed", "wait4 \(pid): \(String(cString: strerror(errno)))")
            }
            if measureMemory && viaTime == nil { sampledKiB = max(sampledKiB, highWaterKiB(pid)) }
            if monotonicSeconds() - start > deadline {
                kill(-pid, SIGKILL)  // the whole group: GNU time and the command
                timedOut = true
                continue
            }
            usleep(2_000)
        }
        let seconds = monotonicSeconds() - start
        let termSignal = status & 0x7f
        var exit: Int32 = termSignal == 0 ? (status >> 8) & 0xff : 128 + termSignal
        var signaled = termSignal != 0
        var maxRSS = measureMemory ? sampledKiB : Int(usage.ru_maxrss)
        if viaTime != nil {
            // "%M" on the last line; "Command terminated by signal N" before it on a crash.
            let report = String(decoding: FileManager.default.contents(atPath: rssPath) ?? Data(), as: UTF8.self)
            let lines = report.split(separator: "\n")
            maxRSS = lines.last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? -1
            if let line = lines.first(where: { $0.hasPrefix("Command terminated by signal ") }),
               let sig = Int32(line.dropFirst("Command terminated by signal ".count)) {
                signaled = true
                exit = 128 + sig
            }
        }
        func text(_ path: String) -> String {
            String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
        }
        return ChildRun(status: exit, signaled: signaled, timedOut: timedOut, maxRSSKiB: maxRSS,
                        seconds: seconds, stdout: text(outPath), stderr: text(errPath))
    }

    /// `VmHWM` of a live process, in KiB (0 when unreadable).
    static func highWaterKiB(_ pid: pid_t) -> Int {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/status") else { return 0 }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.dropFirst(6).trimmingCharacters(in: .whitespaces).split(separator: " ").first ?? "") ?? 0
        }
        return 0
    }
}

// MARK: - Snapshots

/// What of the store a rejected package must not change, and what it must add.
struct StoreSnapshot: Equatable {
    /// Everything about releases, imports, attempts, journal, staging and service states.
    var unchanged: String
    var validationRows: Int
    var lastAuditSeq: Int

    static let unchangedQuery = """
        SELECT 'import', import_id, status, record FROM image_imports ORDER BY row_id;
        SELECT 'release', candidate_release_id, record FROM candidate_releases ORDER BY row_id;
        SELECT 'attempt', update_id, status, finished_at, record FROM update_attempts ORDER BY row_id;
        SELECT 'journal', update_id, seq, phase, step FROM journal_entries ORDER BY entry_id;
        SELECT 'staged', package_id, path FROM staged_packages ORDER BY row_id;
        SELECT 'state', service_name, updated_at, record FROM service_states ORDER BY service_name;
        SELECT 'counts', (SELECT count(*) FROM image_imports), (SELECT count(*) FROM candidate_releases),
               (SELECT count(*) FROM update_attempts), (SELECT count(*) FROM service_states);
        """

    static func take(stateDir: String) throws -> StoreSnapshot {
        let db = stateDir + "/caisson.db"
        let unchanged = try sqlite(db, unchangedQuery)
        let counts = try sqlite(db, "SELECT count(*) FROM validations; SELECT coalesce(max(seq), 0) FROM audit_events;")
            .split(separator: "\n").map { Int($0) ?? -1 }
        return StoreSnapshot(unchanged: unchanged, validationRows: counts.first ?? -1, lastAuditSeq: counts.last ?? -1)
    }

    /// Validation records added after `since`: (status, issue codes).
    static func validations(stateDir: String, after rows: Int) throws -> [(status: String, codes: [String])] {
        let out = try sqlite(stateDir + "/caisson.db", "SELECT status, record FROM validations ORDER BY row_id LIMIT -1 OFFSET \(rows);", json: true)
        let rowsJSON = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [[String: Any]] ?? []
        return rowsJSON.map { row in
            let record = (row["record"] as? String).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String: Any]
            let codes = (record?["issues"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
            return (row["status"] as? String ?? "?", codes)
        }
    }

    /// Audit events added after `seq`: (kind, message).
    static func audit(stateDir: String, after seq: Int) throws -> [(kind: String, message: String)] {
        let out = try sqlite(stateDir + "/caisson.db", "SELECT kind, message FROM audit_events WHERE seq > \(seq) ORDER BY seq;", json: true)
        let rows = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [[String: Any]] ?? []
        return rows.map { ($0["kind"] as? String ?? "?", $0["message"] as? String ?? "") }
    }

    static var sqliteBinary: String? {
        ["/usr/bin/sqlite3", "/usr/local/bin/sqlite3", "/bin/sqlite3"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func sqlite(_ db: String, _ sql: String, json: Bool = false) throws -> String {
        guard let bin = sqliteBinary else {
            throw CaissonError("test.no_sqlite3", "the sqlite3 shell is needed to read the store (apt-get install sqlite3)")
        }
        let r = try Child.run(bin, ["-readonly", "-bail"] + (json ? ["-json"] : []) + [db, sql], deadline: 60)
        guard r.status == 0 else { throw CaissonError("test.sqlite_failed", "sqlite3 \(db): \(r.stderr)") }
        return r.stdout
    }
}

/// A real Docker daemon for the `--host docker` arm: `DOCKER_HOST`, else the one
/// `scripts/docker.sh start` wrote into `<repo>/.docker-test/env`.
enum HostileDocker {
    static let repoRoot: String = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    static let dockerHost: String? = {
        if let value = ProcessInfo.processInfo.environment["DOCKER_HOST"], !value.isEmpty { return value }
        guard let text = try? String(contentsOfFile: repoRoot + "/.docker-test/env", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            for prefix in ["export DOCKER_HOST=", "DOCKER_HOST="] where trimmed.hasPrefix(prefix) {
                return String(trimmed.dropFirst(prefix.count)).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            }
        }
        return nil
    }()

    static var environment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        if let dockerHost { env["DOCKER_HOST"] = dockerHost }
        return env
    }

    static let dockerBinary: String? = ["/usr/bin/docker", "/usr/local/bin/docker"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The daemon answers (checked once).
    static let available: Bool = {
        guard let bin = dockerBinary,
              let r = try? Child.run(bin, ["version", "--format", "{{.Server.Version}}"], environment: environment, deadline: 30)
        else { return false }
        return r.status == 0 && !r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
    }()

    static var required: Bool { ProcessInfo.processInfo.environment["CAISSON_REQUIRE_DOCKER"] == "1" }

    /// Whether the real-daemon arm can run; prints a visible notice otherwise, and records a
    /// failure when CAISSON_REQUIRE_DOCKER=1.
    static func usable(_ what: String) -> Bool {
        if available { return true }
        print("NOTICE: \(what) SKIPPED: no usable Docker daemon at \(dockerHost ?? "the default socket")")
        if required { Testing.Issue.record("CAISSON_REQUIRE_DOCKER=1 but \(what) cannot run: no Docker daemon answers") }
        return false
    }

    static func docker(_ args: [String]) throws -> ChildRun {
        guard let bin = dockerBinary else { throw CaissonError("test.no_docker", "no docker CLI") }
        return try Child.run(bin, args, environment: environment, deadline: 60)
    }

    /// `docker images -aq --no-trunc` and `docker ps -aq --no-trunc`, sorted.
    static func listings() throws -> (images: [String], containers: [String]) {
        let i = try docker(["images", "-aq", "--no-trunc"])
        let c = try docker(["ps", "-aq", "--no-trunc"])
        guard i.status == 0, c.status == 0 else {
            throw CaissonError("test.docker_failed", "docker listings failed: \(i.stderr) \(c.stderr)")
        }
        func lines(_ s: String) -> [String] { Set(s.split(separator: "\n").map(String.init)).sorted() }
        return (lines(i.stdout), lines(c.stdout))
    }

    /// Whether the daemon has an image with this id.
    static func hasImage(_ id: String) throws -> Bool {
        try docker(["image", "inspect", "--format", "{{.Id}}", id]).status == 0
    }
}
