import CaissonHTTP
/// Where the daemon listens. Only unix sockets are supported: the updater runs on the device.
public struct DockerEndpoint: Sendable, Equatable, CustomStringConvertible {
    public static let defaultSocketPath = "/var/run/docker.sock"

    /// The filesystem path of the daemon's unix socket.
    public var socketPath: String

    public init(socketPath: String) {
        self.socketPath = socketPath
    }

    /// The default endpoint, `unix:///var/run/docker.sock`.
    public static let `default` = DockerEndpoint(socketPath: defaultSocketPath)

    /// Parses a `DOCKER_HOST` value. `nil` or empty gives the default socket; `unix://PATH` gives
    /// PATH; any other scheme (`tcp://`, `ssh://`, `npipe://`, `fd://`) is rejected with a clear
    /// `.unsupportedHost` error.
    public static func parse(dockerHost: String?) throws(DockerError) -> DockerEndpoint {
        guard let raw = dockerHost?.trimmingWhitespace(), !raw.isEmpty else { return .default }
        let prefix = "unix://"
        if raw.hasPrefix(prefix) {
            let path = String(raw.dropFirst(prefix.count))
            guard !path.isEmpty else {
                throw DockerError(.unsupportedHost, "DOCKER_HOST '\(raw)' has no socket path (expected unix:///path/to/docker.sock)")
            }
            guard path.hasPrefix("/") else {
                throw DockerError(.unsupportedHost, "DOCKER_HOST '\(raw)' must name an absolute socket path (unix:///path/to/docker.sock)")
            }
            return DockerEndpoint(socketPath: path)
        }
        if let range = raw.firstRange(of: "://") {
            let scheme = raw[raw.startIndex..<range.lowerBound]
            throw DockerError(.unsupportedHost, "DOCKER_HOST '\(raw)' uses the unsupported scheme '\(scheme)://'; only unix:// sockets are supported (the updater talks to the local daemon)")
        }
        throw DockerError(.unsupportedHost, "DOCKER_HOST '\(raw)' is not a unix:// address; only unix:///path/to/docker.sock is supported")
    }

    /// The endpoint named by the `DOCKER_HOST` variable of `environment`.
    public static func fromEnvironment(_ environment: [String: String]) throws(DockerError) -> DockerEndpoint {
        try parse(dockerHost: environment["DOCKER_HOST"])
    }

    public var description: String { "unix://\(socketPath)" }
}
