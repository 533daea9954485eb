import CaissonCore
import Foundation
import Testing

/// Scans a package holding `image` and returns the scan.
private func scanImage(_ image: [UInt8], limits: PackageScanLimits = PackageScanLimits()) -> PackageScan {
    ArchiveFixtures.scan(ArchiveFixtures.package(image: image), limits: limits)
}

@Suite("Image inspection: docker save layouts")
struct ArchiveImageTests {
    static func fullImage() -> DockerSaveWriter.Image {
        var image = DockerSaveWriter.Image(layers: [ArchiveFixtures.layerA, ArchiveFixtures.layerB],
                                           repoTags: ["example/app:1.0", "example/app:latest"])
        image.architecture = "arm64"
        image.variant = "v8"
        image.env = ["PATH=/bin", "MODE=prod"]
        image.cmd = ["serve", "--port", "80"]
        image.entrypoint = ["/bin/app"]
        image.workingDir = "/srv"
        image.user = "1000:1000"
        image.labels = ["org.opencontainers.image.version": "1.0", "a.first": "x"]
        image.exposedPorts = ["80/tcp", "443/tcp"]
        image.healthcheck = ["CMD", "/bin/app", "health"]
        return image
    }

    @Test(arguments: [DockerSaveWriter.Layout.legacy, .oci])
    func factsFromBothLayouts(layout: DockerSaveWriter.Layout) throws {
        let image = Self.fullImage()
        let scan = scanImage(DockerSaveWriter(layout: layout, images: [image]).build())
        #expect(scan.issues == [])
        let facts = try #require(scan.image)
        #expect(facts.layout == (layout == .legacy ? .legacy : .oci))
        #expect(facts.imageID == image.imageID)
        #expect(facts.repoTags == ["example/app:1.0", "example/app:latest"])
        #expect(facts.os == "linux")
        #expect(facts.architecture == "arm64")
        #expect(facts.variant == "v8")
        #expect(facts.platform == "linux/arm64/v8")
        #expect(facts.layers == image.diffIDs)
        #expect(facts.totalLayerBytes == Int64(ArchiveFixtures.layerA.count + ArchiveFixtures.layerB.count))
        #expect(facts.labels == [ImageLabel(key: "a.first", value: "x"), ImageLabel(key: "org.opencontainers.image.version", value: "1.0")])
        #expect(facts.hasHealthcheck)
        #expect(facts.env == ["PATH=/bin", "MODE=prod"])
        #expect(facts.cmd == ["serve", "--port", "80"])
        #expect(facts.entrypoint == ["/bin/app"])
        #expect(facts.workingDir == "/srv")
        #expect(facts.user == "1000:1000")
        #expect(facts.exposedPorts == ["443/tcp", "80/tcp"])
    }

    @Test(arguments: [DockerSaveWriter.EntryOrder.docker, .documentsFirst, .reversed])
    func entryOrderDoesNotMatter(order: DockerSaveWriter.EntryOrder) {
        for layout in [DockerSaveWriter.Layout.legacy, .oci] {
            var writer = DockerSaveWriter(layout: layout, layers: [ArchiveFixtures.layerA, ArchiveFixtures.layerB])
            writer.order = order
            let scan = scanImage(writer.build())
            #expect(scan.issues == [])
            #expect(scan.image?.imageID == writer.images[0].imageID)
        }
    }

    @Test func healthcheckNoneAndNullFields() throws {
        var image = DockerSaveWriter.Image(layers: [ArchiveFixtures.layerA])
        image.healthcheck = ["NONE"]
        image.cmd = nil
        let facts = try #require(scanImage(DockerSaveWriter(layout: .legacy, images: [image]).build()).image)
        #expect(!facts.hasHealthcheck)
        #expect(facts.cmd == nil)
        #expect(facts.entrypoint == nil)
        #expect(facts.labels == [])
        #expect(facts.variant == nil)
    }

    @Test(arguments: [DockerSaveWriter.OCILayerPaths.legacySymlinks, .blobs])
    func ociWithLegacyDirectoriesOfSymlinks(paths: DockerSaveWriter.OCILayerPaths) throws {
        var writer = DockerSaveWriter(layout: .oci, layers: [ArchiveFixtures.layerA, ArchiveFixtures.layerB])
        writer.ociLegacyDirectories = true
        writer.ociLayerPaths = paths
        let scan = scanImage(writer.build())
        #expect(scan.issues == [])
        #expect(scan.image?.layers == writer.images[0].diffIDs)
        #expect(scan.image?.layout == .oci)
    }

