import CaissonCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How `DockerHost` runs Docker Compose v2.
public struct ComposeSettings: Sendable, Equatable {
    /// The command and its leading arguments: `["docker", "compose"]` (the CLI plugin) or a
    /// standalone `["docker-compose"]`. A bare name is looked up on `PATH`.
    public var command: [String]
    /// The longest an `up` may take before it is killed (the outcome is then indeterminate).
    public var timeout: Duration

    public init(command: [String] = ["docker", "compose"], timeout: Duration = .seconds(600)) {
        self.command = command
        self.timeout = timeout
    }
}

extension DockerHost {
    public static let composeProjectLabel = "com.docker.compose.project"
    public static let composeServiceLabel = "com.docker.compose.service"
    public static let composeOneoffLabel = "com.docker.compose.oneoff"

    /// The service's containers (by Compose's project/service labels, one-off `run` containers
    /// excluded), inspected, sorted by name.
    public func composeContainers(_ target: ComposeTarget) throws(HostError) -> [ContainerInfo] {
        try run {
            let filters = ContainerListFilters(labels: ["\(Self.composeProjectLabel)=\(target.project)",
                                                        "\(Self.composeServiceLabel)=\(target.service)"])
            var result: [ContainerInfo] = []
            for summary in try client.listContainers(all: true, filters: filters)
            where summary.labels[Self.composeOneoffLabel]?.lowercased() != "true" {
                // A container removed between list and inspect is simply gone.
                if let container = try client.inspectContainerIfPresent(summary.id) {
                    result.append(Self.containerInfo(container))
                }
            }
            return result.sorted { ($0.name, $0.id) < ($1.name, $1.id) }
        }
    }

    /// `docker compose -p P -f FILE -f OVERRIDE up -d --no-deps --no-build --pull never SERVICE`,
    /// the override pinning only the service's image. Never pulls (air-gapped): the image must be
    /// loaded already. A non-zero exit is `.failed` (with Compose's last output lines); a timeout
    /// kills Compose and is `.indeterminate`.
    public func composeApply(_ target: ComposeTarget, imageReference: String) throws(HostError) {
        guard FileManager.default.fileExists(atPath: target.file) else {
            throw HostError(.failed, "compose file \(target.file) does not exist")
        }
        var template = Array("/tmp/caisson-compose-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw HostError(.failed, "cannot create a temporary folder for the compose override: \(errnoDescription(errno))")
        }
        let directory = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let override = directory + "/caisson-override.yaml"
        let logPath = directory + "/compose.log"
        do {
            try Self.overrideYAML(service: target.service, image: imageReference)
                .write(toFile: override, atomically: true, encoding: .utf8)
        } catch {
            throw HostError(.failed, "cannot write the compose override \(override): \(error)")
        }
        let arguments = ["-p", target.project, "-f", target.file, "-f", override,
                         "up", "-d", "--no-deps", "--no-build", "--pull", "never", target.service]
        let outcome = try runCompose(arguments, logPath: logPath)
        switch outcome {
        case .exited(0):
            return
        case .exited(let code):
            throw HostError(.failed, "docker compose up \(target.service) (project \(target.project)) failed with exit status \(code): \(Self.tail(of: logPath))")
        case .timedOut:
            throw HostError(.indeterminate, "docker compose up \(target.service) (project \(target.project)) did not finish within \(compose.timeout.shortDescription) and was stopped; the service may or may not have been recreated: \(Self.tail(of: logPath))")
        }
    }

    /// The override file: valid YAML made of JSON-quoted scalars (no YAML escaping pitfalls).
    static func overrideYAML(service: String, image: String) -> String {
        func quoted(_ text: String) -> String { String(decoding: JSONValue.string(text).serialized(), as: UTF8.self) }
        return "# Written by caisson: pins only the image of the service being updated.\nservices:\n  \(quoted(service)):\n    image: \(quoted(image))\n"
    }

    enum ProcessOutcome: Equatable {
        case exited(Int32)
        case timedOut
    }

    /// Runs the compose command against this host's daemon, output to `logPath`, bounded by
    /// `compose.timeout` (SIGTERM, then SIGKILL after 10 s).
    func runCompose(_ arguments: [String], logPath: String) throws(HostError) -> ProcessOutcome {
        var environment = ProcessInfo.processInfo.environment
        environment["DOCKER_HOST"] = "unix://\(client.socketPath)"
        guard let first = compose.command.first, let executable = Self.resolveExecutable(first, path: environment["PATH"]) else {
            throw HostError(.failed, "cannot run docker compose: '\(compose.command.first ?? "")' not found on PATH")
        }
        guard FileManager.default.createFile(atPath: logPath, contents: nil),
              let log = FileHandle(forWritingAtPath: logPath) else {
            throw HostError(.failed, "cannot create \(logPath)")
        }
        defer { try? log.close() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Array(compose.command.dropFirst()) + arguments
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        do {
            try process.run()
        } catch {
            throw HostError(.failed, "cannot run \(executable): \(error)")
        }
        let deadline = MonotonicInstant.now().advanced(by: compose.timeout)
        while process.isRunning {
            if deadline <= MonotonicInstant.now() {
                process.terminate()
                let killAt = MonotonicInstant.now().advanced(by: .seconds(10))
                while process.isRunning && MonotonicInstant.now() < killAt { usleep(50_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                process.waitUntilExit()
                return .timedOut
            }
            usleep(20_000)
        }
        process.waitUntilExit()
        return .exited(process.terminationStatus)
    }

    static func resolveExecutable(_ name: String, path: String?) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        for directory in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// The last lines of a log (at most 2 KiB), on one line.
    static func tail(of path: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else { return "(no output)" }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > 2048 ? size - 2048 : 0)
        let data = (try? handle.readToEnd()) ?? nil
        let text = String(decoding: data ?? Data(), as: UTF8.self)
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            .suffix(8).joined(separator: " | ")
        return text.isEmpty ? "(no output)" : text
    }
}
