import CaissonHTTP
import Foundation
import Synchronization

/// A Docker Engine API version, `major.minor`.
public struct DockerAPIVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(_ major: Int, _ minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// Parses `1.41` (surrounding whitespace tolerated).
    public init?(_ text: String) {
        let parts = text.trimmingWhitespace().split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let major = Int(parts[0]), let minor = Int(parts[1]),
              major >= 0, minor >= 0, parts[0].count <= 4, parts[1].count <= 4 else { return nil }
        self.init(major, minor)
    }

    /// The oldest API this client speaks: 1.41, Docker Engine 20.10 (Debian 12's docker.io).
    public static let minimumSupported = DockerAPIVersion(1, 41)
    /// The newest API this client knows: 1.47 (Docker Engine 27.x).
    public static let maximumKnown = DockerAPIVersion(1, 47)

    public static func < (lhs: DockerAPIVersion, rhs: DockerAPIVersion) -> Bool {
        (lhs.major, lhs.minor) < (rhs.major, rhs.minor)
    }

    public var description: String { "\(major).\(minor)" }
}

/// A typed Docker Engine API client over the daemon's unix socket.
///
/// Every method blocks the calling thread until the answer is complete or a deadline passes; run
/// them off the cooperative thread pool (see `DockerHost`). The client is `Sendable` and may be used
/// from several threads at once: each call opens its own connection.
///
/// The API version is negotiated on first use (`GET /_ping`, falling back to `GET /version`):
/// min(daemon's version, `DockerAPIVersion.maximumKnown`), refusing daemons older than
/// `DockerAPIVersion.minimumSupported`. All versioned paths are prefixed with `/v1.xx`.
public final class DockerClient: Sendable {
    public struct Configuration: Sendable {
        public var endpoint: DockerEndpoint
        /// Deadlines of ordinary calls (inspect, create, rename...).
        public var timeouts: DockerTimeouts
        /// Deadlines of `docker load`: no whole-call limit, but a limit on silence.
        public var loadTimeouts: DockerTimeouts
        /// Pins the API version and skips negotiation (tests, or a known daemon).
        public var apiVersion: DockerAPIVersion?
        /// The largest non-streamed answer accepted.
        public var maxResponseBytes: Int

        public init(endpoint: DockerEndpoint = .default,
                    timeouts: DockerTimeouts = .default,
                    loadTimeouts: DockerTimeouts = DockerTimeouts(connect: .seconds(5), call: nil, idle: .seconds(300)),
                    apiVersion: DockerAPIVersion? = nil,
                    maxResponseBytes: Int = 16 * 1024 * 1024) {
            self.endpoint = endpoint
            self.timeouts = timeouts
            self.loadTimeouts = loadTimeouts
            self.apiVersion = apiVersion
            self.maxResponseBytes = maxResponseBytes
        }
    }