    @Test func hardLinkedLayerResolvesToItsTarget() {
        let image = DockerSaveWriter.Image(layers: [ArchiveFixtures.layerA])
        var tar = TarWriter(format: .pax)
        tar.addFile("data/real-layer", ArchiveFixtures.layerA)
        tar.addHardLink("abc/layer.tar", target: "data/real-layer")
        tar.addFile(image.configDigest.hex + ".json", image.configBytes)
        tar.addFile("manifest.json", DockerSaveWriter.json([["Config": image.configDigest.hex + ".json",
                                                             "RepoTags": ["example/app:1.0"], "Layers": ["abc/layer.tar"]]]))
        tar.finish()
        let scan = scanImage(tar.bytes)
        #expect(scan.issues == [])
        #expect(scan.image?.layers == image.diffIDs)
    }

    @Test func symlinkLoopsAndEscapesAreMissingLayers() {
        let image = DockerSaveWriter.Image(layers: [ArchiveFixtures.layerA])
        for (links, layerPath) in [([("a", "b"), ("b", "a")], "a"), ([("up/layer.tar", "../../etc/layer")], "up/layer.tar")] {
            var tar = TarWriter(format: .pax)
            for (name, target) in links { tar.addSymlink(name, target: target) }
            tar.addFile(image.configDigest.hex + ".json", image.configBytes)
            tar.addFile("manifest.json", DockerSaveWriter.json([["Config": image.configDigest.hex + ".json", "Layers": [layerPath]]]))
            tar.finish()
            let scan = scanImage(tar.bytes)
            #expect(scan.codes == ["image.invalid_archive"])
            #expect(scan.issues.first?.message.contains("no layer") == true)
        }
    }

    @Test func ociWithoutManifestJSONUsesIndexJSON() throws {
        var writer = DockerSaveWriter(layout: .oci, layers: [ArchiveFixtures.layerA, ArchiveFixtures.layerB],
                                      repoTags: ["docker.io/example/app:2.0"])
        writer.writeManifestJSON = false
        writer.writeRepositories = false
        writer.ociLegacyDirectories = false
        let scan = scanImage(writer.build())
        #expect(scan.issues == [])
        let facts = try #require(scan.image)
        #expect(facts.layout == .oci)
        #expect(facts.repoTags == ["example/app:2.0"])
        #expect(facts.imageID == writer.images[0].imageID)
        #expect(facts.layers == writer.images[0].diffIDs)
    }

