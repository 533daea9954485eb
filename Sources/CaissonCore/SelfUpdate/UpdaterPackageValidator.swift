#if canImport(Glibc)
import Glibc
#endif

/// The executable inside an updater package, as read from the package.
public struct UpdaterExecutable: Sendable, Equatable, Codable {
    /// Where its bytes start in the package file, and how many there are.
    public var dataOffset: Int64
    public var size: Int64
    /// SHA-256 (lowercase hex) of the executable, computed while reading it.
    public var sha256: String
    /// Its ELF header, when it has one.
    public var elf: ELFHeader?

    enum CodingKeys: String, CodingKey {
        case dataOffset = "data_offset"
        case size, sha256, elf
    }
}

/// Everything validation learned about an updater package, accepted or not.
public struct UpdaterValidationReport: Sendable, Equatable {
    public var packagePath: String
    public var packageSize: Int64?
    public var issues: [Issue] = []
    public var manifest: UpdaterManifest?
    public var executable: UpdaterExecutable?
    public var signature: PackageSignature.Verified?
    /// The version the package replaces (the installed executable's), when known.
    public var installedVersion: String?

    public var status: ValidationStatus { issues.isEmpty ? .accepted : .rejected }
}

/// Validates an updater package (issue 14) in one streaming read: the archive rules of service
/// packages (FORMATS §1, with the executable `caisson` in place of `image.tar`), the manifest, the
/// signature under the device's `[trust]` rules, the executable's size and SHA-256 against the
/// manifest, its ELF header against the manifest's platform and this machine, the version floor
/// and `min_updater_version`. Never touches anything.
public struct UpdaterPackageValidator {
    public var trust: Catalog.Trust
    /// The version of the Caisson doing the validation (for `min_updater_version`).
    public var runningVersion: String
    /// The version of the installed executable the package would replace (the version floor);
    /// nil when it is not known (then the running version is the floor).
    public var installedVersion: String?
    /// This machine's platform (`linux/amd64`), from `uname`; nil: unknown (refused).
    public var hostPlatform: String?
    public var allowDowngrade = false
    public var reinstall = false
    public var limits = PackageScanLimits()
    public var progress: ((Int64) -> Void)?

    public init(trust: Catalog.Trust, runningVersion: String, installedVersion: String?, hostPlatform: String?) {
        self.trust = trust
        self.runningVersion = runningVersion
        self.installedVersion = installedVersion
        self.hostPlatform = hostPlatform
    }

    public func validate(path: String) -> UpdaterValidationReport {
        var report = UpdaterValidationReport(packagePath: path)
        report.installedVersion = installedVersion ?? runningVersion
        guard path.hasSuffix(".edgepkg"), path.count > ".edgepkg".count, !path.hasSuffix("/.edgepkg") else {
            report.issues.append(Issue("package.invalid_extension", "package \(path) must have the .edgepkg extension"))
            return report
        }
        var st = stat()
        if stat(path, &st) != 0 {
            let e = errno
            report.issues.append(e == ENOENT || e == ENOTDIR
                ? Issue("package.not_found", "package \(path) does not exist")
                : Issue("archive.read_failed", "package \(path) cannot be read: \(ByteSourceError.describe(errno: e))"))
            return report
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            report.issues.append(Issue("package.not_a_file", "package \(path) is not a regular file"))
            return report
        }
        report.packageSize = Int64(st.st_size)
        let scan: Scan
        do {
            scan = Self.scan(try FileByteSource(path: path), limits: limits, progress: progress)
        } catch {
            report.issues.append(Issue("archive.read_failed", "the package cannot be read: \(error)"))
            return report
        }
        return check(scan, into: report)
    }

    /// What one read of an updater package found.
    struct Scan {
        var manifestBytes: [UInt8]?
        var signatureBytes: [UInt8]?
        var signaturePresent = false
        var executable: UpdaterExecutable?
        var issues: [Issue] = []
    }

