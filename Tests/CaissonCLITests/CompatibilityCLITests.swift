import CaissonCore
import Foundation
import Testing

/// Issue 11, through the real `caisson` binary: the Rust tool's issue codes on its packages
/// (FORMATS §4), TOML 1.1 manifests and catalogs, the catalog's strictness, and gzip-compressed
/// images (built, validated and loaded on the simulator; the real daemon's load is in
/// CaissonDockerTests and the hostile gzip streams in the hostile corpus).
@Suite struct CompatibilityCLITests {
    /// A package for `frontend` 2.0.0 from parts (`entries` in order), without the end marker
    /// unless `end` says how many zero bytes follow.
    static func rawPackage(_ entries: [(String, [UInt8])], end: [UInt8]? = [UInt8](repeating: 0, count: 1024)) -> [UInt8] {
        var bytes: [UInt8] = []
        for (name, data) in entries {
            bytes += TarArchiveWriter.header(name: name, size: Int64(data.count))
            bytes += data
            bytes += TarArchiveWriter.padding(Int64(data.count))
        }
        return bytes + (end ?? [])
    }

    static func honest(version: String = "2.0.0", manifestEdit: (String) -> String = { $0 }) throws -> (manifest: [UInt8], image: [UInt8]) {
        var img = SyntheticImage(reference: "example/frontend:\(version)")
        img.labels = ["io.caisson.sim.health": "healthy"]
        img.healthcheck = ["CMD", "/bin/true"]
        img.files = [("VERSION", Array(version.utf8))]
        let (bytes, _) = try img.archive()
        let m = EdgePackageWriter.manifest(service: "frontend", revision: "frontend-v1", platform: "linux/amd64",
                                           version: version, createdAt: "2026-03-16T18:30:00Z",
                                           reference: "example/frontend:\(version)",
                                           sha256: SHA256.hash(bytes).hex, size: bytes.count)
        return (Array(manifestEdit(m).utf8), bytes)
    }

    func validate(_ c: Caisson, _ bytes: [UInt8], name: String = "p.edgepkg") throws -> (status: Int32, codes: [String], out: String) {
        try Data(bytes).write(to: URL(fileURLWithPath: c.dir + "/" + name))
        let r = try c.run(["package", "validate", name, "--json"])
        let issues = ((r.json?["validation"] as? [String: Any])?["issues"] as? [[String: Any]]) ?? []
        return (r.status, issues.compactMap { $0["code"] as? String }, r.stdout + r.stderr)
    }

    // MARK: - FORMATS §4 codes

    @Test("entry names as the Rust tool splits them", arguments: [
        ("./manifest.toml", "archive.nested_entry"), ("/image.tar", "archive.nested_entry"), ("../x", "archive.nested_entry"),
        ("a/b", "archive.nested_entry"), (".", "archive.invalid_entry_path"), ("..", "archive.invalid_entry_path"),
    ])
    func entryNames(_ name: String, _ code: String) throws {
        let c = try Caisson()
        let (m, img) = try Self.honest()
        let r = try validate(c, Self.rawPackage([("manifest.toml", m), ("image.tar", img), (name, Array("x".utf8))]))
        #expect(r.status == 2)
        #expect(r.codes == [code], "\(r.out)")
    }

