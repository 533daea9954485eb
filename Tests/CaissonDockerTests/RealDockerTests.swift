import Foundation
import Testing
@testable import CaissonDocker

/// Against a real dockerd (enabled only when one answers at DOCKER_HOST; see `RealDocker`).
/// Builds its own FROM-scratch busybox image with `docker import`, so no registry is needed.
@Suite("Real Docker daemon", .serialized, .enabled(if: RealDocker.available))
struct RealDockerTests {
    let client = RealDocker.client!
    let repo = "caisson-test/client"
    var tag: String { "run\(RealDocker.runID)" }
    var reference: String { "\(repo):\(tag)" }
    var container: String { "caisson-client-test-\(RealDocker.runID)" }

    @Test func pingVersionInfo() throws {
        let ping = try client.ping()
        let api = try client.apiVersion()
        #expect(api >= DockerAPIVersion.minimumSupported)
        #expect(api <= DockerAPIVersion.maximumKnown)
        #expect(ping.apiVersion.flatMap(DockerAPIVersion.init) ?? api >= api)
        let version = try client.version()
        #expect(version.apiVersion != nil)
        let info = try client.info()
        #expect(info.dockerRootDir?.hasPrefix("/") == true)
        #expect(info.osType == "linux")
    }

    @Test(.enabled(if: RealDocker.busybox != nil))
    func imageImportSaveLoadInspectTagRemove() throws {
        // Build: docker import of a busybox rootfs.
        let marker = "marker-\(RealDocker.runID)"
        let imported = try client.importImage(rootfs: .bytes(RealDocker.rootfs(extraFile: ("etc/marker", Array(marker.utf8)))),
                                              repository: repo, tag: tag,
                                              changes: ["CMD [\"/bin/busybox\", \"sleep\", \"600\"]", "LABEL org.caisson.test=client",
                                                        "ENV GREETING=hello", "WORKDIR /tmp", "EXPOSE 8080/tcp"])
        #expect(imported.hasPrefix("sha256:"))

        // docker save to a file, then drop the image so the load is real.
        let saved = TemporaryFile("save.tar")
        #expect(FileManager.default.createFile(atPath: saved.path, contents: nil))
        let handle = try #require(FileHandle(forWritingAtPath: saved.path))
        try client.saveImages([reference]) { chunk in handle.write(Data(chunk)) }
        try handle.close()
        let size = try #require(try FileManager.default.attributesOfItem(atPath: saved.path)[.size] as? Int)
        #expect(size > 1_000_000)
        let removed = try client.removeImage(reference)
        #expect(removed.contains { $0.untagged == reference })
        #expect(try client.inspectImageIfPresent(reference) == nil)

        // Load it back, streamed from the file with chunked encoding, with progress.
        var sent: UInt64 = 0
        var messages: [DockerStreamMessage] = []
        let result = try client.loadImage(try .fileRange(path: saved.path, offset: 0, length: UInt64(size)),
                                          uploadProgress: { sent = $0 }, onMessage: { messages.append($0) })
        #expect(result.loadedReferences == [reference])
        #expect(sent == UInt64(size))
        #expect(!messages.isEmpty)

        let image = try client.inspectImage(reference)
        #expect(image.id == imported)
        #expect(image.repoTags == [reference])
        #expect(image.os == "linux")
        #expect(image.architecture == "amd64")
        #expect(image.config.cmd == ["/bin/busybox", "sleep", "600"])
        #expect(image.config.labels["org.caisson.test"] == "client")
        #expect(image.config.env.contains("GREETING=hello"))
        #expect(image.config.workingDir == "/tmp")
        #expect(image.config.exposedPorts == ["8080/tcp"])

        // Tag, inspect by the new tag, untag.
        let other = "\(repo):other\(RealDocker.runID)"
        try client.tagImage(image.id, as: other)
        #expect(try client.inspectImage(other).id == image.id)
        #expect(Set(try client.inspectImage(image.id).repoTags) == [reference, other])
        let untagged = try client.removeImage(other)
        #expect(untagged == [ImageDeleteItem(untagged: other, deleted: nil)])
        #expect(try client.inspectImage(reference).repoTags == [reference])

        // Loading the same file again: the daemon re-applies the tag, same id.
        let again = try client.loadImage(try .fileRange(path: saved.path, offset: 0, length: UInt64(size), chunked: false))
        #expect(again.loadedReferences == [reference])

        // A producer that vetoes at its very end (e.g. a digest mismatch found at EOF): the last
        // piece is withheld, so the daemon never gets a complete upload, even when that piece is
        // nothing but the tar's end-of-archive zero blocks (1 KiB pieces here).
        try client.removeImage(reference)
        let reader = try FileRangeReader(path: saved.path, offset: 0, length: UInt64(size))
        let http = UnixSocketHTTPClient(socketPath: client.socketPath, uploadChunkSize: 1024)
        let vetoed = #expect(throws: ProducerFailure.self) {
            try http.execute(HTTPRequest(method: "POST", target: "/v\(try client.apiVersion())/images/load?quiet=0",
                                         body: .stream(contentType: "application/x-tar") { buffer in
                let n = try reader.read(into: buffer)
                if n == 0 { throw ProducerFailure() }
                return n
            }), timeouts: DockerTimeouts(connect: .seconds(5), call: .seconds(60)))
        }
        #expect(vetoed != nil)
        // Give the daemon a moment to finish (or abort) whatever it received, then check.
        for _ in 0..<20 where try client.inspectImageIfPresent(reference) == nil { usleep(50_000) }
        #expect(try client.inspectImageIfPresent(reference) == nil, "a vetoed upload must not load the image")

