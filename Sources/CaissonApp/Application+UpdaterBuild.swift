import CaissonCore
import CaissonStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `package build --updater PATH` (issue 14): an updater package carrying the `caisson` executable.
extension Application {
    public struct UpdaterBuildRequest: Sendable {
        public var executable: String
        public var version: String
        /// `linux/amd64`…; nil: what the executable's ELF header says.
        public var platform: String?
        public var output: String?
        public var createdAt: String?
        public var minUpdaterVersion: String?
        public var signingKey: String?
        public var signingKeyPassword: String?

        public init(executable: String, version: String, platform: String? = nil, output: String? = nil, createdAt: String? = nil,
                    minUpdaterVersion: String? = nil, signingKey: String? = nil, signingKeyPassword: String? = nil) {
            self.executable = executable
            self.version = version
            self.platform = platform
            self.output = output
            self.createdAt = createdAt
            self.minUpdaterVersion = minUpdaterVersion
            self.signingKey = signingKey
            self.signingKeyPassword = signingKeyPassword
        }
    }

    public struct UpdaterBuildOutcome: Sendable {
        public var output: String
        public var manifest: String
        public var validation: UpdaterValidationReport
        /// What the executable answered to `--version` when it could run here (nil: not run).
        public var reportedVersion: String?
    }

    public func buildUpdater(_ req: UpdaterBuildRequest) throws -> UpdaterBuildOutcome {
        guard SemVer(req.version) != nil else {
            throw CaissonError("manifest.invalid_package_version", "--version \(req.version) is not a SemVer 2.0 version (e.g. 1.2.3)")
        }
        if let m = req.minUpdaterVersion, SemVer(m) == nil {
            throw CaissonError("manifest.invalid_min_updater_version", "--min-updater-version \(m) is not a SemVer 2.0 version")
        }
        let createdAt = req.createdAt ?? systemClock.timestamp()
        guard Timestamps.parse(createdAt) != nil else {
            throw CaissonError("manifest.invalid_created_at", "--created-at \(createdAt) is not an RFC 3339 time (e.g. 2026-03-16T18:30:00Z)")
        }
        let exe = Self.absolute(req.executable)
        guard let size = Self.regularFileSize(exe), size > 0 else {
            throw CaissonError("build.executable_not_found", "the executable \(req.executable) does not exist, is empty or is not a regular file")
        }
        // The platform comes from the file itself.
        let head = (FileManager.default.contents(atPath: exe)?.prefix(ELFHeader.prefixLength)).map { Array($0) } ?? []
        let elf: ELFHeader
        switch ELFHeader.parse(head) {
        case .success(let h): elf = h
        case .failure(let p): throw CaissonError("build.not_executable", "\(req.executable) cannot be an updater: \(p.message)")
        }
        guard let elfPlatform = elf.platform else {
            throw CaissonError("build.unknown_platform", "\(req.executable) is for a machine Caisson does not know (\(elf.summary))")
        }
        if let p = req.platform, p != elfPlatform {
            throw CaissonError("build.platform_mismatch", "--platform \(p) but \(req.executable) is built for \(elfPlatform) (\(elf.summary))")
        }
        // When it runs here, it must say the version the package claims (the device checks it too).
        var reported: String?
        if elfPlatform == Self.hostPlatform() {
            let r = DeadlineProcess.run(exe, ["--version"], environment: ProcessInfo.processInfo.environment, timeoutMillis: 10_000)
            if case .exited(0) = r.outcome {
                let line = r.stdout.split(separator: "\n").first.map(String.init) ?? ""
                reported = line
                guard line == "caisson \(req.version)" else {
                    throw CaissonError("build.version_mismatch", "\(req.executable) says \"\(line)\" to --version, not \"caisson \(req.version)\"; a device would refuse it (stamp the version with scripts/stamp-version, or pass the right --version)")
                }
            }
        }
        let output = Self.absolute(req.output ?? "caisson-\(req.version)-\(elfPlatform.replacingOccurrences(of: "/", with: "-")).edgepkg")
        guard output.hasSuffix(".edgepkg") else {
            throw CaissonError("package.invalid_extension", "the output \(output) must have the .edgepkg extension")
        }
        guard let sha = try? LocalSelfUpdateSystem.digest(exe) else {
            throw CaissonError("build.executable_not_found", "cannot read \(req.executable)")
        }
        let manifest = UpdaterManifest(packageVersion: req.version, createdAt: createdAt, platform: elfPlatform, sha256: sha,
                                       size: size, minUpdaterVersion: req.minUpdaterVersion).render()
        var signature: [UInt8]?
        if let keyPath = req.signingKey {
            guard let keyData = FileManager.default.contents(atPath: keyPath) else {
                throw CaissonError("key.read_failed", "cannot read the secret key \(keyPath)")
            }
            let secret = try MinisignSecretKey(parsing: String(decoding: keyData, as: UTF8.self), password: req.signingKeyPassword)
            let comment = "caisson updater \(req.version) \(elfPlatform) sha256 \(sha)"
            signature = Array(try Minisign.sign(Array(manifest.utf8), secretKey: secret, trustedComment: comment).fileContents.utf8)
        }
        let partial = output + ".partial"
        defer { unlink(partial) }
        let w = try BuildFileWriter(path: partial)
        do {
            try w.write(TarArchiveWriter.packageHead(manifest: Array(manifest.utf8), entry: UpdaterManifest.executableEntry,
                                                     size: size, mode: 0o755))
            let src = try FileByteSource(path: exe)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            var copied: Int64 = 0
            var hasher = SHA256()
            while true {
                let n = try src.read(into: buffer)
                if n == 0 { break }
                try w.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                copied += Int64(n)
            }
            guard copied == size, hasher.hex == sha else {
                throw CaissonError("build.executable_changed", "\(req.executable) changed while it was packaged")
            }
            try w.write(TarArchiveWriter.packageTail(afterEntryOf: size, signature: signature))
            try w.close()
        } catch {
            w.abandon()
            if let e = error as? CaissonError { throw e }
            throw CaissonError("package.write_failed", "could not write \(partial): \(error.message)")
        }
        guard rename(partial, output) == 0 else {
            throw CaissonError("package.write_failed", "could not rename \(partial) to \(output): \(ByteSourceError.describe(errno: errno))")
        }
        // Checked like a device checks it, except for this machine and the version floor.
        var validator = UpdaterPackageValidator(trust: (try? catalog().trust) ?? Catalog.Trust(), runningVersion: Self.version,
                                                installedVersion: nil, hostPlatform: elfPlatform)
        validator.allowDowngrade = true
        validator.reinstall = true
        var report = validator.validate(path: output)
        // The builder's own Caisson version is no floor for the package.
        report.issues.removeAll { $0.code == "package.updater_too_old" }
        return UpdaterBuildOutcome(output: output, manifest: manifest, validation: report, reportedVersion: reported)
    }

    /// This machine's platform (`uname -m`), nil when Caisson does not know it.
    static func hostPlatform() -> String? {
        var u = utsname()
        guard uname(&u) == 0 else { return nil }
        let machine = withUnsafeBytes(of: &u.machine) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return ELFHeader.platform(unameMachine: machine)
    }
}
