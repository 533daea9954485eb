import CaissonCore
import Foundation
import Testing
@testable import CaissonDocker

@Suite("DockerHost: clone plan, error mapping, stubbed calls", .serialized)
struct DockerHostTests {
    static let oldImageJSON = """
    {"Id":"sha256:old","Os":"linux","Architecture":"amd64",
     "Config":{"Env":["PATH=/usr/bin:/bin","A=old"],"Cmd":["serve","--old"],"Entrypoint":["/entry"],
               "WorkingDir":"/srv","User":"app","StopSignal":"SIGQUIT",
               "Labels":{"version":"1","vendor":"acme"},"ExposedPorts":{"80/tcp":{},"9000/tcp":{}},
               "Volumes":{"/data":{}},"Healthcheck":{"Test":["CMD","/health"],"Interval":1000000000}}}
    """

    static func template(config: String, hostConfig: String = #"{"RestartPolicy":{"Name":"unless-stopped"},"PortBindings":{"80/tcp":[{"HostPort":"8080"}]},"Binds":["/srv/conf:/etc/app:ro"],"NetworkMode":"appnet"}"#,
                         mounts: String = #"[{"Type":"volume","Name":"\#(String(repeating: "ab", count: 32))","Destination":"/data","RW":true},{"Type":"bind","Source":"/srv/conf","Destination":"/etc/app","RW":false},{"Type":"volume","Name":"named","Destination":"/named","RW":true}]"#,
                         networks: String = #"{"appnet":{"NetworkID":"n1","Aliases":["frontend","0123456789ab"],"IPAMConfig":{"IPv4Address":"172.30.0.10"},"MacAddress":"02:42:ac:1e:00:0a"},"backnet":{"NetworkID":"n2","Aliases":null}}"#) throws -> ContainerInspect {
        let json = """
        {"Id":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","Name":"/frontend","Image":"sha256:old",
         "State":{"Status":"running","Running":true},"Config":\(config),"HostConfig":\(hostConfig),"Mounts":\(mounts),
         "NetworkSettings":{"Networks":\(networks)}}
        """
        return try #require(ContainerInspect(json: try JSONValue.parse(json)))
    }

    @Test func cloneDropsOldImageDefaultsAndKeepsOperatorSettings() throws {
        let old = try #require(ImageInspect(json: try JSONValue.parse(Self.oldImageJSON)))
        let template = try Self.template(config: """
        {"Hostname":"0123456789ab","Image":"example/frontend:1","Env":["PATH=/usr/bin:/bin","A=old","OPERATOR=1","A2=x"],
         "Cmd":["serve","--old"],"Entrypoint":["/entry"],"WorkingDir":"/srv","User":"app","StopSignal":"SIGQUIT","StopTimeout":20,
         "Labels":{"version":"1","vendor":"operator-override","team":"edge"},"ExposedPorts":{"80/tcp":{},"9000/tcp":{},"7000/tcp":{}},
         "Volumes":{"/data":{},"/cache":{}},"Healthcheck":{"Test":["CMD","/health"],"Interval":1000000000},"Tty":false,"OnBuild":null}
        """)
        let plan = ContainerClonePlan.make(template: template, oldImage: old, image: "sha256:new", labels: ["caisson.update": "u1"])
        let body = plan.body
        #expect(plan.copiedImageDefaults == false)
        #expect(body["Image"] == "sha256:new")
        #expect(body["Hostname"] == nil)                       // auto hostname dropped
        #expect(body["Env"] == ["OPERATOR=1", "A2=x"])         // image env left to the new image
        #expect(body["Cmd"] == nil)
        #expect(body["Entrypoint"] == nil)
        #expect(body["WorkingDir"] == nil)
        #expect(body["User"] == nil)
        #expect(body["StopSignal"] == nil)
        #expect(body["StopTimeout"] == 20)
        #expect(body["Healthcheck"] == nil)
        #expect(body["OnBuild"] == nil)
        #expect(body["Tty"] == false)
        #expect(body["Labels"] == ["vendor": "operator-override", "team": "edge", "caisson.update": "u1"])
        #expect(body["ExposedPorts"] == ["80/tcp": [:], "7000/tcp": [:]])  // 80 stays: it is published
        #expect(body["Volumes"] == ["/cache": [:]])
        let hostConfig = try #require(body["HostConfig"])
        #expect(hostConfig["RestartPolicy"]?["Name"] == "unless-stopped")
        #expect(hostConfig["Binds"] == ["/srv/conf:/etc/app:ro"])
        // The anonymous /data volume is carried over by name; the named one is not duplicated.
        #expect(hostConfig["Mounts"] == [["Type": "volume", "Source": .string(String(repeating: "ab", count: 32)), "Target": "/data"]])
        // Primary network at create, the other connected afterwards; the automatic id alias and the MAC dropped.
        #expect(body["NetworkingConfig"]?["EndpointsConfig"] == ["appnet": ["Aliases": ["frontend"], "IPAMConfig": ["IPv4Address": "172.30.0.10"]]])
        #expect(plan.extraNetworks == [ContainerClonePlan.NetworkAttachment(network: "backnet", endpointConfig: [:])])
    }