    @Test func notATarAndBadChecksumsAndEmptyFiles() throws {
        let c = try Caisson()
        let text = Array(String(repeating: "not a tar archive\n", count: 100).utf8)
        #expect(try validate(c, text).codes == ["archive.entry_read_failed"])
        var bad = Self.rawPackage([("manifest.toml", try Self.honest().manifest)])
        bad[148] = bad[148] == UInt8(ascii: "1") ? UInt8(ascii: "2") : UInt8(ascii: "1")  // the checksum field
        #expect(try validate(c, bad).codes == ["archive.entry_read_failed"])
        let empty = try validate(c, [])
        #expect(empty.status == 2)
        #expect(empty.codes.first == "archive.missing_manifest")
        let (m, _) = try Self.honest()
        #expect(try validate(c, Self.rawPackage([("manifest.toml", m), ("image.tar", Array("plain text, not a tar".utf8))])).codes
                .contains("image.invalid_archive"))
    }

    @Test("format_version that is not a non-negative integer", arguments: ["\"abc\"", "-1", "\"-1\"", "1.5", "\"\""])
    func formatVersion(_ value: String) throws {
        let c = try Caisson()
        let (m, img) = try Self.honest { $0.replacingOccurrences(of: "format_version = 1", with: "format_version = \(value)") }
        let r = try validate(c, Self.rawPackage([("manifest.toml", m), ("image.tar", img)]))
        #expect(r.status == 2)
        #expect(r.codes == ["manifest.parse_failed"], "\(r.out)")
    }

    @Test func formatVersionStringsAsTheRustToolReadsThem() throws {
        let c = try Caisson()
        let (one, img) = try Self.honest { $0.replacingOccurrences(of: "format_version = 1", with: "format_version = \"1\"") }
        #expect(try validate(c, Self.rawPackage([("manifest.toml", one), ("image.tar", img)])).status == 0)
        let (two, img2) = try Self.honest { $0.replacingOccurrences(of: "format_version = 1", with: "format_version = \"2\"") }
        #expect(try validate(c, Self.rawPackage([("manifest.toml", two), ("image.tar", img2)])).codes == ["manifest.unsupported_format_version"])
    }

    @Test("packages without the end-of-archive blocks load as with the Rust tool", arguments: [
        ("no end marker", [UInt8]()), ("one zero block", [UInt8](repeating: 0, count: 512)),
        ("one zero block then padding", [UInt8](repeating: 0, count: 512) + Array("\n# padding\n".utf8)),
    ])
    func endMarkerVariants(_ what: String, _ tail: [UInt8]) throws {
        let c = try Caisson()
        let (m, img) = try Self.honest()
        try Data(Self.rawPackage([("manifest.toml", m), ("image.tar", img)], end: tail)).write(to: URL(fileURLWithPath: c.dir + "/p.edgepkg"))
        let v = try c.run(["package", "validate", "p.edgepkg"])
        #expect(v.status == 0, "\(what): \(v.stdout) \(v.stderr)")
        let l = try c.run(["package", "load", "p.edgepkg", "--yes"])
        #expect(l.status == 0, "\(what): \(l.stdout) \(l.stderr)")
        let show = try c.run(["service", "show", "frontend", "--json"])
        #expect((show.json?["state"] as? [String: Any])?["active_image_reference"] as? String == "example/frontend:2.0.0")
    }

    // MARK: - TOML 1.1

    @Test func toml11ManifestsAndCatalogsWork() throws {
        let c = try Caisson()
        try """
        # TOML 1.1: inline tables over several lines, trailing commas, \\e, a time without seconds.
        catalog_version = 1
        services = [
          {
            name = "frontend", service_revision = "frontend-v1", platform = "linux/amd64",
            runtime_mode = "docker",
            docker = { container_name = "frontend", image_reference = "example/frontend:current", },
            health_check = { kind = "container_health", timeout_secs = 20, },
          },
        ]
        """.write(toFile: c.dir + "/services.toml", atomically: true, encoding: .utf8)
        let list = try c.run(["service", "list"])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("frontend"))
        let (m, img) = try Self.honest {
            $0.replacingOccurrences(of: "created_at = \"2026-03-16T18:30:00Z\"", with: "created_at = 2026-03-16T18:30Z\nnote = \"\\e[1m\\x41\\e[0m\"")
              .replacingOccurrences(of: "[target]\nservice = \"frontend\"\nservice_revision = \"frontend-v1\"\nplatform = \"linux/amd64\"\n",
                                    with: "target = {\n  service = \"frontend\",\n  service_revision = \"frontend-v1\",\n  platform = \"linux/amd64\",\n}\n")
        }
        #expect(String(decoding: m, as: UTF8.self).contains("target = {\n"))
        let r = try validate(c, Self.rawPackage([("manifest.toml", m), ("image.tar", img)]))
        #expect(r.status == 0, "\(r.out)")
    }

    // MARK: - Catalog strictness

    @Test("catalog errors exit 1 naming the service and field", arguments: [
        ("[services.health_check]\nkind", "[services.healthcheck]\nkind", "catalog.unknown_key", "service \"frontend\": unknown key `healthcheck` (did you mean `health_check`?)"),
        ("catalog_version = 1", "catalog_version = 1\n[trust]\nrequire_signatur = true", "catalog.unknown_key", "unknown key `trust.require_signatur` (did you mean `require_signature`?)"),
        ("catalog_version = 1", "catalog_version = \"1\"", "catalog.invalid", "`catalog_version` must be an integer"),
        ("image_reference = \"example/frontend:current\"", "image_reference = \"example/frontend:current\"\n[services.compose]\nproject = \"p\"\nfile = \"f.yaml\"\nservice = \"s\"",
         "catalog.invalid", "service \"frontend\": field `compose`: the service has both [services.docker] and [services.compose]"),
    ])
    func catalogErrors(_ find: String, _ replace: String, _ code: String, _ needle: String) throws {
        let c = try Caisson()
        let text = Caisson.catalog.replacingOccurrences(of: find, with: replace)
        #expect(text != Caisson.catalog)
        try text.write(toFile: c.dir + "/services.toml", atomically: true, encoding: .utf8)
        let r = try c.run(["service", "list"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("error: [\(code)]"), "\(r.stderr)")
        #expect(r.stderr.contains(needle), "\(r.stderr)")
    }

    @Test func aCatalogWithoutServices() throws {
        let c = try Caisson()
        try "catalog_version = 1\n".write(toFile: c.dir + "/services.toml", atomically: true, encoding: .utf8)
        let r = try c.run(["service", "list"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("missing required `services`"), "\(r.stderr)")
    }

    @Test func manifestsKeepIgnoringUnknownKeys() throws {
        let c = try Caisson()
        let (m, img) = try Self.honest { $0 + "\n[future]\nsomething_new = true\n" }
        #expect(try validate(c, Self.rawPackage([("manifest.toml", m), ("image.tar", img)])).status == 0)
    }

    // MARK: - gzip

    @Test func aGzipPackageIsBuiltValidatedAndLoadedOnTheSimulator() throws {
        let c = try Caisson()
        let (_, img) = try Self.honest()
        try Data(img).write(to: URL(fileURLWithPath: c.dir + "/image.tar"))
        let b = try c.run(["package", "build", "--service", "frontend", "--version", "2.0.0", "--from-tar", "image.tar",
                           "--compress", "gzip", "--output", "gz.edgepkg", "--created-at", "2026-03-16T18:30:00Z"])
        #expect(b.status == 0, "\(b.stdout) \(b.stderr)")
        // image.tar in the package is gzip (told by its content: the name stays image.tar).
        let pkg = try #require(FileManager.default.contents(atPath: c.dir + "/gz.edgepkg")).map { $0 }
        let scan = PackageScanner().scan(MemoryByteSource(pkg))
        #expect(scan.issues == [])
        let t = try #require(scan.imageTar)
        #expect(pkg[Int(t.dataOffset)] == 0x1F && pkg[Int(t.dataOffset) + 1] == 0x8B)
        #expect(t.compression == .gzip)
        #expect(t.unpackedSize == Int64(img.count))
        // A bad --compress value is a usage error.
        let bad = try c.run(["package", "build", "--service", "frontend", "--version", "2.0.0", "--from-tar", "image.tar", "--compress", "zip"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("--compress takes gzip or none"))

        let v = try c.run(["package", "validate", "gz.edgepkg"])
        #expect(v.status == 0, "\(v.stdout) \(v.stderr)")
        let l = try c.run(["package", "load", "gz.edgepkg", "--yes"])
        #expect(l.status == 0, "\(l.stdout) \(l.stderr)")
        let show = try c.run(["service", "show", "frontend", "--json"])
        #expect((show.json?["state"] as? [String: Any])?["active_image_reference"] as? String == "example/frontend:2.0.0")
    }

    @Test func aGzipImageMadeByGzipItselfIsAccepted() throws {
        let c = try Caisson()
        let (_, img) = try Self.honest()
        let gz = try HostileCorpus.gzip(img)
        #expect(gz.count > 2 && gz[0] == 0x1F)
        let m = EdgePackageWriter.manifest(service: "frontend", revision: "frontend-v1", platform: "linux/amd64", version: "2.0.0",
                                           createdAt: "2026-03-16T18:30:00Z", reference: "example/frontend:2.0.0",
                                           sha256: SHA256.hash(gz).hex, size: gz.count)
        let r = try validate(c, Self.rawPackage([("manifest.toml", Array(m.utf8)), ("image.tar", gz)]))
        #expect(r.status == 0, "\(r.out)")
        let l = try c.run(["package", "load", "p.edgepkg", "--yes"])
        #expect(l.status == 0, "\(l.stdout) \(l.stderr)")
    }

    @Test func theUnpackedSizeIsWhatTheDiskMustHold() throws {
        // The simulated daemon has room for the compressed archive but not for what it unpacks to.
        let c = try Caisson()
        var img = SyntheticImage(reference: "example/frontend:2.0.0")
        img.labels = ["io.caisson.sim.health": "healthy"]
        img.healthcheck = ["CMD", "/bin/true"]
        img.files = [("zeros", [UInt8](repeating: 0, count: 4 << 20))]
        let (bytes, _) = try img.archive()
        let gz = try Gzip.compress(bytes)
        #expect(gz.count < bytes.count / 50)
        let m = EdgePackageWriter.manifest(service: "frontend", revision: "frontend-v1", platform: "linux/amd64", version: "2.0.0",
                                           createdAt: "2026-03-16T18:30:00Z", reference: "example/frontend:2.0.0",
                                           sha256: SHA256.hash(gz).hex, size: gz.count)
        try Data(Self.rawPackage([("manifest.toml", Array(m.utf8)), ("image.tar", gz)])).write(to: URL(fileURLWithPath: c.dir + "/p.edgepkg"))
        let plan = try c.run(["package", "load", "p.edgepkg", "--dry-run"])  // provisions the simulated host
        #expect(plan.status == 0, "\(plan.stdout) \(plan.stderr)")
        let path = c.dir + "/.caisson-state/sim-host.json"
        var text = try String(contentsOfFile: path, encoding: .utf8)
        let re = try NSRegularExpression(pattern: "\"freeDiskBytes\"\\s*:\\s*[0-9]+")
        text = re.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text),
                                           withTemplate: "\"freeDiskBytes\":\(gz.count * 10)")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let l = try c.run(["package", "load", "p.edgepkg", "--yes"])
        #expect(l.status == 1)
        #expect(l.stderr.contains("docker.insufficient_space"), "\(l.stdout) \(l.stderr)")
    }
}
