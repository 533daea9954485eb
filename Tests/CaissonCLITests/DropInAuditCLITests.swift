import CaissonCore
import Foundation
import Testing

/// Issue 11 (drop-in for the Rust tool's users) and issue 10 item 12, audited sentence by
/// sentence: what the first pass left open, through the real binary.
@Suite struct DropInAuditCLITests {
    /// Every file under `root` with its bytes (nothing created, nothing removed, nothing changed).
    static func snapshot(_ root: String) -> [String: Data] {
        var out: [String: Data] = [:]
        guard let walker = FileManager.default.enumerator(atPath: root) else { return out }
        while let p = walker.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + p, isDirectory: &isDir), !isDir.boolValue {
                out[p] = (try? Data(contentsOf: URL(fileURLWithPath: root + "/" + p))) ?? Data()
            }
        }
        return out
    }

    /// Item 4: Docker unreachable is exit 1 with docker.unreachable, before any change, for every
    /// command that needs Docker: not even the lock file, the store or the Rust state import.
    @Test func dockerUnreachableBeforeAnyChangeForEveryDockerCommand() throws {
        let c = try RustCompatCLITests.takeover()
        let state = c.dir + "/.caisson-state"
        let pkg = try c.package("p.edgepkg", version: "2.1.0")
        let before = Self.snapshot(state)
        #expect(before.keys.contains { $0.hasPrefix("staging/") }, "the Rust tool's staged copies are part of the fixture")
        let env = ["DOCKER_HOST": "unix://\(c.dir)/no-such-docker.sock", "CAISSON_LOCK_DIR": c.dir + "/locks"]
        let commands: [[String]] = [["package", "load", pkg, "--yes"], ["package", "load", pkg, "--dry-run"],
                                    ["rollback", "frontend", "--yes"], ["recover"]]
        for args in commands {
            let r = try c.run(args, sim: false, env: env)
            #expect(r.status == 1, "\(args): \(r.stdout) \(r.stderr)")
            #expect(r.stderr.hasPrefix("error: [docker.unreachable]"), "\(args): \(r.stderr)")
            #expect(!r.stdout.contains("Nothing to recover") && !r.stdout.contains("Package cleanup"), "\(args): \(r.stdout)")
            #expect(Self.snapshot(state) == before, "\(args) changed the state directory")
            let j = try c.run(args + ["--json"], sim: false, env: env)
            #expect(j.status == 1 && (j.json?["error"] as? [String: Any])?["code"] as? String == "docker.unreachable", "\(args): \(j.stdout)")
            #expect(j.json?["exit_code"] as? Int == 1)
        }
        #expect(Self.snapshot(state) == before)
        #expect(!FileManager.default.fileExists(atPath: state + "/caisson.db"))
        // package cleanup empties the Rust tool's staging/ without Docker, as the Rust tool did,
        // and says what it could not clean (exit 1; CleanupTests).
        let clean = try c.run(["package", "cleanup"], sim: false, env: env)
        #expect(clean.status == 1 && clean.stdout.contains("Removed workspace entries: 4\n"), "\(clean.stdout)")
        #expect(clean.stdout.contains("[cleanup.host_unavailable]"), "\(clean.stdout)")
    }

    /// Item 4: `--version` (and `-V`) on every command, `package build` included (its own
    /// `--version V` is the package version; alone, or as `-V`, it is the tool's).
    @Test func versionOnEveryCommand() throws {
        let c = try Caisson()
        let expected = try c.run(["--version"]).stdout
        #expect(expected.hasPrefix("caisson "))
        let commands: [[String]] = CLITests.commands + [["migrate"], ["key"], ["key", "generate"], ["package", "decrypt"],
                                                        ["console"], ["console", "password"], ["sim"]]
        for command in commands {
            for flag in ["--version", "-V"] {
                let v = try c.run(command + [flag])
                #expect(v.status == 0 && v.stdout == expected, "\(command) \(flag): \(v.stdout) \(v.stderr)")
            }
        }
        // package build's own option is still the package version.
        let missing = try c.run(["package", "build", "--service", "frontend", "--version"])
        #expect(missing.status == 1 && missing.stderr.contains("needs a value"), "\(missing.stdout) \(missing.stderr)")
    }

    /// Item 7: the internal pin tags never appear in what the operator reads, the update's step
    /// lines included; the image is named by its reference and short id.
    @Test func pinTagsNeverShown() throws {
        let c = try Caisson()
        let first = try c.run(["package", "load", try c.package("a.edgepkg", version: "1.1.0"), "--yes"])
        #expect(first.status == 0, "\(first.stdout) \(first.stderr)")
        let second = try c.run(["package", "load", try c.package("b.edgepkg", version: "1.2.0", createdAt: "2026-04-01T00:00:00Z"), "--yes"])
        #expect(second.status == 0, "\(second.stdout) \(second.stderr)")
        let rb = try c.run(["rollback", "frontend", "--yes"])
        #expect(rb.status == 0, "\(rb.stdout) \(rb.stderr)")
        for r in [first, second, rb] {
            #expect(!(r.stdout + r.stderr).contains("caisson-pin"), "\(r.stdout)\n\(r.stderr)")
        }
        // The step that pins the running image says what it keeps, by name.
        #expect(second.stderr.contains("keep image example/frontend:1.1.0 ("), "\(second.stderr)")
    }

    /// Item 6: `history show` of Caisson's own attempt lists its validation and image import
    /// events, in order, as the Rust tool did.
    @Test func historyShowListsValidationAndImportEvents() throws {
        let c = try Caisson()
        #expect(try c.run(["package", "load", try c.package("a.edgepkg", version: "1.1.0"), "--yes"]).status == 0)
        let id = try #require((try c.run(["history", "list", "--json"]).json?["attempts"] as? [[String: Any]])?.first?["update_id"] as? String)
        let show = try c.run(["history", "show", id])
        #expect(show.status == 0)
        let kinds = show.stdout.components(separatedBy: "Events:\n")[1].split(separator: "\n").map { $0.split(separator: "|")[1].trimmingCharacters(in: .whitespaces) }
        #expect(kinds == ["validation_started", "validation_accepted", "image_import_started", "image_import_succeeded",
                          "update_started", "health_check_started", "health_check_passed", "update_committed"], "\(show.stdout)")
    }

    /// Issue 10 item 12: `package validate` shows the signature verdict and the key.
    @Test func validateShowsTheSignatureVerdictAndKey() throws {
        let c = try Caisson()
        let gen = try c.run(["key", "generate", "release", "--unencrypted", "--json"], sim: false)
        let publicKey = try #require(gen.json?["public_key"] as? String)
        let keyID = try #require(try String(contentsOfFile: c.dir + "/release.pub", encoding: .utf8)
            .split(separator: "\n").first?.split(separator: " ").last.map(String.init))
        var img = SyntheticImage(reference: "example/frontend:3.0.0")
        img.labels = ["io.caisson.sim.health": "healthy"]
        img.healthcheck = ["CMD", "/bin/true"]
        FileManager.default.createFile(atPath: c.dir + "/image.tar", contents: Data(try img.archive().0))
        let built = try c.run(["package", "build", "--service", "frontend", "--version", "3.0.0", "--from-tar", "image.tar",
                               "--output", "signed.edgepkg", "--sign", "release.key"], sim: false)
        #expect(built.status == 0, "\(built.stdout) \(built.stderr)")

        // The catalog trusts no key: signed, not checked, by which key.
        let unchecked = try c.run(["package", "validate", "signed.edgepkg"])
        #expect(unchecked.stdout.contains("Signature: present but not checked (made with key \(keyID)): "), "\(unchecked.stdout)")
        let uj = try c.run(["package", "validate", "signed.edgepkg", "--json"])
        #expect((uj.json?["signature"] as? [String: Any])?["key_id"] as? String == keyID, "\(uj.stdout)")

        // Trusted: verified, by which key.
        try (Caisson.catalog + "\n[trust]\npublic_keys = [\"\(publicKey)\"]\nrequire_signature = true\n")
            .write(toFile: c.dir + "/services.toml", atomically: true, encoding: .utf8)
        let trusted = try c.run(["package", "validate", "signed.edgepkg"])
        #expect(trusted.status == 0)
        #expect(trusted.stdout.contains("Signature: verified, signed by trusted key \(keyID)"), "\(trusted.stdout)")
        let tj = try c.run(["package", "validate", "signed.edgepkg", "--json"])
        #expect((tj.json?["signature"] as? [String: Any])?["status"] as? String == "verified")
        #expect((tj.json?["signature"] as? [String: Any])?["key_id"] as? String == keyID)
    }

    /// Item 8: `--json` never prompts: every command that asks needs `--yes` (or `--dry-run`).
    @Test func jsonNeedsYesOnEveryCommandThatAsks() throws {
        let c = try Caisson()
        let pkg = try c.package("a.edgepkg", version: "1.1.0")
        for args in [["package", "load", pkg], ["rollback", "frontend"], ["self-update", pkg], ["self-update", "--rollback"]] {
            let r = try c.run(args + ["--json"], stdin: "y\n")
            #expect(r.status == 1, "\(args): \(r.stdout) \(r.stderr)")
            #expect((r.json?["error"] as? [String: Any])?["code"] as? String == "usage.json_needs_yes", "\(args): \(r.stdout)")
            #expect(!r.stderr.contains("[y/N]"), "\(args) asked: \(r.stderr)")
        }
        #expect(try Self.attemptsCount(c) == 0)
    }

    static func attemptsCount(_ c: Caisson) throws -> Int {
        (try c.run(["history", "list", "--json"]).json?["attempts"] as? [Any])?.count ?? -1
    }

    /// Item 8: `--json` never prompts, the console password included (on a terminal it needs
    /// CAISSON_CONSOLE_PASSWORD or standard input).
    @Test func consolePasswordWithJSONNeverPrompts() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else {
            Issue.record("util-linux script(1) is needed to give the binary a terminal"); return
        }
        let c = try Caisson()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        p.currentDirectoryURL = URL(fileURLWithPath: c.dir)
        var env = ProcessInfo.processInfo.environment
        env["CAISSON_CONSOLE_PASSWORD"] = nil
        p.environment = env
        // script(1) runs the command on a new terminal; timeout ends a prompt that waits forever.
        p.arguments = ["20", "/usr/bin/script", "-qec", "\(Caisson.binary) --host sim console password --json", "/dev/null"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        #expect(p.terminationStatus == 1, "\(p.terminationStatus): \(text)")
        #expect(text.contains("usage.json_needs_input"), "\(text)")
        #expect(!text.contains("New console password"), "\(text)")
        #expect(!FileManager.default.fileExists(atPath: c.dir + "/.caisson-state/console-password"))
    }
    /// Item 6: `package load` prints the Rust tool's blocks in its order (validation, prompt,
    /// image import, update result), Caisson's plan among them; a refusal is the Rust tool's
    /// validation block with its `Issues:` list.
    @Test func packageLoadPrintsTheRustToolsBlocks() throws {
        let c = try Caisson()
        let r = try c.run(["package", "load", try c.package("a.edgepkg", version: "1.1.0"), "--yes"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let marks = ["Validating package...\nPackage validation\nStatus: accepted\nSource package: ",
                     "\nTarget image: example/frontend:1.1.0\n", "\nIssues: none\n", "Update plan\n",
                     "Importing image into Docker...\nImage import\nStatus: imported\nService: frontend\nImage: example/frontend:1.1.0\nImported image id: sha256:",
                     "\nIssues: none\nApplying update...\nUpdate result\nStatus: succeeded\nService: frontend\n",
                     "Summary: the package was loaded and the service stayed healthy\n"]
        var rest = Substring(r.stdout)
        for m in marks {
            guard let range = rest.range(of: m) else { Issue.record("missing (in order) \(m.debugDescription) in\n\(r.stdout)"); return }
            rest = rest[range.upperBound...]
        }
        let same = try c.run(["package", "load", try c.package("b.edgepkg", version: "1.1.0"), "--yes"])
        #expect(same.status == 2)
        #expect(same.stdout.contains("Package validation\nStatus: rejected\n"), "\(same.stdout)")
        #expect(same.stdout.contains("\nIssues:\n- [package.already_applied] "), "\(same.stdout)")
    }
    /// Item 1: a damaged copy of the service state is reported and skipped, and the downgrade
    /// floor is not lost with it: the Rust tool wrote a service's state only when an update
    /// succeeded (a rollback put it back as it was), so its newest succeeded attempt says what
    /// it left active.
    @Test func aDamagedServiceStateKeepsTheFloor() throws {
        let c = try RustCompatCLITests.takeover()
        let path = c.dir + "/.caisson-state/service-states/frontend.json"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try String(text.prefix(40)).write(toFile: path, atomically: false, encoding: .utf8)
        let m = try c.run(["migrate", "--json"])
        #expect(m.status == 1, "\(m.stdout)")
        let issues = (m.json?["issues"] as? [[String: Any]]) ?? []
        #expect(issues.contains { $0["code"] as? String == "import.unreadable_record" && ($0["message"] as? String)?.contains("service-states/frontend.json") == true }, "\(m.stdout)")
        let show = try c.run(["service", "show", "frontend"])
        #expect(show.stdout.contains("Active image: example/frontend:1.0.0\n"), "\(show.stdout)")
        #expect(show.stdout.contains("Previous known-good image: example/frontend:2.0.0\n"), "\(show.stdout)")
        #expect(show.stdout.contains("Package version: 1.0.0\n"), "\(show.stdout)")
        let old = try c.run(["package", "load", try c.package("old.edgepkg", version: "0.9.0"), "--yes"])
        #expect(old.status == 2 && old.stdout.contains("[package.downgrade_refused]"), "\(old.stdout)")
        let text2 = try c.run(["migrate"])
        #expect(text2.status == 1)
    }
}
