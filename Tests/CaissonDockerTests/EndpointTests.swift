import Foundation
import Testing
@testable import CaissonDocker

/// A stub daemon that routes by method and path (after the /v1.xx prefix).
func routedServer(_ routes: @escaping @Sendable (_ method: String, _ path: String, _ request: Stub.Request) -> [UInt8]) throws -> Stub {
    try Stub { request in
        var path = request.path
        if path.hasPrefix("/v1."), let slash = path.dropFirst().firstIndex(of: "/") { path = String(path[slash...]) }
        return [.readBody, .send(routes(request.method, path, request))]
    }
}

@Suite("Typed endpoints against a stub daemon", .serialized)
struct EndpointTests {
    @Test func negotiationCapsANewDaemon() throws {
        let server = try routedServer { _, path, _ in
            path == "/_ping" ? Stub.ping("1.51") : Stub.json(200, #"{"DockerRootDir":"/data/docker"}"#)
        }
        defer { server.stop() }
        let client = server.client(apiVersion: nil)
        #expect(try client.info().dockerRootDir == "/data/docker")
        #expect(try client.apiVersion() == DockerAPIVersion(1, 47))
        #expect(server.requests.map(\.path) == ["/_ping", "/v1.47/info"])  // negotiated once
    }

    @Test func negotiationUsesAnOlderSupportedDaemonsVersion() throws {
        let server = try routedServer { _, path, _ in path == "/_ping" ? Stub.ping("1.43") : Stub.json(200, "{}") }
        defer { server.stop() }
        let client = server.client(apiVersion: nil)
        _ = try client.info()
        #expect(server.requests.last?.path == "/v1.43/info")
    }

    @Test func negotiationRefusesAnOldDaemon() throws {
        let server = try routedServer { _, _, _ in Stub.ping("1.40") }
        defer { server.stop() }
        let error = #expect(throws: DockerError.self) { try server.client(apiVersion: nil).inspectContainer("x") }
        #expect(error?.kind == .apiVersionUnsupported)
        #expect(error?.message.contains("1.40") == true)
        #expect(error?.message.contains("1.41 (Docker Engine 20.10)") == true)
        #expect(server.requests.count == 1)  // nothing versioned was sent
    }

    @Test func negotiationFallsBackToVersionEndpoint() throws {
        let server = try routedServer { _, path, _ in
            switch path {
            case "/_ping": return Stub.ping(nil)
            case "/version": return Stub.json(200, #"{"ApiVersion":"1.44","Version":"25.0.0","MinAPIVersion":"1.24"}"#)
            default: return Stub.json(200, "[]")
            }
        }
        defer { server.stop() }
        let client = server.client(apiVersion: nil)
        #expect(try client.listContainers().isEmpty)
        #expect(server.requests.map(\.path) == ["/_ping", "/version", "/v1.44/containers/json"])
        let version = try client.version()
        #expect(version.version == "25.0.0")
        #expect(version.minAPIVersion == "1.24")
    }

    @Test func pingReadsHeaders() throws {
        let server = try routedServer { _, _, _ in Stub.ping("1.41") }
        defer { server.stop() }
        let ping = try server.client().ping()
        #expect(ping.apiVersion == "1.41")
        #expect(ping.osType == "linux")
        #expect(ping.experimental == false)
    }

    @Test func containerLifecycleStatuses() throws {
        let server = try routedServer { method, path, request in
            switch (method, path) {
            case ("POST", "/containers/a/start"): return Stub.response(204)
            case ("POST", "/containers/b/start"): return Stub.response(304, reason: "Not Modified")
            case ("POST", "/containers/a/stop"): return Stub.response(204)
            case ("POST", "/containers/b/stop"): return Stub.response(304, reason: "Not Modified")
            case ("POST", "/containers/a/rename"): return Stub.response(204)
            case ("DELETE", "/containers/a"): return Stub.response(204)
            case ("POST", "/containers/a/kill"): return Stub.response(204)
            case ("POST", "/containers/a/wait"): return Stub.json(200, #"{"StatusCode":137,"Error":null}"#)
            default: return Stub.json(404, #"{"message":"No such container: \#(path)"}"#)
            }
        }
        defer { server.stop() }
        let client = server.client()
        #expect(try client.startContainer("a") == true)
        #expect(try client.startContainer("b") == false)
        #expect(try client.stopContainer("a", graceSeconds: 3) == true)
        #expect(try client.stopContainer("b") == false)
        try client.renameContainer("a", to: "a-caisson-rollback-0123abcd")
        try client.removeContainer("a", force: true, removeVolumes: false)
        try client.killContainer("a")
        #expect(try client.waitContainer("a").statusCode == 137)
        let targets = server.requests.map(\.target)
        #expect(targets.contains("/v1.41/containers/a/stop?t=3"))
        #expect(targets.contains("/v1.41/containers/a/rename?name=a-caisson-rollback-0123abcd"))
        #expect(targets.contains("/v1.41/containers/a?force=1&v=0"))
        #expect(targets.contains("/v1.41/containers/a/kill?signal=SIGKILL"))
        #expect(targets.contains("/v1.41/containers/a/wait?condition=not-running"))
        #expect(server.requests.first { $0.path.hasSuffix("/start") }?.header("Content-Length") == "0")
    }

    @Test func notFoundAndConflictAreClear() throws {
        let server = try routedServer { method, path, _ in
            switch (method, path) {
            case ("GET", "/containers/ghost/json"): return Stub.json(404, #"{"message":"No such container: ghost"}"#)
            case ("POST", "/containers/create"):
                return Stub.json(409, #"{"message":"Conflict. The container name \"/frontend\" is already in use by container \"abc\"."}"#)
            case ("POST", "/containers/a/rename"): return Stub.json(409, #"{"message":"Conflict. The name is in use"}"#)
            case ("DELETE", "/images/busy:1"): return Stub.json(409, #"{"message":"conflict: unable to remove repository reference"}"#)
            case ("GET", "/images/nope:1/json"): return Stub.json(404, #"{"message":"No such image: nope:1"}"#)
            case ("POST", "/containers/a/start"): return Stub.json(500, #"{"message":"OCI runtime create failed"}"#)
            default: return Stub.response(418, reason: "Teapot", body: "short and stout")
            }
        }
        defer { server.stop() }
        let client = server.client()

        let ghost = #expect(throws: DockerError.self) { try client.inspectContainer("ghost") }
        #expect(ghost?.isNotFound == true)
        #expect(ghost?.isIndeterminate == false)
        #expect(ghost?.message == "cannot inspect container 'ghost': no such container")
        #expect(ghost?.daemonMessage == "No such container: ghost")
        #expect(try client.inspectContainerIfPresent("ghost") == nil)
        #expect(try client.inspectImageIfPresent("nope:1") == nil)

        let conflict = #expect(throws: DockerError.self) { try client.createContainer(name: "frontend", body: ["Image": "a:1"]) }
        #expect(conflict?.isConflict == true)
        #expect(conflict?.message.contains("already in use") == true)
        let renamed = #expect(throws: DockerError.self) { try client.renameContainer("a", to: "b") }
        #expect(renamed?.message == "cannot rename container 'a' to 'b': the name 'b' is already in use by another container")
        let busy = #expect(throws: DockerError.self) { try client.removeImage("busy:1") }
        #expect(busy?.isConflict == true)
        let failed = #expect(throws: DockerError.self) { try client.startContainer("a") }
        #expect(failed?.kind == .httpStatus(500))
        #expect(failed?.description.contains("OCI runtime create failed") == true)
        let teapot = #expect(throws: DockerError.self) { try client.tagImage("x:1", as: "y:2") }
        #expect(teapot?.kind == .httpStatus(418))
        #expect(teapot?.daemonMessage == "short and stout")
        #expect(throws: DockerError.self) { try client.createContainer(name: "x", body: ["not", "an object"]) }
    }

    @Test func createSendsTheCallersJSONAsIs() throws {
        let server = try routedServer { _, _, _ in Stub.json(201, #"{"Id":"c0ffee","Warnings":["low memory"]}"#) }
        defer { server.stop() }
        let body: JSONValue = ["Image": "example/frontend:1.2.3", "Env": ["A=1"],
                               "HostConfig": ["RestartPolicy": ["Name": "unless-stopped", "MaximumRetryCount": 0], "Memory": 268_435_456],
                               "Unknown": ["Future": true]]
        let result = try server.client().createContainer(name: "frontend", body: body)
        #expect(result.id == "c0ffee")
        #expect(result.warnings == ["low memory"])
        let request = try #require(server.requests.first)
        #expect(request.target == "/v1.41/containers/create?name=frontend")
        #expect(request.header("Content-Type") == "application/json")
        #expect(try JSONValue.parse(request.body) == body)
    }

    @Test func imageTagAndRemoveQueries() throws {
        let server = try routedServer { method, _, _ in
            method == "DELETE" ? Stub.json(200, #"[{"Untagged":"x:1"},{"Deleted":"sha256:aa"}]"#) : Stub.response(201, reason: "Created")
        }
        defer { server.stop() }
        let client = server.client()
        try client.tagImage("sha256:aa", as: "reg:5000/example/frontend:current")
        let removed = try client.removeImage("x:1", noPrune: true)
        #expect(removed == [ImageDeleteItem(untagged: "x:1", deleted: nil), ImageDeleteItem(untagged: nil, deleted: "sha256:aa")])
        let targets = server.requests.map(\.target)
        #expect(targets == ["/v1.41/images/sha256:aa/tag?repo=reg%3A5000%2Fexample%2Ffrontend&tag=current",
                            "/v1.41/images/x:1?force=0&noprune=1"])
    }

    @Test func containerInspectFields() throws {
        let json = """
        {"Id":"c1","Name":"/frontend","Image":"sha256:img","RestartCount":2,
         "State":{"Status":"running","Running":true,"ExitCode":0,"StartedAt":"2026-01-01T00:00:00Z",
                  "Health":{"Status":"healthy","FailingStreak":0}},
         "Config":{"Image":"example/frontend:1.2.3","Env":["A=1"],"Cmd":null,"Entrypoint":["/bin/busybox"],
                   "Labels":{"l":"v"},"ExposedPorts":{"80/tcp":{},"443/tcp":{}},"Volumes":null,
                   "Healthcheck":{"Test":["CMD-SHELL","true"],"Interval":1000000000,"Retries":3}},
         "HostConfig":{"RestartPolicy":{"Name":"always"},"Binds":["/a:/b"]},
         "NetworkSettings":{"Networks":{"zeta":{"NetworkID":"n2"},"alpha":{"NetworkID":"n1","IPAddress":"10.0.0.2","Aliases":["fe"]}}}}
        """
        let server = try routedServer { _, _, _ in Stub.json(200, json) }
        defer { server.stop() }
        let container = try server.client().inspectContainer("frontend")
        #expect(container.id == "c1")
        #expect(container.name == "frontend")
        #expect(container.image == "sha256:img")
        #expect(container.restartCount == 2)
        #expect(container.state.running)
        #expect(container.state.status == "running")
        #expect(container.state.healthStatus == "healthy")
        #expect(container.state.startedAt == "2026-01-01T00:00:00Z")
        #expect(container.config.image == "example/frontend:1.2.3")
        #expect(container.config.cmd == nil)
        #expect(container.config.entrypoint == ["/bin/busybox"])
        #expect(container.config.exposedPorts == ["443/tcp", "80/tcp"])
        #expect(container.config.volumes == [])
        #expect(container.config.healthcheck?.test == ["CMD-SHELL", "true"])
        #expect(container.config.healthcheck?.retries == 3)
        #expect(container.restartPolicy == "always")
        #expect(container.hostConfig["Binds"] == ["/a:/b"])
        #expect(container.networks.map(\.name) == ["alpha", "zeta"])
        #expect(container.networks.first?.aliases == ["fe"])
        #expect(container.raw["Config"]?["Labels"]?["l"] == "v")
    }

    @Test func loadParsesProgressAndLoadedLines() throws {
        let server = try Stub { _ in
            [.readBody, .send(Stub.chunkedHead(200, headers: [("Content-Type", "application/json")])),
             .send(Stub.chunk(#"{"status":"Loading layer","progressDetail":{"current":32768,"total":65536},"progress":"[==>  ]","id":"abc"}"# + "\r\n")),
             .send(Stub.chunk(#"{"stream":"Loaded ima"#)),  // a message split across chunks
             .send(Stub.chunk(#"ge: example/frontend:1.2.3\n"}"# + "\r\n" + #"{"stream":"Loaded image ID: sha256:feed\n"}"# + "\r\n")),
             .send(Stub.lastChunk)]
        }
        defer { server.stop() }
        var messages: [DockerStreamMessage] = []
        var sent: UInt64 = 0
        let result = try server.client().loadImage(.bytes(pattern(1000)), uploadProgress: { sent = $0 },
                                                   onMessage: { messages.append($0) })
        #expect(result.loadedReferences == ["example/frontend:1.2.3"])
        #expect(result.loadedImageIDs == ["sha256:feed"])
        #expect(result.streamLines == ["Loaded image: example/frontend:1.2.3", "Loaded image ID: sha256:feed"])
        #expect(messages.count == 3)
        #expect(messages[0].current == 32768)
        #expect(messages[0].id == "abc")
        #expect(sent == 1000)
        let request = try #require(server.requests.first)
        #expect(request.target == "/v1.41/images/load?quiet=0")
        #expect(request.header("Content-Type") == "application/x-tar")
        #expect(request.body == pattern(1000))
    }

    @Test func loadErrorInsideA200StreamFails() throws {
        let server = try Stub { _ in
            [.readBody, .send(Stub.chunkedHead()),
             .send(Stub.chunk(#"{"status":"Loading layer","progressDetail":{"current":1,"total":2}}"# + "\r\n")),
             .send(Stub.chunk(#"{"errorDetail":{"message":"open /var/lib/docker/tmp/x: no space left on device"},"error":"open /var/lib/docker/tmp/x: no space left on device"}"# + "\r\n")),
             .send(Stub.lastChunk)]
        }
        defer { server.stop() }
        let error = #expect(throws: DockerError.self) { try server.client().loadImage(.bytes(pattern(10))) }
        #expect(error?.kind == .streamError)
        #expect(error?.isIndeterminate == false)
        #expect(error?.daemonMessage == "open /var/lib/docker/tmp/x: no space left on device")
        #expect(error?.message.hasPrefix("docker load failed: ") == true)
    }

    @Test func loadWithAnErrorStatus() throws {
        let server = try Stub { _ in [.readBody, .send(Stub.json(500, #"{"message":"unexpected EOF"}"#))] }
        defer { server.stop() }
        let error = #expect(throws: DockerError.self) { try server.client().loadImage(.bytes(pattern(10))) }
        #expect(error?.kind == .httpStatus(500))
        #expect(error?.daemonMessage == "unexpected EOF")
    }

    @Test func loadStreamClosedEarlyIsIndeterminate() throws {
        let server = try Stub { _ in
            [.readBody, .send(Stub.chunkedHead()), .send(Stub.chunk(#"{"status":"Loading layer"}"# + "\r\n")), .close]
        }
        defer { server.stop() }
        let error = #expect(throws: DockerError.self) { try server.client().loadImage(.bytes(pattern(10))) }
        #expect(error?.kind == .connectionLost(indeterminate: true))
    }

    @Test func importAndSave() throws {
        let server = try routedServer { _, path, _ in
            if path == "/images/create" {
                return Stub.json(200, #"{"status":"sha256:1234"}"# + "\r\n")
            }
            return Stub.response(200, headers: [("Content-Type", "application/x-tar")], body: "TARBYTES")
        }
        defer { server.stop() }
        let client = server.client()
        let id = try client.importImage(rootfs: .bytes(pattern(100)), repository: "caisson-test/x", tag: "1",
                                        changes: ["CMD [\"/bin/sh\"]"])
        #expect(id == "sha256:1234")
        var saved: [UInt8] = []
        try client.saveImages(["caisson-test/x:1"]) { saved.append(contentsOf: $0) }
        #expect(String(decoding: saved, as: UTF8.self) == "TARBYTES")
        #expect(server.requests[0].target == "/v1.41/images/create?fromSrc=-&repo=caisson-test%2Fx&tag=1&changes=CMD%20%5B%22%2Fbin%2Fsh%22%5D")
        #expect(server.requests[1].target == "/v1.41/images/get?names=caisson-test%2Fx%3A1")
    }
}
