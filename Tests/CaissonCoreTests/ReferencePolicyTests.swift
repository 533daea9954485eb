import CaissonCore
import Foundation
import Testing

/// Issue 10 items 8 and 9 at validation: a package may only set references in its own
/// service's repository, never `caisson-pin/*` or another catalog service's tag, and its image
/// may not carry `com.docker.compose.*` or `io.caisson.*` labels (the simulator's
/// `io.caisson.sim.*` excepted).
@Suite struct ReferencePolicyTests {
    static let catalogText = """
    catalog_version = 1
    [[services]]
    name = "frontend"
    service_revision = "frontend-v1"
    platform = "linux/amd64"
    runtime_mode = "docker"
    [services.docker]
    container_name = "frontend"
    image_reference = "example/web:front"
    [[services]]
    name = "admin"
    service_revision = "admin-v1"
    platform = "linux/amd64"
    runtime_mode = "docker"
    [services.docker]
    container_name = "admin"
    image_reference = "example/web:admin"
    [[services]]
    name = "backend"
    service_revision = "backend-v1"
    platform = "linux/amd64"
    runtime_mode = "compose"
    [services.compose]
    project = "stack"
    file = "/srv/stack/compose.yaml"
    service = "backend"
    """

    static func catalog() throws -> Catalog { try Catalog.parse(Array(catalogText.utf8), path: "/srv/services.toml") }

    /// A package for `service` whose image is tagged `reference` (the manifest says the same) and
    /// carries `labels`; returns the validation's issue codes.
    static func codes(service: String = "frontend", reference: String, labels: [String: String] = [:]) throws -> [String] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("caisson-refpol-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var img = SyntheticImage(reference: reference)
        img.labels = labels
        let (bytes, _) = try img.archive()
        let m = EdgePackageWriter.manifest(service: service, revision: "\(service)-v1", platform: "linux/amd64", version: "1.0.0",
                                           createdAt: "2026-03-16T18:30:00Z", reference: reference, sha256: nil, size: nil)
        let path = dir + "/p.edgepkg"
        try EdgePackageWriter.write(manifest: m, image: bytes, to: path)
        return PackageValidator(catalog: try catalog(), updaterVersion: "0.2.0").validate(path: path).issues.map(\.code)
    }

    @Test("references a package may and may not set", arguments: [
        ("example/web:1.2.3", [String]()),
        ("example/web:front", []),                                   // its own catalog tag: durable
        ("docker.io/example/web:nightly", []),                       // the same repository, spelled fully
        ("example/web:admin", ["image.reference_in_use"]),           // another catalog service's tag
        ("example/api:1.0", ["image.reference_outside_service"]),
        ("busybox:latest", ["image.reference_outside_service"]),
        ("caisson-pin/frontend:0123456789ab", ["image.reference_reserved"]),
        ("caisson-pin/admin:0123456789ab", ["image.reference_reserved"]),
    ])
    func references(_ reference: String, _ expected: [String]) throws {
        #expect(try Self.codes(reference: reference) == expected, "\(reference)")
    }

    @Test("labels a package image may and may not carry", arguments: [
        (["org.opencontainers.image.version": "1.0"], [String]()),
        (["io.caisson.sim.health": "healthy", "io.caisson.sim.flush_secs": "3"], []),
        (["com.docker.compose.project": "stack", "com.docker.compose.service": "backend"], ["image.reserved_label"]),
        (["io.caisson.update-id": "0badc0de-0000-4000-8000-000000000001"], ["image.reserved_label"]),
        (["io.caisson.anything": "x"], ["image.reserved_label"]),
        (["com.docker.compose.oneoff": "False", "vendor": "acme"], ["image.reserved_label"]),
    ])
    func labels(_ labels: [String: String], _ expected: [String]) throws {
        #expect(try Self.codes(reference: "example/web:2.0.0", labels: labels) == expected, "\(labels)")
    }

    @Test func theRefusalNamesEveryReservedLabel() {
        let issues = ReferencePolicy.labelIssues(["io.caisson.update-id", "com.docker.compose.service", "io.caisson.sim.health", "a"])
        #expect(issues.count == 1)
        #expect(issues.first?.message.contains("com.docker.compose.service, io.caisson.update-id") == true)
        #expect(issues.first?.message.contains("sim.health") == false)
    }

    /// A Compose service's repository comes from its compose file: validation cannot know it,
    /// the preflight checks it (see the engine's `HostileReferenceTests`).
    @Test func composeReferencesAreLeftToThePreflight() throws {
        #expect(try Self.codes(service: "backend", reference: "example/anything:1.0") == [])
        #expect(try Self.codes(service: "backend", reference: "example/web:front") == ["image.reference_in_use"])
        #expect(try Self.codes(service: "backend", reference: "caisson-pin/backend:0123456789ab") == ["image.reference_reserved"])
    }
}
