/// Bounds for reading a package; every one protects memory or time against a hostile file.
public struct PackageScanLimits: Equatable, Sendable {
    /// Entries at the package root (manifest, image, extras).
    public var maxEntries = 64
    /// Largest `manifest.toml` (FORMATS §1: 64 KiB).
    public var maxManifestSize = 64 * 1024
    /// Entries inside `image.tar`.
    public var maxImageEntries = 100_000
    /// Largest JSON document of image.tar kept in memory (manifest.json, index.json, configs…).
    public var maxJSONFileSize = 8 << 20
    /// All JSON documents of image.tar kept in memory together.
    public var maxJSONTotalBytes = 16 << 20
    /// Layers of the image.
    public var maxLayers = 256
    /// Largest pax extended header or GNU long-name payload.
    public var maxExtendedHeaderSize = 1 << 20
    /// Size of each read (one buffer for the package, one for image.tar).
    public var readBufferSize = 1 << 20
    /// Largest `manifest.toml.minisig` kept in memory (minisign's own lines stay under 10 KiB).
    public var maxSignatureSize = 16 * 1024
    /// How far a gzip-compressed image.tar may inflate (a decompression bomb is refused).
    public var gzip = GzipLimits()

    public init() {}
}

/// Everything one read of a package established.
public struct PackageScan: Equatable, Sendable {
    /// One entry at the package root, as read (including rejected ones).
    public struct Entry: Equatable, Sendable {
        public var name: String
        public var type: TarEntryType
        public var size: Int64
        /// Offset of the entry's data in the package file.
        public var dataOffset: Int64
    }

    /// Where `image.tar` lives in the package, so it can be streamed again from there.
    public struct ImageTar: Equatable, Sendable {
        public var size: Int64
        public var dataOffset: Int64
        /// SHA-256 (lowercase hex) of the whole image.tar, when it was computed.
        public var sha256: String?
        /// How image.tar is stored (nil when its first bytes could not be read).
        public var compression: ImageCompression?
        /// Bytes of the tar stream inside image.tar (after decompression), when fully read.
        public var unpackedSize: Int64?

        public init(size: Int64, dataOffset: Int64, sha256: String? = nil,
                    compression: ImageCompression? = nil, unpackedSize: Int64? = nil) {
            self.size = size
            self.dataOffset = dataOffset
            self.sha256 = sha256
            self.compression = compression
            self.unpackedSize = unpackedSize
        }
    }

    /// `image.tar.age` (issue 15): the age file holding image.tar. `imageTar` then describes the
    /// decrypted image.tar (its size and SHA-256) and where the age file starts in the package.
    public struct EncryptedImage: Equatable, Sendable {
        /// Size of image.tar.age in the package.
        public var size: Int64
        public var dataOffset: Int64
        /// SHA-256 (lowercase hex) of image.tar.age, when it was read to its end.
        public var sha256: String?
        /// The recipient stanza types of its header, when the header could be read.
        public var stanzaTypes: [String] = []
        /// The file key, when an identity opened it (kept for the load, which decrypts again).
        public var fileKey: AgeFileKey?
    }

    /// The encrypted image, when the package holds `image.tar.age`.
    public var encryptedImage: EncryptedImage?
    /// `manifest.toml` as read (at most `maxManifestSize` bytes), not yet decoded.
    public var manifestBytes: [UInt8]?
    /// `manifest.toml.minisig` as read, when present and at most `maxSignatureSize` bytes.
    public var signatureBytes: [UInt8]?
    public var imageTar: ImageTar?
    public var entries: [Entry] = []
    /// What the image is, when image.tar could be inspected (its config parsed).
    public var image: ImageFacts?
    /// Archive-level and image-level problems (FORMATS §4 codes), in the order found.
    public var issues: [Issue] = []
    /// Bytes read from (or skipped in) the package.
    public var bytesRead: Int64 = 0

    public init() {}
}