        let missing = #expect(throws: DockerError.self) { try client.inspectImage(reference) }
        #expect(missing?.isNotFound == true)
        let missingRemove = #expect(throws: DockerError.self) { try client.removeImage(reference) }
        #expect(missingRemove?.isNotFound == true)
    }

    @Test func loadOfGarbageFailsDefinitely() throws {
        var tar = TestTar()
        tar.file("manifest.json", Array("[{\"Config\":\"missing.json\",\"RepoTags\":[\"caisson-test/garbage:1\"],\"Layers\":[]}]".utf8), mode: 0o644)
        let error = #expect(throws: DockerError.self) { try client.loadImage(.bytes(tar.archive)) }
        #expect(error?.isIndeterminate == false)
        #expect(error?.kind == .streamError || error?.httpStatus != nil)
        let notTar = #expect(throws: DockerError.self) { try client.loadImage(.bytes(Array(repeating: 7, count: 4096))) }
        #expect(notTar?.isIndeterminate == false)
    }

    @Test(.enabled(if: RealDocker.busybox != nil))
    func containerLifecycle() throws {
        _ = try client.importImage(rootfs: .bytes(RealDocker.rootfs()), repository: repo, tag: tag + "-c",
                                   changes: ["CMD [\"/bin/busybox\", \"sleep\", \"600\"]"])
        let image = "\(repo):\(tag)-c"
        defer {
            for name in [container, container + "-renamed", container + "-2"] { try? client.removeContainer(name, force: true) }
            _ = try? client.removeImage(image, force: true)
        }
        for name in [container, container + "-renamed", container + "-2"] { try? client.removeContainer(name, force: true) }

        let body: JSONValue = ["Image": .string(image), "Labels": ["org.caisson.test": .string(RealDocker.runID)],
                               "Env": ["A=1"], "HostConfig": ["RestartPolicy": ["Name": "no"], "NetworkMode": "none"]]
        let created = try client.createContainer(name: container, body: body)
        #expect(!created.id.isEmpty)

        // Name conflict is a clear, definite 409.
        let conflict = #expect(throws: DockerError.self) { try client.createContainer(name: container, body: body) }
        #expect(conflict?.isConflict == true)
        #expect(conflict?.isIndeterminate == false)

        // Unknown image is a 404 naming the image.
        let noImage = #expect(throws: DockerError.self) {
            try client.createContainer(name: container + "-2", body: ["Image": "caisson-test/none:missing"])
        }
        #expect(noImage?.isNotFound == true)
        #expect(noImage?.message.contains("caisson-test/none:missing") == true)

        var inspect = try client.inspectContainer(container)
        #expect(inspect.id == created.id)
        #expect(inspect.name == container)
        #expect(inspect.state.status == "created")
        #expect(inspect.config.image == image)
        #expect(inspect.config.env.contains("A=1"))
        #expect(inspect.restartPolicy == "no")

        #expect(try client.startContainer(container) == true)
        #expect(try client.startContainer(container) == false)  // 304: already running
        inspect = try client.inspectContainer(container)
        #expect(inspect.state.running)
        #expect(inspect.state.startedAt?.hasPrefix("20") == true)

        let byName = try client.listContainers(filters: ContainerListFilters(names: [container]))
        #expect(byName.map(\.id) == [created.id])
        let byLabel = try client.listContainers(filters: ContainerListFilters(labels: ["org.caisson.test=\(RealDocker.runID)"]))
        #expect(byLabel.map(\.id) == [created.id])
        #expect(try client.listContainers(filters: ContainerListFilters(names: [container + "-nothing"])).isEmpty)

        // Removing a running container without force is a conflict.
        let running = #expect(throws: DockerError.self) { try client.removeContainer(container) }
        #expect(running?.isConflict == true)

        #expect(try client.stopContainer(container, graceSeconds: 1) == true)
        #expect(try client.stopContainer(container, graceSeconds: 1) == false)  // 304: already stopped
        #expect(try client.inspectContainer(container).state.running == false)

        try client.renameContainer(container, to: container + "-renamed")
        let old = #expect(throws: DockerError.self) { try client.inspectContainer(container) }
        #expect(old?.isNotFound == true)
        #expect(try client.inspectContainer(container + "-renamed").id == created.id)

        // Rename onto a taken name is a conflict.
        _ = try client.createContainer(name: container, body: body)
        let taken = #expect(throws: DockerError.self) { try client.renameContainer(container + "-renamed", to: container) }
        #expect(taken?.isConflict == true)

        // kill + wait: busybox sleep as PID 1 dies by SIGKILL, exit 137.
        #expect(try client.startContainer(container) == true)
        try client.killContainer(container)
        #expect(try client.waitContainer(container, timeout: .seconds(30)).statusCode == 137)
        let notRunning = #expect(throws: DockerError.self) { try client.killContainer(container) }
        #expect(notRunning?.isConflict == true)

        try client.removeContainer(container + "-renamed", force: true)
        try client.removeContainer(container, removeVolumes: true)
        let gone = #expect(throws: DockerError.self) { try client.removeContainer(container) }
        #expect(gone?.isNotFound == true)
        let stopGone = #expect(throws: DockerError.self) { try client.stopContainer(container) }
        #expect(stopGone?.isNotFound == true)
    }
}
