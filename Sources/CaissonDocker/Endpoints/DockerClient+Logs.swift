import CaissonCore
import CaissonHTTP
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The result of an exec run to its end (`POST /exec/{id}/start` attached, then `GET /exec/{id}/json`).
public struct ExecRunResult: Sendable, Equatable {
    /// Nil when the daemon never reported one.
    public var exitCode: Int64?
    /// stdout and stderr as written, bounded.
    public var output: LogTail
}

extension DockerClient {
    /// The largest stream read for a log tail or an exec's output before the rest is left out.
    static let maxAttachedStreamBytes = 16 * 1024 * 1024

    /// `GET /containers/{id}/logs?stdout=1&stderr=1&tail=N`: the end of the container's log,
    /// demultiplexed unless the container has a TTY, within `limit`. Logging drivers that cannot
    /// be read back (`none`, `syslog`...) answer an error the daemon words.
    public func containerLogs(_ idOrName: String, tty: Bool, limit: LogLimit, timeouts: DockerTimeouts? = nil) throws -> LogTail {
        let operation = "read the log of container '\(idOrName)'"
        let query = [("stdout", "1"), ("stderr", "1"), ("timestamps", "0"), ("tail", String(max(1, limit.maxLines)))]
        var demuxer = DockerStreamDemuxer(multiplexed: !tty, limit: limit)
        let cut = try attachedStream("GET", try containerPath(idOrName, "/logs"), query: query, body: .none,
                                     timeouts: timeouts ?? configuration.timeouts, operation: operation,
                                     subject: .container(idOrName)) { demuxer.feed($0) }
        var tail = demuxer.finish()
        if cut { tail.truncated = true }
        return tail
    }

    /// `POST /containers/{id}/exec`: prepares `command` (stdout and stderr attached, no TTY).
    /// Returns the exec id. 404: no such container; 409: it is not running (or paused).
    public func createExec(_ idOrName: String, command: [String]) throws -> String {
        let operation = "create an exec in container '\(idOrName)'"
        let body: JSONValue = ["AttachStdin": false, "AttachStdout": true, "AttachStderr": true, "Tty": false,
                               "Cmd": .array(command.map { .string($0) })]
        let response = try call("POST", try containerPath(idOrName, "/exec"), body: .bytes(body.serialized(), contentType: "application/json"))
        try expect(response, [200, 201], operation: operation, subject: .container(idOrName), conflict: "the container is not running")
        guard let id = try decodeJSON(response, operation: operation)["Id"]?.stringValue, !id.isEmpty else {
            throw DockerError(.protocolError(indeterminate: true), "cannot \(operation): the answer has no Id")
        }
        return id
    }

    /// `POST /exec/{id}/start` (attached): runs the exec and reads its output until it exits or
    /// `timeout` passes (then a `.timeout` error: the process may still run in the container),
    /// then `GET /exec/{id}/json` for the exit code.
    public func runExec(_ execID: String, timeout: Duration, limit: LogLimit = LogLimit(maxLines: 20, maxBytes: 4096)) throws -> ExecRunResult {
        guard !execID.isEmpty, execID.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x2F }) else {
            throw DockerError(.invalidRequest, "invalid exec id '\(execID.prefix(80))'")
        }
        let operation = "run exec \(execID.prefix(12))"
        var timeouts = configuration.timeouts
        timeouts.call = timeout
        timeouts.connect = min(timeouts.connect, timeout)
        var demuxer = DockerStreamDemuxer(multiplexed: true, limit: limit)
        let body: JSONValue = ["Detach": false, "Tty": false]
        _ = try attachedStream("POST", "/exec/\(execID)/start", query: [], body: .bytes(body.serialized(), contentType: "application/json"),
                               timeouts: timeouts, operation: operation, subject: .daemon) { demuxer.feed($0) }
        let output = demuxer.finish()
        // The stream ends when the process does; the exit code follows at once (poll briefly).
        var exitCode: Int64?
        for attempt in 0..<20 {
            let response = try call("GET", "/exec/\(execID)/json")
            try expect(response, [200], operation: "inspect exec \(execID.prefix(12))", subject: .daemon)
            let json = try decodeJSON(response, operation: "inspect exec \(execID.prefix(12))")
            if json["Running"]?.boolValue != true {
                exitCode = json["ExitCode"]?.intValue
                break
            }
            if attempt < 19 { usleep(50_000) }
        }
        return ExecRunResult(exitCode: exitCode, output: output)
    }

    /// A request whose 200 answer is an attached stream, fed to `sink` as it arrives (at most
    /// `maxAttachedStreamBytes`; returns true when the rest was left unread). Other statuses
    /// throw the daemon's error.
    func attachedStream(_ method: String, _ path: String, query: [(String, String)], body: RequestBody,
                        timeouts: DockerTimeouts, operation: String, subject: Subject,
                        sink: (UnsafeRawBufferPointer) -> Void) throws -> Bool {
        struct Enough: Error {}
        let request = HTTPRequest(method: method, target: try target(path, query: query, versioned: true), body: body)
        let label = UnixSocketHTTPClient.label(request)
        var status = 0
        var errorBody: [UInt8] = []
        var read = 0
        var cut = false
        do {
            try http.execute(request, timeouts: timeouts, onHead: { status = $0.status }) { chunk in
                guard status == 200 else {
                    Self.appendBounded(&errorBody, chunk)
                    return
                }
                read += chunk.count
                sink(chunk)
                if read >= Self.maxAttachedStreamBytes { throw Enough() }
            }
        } catch is Enough {
            cut = true
        } catch let failure as WireFailure {
            throw DockerError(.protocolError(indeterminate: true), "\(label): invalid answer from the Docker daemon (\(failure))")
        }
        if status != 200 {
            throw statusError(HTTPResponse(head: HTTPResponseHead(status: status, reason: "", headers: []), body: errorBody),
                              operation: operation, subject: subject)
        }
        return cut
    }
}