/// Reads a `.edgepkg` package in one streaming pass (FORMATS §1): checks its root entries,
/// keeps `manifest.toml`, and inspects `image.tar` while it streams past (its layers hashed and
/// checked against the image config, and optionally the SHA-256 of the whole image.tar computed
/// on a second thread). Memory stays flat in the package size.
///
/// The file extension (`package.invalid_extension`) and the manifest's content are checked by the
/// caller; this reports archive-level and image-level issues:
/// `archive.read_failed`, `archive.entry_read_failed`, `archive.invalid_entry_path`,
/// `archive.empty_entry_path`, `archive.nested_entry`, `archive.duplicate_entry`,
/// `archive.unsafe_entry_type`, `archive.invalid_entry_size`, `archive.too_many_entries`,
/// `archive.missing_manifest`, `archive.missing_image`, `manifest.too_large`,
/// `manifest.read_failed`, `image.empty_archive`, `image.read_failed`, `image.invalid_archive`,
/// `image.digest_mismatch`, `image.unsafe_entry_path`, `image.unsafe_entry_type`, and for a
/// compressed image.tar `image.gzip_*` and `image.unsupported_compression` (`GzipError`).
///
/// Reading stops at a fatal problem (a corrupt header, truncation, an I/O error, too many
/// entries); otherwise it goes on so one run reports every problem (e.g. a duplicate entry and a
/// missing image). `archive.missing_*` is reported only after a complete read, and not when
/// another issue already concerns an entry of that name (e.g. `./image.tar`, a symlink
/// `image.tar`, an oversized manifest).
public struct PackageScanner {
    public var limits: PackageScanLimits
    /// Called with the manifest bytes when `manifest.toml` is read before `image.tar`: whether to
    /// compute the SHA-256 of the whole image.tar. When image.tar comes first it is always computed.
    public var wantImageDigest: ([UInt8]) -> Bool
    /// Called with the running count of package bytes read.
    public var progress: ((Int64) -> Void)?
    /// What opens `image.tar.age`: the device's age identities (none: an encrypted package gets
    /// `encryption.no_identity`) and the limits (scrypt work factor).
    public var ageIdentities: [any AgeIdentity] = []
    public var ageOptions = AgeDecryptionOptions()
    /// When set, the authenticated plaintext of `image.tar.age` is copied here as it is inspected
    /// (for the overlapped upload: one decryption for both), and the feed is closed at the end
    /// of the entry: complete only when the final chunk authenticated.
    public var plaintextFeed: PlaintextFeed?
    /// Called with the manifest bytes once the whole package is read, when image.tar lacks some
    /// of its layers: whether the package is thin (issue 16), so absent layers are expected
    /// (`ImageFacts.absentLayers`, checked by the validator). Otherwise (and without a manifest)
    /// an absent layer is `image.invalid_archive`, as always.
    public var toleratesAbsentLayers: ([UInt8]) -> Bool = { _ in false }

    public init(limits: PackageScanLimits = PackageScanLimits(),
                wantImageDigest: @escaping ([UInt8]) -> Bool = { _ in false },
                progress: ((Int64) -> Void)? = nil) {
        self.limits = limits
        self.wantImageDigest = wantImageDigest
        self.progress = progress
    }

    /// Opens and scans the package file at `path`.
    public func scan(path: String) -> PackageScan {
        do {
            return scan(try FileByteSource(path: path))
        } catch {
            var scan = PackageScan()
            scan.issues.append(Issue("archive.read_failed", "the package cannot be read: \(error)"))
            return scan
        }
    }