    @Test func operatorOverridesOfCommandStay() throws {
        let old = try #require(ImageInspect(json: try JSONValue.parse(Self.oldImageJSON)))
        // The operator replaced the entrypoint and (so) gave the command explicitly.
        let overridden = try Self.template(config: #"{"Image":"x","Hostname":"myhost","Entrypoint":["/bin/sh","-c"],"Cmd":["serve","--old"],"Env":null}"#)
        let plan = ContainerClonePlan.make(template: overridden, oldImage: old, image: "sha256:new", labels: [:])
        #expect(plan.body["Entrypoint"] == ["/bin/sh", "-c"])
        #expect(plan.body["Cmd"] == ["serve", "--old"])
        #expect(plan.body["Hostname"] == "myhost")
        #expect(plan.body["Env"] == [])
        // Only the command overridden: the image's entrypoint is left to the new image.
        let cmdOnly = try Self.template(config: #"{"Image":"x","Entrypoint":["/entry"],"Cmd":["serve","--debug"]}"#)
        let plan2 = ContainerClonePlan.make(template: cmdOnly, oldImage: old, image: "sha256:new", labels: [:])
        #expect(plan2.body["Entrypoint"] == nil)
        #expect(plan2.body["Cmd"] == ["serve", "--debug"])
    }

    @Test func withoutTheOldImageEverythingIsCopied() throws {
        let template = try Self.template(config: #"{"Image":"x","Env":["A=old"],"Cmd":["serve"],"Labels":{"version":"1"}}"#)
        let plan = ContainerClonePlan.make(template: template, oldImage: nil, image: "sha256:new", labels: [:])
        #expect(plan.copiedImageDefaults)
        #expect(plan.body["Env"] == ["A=old"])
        #expect(plan.body["Cmd"] == ["serve"])
    }

    @Test(arguments: ["host", "none", "container:abc"])
    func sharedNetworkModesGetNoEndpoints(mode: String) throws {
        let template = try Self.template(config: #"{"Image":"x"}"#, hostConfig: #"{"NetworkMode":"\#(mode)"}"#)
        let plan = ContainerClonePlan.make(template: template, oldImage: nil, image: "i", labels: [:])
        #expect(plan.body["NetworkingConfig"] == nil)
        #expect(plan.extraNetworks.isEmpty)
        #expect(plan.body["HostConfig"]?["NetworkMode"] == .string(mode))
    }

    @Test func defaultNetworkModeMeansBridge() throws {
        let template = try Self.template(config: #"{"Image":"x"}"#, hostConfig: #"{"NetworkMode":"default"}"#, mounts: "[]",
                                         networks: #"{"bridge":{"NetworkID":"b","Aliases":null}}"#)
        let plan = ContainerClonePlan.make(template: template, oldImage: nil, image: "i", labels: [:])
        #expect(plan.body["NetworkingConfig"]?["EndpointsConfig"] == ["bridge": [:]])
        #expect(plan.body["HostConfig"]?["Mounts"] == nil)
    }

    @Test func errorMapping() {
        func kind(_ error: DockerError) -> HostError.Kind { DockerHost.hostError(error).kind }
        #expect(kind(DockerError(.timeout(indeterminate: true), "t")) == .indeterminate)
        #expect(kind(DockerError(.connectionLost(indeterminate: true), "t")) == .indeterminate)
        #expect(kind(DockerError(.timeout(indeterminate: false), "t")) == .unreachable)
        #expect(kind(DockerError(.unreachable, "t")) == .unreachable)
        #expect(kind(DockerError(.permissionDenied, "t")) == .unreachable)
        #expect(kind(DockerError(.apiVersionUnsupported, "t")) == .unreachable)
        #expect(kind(DockerError(.httpStatus(404), "t")) == .notFound)
        #expect(kind(DockerError(.httpStatus(409), "t")) == .conflict)
        #expect(kind(DockerError(.httpStatus(500), "t")) == .failed)
        #expect(kind(DockerError(.streamError, "docker load failed", daemonMessage: "write /x: no space left on device")) == .diskFull)
        #expect(kind(DockerError(.httpStatus(500), "x", daemonMessage: "No space left on device")) == .diskFull)
        #expect(DockerHost.hostError(ProducerFailure()).kind == .failed)
        #expect(DockerHost.hostError(DockerError(.httpStatus(404), "cannot x", daemonMessage: "No such container: y")).message
                == "cannot x: No such container: y")
    }

    @Test func composeOverrideIsSafeYAML() {
        #expect(DockerHost.overrideYAML(service: "web", image: "example/web:1.2.3")
                == "# Written by caisson: pins only the image of the service being updated.\nservices:\n  \"web\":\n    image: \"example/web:1.2.3\"\n")
        #expect(DockerHost.overrideYAML(service: "a: b", image: "x\"y").contains("\"a: b\":\n    image: \"x\\\"y\""))
    }

    @Test func stubbedHostCalls() throws {
        let server = try routedServer { method, path, _ in
            switch (method, path) {
            case ("GET", "/containers/ghost/json"), ("GET", "/images/ghost:1/json"): return Stub.json(404, #"{"message":"No such object"}"#)
            case ("DELETE", "/containers/ghost"), ("DELETE", "/images/ghost:1"): return Stub.json(404, #"{"message":"No such object"}"#)
            case ("POST", "/containers/c/stop"): return Stub.response(304, reason: "Not Modified")
            case ("POST", "/containers/c/start"): return Stub.response(304, reason: "Not Modified")
            case ("POST", "/containers/c/rename"): return Stub.json(409, #"{"message":"name in use"}"#)
            case ("GET", "/containers/c/json"):
                return Stub.json(200, #"{"Id":"c","Name":"/c","Image":"sha256:i","RestartCount":3,"State":{"Status":"restarting","Running":true,"ExitCode":2,"StartedAt":"T","Health":{"Status":"unhealthy"}},"Config":{"Image":"ex:1","Labels":{"k":"v"}}}"#)
            case ("GET", "/images/ex:1/json"):
                return Stub.json(200, #"{"Id":"sha256:i","RepoTags":["b:1","a:1"],"Os":"linux","Architecture":"arm64","Variant":"v8","Config":{"Labels":{"k":"v"},"Healthcheck":{"Test":["NONE"]}}}"#)
            case ("GET", "/version"): return Stub.json(200, #"{"Version":"20.10.24","ApiVersion":"1.41"}"#)
            default: return Stub.json(500, #"{"message":"unexpected \#(method) \#(path)"}"#)
            }
        }
        defer { server.stop() }
        let host = DockerHost(client: server.client())
        #expect(try host.ping() == "Docker 20.10.24, API 1.41")
        #expect(try host.inspectContainer("ghost") == nil)
        #expect(try host.inspectImage("ghost:1") == nil)
        try host.removeContainer("ghost")   // not found is success
        try host.removeImage("ghost:1")
        try host.stopContainer("c", graceSecs: 5)   // already stopped is success
        try host.startContainer("c")
        #expect(throws: HostError(.conflict, "cannot rename container 'c' to 'd': the name 'd' is already in use by another container: name in use")) {
            try host.renameContainer("c", to: "d")
        }
        let info = try #require(try host.inspectContainer("c"))
        #expect(info == ContainerInfo(id: "c", name: "c", imageID: "sha256:i", imageReference: "ex:1", status: .restarting,
                                      health: .unhealthy, restartCount: 3, startedAt: "T", exitCode: 2, labels: ["k": "v"]))
        let image = try #require(try host.inspectImage("ex:1"))
        #expect(image == ImageInfo(id: "sha256:i", repoTags: ["a:1", "b:1"],
                                   config: ImageConfig(os: "linux", architecture: "arm64", variant: "v8", labels: ["k": "v"], hasHealthcheck: false)))
        #expect(server.requests.contains { $0.target == "/v1.41/containers/c/stop?t=5" })
    }

    @Test func stubbedLoadDiskFullAndIndeterminate() throws {
        let path = NSTemporaryDirectory() + "cdt-host-\(getpid())"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(pattern(5000))))
        defer { unlink(path) }
        let payload = ImagePayload(path: path, offset: 100, length: 4000, reference: "ex:1", expectedImageID: "sha256:i",
                                   config: ImageConfig())
        let full = try Stub { request in
            request.path.hasSuffix("/info") ? [.send(Stub.json(200, #"{"DockerRootDir":"/nonexistent-root"}"#))]
                : [.readBody, .send(Stub.chunkedHead()),
                   .send(Stub.chunk(#"{"errorDetail":{"message":"write /var/lib/docker/tmp/x: no space left on device"},"error":"x"}"# + "\n")),
                   .send(Stub.lastChunk)]
        }
        defer { full.stop() }
        let error = #expect(throws: HostError.self) { try DockerHost(client: full.client()).loadImage(payload) { _ in } }
        #expect(error?.kind == .diskFull)
        #expect(full.requests.last?.body == Array(pattern(5000)[100..<4100]))

        let stalls = try Stub { request in
            request.path.hasSuffix("/info") ? [.send(Stub.json(200, "{}"))] : [.readBody, .stall]
        }
        defer { stalls.stop() }
        let client = stalls.client(loadTimeouts: DockerTimeouts(connect: .seconds(2), call: .milliseconds(300)))
        var progress: [Int64] = []
        let stalled = #expect(throws: HostError.self) { try DockerHost(client: client).loadImage(payload) { progress.append($0) } }
        #expect(stalled?.kind == .indeterminate)
        #expect(progress.last == 4000)

        // Not enough room under DockerRootDir: refused before anything is sent.
        let tight = try Stub { _ in [.send(Stub.json(200, #"{"DockerRootDir":"/"}"#))] }
        defer { tight.stop() }
        let huge = ImagePayload(path: path, offset: 0, length: Int64.max / 2, reference: "ex:1", expectedImageID: "sha256:i", config: ImageConfig())
        let refused = #expect(throws: HostError.self) { try DockerHost(client: tight.client()).loadImage(huge) { _ in } }
        #expect(refused?.kind == .diskFull)
        #expect(tight.requests.map(\.path) == ["/v1.41/info"])
    }
}

/// A Core byte source over memory, for the adapter test.
struct MemorySource: ByteSource {
    var bytes: [UInt8]
    var offset = 0
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = min(buffer.count, bytes.count - offset, 777)
        guard n > 0 else { return 0 }
        buffer.copyBytes(from: bytes[offset..<(offset + n)])
        offset += n
        return n
    }
}

@Test func byteSourceBodyStreams() throws {
    let server = try Stub { _ in [.readBody, .send(Stub.response(204))] }
    defer { server.stop() }
    let data = pattern(50_000)
    let http = UnixSocketHTTPClient(socketPath: server.socketPath)
    _ = try http.execute(HTTPRequest(method: "POST", target: "/x", body: .source(MemorySource(bytes: data))))
    _ = try http.execute(HTTPRequest(method: "POST", target: "/x", body: .source(MemorySource(bytes: data), length: 50_000)))
    #expect(server.requests.map(\.body) == [data, data])
    #expect(server.requests.map { $0.header("Content-Type") } == ["application/x-tar", "application/x-tar"])
    #expect(server.requests[0].header("Transfer-Encoding") == "chunked")
    #expect(server.requests[1].header("Content-Length") == "50000")
}
