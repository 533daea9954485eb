import CaissonTOML

/// The manifest of an updater package (issue 14): the same `.edgepkg` and `manifest.toml`, holding
/// the `caisson` executable instead of an image.
///
/// ```toml
/// format_version  = 1
/// package_type    = "updater"
/// package_version = "0.3.0"                  # the version the executable reports (caisson --version)
/// created_at      = "2026-03-16T18:30:00Z"
/// [updater]
/// platform = "linux/amd64"                   # checked against the ELF header of the executable
/// sha256   = "…64 hex…"                      # of the executable (the signature binds it through these)
/// size     = 12345678
/// [compatibility]                            # optional
/// min_updater_version = "0.2.0"              # the Caisson doing the self-update must be at least this
/// ```
/// Unknown keys are ignored, as in service manifests.
public struct UpdaterManifest: Sendable, Equatable, Codable {
    public static let packageType = "updater"
    /// The package entry holding the executable.
    public static let executableEntry = "caisson"

    public var formatVersion: Int
    public var packageVersion: String
    public var createdAt: String
    public var platform: String
    public var sha256: String
    public var size: Int64
    public var minUpdaterVersion: String?

    public init(packageVersion: String, createdAt: String, platform: String, sha256: String, size: Int64,
                minUpdaterVersion: String? = nil) {
        self.formatVersion = 1
        self.packageVersion = packageVersion
        self.createdAt = createdAt
        self.platform = platform
        self.sha256 = sha256
        self.size = size
        self.minUpdaterVersion = minUpdaterVersion
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version"
        case packageVersion = "package_version"
        case createdAt = "created_at"
        case platform, sha256, size
        case minUpdaterVersion = "min_updater_version"
    }

    /// The `package_type` of a manifest, when it can be read at all (to tell an updater package
    /// from a service package before validating it as one or the other).
    public static func packageType(of bytes: [UInt8]) -> String? {
        guard let table = try? TOML.parse(bytes, limits: TOMLLimits(maxDepth: 32, maxInputBytes: Manifest.maxBytes)),
              case .string(let t)? = table["package_type"] else { return nil }
        return t
    }