    /// Scans the package read from `source`.
    public func scan<S: ByteSource>(_ source: S) -> PackageScan {
        var scan = PackageScan()
        // One zero block ends a package, as the Rust tool reads it (what follows is never used).
        let reader = TarReader(ProgressByteSource(source, progress: progress),
                               options: .init(bufferSize: limits.readBufferSize,
                                              maxExtendedHeaderSize: limits.maxExtendedHeaderSize,
                                              endAtFirstZeroBlock: true))
        var seen = Set<String>()
        // Required names whose absence another issue already explains.
        var explained = Set<String>()
        var manifestSeen = false
        var imageSeen = false
        var imageDigestWanted: Bool?
        var complete = false
        var count = 0
        // The image's outcome when layers are absent, and where its issues start in scan.issues.
        var absent: (at: Int, outcome: ImageInspector.Outcome)?

        entries: while true {
            let entry: TarEntry
            do {
                guard let next = try reader.next() else {
                    complete = true
                    break entries
                }
                entry = next
            } catch let error as TarError where error.isRecoverable {
                count += 1
                if count > limits.maxEntries {
                    scan.issues.append(tooManyEntries())
                    break entries
                }
                scan.issues.append(Issue("archive.invalid_entry_path",
                    "the package has an entry whose name is not usable: \(error.message)"))
                if let name = error.name { explained.insert(PackageScanner.lastComponent(name)) }
                continue
            } catch {
                scan.issues.append(PackageScanner.issue(for: error))
                break entries
            }
            count += 1
            if count > limits.maxEntries {
                scan.issues.append(tooManyEntries())
                break entries
            }
            scan.entries.append(.init(name: entry.name, type: entry.type, size: entry.size, dataOffset: entry.dataOffset))
            let name = entry.name
            let shown = TarFormat.quoted(name)

            // The Rust tool's order: the path, then duplicates, then the entry type.
            if let problem = PackageScanner.rootNameProblem(name, type: entry.type) {
                scan.issues.append(problem)
                explained.insert(PackageScanner.lastComponent(name))
                continue
            }
            guard seen.insert(PackageScanner.lastComponent(name)).inserted else {
                scan.issues.append(Issue("archive.duplicate_entry",
                    "package entry \(shown) appears more than once; only the first is read"))
                continue
            }
            guard entry.type == .regular else {
                scan.issues.append(Issue("archive.unsafe_entry_type",
                    "package entry \(shown) is a \(entry.type); a package holds only regular files"))
                explained.insert(PackageScanner.lastComponent(name))
                continue
            }

            switch name {
            case "manifest.toml":
                manifestSeen = true
                guard entry.size <= Int64(limits.maxManifestSize) else {
                    scan.issues.append(Issue("manifest.too_large",
                        "manifest.toml is \(entry.size) bytes; the limit is \(limits.maxManifestSize) bytes"))
                    continue
                }
                do {
                    let bytes = try reader.readWholeBody(limit: limits.maxManifestSize) ?? []
                    scan.manifestBytes = bytes
                    if !imageSeen { imageDigestWanted = wantImageDigest(bytes) }
                } catch {
                    scan.issues.append(Issue("manifest.read_failed", "manifest.toml cannot be read: \(PackageScanner.reason(error))"))
                    break entries
                }
            case "image.tar":
                imageSeen = true
                // Without a (readable) manifest before it, compute the digest anyway.
                let computeDigest = manifestSeen ? (imageDigestWanted ?? false) : true
                guard entry.size > 0 else {
                    scan.issues.append(Issue("image.empty_archive", "image.tar is empty"))
                    scan.imageTar = .init(size: 0, dataOffset: entry.dataOffset,
                                          sha256: computeDigest ? SHA256Digest.empty.hex : nil)
                    continue
                }
                let outcome = ImageInspector.inspect(reader, limits: limits, computeDigest: computeDigest)
                if let failure = outcome.outerFailure {
                    scan.issues.append(PackageScanner.issue(for: failure))
                    break entries
                }
                if outcome.absence != nil { absent = (scan.issues.count, outcome) }
                scan.issues += outcome.issues
                scan.image = outcome.facts
                scan.imageTar = .init(size: entry.size, dataOffset: entry.dataOffset, sha256: outcome.archiveDigest?.hex,
                                      compression: outcome.compression, unpackedSize: outcome.unpackedSize)
            case "image.tar.age":
                imageSeen = true
                var encrypted = PackageScan.EncryptedImage(size: entry.size, dataOffset: entry.dataOffset)
                defer { scan.encryptedImage = encrypted }
                // Whatever happens below, the upload reading the feed never sees a clean end
                // unless the final chunk authenticated (the first close counts).
                defer { plaintextFeed?.close(complete: false, reason: "validation did not decrypt image.tar.age to its authenticated end") }
                let source: AgeDecryptingSource<TarBodySource<ProgressByteSource<S>>>
                do {
                    source = try AgeDecryptingSource(reader.bodySource(), identities: ageIdentities, options: ageOptions,
                                                     ciphertextHasher: true)
                } catch {
                    // The rest of the entry is skipped by next() (which reports an outer failure).
                    scan.issues.append(error.issue)
                    continue
                }
                encrypted.stanzaTypes = source.header.stanzas.map(\.type)
                encrypted.fileKey = source.fileKey
                let outcome = ImageInspector.inspect(source: FeedingSource(source, feed: plaintextFeed), limits: limits,
                                                     computeDigest: true, outerFailure: { $0.base.base.failure })
                plaintextFeed?.close(complete: source.isComplete && source.failure == nil && outcome.outerFailure == nil)
                if let failure = outcome.outerFailure {
                    scan.issues.append(PackageScanner.issue(for: failure))
                    break entries
                }
                if let failure = source.failure {
                    // An authentication failure or truncation: what image.tar "says" is not trusted.
                    scan.issues.append(failure.issue)
                    continue
                }
                if outcome.absence != nil { absent = (scan.issues.count, outcome) }
                scan.issues += outcome.issues
                scan.image = outcome.facts
                encrypted.sha256 = source.isComplete ? source.finishCiphertextDigest()?.hex : nil
                scan.imageTar = .init(size: source.plaintextCount, dataOffset: entry.dataOffset, sha256: outcome.archiveDigest?.hex,
                                      compression: outcome.compression, unpackedSize: outcome.unpackedSize)
                if source.plaintextCount == 0 {
                    scan.issues.append(Issue("image.empty_archive", "image.tar (inside image.tar.age) is empty"))
                }
            case PackageSignature.entryName:
                // Kept for the signature check; a larger one is reported by the validator.
                guard entry.size <= Int64(limits.maxSignatureSize) else { continue }
                do {
                    scan.signatureBytes = try reader.readWholeBody(limit: limits.maxSignatureSize) ?? []
                } catch {
                    scan.issues.append(PackageScanner.issue(for: error))
                    break entries
                }
            default:
                break  // Other root files are allowed and ignored; next() skips them.
            }
        }

        if let (at, outcome) = absent, !(scan.manifestBytes.map(toleratesAbsentLayers) ?? false) {
            let strict = outcome.requiringEveryLayer()
            scan.issues.replaceSubrange(at..<(at + outcome.issues.count), with: strict.issues)
            scan.image = nil
        }
        if complete {
            if !manifestSeen, !explained.contains("manifest.toml") {
                scan.issues.append(Issue("archive.missing_manifest", "the package has no manifest.toml at its root"))
            }
            if !imageSeen, !explained.contains("image.tar") {
                scan.issues.append(Issue("archive.missing_image", "the package has no image.tar at its root"))
            }
        }
        scan.bytesRead = reader.source.bytesProcessed
        return scan
    }