    @Test func tagsAreUnitedNormalizedSortedAndDeduplicated() throws {
        let tags = ["docker.io/library/busybox:1", "busybox:1", "example/app:latest", "docker.io/example/app:2",
                    "index.docker.io/example/app:2", "localhost:5000/x/y:3", "registry.example.com/team/app:v1"]
        let scan = scanImage(DockerSaveWriter(layout: .oci, layers: [ArchiveFixtures.layerA], repoTags: tags).build())
        #expect(scan.issues == [])
        #expect(scan.image?.repoTags == ["busybox:1", "example/app:2", "example/app:latest",
                                         "localhost:5000/x/y:3", "registry.example.com/team/app:v1"])
    }

    @Test func tagsFromRepositoriesAndIndexAreIncluded() throws {
        // manifest.json without RepoTags: the tags docker load applies come from the other files.
        var writer = DockerSaveWriter(layout: .oci, layers: [ArchiveFixtures.layerA], repoTags: ["example/app:3.0"])
        let image = writer.images[0]
        writer.rawManifestJSON = DockerSaveWriter.json([["Config": "blobs/sha256/" + image.configDigest.hex,
                                                         "Layers": ["blobs/sha256/" + SHA256.hash(ArchiveFixtures.layerA).hex]]])
        writer.extraFiles = []
        let facts = try #require(scanImage(writer.build()).image)
        #expect(facts.repoTags == ["example/app:3.0"])

        var legacy = DockerSaveWriter(layout: .legacy, layers: [ArchiveFixtures.layerA], repoTags: ["example/app:4.0"])
        let legacyImage = legacy.images[0]
        legacy.rawManifestJSON = DockerSaveWriter.json([["Config": legacyImage.configDigest.hex + ".json",
                                                         "Layers": [legacyImage.legacyLayerID(0) + "/layer.tar"]]])
        #expect(scanImage(legacy.build()).image?.repoTags == ["example/app:4.0"])
    }

    @Test func untaggedImageHasNoTags() throws {
        let facts = try #require(scanImage(DockerSaveWriter(layout: .oci, layers: [ArchiveFixtures.layerA], repoTags: []).build()).image)
        #expect(facts.repoTags == [])
    }

    @Test func invalidTagIsReported() {
        let scan = scanImage(DockerSaveWriter(layout: .legacy, layers: [ArchiveFixtures.layerA], repoTags: ["Example/App:1"]).build())
        #expect(scan.codes == ["image.invalid_archive"])
    }

    // MARK: - image.invalid_archive

    @Test func noManifestJSONNorIndex() {
        var writer = DockerSaveWriter(layout: .legacy, layers: [ArchiveFixtures.layerA])
        writer.writeManifestJSON = false
        let scan = scanImage(writer.build())
        #expect(scan.codes == ["image.invalid_archive"])
        #expect(scan.image == nil)
        // A tar that is not a docker save at all.
        let other = scanImage(DockerSaveWriter.layer([("hello", [1, 2, 3])]))
        #expect(other.codes == ["image.invalid_archive"])
    }

    @Test(arguments: ["not json", "{}", "[]", "[{\"Config\": 5}]", "[{\"Config\":\"x.json\"}]"])
    func malformedManifestJSON(text: String) {
        var writer = DockerSaveWriter(layout: .legacy, layers: [ArchiveFixtures.layerA])
        writer.rawManifestJSON = Array(text.utf8)
        #expect(scanImage(writer.build()).codes == ["image.invalid_archive"])
    }

    @Test func missingConfigOrLayer() {
        let image = DockerSaveWriter.Image(layers: [ArchiveFixtures.layerA])
        var noConfig = DockerSaveWriter(layout: .legacy, images: [image])
        noConfig.rawManifestJSON = DockerSaveWriter.json([["Config": String(repeating: "0", count: 64) + ".json",
                                                           "Layers": [image.legacyLayerID(0) + "/layer.tar"]]])
        let a = scanImage(noConfig.build())
        #expect(a.codes == ["image.invalid_archive"])
        #expect(a.issues.first?.message.contains("config") == true)

        var noLayer = DockerSaveWriter(layout: .legacy, images: [image])
        noLayer.rawManifestJSON = DockerSaveWriter.json([["Config": image.configDigest.hex + ".json",
                                                          "Layers": ["missing/layer.tar"]]])
        let b = scanImage(noLayer.build())
        #expect(b.codes == ["image.invalid_archive"])
        #expect(b.issues.first?.message.contains("missing/layer.tar") == true)
    }

    @Test(arguments: [DockerSaveWriter.Layout.legacy, .oci])
    func moreThanOneImage(layout: DockerSaveWriter.Layout) {
        let one = DockerSaveWriter.Image(layers: [ArchiveFixtures.layerA], repoTags: ["example/one:1"])
        let two = DockerSaveWriter.Image(layers: [ArchiveFixtures.layerB], repoTags: ["example/two:1"])
        let scan = scanImage(DockerSaveWriter(layout: layout, images: [one, two]).build())
        #expect(scan.codes == ["image.invalid_archive"])
        #expect(scan.issues.first?.message.contains("2 images") == true)
    }

    @Test func indexJSONThatDescribesAnotherImage() {
        let one = DockerSaveWriter.Image(layers: [ArchiveFixtures.layerA], repoTags: ["example/one:1"])
        let two = DockerSaveWriter.Image(layers: [ArchiveFixtures.layerB], repoTags: ["example/two:1"])
        var writer = DockerSaveWriter(layout: .oci, images: [one, two])
        // manifest.json lists only the first image; index.json both.
        writer.rawManifestJSON = DockerSaveWriter.json([["Config": "blobs/sha256/" + one.configDigest.hex,
                                                         "Layers": ["blobs/sha256/" + SHA256.hash(ArchiveFixtures.layerA).hex]]])
        let scan = scanImage(writer.build())
        #expect(scan.codes == ["image.invalid_archive"])
    }

    @Test(arguments: ["{not json", "[]", "{\"rootfs\": 3}", "{\"config\": {\"Env\": \"PATH=/bin\"}}"])
    func malformedConfig(text: String) {
        var image = DockerSaveWriter.Image(layers: [ArchiveFixtures.layerA])
        image.rawConfig = Array(text.utf8)
        let scan = scanImage(DockerSaveWriter(layout: .legacy, images: [image]).build())
        #expect(scan.codes == ["image.invalid_archive"])
        #expect(scan.image == nil)
    }

    @Test func tooManyLayersAndEntries() {
        var limits = PackageScanLimits()
        limits.maxLayers = 2
        let layers = (0..<3).map { DockerSaveWriter.layer([("f\($0)", [UInt8($0)])]) }
        let scan = scanImage(DockerSaveWriter(layout: .legacy, layers: layers).build(), limits: limits)
        #expect(scan.codes == ["image.invalid_archive"])
        #expect(scan.issues.first?.message.contains("layers") == true)

        var entryLimits = PackageScanLimits()
        entryLimits.maxImageEntries = 5
        let many = scanImage(DockerSaveWriter(layout: .oci, layers: layers).build(), limits: entryLimits)
        #expect(many.codes == ["image.invalid_archive"])
        #expect(many.issues.first?.message.contains("more than 5 entries") == true)
    }

    @Test func jsonTooLargeForTheBudget() {
        var limits = PackageScanLimits()
        limits.maxJSONFileSize = 100
        let scan = scanImage(DockerSaveWriter(layout: .legacy, layers: [ArchiveFixtures.layerA]).build(), limits: limits)
        #expect(scan.codes == ["image.invalid_archive"])
        #expect(scan.issues.first?.message.contains("larger than 100 bytes") == true)
    }

    @Test func nestedIndexWithoutManifestJSONIsRefused() {
        var writer = DockerSaveWriter(layout: .oci, layers: [ArchiveFixtures.layerA])
        writer.writeManifestJSON = false
        writer.rawIndexJSON = DockerSaveWriter.json(["schemaVersion": 2, "manifests": [
            ["mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + String(repeating: "a", count: 64), "size": 10],
        ]])
        #expect(scanImage(writer.build()).codes == ["image.invalid_archive"])
    }

    // MARK: - image.digest_mismatch

    @Test(arguments: [DockerSaveWriter.Layout.legacy, .oci])
    func tamperedLayer(layout: DockerSaveWriter.Layout) {
        var writer = DockerSaveWriter(layout: layout, layers: [ArchiveFixtures.layerA, ArchiveFixtures.layerB])
        var evil = ArchiveFixtures.layerB
        evil[600] ^= 0xff
        writer.tamperedLayers = [1: evil]
        let scan = scanImage(writer.build())
        // Legacy: the diff id check catches it; OCI: the blob name check (once, not twice).
        #expect(scan.codes == ["image.digest_mismatch"])
        #expect(scan.image != nil)
    }

    @Test func blobWhoseNameLies() {
        var writer = DockerSaveWriter(layout: .oci, layers: [ArchiveFixtures.layerA])
        writer.extraFiles = [("blobs/sha256/" + String(repeating: "b", count: 64), Array("not that".utf8))]
        let scan = scanImage(writer.build())
        #expect(scan.codes == ["image.digest_mismatch"])
    }

    @Test func diffIDCountMismatch() {
        var image = DockerSaveWriter.Image(layers: [ArchiveFixtures.layerA, ArchiveFixtures.layerB])
        image.diffIDsOverride = [image.diffIDs[0]]
        let scan = scanImage(DockerSaveWriter(layout: .legacy, images: [image]).build())
        #expect(scan.codes == ["image.digest_mismatch"])
        #expect(scan.issues.first?.message.contains("1 layer diff ids") == true)
    }

    @Test func legacyConfigNameMustMatchItsDigest() {
        let image = DockerSaveWriter.Image(layers: [ArchiveFixtures.layerA])
        var writer = DockerSaveWriter(layout: .legacy, images: [image])
        let wrongName = String(repeating: "c", count: 64) + ".json"
        writer.extraFiles = [(wrongName, image.configBytes)]
        writer.rawManifestJSON = DockerSaveWriter.json([["Config": wrongName, "RepoTags": ["example/app:1.0"],
                                                         "Layers": [image.legacyLayerID(0) + "/layer.tar"]]])
        let scan = scanImage(writer.build())
        #expect(scan.codes == ["image.digest_mismatch"])
        #expect(scan.image?.imageID == image.imageID)
    }

    @Test func compressedLegacyLayerCannotBeVerified() {
        let gz: [UInt8] = [0x1f, 0x8b, 0x08, 0x00] + DockerSaveWriter.randomBytes(100, seed: 40)
        let scan = scanImage(DockerSaveWriter(layout: .legacy, layers: [gz]).build())
        #expect(scan.codes == ["image.invalid_archive"])
        // Also when the bytes arrive one at a time (the magic spans chunks).
        let pkg = ArchiveFixtures.package(image: DockerSaveWriter(layout: .legacy, layers: [gz]).build())
        #expect(ArchiveFixtures.scan(pkg, maxReadSize: 1).codes == ["image.invalid_archive"])
        // In blobs/sha256 it is verified by name instead.
        var image = DockerSaveWriter.Image(layers: [gz])
        image.diffIDsOverride = ["sha256:" + String(repeating: "d", count: 64)]
        #expect(scanImage(DockerSaveWriter(layout: .oci, images: [image]).build()).issues == [])
    }

    // MARK: - Scale

    @Test func hundredThousandTinyEntries() throws {
        var writer = DockerSaveWriter(layout: .legacy, layers: [ArchiveFixtures.layerA])
        writer.extraFiles = (0..<99_990).map { ("tiny/\($0)", []) }
        writer.directories = false
        let image = writer.build()
        let scan = scanImage(image)
        #expect(scan.issues == [])
        #expect(scan.image?.layers == writer.images[0].diffIDs)
    }
}

