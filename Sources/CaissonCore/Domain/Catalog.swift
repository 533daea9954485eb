import CaissonTOML

/// `services.toml` (FORMATS.md §3): the only services the updater may touch. Errors are fatal
/// (exit 1) and name the service and the field.
public struct Catalog: Sendable, Equatable {
    public var catalogVersion: Int
    public var services: [ServiceSpec]
    public var trust: Trust
    /// The folder the catalog was read from (relative compose files resolve against it).
    public var baseDirectory: String

    /// `[trust]`: trusted minisign public keys and whether a signature is required.
    public struct Trust: Sendable, Equatable {
        public var publicKeys: [String]
        public var requireSignature: Bool
        /// age identity files of this device (`AGE-SECRET-KEY-1…`), resolved against the
        /// catalog's folder: the keys encrypted packages are opened with.
        public var ageIdentities: [String] = []
        /// Refuse packages whose image is not encrypted (`encryption.required`).
        public var requireEncryption = false
        /// The highest scrypt work factor attempted for passphrase-encrypted packages.
        public var ageMaxWorkFactor = AgeScrypt.defaultMaxWorkFactor
        public init(publicKeys: [String] = [], requireSignature: Bool = false) {
            self.publicKeys = publicKeys
            self.requireSignature = requireSignature
        }
    }

    /// The `[trust]` keys of the encryption issue (15), for the catalog's known-key set.
    public static let encryptionTrustKeys = ["age_identities", "require_encryption", "age_max_work_factor"]

    public init(catalogVersion: Int = 1, services: [ServiceSpec], trust: Trust = Trust(), baseDirectory: String = ".") {
        self.catalogVersion = catalogVersion
        self.services = services
        self.trust = trust
        self.baseDirectory = baseDirectory
    }

    public func service(named name: String) -> ServiceSpec? {
        services.first { $0.name == name }
    }

