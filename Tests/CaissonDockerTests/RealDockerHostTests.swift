import CaissonCore
import Foundation
import Testing
@testable import CaissonDocker

extension RealDocker {
    /// Is `docker compose` (v2) runnable here?
    static let composeAvailable: Bool = {
        guard available, let docker = DockerHost.resolveExecutable("docker", path: ProcessInfo.processInfo.environment["PATH"]) else {
            return false
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: docker)
        process.arguments = ["compose", "version"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            print("NOTICE: real-Docker compose tests SKIPPED: `docker compose version` failed (scripts/docker.sh install adds the plugin)")
        }
        return process.terminationStatus == 0
    }()

    /// Imports a busybox image `caisson-test/host:<tag>-<run>` and returns (reference, id).
    static func makeImage(_ tag: String, _ changes: [String]) throws -> (reference: String, id: String) {
        let reference = "caisson-test/host:\(tag)-\(runID)"
        let id = try client!.importImage(rootfs: .bytes(rootfs()), repository: "caisson-test/host", tag: "\(tag)-\(runID)",
                                         changes: changes)
        return (reference, id)
    }
}

/// `DockerHost` against a real daemon: the Docker-mode swap as the update machine drives it, the
/// streamed load of an archive inside a bigger file, and Compose mode.
@Suite("DockerHost on a real daemon", .serialized, .enabled(if: RealDocker.availableWithBusybox))
struct RealDockerHostTests {
    let client = RealDocker.client!
    var host: DockerHost { DockerHost(client: client) }

