import CaissonCore
import CaissonSimulator
import Testing

@Suite("Simulator: images")
struct SimulatorImageTests {
    typealias F = SimFixture

    @Test func loadAppliesReferenceAndReportsProgressUpToLength() throws {
        let host = SimulatedHost(seed: 1)
        var seen: [Int64] = []
        let info = try host.loadImage(F.payload("example/app:1.0", F.v1, length: 1001)) { seen.append($0) }
        #expect(info.id == F.v1)
        #expect(info.repoTags == ["example/app:1.0"])
        #expect(seen.count >= 2)
        #expect(seen == seen.sorted())
        #expect(seen.last == 1001)
        #expect(try host.inspectImage("example/app:1.0")?.id == F.v1)
    }

    @Test func loadMovesTagAndOldImageStaysUsableByID() throws {
        let host = SimulatedHost(seed: 1)
        _ = try host.loadImage(F.payload("app:current", F.v1), progress: { _ in })
        _ = try host.loadImage(F.payload("app:current", F.v2), progress: { _ in })
        #expect(host.imageIDForReference("app:current") == F.v2)
        let old = try #require(try host.inspectImage(F.v1))
        #expect(old.repoTags.isEmpty)               // dangling, but present
        #expect(try host.inspectImage("app:current")?.repoTags == ["app:current"])
        // A container can still be created from the dangling image, by id.
        try host.addImage(id: F.v3, tags: ["base:1"])
        try host.runContainer(name: "tmpl", imageReference: "base:1")
        let id = try host.createContainer(name: "from-dangling", cloning: "tmpl", imageID: F.v1, labels: [:])
        #expect(host.container(id)?.imageID == F.v1)
    }

    @Test func loadOfAnImageAlreadyPresentOnlyMovesTheTag() throws {
        let host = SimulatedHost(seed: 1)
        host.freeDiskBytes = 2500
        _ = try host.loadImage(F.payload("app:1", F.v1, length: 1000), progress: { _ in })
        #expect(host.freeDiskBytes == 1500)
        // Same image again under another tag: it needs room to unpack, but keeps nothing new.
        let again = try host.loadImage(F.payload("app:latest", F.v1, length: 1000), progress: { _ in })
        #expect(again.repoTags == ["app:1", "app:latest"])
        #expect(host.freeDiskBytes == 1500)
    }

    @Test func loadIntoAFullDiskFailsAndChangesNothing() throws {
        let host = SimulatedHost(seed: 1)
        host.freeDiskBytes = 999
        var last: Int64 = -1
        let error = simError { try host.loadImage(F.payload("app:1", F.v1, length: 1000), progress: { last = $0 }) }
        #expect(error?.kind == .diskFull)
        #expect(last == -1)                                  // refused before streaming
        #expect(host.allImages.isEmpty)
        #expect(host.freeDiskBytes == 999)
        host.freeDiskBytes = 1000
        #expect(try host.loadImage(F.payload("app:1", F.v1, length: 1000), progress: { _ in }).id == F.v1)
        #expect(host.freeDiskBytes == 0)
    }

    @Test func loadSpaceRequirementCanMatchDockerHostsPreflight() throws {
        let host = SimulatedHost(seed: 1)
        host.setLoadSpaceRequirement(multiplier: 2, marginBytes: 100)
        host.freeDiskBytes = 2099
        #expect(simError { try host.loadImage(F.payload("app:1", F.v1, length: 1000), progress: { _ in }) }?.kind == .diskFull)
        host.freeDiskBytes = 2100
        _ = try host.loadImage(F.payload("app:1", F.v1, length: 1000), progress: { _ in })
        #expect(host.freeDiskBytes == 1100)
    }

    @Test func loadRejectsMalformedIDsAndReferences() {
        let host = SimulatedHost(seed: 1)
        #expect(simError { try host.loadImage(F.payload("app:1", "md5:abc"), progress: { _ in }) }?.kind == .failed)
        #expect(simError { try host.loadImage(F.payload("App:1", F.v1), progress: { _ in }) }?.kind == .failed)
        #expect(simError { try host.loadImage(F.payload("app:1", F.v1, length: -1), progress: { _ in }) }?.kind == .failed)
        #expect(simError { try host.loadImage(F.payload("app:1", F.v1, length: 0), progress: { _ in }) }?.kind == .failed)
        #expect(host.allImages.isEmpty)
    }

