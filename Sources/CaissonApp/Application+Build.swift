import CaissonCore
import CaissonDocker
import CaissonStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `package build` (the connected side): a `.edgepkg` from a `docker save` tarball or an image in
/// the local Docker daemon, streamed (the image is never held in memory), then validated.
extension Application {
    public struct BuildRequest: Sendable {
        public var service: String
        public var version: String
        public var imageReference: String?
        public var fromTar: String?
        public var output: String?
        public var createdAt: String?
        /// A minisign secret key file: sign `manifest.toml` into `manifest.toml.minisig`.
        public var signingKey: String?
        /// Its password, when the key is encrypted.
        public var signingKeyPassword: String?
        /// Encrypt the image to these age recipients (`age1…`): the package holds `image.tar.age`.
        public var encryptTo: [String] = []
        /// Encrypt the image with this passphrase (scrypt; alone, not with recipients).
        public var encryptPassphrase: String?
        /// The scrypt work factor for `encryptPassphrase` (default 18, as `age -p`).
        public var encryptWorkFactor = AgeScrypt.defaultWorkFactor
        /// `.gzip`: image.tar is written gzip-compressed (`docker load` reads it; so does
        /// validation, through the compression). A tarball that is already gzip is kept as it is.
        public var compress: ImageCompression = .none
        /// A device inventory: leave out the layers it holds (a thin package, issue 16).
        public var against: String?
        /// The device's public key, to check the inventory's signature first.
        public var deviceKey: String?
        public init(service: String, version: String, imageReference: String? = nil, fromTar: String? = nil,
                    output: String? = nil, createdAt: String? = nil, signingKey: String? = nil,
                    signingKeyPassword: String? = nil,
                    encryption: (to: [String], passphrase: String?, workFactor: Int)? = nil,
                    against: String? = nil, deviceKey: String? = nil) {
            self.against = against
            self.deviceKey = deviceKey
            self.signingKey = signingKey
            if let encryption {
                encryptTo = encryption.to
                encryptPassphrase = encryption.passphrase
                encryptWorkFactor = encryption.workFactor
            }
            self.signingKeyPassword = signingKeyPassword
            self.service = service
            self.version = version
            self.imageReference = imageReference
            self.fromTar = fromTar
            self.output = output
            self.createdAt = createdAt
        }
    }

    public struct BuildOutcome: Sendable {
        public var output: String
        public var manifest: String
        public var validation: ValidationOutcome
        /// What a thin build left out (nil: a full package).
        public var thin: ThinBuildSummary? = nil
    }

