import CaissonHTTP
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
    /// The longest a `config` (reading the project model; no side effects) may take.
    public var modelTimeout: Duration

    public init(command: [String] = ["docker", "compose"], timeout: Duration = .seconds(600),
                modelTimeout: Duration = .seconds(60)) {
        self.command = command
        self.timeout = timeout
        self.modelTimeout = modelTimeout
    }
}

/// What a cached project model was read from: the compose file's identity and modification time.
struct ComposeFileStamp: Equatable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var modifiedSeconds: Int
    var modifiedNanos: Int
}

extension DockerHost {
    public static let composeProjectLabel = "com.docker.compose.project"
    public static let composeServiceLabel = "com.docker.compose.service"
    public static let composeOneoffLabel = "com.docker.compose.oneoff"

    // MARK: - The project model

    /// `docker compose [-p P] -f FILE config --format json`, run in the file's folder (so
    /// `.env`, `env_file` and other relative paths resolve as they do for the operator), bounded
    /// by `compose.modelTimeout`. `allProfiles` adds `--profile '*'`. Cached per file and
    /// project until the file changes.
    public func composeModel(_ target: ComposeTarget, allProfiles: Bool = false) throws(HostError) -> ComposeModel {
        let file = Self.absolutePath(target.file)
        guard let stamp = Self.stamp(of: file) else {
            throw HostError(.failed, "compose file \(file) does not exist or is not a readable file")
        }
        let key = "\(target.project)\u{0}\(file)\u{0}\(allProfiles)"
        if let cached = composeModelCache[key], cached.stamp == stamp { return cached.model }
        var arguments: [String] = []
        if !target.project.isEmpty { arguments += ["-p", target.project] }
        arguments += ["-f", file]
        if allProfiles { arguments += ["--profile", "*"] }
        arguments += ["config", "--format", "json"]
        let model: ComposeModel = try Self.withScratchFolder { folder throws(HostError) in
            let output = folder + "/config.json", log = folder + "/compose.log"
            let outcome = try runCompose(arguments, directory: Self.folder(of: file), stdoutPath: output, stderrPath: log,
                                         timeout: compose.modelTimeout)
            let what = "docker compose config of \(file)\(target.project.isEmpty ? "" : " (project \(target.project))")"
            switch outcome {
            case .exited(0):
                return try ComposeModel.parse(Self.readBounded(output, limit: ComposeModel.maxBytes, what: what))
            case .exited(let code):
                throw HostError(.failed, "\(what) failed with exit status \(code): \(Self.tail(of: log))")
            case .timedOut:
                throw HostError(.failed, "\(what) did not finish within \(compose.modelTimeout.shortDescription) and was stopped: \(Self.tail(of: log))")
            }
        }
        if !target.project.isEmpty && model.name != target.project {
            throw HostError(.failed, "docker compose config of \(file) reports project \(model.name), not \(target.project) as passed with -p")
        }
        composeModelCache[key] = (stamp, model)
        return model
    }

    /// The project model and the target's service in it, or a clear error naming the services
    /// the file does define. A service behind a profile appears only when that profile is on
    /// (`up SERVICE` turns it on), so a miss is checked again with every profile enabled.
    public func composeService(_ target: ComposeTarget) throws(HostError) -> (model: ComposeModel, service: ComposeModel.Service) {
        let model = try composeModel(target)
        if let service = model.services[target.service] { return (model, service) }
        let everything = try composeModel(target, allProfiles: true)
        if let service = everything.services[target.service] { return (everything, service) }
        let names = everything.serviceNames
        throw HostError(.failed, "compose file \(Self.absolutePath(target.file)) (project \(everything.name)) has no service \"\(target.service)\"; "
            + (names.isEmpty ? "it defines no services" : "it defines: \(names.joined(separator: ", "))"))
    }

    // MARK: - ContainerHost (Compose mode)