    /// Parses an updater manifest: the manifest (when complete) and every issue found.
    public static func parse(_ bytes: [UInt8]) -> (UpdaterManifest?, [Issue]) {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            return (nil, [Issue("manifest.invalid_utf8", "manifest.toml is not valid UTF-8")])
        }
        let table: TOMLTable
        do {
            table = try TOML.parse(bytes, limits: TOMLLimits(maxDepth: 32, maxInputBytes: Manifest.maxBytes))
        } catch {
            return (nil, [Issue("manifest.parse_failed", "manifest.toml: \(error.description)")])
        }
        var issues: [Issue] = []
        var r = FieldReader(table: table, context: "manifest.toml", code: "manifest.parse_failed")
        var formatVersion = 0
        switch table["format_version"] {
        case .integer(let v)?: formatVersion = Int(clamping: v)
        case .string(let s)?: formatVersion = Int(s) ?? -1
        case nil: r.issues.append(Issue("manifest.parse_failed", "manifest.toml: missing required field `format_version`"))
        case let other?: r.issues.append(Issue("manifest.parse_failed", "manifest.toml: `format_version` must be an integer, found \(other.typeDescription)"))
        }
        if table["format_version"] != nil && formatVersion != 1 && r.issues.isEmpty {
            issues.append(Issue("manifest.unsupported_format_version", "manifest format_version \(Manifest.render(table["format_version"])) is not supported (this Caisson reads format_version 1)"))
        }
        if let t = r.string("package_type"), t != packageType {
            r.issues.append(Issue("manifest.parse_failed", "manifest.toml: `package_type` must be \"\(packageType)\" for an updater package, found \"\(t)\""))
        }
        let version = r.string("package_version")
        var createdAt: String?
        switch table["created_at"] {
        case .string(let s)?: createdAt = s
        case .datetime(let dt)? where dt.kind == .offsetDateTime: createdAt = dt.rfc3339
        case .datetime(let dt)?:
            issues.append(Issue("manifest.invalid_created_at", "created_at must be an RFC 3339 date-time with a time zone, found \(dt.kind.typeDescription) \(dt.rfc3339)"))
            createdAt = ""
        case nil: r.issues.append(Issue("manifest.parse_failed", "manifest.toml: missing required field `created_at`"))
        case let other?: r.issues.append(Issue("manifest.parse_failed", "manifest.toml: `created_at` must be a string or a date-time, found \(other.typeDescription)"))
        }
        let updaterT = r.table("updater")
        var u = FieldReader(table: updaterT ?? TOMLTable(), context: "manifest.toml", code: "manifest.parse_failed", prefix: "updater.")
        let platform = updaterT == nil ? nil : u.string("platform")
        let sha = updaterT == nil ? nil : u.string("sha256")
        var size: Int64?
        if updaterT != nil {
            size = u.optionalInteger("size")
            if size == nil && updaterT?["size"] == nil {
                u.issues.append(Issue("manifest.parse_failed", "manifest.toml: missing required field `updater.size`"))
            }
        }
        var minUpdater: String?
        if let compat = r.optionalTable("compatibility") {
            var c = FieldReader(table: compat, context: "manifest.toml", code: "manifest.parse_failed", prefix: "compatibility.")
            minUpdater = c.optionalString("min_updater_version")
            issues += c.issues
        }
        issues = r.issues + u.issues + issues
        guard let version, let createdAt, let platform, let sha, let size,
              issues.allSatisfy({ $0.code != "manifest.parse_failed" }) else {
            return (nil, issues)
        }
        for (name, value) in [("package_version", version), ("updater.platform", platform)] where value.trimmingSpaces.isEmpty {
            issues.append(Issue("manifest.empty_field", "manifest field `\(name)` is empty"))
        }
        if !version.isEmpty && SemVer(version) == nil {
            issues.append(Issue("manifest.invalid_package_version", "package_version \"\(version)\" is not a SemVer 2.0 version (e.g. 1.2.3)"))
        }
        if !createdAt.isEmpty && Timestamps.parse(createdAt) == nil {
            issues.append(Issue("manifest.invalid_created_at", "created_at \"\(createdAt)\" is not an RFC 3339 date-time (e.g. 2026-03-16T18:30:00Z)"))
        }
        if let minUpdater, SemVer(minUpdater) == nil {
            issues.append(Issue("manifest.invalid_min_updater_version", "compatibility.min_updater_version \"\(minUpdater)\" is not a SemVer 2.0 version"))
        }
        let hex = sha.hasPrefix("sha256:") ? String(sha.dropFirst(7)) : sha
        var shaNorm = ""
        if hex.count == 64 && hex.allSatisfy({ $0.isHexDigit }) {
            shaNorm = hex.lowercased()
        } else {
            issues.append(Issue("manifest.invalid_updater_sha256", "updater.sha256 must be 64 hexadecimal digits (the SHA-256 of the executable)"))
        }
        if size <= 0 {
            issues.append(Issue("manifest.invalid_updater_size", "updater.size must be a positive number of bytes, found \(size)"))
        }
        var m = UpdaterManifest(packageVersion: version, createdAt: createdAt, platform: platform, sha256: shaNorm,
                                size: size, minUpdaterVersion: minUpdater)
        m.formatVersion = formatVersion
        return (m, issues)
    }

    /// The manifest as `package build --updater` writes it (keys in a fixed order).
    public func render() -> String {
        var s = """
        format_version = 1
        package_type = "\(Self.packageType)"
        package_version = "\(packageVersion)"
        created_at = "\(createdAt)"

        [updater]
        platform = "\(platform)"
        sha256 = "\(sha256)"
        size = \(size)

        """
        if let minUpdaterVersion {
            s += """

            [compatibility]
            min_updater_version = "\(minUpdaterVersion)"

            """
        }
        return s
    }
}