    static func scan<S: ByteSource>(_ source: S, limits: PackageScanLimits, progress: ((Int64) -> Void)?) -> Scan {
        var scan = Scan()
        let reader = TarReader(ProgressByteSource(source, progress: progress),
                               options: .init(bufferSize: limits.readBufferSize, maxExtendedHeaderSize: limits.maxExtendedHeaderSize))
        var seen = Set<String>()
        var explained = Set<String>()
        var manifestSeen = false
        var executableSeen = false
        var complete = false
        var count = 0
        entries: while true {
            let entry: TarEntry
            do {
                guard let next = try reader.next() else { complete = true; break entries }
                entry = next
            } catch let error as TarError where error.isRecoverable {
                count += 1
                if count > limits.maxEntries {
                    scan.issues.append(Issue("archive.too_many_entries", "the package has more than \(limits.maxEntries) entries"))
                    break entries
                }
                scan.issues.append(Issue("archive.invalid_entry_path", "the package has an entry whose name is not usable: \(error.message)"))
                if let name = error.name { explained.insert(PackageScanner.lastComponent(name)) }
                continue
            } catch {
                scan.issues.append(PackageScanner.issue(for: error))
                break entries
            }
            count += 1
            if count > limits.maxEntries {
                scan.issues.append(Issue("archive.too_many_entries", "the package has more than \(limits.maxEntries) entries"))
                break entries
            }
            let name = entry.name
            if name == PackageSignature.entryName { scan.signaturePresent = scan.signaturePresent || entry.type == .regular }
            guard entry.type == .regular else {
                scan.issues.append(Issue("archive.unsafe_entry_type", "package entry \(TarFormat.quoted(name)) is a \(entry.type); a package holds only regular files"))
                explained.insert(PackageScanner.lastComponent(name))
                continue
            }
            if let problem = PackageScanner.rootNameProblem(name) {
                scan.issues.append(problem)
                explained.insert(PackageScanner.lastComponent(name))
                continue
            }
            guard seen.insert(name).inserted else {
                scan.issues.append(Issue("archive.duplicate_entry", "package entry \(TarFormat.quoted(name)) appears more than once; only the first is read"))
                continue
            }
            switch name {
            case "manifest.toml":
                manifestSeen = true
                guard entry.size <= Int64(limits.maxManifestSize) else {
                    scan.issues.append(Issue("manifest.too_large", "manifest.toml is \(entry.size) bytes; the limit is \(limits.maxManifestSize) bytes"))
                    continue
                }
                do {
                    scan.manifestBytes = try reader.readWholeBody(limit: limits.maxManifestSize) ?? []
                } catch {
                    scan.issues.append(Issue("manifest.read_failed", "manifest.toml cannot be read: \(PackageScanner.reason(error))"))
                    break entries
                }
            case UpdaterManifest.executableEntry:
                executableSeen = true
                var hasher = SHA256()
                var prefix: [UInt8] = []
                do {
                    while try reader.readBodyChunk({ chunk in
                        hasher.update(chunk)
                        if prefix.count < ELFHeader.prefixLength {
                            prefix += chunk.prefix(ELFHeader.prefixLength - prefix.count)
                        }
                    }) > 0 {}
                } catch {
                    scan.issues.append(PackageScanner.issue(for: error))
                    break entries
                }
                let elf = try? ELFHeader.parse(prefix).get()
                scan.executable = UpdaterExecutable(dataOffset: entry.dataOffset, size: entry.size, sha256: hasher.hex, elf: elf)
                if elf == nil, case .failure(let problem) = ELFHeader.parse(prefix) {
                    scan.issues.append(Issue("updater.not_executable", "the package's \(UpdaterManifest.executableEntry) cannot run on Linux: \(problem.message)"))
                }
            case UpdaterManifest.executableEntry + ".age":
                executableSeen = true
                scan.issues.append(Issue("encryption.unsupported", "encrypted updater packages (\(name)) are not supported yet; build the updater package without encryption"))
            case PackageSignature.entryName:
                guard entry.size <= Int64(limits.maxSignatureSize) else { continue }
                do {
                    scan.signatureBytes = try reader.readWholeBody(limit: limits.maxSignatureSize) ?? []
                } catch {
                    scan.issues.append(PackageScanner.issue(for: error))
                    break entries
                }
            case "image.tar", "image.tar.age":
                scan.issues.append(Issue("updater.unexpected_image", "an updater package holds the \(UpdaterManifest.executableEntry) executable, not \(name)"))
                explained.insert(name)
            default:
                break
            }
        }
        if complete {
            if !manifestSeen, !explained.contains("manifest.toml") {
                scan.issues.append(Issue("archive.missing_manifest", "the package has no manifest.toml at its root"))
            }
            if !executableSeen, !explained.contains(UpdaterManifest.executableEntry) {
                scan.issues.append(Issue("archive.missing_executable", "the updater package has no \(UpdaterManifest.executableEntry) executable at its root"))
            }
        }
        return scan
    }

