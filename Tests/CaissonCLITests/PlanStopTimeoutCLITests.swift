import CaissonCore
import Foundation
import Testing

/// Issue 10 item 3 through the binary, on the simulator: the plan (text and `--json`) shows the
/// current container's stop timeout, its own when set, Docker's default when not.
@Suite struct PlanStopTimeoutCLITests {
    /// Rewrites every container's and Compose service's stop timeout in the simulated host's
    /// state file (JSON); nil removes it (the container has none: Docker's default applies).
    static func setStopTimeout(_ c: Caisson, _ secs: Int?) throws {
        let path = c.dir + "/.caisson-state/sim-host.json"
        var text = try String(contentsOfFile: path, encoding: .utf8)
        let re = try NSRegularExpression(pattern: secs == nil ? "\"stopTimeoutSecs\"\\s*:\\s*[0-9]+\\s*,?" : "\"stopTimeoutSecs\"\\s*:\\s*[0-9]+")
        let before = text
        text = re.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text),
                                           withTemplate: secs.map { "\"stopTimeoutSecs\":\($0)" } ?? "")
        #expect(text != before, "no stop timeout in the simulated host's state")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test func thePlanShowsTheContainersStopTimeout() throws {
        let c = try Caisson()
        let pkg = try c.package("a.edgepkg", version: "1.1.0")
        #expect(try c.run(["package", "load", pkg, "--dry-run"]).status == 0)  // provisions the simulated host

        try Self.setStopTimeout(c, 30)
        let own = try c.run(["package", "load", pkg, "--dry-run"])
        #expect(own.status == 0, "\(own.stdout) \(own.stderr)")
        #expect(own.stdout.contains("Stop timeout: 30s between SIGTERM and SIGKILL for the current container\n"), "\(own.stdout)")
        #expect(own.stdout.contains("(up to 30s after SIGTERM: its own stop timeout)"), "\(own.stdout)")
        let json = try c.run(["package", "load", pkg, "--dry-run", "--json"])
        #expect((json.json?["plan"] as? [String: Any])?["stop_grace_secs"] as? Int == 30, "\(json.stdout)")

        try Self.setStopTimeout(c, nil)
        let unset = try c.run(["package", "load", pkg, "--dry-run"])
        #expect(unset.status == 0, "\(unset.stdout) \(unset.stderr)")
        #expect(unset.stdout.contains("Stop timeout: 10s between SIGTERM and SIGKILL for the current container\n"), "\(unset.stdout)")
        #expect(unset.stdout.contains("(up to 10s after SIGTERM: Docker's default stop timeout)"), "\(unset.stdout)")
    }

    @Test func theComposePlanShowsTheServicesStopTimeout() throws {
        let c = try Caisson()
        let pkg = try c.package("b.edgepkg", version: "2.0.0", service: "backend")
        #expect(try c.run(["package", "load", pkg, "--dry-run"]).status == 0)
        try Self.setStopTimeout(c, 45)
        let r = try c.run(["package", "load", pkg, "--dry-run"])
        #expect(r.stdout.contains("Stop timeout: 45s between SIGTERM and SIGKILL"), "\(r.stdout)")
        #expect(r.stdout.contains("(Compose stops the old container with up to 45s after SIGTERM: its stop timeout)"), "\(r.stdout)")
    }
}
