import CaissonTOML

/// `manifest.toml` (FORMATS.md §2). Parsing never throws: it returns the manifest (when it could
/// be read at all) and every issue found, with the Rust tool's codes.
public struct Manifest: Sendable, Equatable, Codable {
    public var formatVersion: Int
    public var packageType: String
    public var packageVersion: String
    /// As written (a string, or a TOML datetime rendered in RFC 3339).
    public var createdAt: String
    public var target: Target
    public var image: Image
    public var minUpdaterVersion: String?
    /// `[encryption]`: the image is `image.tar.age`, an age file of image.tar (issue 15).
    public var encryption: Encryption?
    /// `[thin]`: image.tar leaves out layers the device holds (issue 16, `Manifest+Thin.swift`).
    public var thin: Thin?

    /// What the signed manifest binds of an encrypted image: the age file itself (its size and
    /// SHA-256); the plaintext is bound by `[image] sha256` and `size` as for a clear package.
    public struct Encryption: Sendable, Equatable, Codable {
        /// `age-encryption.org/v1`.
        public var format: String
        /// SHA-256 (lowercase hex) of `image.tar.age`.
        public var sha256: String?
        /// Size of `image.tar.age` in bytes.
        public var size: Int64?

        public static let ageFormat = "age-encryption.org/v1"
    }

    public struct Target: Sendable, Equatable, Codable {
        public var service: String
        public var serviceRevision: String
        public var platform: String
    }

    public struct Image: Sendable, Equatable, Codable {
        public var reference: String
        /// Optional: SHA-256 of `image.tar` (64 lowercase hex).
        public var sha256: String?
        /// Optional: size of `image.tar` in bytes.
        public var size: Int64?
    }

    public static let maxBytes = 64 * 1024

    public static func parse(_ bytes: [UInt8]) -> (Manifest?, [Issue]) {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            return (nil, [Issue("manifest.invalid_utf8", "manifest.toml is not valid UTF-8")])
        }
        let table: TOMLTable
        do {
            table = try TOML.parse(bytes, limits: TOMLLimits(maxDepth: 32, maxInputBytes: maxBytes))
        } catch {
            return (nil, [Issue("manifest.parse_failed", "manifest.toml: \(error.description)")])
        }
        var issues: [Issue] = []
        var r = FieldReader(table: table, context: "manifest.toml", code: "manifest.parse_failed")

        // format_version: integer 1, or the string "1". As the Rust tool reads it (a u64, or a
        // string parsed as one): anything that is not a non-negative integer cannot be read at
        // all (`manifest.parse_failed`); another number is an unsupported version.
        var formatVersion = 0
        switch table["format_version"] {
        case .integer(let v)? where v >= 0:
            formatVersion = Int(clamping: v)
        case .integer(let v)?:
            r.issues.append(Issue("manifest.parse_failed", "manifest.toml: `format_version` must be a non-negative integer, found \(v)"))
        case .string(let s)?:
            if let v = UInt64(s) {
                formatVersion = Int(clamping: v)
            } else {
                r.issues.append(Issue("manifest.parse_failed", "manifest.toml: `format_version` must be an integer (or a string holding one, such as \"1\"), found \"\(s)\""))
            }
        case nil:
            r.issues.append(Issue("manifest.parse_failed", "manifest.toml: missing required field `format_version`"))
        case let other?:
            r.issues.append(Issue("manifest.parse_failed", "manifest.toml: `format_version` must be an integer, found \(other.typeDescription)"))
        }
        if table["format_version"] != nil && formatVersion != 1 && r.issues.isEmpty {
            issues.append(Issue("manifest.unsupported_format_version", "manifest format_version \(Self.render(table["format_version"])) is not supported (this Caisson reads format_version 1)"))
        }

