import CaissonHTTP
import Testing
@testable import CaissonDocker

@Suite("Pure values: endpoint, versions, encoding, JSON, codec pieces")
struct ValueTests {
    @Test func dockerHostParsing() throws {
        #expect(try DockerEndpoint.parse(dockerHost: nil).socketPath == "/var/run/docker.sock")
        #expect(try DockerEndpoint.parse(dockerHost: "").socketPath == "/var/run/docker.sock")
        #expect(try DockerEndpoint.parse(dockerHost: "unix:///run/x/docker.sock").socketPath == "/run/x/docker.sock")
        #expect(try DockerEndpoint.fromEnvironment(["DOCKER_HOST": "unix:///a.sock"]).socketPath == "/a.sock")
        for bad in ["tcp://127.0.0.1:2375", "ssh://user@host", "npipe:////./pipe/docker_engine", "unix://", "unix://rel.sock", "/var/run/docker.sock"] {
            let error = #expect(throws: DockerError.self) { try DockerEndpoint.parse(dockerHost: bad) }
            #expect(error?.kind == .unsupportedHost, "\(bad)")
            #expect(error?.isIndeterminate == false)
        }
        let tcp = #expect(throws: DockerError.self) { try DockerEndpoint.parse(dockerHost: "tcp://10.0.0.1:2375") }
        #expect(tcp?.message.contains("unsupported scheme 'tcp://'") == true)
    }

    @Test func apiVersions() throws {
        #expect(DockerAPIVersion("1.41") == DockerAPIVersion(1, 41))
        #expect(DockerAPIVersion(" 1.47\r") == DockerAPIVersion(1, 47))
        #expect(DockerAPIVersion("1.9")! < DockerAPIVersion("1.41")!)
        for bad in ["", "1", "1.", "a.b", "1.41.2", "-1.2"] { #expect(DockerAPIVersion(bad) == nil, "\(bad)") }
        #expect(try DockerClient.choose(daemon: DockerAPIVersion(1, 51), socketPath: "/s") == DockerAPIVersion(1, 47))
        #expect(try DockerClient.choose(daemon: DockerAPIVersion(1, 43), socketPath: "/s") == DockerAPIVersion(1, 43))
        #expect(try DockerClient.choose(daemon: DockerAPIVersion(1, 41), socketPath: "/s") == DockerAPIVersion(1, 41))
        let old = #expect(throws: DockerError.self) { try DockerClient.choose(daemon: DockerAPIVersion(1, 40), socketPath: "/s") }
        #expect(old?.kind == .apiVersionUnsupported)
        #expect(old?.message.contains("20.10") == true)
    }

    @Test func percentEncodingAndPaths() throws {
        #expect(DockerClient.percentEncode("a b/c:d@e", allowing: .query) == "a%20b%2Fc%3Ad%40e")
        #expect(DockerClient.percentEncode("example/frontend:1.2.3", allowing: .reference) == "example/frontend:1.2.3")
        #expect(DockerClient.percentEncode("ü", allowing: .query) == "%C3%BC")
        let client = DockerClient(configuration: .init(apiVersion: DockerAPIVersion(1, 41)))
        #expect(try client.containerPath("/frontend", "/json") == "/containers/frontend/json")
        #expect(try client.containerPath("a/../b") == "/containers/a%2F..%2Fb")
        #expect(try client.imagePath("reg:5000/x/y:1", "/json") == "/images/reg:5000/x/y:1/json")
        for bad in ["", "../../containers/x", "a//b", "a/./b", "a b", "/abs"] {
            #expect(throws: DockerError.self, "\(bad)") { try client.imagePath(bad) }
        }
        #expect(throws: DockerError.self) { try client.containerPath("") }
        #expect(throws: DockerError.self) { try client.containerPath("..") }
        #expect(try client.target("/containers/json", query: [("all", "1"), ("filters", "{\"name\":[\"^/a$\"]}")], versioned: true)
                == "/v1.41/containers/json?all=1&filters=%7B%22name%22%3A%5B%22%5E%2Fa%24%22%5D%7D")
    }

