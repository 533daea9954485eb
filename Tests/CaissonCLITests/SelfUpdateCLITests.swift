import CaissonCore
import Foundation
import Testing

/// `caisson self-update` through the real executable (issue 14): an installed copy of this build
/// (version V) is updated from a signed updater package carrying a second "build" of it stamped
/// with another version (`scripts/stamp-version`), then rolled back. Fake new binaries (exits 1,
/// hangs, crashes, says another version, another CPU, truncated) are refused with the installed
/// one intact. Docker is not needed (`--host sim`).
@Suite(.serialized) struct SelfUpdateCLITests {
    static let newVersion = "9.1.0"

    /// A temp directory with an installed copy of this build in `bin/`, a signing key and a catalog
    /// that requires signatures under it.
    struct Install {
        let c: Caisson
        var installPath: String { c.dir + "/bin/caisson" }
        var previousPath: String { installPath + ".previous" }
        let installedVersion: String

        init() throws {
            c = try Caisson()
            try FileManager.default.createDirectory(atPath: c.dir + "/bin", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Caisson.binary, toPath: c.dir + "/bin/caisson")
            installedVersion = try Self.version(of: c.dir + "/bin/caisson")
            let gen = try c.run(["key", "generate", "release", "--unencrypted", "--json"], sim: false)
            #expect(gen.status == 0, "\(gen.stderr)")
            let key = try #require(gen.json?["public_key"] as? String)
            let trusted = Caisson.catalog + "\n[trust]\npublic_keys = [\"\(key)\"]\nrequire_signature = true\n"
            try trusted.write(toFile: c.dir + "/services.toml", atomically: true, encoding: .utf8)
        }

        /// A fresh install directory with `template`'s key, catalog and packages (no store).
        init(copying template: Install, files: [String]) throws {
            c = try Caisson()
            try FileManager.default.createDirectory(atPath: c.dir + "/bin", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Caisson.binary, toPath: c.dir + "/bin/caisson")
            installedVersion = template.installedVersion
            for f in ["services.toml"] + files {
                try? FileManager.default.removeItem(atPath: c.dir + "/" + f)
                try FileManager.default.copyItem(atPath: template.c.dir + "/" + f, toPath: c.dir + "/" + f)
            }
        }

