import CaissonCore
import Foundation
import Testing

/// Issue 12 through the real binary on `--host sim`: a failed load prints the failed container's
/// last log lines and state with the command to see all; `history show` has it all, text and JSON.
@Suite struct EvidenceCLITests {
    @Test func aCrashedUpdateShowsItsEvidenceAfterTheLoadAndInHistory() throws {
        let c = try Caisson()
        let lines = (1...15).map { "boot step \($0)" }.joined(separator: " / ")
        let pkg = try c.package("crash.edgepkg", version: "1.1.0", behaviour: "crash:3",
                                labels: ["io.caisson.sim.exit_code": "3", "io.caisson.sim.log": lines,
                                         "io.caisson.sim.exit_log": "app: crashing after 3s (exit 3)"])
        let r = try c.run(["package", "load", pkg, "--yes"])
        #expect(r.status == 4, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("Failure evidence:"))
        // The simulated service restarts unless stopped: the new container was caught between two crashes.
        #expect(r.stdout.contains("- frontend (new release): restarting, exit code 3, 1 restart"))
        #expect(r.stdout.contains("Exit code: 3, OOM killed: no"))
        #expect(r.stdout.contains("err | app: crashing after 3s (exit 3)"))
        let id = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("Update id: ") }.map { String($0.dropFirst(11)) })
        #expect(r.stdout.contains("All of it: caisson history show \(id)"))

        let text = try c.run(["history", "show", id])
        #expect(text.status == 0)
        #expect(text.stdout.contains("Failure evidence:") && text.stdout.contains("app: crashing after 3s (exit 3)"))
        #expect(text.stdout.contains("out | " + lines))

        let json = try c.run(["history", "show", id, "--json"])
        let evidence = try #require(json.json?["evidence"] as? [[String: Any]])
        #expect(evidence.count == 1)
        let e = try #require(evidence.first)
        #expect(e["role"] as? String == "new" && e["container_name"] as? String == "frontend")
        let state = try #require(e["state"] as? [String: Any])
        #expect(state["exit_code"] as? Int == 3 && state["oom_killed"] as? Bool == false)
        let tail = try #require(e["log_tail"] as? [[String: Any]])
        #expect(tail.last?["stream"] as? String == "stderr" && tail.last?["text"] as? String == "app: crashing after 3s (exit 3)")
        #expect(json.json?["audit_events"] as? [[String: Any]] != nil)

        // The load's own JSON carries it too.
        let pkg2 = try c.package("oom.edgepkg", version: "1.2.0", behaviour: "oom:2", createdAt: "2026-04-01T00:00:00Z")
        let j = try c.run(["package", "load", pkg2, "--yes", "--json"])
        #expect(j.status == 4)
        let ev = try #require(j.json?["evidence"] as? [[String: Any]])
        #expect((ev.first?["state"] as? [String: Any])?["oom_killed"] as? Bool == true)
        #expect((ev.first?["state"] as? [String: Any])?["exit_code"] as? Int == 137)
    }

    @Test func aSuccessfulUpdateHasNoEvidence() throws {
        let c = try Caisson()
        let r = try c.run(["package", "load", try c.package("ok.edgepkg", version: "1.1.0"), "--yes", "--json"])
        #expect(r.status == 0)
        #expect((r.json?["evidence"] as? [Any])?.isEmpty == true)
    }
}