    public func composeServiceFacts(_ target: ComposeTarget) throws(HostError) -> ComposeServiceFacts {
        let (model, service) = try composeService(target)
        let dependents = model.serviceNames.filter { model.services[$0]?.networkMode == "service:\(service.name)" }
        return ComposeServiceFacts(image: service.image, networkDependents: dependents)
    }

    public func composeUp(_ target: ComposeTarget, services: [String]) throws(HostError) {
        guard !services.isEmpty else { return }
        let file = Self.absolutePath(target.file)
        let (model, _) = try composeService(target)
        try Self.withScratchFolder { directory throws(HostError) in
            let logPath = directory + "/compose.log"
            let arguments = ["-p", model.name, "-f", file, "up", "-d", "--no-deps", "--no-build", "--pull", "never"] + services
            let what = "docker compose up \(services.joined(separator: " ")) (project \(model.name))"
            switch try runCompose(arguments, directory: Self.folder(of: file), stdoutPath: logPath, stderrPath: nil, timeout: compose.timeout) {
            case .exited(0): return
            case .exited(let code): throw HostError(.failed, "\(what) failed with exit status \(code): \(Self.tail(of: logPath))")
            case .timedOut: throw HostError(.indeterminate, "\(what) did not finish within \(compose.timeout.shortDescription) and was stopped: \(Self.tail(of: logPath))")
            }
        }
    }