    @Test func referenceSplitting() {
        #expect(DockerClient.splitReference("example/frontend:1.2.3") == ("example/frontend", "1.2.3"))
        #expect(DockerClient.splitReference("example/frontend") == ("example/frontend", nil))
        #expect(DockerClient.splitReference("reg:5000/frontend") == ("reg:5000/frontend", nil))
        #expect(DockerClient.splitReference("reg:5000/frontend:v2") == ("reg:5000/frontend", "v2"))
        #expect(DockerClient.splitReference("x@sha256:abc") == ("x@sha256:abc", nil))
    }

    @Test func filtersAndRegex() {
        #expect(DockerClient.regexEscape("my.app-1") == "my\\.app-1")
        #expect(DockerClient.filtersParameter(["name": ["^/a$"], "label": ["k=v"]]) == "{\"label\":[\"k=v\"],\"name\":[\"^/a$\"]}")
    }

    @Test func jsonValueRoundTrip() throws {
        let text = #"{"b":[1,2.5,true,null,"x"],"a":{"Memory":9007199254740993,"Neg":-1},"s":"a/b"}"#
        let value = try JSONValue.parse(text)
        #expect(value["a"]?["Memory"] == .int(9007199254740993))
        #expect(value["a"]?["Neg"]?.intValue == -1)
        #expect(value["b"]?[1] == .double(2.5))
        #expect(value["b"]?[2] == .bool(true))
        #expect(value["b"]?[3] == .null)
        #expect(value["b"]?[4]?.stringValue == "x")
        #expect(value["missing"] == nil)
        let serialized = String(decoding: value.serialized(), as: UTF8.self)
        #expect(serialized == #"{"a":{"Memory":9007199254740993,"Neg":-1},"b":[1,2.5,true,null,"x"],"s":"a/b"}"#)
        #expect(try JSONValue.parse(value.serialized()) == value)
        var edited = value
        edited["s"] = "changed"
        #expect(edited["s"] == .string("changed"))
        #expect(throws: (any Error).self) { try JSONValue.parse("{not json") }
        #expect(JSONValue.string("one").stringArrayValue == ["one"])
        #expect(try JSONValue.parse(#"{"k":"v","n":1}"#).stringMapValue == ["k": "v"])
    }

    @Test func chunkSizes() throws {
        #expect(try HTTPWireReader.parseChunkSize(Array("1a".utf8)) == 26)
        #expect(try HTTPWireReader.parseChunkSize(Array("FF;name=value".utf8)) == 255)
        #expect(try HTTPWireReader.parseChunkSize(Array("0".utf8)) == 0)
        for bad in ["", "g1", "-1", "1234567890abcdef0", " 1"] {
            #expect(throws: WireFailure.self, "\(bad)") { try HTTPWireReader.parseChunkSize(Array(bad.utf8)) }
        }
    }

