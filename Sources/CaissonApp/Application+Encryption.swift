import CaissonCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Encrypted packages (issue 15): the device's age identities, key generation, and
/// `package decrypt` for troubleshooting on the connected side.
extension Application {
    /// The environment variable holding an age passphrase (never taken from the command line).
    public static let agePassphraseVariable = "CAISSON_AGE_PASSPHRASE"

    /// The identities this device opens encrypted packages with: every key of the catalog's
    /// `[trust] age_identities` files, and a passphrase from `CAISSON_AGE_PASSPHRASE` if set.
    /// An unreadable or malformed identity file is a configuration error (exit 1).
    public func ageIdentities() throws -> [any AgeIdentity] {
        let trust = try catalog().trust
        var out: [any AgeIdentity] = []
        for path in trust.ageIdentities { out += try Self.readAgeIdentityFile(path) }
        if let pass = ProcessInfo.processInfo.environment[Self.agePassphraseVariable], !pass.isEmpty {
            out.append(AgeScryptIdentity(passphrase: pass, maxWorkFactor: trust.ageMaxWorkFactor))
        }
        return out
    }

    /// The age recipients (`age1…`) of this device's identities, in catalog order: what a
    /// package builder encrypts to (and what a device inventory reports).
    public func deviceAgeRecipients() throws -> [String] {
        var out: [String] = []
        for path in try catalog().trust.ageIdentities {
            for id in try Self.readAgeIdentityFile(path) where !out.contains(id.recipient.text) { out.append(id.recipient.text) }
        }
        return out
    }

    static func readAgeIdentityFile(_ path: String) throws -> [AgeX25519Identity] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CaissonError("encryption.identity_unreadable", "cannot read the age identity file \(path)")
        }
        do {
            return try AgeIdentityFile.parse(String(decoding: data, as: UTF8.self))
        } catch {
            throw CaissonError("encryption.identity_unreadable", "the age identity file \(path) is not usable: \(error.message)")
        }
    }

    /// Writes a new X25519 identity to `path`, readable by its owner only from the first byte
    /// (created 0600, never chmod-ed, fsynced; with `force`, written aside and renamed into place).
    public func generateAgeIdentity(path: String, force: Bool) throws -> AgeX25519Identity {
        let target = Self.absolute(path)
        if !force, FileManager.default.fileExists(atPath: target) {
            throw CaissonError("key.exists", "\(path) already exists (use --force to overwrite)")
        }
        let identity: AgeX25519Identity
        do { identity = try AgeX25519Identity.generate(randomness: .system) } catch {
            throw CaissonError("key.generate_failed", "could not generate an age key: \(error.message)")
        }
        try SecretFile.write(target, Array(identity.fileContents(created: systemClock.timestamp()).utf8), mode: 0o600, replace: force)
        return identity
    }

    // MARK: package decrypt

    public struct DecryptOutcome: Sendable, Codable {
        public var outputDirectory: String
        public var files: [String]
        public var imageSHA256: String
        public var imageSize: Int64
        /// Whether the manifest's `[image] sha256` matched (nil when it declares none).
        public var manifestDigestMatches: Bool?

        enum CodingKeys: String, CodingKey {
            case outputDirectory = "output_directory", files
            case imageSHA256 = "image_sha256", imageSize = "image_size"
            case manifestDigestMatches = "manifest_digest_matches"
        }
    }

    /// Writes the package's root files into `directory`, with `image.tar.age` decrypted to
    /// `image.tar` (written as `.partial` and renamed only once the final chunk authenticated and
    /// the plaintext matched the manifest: a damaged package leaves no image.tar behind).
    /// Encryption problems throw `CaissonError`s with the `encryption.*` codes.
    public func decryptPackage(_ path: String, identityFiles: [String], directory: String) throws -> DecryptOutcome {
        var identities: [any AgeIdentity] = []
        for f in identityFiles { identities += try Self.readAgeIdentityFile(Self.absolute(f)) }
        if let pass = ProcessInfo.processInfo.environment[Self.agePassphraseVariable], !pass.isEmpty {
            identities.append(AgeScryptIdentity(passphrase: pass))
        }
        let dir = Self.absolute(directory)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let reader: TarReader<FileByteSource>
        do { reader = TarReader(try FileByteSource(path: Self.absolute(path))) } catch {
            throw CaissonError("archive.read_failed", "cannot read \(path): \(error)")
        }
        var files: [String] = []
        var manifest: Manifest?
        var result: (sha: String, size: Int64)?
        // Two buffers: the plaintext's SHA-256 runs on the second core over one while the next
        // chunks are decrypted into the other (and the first is written meanwhile).
        let buffers = (0..<2).map { _ in UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64) }
        defer { buffers.forEach { $0.deallocate() } }
        do {
            while let entry = try reader.next() {
                guard entry.type == .regular, !entry.name.contains("/") else { continue }
                switch entry.name {
                case "manifest.toml", PackageSignature.entryName:
                    guard let bytes = try reader.readWholeBody(limit: 64 * 1024) else { continue }
                    if entry.name == "manifest.toml" { manifest = Manifest.parse(bytes).0 }
                    guard FileManager.default.createFile(atPath: dir + "/" + entry.name, contents: Data(bytes)) else {
                        throw CaissonError("package.write_failed", "cannot write \(dir)/\(entry.name)")
                    }
                    files.append(entry.name)
                case "image.tar.age":
                    let partial = dir + "/image.tar.partial"
                    let w = try BuildFileWriter(path: partial)
                    do {
                        let source = try AgeDecryptingSource(reader.bodySource(), identities: identities)
                        let hasher = BackgroundHasher()
                        defer { hasher.waitIdle() }
                        var size: Int64 = 0
                        var k = 0
                        while true {
                            // The hasher may still read the other buffer, never this one: each
                            // submit waits for the chunk before it.
                            let buffer = buffers[k]
                            let n = try source.read(into: buffer)
                            if n == 0 { break }
                            let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<n])
                            hasher.submit(chunk)
                            try w.write(chunk)
                            size += Int64(n)
                            k = 1 - k
                        }
                        try w.close(sync: false)
                        let digest = hasher.finish()
                        result = (digest.hex, size)
                    } catch let e as AgeError {
                        w.abandon()
                        throw CaissonError(e.code, e.message)
                    } catch {
                        w.abandon()
                        throw error
                    }
                default:
                    continue
                }
            }
        } catch let e as TarError {
            unlink(dir + "/image.tar.partial")
            throw CaissonError("archive.read_failed", "\(path) is not a readable package: \(e.message)")
        } catch {
            unlink(dir + "/image.tar.partial")
            throw error
        }
        guard let result else {
            throw CaissonError("encryption.not_encrypted", "\(path) holds no image.tar.age: it is not an encrypted package")
        }
        let matches = manifest?.image.sha256.map { $0 == result.sha }
        if matches == false {
            unlink(dir + "/image.tar.partial")
            throw CaissonError("image.checksum_mismatch", "the decrypted image.tar has SHA-256 \(result.sha) but the manifest declares \(manifest!.image.sha256!); nothing was kept")
        }
        guard rename(dir + "/image.tar.partial", dir + "/image.tar") == 0 else {
            throw CaissonError("package.write_failed", "cannot rename \(dir)/image.tar.partial: \(ByteSourceError.describe(errno: errno))")
        }
        files.append("image.tar")
        return DecryptOutcome(outputDirectory: dir, files: files, imageSHA256: result.sha, imageSize: result.size,
                              manifestDigestMatches: matches)
    }
}