    /// The service's containers (by Compose's project/service labels, with the project name the
    /// model reports; one-off `run` containers excluded), inspected, sorted by name. Fails
    /// clearly when the file has no such service, or when a foreign container holds the
    /// service's `container_name` (Compose could not create the service's container).
    public func composeContainers(_ target: ComposeTarget) throws(HostError) -> [ContainerInfo] {
        let (model, service) = try composeService(target)
        let result: [ContainerInfo] = try run {
            let filters = ContainerListFilters(labels: ["\(Self.composeProjectLabel)=\(model.name)",
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
        if result.isEmpty, let name = service.containerName, let holder = try inspectContainer(name) {
            let project = holder.labels[Self.composeProjectLabel].map { "project \($0)" } ?? "no compose project"
            throw HostError(.conflict, "container \(name) (the container_name of compose service \(target.service)) belongs to \(project), not to \(model.name)/\(target.service); remove or rename it")
        }
        return result
    }

    /// `docker compose -p P -f FILE [-f OVERRIDE] up -d --no-deps --no-build --pull never SERVICE`
    /// in the file's folder; the override pins only the service's image, and is left out when
    /// `imageReference` is the file's own `image:`. The project model is
    /// read first: a missing file or service fails before anything changes. Never pulls
    /// (air-gapped): the image must be loaded already. A non-zero exit is `.failed` (with
    /// Compose's last output lines); a timeout kills Compose and is `.indeterminate`.
    public func composeApply(_ target: ComposeTarget, imageReference: String) throws(HostError) {
        let file = Self.absolutePath(target.file)
        let (model, service) = try composeService(target)
        // The file's own image (the update moved that tag): apply the file as it is, so the
        // container's labels name no temporary file and a later `up` finds nothing to change.
        let asWritten = service.image == imageReference
        try Self.withScratchFolder { directory throws(HostError) in
            let override = directory + "/caisson-override.yaml"
            let logPath = directory + "/compose.log"
            if !asWritten {
                do {
                    try Self.overrideYAML(service: target.service, image: imageReference)
                        .write(toFile: override, atomically: true, encoding: .utf8)
                } catch {
                    throw HostError(.failed, "cannot write the compose override \(override): \(error)")
                }
            }
            let arguments = ["-p", model.name, "-f", file] + (asWritten ? [] : ["-f", override])
                + ["up", "-d", "--no-deps", "--no-build", "--pull", "never", target.service]
            let outcome = try runCompose(arguments, directory: Self.folder(of: file), stdoutPath: logPath, stderrPath: nil,
                                         timeout: compose.timeout)
            switch outcome {
            case .exited(0):
                return
            case .exited(let code):
                throw HostError(.failed, "docker compose up \(target.service) (project \(model.name)) failed with exit status \(code): \(Self.tail(of: logPath))")
            case .timedOut:
                throw HostError(.indeterminate, "docker compose up \(target.service) (project \(model.name)) did not finish within \(compose.timeout.shortDescription) and was stopped; the service may or may not have been recreated: \(Self.tail(of: logPath))")
            }
        }
    }

    /// The override file: valid YAML made of JSON-quoted scalars (no YAML escaping pitfalls).
    static func overrideYAML(service: String, image: String) -> String {
        func quoted(_ text: String) -> String { String(decoding: JSONValue.string(text).serialized(), as: UTF8.self) }
        return "# Written by caisson: pins only the image of the service being updated.\nservices:\n  \(quoted(service)):\n    image: \(quoted(image))\n"
    }

    // MARK: - Subprocesses

    enum ProcessOutcome: Equatable {
        case exited(Int32)
        case timedOut
    }

    /// Runs the compose command against this host's daemon in `directory`, stdout to
    /// `stdoutPath` and stderr to `stderrPath` (or also to `stdoutPath`), bounded by `timeout`:
    /// then its whole process group gets SIGTERM, and SIGKILL 10 s later (`Subprocess`).
    func runCompose(_ arguments: [String], directory: String, stdoutPath: String, stderrPath: String?,
                    timeout: Duration) throws(HostError) -> ProcessOutcome {
        var environment = ProcessInfo.processInfo.environment
        environment["DOCKER_HOST"] = "unix://\(client.socketPath)"
        guard let first = compose.command.first, let executable = Self.resolveExecutable(first, path: environment["PATH"]) else {
            throw HostError(.failed, "cannot run docker compose: '\(compose.command.first ?? "")' not found on PATH")
        }
        switch try Subprocess.run(executable, Array(compose.command.dropFirst()) + arguments, environment: environment,
                                  directory: directory, stdoutPath: stdoutPath, stderrPath: stderrPath, timeout: timeout) {
        case .exited(let code): return .exited(code)
        case .signalled(let signal): return .exited(128 + signal)
        case .timedOut: return .timedOut
        }
    }

    static func resolveExecutable(_ name: String, path: String?) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        for directory in (path ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// A private temporary folder for one compose call, removed afterwards.
    static func withScratchFolder<T>(_ body: (String) throws(HostError) -> T) throws(HostError) -> T {
        var template = Array("/tmp/caisson-compose-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw HostError(.failed, "cannot create a temporary folder for docker compose: \(errnoDescription(errno))")
        }
        let directory = String(cString: made)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try body(directory)
    }

    /// `path` made absolute against the current directory (catalog paths already are).
    static func absolutePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true))
            .standardizedFileURL.path
    }

    static func folder(of file: String) -> String {
        let parent = URL(fileURLWithPath: file).deletingLastPathComponent().path
        return parent.isEmpty ? "/" : parent
    }

    /// The identity of a regular file, or nil when it is missing or not a regular file.
    static func stamp(of path: String) -> ComposeFileStamp? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return ComposeFileStamp(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                                modifiedSeconds: Int(info.st_mtim.tv_sec), modifiedNanos: Int(info.st_mtim.tv_nsec))
    }

    /// A whole small file, refusing one larger than `limit`.
    static func readBounded(_ path: String, limit: Int, what: String) throws(HostError) -> [UInt8] {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw HostError(.failed, "\(what): cannot read its output") }
        defer { try? handle.close() }
        let data: Data?
        do {
            data = try handle.read(upToCount: limit + 1)
        } catch {
            throw HostError(.failed, "\(what): cannot read its output: \(error)")
        }
        let bytes = [UInt8](data ?? Data())
        guard bytes.count <= limit else { throw HostError(.failed, "\(what) printed more than \(limit) bytes") }
        return bytes
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
