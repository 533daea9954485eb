import CaissonHTTP
/// The one error type of the Docker client.
///
/// The property that matters most to the updater is `isIndeterminate`: a call that timed out, or
/// whose connection dropped, after any byte of the request reached the daemon may have taken effect
/// (DESIGN.md principle 4). Such a failure must be followed by an inspect before acting again.
/// Everything else (a refused connection, a missing socket, an HTTP 4xx/5xx answer, an error the
/// daemon reports inside a streamed answer) is definite: the daemon says it did not do it.
public struct DockerError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable, Hashable {
        /// `DOCKER_HOST` names a transport we do not speak (`tcp://`, `ssh://`, `npipe://`...).
        case unsupportedHost
        /// No daemon at the socket (missing socket file, connection refused). Nothing was sent.
        case unreachable
        /// The socket exists but we may not connect to it (EACCES/EPERM). Nothing was sent.
        case permissionDenied
        /// The daemon's API version is older than the oldest we support (1.41, Engine 20.10).
        case apiVersionUnsupported
        /// The daemon answered with this HTTP status (4xx/5xx, or an unexpected 1xx-3xx).
        case httpStatus(Int)
        /// The daemon reported an error inside a successful (200) streamed answer, e.g. `docker load`.
        case streamError
        /// A deadline passed: connect, whole-call, or idle-read/-write.
        case timeout(indeterminate: Bool)
        /// The connection broke (EOF, reset, EPIPE) before a complete answer arrived.
        case connectionLost(indeterminate: Bool)
        /// The daemon's answer was not valid HTTP/JSON as we expect it.
        case protocolError(indeterminate: Bool)
        /// The request itself is invalid before anything is sent (bad name, socket path too long...).
        case invalidRequest
    }

    public var kind: Kind
    /// An operator-readable sentence, naming the operation and the object.
    public var message: String
    /// The daemon's own error text (the `message` field of its JSON error), if it sent one.
    public var daemonMessage: String?

    public init(_ kind: Kind, _ message: String, daemonMessage: String? = nil) {
        self.kind = kind
        self.message = message
        self.daemonMessage = daemonMessage
    }

    /// True when the operation may have happened on the daemon despite the error.
    public var isIndeterminate: Bool {
        switch kind {
        case .timeout(let indeterminate), .connectionLost(let indeterminate),
             .protocolError(let indeterminate):
            return indeterminate
        case .unsupportedHost, .unreachable, .permissionDenied, .apiVersionUnsupported,
             .httpStatus, .streamError, .invalidRequest:
            return false
        }
    }

    /// The HTTP status, if the daemon answered with an error status.
    public var httpStatus: Int? {
        if case .httpStatus(let status) = kind { return status }
        return nil
    }

    /// 404: no such container / image / network.
    public var isNotFound: Bool { httpStatus == 404 }
    /// 409: name already in use, image in use, container running...
    public var isConflict: Bool { httpStatus == 409 }
    /// True when the daemon could not be reached at all (nothing was sent).
    public var isUnreachable: Bool {
        kind == .unreachable || kind == .permissionDenied || kind == .unsupportedHost
    }

    public var description: String {
        if let daemonMessage, !message.contains(daemonMessage) {
            return "\(message): \(daemonMessage)"
        }
        return message
    }
}