@Suite("ImageReference")
struct ArchiveImageReferenceTests {
    @Test(arguments: [
        ("busybox", "docker.io", "library/busybox", nil, "busybox"),
        ("busybox:1.36", "docker.io", "library/busybox", "1.36", "busybox:1.36"),
        ("library/busybox:latest", "docker.io", "library/busybox", "latest", "busybox:latest"),
        ("docker.io/library/busybox:1", "docker.io", "library/busybox", "1", "busybox:1"),
        ("index.docker.io/example/app:1", "docker.io", "example/app", "1", "example/app:1"),
        ("docker.io/example/app:1", "docker.io", "example/app", "1", "example/app:1"),
        ("example/frontend:1.2.3", "docker.io", "example/frontend", "1.2.3", "example/frontend:1.2.3"),
        ("localhost:5000/app", "localhost:5000", "app", nil, "localhost:5000/app"),
        ("localhost/app:v1", "localhost", "app", "v1", "localhost/app:v1"),
        ("registry.example.com:443/team/sub/app:v_1.0-rc", "registry.example.com:443", "team/sub/app", "v_1.0-rc",
         "registry.example.com:443/team/sub/app:v_1.0-rc"),
        ("[::1]:5000/app:1", "[::1]:5000", "app", "1", "[::1]:5000/app:1"),
        ("docker.io/library/foo/bar:1", "docker.io", "library/foo/bar", "1", "library/foo/bar:1"),
        ("a__b/c-d--e.f_g:t", "docker.io", "a__b/c-d--e.f_g", "t", "a__b/c-d--e.f_g:t"),
    ] as [(String, String, String, String?, String)])
    func parsesAndNormalizes(input: String, domain: String, path: String, tag: String?, familiar: String) throws {
        let reference = try ImageReference(input)
        #expect(reference.domain == domain)
        #expect(reference.path == path)
        #expect(reference.tag == tag)
        #expect(reference.familiar == familiar)
        #expect(try ImageReference(reference.normalized) == reference)
        #expect(try ImageReference(reference.familiar) == reference)
    }