    @Test func statusLinesHeadersAndFraming() throws {
        #expect(try HTTPCodec.parseStatusLine("HTTP/1.1 404 Not Found") == (404, "Not Found"))
        #expect(try HTTPCodec.parseStatusLine("HTTP/1.0 204") == (204, ""))
        for bad in ["HTTP/2 200 OK", "HTTP/1.1 2000 OK", "garbage", "HTTP/1.1 abc OK"] {
            #expect(throws: WireFailure.self, "\(bad)") { try HTTPCodec.parseStatusLine(bad) }
        }
        let headers = try HTTPCodec.parseHeaders(["Content-Length: 5", "X-A:  b  "])
        #expect(headers == [HTTPHeader("Content-Length", "5"), HTTPHeader("X-A", "b")])
        #expect(throws: WireFailure.self) { try HTTPCodec.parseHeaders([" folded"]) }
        #expect(throws: WireFailure.self) { try HTTPCodec.parseHeaders(["no colon"]) }
        let head = { (headers: [HTTPHeader]) in HTTPResponseHead(status: 200, reason: "OK", headers: headers) }
        #expect(try HTTPCodec.responseFraming(head([HTTPHeader("Content-Length", "5")]), method: "GET") == .length(5))
        #expect(try HTTPCodec.responseFraming(head([HTTPHeader("Transfer-Encoding", "gzip, chunked"), HTTPHeader("Content-Length", "5")]), method: "GET") == .chunked)
        #expect(try HTTPCodec.responseFraming(head([]), method: "GET") == .untilClose)
        #expect(try HTTPCodec.responseFraming(head([HTTPHeader("Content-Length", "5")]), method: "HEAD") == .none)
        #expect(try HTTPCodec.responseFraming(HTTPResponseHead(status: 304, reason: "", headers: []), method: "POST") == .none)
        #expect(throws: WireFailure.self) { try HTTPCodec.responseFraming(head([HTTPHeader("Content-Length", "-1")]), method: "GET") }
        #expect(throws: WireFailure.self) {
            try HTTPCodec.responseFraming(head([HTTPHeader("Content-Length", "5"), HTTPHeader("Content-Length", "6")]), method: "GET")
        }
        #expect(try HTTPCodec.messageFraming([], isRequest: true) == BodyFraming.none)
    }

    @Test func lineSplitter() throws {
        var splitter = LineSplitter(limit: 16)
        var lines: [String] = []
        for piece in ["ab", "c\r\nde", "f\n\ng", "h"] {
            try Array(piece.utf8).withUnsafeBytes { try splitter.feed($0) { lines.append(String(decoding: $0, as: UTF8.self)) } }
        }
        try splitter.finish { lines.append(String(decoding: $0, as: UTF8.self)) }
        #expect(lines == ["abc", "def", "", "gh"])
        var small = LineSplitter(limit: 4)
        #expect(throws: WireFailure.self) {
            try Array("123456".utf8).withUnsafeBytes { try small.feed($0) { _ in } }
        }
    }

    @Test func errorClassification() {
        #expect(DockerError(.timeout(indeterminate: true), "x").isIndeterminate)
        #expect(!DockerError(.timeout(indeterminate: false), "x").isIndeterminate)
        #expect(DockerError(.connectionLost(indeterminate: true), "x").isIndeterminate)
        #expect(!DockerError(.httpStatus(500), "x").isIndeterminate)
        #expect(!DockerError(.streamError, "x").isIndeterminate)
        #expect(DockerError(.httpStatus(404), "x").isNotFound)
        #expect(DockerError(.httpStatus(409), "x").isConflict)
        #expect(DockerError(.permissionDenied, "x").isUnreachable)
        #expect(DockerError(.httpStatus(404), "cannot inspect", daemonMessage: "No such container: a").description
                == "cannot inspect: No such container: a")
    }

    @Test func connectErrnoMapping() {
        let client = UnixSocketHTTPClient(socketPath: "/run/d.sock")
        let denied = client.connectError(.system(operation: "connect", errno: EACCES), timeouts: .default)
        #expect(denied.kind == .permissionDenied)
        #expect(denied.message == "permission denied on /run/d.sock (run as root or join the docker group)")
        let missing = client.connectError(.system(operation: "connect", errno: ENOENT), timeouts: .default)
        #expect(missing.kind == .unreachable)
        #expect(missing.message == "Docker daemon not reachable at /run/d.sock (is dockerd running?)")
        let slow = client.connectError(.timedOut(.connect), timeouts: .default)
        #expect(slow.kind == .timeout(indeterminate: false))
        #expect(client.connectError(.pathTooLong("x"), timeouts: .default).kind == .invalidRequest)
    }

    @Test func durationsRenderShort() {
        #expect(Duration.seconds(30).shortDescription == "30s")
        #expect(Duration.milliseconds(250).shortDescription == "250ms")
        #expect(Duration.milliseconds(1500).shortDescription == "1.5s")
        #expect(Duration.seconds(-3).clampedNanoseconds == 0)
    }
}

#if canImport(Glibc)
import Glibc
#endif