    public func build(_ req: BuildRequest) throws -> BuildOutcome {
        let catalog = try catalog()
        guard let svc = catalog.service(named: req.service) else {
            throw CaissonError("package.unknown_service", "service \(req.service) is not in the catalog \(options.servicesPath)")
        }
        guard SemVer(req.version) != nil else {
            throw CaissonError("manifest.invalid_package_version", "--version \(req.version) is not a SemVer 2.0 version (e.g. 1.2.3)")
        }
        let createdAt = req.createdAt ?? systemClock.timestamp()
        guard Timestamps.parse(createdAt) != nil else {
            throw CaissonError("manifest.invalid_created_at", "--created-at \(createdAt) is not an RFC 3339 time (e.g. 2026-03-16T18:30:00Z)")
        }
        let output = Self.absolute(req.output ?? "\(svc.name)-\(req.version).edgepkg")
        guard output.hasSuffix(".edgepkg") else {
            throw CaissonError("package.invalid_extension", "the output \(output) must have the .edgepkg extension")
        }
        let partial = output + ".partial"
        defer { unlink(partial) }

        // The image tarball: the given file, or `docker save` streamed to a file beside the output.
        var tarPath: String
        var savedTemp: String?
        defer { if let savedTemp { unlink(savedTemp) } }
        switch (req.fromTar, req.imageReference) {
        case (let file?, nil):
            tarPath = Self.absolute(file)
            guard Self.regularFileSize(tarPath) != nil else {
                throw CaissonError("build.image_not_found", "the image tarball \(file) does not exist or is not a regular file")
            }
        case (nil, let ref?):
            guard options.host == .docker else {
                throw CaissonError("build.needs_docker", "package build --image reads the image from the Docker daemon; use --host docker or --from-tar FILE")
            }
            // docker.unreachable (exit 1) before anything is written.
            _ = try host()
            let temp = output + ".image.tar.partial"
            savedTemp = temp
            tarPath = temp
            onProgress?("Saving \(ref) from the Docker daemon…")
            let w = try BuildFileWriter(path: temp)
            do {
                let client = try DockerClient(environment: ProcessInfo.processInfo.environment)
                try client.saveImages([ref]) { chunk in try w.write(chunk) }
                try w.close()
            } catch {
                w.abandon()
                throw CaissonError("build.save_failed", "could not save \(ref) from the Docker daemon: \(error.message)")
            }
        default:
            throw CaissonError("usage.image_source", "give exactly one of --image REF and --from-tar FILE")
        }
        guard var size = Self.regularFileSize(tarPath), size > 0 else {
            throw CaissonError("image.empty_archive", "the image tarball is empty")
        }
        // Compressed: written beside the output first, so the manifest can bind its size and SHA-256.
        let gzPartial = output + ".image.tar.gz.partial"
        defer { unlink(gzPartial) }
        if req.compress == .gzip, try !Self.isGzip(tarPath) {
            size = try compressImage(tarPath, size: size, to: gzPartial)
            tarPath = gzPartial
        }

        // Pass 1: inspect and hash the tarball, presented to the scanner as a package holding only image.tar.
        let facts: ImageFacts
        var sha256: String
        do {
            let source = try SingleEntryTarSource(name: "image.tar", path: tarPath, size: size)
            let meter = makeProgress?(.inspecting, size)
            let scan = PackageScanner(progress: { meter?.update($0) }).scan(source)
            meter?.finish(completed: scan.image != nil)
            let imageIssues = scan.issues.filter { $0.code != "archive.missing_manifest" }
            guard imageIssues.isEmpty, let f = scan.image, let sha = scan.imageTar?.sha256 else {
                let why = imageIssues.isEmpty ? "it is not a docker save archive" : imageIssues.map(\.description).joined(separator: "; ")
                throw CaissonError("build.invalid_image", "the image tarball cannot be packaged: \(why)")
            }
            facts = f
            sha256 = sha
        }
        guard facts.repoTags.count == 1, let reference = facts.repoTags.first else {
            let got = facts.repoTags.isEmpty ? "no tag" : facts.repoTags.joined(separator: ", ")
            throw CaissonError("build.image_tags", "the image tarball must carry exactly one tag (it has \(got)); save one tagged image, e.g. docker save REPO:TAG")
        }
        let want = svc.platform.split(separator: "/").map(String.init)
        guard want.count >= 2, want[0] == facts.os, want[1] == facts.architecture,
              want.count < 3 || facts.variant == nil || want[2] == facts.variant else {
            throw CaissonError("build.platform_mismatch", "the image is built for \(facts.platform) but service \(svc.name) runs on \(svc.platform)")
        }

        // Thin (issue 16): image.tar without the layers the device's inventory holds.
        var thin: ThinImage?
        let thinPartial = output + ".thin-image.tar.partial"
        defer { unlink(thinPartial) }
        if let against = req.against {
            thin = try thinImage(from: tarPath, size: size, facts: facts, against: against, deviceKey: req.deviceKey, to: thinPartial)
            if let thin {
                tarPath = thin.path
                size = thin.size
                sha256 = thin.sha256
            }
        }

        // Encrypted: the age file is written first (beside the output, never the plaintext), so
        // the manifest that precedes it can bind its size and SHA-256.
        var encrypted: (path: String, size: Int64, sha256: String, fileKey: AgeFileKey)?
        let agePartial = output + ".image.tar.age.partial"
        defer { unlink(agePartial) }
        if !req.encryptTo.isEmpty || req.encryptPassphrase != nil {
            encrypted = try encryptImage(tarPath, size: size, to: agePartial, request: req)
        }

        // Pass 2: write manifest.toml then image.tar (the reference recipe's order), fsync, rename.
        var manifest = EdgePackageWriter.manifest(service: svc.name, revision: svc.serviceRevision, platform: svc.platform,
                                                  version: req.version, createdAt: createdAt, reference: reference,
                                                  sha256: sha256, size: Int(size))
        if let thin { manifest += thin.thin.toml }
        if let encrypted {
            manifest += "\n[encryption]\nformat = \"\(Manifest.Encryption.ageFormat)\"\nsha256 = \"\(encrypted.sha256)\"\nsize = \(encrypted.size)\n"
        }
        // Sign before writing anything: a bad key or password leaves no partial package.
        var signature: [UInt8]?
        if let keyPath = req.signingKey {
            guard let keyData = FileManager.default.contents(atPath: keyPath) else {
                throw CaissonError("key.read_failed", "cannot read the secret key \(keyPath)")
            }
            let secret = try MinisignSecretKey(parsing: String(decoding: keyData, as: UTF8.self), password: req.signingKeyPassword)
            let comment = "caisson package \(svc.name) \(req.version) image \(reference) sha256 \(sha256)"
            signature = Array(try Minisign.sign(Array(manifest.utf8), secretKey: secret, trustedComment: comment).fileContents.utf8)
        }
        let w = try BuildFileWriter(path: partial)
        do {
            let (entryName, entrySize, entryPath) = encrypted.map { ("image.tar.age", $0.size, $0.path) } ?? ("image.tar", size, tarPath)
            try w.write(TarArchiveWriter.packageHead(manifest: Array(manifest.utf8), entry: entryName, size: entrySize))
            let src = try FileByteSource(path: entryPath)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            var copied: Int64 = 0
            let meter = makeProgress?(.writing, entrySize)
            defer { meter?.finish(completed: copied == entrySize) }
            while true {
                let n = try src.read(into: buffer)
                if n == 0 { break }
                try w.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                copied += Int64(n)
                meter?.update(copied)
            }
            guard copied == entrySize else {
                throw CaissonError("build.image_changed", "the image tarball changed while it was packaged (\(copied) of \(entrySize) bytes)")
            }
            try w.write(TarArchiveWriter.packageTail(afterEntryOf: entrySize, signature: signature))
            try w.close()
        } catch {
            w.abandon()
            if let e = error as? CaissonError { throw e }
            throw CaissonError("package.write_failed", "could not write \(partial): \(error.message)")
        }
        guard rename(partial, output) == 0 else {
            throw CaissonError("package.write_failed", "could not rename \(partial) to \(output): \(ByteSourceError.describe(errno: errno))")
        }
        // An encrypted package is checked with the file key just used (the builder holds no
        // recipient's secret key).
        let validation = try validate(req.output ?? "\(svc.name)-\(req.version).edgepkg", readPath: output,
                                      extraIdentities: encrypted.map { [AgeKnownFileKey($0.fileKey)] } ?? [])
        return BuildOutcome(output: output, manifest: manifest, validation: validation, thin: thin?.summary)
    }
}