    func check(_ scan: Scan, into start: UpdaterValidationReport) -> UpdaterValidationReport {
        var report = start
        report.issues += scan.issues
        report.executable = scan.executable
        guard let manifestBytes = scan.manifestBytes else { return report }
        let (manifest, manifestIssues) = UpdaterManifest.parse(manifestBytes)
        report.issues += manifestIssues
        // The signature: the same [trust] rules as service packages. An updater manifest always
        // declares the executable's sha256 and size, so a signature binds the executable.
        let (verified, signatureIssues) = PackageSignature.check(
            manifestBytes: manifestBytes, manifest: nil, signaturePresent: scan.signaturePresent,
            signatureBytes: scan.signatureBytes, trust: trust)
        report.signature = verified
        report.issues += signatureIssues
        guard let manifest else { return report }
        report.manifest = manifest
        if let x = scan.executable {
            if x.size != manifest.size {
                report.issues.append(Issue("updater.size_mismatch", "the executable is \(x.size) bytes but the manifest declares \(manifest.size)"))
            } else if !manifest.sha256.isEmpty && x.sha256 != manifest.sha256 {
                report.issues.append(Issue("updater.checksum_mismatch", "the executable has SHA-256 \(x.sha256) but the manifest declares \(manifest.sha256)"))
            }
            if let elf = x.elf {
                let elfPlatform = elf.platform
                if elfPlatform != manifest.platform {
                    report.issues.append(Issue("updater.platform_mismatch", "the executable is built for \(elfPlatform ?? "an unknown machine") (\(elf.summary)) but the manifest says \(manifest.platform)"))
                }
                if let hostPlatform, elfPlatform != hostPlatform {
                    report.issues.append(Issue("updater.wrong_machine", "the executable is for \(elfPlatform ?? "an unknown machine") (\(elf.summary)); this machine is \(hostPlatform)"))
                } else if hostPlatform == nil {
                    report.issues.append(Issue("updater.wrong_machine", "this machine's platform is not known to Caisson, so no executable can be checked against it"))
                }
            }
        }
        report.issues += versionIssues(manifest)
        return report
    }

    /// `min_updater_version` and the version floor (`--allow-downgrade`, `--reinstall`).
    func versionIssues(_ manifest: UpdaterManifest) -> [Issue] {
        var issues: [Issue] = []
        if let min = manifest.minUpdaterVersion, let need = SemVer(min), let have = SemVer(runningVersion), have < need {
            issues.append(Issue("package.updater_too_old", "package needs Caisson \(min) or newer to install it; this is \(runningVersion)"))
        }
        let floor = installedVersion ?? runningVersion
        if let have = SemVer(floor), let new = SemVer(manifest.packageVersion) {
            if new < have && !allowDowngrade {
                issues.append(Issue("package.downgrade_refused", "Caisson \(manifest.packageVersion) is older than the installed \(floor) (use --allow-downgrade to go back on purpose, or self-update --rollback to return to the previous one)"))
            } else if new.samePrecedence(as: have) && !reinstall {
                issues.append(Issue("package.already_applied", "Caisson \(manifest.packageVersion) is already installed (use --reinstall to install it again)"))
            }
        }
        return issues
    }

    /// Reads only `manifest.toml` of a package (stopping at it) to tell its kind: the package
    /// type, or nil when there is no readable manifest (the full validation then says why).
    public static func packageType(path: String) -> String? {
        guard let source = try? FileByteSource(path: path) else { return nil }
        let reader = TarReader(source, options: .init(bufferSize: 64 * 1024))
        for _ in 0..<64 {
            guard let entry = try? reader.next() else { return nil }
            if entry.name == "manifest.toml", entry.type == .regular {
                guard let bytes = try? reader.readWholeBody(limit: Manifest.maxBytes) else { return nil }
                return UpdaterManifest.packageType(of: bytes)
            }
        }
        return nil
    }
}