    /// Parse catalog bytes. `path` is used for messages and to resolve relative compose files.
    public static func parse(_ bytes: [UInt8], path: String) throws(CaissonError) -> Catalog {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw CaissonError("catalog.invalid_utf8", "catalog \(path) is not valid UTF-8")
        }
        let table: TOMLTable
        do {
            table = try TOML.parse(bytes, limits: TOMLLimits(maxDepth: 32, maxInputBytes: 4 * 1024 * 1024))
        } catch {
            throw CaissonError("catalog.parse_failed", "catalog \(path): \(error.description)")
        }
        // Every key must be known (Catalog+Keys.swift) before anything is read.
        try checkKeys(table, path: path)
        let base = Paths.directory(of: path)
        var top = FieldReader(table: table, context: "catalog \(path)", code: "catalog.invalid")
        var version = 1
        switch table["catalog_version"] {
        case .integer(let v)?: version = Int(clamping: v)
        case nil: throw CaissonError("catalog.invalid", "catalog \(path): missing required field `catalog_version`")
        case let other?: throw CaissonError("catalog.invalid", "catalog \(path): `catalog_version` must be an integer, found \(other.typeDescription)")
        }
        guard version == 1 else {
            throw CaissonError("catalog.unsupported_version", "catalog \(path): catalog_version \(version) is not supported (this Caisson reads catalog_version 1)")
        }
        var services: [ServiceSpec] = []
        switch table["services"] {
        case nil:
            throw CaissonError("catalog.invalid", "catalog \(path): missing required `services` (one [[services]] table per service this device may update)")
        case .array(let items)?:
            for (i, item) in items.enumerated() {
                guard case .table(let t) = item else {
                    throw CaissonError("catalog.invalid", "catalog \(path): services[\(i)] must be a table ([[services]])")
                }
                services.append(try parseService(t, index: i, path: path, base: base))
            }
        case let other?:
            throw CaissonError("catalog.invalid", "catalog \(path): `services` must be an array of tables ([[services]]), found \(other.typeDescription)")
        }
        // Uniqueness.
        for (i, s) in services.enumerated() {
            if services[..<i].contains(where: { $0.name == s.name }) {
                throw CaissonError("catalog.invalid", "catalog \(path): service \"\(s.name)\": field `name`: the name is used by more than one service")
            }
            if let c = s.docker?.containerName, services[..<i].contains(where: { $0.docker?.containerName == c }) {
                throw CaissonError("catalog.invalid", "catalog \(path): service \"\(s.name)\": field `docker.container_name`: container \"\(c)\" is already managed by another service")
            }
            if let c = s.compose, services[..<i].contains(where: { $0.compose?.project == c.project && $0.compose?.service == c.service }) {
                throw CaissonError("catalog.invalid", "catalog \(path): service \"\(s.name)\": field `compose.service`: \(c.project)/\(c.service) is already managed by another service")
            }
        }
        var trust = Trust()
        if let t = top.optionalTable("trust") {
            var r = FieldReader(table: t, context: "catalog \(path)", code: "catalog.invalid", prefix: "trust.")
            if let keys = t["public_keys"] {
                guard case .array(let arr) = keys else {
                    throw CaissonError("catalog.invalid", "catalog \(path): `trust.public_keys` must be an array of strings")
                }
                for (i, k) in arr.enumerated() {
                    guard case .string(let s) = k, !s.trimmingSpaces.isEmpty else {
                        throw CaissonError("catalog.invalid", "catalog \(path): `trust.public_keys[\(i)]` must be a non-empty string (a minisign public key)")
                    }
                    trust.publicKeys.append(String(s.trimmingSpaces))
                }
            }
            trust.requireSignature = r.optionalBool("require_signature") ?? false
            if let ids = t["age_identities"] {
                guard case .array(let arr) = ids else {
                    throw CaissonError("catalog.invalid", "catalog \(path): `trust.age_identities` must be an array of strings (age identity files)")
                }
                for (i, v) in arr.enumerated() {
                    guard case .string(let s) = v, !s.trimmingSpaces.isEmpty else {
                        throw CaissonError("catalog.invalid", "catalog \(path): `trust.age_identities[\(i)]` must be a non-empty string (the path of an age identity file)")
                    }
                    trust.ageIdentities.append(Paths.resolve(String(s.trimmingSpaces), against: base))
                }
            }
            trust.requireEncryption = r.optionalBool("require_encryption") ?? false
            if let wf = r.optionalInteger("age_max_work_factor") {
                guard wf >= 1, wf <= 30 else {
                    throw CaissonError("catalog.invalid", "catalog \(path): `trust.age_max_work_factor` must be from 1 to 30 (2^N scrypt iterations), found \(wf)")
                }
                trust.ageMaxWorkFactor = Int(wf)
            }
            if let issue = r.issues.first { throw CaissonError(issue.code, issue.message) }
            if trust.requireEncryption && trust.ageIdentities.isEmpty {
                throw CaissonError("catalog.invalid", "catalog \(path): `trust.require_encryption` is true but `trust.age_identities` is empty: no package could ever be accepted")
            }
            if trust.requireSignature && trust.publicKeys.isEmpty {
                throw CaissonError("catalog.invalid", "catalog \(path): `trust.require_signature` is true but `trust.public_keys` is empty: no package could ever be accepted")
            }
        }
        if let issue = top.issues.first { throw CaissonError(issue.code, issue.message) }
        return Catalog(catalogVersion: version, services: services, trust: trust, baseDirectory: base)
    }

    static func parseService(_ t: TOMLTable, index: Int, path: String, base: String) throws(CaissonError) -> ServiceSpec {
        let label: String
        if case .string(let n)? = t["name"], !n.isEmpty { label = "service \"\(n)\"" } else { label = "services[\(index)]" }
        func err(_ field: String, _ why: String) -> CaissonError {
            CaissonError("catalog.invalid", "catalog \(path): \(label): field `\(field)`: \(why)")
        }
        func str(_ table: TOMLTable, _ key: String, _ field: String, required: Bool = true) throws(CaissonError) -> String? {
            guard let v = table[key] else {
                if required { throw err(field, "missing") }
                return nil
            }
            guard case .string(let s) = v else { throw err(field, "must be a string, found \(v.typeDescription)") }
            if s.trimmingSpaces.isEmpty { throw err(field, "must not be empty") }
            return s
        }
        func sub(_ key: String) throws(CaissonError) -> TOMLTable? {
            guard let v = t[key] else { return nil }
            guard case .table(let st) = v else { throw err(key, "must be a table ([services.\(key)]), found \(v.typeDescription)") }
            return st
        }
        func positive(_ table: TOMLTable, _ key: String, _ field: String, default d: Int, allowZero: Bool = false) throws(CaissonError) -> Int {
            guard let v = table[key] else { return d }
            guard case .integer(let i) = v else { throw err(field, "must be an integer, found \(v.typeDescription)") }
            guard allowZero ? i >= 0 : i > 0 else { throw err(field, "must be \(allowZero ? ">= 0" : "> 0"), found \(i)") }
            guard i <= 86_400 else { throw err(field, "must be at most 86400 seconds, found \(i)") }
            return Int(i)
        }

        let name = try str(t, "name", "name")!
        let revision = try str(t, "service_revision", "service_revision")!
        let platform = try str(t, "platform", "platform")!
        let modeText = try str(t, "runtime_mode", "runtime_mode")!
        guard let mode = RuntimeMode(rawValue: modeText) else {
            throw err("runtime_mode", "must be \"docker\" or \"compose\", found \"\(modeText)\"")
        }
        var docker: DockerTarget?
        var compose: ComposeTarget?
        let dockerT = try sub("docker")
        let composeT = try sub("compose")
        if dockerT != nil && composeT != nil {
            throw err(mode == .docker ? "compose" : "docker",
                      "the service has both [services.docker] and [services.compose]; runtime_mode \"\(mode.rawValue)\" uses only [services.\(mode.rawValue)]")
        }
        switch mode {
        case .docker:
            guard let d = dockerT else { throw err("docker", "runtime_mode is \"docker\" but the [services.docker] table is missing") }
            let container = try str(d, "container_name", "docker.container_name")!
            guard ContainerNames.isValid(container) else {
                throw err("docker.container_name", "\"\(container)\" is not a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")
            }
            docker = DockerTarget(containerName: container, imageReference: try str(d, "image_reference", "docker.image_reference")!)
        case .compose:
            guard let c = composeT else { throw err("compose", "runtime_mode is \"compose\" but the [services.compose] table is missing") }
            let file = try str(c, "file", "compose.file")!
            compose = ComposeTarget(project: try str(c, "project", "compose.project")!,
                                    file: Paths.resolve(file, against: base),
                                    service: try str(c, "service", "compose.service")!)
        }
        var health = HealthPolicy()
        if let h = try sub("health_check") {
            health = try parseHealthCheck(h, err: err, positive: positive)
        }
        var automatic = true
        if let r = try sub("rollback"), let a = r["automatic"] {
            guard case .boolean(let b) = a else { throw err("rollback.automatic", "must be true or false, found \(a.typeDescription)") }
            automatic = b
        }
        return ServiceSpec(name: name, serviceRevision: revision, platform: platform, runtimeMode: mode,
                           docker: docker, compose: compose, health: health, automaticRollback: automatic)
    }
}

