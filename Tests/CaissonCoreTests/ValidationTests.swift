import CaissonCore
import Foundation
import Testing

/// Manifest, catalog and whole-package validation (FORMATS.md §2–4 and issue 2's image checks).
@Suite struct ValidationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func fixture(_ rel: String) throws -> [UInt8] {
        Array(try Data(contentsOf: root.appendingPathComponent("fixtures/" + rel)))
    }

    static let catalogPath = root.appendingPathComponent("fixtures/catalogs/rust-example.toml").path
    static func catalog() throws -> Catalog { try Catalog.parse(try fixture("catalogs/rust-example.toml"), path: catalogPath) }

    // MARK: The Rust tool's files load unchanged

    @Test("the Rust tool's manifests are accepted", arguments: ["example.toml", "string-format-version.toml", "toml-datetime.toml",
                                                                 "compatibility.toml", "minimal.toml", "unknown-keys.toml",
                                                                 "toml-1.1.toml"])
    func rustManifests(_ name: String) throws {
        let (m, issues) = Manifest.parse(try Self.fixture("manifests/" + name))
        #expect(issues == [])
        let manifest = try #require(m)
        #expect(manifest.formatVersion == 1)
        #expect(manifest.check(against: try Self.catalog(), updaterVersion: "0.2.0") == [])
    }

    @Test func rustCatalogLoadsAndResolvesComposeFileAgainstItsFolder() throws {
        let c = try Self.catalog()
        #expect(c.services.map(\.name) == ["frontend", "backend"])
        let f = try #require(c.service(named: "frontend"))
        #expect(f.docker == DockerTarget(containerName: "frontend", imageReference: "example/frontend:current"))
        #expect(f.health == HealthPolicy(kind: .running, timeoutSecs: 30, pollIntervalSecs: 1, stableSecs: 5))
        #expect(f.automaticRollback)
        let b = try #require(c.service(named: "backend"))
        #expect(b.compose?.file == Self.root.appendingPathComponent("fixtures/compose/backend.yaml").path)
        #expect(b.compose?.project == "caisson-stack")
    }

    @Test func catalogsAreReadAsTOML11() throws {
        let path = Self.root.appendingPathComponent("fixtures/catalogs/toml-1.1.toml").path
        let c = try Catalog.parse(try Self.fixture("catalogs/toml-1.1.toml"), path: path)
        let reference = try Self.catalog()
        #expect(c.services == reference.services)
        #expect(c.service(named: "backend")?.compose?.file == Self.root.appendingPathComponent("fixtures/compose/backend.yaml").path)
    }

    @Test func manifestsAreReadAsTOML11() throws {
        let (m, issues) = Manifest.parse(try Self.fixture("manifests/toml-1.1.toml"))
        #expect(issues == [])
        #expect(m?.createdAt == "2026-03-16T18:30:00Z")
        #expect(m?.target.serviceRevision == "frontend-v1")
        #expect(m?.minUpdaterVersion == "0.1.0")
    }

    @Test func updaterTooOld() throws {
        let (m, _) = Manifest.parse(try Self.fixture("manifests/updater-too-old.toml"))
        let issues = try #require(m).check(against: try Self.catalog(), updaterVersion: "0.2.0")
        #expect(issues.map(\.code) == ["package.updater_too_old"])
    }

    // MARK: Manifest codes

    static let base = """
    format_version = 1
    package_type = "service"
    package_version = "1.2.3"
    created_at = "2026-03-16T18:30:00Z"
    [target]
    service = "frontend"
    service_revision = "frontend-v1"
    platform = "linux/amd64"
    [image]
    reference = "example/frontend:1.2.3"

    """

    @Test("manifest issue codes", arguments: [
        ("format_version = 1", "format_version = 2", "manifest.unsupported_format_version"),
        ("created_at = \"2026-03-16T18:30:00Z\"", "created_at = \"yesterday\"", "manifest.invalid_created_at"),
        ("created_at = \"2026-03-16T18:30:00Z\"", "created_at = 2026-03-16T18:30:00", "manifest.invalid_created_at"),
        ("package_version = \"1.2.3\"", "package_version = \"1.2\"", "manifest.invalid_package_version"),
        ("package_version = \"1.2.3\"", "package_version = \"\"", "manifest.empty_field"),
        ("service = \"frontend\"", "service = \"  \"", "manifest.empty_field"),
        ("package_type = \"service\"", "package_type = \"firmware\"", "manifest.parse_failed"),
        ("[image]\nreference", "[image]\nsha256 = \"abc\"\nreference", "manifest.invalid_image_sha256"),
        ("[image]\nreference", "[image]\nsize = -5\nreference", "manifest.invalid_image_size"),
        ("reference = \"example/frontend:1.2.3\"", "reference = \"Bad Ref!\"", "manifest.invalid_image_reference"),
        ("package_version = \"1.2.3\"", "package_version = 123", "manifest.parse_failed"),
        ("[target]\n", "[target]\n[[oops]]\n", "manifest.parse_failed"),
        // format_version as the Rust tool reads it (a u64, or a string holding one).
        ("format_version = 1", "format_version = \"abc\"", "manifest.parse_failed"),
        ("format_version = 1", "format_version = -1", "manifest.parse_failed"),
        ("format_version = 1", "format_version = \"-1\"", "manifest.parse_failed"),
        ("format_version = 1", "format_version = \"\"", "manifest.parse_failed"),
        ("format_version = 1", "format_version = 1.0", "manifest.parse_failed"),
        ("format_version = 1", "format_version = \"2\"", "manifest.unsupported_format_version"),
        ("format_version = 1", "format_version = 0", "manifest.unsupported_format_version"),
    ])
    func manifestCodes(_ find: String, _ replace: String, _ code: String) {
        let text = Self.base.replacingOccurrences(of: find, with: replace)
        #expect(text != Self.base)
        let (_, issues) = Manifest.parse(Array(text.utf8))
        #expect(issues.map(\.code).contains(code), "\(issues)")
    }

    @Test func manifestParseErrorsHaveLineAndColumn() {
        let (_, issues) = Manifest.parse(Array("format_version = 1\npackage_type = = \"x\"\n".utf8))
        #expect(issues.first?.code == "manifest.parse_failed")
        #expect(issues.first?.message.contains("line 2") == true)
    }

    @Test func invalidUTF8() {
        let (_, issues) = Manifest.parse([0x61, 0x20, 0x3D, 0x20, 0x22, 0xFF, 0x22])
        #expect(issues.map(\.code) == ["manifest.invalid_utf8"])
    }

    @Test("catalog checks", arguments: [
        ("service = \"frontend\"", "service = \"nobody\"", "package.unknown_service"),
        ("service_revision = \"frontend-v1\"", "service_revision = \"frontend-v0\"", "package.service_revision_mismatch"),
        ("platform = \"linux/amd64\"", "platform = \"linux/arm64\"", "package.platform_mismatch"),
    ])
    func catalogChecks(_ find: String, _ replace: String, _ code: String) throws {
        let (m, issues) = Manifest.parse(Array(Self.base.replacingOccurrences(of: find, with: replace).utf8))
        #expect(issues == [])
        #expect(try #require(m).check(against: try Self.catalog(), updaterVersion: "0.2.0").map(\.code) == [code])
    }

    // MARK: Catalog errors name the service and the field

    @Test("catalog errors", arguments: [
        ("runtime_mode = \"docker\"             # \"docker\" | \"compose\"", "runtime_mode = \"podman\"", "service \"frontend\": field `runtime_mode`"),
        ("container_name = \"frontend\"", "container_name = \"\"", "service \"frontend\": field `docker.container_name`"),
        ("timeout_secs = 30                   # default 30, > 0", "timeout_secs = 0", "service \"frontend\": field `health_check.timeout_secs`"),
        ("kind = \"running\"                    # \"running\" (default) | \"container_health\"", "kind = \"ping\"", "service \"frontend\": field `health_check.kind`"),
        ("automatic = true                    # default true", "automatic = \"yes\"", "service \"frontend\": field `rollback.automatic`"),
        ("name = \"backend\"", "name = \"frontend\"", "field `name`"),
        ("catalog_version = 1", "catalog_version = 2", "catalog_version 2 is not supported"),
        ("[services.compose]\nproject", "[services.composer]\nproject", "service \"backend\": unknown key `composer` (did you mean `compose`?)"),
        // As the Rust tool: a non-integer catalog_version, both runtime tables.
        ("catalog_version = 1", "catalog_version = \"1\"", "`catalog_version` must be an integer, found a string"),
        ("catalog_version = 1", "catalog_version = 1.0", "`catalog_version` must be an integer, found a float"),
        ("image_reference = \"example/frontend:current\"",
         "image_reference = \"example/frontend:current\"\n[services.compose]\nproject = \"p\"\nfile = \"f.yaml\"\nservice = \"s\"",
         "service \"frontend\": field `compose`: the service has both [services.docker] and [services.compose]"),
        ("service = \"backend\"\n[services.health_check]\nkind = \"container_health\"",
         "service = \"backend\"\n[services.docker]\ncontainer_name = \"b\"\nimage_reference = \"b:1\"\n[services.health_check]\nkind = \"container_health\"",
         "service \"backend\": field `docker`: the service has both"),
        // Unknown keys anywhere, named, with a suggestion.
        ("[services.health_check]             # optional", "[services.healthcheck]",
         "service \"frontend\": unknown key `healthcheck` (did you mean `health_check`?)"),
        ("timeout_secs = 30                   # default 30, > 0", "timeout = 30",
         "service \"frontend\": unknown key `health_check.timeout` (did you mean `timeout_secs`?)"),
        ("catalog_version = 1", "catalog_version = 1\n[trust]\nrequire_signatur = true",
         "unknown key `trust.require_signatur` (did you mean `require_signature`?)"),
        ("catalog_version = 1", "catalog_version = 1\ncatalog_versoin = 2", "unknown key `catalog_versoin` (did you mean `catalog_version`?)"),
        ("container_name = \"frontend\"", "container_name = \"frontend\"\nwhatever = 1",
         "service \"frontend\": unknown key `docker.whatever` (the keys here are `container_name`, `image_reference`)"),
        ("automatic = true                    # default true", "automatic = true\nAutomatic = false",
         "unknown key `rollback.Automatic` (did you mean `automatic`?)"),
    ])
    func catalogErrors(_ find: String, _ replace: String, _ needle: String) throws {
        let text = String(decoding: try Self.fixture("catalogs/rust-example.toml"), as: UTF8.self)
        let bad = text.replacingOccurrences(of: find, with: replace)
        #expect(bad != text, "fixture text not found: \(find)")
        #expect(throws: CaissonError.self) { try Catalog.parse(Array(bad.utf8), path: "services.toml") }
        do {
            _ = try Catalog.parse(Array(bad.utf8), path: "services.toml")
        } catch {
            #expect(error.message.contains(needle), "\(error.message)")
        }
    }

    @Test func unknownKeysHaveTheirOwnCode() throws {
        let text = String(decoding: try Self.fixture("catalogs/rust-example.toml"), as: UTF8.self)
        let bad = text.replacingOccurrences(of: "[services.rollback]\nautomatic = true                    # default true",
                                            with: "[services.rollback]\nautomatic = true\n[services.rolback]\nautomatic = false")
        #expect(bad != text)
        #expect(throws: CaissonError.self) { try Catalog.parse(Array(bad.utf8), path: "s.toml") }
        do { _ = try Catalog.parse(Array(bad.utf8), path: "s.toml") } catch {
            #expect(error.code == "catalog.unknown_key")
            #expect(error.message.contains("unknown key `rolback` (did you mean `rollback`?)"), "\(error.message)")
        }
    }

    @Test func aCatalogWithoutServicesIsRefused() {
        do {
            _ = try Catalog.parse(Array("catalog_version = 1\n".utf8), path: "s.toml")
            Issue.record("expected an error")
        } catch {
            #expect(error.code == "catalog.invalid")
            #expect(error.message.contains("missing required `services`"))
        }
        // An empty list is a catalog that allows nothing (as the Rust tool reads it).
        #expect((try? Catalog.parse(Array("catalog_version = 1\nservices = []\n".utf8), path: "s.toml"))?.services == [])
    }

    @Test func theKnownKeysIncludeWhatOtherIssuesAdd() throws {
        func keys(_ table: String) -> [String] { Catalog.knownKeys.first { $0.table == table }?.keys ?? [] }
        #expect(Set(["stable_secs", "port", "path", "expect_status", "command", "probe_timeout_secs"]).isSubset(of: keys("services.health_check")))
        #expect(Set(["public_keys", "require_signature", "age_identities", "require_encryption"]).isSubset(of: keys("trust")))
        // Every table the parser reads has an entry; no table is listed twice.
        #expect(Catalog.knownKeys.map(\.table) == ["", "services", "services.docker", "services.compose",
                                                    "services.health_check", "services.rollback", "trust"])
        // Keys of every kind pass the key check (their values are the parser's business).
        let text = Self.catalogText(health: "kind = \"running\"\nstable_secs = 2") + "\n[trust]\nrequire_encryption = false\nage_max_work_factor = 18\n"
        #expect((try? Catalog.parse(Array(text.utf8), path: "s.toml")) != nil)
    }

    @Test func stableSecsMustFitTheTimeout() {
        let text = Self.catalogText(health: "timeout_secs = 3\nstable_secs = 10")
        #expect(throws: CaissonError.self) { try Catalog.parse(Array(text.utf8), path: "s.toml") }
        let defaulted = try? Catalog.parse(Array(Self.catalogText(health: "timeout_secs = 3").utf8), path: "s.toml")
        #expect(defaulted?.services.first?.health.stableSecs == 3)
    }

    static func catalogText(health: String) -> String {
        """
        catalog_version = 1
        [[services]]
        name = "a"
        service_revision = "a-v1"
        platform = "linux/amd64"
        runtime_mode = "docker"
        [services.docker]
        container_name = "a"
        image_reference = "a:1"
        [services.health_check]
        \(health)
        """
    }

    // MARK: Whole packages

    func tempDir() throws -> String {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("caisson-val-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    func build(_ dir: String, name: String = "p.edgepkg", tag: String = "example/frontend:1.2.3",
               arch: String = "amd64", declare: (sha: String?, size: Int?)? = nil, corruptDeclared: Bool = false) throws -> String {
        var img = SyntheticImage(reference: tag)
        img.architecture = arch
        img.files = [("hello.txt", Array("hello".utf8))]
        let (bytes, _) = try img.archive()
        var sha: String? = nil, size: Int? = nil
        if let declare {
            sha = declare.sha ?? SHA256.hash(bytes).hex
            size = declare.size ?? bytes.count
        }
        let m = EdgePackageWriter.manifest(service: "frontend", revision: "frontend-v1", platform: "linux/amd64", version: "1.2.3",
                                           createdAt: "2026-03-16T18:30:00Z", reference: "example/frontend:1.2.3", sha256: sha, size: size)
        let path = dir + "/" + name
        try EdgePackageWriter.write(manifest: m, image: bytes, to: path)
        return path
    }

    @Test func aGoodPackageIsAcceptedWithImageFacts() throws {
        let dir = try tempDir()
        let v = PackageValidator(catalog: try Self.catalog(), updaterVersion: "0.2.0").validate(path: try build(dir, declare: (nil, nil)))
        #expect(v.issues == [])
        #expect(v.status == .accepted)
        let f = try #require(v.image)
        #expect(f.repoTags == ["example/frontend:1.2.3"])
        #expect(f.layers.count == 1)
        let payload = try #require(v.imagePayload)
        #expect(payload.expectedImageID == f.imageID)
        // The payload's byte range is exactly image.tar inside the package.
        let all = Array(try Data(contentsOf: URL(fileURLWithPath: payload.path)))
        let slice = Array(all[Int(payload.offset)..<Int(payload.offset + payload.length)])
        #expect(SHA256.hash(slice).hex == v.scan?.imageTar?.sha256)
    }

    @Test func imageChecks() throws {
        let dir = try tempDir()
        let catalog = try Self.catalog()
        func codes(_ p: String) -> [String] { PackageValidator(catalog: catalog, updaterVersion: "0.2.0").validate(path: p).issues.map(\.code) }
        #expect(codes(try build(dir, name: "a.edgepkg", tag: "example/backend:current")) == ["image.unexpected_tags"])
        #expect(codes(try build(dir, name: "b.edgepkg", arch: "arm64")) == ["image.platform_mismatch"])
        #expect(codes(try build(dir, name: "c.edgepkg", declare: (String(repeating: "0", count: 64), nil))) == ["image.checksum_mismatch"])
        #expect(codes(try build(dir, name: "d.edgepkg", declare: (nil, 12))) == ["image.size_mismatch"])
    }

    @Test func stagingCodes() throws {
        let dir = try tempDir()
        let catalog = try Self.catalog()
        let v = PackageValidator(catalog: catalog, updaterVersion: "0.2.0")
        #expect(v.validate(path: dir + "/missing.edgepkg").issues.map(\.code) == ["package.not_found"])
        #expect(v.validate(path: dir + "/x.tar").issues.map(\.code) == ["package.invalid_extension"])
        try FileManager.default.createDirectory(atPath: dir + "/d.edgepkg", withIntermediateDirectories: true)
        #expect(v.validate(path: dir + "/d.edgepkg").issues.map(\.code) == ["package.not_a_file"])
    }

    @Test func truncatedPackagesAreRejectedNeverACrash() throws {
        let dir = try tempDir()
        let good = Array(try Data(contentsOf: URL(fileURLWithPath: try build(dir))))
        let v = PackageValidator(catalog: try Self.catalog(), updaterVersion: "0.2.0")
        for cut in stride(from: 1, to: good.count - 1024, by: 509) {
            let p = dir + "/cut.edgepkg"
            FileManager.default.createFile(atPath: p, contents: Data(good[0..<cut]))
            let r = v.validate(path: p)
            #expect(r.status == .rejected, "cut at \(cut)")
        }
    }
}