    private func tooManyEntries() -> Issue {
        Issue("archive.too_many_entries", "the package has more than \(limits.maxEntries) entries")
    }

    /// The issue for a fatal reading error. As in the Rust tool, a header that cannot be read (a
    /// file that is not a tar archive at all, a bad checksum, data ending inside a header) is
    /// `archive.entry_read_failed`; `archive.read_failed` is left for the file itself failing (I/O).
    static func issue(for error: any Error) -> Issue {
        guard let error = error as? TarError else {
            return Issue("archive.read_failed", "the package cannot be read: \(error)")
        }
        if error.kind == .invalidSize {
            return Issue("archive.invalid_entry_size", "the package has an entry with an invalid size: \(error.message)")
        }
        if let entry = error.entryName {
            return Issue("archive.entry_read_failed", "package entry \(TarFormat.quoted(entry)) cannot be read: \(error.message)")
        }
        if error.kind == .readFailed {
            return Issue("archive.read_failed", "the package cannot be read: \(error.message)")
        }
        return Issue("archive.entry_read_failed", "the package is not a readable tar archive: \(error.message)")
    }

    static func reason(_ error: any Error) -> String {
        (error as? TarError)?.message ?? "\(error)"
    }

    /// One part of an entry name as Rust's `Path::components()` sees it (FORMATS §4).
    enum PathComponent: Equatable {
        case root, current, parent
        case normal(Substring)
    }

    /// `name` split as Rust's `Path::components()` splits it on Unix: a leading `/` is the root,
    /// empty parts are dropped, `.` counts only as the first part of a relative path, `..` always.
    static func rustComponents(_ name: String) -> [PathComponent] {
        var out: [PathComponent] = []
        let absolute = name.hasPrefix("/")
        if absolute { out.append(.root) }
        for (i, part) in name.split(separator: "/", omittingEmptySubsequences: true).enumerated() {
            switch part {
            case ".": if i == 0 && !absolute { out.append(.current) }
            case "..": out.append(.parent)
            default: out.append(.normal(part))
            }
        }
        return out
    }

    /// Only plain names at the root are valid. As the Rust tool splits paths: a name of more than
    /// one component (`a/b`, `./x`, `/x`, `../x`) is `archive.nested_entry`; a lone `/`, `.` or
    /// `..` is `archive.invalid_entry_path`. Ours, stricter: control characters or backslashes in
    /// a name, and a name that only resolves to a plain one (`x/` on a file, `x/.`), are
    /// `archive.invalid_entry_path` too.
    static func rootNameProblem(_ name: String, type: TarEntryType = .regular) -> Issue? {
        let shown = TarFormat.quoted(name)
        let components = rustComponents(name)
        if components.isEmpty {
            return Issue("archive.empty_entry_path", "the package has an entry with an empty name")
        }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f || $0 == "\\" }) {
            return Issue("archive.invalid_entry_path",
                "package entry \(shown) has control characters or backslashes in its name")
        }
        if components.count > 1 {
            return Issue("archive.nested_entry",
                "package entry \(shown) is not a file at the package root (a path with folders, absolute, or with '.' or '..' parts); a package holds only files at its root")
        }
        guard case .normal(let plain) = components[0] else {
            return Issue("archive.invalid_entry_path", "package entry \(shown) is not a name (a lone '/', '.' or '..')")
        }
        if plain != name && !(type == .directory && name == plain + "/") {
            return Issue("archive.invalid_entry_path",
                "package entry \(shown) is not a plain name (it only resolves to \(TarFormat.quoted(String(plain)))); a package holds only files at its root")
        }
        return nil
    }

    static func lastComponent(_ name: String) -> String {
        name.split(separator: "/").last.map(String.init) ?? name
    }
}