extension Application {
    /// Whether the file starts with the gzip magic.
    static func isGzip(_ path: String) throws -> Bool {
        let source = try FileByteSource(path: path)
        var head = [UInt8](repeating: 0, count: 2)
        var have = 0
        while have < 2 {
            let n = try head.withUnsafeMutableBytes { try source.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[have...])) }
            if n == 0 { break }
            have += n
        }
        return have == 2 && head[0] == 0x1F && head[1] == 0x8B
    }

    /// gzip-compresses the image tarball at `tarPath` into `destination` (streaming, flat memory)
    /// and returns the compressed size.
    func compressImage(_ tarPath: String, size: Int64, to destination: String) throws -> Int64 {
        onProgress?("Compressing the image (gzip)…")
        let w = try BuildFileWriter(path: destination)
        do {
            let meter = makeProgress?(.compressing, size)
            var src = ProgressByteSource(try FileByteSource(path: tarPath)) { meter?.update($0) }
            defer { meter?.finish(completed: src.bytesProcessed == size) }
            let written = try Gzip.compress(&src) { try w.write($0) }
            let read = src.bytesProcessed
            guard read == size else {
                throw CaissonError("build.image_changed", "the image tarball changed while it was compressed (\(read) of \(size) bytes)")
            }
            try w.close()
            return written
        } catch {
            w.abandon()
            if let e = error as? CaissonError { throw e }
            throw CaissonError("package.write_failed", "could not compress the image: \(error.message)")
        }
    }

    /// Encrypts the image tarball at `tarPath` into the age file `destination`, streaming (one
    /// chunk in memory), and returns its size and SHA-256 and the file key.
    func encryptImage(_ tarPath: String, size: Int64, to destination: String,
                      request req: BuildRequest) throws -> (path: String, size: Int64, sha256: String, fileKey: AgeFileKey) {
        var recipients: [any AgeRecipient] = []
        do {
            for r in req.encryptTo { recipients.append(try AgeX25519Recipient(parsing: r)) }
        } catch {
            throw CaissonError("usage.invalid_recipient", "--encrypt-to: \(error.message)")
        }
        if let pass = req.encryptPassphrase {
            guard recipients.isEmpty else {
                throw CaissonError("usage.invalid", "--encrypt-passphrase cannot be combined with --encrypt-to (an age passphrase must be the only recipient)")
            }
            guard !pass.isEmpty else { throw CaissonError("usage.invalid", "\(Self.agePassphraseVariable) is empty") }
            recipients.append(AgeScryptRecipient(passphrase: pass, workFactor: req.encryptWorkFactor))
        }
        let w = try BuildFileWriter(path: destination)
        var sha = SHA256()
        var written: Int64 = 0
        do {
            onProgress?("Encrypting the image to \(recipients.count == 1 && req.encryptPassphrase != nil ? "a passphrase" : "\(recipients.count) recipient(s)")…")
            let encryptor = try AgeEncryptor(recipients: recipients, randomness: .system) { piece in
                sha.update(piece)
                written += Int64(piece.count)
                try w.write(piece)
            }
            let src = try FileByteSource(path: tarPath)
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            let meter = makeProgress?(.encrypting, size)
            var read: Int64 = 0
            defer { meter?.finish(completed: read == size) }
            while true {
                let n = try src.read(into: buffer)
                if n == 0 { break }
                try encryptor.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                read += Int64(n)
                meter?.update(read)
            }
            guard read == size else {
                throw CaissonError("build.image_changed", "the image tarball changed while it was encrypted (\(read) of \(size) bytes)")
            }
            try encryptor.finish()
            try w.close()
            return (destination, written, sha.finalizeDigest().hex, encryptor.fileKey)
        } catch {
            w.abandon()
            if let e = error as? CaissonError { throw e }
            if let e = error as? AgeError { throw CaissonError(e.code, e.message) }
            throw CaissonError("package.write_failed", "could not encrypt the image: \(error.message)")
        }
    }
}