extension Catalog {
    /// `[services.health_check]`: the kind, its probe fields (FORMATS §3 plus issue 12's http,
    /// tcp and exec), and the timings. A field that does not apply to the kind is an error, so a
    /// check that was meant to probe never silently degrades to "running".
    static func parseHealthCheck(_ h: TOMLTable, err: (String, String) -> CaissonError,
                                 positive: (TOMLTable, String, String, Int, Bool) throws(CaissonError) -> Int) throws(CaissonError) -> HealthPolicy {
        var health = HealthPolicy()
        if let k = h["kind"] {
            let kinds = HealthKind.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            guard case .string(let ks) = k else { throw err("health_check.kind", "must be one of \(kinds), found \(k.typeDescription)") }
            guard let kind = HealthKind(rawValue: ks) else { throw err("health_check.kind", "must be one of \(kinds), found \"\(ks)\"") }
            health.kind = kind
        }
        health.timeoutSecs = try positive(h, "timeout_secs", "health_check.timeout_secs", 30, false)
        health.pollIntervalSecs = try positive(h, "poll_interval_secs", "health_check.poll_interval_secs", 1, false)
        if h["stable_secs"] != nil {
            health.stableSecs = try positive(h, "stable_secs", "health_check.stable_secs", 5, true)
            guard health.stableSecs <= health.timeoutSecs else {
                throw err("health_check.stable_secs", "the stability window (\(health.stableSecs)s) must fit in timeout_secs (\(health.timeoutSecs)s)")
            }
        } else {
            health.stableSecs = min(5, health.timeoutSecs)
        }
        let kind = health.kind
        func only(_ key: String, _ kinds: [HealthKind]) throws(CaissonError) {
            if h[key] != nil && !kinds.contains(kind) {
                let names = kinds.map(\.rawValue).joined(separator: " and ")
                throw err("health_check.\(key)", "applies only to \(names) checks, not to kind \"\(kind.rawValue)\"")
            }
        }
        try only("port", [.http, .tcp])
        try only("path", [.http])
        try only("expect_status", [.http])
        try only("command", [.exec])
        try only("probe_timeout_secs", [.http, .tcp, .exec])

        if kind == .http || kind == .tcp {
            guard let v = h["port"] else {
                throw err("health_check.port", "missing: \(kind == .http ? "an http" : "a tcp") check needs the container port to probe")
            }
            guard case .integer(let p) = v else { throw err("health_check.port", "must be an integer, found \(v.typeDescription)") }
            guard (1...65_535).contains(p) else { throw err("health_check.port", "must be a port number from 1 to 65535, found \(p)") }
            health.port = Int(p)
        }
        if kind == .http {
            if let v = h["path"] {
                guard case .string(let path) = v else { throw err("health_check.path", "must be a string, found \(v.typeDescription)") }
                guard path.hasPrefix("/") else { throw err("health_check.path", "must start with \"/\", found \"\(path)\"") }
                guard path.utf8.count <= 2048, path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                    throw err("health_check.path", "must be at most 2048 printable ASCII characters without spaces (percent-encode others)")
                }
                health.path = path
            }
            if let v = h["expect_status"] {
                guard case .array(let items) = v else { throw err("health_check.expect_status", "must be an array of HTTP status codes, found \(v.typeDescription)") }
                guard !items.isEmpty else { throw err("health_check.expect_status", "must not be empty (leave it out to accept any 2xx or 3xx)") }
                var codes: [Int] = []
                for (i, item) in items.enumerated() {
                    guard case .integer(let c) = item, (100...599).contains(c) else {
                        throw err("health_check.expect_status[\(i)]", "must be an HTTP status code from 100 to 599")
                    }
                    codes.append(Int(c))
                }
                health.expectStatus = codes
            }
        }
        if kind == .exec {
            guard let v = h["command"] else {
                throw err("health_check.command", "missing: an exec check needs the command to run inside the container")
            }
            guard case .array(let items) = v else { throw err("health_check.command", "must be an array of strings (the program and its arguments), found \(v.typeDescription)") }
            guard !items.isEmpty else { throw err("health_check.command", "must not be empty") }
            var command: [String] = []
            for (i, item) in items.enumerated() {
                guard case .string(let arg) = item else { throw err("health_check.command[\(i)]", "must be a string, found \(item.typeDescription)") }
                guard !arg.utf8.contains(0) else { throw err("health_check.command[\(i)]", "must not contain a NUL character") }
                command.append(arg)
            }
            guard !command[0].trimmingSpaces.isEmpty else { throw err("health_check.command[0]", "the program must not be empty") }
            health.command = command
        }
        if kind.isProbe {
            let d = min(2, health.timeoutSecs)
            health.probeTimeoutSecs = try positive(h, "probe_timeout_secs", "health_check.probe_timeout_secs", d, false)
            guard health.probeTimeoutSecs <= health.timeoutSecs else {
                throw err("health_check.probe_timeout_secs", "one probe's deadline (\(health.probeTimeoutSecs)s) must fit in timeout_secs (\(health.timeoutSecs)s)")
            }
        }
        return health
    }
}

