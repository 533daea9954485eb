import CaissonCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 10 items 2 and 11 on the real binary: the state directory is the device's memory.
@Suite struct StateDirectoryCLITests {
    /// Deleting the state directory in the middle of a load must not end in "succeeded".
    @Test func deletingTheStateDirectoryMidLoadIsNotASuccess() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.1")
        let p = try Spawned(Caisson.binary, ["--host", "sim", "package", "load", "--yes", pkg], cwd: c.dir,
                            env: ["CAISSON_DEBUG_PAUSE_AT": "health", "CAISSON_DEBUG_PAUSE_MS": "60000",
                                  "CAISSON_DEBUG_RESUME_FILE": c.dir + "/resume"])
        #expect(p.waitFor("caisson-debug: paused at health"), "\(p.stderr)")
        try FileManager.default.removeItem(atPath: c.dir + "/.caisson-state")
        FileManager.default.createFile(atPath: c.dir + "/resume", contents: Data())
        let status = p.wait()
        #expect(status != 0, "stdout: \(p.stdout) stderr: \(p.stderr)")
        #expect(!p.stdout.contains("Status: succeeded"), "\(p.stdout)")
        #expect(p.stdout.contains("[store.gone]") || p.stderr.contains("[store.gone]"), "stdout: \(p.stdout) stderr: \(p.stderr)")
    }

    @Test func cleanupNeverFollowsASymlinkedStagingDirectory() throws {
        let c = try Caisson()
        #expect(try c.run(["service", "list"]).status == 0)  // creates the state directory
        let elsewhere = c.dir + "/elsewhere"
        try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
        for name in ["a.edgepkg", "b.edgepkg.partial"] {
            #expect(FileManager.default.createFile(atPath: elsewhere + "/" + name, contents: Data("keep me".utf8)))
        }
        #expect(symlink(elsewhere, c.dir + "/.caisson-state/staging") == 0)
        let r = try c.run(["package", "cleanup"])
        #expect(r.status == 1, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("state.unsafe_entry"), "\(r.stdout)")
        for name in ["a.edgepkg", "b.edgepkg.partial"] {
            #expect(FileManager.default.fileExists(atPath: elsewhere + "/" + name), "cleanup deleted \(name) through the link")
        }
        // A load refuses to stage through it.
        let pkg = try c.package("p.edgepkg", version: "1.0.2")
        let load = try c.run(["package", "load", "--stage", "--yes", pkg])
        #expect(load.status == 1 && load.stderr.contains("[state.unsafe_entry]"), "\(load.stdout) \(load.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere).sorted() == ["a.edgepkg", "b.edgepkg.partial"])
    }

    @Test func aWorldWritableStateDirectoryIsRefused() throws {
        let c = try Caisson()
        try FileManager.default.createDirectory(atPath: c.dir + "/.caisson-state", withIntermediateDirectories: true)
        chmod(c.dir + "/.caisson-state", 0o777)
        let r = try c.run(["service", "list"])
        #expect(r.status == 1 && r.stderr.contains("[state.unsafe_permissions]"), "\(r.stderr)")
    }

    /// `CAISSON_STATE_DIR` fixes the device's memory whatever the working directory.
    @Test func theStateDirectoryFromTheEnvironment() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.3")
        let state = c.dir + "/var-lib-caisson"
        let r = try c.run(["--services", c.dir + "/services.toml", "package", "load", "--yes", c.dir + "/" + pkg],
                          env: ["CAISSON_STATE_DIR": state])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(FileManager.default.fileExists(atPath: state + "/caisson.db"))
        #expect(!FileManager.default.fileExists(atPath: c.dir + "/.caisson-state/caisson.db"))
        let sub = c.dir + "/elsewhere"
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        let h = try Spawned(Caisson.binary, ["--host", "sim", "--services", c.dir + "/services.toml", "history", "list"], cwd: sub,
                            env: ["CAISSON_STATE_DIR": state])
        #expect(h.wait() == 0)
        #expect(h.stdout.components(separatedBy: "\n").filter { $0.hasPrefix("- ") }.count == 1 && h.stdout.contains("| frontend | succeeded"), "\(h.stdout) \(h.stderr)")
    }

    /// `key generate` writes the secret key 0600 from its first byte: created with that mode,
    /// never chmod-ed afterwards (inotify would see the chmod as IN_ATTRIB on the key).
    @Test func theSecretKeyIsNeverReadableByOthers() throws {
        let c = try Caisson()
        let dir = c.dir + "/keys"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // With umask 000 a file created without an explicit mode would be readable by everyone.
        let events = try Self.fileEvents(in: dir) {
            let r = try Spawned("/bin/sh", ["-c", "umask 000; exec '\(Caisson.binary)' key generate keys/release --unencrypted"], cwd: c.dir)
            #expect(r.wait() == 0, "\(r.stdout) \(r.stderr)")
        }
        #expect(events.contains { $0.name == "release.key" && $0.mask & UInt32(IN_CLOSE_WRITE) != 0 }, "\(events)")
        #expect(!events.contains { $0.name == "release.key" && $0.mask & UInt32(IN_ATTRIB) != 0 },
                "the secret key's mode was changed after it was written: \(events)")
        var st = stat()
        #expect(stat(dir + "/release.key", &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        // --force replaces it, still 0600, never through an existing file's mode.
        let again = try c.run(["key", "generate", "keys/release", "--unencrypted", "--force"], sim: false)
        #expect(again.status == 0)
        #expect(stat(dir + "/release.key", &st) == 0 && st.st_mode & 0o777 == 0o600)
        let refused = try c.run(["key", "generate", "keys/release", "--unencrypted"], sim: false)
        #expect(refused.status == 1 && refused.stderr.contains("[key.exists]"))
    }

    /// What inotify saw happen to the files of `dir` while `body` ran: (name, mask) in order.
    static func fileEvents(in dir: String, _ body: () throws -> Void) throws -> [(name: String, mask: UInt32)] {
        let ino = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        #expect(ino >= 0)
        defer { close(ino) }
        #expect(inotify_add_watch(ino, dir, UInt32(IN_CREATE | IN_ATTRIB | IN_MODIFY | IN_MOVED_TO | IN_CLOSE_WRITE)) >= 0)
        try body()
        var events: [(name: String, mask: UInt32)] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(ino, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            var off = 0
            while off + 16 <= n {
                let mask = buffer.withUnsafeBytes { $0.load(fromByteOffset: off + 4, as: UInt32.self) }
                let len = Int(buffer.withUnsafeBytes { $0.load(fromByteOffset: off + 12, as: UInt32.self) })
                let nameBytes = buffer[(off + 16)..<(off + 16 + len)].prefix { $0 != 0 }
                events.append((String(decoding: nameBytes, as: UTF8.self), mask))
                off += 16 + len
            }
        }
        return events
    }

    /// Every secret file Caisson writes is 0600 from its first byte, through one writer
    /// (`SecretFile`): the age identity of `key generate --age` (its writer used to chmod its
    /// temporary file after creating it), the console's password hash and sign-in token. With
    /// umask 000, any file created with a wider mode would need a chmod (IN_ATTRIB) to end 0600.
    @Test func everySecretFileIsPrivateFromItsFirstByte() throws {
        let c = try Caisson()
        let keys = c.dir + "/keys"
        try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
        func noModeChange(_ events: [(name: String, mask: UInt32)], _ prefix: String) {
            let mine = events.filter { $0.name.hasPrefix(prefix) || $0.name.hasPrefix("." + prefix) }
            #expect(mine.contains { $0.mask & UInt32(IN_CREATE) != 0 }, "\(prefix): \(events)")
            #expect(!mine.contains { $0.mask & UInt32(IN_ATTRIB) != 0 }, "the mode of \(prefix) was changed after it was created: \(mine)")
        }
        func mode(_ path: String) -> mode_t {
            var st = stat()
            return lstat(path, &st) == 0 ? st.st_mode & 0o7777 : 0
        }
        let umask0 = "umask 000; exec '\(Caisson.binary)'"
        // The age identity.
        let age = try Self.fileEvents(in: keys) {
            let r = try Spawned("/bin/sh", ["-c", "\(umask0) key generate --age keys/device.age"], cwd: c.dir)
            #expect(r.wait() == 0, "\(r.stdout) \(r.stderr)")
        }
        noModeChange(age, "device.age")
        #expect(mode(keys + "/device.age") == 0o600)
        let again = try Self.fileEvents(in: keys) {
            let r = try Spawned("/bin/sh", ["-c", "\(umask0) key generate --age keys/device.age --force"], cwd: c.dir)
            #expect(r.wait() == 0, "\(r.stdout) \(r.stderr)")
        }
        noModeChange(again, "device.age")
        #expect(mode(keys + "/device.age") == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: keys) == ["device.age"], "a temporary file was left behind")
        // The console's password hash and its one-time sign-in token, in the state directory.
        #expect(try c.run(["service", "list"]).status == 0)
        let state = c.dir + "/.caisson-state"
        let password = try Self.fileEvents(in: state) {
            let r = try Spawned("/bin/sh", ["-c", "\(umask0) --host sim console password"], cwd: c.dir,
                                env: ["CAISSON_CONSOLE_PASSWORD": "correct horse battery"])
            #expect(r.wait() == 0, "\(r.stdout) \(r.stderr)")
        }
        noModeChange(password, "console-password")
        #expect(mode(state + "/console-password") == 0o600)
        let token = try Self.fileEvents(in: state) {
            let r = try Spawned("/bin/sh", ["-c", "\(umask0) --host sim console --listen 127.0.0.1:0 --media media"], cwd: c.dir)
            #expect(r.waitFor("?token="), "\(r.stdout) \(r.stderr)")
            r.signal(SIGTERM)
            _ = r.wait()
        }
        noModeChange(token, "console-token")
        #expect(mode(state + "/console-token") == 0o600)
    }

    /// Issue 10 item 11, "check integrity at open (quick check) and in `history verify`": an
    /// index that no longer matches its table passes SQLite's quick check (every command's open
    /// goes on) but `history verify` runs the full integrity check and says the database is
    /// damaged (exit 1).
    @Test func historyVerifyFindsDamageTheQuickCheckLetsThrough() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.3")
        #expect(try c.run(["package", "load", "--yes", pkg]).status == 0)
        #expect(try c.run(["history", "verify"]).status == 0)
        let db = c.dir + "/.caisson-state/caisson.db"
        func sqlite(_ sql: String) throws -> String {
            let p = try Spawned("/usr/bin/env", ["sqlite3", db, sql], cwd: c.dir)
            #expect(p.wait() == 0, "\(sql): \(p.stderr)")
            return p.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // The index of attempts by status now claims to index service names: its entries no
        // longer match the table.
        _ = try sqlite("PRAGMA writable_schema=ON; UPDATE sqlite_schema SET sql = 'CREATE INDEX update_attempts_status ON update_attempts (service_name)' WHERE name = 'update_attempts_status';")
        #expect(try sqlite("PRAGMA quick_check") == "ok", "the damage must be one the quick check at open lets through")
        #expect(try c.run(["history", "list"]).status == 0, "the quick check at open refused it")
        let v = try c.run(["history", "verify"])
        #expect(v.status == 1, "\(v.stdout) \(v.stderr)")
        #expect(v.stdout.contains("Database: DAMAGED") && v.stdout.contains("missing from index update_attempts_status"), "\(v.stdout)")
        let j = try c.run(["history", "verify", "--json"])
        #expect(j.status == 1 && j.stdout.contains("store.corrupt"), "\(j.stdout)")
    }
}