    public let configuration: Configuration
    public let http: UnixSocketHTTPClient
    private let negotiated: Mutex<DockerAPIVersion?>

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.http = UnixSocketHTTPClient(socketPath: configuration.endpoint.socketPath)
        self.negotiated = Mutex(configuration.apiVersion)
    }

    /// A client for the daemon named by `DOCKER_HOST` in `environment` (default socket if unset).
    public convenience init(environment: [String: String] = ProcessInfo.processInfo.environment,
                            timeouts: DockerTimeouts = .default) throws(DockerError) {
        let endpoint = try DockerEndpoint.fromEnvironment(environment)
        self.init(configuration: Configuration(endpoint: endpoint, timeouts: timeouts))
    }

    public var socketPath: String { configuration.endpoint.socketPath }

    // MARK: - Version negotiation

    /// The API version used for versioned paths, negotiating it on first use.
    public func apiVersion() throws -> DockerAPIVersion {
        if let version = negotiated.withLock({ $0 }) { return version }
        let daemonVersion = try daemonAPIVersion()
        let chosen = try Self.choose(daemon: daemonVersion, socketPath: socketPath)
        negotiated.withLock { $0 = chosen }
        return chosen
    }

    /// min(daemon, maximumKnown), or `.apiVersionUnsupported` below `minimumSupported`.
    public static func choose(daemon: DockerAPIVersion, socketPath: String) throws(DockerError) -> DockerAPIVersion {
        guard daemon >= DockerAPIVersion.minimumSupported else {
            throw DockerError(.apiVersionUnsupported,
                              "the Docker daemon at \(socketPath) speaks Engine API \(daemon), older than the \(DockerAPIVersion.minimumSupported) (Docker Engine 20.10) this updater needs; upgrade Docker")
        }
        return min(daemon, DockerAPIVersion.maximumKnown)
    }

    /// The daemon's newest API version: the `API-Version` header of `/_ping`, else `/version`.
    private func daemonAPIVersion() throws -> DockerAPIVersion {
        let ping = try http.execute(HTTPRequest(method: "GET", target: "/_ping"), timeouts: configuration.timeouts,
                                    maxBodyBytes: 64 * 1024)
        if ping.status == 200, let header = ping.head.header("API-Version"), let version = DockerAPIVersion(header) {
            return version
        }
        let response = try http.execute(HTTPRequest(method: "GET", target: "/version"), timeouts: configuration.timeouts,
                                        maxBodyBytes: 1024 * 1024)
        try expect(response, [200], operation: "query the Docker daemon version", subject: .daemon)
        let json = try decodeJSON(response, operation: "query the Docker daemon version")
        guard let text = json["ApiVersion"]?.stringValue, let version = DockerAPIVersion(text) else {
            throw DockerError(.protocolError(indeterminate: false),
                              "the Docker daemon at \(socketPath) did not report its API version")
        }
        return version
    }

    // MARK: - Requests

    /// A versioned request (`/v1.xx` + path), collecting the whole answer.
    func call(_ method: String, _ path: String, query: [(String, String)] = [], body: RequestBody = .none,
              timeouts: DockerTimeouts? = nil, versioned: Bool = true) throws -> HTTPResponse {
        let target = try self.target(path, query: query, versioned: versioned)
        return try http.execute(HTTPRequest(method: method, target: target, body: body),
                                timeouts: timeouts ?? configuration.timeouts,
                                maxBodyBytes: configuration.maxResponseBytes)
    }

    func target(_ path: String, query: [(String, String)], versioned: Bool) throws -> String {
        var target = versioned ? "/v\(try apiVersion())\(path)" : path
        if !query.isEmpty {
            target += "?" + query.map { "\(Self.percentEncode($0.0, allowing: .query))=\(Self.percentEncode($0.1, allowing: .query))" }
                .joined(separator: "&")
        }
        return target
    }

    /// What an error is about, for its sentence.
    enum Subject {
        case daemon
        case container(String)
        case image(String)

        var noun: String {
            switch self {
            case .daemon: return "object"
            case .container: return "container"
            case .image: return "image"
            }
        }
    }

    /// Throws a clear `.httpStatus` error unless the status is one of `statuses`.
    func expect(_ response: HTTPResponse, _ statuses: Set<Int>, operation: String, subject: Subject,
                conflict: String? = nil) throws(DockerError) {
        guard !statuses.contains(response.status) else { return }
        throw statusError(response, operation: operation, subject: subject, conflict: conflict)
    }

    func statusError(_ response: HTTPResponse, operation: String, subject: Subject,
                     conflict: String? = nil) -> DockerError {
        let daemonMessage = Self.daemonMessage(response.body)
        let summary: String
        switch response.status {
        case 404: summary = "no such \(subject.noun)"
        case 409: summary = conflict ?? "conflict"
        case 400: summary = "the daemon rejected the request as invalid"
        case 500...599: summary = "the Docker daemon reported an internal error (HTTP \(response.status))"
        default: summary = "unexpected HTTP \(response.status) \(response.head.reason)".trimmingWhitespace()
        }
        return DockerError(.httpStatus(response.status), "cannot \(operation): \(summary)", daemonMessage: daemonMessage)
    }

    /// The `message` of the daemon's JSON error body, else its (short) text.
    static func daemonMessage(_ body: [UInt8]) -> String? {
        if body.isEmpty { return nil }
        if let json = try? JSONValue.parse(body), let message = json["message"]?.stringValue {
            return message
        }
        let text = String(decoding: body.prefix(512), as: UTF8.self).trimmingWhitespace()
        return text.isEmpty ? nil : text
    }

    func decodeJSON(_ response: HTTPResponse, operation: String) throws(DockerError) -> JSONValue {
        do {
            return try JSONValue.parse(response.body)
        } catch {
            throw DockerError(.protocolError(indeterminate: true),
                              "cannot \(operation): the Docker daemon's answer is not valid JSON")
        }
    }

    // MARK: - Encoding and validation

    enum Allowed {
        case query, pathSegment, reference
    }

    /// Percent-encodes everything outside RFC 3986 unreserved characters (plus `/:@` in image
    /// references, which the daemon's router takes verbatim).
    static func percentEncode(_ text: String, allowing: Allowed) -> String {
        var out = ""
        for byte in text.utf8 {
            let isUnreserved = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) ||
                (byte >= 0x61 && byte <= 0x7A) || byte == 0x2D || byte == 0x2E || byte == 0x5F || byte == 0x7E
            let extra = allowing == .reference && (byte == 0x2F || byte == 0x3A || byte == 0x40)
            if isUnreserved || extra {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + (byte < 16 ? "0" : "") + String(byte, radix: 16, uppercase: true)
            }
        }
        return out
    }

    /// A container id or name as one path segment.
    func containerPath(_ idOrName: String, _ suffix: String = "") throws(DockerError) -> String {
        let trimmed = idOrName.hasPrefix("/") ? String(idOrName.dropFirst()) : idOrName
        guard !trimmed.isEmpty, trimmed.utf8.count <= 256, trimmed != ".", trimmed != "..",
              !trimmed.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw DockerError(.invalidRequest, "invalid container name or id '\(idOrName.prefix(80))'")
        }
        return "/containers/\(Self.percentEncode(trimmed, allowing: .pathSegment))\(suffix)"
    }

    /// An image reference or id as a path (slashes kept, `.`/`..` segments refused).
    func imagePath(_ reference: String, _ suffix: String = "") throws(DockerError) -> String {
        let segments = reference.split(separator: "/", omittingEmptySubsequences: false)
        guard !reference.isEmpty, reference.utf8.count <= 512,
              !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }),
              !reference.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else {
            throw DockerError(.invalidRequest, "invalid image reference '\(reference.prefix(80))'")
        }
        return "/images/\(Self.percentEncode(reference, allowing: .reference))\(suffix)"
    }

    /// `{"key":["a","b"]}` as the daemon's `filters` query parameter.
    static func filtersParameter(_ filters: [String: [String]]) -> String {
        let object = JSONValue.object(filters.mapValues { .array($0.map { .string($0) }) })
        return String(decoding: object.serialized(), as: UTF8.self)
    }
}