public enum ContainerNames {
    /// Docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (we also allow one character).
    public static func isValid(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.utf8.count <= 128 else { return false }
        func alnum(_ c: Unicode.Scalar) -> Bool { (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") }
        return alnum(first) && name.unicodeScalars.allSatisfy { alnum($0) || $0 == "_" || $0 == "." || $0 == "-" }
    }
}

/// Path arithmetic on strings (no file system access).
public enum Paths {
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// `relative` resolved against `base`; absolute paths are returned as they are. `.` and `..`
    /// components are folded so messages and compose invocations show a clean path.
    public static func resolve(_ relative: String, against base: String) -> String {
        let joined = relative.hasPrefix("/") ? relative : (base == "." ? relative : base + "/" + relative)
        return normalize(joined)
    }

    public static func normalize(_ path: String) -> String {
        let absolute = path.hasPrefix("/")
        var parts: [Substring] = []
        for comp in path.split(separator: "/", omittingEmptySubsequences: true) {
            if comp == "." { continue }
            if comp == "..", let last = parts.last, last != ".." { parts.removeLast(); continue }
            if comp == "..", absolute { continue }
            parts.append(comp)
        }
        let body = parts.joined(separator: "/")
        if absolute { return "/" + body }
        return body.isEmpty ? "." : body
    }
}