    @Test func digestsAndDefaultTag() throws {
        let hex = String(repeating: "ab", count: 32)
        let pinned = try ImageReference("example/app:1@sha256:" + hex)
        #expect(pinned.tag == "1")
        #expect(pinned.digest == "sha256:" + hex)
        #expect(pinned.normalized == "docker.io/example/app:1@sha256:" + hex)
        #expect(try ImageReference("busybox").withDefaultTag() == ImageReference("docker.io/library/busybox:latest"))
        #expect(try ImageReference("busybox") != ImageReference("busybox:latest"))
        #expect(try ImageReference("busybox@sha256:" + hex).withDefaultTag().tag == nil)
    }

    @Test(arguments: [
        ("", ImageReference.ParseError.Reason.empty),
        ("Example/App:1", .uppercaseRepository),
        ("example/app:", .invalidTag),
        ("example/app:-x", .invalidTag),
        ("example/app:" + String(repeating: "t", count: 129), .invalidTag),
        ("example//app", .invalidRepository),
        ("example/app/", .invalidRepository),
        ("-example/app", .invalidRepository),
        ("example/a..b", .invalidRepository),
        ("example/a b", .invalidRepository),
        ("ex_ample.com/app", .invalidDomain),
        ("host:port/app", .invalidDomain),
        ("example/app@sha256:abc", .invalidDigest),
        ("example/app@sha256:" + String(repeating: "A", count: 64), .invalidDigest),
        ("example/app@md5", .invalidDigest),
        (String(repeating: "a", count: 64), .hexRepository),
        (String(repeating: "a", count: 256), .tooLong),
    ] as [(String, ImageReference.ParseError.Reason)])
    func rejects(input: String, reason: ImageReference.ParseError.Reason) {
        do {
            _ = try ImageReference(input)
            Issue.record("\(input) parsed")
        } catch {
            #expect(error.reason == reason, "\(input): \(error.message)")
            #expect(error.message.hasPrefix("invalid image reference"))
        }
    }
}
