#if canImport(Glibc)
import Glibc
#endif

/// Everything validation learned about a package, accepted or not.
public struct ValidationReport: Sendable, Equatable {
    public var packagePath: String
    public var packageSize: Int64?
    public var issues: [Issue]
    public var manifest: Manifest?
    public var scan: PackageScan?
    public var service: ServiceSpec?
    /// The verified `manifest.toml.minisig`, when the package is signed by a trusted key.
    public var signature: PackageSignature.Verified?

    public var status: ValidationStatus { issues.isEmpty ? .accepted : .rejected }
    public var image: ImageFacts? { scan?.image }

    /// Where `image.tar` is inside the package, and what it holds: what the host's load needs.
    public var imagePayload: ImagePayload? {
        guard status == .accepted, let m = manifest, let t = scan?.imageTar, let f = scan?.image else { return nil }
        var labels: [String: String] = [:]
        for l in f.labels { labels[l.key] = l.value }
        var payload = ImagePayload(path: packagePath, offset: t.dataOffset, length: t.size, reference: m.image.reference,
                                   expectedImageID: f.imageID,
                                   config: ImageConfig(os: f.os, architecture: f.architecture, variant: f.variant,
                                                       labels: labels, hasHealthcheck: f.hasHealthcheck))
        payload.diffIDs = f.layers
        payload.requiredChainIDs = m.thin?.requiredChainIDs ?? []
        if let e = scan?.encryptedImage {
            guard let key = e.fileKey else { return nil }
            // The host reads the age file and decrypts it again as it loads.
            payload.length = e.size
            payload.encryption = ImageEncryption(fileKey: key, plaintextSize: t.size)
        }
        payload.compression = t.compression ?? .none
        payload.unpackedLength = t.unpackedSize
        return payload
    }
}

/// Validates a `.edgepkg` in one streaming read, without touching Docker: archive rules
/// (FORMATS §1), the manifest (§2), the catalog (§3), and what `docker load` would do with the
/// image inside (tags, platform, digests, declared checksum and size).
public struct PackageValidator {
    public var catalog: Catalog
    public var updaterVersion: String
    public var limits: PackageScanLimits
    public var progress: ((Int64) -> Void)?
    /// The device's age identities (from the catalog's `[trust] age_identities`, read by the caller).
    public var ageIdentities: [any AgeIdentity] = []
    /// Where the authenticated plaintext of `image.tar.age` goes as it is validated (the
    /// overlapped upload's input: one decryption for both; see `PlaintextFeed`).
    public var plaintextFeed: PlaintextFeed?

    public init(catalog: Catalog, updaterVersion: String, limits: PackageScanLimits = PackageScanLimits(),
                progress: ((Int64) -> Void)? = nil) {
        self.catalog = catalog
        self.updaterVersion = updaterVersion
        self.limits = limits
        self.progress = progress
    }

    public func validate(path: String) -> ValidationReport {
        var report = ValidationReport(packagePath: path, packageSize: nil, issues: [], manifest: nil, scan: nil, service: nil)
        guard path.hasSuffix(".edgepkg"), path.count > ".edgepkg".count, !path.hasSuffix("/.edgepkg") else {
            report.issues.append(Issue("package.invalid_extension", "package \(path) must have the .edgepkg extension"))
            return report
        }
        var st = stat()
        if stat(path, &st) != 0 {
            let e = errno
            if e == ENOENT || e == ENOTDIR {
                report.issues.append(Issue("package.not_found", "package \(path) does not exist"))
            } else {
                report.issues.append(Issue("archive.read_failed", "package \(path) cannot be read: \(ByteSourceError.describe(errno: e))"))
            }
            return report
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            report.issues.append(Issue("package.not_a_file", "package \(path) is not a regular file"))
            return report
        }
        report.packageSize = Int64(st.st_size)

        var scanner = PackageScanner(limits: limits,
                                     wantImageDigest: { bytes in Manifest.parse(bytes).0?.image.sha256 != nil },
                                     progress: progress)
        scanner.ageIdentities = ageIdentities
        scanner.toleratesAbsentLayers = { bytes in Manifest.parse(bytes).0?.thin != nil }
        scanner.ageOptions = AgeDecryptionOptions(maxWorkFactor: catalog.trust.ageMaxWorkFactor)
        scanner.plaintextFeed = plaintextFeed
        let scan = scanner.scan(path: path)
        report.scan = scan
        report.issues += scan.issues

        guard let manifestBytes = scan.manifestBytes else { return report }
        let (manifest, manifestIssues) = Manifest.parse(manifestBytes)
        report.issues += manifestIssues
        let signaturePresent = scan.entries.contains { $0.name == PackageSignature.entryName && $0.type == .regular }
        let (verified, signatureIssues) = PackageSignature.check(
            manifestBytes: manifestBytes, manifest: manifest, signaturePresent: signaturePresent,
            signatureBytes: scan.signatureBytes, trust: catalog.trust)
        report.signature = verified
        report.issues += signatureIssues
        guard let manifest else { return report }
        report.manifest = manifest
        report.issues += manifest.check(against: catalog, updaterVersion: updaterVersion)
        report.service = catalog.service(named: manifest.target.service)
        report.issues += Self.checkEncryption(scan, manifest: manifest, trust: catalog.trust)
        if let service = report.service {
            // Which references a package for this service may set (issue 10 item 8).
            report.issues += ReferencePolicy.check(reference: manifest.image.reference, service: service, catalog: catalog)
        }

        if let t = scan.imageTar {
            if let want = manifest.image.size, want != t.size {
                report.issues.append(Issue("image.size_mismatch", "image.tar is \(t.size) bytes but the manifest declares \(want)"))
            }
            if let want = manifest.image.sha256 {
                if let issue = Self.checkImageDigest(t.sha256, declared: want) {
                    report.issues.append(issue)
                } else if t.sha256 == nil, !report.issues.contains(where: { $0.code.hasPrefix("archive.") || $0.code.hasPrefix("image.") }) {
                    report.issues.append(Issue("image.checksum_mismatch", "the SHA-256 of image.tar could not be computed"))
                }
            }
        }
        if let facts = scan.image {
            report.issues += Self.checkImage(facts, manifest: manifest)
            report.issues += Self.checkThin(facts, manifest: manifest)
        }
        return report
    }

