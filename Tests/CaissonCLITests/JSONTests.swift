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
            (["package", "load", good], "n\n", 3),
            (["package", "load", good], "y\n", 0),
            (["package", "load", bad, "--yes"], nil, 4),
            (["package", "build", "--service", "frontend", "--from-tar", "img.tar", "--version", "3.0.0"], nil, 0),
            (["package", "cleanup"], nil, 0),
            (["history", "list"], nil, 0),
            (["history", "show", "00000000-nope"], nil, 1),
            (["history", "verify"], nil, 0),
            (["rollback", "frontend"], "n\n", 3),
            (["rollback", "frontend", "--yes"], nil, 0),
            (["rollback", "backend", "--yes"], nil, 1),
            (["recover"], nil, 0),
            (["sim", "swarm", "--runs", "5"], nil, 0),
            (["bogus"], nil, 1),
            (["--services", "nope.toml", "service", "list"], nil, 1),
        ]
        for (args, stdin, status) in cases {
            let r = try c.run(args + ["--json"], stdin: stdin)
            #expect(r.status == status, "\(args): \(r.stdout) \(r.stderr)")
            let doc = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
            #expect(doc is [String: Any], "\(args) printed: \(r.stdout)")
            if status == 1 {
                #expect((r.json?["error"] as? [String: Any])?["code"] is String, "\(args): \(r.stdout)")
            }
        }
    }

    @Test func demoWithJSON() throws {
        let r = try Caisson().run(["demo", "--json"], sim: false)
        #expect(r.status == 0)
        #expect(r.json?["ok"] as? Bool == true, "\(r.stdout)")
        #expect(r.stderr.contains("Caisson demo"))
    }
}
