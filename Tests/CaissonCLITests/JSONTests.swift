import CaissonCore
import Foundation
import Testing

/// Every command with --json prints exactly one JSON document on stdout, success or error.
@Suite struct JSONTests {
    @Test func everyCommandPrintsOneJSONDocument() throws {
        let c = try Caisson()
        let good = try c.package("good.edgepkg", version: "1.1.0")
        let bad = try c.package("bad.edgepkg", version: "1.2.0", behaviour: "unhealthy", createdAt: "2026-04-01T00:00:00Z")
        var img = SyntheticImage(reference: "example/frontend:3.0.0")
        img.files = [("V", Array("3".utf8))]
        try Data(try img.archive().0).write(to: URL(fileURLWithPath: c.dir + "/img.tar"))
        let cases: [([String], String?, Int32)] = [
            (["service", "list"], nil, 0),
            (["service", "show", "frontend"], nil, 0),
            (["service", "show", "nope"], nil, 1),
            (["package", "validate", good], nil, 0),
            (["package", "validate", "missing.edgepkg"], nil, 2),
            (["package", "load", good, "--dry-run"], nil, 0),
            (["package", "load", good], "y\n", 1),  // --json never prompts: --yes or a usage error
            (["package", "load", good, "--yes"], nil, 0),
            (["package", "load", bad, "--yes"], nil, 4),
            (["package", "build", "--service", "frontend", "--from-tar", "img.tar", "--version", "3.0.0"], nil, 0),
            (["package", "cleanup"], nil, 0),
            (["history", "list"], nil, 0),
            (["history", "show", "00000000-nope"], nil, 1),
            (["history", "verify"], nil, 0),
            (["rollback", "frontend"], "y\n", 1),
            (["rollback", "frontend", "--yes"], nil, 0),
            (["rollback", "backend", "--yes"], nil, 1),
            (["recover"], nil, 0),
            (["migrate"], nil, 0),
            (["key", "generate", "k", "--unencrypted"], nil, 0),
            (["sim", "swarm", "--runs", "5"], nil, 0),
            (["bogus"], nil, 1),
            (["--services", "nope.toml", "service", "list"], nil, 1),
        ]
        for (args, stdin, status) in cases {
            let r = try c.run(args + ["--json"], stdin: stdin)
            #expect(r.status == status, "\(args): \(r.stdout) \(r.stderr)")
            let doc = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
            #expect(doc is [String: Any], "\(args) printed: \(r.stdout)")
            // The same top level in every command's document.
            #expect(r.json?["exit_code"] as? Int == Int(status), "\(args): \(r.stdout)")
            #expect(r.json?["status"] is String, "\(args): \(r.stdout)")
            #expect(r.json?["issues"] is [Any], "\(args): \(r.stdout)")
            if status == 1 {
                #expect((r.json?["error"] as? [String: Any])?["code"] is String, "\(args): \(r.stdout)")
                #expect(r.json?["status"] as? String == "error" || r.json?["status"] as? String == "incomplete", "\(args): \(r.stdout)")
                #expect(!((r.json?["issues"] as? [Any])?.isEmpty ?? true), "\(args): \(r.stdout)")
            }
            // snake_case everywhere: no key anywhere in the document has an uppercase letter.
            #expect(Self.camelKeys(r.json ?? [:]).isEmpty, "\(args): \(Self.camelKeys(r.json ?? [:]))")
            // It never waited on the prompt: nothing asked on stderr.
            #expect(!r.stderr.contains("[y/N]"), "\(args): \(r.stderr)")
        }
    }

    static func camelKeys(_ value: Any) -> [String] {
        if let d = value as? [String: Any] {
            return d.flatMap { k, v in (k.contains { $0.isUppercase } ? [k] : []) + camelKeys(v) }
        }
        if let a = value as? [Any] { return a.flatMap(camelKeys) }
        return []
    }

    @Test func jsonNeverPrompts() throws {
        let c = try Caisson()
        let good = try c.package("good.edgepkg", version: "1.1.0")
        let r = try c.run(["package", "load", good, "--json"], stdin: "y\n")
        #expect(r.status == 1)
        #expect((r.json?["error"] as? [String: Any])?["code"] as? String == "usage.json_needs_yes")
        #expect(try c.run(["history", "list", "--json"]).json?["attempts"] as? [Any] == nil
                || (try c.run(["history", "list", "--json"]).json?["attempts"] as? [Any])?.isEmpty == true)
        let dry = try c.run(["package", "load", good, "--json", "--dry-run"])
        #expect(dry.status == 0 && dry.json?["status"] as? String == "planned", "\(dry.stdout)")
        #expect((dry.json?["plan"] as? [String: Any])?["new_version"] as? String == "1.1.0")
    }

    /// `service --json`: structured objects, not prose; the manifest in snake_case.
    @Test func structuredServiceAndManifest() throws {
        let c = try Caisson()
        let show = try c.run(["service", "show", "frontend", "--json"])
        let target = try #require(show.json?["target"] as? [String: Any], "\(show.stdout)")
        #expect(target["kind"] as? String == "container")
        #expect(target["container_name"] as? String == "frontend")
        #expect(target["image_reference"] as? String == "example/frontend:current")
        let health = try #require(show.json?["health_check"] as? [String: Any])
        #expect(health["kind"] as? String == "container_health")
        #expect(health["timeout_secs"] as? Int == 20)
        let backend = try c.run(["service", "show", "backend", "--json"]).json?["target"] as? [String: Any]
        #expect(backend?["kind"] as? String == "compose" && backend?["project"] as? String == "stack" && backend?["service"] as? String == "backend")
        let good = try c.package("good.edgepkg", version: "1.1.0")
        let v = try c.run(["package", "validate", good, "--json"])
        let m = try #require(v.json?["manifest"] as? [String: Any], "\(v.stdout)")
        #expect(m["package_version"] as? String == "1.1.0")
        #expect(m["format_version"] as? Int == 1)
        #expect((m["target"] as? [String: Any])?["service_revision"] as? String == "frontend-v1")
        #expect((v.json?["signature"] as? [String: Any])?["status"] as? String == "unsigned")
        #expect(v.json?["status"] as? String == "accepted" && v.json?["exit_code"] as? Int == 0)
    }

    @Test func demoWithJSON() throws {
        let r = try Caisson().run(["demo", "--json"], sim: false)
        #expect(r.status == 0)
        #expect(r.json?["ok"] as? Bool == true, "\(r.stdout)")
        #expect(r.stderr.contains("Caisson demo"))
    }
}