    /// Issue 15: an encrypted image must be bound by the manifest (the age file's size and
    /// SHA-256, the plaintext's SHA-256 and size) and match it; a device that requires encryption
    /// refuses a clear image.
    static func checkEncryption(_ scan: PackageScan, manifest: Manifest, trust: Catalog.Trust) -> [Issue] {
        var issues: [Issue] = []
        let clear = scan.entries.contains { $0.name == "image.tar" && $0.type == .regular }
        guard let e = scan.encryptedImage else {
            if trust.requireEncryption && clear {
                issues.append(Issue("encryption.required", "this device accepts only encrypted packages (image.tar.age), and this package's image.tar is not encrypted"))
            }
            if manifest.encryption != nil && clear {
                issues.append(Issue("encryption.unbound", "manifest.toml declares an encrypted image but the package holds a clear image.tar"))
            }
            return issues
        }
        if clear {
            issues.append(Issue("archive.ambiguous_image", "the package holds both image.tar and image.tar.age; it must hold exactly one of them"))
        }
        guard let enc = manifest.encryption, let wantSHA = enc.sha256, let wantSize = enc.size, manifest.image.sha256 != nil else {
            issues.append(Issue("encryption.unbound", "the package holds image.tar.age but manifest.toml does not bind it: it needs [encryption] format, sha256 and size (of image.tar.age) and [image] sha256 (of image.tar)"))
            return issues
        }
        issues += checkAgeFileBinding(size: e.size, sha256: e.sha256, declaredSize: wantSize, declaredSHA256: wantSHA)
        return issues
    }

    /// The age file (`image.tar.age`) against the signed manifest's `[encryption]` binding: its
    /// size, then its SHA-256 (nil when it was not read to an authenticated end: the decryption's
    /// own issue explains it). The one check of that binding, for the validator and the simulator.
    public static func checkAgeFileBinding(size: Int64, sha256: String?, declaredSize: Int64, declaredSHA256: String) -> [Issue] {
        if declaredSize != size {
            return [Issue("encryption.size_mismatch", "image.tar.age is \(size) bytes but the manifest declares \(declaredSize)")]
        }
        if let got = sha256, got != declaredSHA256 {
            return [Issue("encryption.checksum_mismatch", "image.tar.age has SHA-256 \(got) but the manifest declares \(declaredSHA256)")]
        }
        return []
    }

    /// image.tar (decrypted, when encrypted) against the manifest's `[image] sha256`.
    public static func checkImageDigest(_ got: String?, declared want: String) -> Issue? {
        guard let got, got != want else { return nil }
        return Issue("image.checksum_mismatch", "image.tar has SHA-256 \(got) but the manifest declares \(want)")
    }

    /// What `docker load` would do must be exactly what the manifest says.
    public static func checkImage(_ facts: ImageFacts, manifest: Manifest) -> [Issue] {
        var issues: [Issue] = []
        if let ref = try? ImageReference(manifest.image.reference) {
            let expected = ref.withDefaultTag().familiar
            if facts.repoTags != [expected] {
                let got = facts.repoTags.isEmpty ? "no tag at all" : facts.repoTags.joined(separator: ", ")
                issues.append(Issue("image.unexpected_tags", "image.tar would tag \(got); a package for \(manifest.target.service) may only tag \(expected)"))
            }
        }
        issues += ReferencePolicy.labelIssues(facts.labels.map(\.key))
        if !platformMatches(facts, manifest.target.platform) {
            issues.append(Issue("image.platform_mismatch", "the image is built for \(facts.platform) but the package targets \(manifest.target.platform)"))
        }
        return issues
    }

    static func platformMatches(_ facts: ImageFacts, _ platform: String) -> Bool {
        let parts = platform.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, parts.count <= 3 else { return false }
        guard parts[0] == facts.os, parts[1] == facts.architecture else { return false }
        func norm(_ v: String?) -> String? {
            // Docker's default variants: arm64 is v8 unless stated.
            if facts.architecture == "arm64", v == nil || v == "" { return "v8" }
            return (v?.isEmpty ?? true) ? nil : v
        }
        return norm(parts.count == 3 ? parts[2] : nil) == norm(facts.variant)
    }
}
