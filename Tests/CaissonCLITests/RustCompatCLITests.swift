import CaissonCore
import Foundation
import Testing

/// Issue 11 items 1, 4 (CLI), 6: a device that ran the Rust caisson 0.1.0 switches to Caisson
/// and its operators' scripts keep working. Everything through the real binary.
@Suite struct RustCompatCLITests {
    static var fixture: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fixtures/rust-state").path
    }

    /// A working directory holding a copy of the real Rust state directory and its catalog.
    static func takeover() throws -> Caisson {
        let c = try Caisson()
        try FileManager.default.removeItem(atPath: c.dir + "/services.toml")
        try FileManager.default.copyItem(atPath: fixture + "/services.toml", toPath: c.dir + "/services.toml")
        try FileManager.default.copyItem(atPath: fixture + "/state", toPath: c.dir + "/.caisson-state")
        return c
    }

    static func files(_ root: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for folder in ["service-states", "update-attempts", "validation-records", "image-import-records", "candidate-releases", "audit"] {
            for name in try FileManager.default.contentsOfDirectory(atPath: root + "/" + folder) {
                out[folder + "/" + name] = try Data(contentsOf: URL(fileURLWithPath: root + "/" + folder + "/" + name))
            }
        }
        return out
    }

    @Test func theRustToolsHistoryFloorAndStagingAreTakenOver() throws {
        let c = try Self.takeover()
        let state = c.dir + "/.caisson-state"
        let before = try Self.files(state)

        // First use: imported, and said so (on stderr; stdout is the command's).
        let show = try c.run(["service", "show", "frontend"])
        #expect(show.status == 0, "\(show.stdout) \(show.stderr)")
        #expect(show.stderr.contains("Imported the Rust caisson state in"), "\(show.stderr)")
        #expect(show.stderr.contains("1 service state, 3 update attempts, 4 validation records, 3 image import records, 3 candidate releases, 27 audit events"))
        #expect(show.stdout.hasPrefix("""
            Service: frontend
            Revision: frontend-v1
            Platform: linux/amd64
            Runtime: docker
            Container: caisson-it-frontend
            Catalog image: example/frontend:current
            Health check: container_health
            Active image: example/frontend:1.0.0
            Previous known-good image: example/frontend:2.0.0
            State updated: 2026-12-03T08:39:49.708064508Z
            Last update: rolled back
            Last target image: example/frontend:7.0.0
            Last started: 2026-12-03T08:39:44.359047401Z
            Last finished: 2026-12-03T08:39:49.708066501Z

            """), "\(show.stdout)")
        #expect(show.stdout.contains("Package version: 1.0.0"))
        // Only once.
        #expect(!(try c.run(["service", "list"])).stderr.contains("Imported"))

        let list = try c.run(["service", "list"])
        #expect(list.stdout.contains("""
            Known services
            - frontend | runtime: docker | active image: example/frontend:1.0.0 | last update: rolled back

            """), "\(list.stdout)")
        #expect(list.stdout.contains("- backend | runtime: compose | active image: not recorded yet | last update: none yet\n"))

        // History as the Rust tool printed it.
        let history = try c.run(["history", "list"])
        #expect(history.status == 0)
        #expect(history.stdout == """
            Update history
            - dbf8ede0-09cf-4f9b-b73b-158f467a7bd6 | 2026-12-03T08:39:44.359047401Z | frontend | rolled back
              target image: example/frontend:7.0.0
            - 02db28ac-2dc2-4f38-aefe-d0647f8517d6 | 2026-12-03T08:39:35.440374493Z | frontend | succeeded
              target image: example/frontend:1.0.0
            - e7e978ff-1a4b-4e3f-9450-277de100baab | 2026-12-03T08:39:32.71436712Z | frontend | succeeded
              target image: example/frontend:2.0.0

            """, "\(history.stdout)")
        let detail = try c.run(["history", "show", "dbf8ede0-09cf-4f9b-b73b-158f467a7bd6"])
        #expect(detail.stdout.hasPrefix("""
            Update: dbf8ede0-09cf-4f9b-b73b-158f467a7bd6
            Service: frontend
            Status: rolled back
            Target image: example/frontend:7.0.0
            Previous image: example/frontend:1.0.0
            Started: 2026-12-03T08:39:44.359047401Z
            Finished: 2026-12-03T08:39:49.708066501Z
            Health check: failed (containers reported unhealthy: caisson-it-frontend)

            """), "\(detail.stdout)")
        #expect(detail.stdout.contains("Issues:\n- [health_check.failed] containers reported unhealthy: caisson-it-frontend\nEvents:\n"))
        // Its validation and image import too, like the Rust tool: 4 + 5 events.
        let events = detail.stdout.components(separatedBy: "Events:\n")[1].split(separator: "\n")
        #expect(events.count == 9, "\(events)")
        #expect(events.first?.hasPrefix("- 2026-12-03T08:39:44.24778288Z | validation_started | ") == true)
        #expect(events.contains { $0.contains("| image_import_succeeded |") })
        #expect(events.last?.hasPrefix("- 2026-12-03T08:39:49.713798728Z | rollback_succeeded | ") == true)
        #expect(try c.run(["history", "verify"]).status == 0)

        // The floor: older refused as a downgrade (validate says what load says), same = installed.
        let old = try c.package("old.edgepkg", version: "0.9.0")
        let v = try c.run(["package", "validate", old])
        #expect(v.status == 2 && v.stdout.contains("[package.downgrade_refused]"), "\(v.stdout)")
        let l = try c.run(["package", "load", old, "--yes"])
        #expect(l.status == 2 && l.stdout.contains("[package.downgrade_refused]"), "\(l.stdout)")
        let same = try c.run(["package", "load", try c.package("same.edgepkg", version: "1.0.0"), "--yes"])
        #expect(same.status == 2 && same.stdout.contains("[package.already_applied]"), "\(same.stdout)")

        // The Rust tool's staged copies go with package cleanup; nothing else of it does.
        let clean = try c.run(["package", "cleanup"])
        #expect(clean.status == 0, "\(clean.stdout)")
        #expect(clean.stdout.contains("Package cleanup\nRemoved leftover package artifacts under \(state)/staging\nRemoved workspace entries: 4\n"), "\(clean.stdout)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: state + "/staging")) ?? []).filter { $0.count == 36 }.isEmpty)
        #expect(try Self.files(state) == before, "the Rust tool's records were changed")

        // A newer package goes ahead from there.
        let newer = try c.run(["package", "load", try c.package("new.edgepkg", version: "2.1.0"), "--yes"])
        #expect(newer.status == 0, "\(newer.stdout) \(newer.stderr)")

        // Explicit migrate: nothing new, nothing twice.
        let again = try c.run(["migrate"])
        #expect(again.status == 0)
        #expect(again.stdout.contains("Imported: 0 service states, 0 update attempts, 0 validation records, 0 image import records, 0 candidate releases, 0 audit events"), "\(again.stdout)")
        #expect(again.stdout.contains("Already in the store: 1 service state, 3 update attempts"))
        #expect(try c.run(["history", "list", "--json"]).json?["attempts"].map { ($0 as? [Any])?.count } == 4)
    }

    @Test func aDamagedCopyIsReportedAndTheRestImported() throws {
        let c = try Self.takeover()
        let state = c.dir + "/.caisson-state"
        let path = state + "/update-attempts/02db28ac-2dc2-4f38-aefe-d0647f8517d6.json"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try String(text.prefix(100)).write(toFile: path, atomically: false, encoding: .utf8)
        let state2 = state + "/update-attempts/e7e978ff-1a4b-4e3f-9450-277de100baab.json"
        try (try String(contentsOfFile: state2, encoding: .utf8)).replacingOccurrences(of: "\"succeeded\"", with: "\"exploded\"")
            .write(toFile: state2, atomically: false, encoding: .utf8)
        let m = try c.run(["migrate", "--json"])
        #expect(m.status == 1, "\(m.stdout)")
        #expect(m.json?["status"] as? String == "imported_with_skips")
        let codes = (m.json?["issues"] as? [[String: Any]])?.compactMap { $0["code"] as? String }.sorted()
        #expect(codes == ["import.unknown_status", "import.unreadable_record"], "\(m.stdout)")
        let h = try c.run(["history", "list"])
        #expect(h.stdout.contains("- dbf8ede0-09cf-4f9b-b73b-158f467a7bd6 | 2026-12-03T08:39:44.359047401Z | frontend | rolled back"))
        #expect(try c.run(["package", "load", try c.package("old.edgepkg", version: "0.9.0"), "--yes"]).status == 2)
    }

    @Test func historyLimitZeroAndVersionEverywhere() throws {
        let c = try Caisson()
        let r = try c.run(["history", "list", "--limit", "0"])
        #expect(r.status == 0)
        #expect(r.stdout == "Update history\nNo update history matched the current filter.\n")
        let expected = try c.run(["--version"]).stdout
        #expect(expected.hasPrefix("caisson "))
        for command in CLITests.commands where command != ["package", "build"] {
            for flag in ["--version", "-V"] {
                let v = try c.run(command + [flag])
                #expect(v.status == 0 && v.stdout == expected, "\(command) \(flag): \(v.stdout) \(v.stderr)")
            }
        }
        // A usage error stays exit 1 (the Rust tool's 2 means "package rejected" here).
        #expect(try c.run(["history", "list", "--limit", "x"]).status == 1)
    }

    /// Docker unreachable: exit 1 with docker.unreachable before anything is done.
    @Test func dockerUnreachableIsExitOneBeforeAnyChange() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.1.0")
        let env = ["DOCKER_HOST": "unix://\(c.dir)/no-such-docker.sock"]
        for args in [["package", "load", pkg, "--yes"], ["package", "load", pkg, "--dry-run"], ["package", "load", pkg, "--yes", "--stage"]] {
            let r = try c.run(args, sim: false, env: env)
            #expect(r.status == 1, "\(args): \(r.stdout) \(r.stderr)")
            #expect(r.stderr.contains("error: [docker.unreachable]"), "\(args): \(r.stderr)")
        }
        let j = try c.run(["package", "load", pkg, "--yes", "--json"], sim: false, env: env)
        #expect(j.status == 1 && (j.json?["error"] as? [String: Any])?["code"] as? String == "docker.unreachable")
        let build = try c.run(["package", "build", "--service", "frontend", "--version", "1.0.0", "--image", "example/frontend:1"], sim: false, env: env)
        #expect(build.status == 1 && build.stderr.contains("error: [docker.unreachable]"), "\(build.stderr)")
        #expect(!FileManager.default.fileExists(atPath: c.dir + "/frontend-1.0.0.edgepkg.image.tar.partial"))
        // Nothing was staged, validated or attempted.
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: c.dir + "/.caisson-state/staging")) ?? []).isEmpty)
        #expect(try c.run(["history", "list"], sim: false, env: env).stdout.contains("No update history matched"))
    }
}
