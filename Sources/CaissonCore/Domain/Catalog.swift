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
            if let k = h["kind"] {
                guard case .string(let ks) = k, let kind = HealthKind(rawValue: ks) else {
                    throw err("health_check.kind", "must be \"running\" or \"container_health\"")
                }
                health.kind = kind
            }
            health.timeoutSecs = try positive(h, "timeout_secs", "health_check.timeout_secs", default: 30)
            health.pollIntervalSecs = try positive(h, "poll_interval_secs", "health_check.poll_interval_secs", default: 1)
            if h["stable_secs"] != nil {
                health.stableSecs = try positive(h, "stable_secs", "health_check.stable_secs", default: 5, allowZero: true)
                guard health.stableSecs <= health.timeoutSecs else {
                    throw err("health_check.stable_secs", "the stability window (\(health.stableSecs)s) must fit in timeout_secs (\(health.timeoutSecs)s)")
                }
            } else {
                health.stableSecs = min(5, health.timeoutSecs)
            }
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