    @Test func swapCarriesOperatorConfigAndTakesNewImageDefaults() throws {
        let run = RealDocker.runID
        let v1 = try RealDocker.makeImage("v1", ["ENV A=old", "LABEL version=1", "LABEL vendor=acme", "VOLUME /data",
                                                 #"CMD ["/bin/sh", "-c", "echo v1 > /data/f; exec sleep 600"]"#])
        let v2 = try RealDocker.makeImage("v2", ["ENV A=new", "LABEL version=2",
                                                 #"CMD ["/bin/sh", "-c", "test -f /data/f && test \"$A\" = new && test \"$OP\" = 1"]"#])
        let name = "caisson-host-svc-\(run)"
        let backup = "\(name)-caisson-rollback-0000beef"
        let staging = "\(name)-caisson-new"
        defer {
            for container in [name, backup, staging] { try? host.removeContainer(container) }
            for image in [v1.reference, v2.reference] { _ = try? client.removeImage(image, force: true) }
        }

        _ = try client.createContainer(name: name, body: ["Image": .string(v1.reference), "Env": ["OP=1"],
                                                          "Labels": ["team": "edge"],
                                                          "HostConfig": ["RestartPolicy": ["Name": "no"]]])
        try host.startContainer(name)
        let old = try #require(try host.inspectContainer(name))
        #expect(old.status == .running)
        #expect(old.imageID == v1.id)
        #expect(old.labels["version"] == "1")

        // The machine's order: create (old still running), stop old, rename away, rename in, start.
        let newID = try host.createContainer(name: staging, cloning: old.id, imageID: v2.id, labels: ["caisson.update": "u1"])
        let conflict = #expect(throws: HostError.self) {
            try host.createContainer(name: staging, cloning: old.id, imageID: v2.id, labels: [:])
        }
        #expect(conflict?.kind == .conflict)
        try host.stopContainer(old.id, graceSecs: 1)
        try host.stopContainer(old.id, graceSecs: 1)  // already stopped: success
        try host.renameContainer(old.id, to: backup)
        try host.renameContainer(newID, to: name)
        try host.startContainer(newID)

        // v2's command checks: the volume data carried over, the new image's A, the operator's OP.
        #expect(try client.waitContainer(newID, timeout: .seconds(60)).statusCode == 0)
        let swapped = try #require(try host.inspectContainer(name))
        #expect(swapped.id == newID)
        #expect(swapped.imageID == v2.id)
        #expect(swapped.labels == ["version": "2", "team": "edge", "caisson.update": "u1"])
        let raw = try client.inspectContainer(newID)
        #expect(raw.config.env.contains("A=new"))
        #expect(!raw.config.env.contains("A=old"))
        #expect(raw.config.env.contains("OP=1"))
        #expect(raw.config.cmd?.last?.hasPrefix("test -f") == true)
        #expect(raw.restartPolicy == "no")
        let oldVolume = try client.inspectContainer(backup).raw["Mounts"]?[0]?["Name"]
        #expect(oldVolume != nil)
        #expect(raw.raw["Mounts"]?[0]?["Name"] == oldVolume)

        // Missing things: nil / success, as the protocol says.
        try host.removeContainer(backup)
        try host.removeContainer(backup)
        #expect(try host.inspectContainer(backup) == nil)
        let missingStop = #expect(throws: HostError.self) { try host.stopContainer(backup, graceSecs: 1) }
        #expect(missingStop?.kind == .notFound)
        let missingTemplate = #expect(throws: HostError.self) {
            try host.createContainer(name: staging, cloning: backup, imageID: v2.id, labels: [:])
        }
        #expect(missingTemplate?.kind == .notFound)
    }

    @Test func cloneKeepsEveryNetworkAndItsAliases() throws {
        let run = RealDocker.runID
        let image = try RealDocker.makeImage("net", [#"CMD ["/bin/busybox", "sleep", "600"]"#])
        let netA = "caisson-net-a-\(run)", netB = "caisson-net-b-\(run)"
        let name = "caisson-host-net-\(run)", clone = "\(name)-clone"
        defer {
            for container in [name, clone] { try? host.removeContainer(container) }
            for network in [netA, netB] { try? client.removeNetwork(network) }
            _ = try? client.removeImage(image.reference, force: true)
        }
        _ = try client.createNetwork(netA, labels: ["org.caisson.test": run])
        _ = try client.createNetwork(netB)
        let created = try client.createContainer(name: name, body: [
            "Image": .string(image.reference),
            "HostConfig": ["NetworkMode": .string(netA)],
            "NetworkingConfig": ["EndpointsConfig": [.init(stringLiteral: netA): ["Aliases": ["frontend-alias"]]]]])
        try client.connectNetwork(netB, container: created.id, endpointConfig: ["Aliases": ["backend-alias"]])

        let cloneID = try host.createContainer(name: clone, cloning: name, imageID: image.id, labels: [:])
        let inspected = try client.inspectContainer(cloneID)
        #expect(inspected.networks.map(\.name) == [netA, netB].sorted())
        #expect(inspected.networks.first { $0.name == netA }?.aliases.contains("frontend-alias") == true)
        #expect(inspected.networks.first { $0.name == netB }?.aliases.contains("backend-alias") == true)
        #expect(inspected.hostConfig["NetworkMode"] == .string(netA))
        // The template's automatic short-id alias is not carried over.
        let all = inspected.networks.flatMap(\.aliases)
        #expect(!all.contains(String(created.id.prefix(12))))
        try host.startContainer(cloneID)
        #expect(try host.inspectContainer(cloneID)?.status == .running)
    }

    @Test func loadFromAFileRangeTagAndRemove() throws {
        let image = try RealDocker.makeImage("load", ["LABEL purpose=load", #"CMD ["/bin/busybox", "true"]"#])
        defer { _ = try? client.removeImage(image.reference, force: true) }
        // A "package": garbage, then the docker save archive, then more garbage.
        let file = TemporaryFile("package.bin")
        #expect(FileManager.default.createFile(atPath: file.path, contents: Data(repeating: 0x5A, count: 1234)))
        let handle = try #require(FileHandle(forWritingAtPath: file.path))
        try handle.seekToEnd()
        var length: Int64 = 0
        try client.saveImages([image.reference]) { chunk in
            handle.write(Data(chunk))
            length += Int64(chunk.count)
        }
        handle.write(Data(repeating: 0xA5, count: 999))
        try handle.close()
        try host.removeImage(image.reference)
        #expect(try host.inspectImage(image.reference) == nil)

        var progress: [Int64] = []
        let payload = ImagePayload(path: file.path, offset: 1234, length: length, reference: image.reference,
                                   expectedImageID: image.id, config: ImageConfig(labels: ["purpose": "load"]))
        let loaded = try host.loadImage(payload) { progress.append($0) }
        #expect(loaded.id == image.id)
        #expect(loaded.repoTags == [image.reference])
        #expect(loaded.config.labels == ["purpose": "load"])
        #expect(loaded.config.os == "linux")
        #expect(loaded.config.hasHealthcheck == false)
        #expect(progress.last == length)
        #expect(progress == progress.sorted())

        // Tag moves; removing a tag keeps the image while another tag holds it.
        let pin = "caisson-test/host:pin-\(RealDocker.runID)"
        try host.tagImage(image.id, as: pin)
        #expect(try host.inspectImage(pin)?.id == image.id)
        try host.removeImage(pin)
        try host.removeImage(pin)  // not found: success
        #expect(try host.inspectImage(image.reference)?.id == image.id)

        // A range that is not an image archive fails definitely, and changes nothing.
        let garbage = ImagePayload(path: file.path, offset: 0, length: 1234, reference: "caisson-test/host:none",
                                   expectedImageID: "sha256:0", config: ImageConfig())
        let error = #expect(throws: HostError.self) { try host.loadImage(garbage) { _ in } }
        #expect(error?.kind == .failed)
    }

    @Test(.enabled(if: RealDocker.composeAvailable))
    func composeApplyRecreatesOnTheNewImage() throws {
        let run = RealDocker.runID
        let v1 = try RealDocker.makeImage("c1", ["LABEL version=1", #"CMD ["/bin/busybox", "sleep", "600"]"#])
        let v2 = try RealDocker.makeImage("c2", ["LABEL version=2", #"CMD ["/bin/busybox", "sleep", "600"]"#])
        let directory = NSTemporaryDirectory() + "caisson-compose-test-\(run)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = directory + "/compose.yaml"
        try """
        services:
          web:
            image: \(v1.reference)
            network_mode: none
            stop_grace_period: 1s
        """.write(toFile: file, atomically: true, encoding: .utf8)
        let target = ComposeTarget(project: "caissontest\(run)", file: file, service: "web")
        let composeHost = host
        composeHost.compose.timeout = .seconds(120)
        defer {
            for container in (try? composeHost.composeContainers(target)) ?? [] { try? composeHost.removeContainer(container.id) }
            for image in [v1.reference, v2.reference] { _ = try? client.removeImage(image, force: true) }
            try? FileManager.default.removeItem(atPath: directory)
        }

        try composeHost.composeApply(target, imageReference: v1.reference)
        var members = try composeHost.composeContainers(target)
        #expect(members.count == 1)
        #expect(members.first?.imageID == v1.id)
        #expect(members.first?.status == .running)

        try composeHost.composeApply(target, imageReference: v2.reference)
        members = try composeHost.composeContainers(target)
        #expect(members.count == 1)
        #expect(members.first?.imageID == v2.id)
        #expect(members.first?.status == .running)
        #expect(members.first?.labels["version"] == "2")

        // Never pulls: an image that is not here fails definitely.
        let missing = #expect(throws: HostError.self) {
            try composeHost.composeApply(target, imageReference: "caisson-test/host:not-loaded-\(run)")
        }
        #expect(missing?.kind == .failed)
        let missingFile = #expect(throws: HostError.self) {
            try composeHost.composeApply(ComposeTarget(project: target.project, file: directory + "/nope.yaml", service: "web"),
                                         imageReference: v1.reference)
        }
        #expect(missingFile?.kind == .failed)
    }
}