        let packageType = r.string("package_type")
        if let t = packageType, t != "service", t != "service-update" {
            r.issues.append(Issue("manifest.parse_failed", "manifest.toml: `package_type` must be \"service\" (or \"service-update\"), found \"\(t)\""))
        }
        let packageVersion = r.string("package_version")
        var createdAt: String?
        switch table["created_at"] {
        case .string(let s)?: createdAt = s
        case .datetime(let dt)?:
            if dt.kind == .offsetDateTime { createdAt = dt.rfc3339 } else {
                issues.append(Issue("manifest.invalid_created_at", "created_at must be an RFC 3339 date-time with a time zone, found \(dt.kind.typeDescription) \(dt.rfc3339)"))
                createdAt = ""
            }
        case nil: r.issues.append(Issue("manifest.parse_failed", "manifest.toml: missing required field `created_at`"))
        case let other?: r.issues.append(Issue("manifest.parse_failed", "manifest.toml: `created_at` must be a string or a date-time, found \(other.typeDescription)"))
        }
        let targetT = r.table("target")
        var t = FieldReader(table: targetT ?? TOMLTable(), context: "manifest.toml", code: "manifest.parse_failed", prefix: "target.")
        let service = targetT == nil ? nil : t.string("service")
        let revision = targetT == nil ? nil : t.string("service_revision")
        let platform = targetT == nil ? nil : t.string("platform")
        let imageT = r.table("image")
        var im = FieldReader(table: imageT ?? TOMLTable(), context: "manifest.toml", code: "manifest.parse_failed", prefix: "image.")
        let reference = imageT == nil ? nil : im.string("reference")
        let sha = imageT == nil ? nil : im.optionalString("sha256")
        let size = imageT == nil ? nil : im.optionalInteger("size")
        var minUpdater: String?
        if let compat = r.optionalTable("compatibility") {
            var c = FieldReader(table: compat, context: "manifest.toml", code: "manifest.parse_failed", prefix: "compatibility.")
            minUpdater = c.optionalString("min_updater_version")
            issues += c.issues
        }
        var encryption: Manifest.Encryption?
        if let enc = r.optionalTable("encryption") {
            var e = FieldReader(table: enc, context: "manifest.toml", code: "manifest.parse_failed", prefix: "encryption.")
            let format = e.string("format")
            let esha = e.optionalString("sha256")
            let esize = e.optionalInteger("size")
            issues += e.issues
            if let format {
                if format != Encryption.ageFormat {
                    issues.append(Issue("encryption.unsupported", "manifest encryption.format \"\(format)\" is not supported (only \"\(Encryption.ageFormat)\")"))
                }
                var shaNorm: String?
                if let esha {
                    let hex = esha.hasPrefix("sha256:") ? String(esha.dropFirst(7)) : esha
                    if hex.count == 64 && hex.allSatisfy({ $0.isHexDigit }) { shaNorm = hex.lowercased() } else {
                        issues.append(Issue("manifest.invalid_encryption_sha256", "encryption.sha256 must be 64 hexadecimal digits (the SHA-256 of image.tar.age)"))
                    }
                }
                if let esize, esize <= 0 {
                    issues.append(Issue("manifest.invalid_encryption_size", "encryption.size must be a positive number of bytes, found \(esize)"))
                }
                encryption = Encryption(format: format, sha256: shaNorm, size: esize)
            }
        }
        let (thin, thinIssues) = Self.parseThin(table)
        issues = r.issues + t.issues + im.issues + issues + thinIssues
        guard let packageType, let packageVersion, let createdAt, let service, let revision, let platform, let reference,
              issues.allSatisfy({ $0.code != "manifest.parse_failed" }) else {
            return (nil, issues)
        }