        /// Runs the executable `exe` (not necessarily this build) in the install's directory.
        func run(exe: String, _ args: [String], env: [String: String] = [:]) throws -> Caisson.Result {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.currentDirectoryURL = URL(fileURLWithPath: c.dir)
            p.arguments = ["--host", "sim"] + args
            if !env.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 } }
            let out = Pipe(), err = Pipe()
            p.standardOutput = out
            p.standardError = err
            p.standardInput = FileHandle.nullDevice
            try p.run()
            let o = out.fileHandleForReading.readDataToEndOfFile()
            let e = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return Caisson.Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
        }

        static func version(of exe: String) throws -> String {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = ["--version"]
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            let data = out.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                .replacingOccurrences(of: "caisson ", with: "")
        }

        func sha(_ path: String) throws -> String {
            SHA256.hash(Array(try Data(contentsOf: URL(fileURLWithPath: path)))).hex
        }

        /// A copy of this build stamped with `version` at `name` (in the temp dir).
        func stamped(_ version: String, _ name: String) throws -> String {
            let out = c.dir + "/" + name
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", Self.repoRoot + "/scripts/stamp-version", Caisson.binary, version, "-o", out]
            p.standardOutput = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            return out
        }

        static var repoRoot: String {
            var url = URL(fileURLWithPath: #filePath)
            for _ in 0..<3 { url.deleteLastPathComponent() }
            return url.path
        }

        /// An updater package of `exe` claiming `version`, signed.
        func package(_ exe: String, version: String, name: String, env: [String: String] = [:],
                     extra: [String] = []) throws -> Caisson.Result {
            try c.run(["package", "build", "--updater", exe, "--version", version, "--output", name, "--sign", "release.key",
                       "--created-at", "2026-12-01T10:00:00Z"] + extra, sim: false, env: env)
        }

        func selfUpdate(_ pkg: String, _ extra: [String] = [], env: [String: String] = [:]) throws -> Caisson.Result {
            try c.run(["self-update", pkg, "--yes", "--install-path", installPath, "--json"] + extra, env: env)
        }
    }

    @Test func aSignedUpdaterIsInstalledAfterItsTestRunAndRolledBack() throws {
        let i = try Install()
        let before = try i.sha(i.installPath)
        let new = try i.stamped(Self.newVersion, "caisson-new")
        let built = try i.package(new, version: Self.newVersion, name: "caisson-\(Self.newVersion).edgepkg")
        #expect(built.status == 0, "\(built.stdout) \(built.stderr)")

        // package validate accepts it; package load points to self-update (exit 2).
        let v = try i.c.run(["package", "validate", "caisson-\(Self.newVersion).edgepkg"])
        #expect(v.status == 0, "\(v.stdout) \(v.stderr)")
        #expect(v.stdout.contains("caisson self-update"), "\(v.stdout)")
        let load = try i.c.run(["package", "load", "caisson-\(Self.newVersion).edgepkg", "--yes"])
        #expect(load.status == 2, "\(load.stdout) \(load.stderr)")
        #expect((load.stdout + load.stderr).contains("package.updater_package"), "\(load.stdout) \(load.stderr)")

        let r = try i.selfUpdate("caisson-\(Self.newVersion).edgepkg")
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let record = r.json?["self_update"] as? [String: Any]
        #expect(record?["status"] as? String == "succeeded", "\(r.stdout)")
        #expect(try Install.version(of: i.installPath) == Self.newVersion)
        #expect(try Install.version(of: i.previousPath) == i.installedVersion)
        #expect(try i.sha(i.previousPath) == before)
        #expect(try i.sha(i.installPath) == i.sha(new))
        // No staging leftovers beside the executables.
        let left = try FileManager.default.contentsOfDirectory(atPath: i.c.dir + "/bin").sorted()
        #expect(left == ["caisson", "caisson.previous"], "\(left)")

        // Same version again: refused without --reinstall (exit 2), nothing changed.
        let again = try i.selfUpdate("caisson-\(Self.newVersion).edgepkg")
        #expect(again.status == 2, "\(again.stdout)")
        #expect(try i.sha(i.installPath) == i.sha(new))

        // history list shows it.
        let h = try i.c.run(["history", "list"])
        #expect(h.status == 0)
        #expect(h.stdout.contains("Self-updates"), "\(h.stdout)")

        // Rollback: the previous executable is back.
        let rb = try i.c.run(["self-update", "--rollback", "--yes", "--json"])
        #expect(rb.status == 0, "\(rb.stdout) \(rb.stderr)")
        #expect(try Install.version(of: i.installPath) == i.installedVersion)
        #expect(try i.sha(i.installPath) == before)
        let rb2 = try i.c.run(["self-update", "--rollback", "--yes"])
        #expect(rb2.status == 1, "\(rb2.stdout) \(rb2.stderr)")
        #expect(rb2.stderr.contains("self_update.no_rollback_point"), "\(rb2.stderr)")
    }

    /// A new executable that misbehaves in its test-run (debug builds read `CAISSON_TEST_FAULT`).
    static let faultyRuns: [(String, String)] = [
        ("version-exit", "self_update.test_failed"),
        ("version-hang", "self_update.test_timed_out"),
        ("self-test-fail", "self_update.test_failed"),
        ("self-test-crash", "self_update.test_crashed"),
        ("self-test-hang", "self_update.test_timed_out"),
    ]

    @Test(arguments: faultyRuns)
    func aNewExecutableFailingItsTestRunIsRefused(_ fault: String, _ code: String) throws {
        let i = try Install()
        let before = try i.sha(i.installPath)
        let new = try i.stamped(Self.newVersion, "caisson-new")
        #expect(try i.package(new, version: Self.newVersion, name: "u.edgepkg").status == 0)
        let r = try i.selfUpdate("u.edgepkg", ["--test-timeout", "3"], env: ["CAISSON_TEST_FAULT": "\(Self.newVersion):\(fault)"])
        #expect(r.status == 4, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains(code), "\(r.stdout)")
        #expect(try i.sha(i.installPath) == before)
        let left = try FileManager.default.contentsOfDirectory(atPath: i.c.dir + "/bin")
        #expect(left == ["caisson"], "\(left)")
    }

    @Test func aFailingFirstRunPutsThePreviousOneBack() throws {
        let i = try Install()
        let before = try i.sha(i.installPath)
        let new = try i.stamped(Self.newVersion, "caisson-new")
        #expect(try i.package(new, version: Self.newVersion, name: "u.edgepkg").status == 0)
        let r = try i.selfUpdate("u.edgepkg", env: ["CAISSON_TEST_FAULT": "\(Self.newVersion):confirm-crash"])
        #expect(r.status == 4, "\(r.stdout) \(r.stderr)")
        #expect((r.json?["self_update"] as? [String: Any])?["status"] as? String == "rolled_back", "\(r.stdout)")
        #expect(try i.sha(i.installPath) == before)
        #expect(try Install.version(of: i.installPath) == i.installedVersion)
    }

    @Test func aWrongVersionIsRefused() throws {
        let i = try Install()
        let before = try i.sha(i.installPath)
        // Says 9.1.1 but the package claims 9.1.0 (the build check is kept out by its fault).
        let liar = try i.stamped("9.1.1", "caisson-liar")
        let b = try i.package(liar, version: Self.newVersion, name: "u.edgepkg", env: ["CAISSON_TEST_FAULT": "9.1.1:version-exit"])
        #expect(b.status == 0, "\(b.stdout) \(b.stderr)")
        let r = try i.selfUpdate("u.edgepkg")
        #expect(r.status == 4, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("self_update.wrong_version"), "\(r.stdout)")
        #expect(try i.sha(i.installPath) == before)
    }

    @Test func anExecutableForAnotherMachineIsRejectedAtValidation() throws {
        let i = try Install()
        let before = try i.sha(i.installPath)
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: try i.stamped(Self.newVersion, "caisson-arm"))))
        // e_machine (offset 18, little-endian) of another CPU than this one's.
        let other: UInt16 = bytes[18] == 0xB7 ? 0x3E : 0xB7
        bytes[18] = UInt8(other & 0xFF)
        bytes[19] = UInt8(other >> 8)
        FileManager.default.createFile(atPath: i.c.dir + "/caisson-arm", contents: Data(bytes))
        chmod(i.c.dir + "/caisson-arm", 0o755)
        let b = try i.package(i.c.dir + "/caisson-arm", version: Self.newVersion, name: "u.edgepkg")
        #expect(b.status == 0, "\(b.stdout) \(b.stderr)")  // built for its own platform (linux/arm64)
        #expect(FileManager.default.fileExists(atPath: i.c.dir + "/u.edgepkg"))
        let r = try i.selfUpdate("u.edgepkg")
        #expect(r.status == 2, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("updater.wrong_machine"), "\(r.stdout)")
        #expect(try i.sha(i.installPath) == before)
    }

    @Test func aTruncatedExecutableIsRefused() throws {
        let i = try Install()
        let before = try i.sha(i.installPath)
        let full = try Data(contentsOf: URL(fileURLWithPath: try i.stamped(Self.newVersion, "caisson-cut")))
        FileManager.default.createFile(atPath: i.c.dir + "/caisson-cut", contents: full.prefix(full.count / 3))
        chmod(i.c.dir + "/caisson-cut", 0o755)
        let b = try i.package(i.c.dir + "/caisson-cut", version: Self.newVersion, name: "u.edgepkg")
        #expect(FileManager.default.fileExists(atPath: i.c.dir + "/u.edgepkg"), "\(b.stdout) \(b.stderr)")
        let r = try i.selfUpdate("u.edgepkg", ["--test-timeout", "5"])
        #expect(r.status == 4, "\(r.stdout) \(r.stderr)")
        #expect(try i.sha(i.installPath) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: i.c.dir + "/bin") == ["caisson"])
    }

    @Test func anUnsignedOrTamperedUpdaterIsRejected() throws {
        let i = try Install()
        let before = try i.sha(i.installPath)
        let new = try i.stamped(Self.newVersion, "caisson-new")
        let unsigned = try i.c.run(["package", "build", "--updater", new, "--version", Self.newVersion, "--output", "u.edgepkg"], sim: false)
        #expect(unsigned.status == 2, "\(unsigned.stdout)")
        let r = try i.selfUpdate("u.edgepkg")
        #expect(r.status == 2, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("signature.missing"), "\(r.stdout)")
        #expect(try i.sha(i.installPath) == before)
    }


    /// The new executable migrates the store (a debug build stamped 9.1.0 with
    /// `CAISSON_TEST_EXTRA_SCHEMA=9.1.0` has one more migration): the old one then refuses the
    /// store (`store.schema_too_new`, exit 1, nothing changed) and its `--rollback` restores the
    /// snapshot, keeping the newer database aside.
    @Test func anOlderCaissonFacingTheNewerStoreRefusesAndItsRollbackRestoresTheStore() throws {
        let i = try Install()
        let before = try i.sha(i.installPath)
        let env = ["CAISSON_TEST_EXTRA_SCHEMA": Self.newVersion]
        let new = try i.stamped(Self.newVersion, "caisson-new")
        #expect(try i.package(new, version: Self.newVersion, name: "u.edgepkg").status == 0)
        let r = try i.selfUpdate("u.edgepkg", env: env)
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let db = i.c.dir + "/.caisson-state/caisson.db"
        let migrated = try Data(contentsOf: URL(fileURLWithPath: db))

        // This build is the old one: it refuses the newer store and changes nothing.
        let old = try i.c.run(["history", "list"], env: env)
        #expect(old.status == 1, "\(old.stdout) \(old.stderr)")
        #expect(old.stderr.contains("store.schema_too_new"), "\(old.stderr)")
        #expect(old.stderr.contains("self-update --rollback"), "\(old.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: db)) == migrated)

        // Its rollback restores the snapshot (the old schema) and the previous executable.
        let rb = try i.c.run(["self-update", "--rollback", "--yes", "--json"], env: env)
        #expect(rb.status == 0, "\(rb.stdout) \(rb.stderr)")
        let record = rb.json?["self_update"] as? [String: Any]
        #expect(record?["store_restored"] as? Bool == true, "\(rb.stdout)")
        if let aside = record?["replaced_store"] as? String {
            #expect(FileManager.default.fileExists(atPath: aside), "\(aside)")
        } else {
            Issue.record("no replaced_store in \(rb.stdout)")
        }
        #expect(try i.sha(i.installPath) == before)
        let h = try i.c.run(["history", "list"], env: env)
        #expect(h.status == 0, "\(h.stdout) \(h.stderr)")
        #expect(h.stdout.contains("rolled_back") || h.stdout.contains("rollback"), "\(h.stdout)")
    }

    /// The self-update process is SIGKILLed right after each of its journal writes in turn (a
    /// debug-build hook, `CAISSON_TEST_FAULT=VERSION:kill-after-write-N`), then the next command
    /// (alternately the old and whatever executable is installed) recovers. At every point the
    /// install path holds a working Caisson (the old or the new one), and after recovery the
    /// self-update is finished (new one installed, old one kept) or undone (old one, no leftovers).
    @Test func aKillAfterEveryJournalWriteLeavesAWorkingCaisson() throws {
        let template = try Install()
        let new = try template.stamped(Self.newVersion, "caisson-new")
        #expect(try template.package(new, version: Self.newVersion, name: "u.edgepkg").status == 0)
        let oldSHA = try template.sha(template.installPath)
        let newSHA = try template.sha(new)
        var outcomes: [String: Int] = [:]
        var k = 0
        while k < 100 {
            let i = try Install(copying: template, files: ["release.key", "u.edgepkg"])
            let r = try i.selfUpdate("u.edgepkg", env: ["CAISSON_TEST_FAULT": "\(i.installedVersion):kill-after-write-\(k)"])
            if r.status != 9 {
                // Past the last write: it ran to its end.
                #expect(r.status == 0, "k=\(k): \(r.stdout) \(r.stderr)")
                break
            }
            // Killed: the install path still holds a complete, working Caisson.
            let v = try Install.version(of: i.installPath)
            #expect(v == i.installedVersion || v == Self.newVersion, "k=\(k): \(v)")
            // The next command recovers (from either executable).
            let exe = k % 2 == 0 ? Caisson.binary : i.installPath
            let h = try i.run(exe: exe, ["history", "list", "--json"])
            #expect(h.status == 0, "k=\(k): \(h.stdout) \(h.stderr)")
            let list = (try? JSONSerialization.jsonObject(with: Data(h.stdout.utf8))) as? [String: Any]
            let statuses = ((list?["self_updates"] as? [[String: Any]]) ?? []).compactMap { $0["status"] as? String }
            #expect(statuses.count == 1, "k=\(k): \(h.stdout)")
            let status = statuses.first ?? "?"
            outcomes[status, default: 0] += 1
            let sha = try i.sha(i.installPath)
            let files = try FileManager.default.contentsOfDirectory(atPath: i.c.dir + "/bin").sorted()
            switch status {
            case "succeeded":
                #expect(sha == newSHA, "k=\(k)")
                #expect(files == ["caisson", "caisson.previous"], "k=\(k): \(files)")
                #expect(try i.sha(i.previousPath) == oldSHA, "k=\(k)")
            case "failed", "rolled_back":
                #expect(sha == oldSHA, "k=\(k): \(status)")
                #expect(files.allSatisfy { !$0.hasPrefix(".") }, "k=\(k): \(files)")
            default:
                Issue.record("k=\(k): self-update ended \(status)")
            }
            try? FileManager.default.removeItem(atPath: i.c.dir)
            k += 1
        }
        #expect(k > 10, "the self-update journals more than \(k) writes")
        #expect(k < 100)
        // Both ways out were taken: undone before the swap, finished after it.
        #expect((outcomes["failed"] ?? 0) > 0 && (outcomes["succeeded"] ?? 0) > 0, "\(outcomes)")
        print("self-update kill points: \(k), outcomes \(outcomes.sorted { $0.key < $1.key })")
    }

    /// `self-update --rollback` by the old executable, after the new one migrated the store,
    /// SIGKILLed after each of its journal writes in turn; the next command (alternately the old
    /// one and whatever is installed) finishes it: the old executable back, the store it reads.
    @Test func aKillAfterEveryJournalWriteOfARollbackIsFinished() throws {
        let i = try Install()
        let env = ["CAISSON_TEST_EXTRA_SCHEMA": Self.newVersion]
        let before = try i.sha(i.installPath)
        let new = try i.stamped(Self.newVersion, "caisson-new")
        #expect(try i.package(new, version: Self.newVersion, name: "u.edgepkg").status == 0)
        #expect(try i.selfUpdate("u.edgepkg", env: env).status == 0)
        // The updated directory, restored before each kill point (the paths in it are absolute).
        let saved = i.c.dir + ".saved"
        try FileManager.default.copyItem(atPath: i.c.dir, toPath: saved)
        defer { try? FileManager.default.removeItem(atPath: saved) }
        var k = 0
        var killed = 0
        while k < 60 {
            try FileManager.default.removeItem(atPath: i.c.dir)
            try FileManager.default.copyItem(atPath: saved, toPath: i.c.dir)
            let r = try i.c.run(["self-update", "--rollback", "--yes", "--json"],
                                env: env.merging(["CAISSON_TEST_FAULT": "\(i.installedVersion):kill-after-write-\(k)"]) { $1 })
            if r.status != 9 {
                #expect(r.status == 0, "k=\(k): \(r.stdout) \(r.stderr)")
                break
            }
            killed += 1
            let v = try Install.version(of: i.installPath)
            #expect(v == i.installedVersion || v == Self.newVersion, "k=\(k): \(v)")
            let exe = k % 2 == 0 ? Caisson.binary : i.installPath
            let h = try i.run(exe: exe, ["history", "list", "--json"], env: env)
            #expect(h.status == 0, "k=\(k): \(h.stdout) \(h.stderr)")
            #expect(try i.sha(i.installPath) == before, "k=\(k): the old executable is not back")
            let list = (try? JSONSerialization.jsonObject(with: Data(h.stdout.utf8))) as? [String: Any]
            let records = (list?["self_updates"] as? [[String: Any]]) ?? []
            #expect(records.contains { $0["kind"] as? String == "rollback" && $0["status"] as? String == "rolled_back" },
                    "k=\(k): \(h.stdout)")
            #expect(!records.contains { !["succeeded", "failed", "rolled_back"].contains($0["status"] as? String ?? "?") },
                    "k=\(k): \(h.stdout)")
            // Nothing left to roll back.
            let again = try i.c.run(["self-update", "--rollback", "--yes"], env: env)
            #expect(again.stderr.contains("self_update.no_rollback_point"), "k=\(k): \(again.stdout) \(again.stderr)")
            k += 1
        }
        #expect(killed > 5 && k < 60, "\(killed) kill points")
        print("self-update --rollback kill points: \(killed)")
    }

    @Test func helpAndUsage() throws {
        let c = try Caisson()
        for cmd in [["self-update"], ["self-test"]] {
            let r = try c.run(cmd + ["--help"])
            #expect(r.status == 0)
            #expect(r.stdout.contains("Usage"), "\(r.stdout)")
        }
        let r = try c.run(["self-update", "--yes"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("error: [usage.invalid]"), "\(r.stderr)")
    }
}