    @Test func inspectResolvesLikeDocker() throws {
        let host = SimulatedHost(seed: 1)
        try host.addImage(id: F.v1, tags: ["nginx:latest", "registry.local:5000/team/app:2"])
        let hex = String(F.v1.dropFirst(7))
        for ref in ["nginx", "nginx:latest", "docker.io/library/nginx", "docker.io/library/nginx:latest",
                    "library/nginx", F.v1, hex, String(hex.prefix(12)), "sha256:" + hex.prefix(10),
                    "registry.local:5000/team/app:2"] {
            #expect(try host.inspectImage(ref)?.id == F.v1, "\(ref)")
        }
        #expect(try host.inspectImage("nginx:1") == nil)
        #expect(try host.inspectImage("registry.local:5000/team/app") == nil)
        #expect(try host.inspectImage("sha256:" + String(repeating: "0", count: 64)) == nil)
        #expect(simError { try host.inspectImage("Bad Ref") }?.kind == .failed)
    }

    @Test func ambiguousIDPrefixFindsNothing() throws {
        let host = SimulatedHost(seed: 1)
        try host.addImage(id: "sha256:abc1" + String(repeating: "0", count: 60))
        try host.addImage(id: "sha256:abc2" + String(repeating: "0", count: 60))
        #expect(try host.inspectImage("abc") == nil)
        #expect(try host.inspectImage("abc1")?.id.hasPrefix("sha256:abc1") == true)
    }

    @Test func tagMovesAndNeedsAnExistingSource() throws {
        let host = SimulatedHost(seed: 1)
        try host.addImage(id: F.v1, tags: ["app:1"])
        try host.addImage(id: F.v2, tags: ["app:2", "app:current"])
        try host.tagImage(F.v1, as: "app:current")
        #expect(host.imageIDForReference("app:current") == F.v1)
        #expect(host.image(F.v2)?.repoTags == ["app:2"])
        #expect(host.image(F.v1)?.repoTags == ["app:1", "app:current"])
        try host.tagImage("app:2", as: "app:rollback")       // a reference works as source, as in Docker
        #expect(host.imageIDForReference("app:rollback") == F.v2)
        #expect(simError { try host.tagImage(F.v3, as: "app:x") }?.kind == .notFound)
        #expect(simError { try host.tagImage(F.v1, as: "app@sha256:" + String(repeating: "a", count: 64)) }?.kind == .failed)
    }

    @Test func removingATagKeepsOtherTagsAndDeletesAnUnusedUntaggedImage() throws {
        let host = SimulatedHost(seed: 1)
        host.freeDiskBytes = 10_000
        try host.addImage(id: F.v1, tags: ["app:1", "app:current"], sizeBytes: 4000)
        #expect(host.freeDiskBytes == 6000)
        try host.removeImage("app:current")
        #expect(host.image(F.v1)?.repoTags == ["app:1"])
        try host.removeImage("app:1")
        #expect(host.image(F.v1) == nil)
        #expect(host.freeDiskBytes == 10_000)
        try host.removeImage("app:1")                    // not found is success
        try host.removeImage(F.v1)
    }

    @Test func removingTheLastTagOfAnImageInUseLeavesItDangling() throws {
        let host = try F.hostWithApp()
        try host.removeImage("app:1")
        #expect(host.image(F.v1)?.repoTags == [])
        #expect(host.container("app")?.imageID == F.v1)
    }

    @Test func removingByIDIsRefusedWhileAContainerUsesItOrItHasSeveralTags() throws {
        let host = try F.hostWithApp()
        #expect(simError { try host.removeImage(F.v1) }?.kind == .conflict)
        try host.stopContainer("app", graceSecs: 10)
        #expect(simError { try host.removeImage(String(F.v1.dropFirst(7).prefix(12))) }?.kind == .conflict)
        try host.removeContainer("app")
        try host.tagImage(F.v1, as: "app:other")
        #expect(simError { try host.removeImage(F.v1) }?.kind == .conflict)
        try host.removeImage("app:other")
        try host.removeImage(F.v1)
        #expect(host.image(F.v1) == nil)
        #expect(host.imageIDForReference("app:1") == nil)
    }
}