        // Field rules.
        for (name, value) in [("package_version", packageVersion), ("target.service", service),
                              ("target.service_revision", revision), ("target.platform", platform),
                              ("image.reference", reference)] where value.trimmingSpaces.isEmpty {
            issues.append(Issue("manifest.empty_field", "manifest field `\(name)` is empty"))
        }
        if !packageVersion.isEmpty && SemVer(packageVersion) == nil {
            issues.append(Issue("manifest.invalid_package_version", "package_version \"\(packageVersion)\" is not a SemVer 2.0 version (e.g. 1.2.3)"))
        }
        if !createdAt.isEmpty && Timestamps.parse(createdAt) == nil {
            issues.append(Issue("manifest.invalid_created_at", "created_at \"\(createdAt)\" is not an RFC 3339 date-time (e.g. 2026-03-16T18:30:00Z)"))
        }
        if let minUpdater, SemVer(minUpdater) == nil {
            issues.append(Issue("manifest.invalid_min_updater_version", "compatibility.min_updater_version \"\(minUpdater)\" is not a SemVer 2.0 version"))
        }
        var shaNorm: String?
        if let sha {
            let hex = sha.hasPrefix("sha256:") ? String(sha.dropFirst(7)) : sha
            if hex.count == 64 && hex.allSatisfy({ $0.isHexDigit }) {
                shaNorm = hex.lowercased()
            } else {
                issues.append(Issue("manifest.invalid_image_sha256", "image.sha256 must be 64 hexadecimal digits (the SHA-256 of image.tar)"))
            }
        }
        if let size, size <= 0 {
            issues.append(Issue("manifest.invalid_image_size", "image.size must be a positive number of bytes, found \(size)"))
        }
        if !reference.trimmingSpaces.isEmpty {
            do { _ = try ImageReference(reference) } catch {
                issues.append(Issue("manifest.invalid_image_reference", "image.reference \"\(reference)\" is not a valid image reference: \(error.message)"))
            }
        }
        let m = Manifest(formatVersion: formatVersion, packageType: packageType, packageVersion: packageVersion,
                         createdAt: createdAt, target: Target(service: service, serviceRevision: revision, platform: platform),
                         image: Image(reference: reference, sha256: shaNorm, size: size), minUpdaterVersion: minUpdater,
                         encryption: encryption, thin: thin)
        return (m, issues)
    }

    static func render(_ v: TOMLValue?) -> String {
        switch v {
        case .integer(let i)?: return String(i)
        case .string(let s)?: return "\"\(s)\""
        default: return "?"
        }
    }

    /// Checks against the catalog (FORMATS §4 "catalog" codes) and this updater's version.
    public func check(against catalog: Catalog, updaterVersion: String) -> [Issue] {
        var issues: [Issue] = []
        guard let svc = catalog.service(named: target.service) else {
            let known = catalog.services.map(\.name).joined(separator: ", ")
            return [Issue("package.unknown_service", "service \"\(target.service)\" is not in the catalog (known: \(known.isEmpty ? "none" : known))")]
        }
        if svc.serviceRevision != target.serviceRevision {
            issues.append(Issue("package.service_revision_mismatch", "package is for service_revision \"\(target.serviceRevision)\" but the catalog has \"\(svc.serviceRevision)\""))
        }
        if svc.platform != target.platform {
            issues.append(Issue("package.platform_mismatch", "package is for platform \(target.platform) but service \(svc.name) runs on \(svc.platform)"))
        }
        if let min = minUpdaterVersion, let need = SemVer(min), let have = SemVer(updaterVersion), have < need {
            issues.append(Issue("package.updater_too_old", "package needs Caisson \(min) or newer; this is \(updaterVersion)"))
        }
        return issues
    }
}

/// Reads typed fields from a TOML table, collecting issues that name the field.
struct FieldReader {
    var table: TOMLTable
    var context: String
    var code: String
    var prefix: String = ""
    var issues: [Issue] = []

    init(table: TOMLTable, context: String, code: String, prefix: String = "") {
        self.table = table
        self.context = context
        self.code = code
        self.prefix = prefix
    }

    private mutating func wrongType(_ key: String, _ want: String, _ got: TOMLValue) {
        issues.append(Issue(code, "\(context): `\(prefix)\(key)` must be \(want), found \(got.typeDescription)"))
    }

    mutating func string(_ key: String) -> String? {
        guard let v = table[key] else {
            issues.append(Issue(code, "\(context): missing required field `\(prefix)\(key)`"))
            return nil
        }
        return optionalString(key, v)
    }

    mutating func optionalString(_ key: String) -> String? {
        guard let v = table[key] else { return nil }
        return optionalString(key, v)
    }

    private mutating func optionalString(_ key: String, _ v: TOMLValue) -> String? {
        guard case .string(let s) = v else { wrongType(key, "a string", v); return nil }
        return s
    }

    mutating func optionalInteger(_ key: String) -> Int64? {
        guard let v = table[key] else { return nil }
        guard case .integer(let i) = v else { wrongType(key, "an integer", v); return nil }
        return i
    }

    mutating func optionalBool(_ key: String) -> Bool? {
        guard let v = table[key] else { return nil }
        guard case .boolean(let b) = v else { wrongType(key, "true or false", v); return nil }
        return b
    }

    mutating func table(_ key: String) -> TOMLTable? {
        guard let v = table[key] else {
            issues.append(Issue(code, "\(context): missing required table `[\(prefix)\(key)]`"))
            return nil
        }
        guard case .table(let t) = v else { wrongType(key, "a table", v); return nil }
        return t
    }

    mutating func optionalTable(_ key: String) -> TOMLTable? {
        guard let v = table[key] else { return nil }
        guard case .table(let t) = v else { wrongType(key, "a table", v); return nil }
        return t
    }
}

extension String {
    var trimmingSpaces: Substring {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return s
    }
}