/// A ustar header for one regular file at the archive root (sizes of 8 GiB and more in GNU
/// base-256, as GNU tar writes them).

/// A tar archive of one file, made up on the fly around the file's bytes (for the scanner).
struct SingleEntryTarSource: ByteSource {
    var head: [UInt8]
    var tail: [UInt8]
    var file: FileByteSource
    var stage = 0
    var pos = 0

    init(name: String, path: String, size: Int64) throws {
        head = TarArchiveWriter.header(name: name, size: size)
        tail = TarArchiveWriter.padding(size) + [UInt8](repeating: 0, count: 1024)
        file = try FileByteSource(path: path)
    }

    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            switch stage {
            case 0, 2:
                let bytes = stage == 0 ? head : tail
                if pos < bytes.count {
                    let n = min(buffer.count, bytes.count - pos)
                    bytes.withUnsafeBytes { src in
                        buffer.baseAddress!.copyMemory(from: src.baseAddress! + pos, byteCount: n)
                    }
                    pos += n
                    return n
                }
                if stage == 2 { return 0 }
                stage = 1
            default:
                let n = try file.read(into: buffer)
                if n > 0 { return n }
                stage = 2
                pos = 0
            }
        }
    }
}

/// Writes a file with plain write(2), retrying EINTR; `close()` fsyncs.
final class BuildFileWriter {
    let path: String
    private var fd: Int32

    init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CaissonError("package.write_failed", "cannot create \(path): \(ByteSourceError.describe(errno: errno))")
        }
    }

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 {
                if errno == EINTR { continue }
                throw CaissonError("package.write_failed", "writing \(path) failed: \(ByteSourceError.describe(errno: errno))")
            }
            off += n
        }
    }

    func close(sync: Bool = true) throws {
        defer { Glibc.close(fd); fd = -1 }
        guard !sync || fsync(fd) == 0 else {
            throw CaissonError("package.write_failed", "cannot flush \(path): \(ByteSourceError.describe(errno: errno))")
        }
    }

    func abandon() {
        if fd >= 0 { Glibc.close(fd); fd = -1 }
        unlink(path)
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }
}
