import CaissonCore
import CaissonHTTP
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Failure evidence and health probes on a real daemon (issue 12).
extension DockerHost {
    public func containerDetails(_ nameOrID: String) throws(HostError) -> ContainerDetails? {
        try run {
            guard let c = try client.inspectContainerIfPresent(nameOrID) else { return nil }
            var d = Self.details(c)
            // `--network container:X` shares X's network stack: X's addresses are its own.
            if d.networkMode.hasPrefix("container:"),
               let other = try client.inspectContainerIfPresent(String(d.networkMode.dropFirst("container:".count))) {
                let o = Self.details(other)
                d.networks = o.networks
                if o.networkMode == "host" { d.networkMode = "host" }
            }
            return d
        }
    }

    public func containerLogs(_ nameOrID: String, limit: LogLimit) throws(HostError) -> LogTail {
        try run {
            let c = try client.inspectContainer(nameOrID)
            return try client.containerLogs(c.id, tty: c.config.raw["Tty"]?.boolValue ?? false, limit: limit)
        }
    }

    public func probe(_ request: ProbeRequest, timeoutMillis: Int64) throws(HostError) -> ProbeAnswer {
        let timeout = Duration.milliseconds(max(1, timeoutMillis))
        switch request {
        case .http, .tcp:
            return NetworkProbe.run(request, timeout: timeout)
        case .exec(let container, let command):
            let execID: String = try run { try client.createExec(container, command: command) }
            do {
                let result = try client.runExec(execID, timeout: timeout)
                guard let code = result.exitCode else { return .error("the daemon reported no exit code for the exec") }
                let text = result.output.lines.map(\.text).joined(separator: "\n")
                return .exited(code: Int(clamping: code), output: String(decoding: text.utf8.suffix(ProbeAnswer.maxOutputBytes), as: UTF8.self))
            } catch let error as DockerError {
                if case .timeout = error.kind { return .noAnswer(afterMillis: timeoutMillis) }
                throw Self.hostError(error)
            } catch {
                throw Self.hostError(error)
            }
        }
    }

    static func details(_ c: ContainerInspect) -> ContainerDetails {
        let health = c.raw["State"]?["Health"]?["Log"]?.arrayValue ?? []
        let log = health.map { e in
            HealthLogEntry(start: e["Start"]?.stringValue ?? "", end: e["End"]?.stringValue ?? "",
                           exitCode: Int(clamping: e["ExitCode"]?.intValue ?? -1), output: e["Output"]?.stringValue ?? "")
        }
        let mode = c.hostConfig["NetworkMode"]?.stringValue ?? "default"
        return ContainerDetails(info: containerInfo(c), oomKilled: c.state.oomKilled, error: c.state.error,
                                startedAt: c.state.startedAt ?? "", finishedAt: c.state.finishedAt ?? "",
                                healthLog: log, environment: c.config.env,
                                networks: c.networks.map { ContainerNetworkAddress(network: $0.name, ipAddress: $0.ipAddress ?? "") },
                                networkMode: mode == "default" ? "bridge" : mode,
                                tty: c.config.raw["Tty"]?.boolValue ?? false)
    }
}

/// http and tcp probes from the device to a container's address: one connection, bounded by the
/// probe's deadline from connect to the answer's status line (never longer).
enum NetworkProbe {
    static func run(_ request: ProbeRequest, timeout: Duration) -> ProbeAnswer {
        let millis = Int64(timeout.clampedNanoseconds / 1_000_000)
        let deadline = IODeadline(call: MonotonicInstant.now().advanced(by: timeout), idle: nil)
        let address: String, port: Int
        switch request {
        case .http(let a, let p, _), .tcp(let a, let p): (address, port) = (a, p)
        case .exec: return .error("not a network probe")
        }
        let socket: StreamSocket
        do {
            socket = try StreamSocket.connect(.tcp(host: address, port: UInt16(clamping: port)), deadline: deadline)
        } catch {
            return answer(error, millis)
        }
        defer { socket.close() }
        guard case .http(_, _, let path) = request else { return .connected }
        let host = address.utf8.contains(UInt8(ascii: ":")) ? "[\(address)]:\(port)" : "\(address):\(port)"
        let head = HTTPCodec.serializeHead(method: "GET", target: path,
                                           headers: [("Host", host), ("User-Agent", "caisson-health-probe"),
                                                     ("Accept", "*/*"), ("Connection", "close")], framing: .none)
        do {
            try socket.write(head, deadline: deadline)
        } catch {
            return answer(error, millis)
        }
        var reader = HTTPWireReader(socket: socket, deadline: deadline, bufferSize: 8 * 1024)
        do {
            return .httpStatus(try reader.readResponseHead().status)
        } catch .socket(let failure) {
            return answer(failure, millis)
        } catch .endOfStream {
            return .refused("the connection was closed without an answer")
        } catch {
            return .error("not an HTTP answer (\(error))")
        }
    }

    static func answer(_ failure: SocketFailure, _ millis: Int64) -> ProbeAnswer {
        switch failure {
        case .timedOut: return .noAnswer(afterMillis: millis)
        case .system(_, let code) where code == ECONNREFUSED: return .refused("connection refused")
        case .system(_, let code) where code == EHOSTUNREACH || code == ENETUNREACH: return .refused("no route to host")
        case .system(let operation, let code): return .refused("\(operation): \(errnoDescription(code))")
        case .pathTooLong(let p): return .error("invalid address \(p)")
        }
    }
}
