import CaissonHTTP
import Foundation
import Testing
@testable import CaissonDocker
#if canImport(Glibc)
import Glibc
#endif

typealias Stub = StubDockerServer

/// A producer that hands out `data` in pieces of at most `piece` bytes.
final class ChunkProducer {
    let data: [UInt8]
    let piece: Int
    var offset = 0
    var calls = 0
    init(_ data: [UInt8], piece: Int) {
        self.data = data
        self.piece = piece
    }
    func read(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
        calls += 1
        let n = min(buffer.count, piece, data.count - offset)
        guard n > 0 else { return 0 }
        buffer.copyBytes(from: data[offset..<(offset + n)])
        offset += n
        return n
    }
}

/// A producer of `total` zero bytes that never materializes them.
final class ZeroProducer {
    let total: Int
    var offset = 0
    init(total: Int) { self.total = total }
    func read(_ buffer: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(buffer.count, total - offset)
        guard n > 0 else { return 0 }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        offset += n
        return n
    }
}

func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) } }

struct ProducerFailure: Error, Equatable {}

@Suite("HTTP over a unix socket, against an in-process stub server", .serialized)
struct TransportTests {
    @Test func contentLengthResponseAndRequestHead() throws {
        let server = try Stub { _ in [.send(Stub.json(200, #"{"Id":"sha256:abc","RepoTags":["a:1"],"Os":"linux","Architecture":"amd64","Config":{"Cmd":["/bin/sh"],"Labels":null}}"#))] }
        defer { server.stop() }
        let image = try server.client().inspectImage("example/a:1")
        #expect(image.id == "sha256:abc")
        #expect(image.repoTags == ["a:1"])
        #expect(image.config.cmd == ["/bin/sh"])
        #expect(image.config.labels == [:])
        #expect(image.platform == "linux/amd64")
        let request = try #require(server.requests.first)
        #expect(request.method == "GET")
        #expect(request.target == "/v1.41/images/example/a:1/json")
        #expect(request.header("Host") == "docker")
        #expect(request.header("Connection") == "close")
    }

    @Test func chunkedResponseWithExtensionsAndTrailer() throws {
        let body = #"[{"Id":"c1","Names":["/frontend"],"State":"running","Labels":{"k":"v"}},{"Id":"c2","Names":["/frontend-old"]}]"#
        let bytes = Array(body.utf8)
        let server = try Stub { _ in
            var steps: [Stub.Step] = [.send(Stub.chunkedHead(200, headers: [("Content-Type", "application/json")]))]
            var index = 0
            var size = 1
            while index < bytes.count {
                let end = min(bytes.count, index + size)
                steps.append(.send(Stub.chunk(String(decoding: bytes[index..<end], as: UTF8.self), extensions: size % 2 == 0 ? ";x=y" : "")))
                steps.append(.pause(milliseconds: 1))
                index = end
                size += 3
            }
            steps.append(.send(Array("0\r\nX-Trailer: t\r\n\r\n".utf8)))
            return steps
        }
        defer { server.stop() }
        let containers = try server.client().listContainers(filters: ContainerListFilters(names: ["frontend"]))
        #expect(containers.map(\.id) == ["c1"])  // the exact-name check drops frontend-old
        #expect(containers.first?.labels == ["k": "v"])
        let request = try #require(server.requests.first)
        #expect(request.path == "/v1.41/containers/json")
        #expect(request.query.contains("filters=%7B%22name%22%3A%5B%22%5E%2Ffrontend%24%22%5D%7D"))
    }

    @Test func readUntilCloseResponse() throws {
        let server = try Stub { _ in [.send(Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"DockerRootDir\":\"/var/lib/docker\",".utf8)),
                                     .pause(milliseconds: 5), .send(Array("\"NCPU\":2}".utf8)), .close] }
        defer { server.stop() }
        let info = try server.client().info()
        #expect(info.dockerRootDir == "/var/lib/docker")
        #expect(info.cpuCount == 2)
    }

    @Test(arguments: [1, 7, 65536])
    func chunkedRequestBodyStreams(chunkSize: Int) throws {
        let data = pattern(200_000)
        let server = try Stub { _ in [.readBody, .send(Stub.json(200, #"{"stream":"Loaded image: a:1\n"}"#))] }
        defer { server.stop() }
        let producer = ChunkProducer(data, piece: 5000)
        var progress: [UInt64] = []
        let client = server.client()
        let http = UnixSocketHTTPClient(socketPath: server.socketPath, uploadChunkSize: chunkSize == 1 ? 1000 : chunkSize)
        let response = try http.execute(HTTPRequest(method: "POST", target: "/v1.41/images/load",
                                                    body: .stream(contentType: "application/x-tar") { producer.read($0) }),
                                        uploadProgress: { progress.append($0) })
        #expect(response.status == 200)
        let request = try #require(server.requests.first)
        #expect(request.header("Transfer-Encoding") == "chunked")
        #expect(request.header("Content-Length") == nil)
        #expect(request.header("Content-Type") == "application/x-tar")
        #expect(request.bodyComplete)
        #expect(request.body == data)
        #expect(progress.last == UInt64(data.count))
        #expect(progress == progress.sorted())
        _ = client
    }

    @Test func streamedBodyWithKnownLength() throws {
        let data = pattern(70_000)
        let server = try Stub { _ in [.readBody, .send(Stub.response(204))] }
        defer { server.stop() }
        let producer = ChunkProducer(data, piece: 999)
        let http = UnixSocketHTTPClient(socketPath: server.socketPath)
        let response = try http.execute(HTTPRequest(method: "POST", target: "/x",
                                                    body: .stream(length: UInt64(data.count)) { producer.read($0) }))
        #expect(response.status == 204)
        let request = try #require(server.requests.first)
        #expect(request.header("Content-Length") == "70000")
        #expect(request.header("Transfer-Encoding") == nil)
        #expect(request.body == data)
    }

    @Test(arguments: [69_999, 70_001])
    func streamedBodyLengthMismatchIsRefused(actual: Int) throws {
        let server = try Stub { _ in [.readBody, .send(Stub.response(204))] }
        defer { server.stop() }
        let producer = ChunkProducer(pattern(actual), piece: 4096)
        let http = UnixSocketHTTPClient(socketPath: server.socketPath)
        let error = #expect(throws: DockerError.self) {
            try http.execute(HTTPRequest(method: "POST", target: "/x", body: .stream(length: 70_000) { producer.read($0) }))
        }
        #expect(error?.kind == .invalidRequest)
        server.waitUntilServed()
        // The daemon never saw a complete body.
        #expect(server.requests.first?.bodyComplete == false)
    }

    @Test func producerErrorIsRethrownAndLastPieceWithheld() throws {
        let data = pattern(100_000)
        let server = try Stub { _ in [.readBody, .send(Stub.response(204))] }
        defer { server.stop() }
        let producer = ChunkProducer(data, piece: 10_000)
        let http = UnixSocketHTTPClient(socketPath: server.socketPath)
        // Veto at the very end: all bytes were produced, then the producer throws instead of 0.
        #expect(throws: ProducerFailure.self) {
            try http.execute(HTTPRequest(method: "POST", target: "/x", body: .stream { buffer in
                let n = producer.read(buffer)
                if n == 0 { throw ProducerFailure() }
                return n
            }))
        }
        server.waitUntilServed()
        let request = try #require(server.requests.first)
        #expect(request.bodyComplete == false)
        #expect(request.body.count < data.count)  // the last piece never left
        #expect(Array(request.body) == Array(data.prefix(request.body.count)))
    }

    @Test func fileRangeBody() throws {
        let path = NSTemporaryDirectory() + "cdt-range-\(getpid())"
        let data = pattern(300_000)
        #expect(FileManager.default.createFile(atPath: path, contents: Data(data)))
        defer { unlink(path) }
        let server = try Stub { _ in [.readBody, .send(Stub.response(204))] }
        defer { server.stop() }
        let http = UnixSocketHTTPClient(socketPath: server.socketPath)
        for chunked in [true, false] {
            _ = try http.execute(HTTPRequest(method: "POST", target: "/x",
                                             body: try .fileRange(path: path, offset: 1000, length: 250_000, chunked: chunked)))
        }
        let requests = server.requests
        #expect(requests.count == 2)
        #expect(requests.allSatisfy { $0.body == Array(data[1000..<251_000]) })
        #expect(requests[0].header("Transfer-Encoding") == "chunked")
        #expect(requests[1].header("Content-Length") == "250000")
        // A range past the end of the file fails clearly, not with a hang.
        let error = #expect(throws: DockerError.self) {
            try http.execute(HTTPRequest(method: "POST", target: "/x",
                                         body: try .fileRange(path: path, offset: 299_000, length: 5000)))
        }
        #expect(error?.message.contains("ended early") == true)
        #expect(throws: DockerError.self) { try RequestBody.fileRange(path: path + ".missing", offset: 0, length: 1) }
    }

    @Test func serverStallsIsIndeterminateTimeout() throws {
        let server = try Stub { _ in [.readBody, .stall] }
        defer { server.stop() }
        let client = server.client(timeouts: DockerTimeouts(connect: .seconds(2), call: .milliseconds(300)))
        let error = #expect(throws: DockerError.self) { try client.stopContainer("frontend", graceSeconds: 0) }
        #expect(error?.kind == .timeout(indeterminate: true))
        #expect(error?.isIndeterminate == true)
        #expect(error?.message.contains("may or may not have happened") == true)
    }

    @Test func idleTimeoutOnAStalledStream() throws {
        let server = try Stub { _ in
            [.readBody, .send(Stub.chunkedHead()), .send(Stub.chunk(#"{"status":"Loading layer","progressDetail":{"current":1,"total":2}}"# + "\r\n")), .stall]
        }
        defer { server.stop() }
        let client = server.client(loadTimeouts: DockerTimeouts(connect: .seconds(2), call: nil, idle: .milliseconds(300)))
        var messages: [DockerStreamMessage] = []
        let error = #expect(throws: DockerError.self) {
            try client.loadImage(.bytes(pattern(10)), onMessage: { messages.append($0) })
        }
        #expect(error?.kind == .timeout(indeterminate: true))
        #expect(error?.message.contains("nothing moved") == true)
        #expect(messages.first?.status == "Loading layer")
        #expect(messages.first?.total == 2)
    }

    @Test func serverStallsWhileWeUpload() throws {
        // The server never reads the body: our writes fill the socket buffer, then the idle limit hits.
        let server = try Stub { _ in [.hang] }
        defer { server.stop() }
        let client = server.client(loadTimeouts: DockerTimeouts(connect: .seconds(2), call: nil, idle: .milliseconds(300)))
        let producer = ZeroProducer(total: 64 * 1024 * 1024)
        let error = #expect(throws: DockerError.self) {
            try client.loadImage(.stream { producer.read($0) })
        }
        #expect(error?.kind == .timeout(indeterminate: true))
        #expect(producer.offset < 64 * 1024 * 1024)
    }

    @Test func closedMidBodyIsIndeterminateConnectionLoss() throws {
        let server = try Stub { _ in [.readBody, .send(Array("HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{\"Id\":\"abc".utf8)), .close] }
        defer { server.stop() }
        let error = #expect(throws: DockerError.self) {
            try server.client().createContainer(name: "frontend", body: ["Image": "a:1"])
        }
        #expect(error?.kind == .connectionLost(indeterminate: true))
        #expect(error?.isIndeterminate == true)
    }

    @Test func closedMidChunkIsIndeterminate() throws {
        let server = try Stub { _ in [.readBody, .send(Stub.chunkedHead()), .send(Array("10\r\nabc".utf8)), .close] }
        defer { server.stop() }
        let error = #expect(throws: DockerError.self) { try server.client().info() }
        #expect(error?.kind == .connectionLost(indeterminate: true))
    }

    @Test func closedBeforeAnyAnswerIsIndeterminate() throws {
        let server = try Stub { _ in [.readBody, .close] }
        defer { server.stop() }
        let error = #expect(throws: DockerError.self) { try server.client().renameContainer("a", to: "b") }
        #expect(error?.kind == .connectionLost(indeterminate: true))
    }

    @Test func garbageAnswerIsAProtocolError() throws {
        let server = try Stub { _ in [.readBody, .send(Array("SSH-2.0-OpenSSH\r\n\r\n".utf8)), .close] }
        defer { server.stop() }
        let error = #expect(throws: DockerError.self) { try server.client().startContainer("a") }
        #expect(error?.kind == .protocolError(indeterminate: true))
    }

    @Test func missingSocketIsDefinitelyUnreachable() throws {
        let client = DockerClient(configuration: .init(endpoint: DockerEndpoint(socketPath: "/tmp/cdt-no-such-dir/docker.sock")))
        let error = #expect(throws: DockerError.self) { try client.ping() }
        #expect(error?.kind == .unreachable)
        #expect(error?.isIndeterminate == false)
        #expect(error?.message == "Docker daemon not reachable at /tmp/cdt-no-such-dir/docker.sock (is dockerd running?)")
    }

    @Test func refusedConnectionIsDefinitelyUnreachable() throws {
        // A socket file with nobody listening: bound, never listened on.
        var template = Array("/tmp/cdt-XXXXXX".utf8CString)
        let dir = String(cString: try #require(mkdtemp(&template)))
        let path = dir + "/dead.sock"
        var address = try StreamSocket.makeAddress(path)
        let fd = try StreamSocket.newSocketDescriptor()
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(rc == 0)
        close(fd)
        defer { unlink(path); rmdir(dir) }
        let client = DockerClient(configuration: .init(endpoint: DockerEndpoint(socketPath: path), apiVersion: DockerAPIVersion(1, 41)))
        let error = #expect(throws: DockerError.self) { try client.inspectContainer("x") }
        #expect(error?.kind == .unreachable)
        #expect(error?.isIndeterminate == false)
        #expect(error?.message.contains("connection refused") == true)
    }

    @Test func overlongSocketPathIsRefused() {
        let client = UnixSocketHTTPClient(socketPath: "/" + String(repeating: "x", count: 200))
        let error = #expect(throws: DockerError.self) { try client.execute(HTTPRequest(method: "GET", target: "/_ping")) }
        #expect(error?.kind == .invalidRequest)
    }

    @Test func oversizedAnswerIsRefused() throws {
        let big = String(repeating: "x", count: 5000)
        let server = try Stub { _ in [.send(Stub.json(200, "\"\(big)\""))] }
        defer { server.stop() }
        let http = UnixSocketHTTPClient(socketPath: server.socketPath)
        let error = #expect(throws: DockerError.self) {
            try http.execute(HTTPRequest(method: "GET", target: "/info"), maxBodyBytes: 1000)
        }
        #expect(error?.kind == .protocolError(indeterminate: true))
    }

    @Test func earlyErrorAnswerWhileUploading() throws {
        // The daemon rejects the request after the head, without reading the (large) body.
        let server = try Stub { _ in [.send(Stub.json(400, #"{"message":"bad content type"}"#)), .pause(milliseconds: 50), .close] }
        defer { server.stop() }
        let producer = ZeroProducer(total: 32 * 1024 * 1024)
        let error = #expect(throws: DockerError.self) { try server.client().loadImage(.stream { producer.read($0) }) }
        // Either we read the 400 the daemon sent, or the connection broke first: never a success.
        if error?.kind == .httpStatus(400) {
            #expect(error?.daemonMessage == "bad content type")
        } else {
            #expect(error?.kind == .connectionLost(indeterminate: true))
        }
    }
}
