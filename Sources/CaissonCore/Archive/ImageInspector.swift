import FoundationEssentials

/// Streams a `docker save` archive once: hashes every regular file as it passes, keeps only
/// small JSON documents (bounded), remembers `path → (sha256, size)` and links, and resolves the
/// image at the end (`resolve()`), since `manifest.json` usually comes last.
struct ImageInspector {
    struct FileRecord {
        var digest: SHA256Digest
        var size: Int64
        /// gzip/zstd/bzip2/xz magic at the start of the file.
        var compressed: Bool
        /// `blobs/sha256/<hex>` whose content matched its name.
        var verifiedBlob: Bool
        /// `blobs/sha256/<hex>` whose content did not match its name (already reported).
        var mismatchedBlob: Bool
    }

    let limits: PackageScanLimits
    private(set) var issues: [Issue] = []
    private var files: [String: FileRecord] = [:]
    /// Symbolic and hard links: path → target path (resolved against the archive root).
    private var links: [String: String] = [:]
    private var json: [String: [UInt8]] = [:]
    private var jsonBytes = 0
    /// JSON candidates not kept, with the reason (size or budget), for messages.
    private var dropped: [String: String] = [:]
    private var sawOCILayout = false
    private(set) var entryCount = 0
    /// Unsafe entries seen: the first message of each code and how many there were.
    private var unsafeNoted: [(code: String, message: String, count: Int)] = []
    private var sha = SHA256()
    /// Layers `manifest.json` lists that image.tar does not hold (positions), and the issue they
    /// are when the package is not thin, with how many issues came before it.
    private(set) var absentLayers: [Int] = []
    private(set) var absence: Absence?

    struct Absence {
        var issue: Issue
        var issueCount: Int
    }

    init(limits: PackageScanLimits) { self.limits = limits }

    /// What the package scanner gets back.
    struct Outcome {
        var facts: ImageFacts?
        var issues: [Issue]
        /// Digest of the whole image.tar when requested and fully read.
        var archiveDigest: SHA256Digest?
        /// The outer archive failed while image.tar was being read (an outer problem).
        var outerFailure: TarError?
        /// How image.tar is stored (when its first bytes could be read).
        var compression: ImageCompression?
        /// The size of the tar stream inside a compressed image.tar, when fully read.
        var unpackedSize: Int64?
        /// Some layers are absent (`facts.absentLayers`): unless the package is thin, this issue
        /// replaces `issues` from `issueCount` on, and there are no facts.
        var absence: Absence? = nil

        /// The outcome of a package that is not thin: absent layers are an error.
        func requiringEveryLayer() -> Outcome {
            guard let absence else { return self }
            var strict = self
            strict.facts = nil
            strict.issues = Array(issues.prefix(absence.issueCount)) + [absence.issue]
            strict.absence = nil
            return strict
        }
    }

    /// Reads the current entry of `outer` (image.tar) to its end and inspects it.
    static func inspect<Outer: ByteSource>(_ outer: TarReader<Outer>, limits: PackageScanLimits,
                                            computeDigest: Bool) -> Outcome {
        inspect(source: outer.bodySource(), limits: limits, computeDigest: computeDigest, outerFailure: { $0.failure })
    }

    /// Reads image.tar from `source` to its end and inspects it; `outerFailure` tells whether a
    /// read error came from the package around it (then reported as an outer problem).
    static func inspect<Body: ByteSource>(source: Body, limits: PackageScanLimits, computeDigest: Bool,
                                          outerFailure: (Body) -> TarError?) -> Outcome {
        var inspector = ImageInspector(limits: limits)
        // The digest is of image.tar as stored (compressed or not); the inspection of the tar
        // stream inside it (inflated as it is read when it is gzip).
        let tee = HashingTeeSource(source, hasher: computeDigest ? BackgroundHasher() : nil)
        let stream = ImageArchiveSource(tee, limits: limits.gzip)
        let inner = TarReader(stream, options: .init(bufferSize: limits.readBufferSize,
                                                      maxExtendedHeaderSize: limits.maxExtendedHeaderSize,
                                                      directReads: false))
        // The tee's hasher may still read the inner reader's buffer: wait for it before the
        // reader (and its buffer) can go away.
        defer {
            tee.quiesce()
            withExtendedLifetime(inner) {}
        }
        var readFailure: TarError?
        do {
            entries: while true {
                var entry: TarEntry?
                do {
                    guard let next = try inner.next() else { break entries }
                    entry = next
                } catch let error as TarError where error.isRecoverable {
                    // A name no JSON document can refer to, and that `docker load` cannot use safely.
                    entry = nil
                    inspector.noteUnsafe("image.unsafe_entry_path",
                        "image.tar has an entry whose name is not usable: \(error.message)")
                }
                inspector.entryCount += 1
                if inspector.entryCount > limits.maxImageEntries {
                    tee.quiesce()
                    inspector.flushUnsafe()
                    inspector.issues.append(Issue("image.invalid_archive",
                        "image.tar has more than \(limits.maxImageEntries) entries; it is not a docker save archive Caisson accepts"))
                    return Outcome(facts: nil, issues: inspector.issues, archiveDigest: nil, outerFailure: nil,
                                   compression: stream.compression)
                }
                guard let entry else { continue }
                if let (code, message) = ImageInspector.unsafety(of: entry) {
                    inspector.noteUnsafe(code, message)
                    continue  // Never inspected; next() skips its body.
                }
                try inspector.consume(entry, from: inner)
            }
            try inner.drainSource()
        } catch let error as TarError {
            readFailure = error
        } catch {
            readFailure = TarError(.readFailed, "\(error)", offset: inner.position)
        }
        inspector.flushUnsafe()
        if let readFailure {
            tee.quiesce()
            if let outerFailure = outerFailure(tee.base) {
                return Outcome(facts: nil, issues: [], archiveDigest: nil, outerFailure: outerFailure)
            }
            let issue: Issue
            if let refused = stream.failure {
                issue = Issue(refused.code, refused.message)
            } else if readFailure.entryName == nil && readFailure.kind != .readFailed {
                // Not a tar archive where a header should be (or the data ends inside one).
                let what = stream.compression == .gzip ? "the tar archive inside the gzip-compressed image.tar" : "image.tar"
                issue = Issue("image.invalid_archive", "\(what) is not a docker save archive: \(readFailure.message)")
            } else {
                issue = Issue("image.read_failed", "image.tar cannot be read to its end: \(readFailure.message)")
            }
            return Outcome(facts: nil, issues: inspector.issues + [issue], archiveDigest: nil, outerFailure: nil,
                           compression: stream.compression)
        }
        let digest = tee.finish()
        let facts = inspector.resolve()
        return Outcome(facts: facts, issues: inspector.issues, archiveDigest: digest, outerFailure: nil,
                       compression: stream.compression, unpackedSize: stream.bytesOut,
                       absence: facts == nil ? nil : inspector.absence)
    }

    // MARK: - Unsafe entries

    /// An entry `docker load` must never be handed: a name that is absolute or has a `..` part, a
    /// hard link whose target is such a name, or a device, FIFO or sparse file. A `docker save`
    /// archive holds only directories, regular files and links inside the archive. (Symbolic links
    /// that leave the archive are not refused here; a layer path that uses one is missing.)
    static func unsafety(of entry: TarEntry) -> (code: String, message: String)? {
        let shown = TarFormat.quoted(entry.name)
        if isUnsafePath(entry.name) {
            return ("image.unsafe_entry_path",
                    "image.tar entry \(shown) is not a relative path inside the archive (absolute, or with a '..' part)")
        }
        switch entry.type {
        case .characterDevice, .blockDevice, .fifo, .sparse:
            return ("image.unsafe_entry_type",
                    "image.tar entry \(shown) is a \(entry.type); a docker save archive holds only directories, regular files and links")
        case .hardLink where isUnsafePath(entry.linkName):
            return ("image.unsafe_entry_path",
                    "image.tar hard link \(shown) points to \(TarFormat.quoted(entry.linkName)), outside the archive")
        default:
            return nil
        }
    }

    static func isUnsafePath(_ path: String) -> Bool {
        path.hasPrefix("/") || path.split(separator: "/", omittingEmptySubsequences: true).contains("..")
    }

    /// Remembers an unsafe entry; one issue per code is reported, with the count.
    mutating func noteUnsafe(_ code: String, _ message: String) {
        if let i = unsafeNoted.firstIndex(where: { $0.code == code }) {
            unsafeNoted[i].count += 1
        } else {
            unsafeNoted.append((code, message, 1))
        }
    }

    /// Appends the unsafe-entry issues (once).
    mutating func flushUnsafe() {
        for (code, message, count) in unsafeNoted {
            issues.append(Issue(code, count == 1 ? message : "\(message) (and \(count - 1) more such entries)"))
        }
        unsafeNoted = []
    }

    // MARK: - Streaming

    private mutating func consume<S: ByteSource>(_ entry: TarEntry, from reader: TarReader<S>) throws {
        guard let path = ImageInspector.cleanPath(entry.name) else { return }
        switch entry.type {
        case .regular, .contiguous:
            if !links.isEmpty { links[path] = nil }
            let keep = jsonCandidate(path, size: entry.size)
            var kept: [UInt8]? = keep == .always ? [] : nil
            var head: [UInt8] = []  // the first bytes, for compression magic (chunks can be tiny)
            var decided = keep != .ifObject
            try reader.readBodyChunkLoop { chunk in
                sha.update(chunk)
                if head.count < ImageInspector.magicLength {
                    head += chunk.prefix(ImageInspector.magicLength - head.count)
                }
                if !decided {
                    // Blobs are kept only when they look like a JSON object.
                    if let c = chunk.first(where: { !ImageInspector.isJSONSpace($0) }) {
                        decided = true
                        if c == UInt8(ascii: "{") { kept = [] }
                    }
                }
                kept?.append(contentsOf: chunk)
            }
            let digest = sha.finalizeDigest()
            var verified = false
            var mismatched = false
            if let expected = ImageInspector.blobDigest(path) {
                if expected == digest {
                    verified = true
                } else {
                    mismatched = true
                    issues.append(Issue("image.digest_mismatch",
                        "image.tar blob \(TarFormat.quoted(path)) has SHA-256 \(digest.hex), not the digest its name states"))
                }
            }
            files[path] = FileRecord(digest: digest, size: entry.size, compressed: ImageInspector.hasCompressionMagic(head),
                                     verifiedBlob: verified, mismatchedBlob: mismatched)
            if let kept {
                json[path] = kept
                jsonBytes += kept.count
            } else if !json.isEmpty {
                json[path] = nil
            }
            if path == "oci-layout" { sawOCILayout = true }
        case .symbolicLink:
            guard let target = ImageInspector.resolveLinkTarget(entry.linkName, from: path) else { return }
            files[path] = nil
            links[path] = target
        case .hardLink:
            guard let target = ImageInspector.cleanPath(entry.linkName) else { return }
            files[path] = nil
            links[path] = target
        default:
            break  // Directories and anything else carry nothing we read.
        }
    }

    private enum KeepPolicy { case never, always, ifObject }

    private mutating func jsonCandidate(_ path: String, size: Int64) -> KeepPolicy {
        let isRootDocument = !path.contains("/") &&
            (path.hasSuffix(".json") || path == "repositories" || path == "oci-layout")
        let isBlob = path.hasPrefix("blobs/")
        guard isRootDocument || isBlob else { return .never }
        if size > Int64(limits.maxJSONFileSize) {
            dropped[path] = "it is larger than \(limits.maxJSONFileSize) bytes"
            return .never
        }
        if Int64(jsonBytes) + size > Int64(limits.maxJSONTotalBytes) {
            dropped[path] = "the image's JSON documents exceed \(limits.maxJSONTotalBytes) bytes in total"
            return .never
        }
        return isRootDocument ? .always : .ifObject
    }

    // MARK: - Resolution

    private mutating func invalid(_ message: String) {
        issues.append(Issue("image.invalid_archive", message))
    }

    /// Reads a kept JSON document, or records why it cannot.
    private mutating func document<T: Decodable>(_ type: T.Type, at path: String, what: String) -> T? {
        guard let resolved = resolvePath(path) else {
            invalid("image.tar has no \(what) \(TarFormat.quoted(path))")
            return nil
        }
        guard let bytes = json[resolved] else {
            let reason = dropped[resolved] ?? "it is not a JSON object"
            invalid("image.tar \(what) \(TarFormat.quoted(path)) cannot be read: \(reason)")
            return nil
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(bytes))
        } catch {
            invalid("image.tar \(what) \(TarFormat.quoted(path)) is not valid: \(ImageInspector.describe(error))")
            return nil
        }
    }

    /// Follows links (at most 16 hops) to a regular file; returns its path.
    private func resolvePath(_ path: String) -> String? {
        guard var current = ImageInspector.cleanPath(path) else { return nil }
        for _ in 0..<16 {
            if files[current] != nil { return current }
            guard let target = links[current] else { return nil }
            current = target
        }
        return nil
    }

    private struct ImageDescription {
        var configPath: String
        var layerPaths: [String]
        var tags: [String]
    }

    mutating func resolve() -> ImageFacts? {
        let hasIndex = files["index.json"] != nil || links["index.json"] != nil
        let layout: ImageFacts.Layout = (sawOCILayout || hasIndex) ? .oci : .legacy
        let hasManifest = files["manifest.json"] != nil || links["manifest.json"] != nil

        var index: OCIIndex?
        if hasIndex {
            index = document(OCIIndex.self, at: "index.json", what: "index")
            if index == nil { return nil }
        }

        var description: ImageDescription?
        if hasManifest {
            guard let entries = document([DockerSaveManifestEntry].self, at: "manifest.json", what: "manifest") else { return nil }
            description = describe(legacy: entries)
        } else if let index {
            description = describe(index: index)
        } else {
            invalid("image.tar has neither manifest.json nor index.json; it is not a docker save archive")
            return nil
        }
        guard var description else { return nil }

        // Tags from index.json, and its images must be the one manifest.json describes.
        if let index {
            for descriptor in index.manifests {
                if let name = ImageInspector.tagAnnotation(descriptor.annotations) { description.tags.append(name) }
            }
            if hasManifest { crossCheck(index: index, configPath: description.configPath) }
        }
        if files["repositories"] != nil || links["repositories"] != nil,
           let repositories = document([String: [String: String]].self, at: "repositories", what: "repositories file") {
            for repo in repositories.keys.sorted() {
                for tag in (repositories[repo] ?? [:]).keys.sorted() { description.tags.append(repo + ":" + tag) }
            }
        }

        // Config: its digest is the image id.
        guard let configName = resolvePath(description.configPath), let configRecord = files[configName] else {
            invalid("image.tar has no config \(TarFormat.quoted(description.configPath))")
            return nil
        }
        if let named = ImageInspector.legacyConfigDigest(description.configPath), named != configRecord.digest {
            issues.append(Issue("image.digest_mismatch",
                "image.tar config \(TarFormat.quoted(description.configPath)) has SHA-256 \(configRecord.digest.hex), not the digest its name states"))
        }
        guard let config = document(ImageConfigJSON.self, at: description.configPath, what: "config") else { return nil }

        // Layers: each must exist and match its diff id, in order.
        let diffIDs = config.rootfs?.diffIDs ?? []
        guard description.layerPaths.count <= limits.maxLayers, diffIDs.count <= limits.maxLayers else {
            invalid("image has \(max(description.layerPaths.count, diffIDs.count)) layers, more than the \(limits.maxLayers) allowed")
            return nil
        }
        var totalBytes: Int64 = 0
        var layerRecords: [(path: String, name: String, record: FileRecord)?] = []
        for (i, path) in description.layerPaths.enumerated() {
            guard let name = resolvePath(path), let record = files[name] else {
                // Absent: an error unless the package is thin (the scanner decides, knowing the
                // manifest); what is reported stops here as it always did when it is an error.
                if absence == nil {
                    absence = Absence(issue: Issue("image.invalid_archive", "image.tar has no layer \(TarFormat.quoted(path))"),
                                      issueCount: issues.count)
                }
                absentLayers.append(i)
                layerRecords.append(nil)
                continue
            }
            totalBytes += record.size
            layerRecords.append((path, name, record))
        }
        if diffIDs.count != layerRecords.count {
            issues.append(Issue("image.digest_mismatch",
                "image config lists \(diffIDs.count) layer diff ids but the manifest lists \(layerRecords.count) layers"))
        } else {
            for (i, layer) in layerRecords.enumerated() {
                guard let layer else { continue }
                let diffID = diffIDs[i]
                guard diffID.hasPrefix("sha256:"), let expected = SHA256Digest(hex: diffID.dropFirst(7)) else {
                    invalid("image config diff id \(i + 1) \(TarFormat.quoted(diffID)) is not a sha256 digest")
                    continue
                }
                if layer.record.mismatchedBlob {
                    continue  // Its content is already reported as not matching its name.
                }
                if layer.record.compressed {
                    // A compressed blob is verified by its name; its diff id would need decompression.
                    if !layer.record.verifiedBlob {
                        invalid("image.tar layer \(TarFormat.quoted(layer.path)) is compressed and outside blobs/sha256, so its content cannot be verified")
                    }
                } else if layer.record.digest != expected {
                    issues.append(Issue("image.digest_mismatch",
                        "image.tar layer \(TarFormat.quoted(layer.path)) has SHA-256 \(layer.record.digest.hex), but the config expects \(expected.hex)"))
                }
            }
        }

        var tags = Set<String>()
        for tag in Set(description.tags).sorted() {
            do {
                let reference = try ImageReference(tag)
                guard reference.tag != nil, reference.digest == nil else {
                    invalid("image.tar names the image \(TarFormat.quoted(tag)), which is not a name:tag reference")
                    continue
                }
                tags.insert(reference.familiar)
            } catch {
                invalid("image.tar names the image \(TarFormat.quoted(tag)), which is not a valid reference")
            }
        }

        let container = config.config
        let healthTest = container?.healthcheck?.test ?? []
        var facts = ImageFacts(
            layout: layout,
            imageID: configRecord.digest.prefixed,
            repoTags: tags.sorted(),
            os: config.os ?? "",
            architecture: config.architecture ?? "",
            variant: config.variant.flatMap { $0.isEmpty ? nil : $0 },
            layers: diffIDs,
            totalLayerBytes: totalBytes,
            labels: (container?.labels ?? [:]).map { ImageLabel(key: $0.key, value: $0.value) }.sorted { $0.key < $1.key },
            hasHealthcheck: !healthTest.isEmpty && healthTest != ["NONE"],
            env: container?.env ?? [],
            cmd: container?.cmd,
            entrypoint: container?.entrypoint,
            workingDir: container?.workingDir ?? "",
            user: container?.user ?? "",
            exposedPorts: (container?.exposedPorts ?? [:]).keys.sorted())
        facts.layerFiles = layerRecords.map { $0?.name ?? "" }
        facts.absentLayers = absentLayers
        return facts
    }

    private mutating func describe(legacy entries: [DockerSaveManifestEntry]) -> ImageDescription? {
        guard let first = entries.first else {
            invalid("image.tar manifest.json lists no image")
            return nil
        }
        let configs = Set(entries.map { ImageInspector.cleanPath($0.config) ?? $0.config })
        guard configs.count == 1 else {
            invalid("image.tar holds \(configs.count) images; a package must hold exactly one")
            return nil
        }
        let layers = entries.map { $0.layers.map { ImageInspector.cleanPath($0) ?? $0 } }
        guard Set(layers).count == 1 else {
            invalid("image.tar manifest.json describes one config with different layer lists")
            return nil
        }
        return ImageDescription(configPath: first.config, layerPaths: first.layers,
                                tags: entries.flatMap { $0.repoTags ?? [] })
    }

    private mutating func describe(index: OCIIndex) -> ImageDescription? {
        var images: [String: OCIImageManifest] = [:]
        for descriptor in index.manifests {
            if ImageInspector.isIndexMediaType(descriptor.mediaType) {
                invalid("image.tar index.json refers to a nested image index and has no manifest.json; Caisson needs a single-platform image")
                return nil
            }
            guard let blob = ImageInspector.blobPath(descriptor.digest) else {
                invalid("image.tar index.json has a malformed digest \(TarFormat.quoted(descriptor.digest))")
                return nil
            }
            guard let manifest = document(OCIImageManifest.self, at: blob, what: "image manifest") else { return nil }
            images[manifest.config.digest] = manifest
        }
        guard images.count == 1, let manifest = images.values.first else {
            if images.isEmpty { invalid("image.tar index.json lists no image") }
            else { invalid("image.tar holds \(images.count) images; a package must hold exactly one") }
            return nil
        }
        guard let configPath = ImageInspector.blobPath(manifest.config.digest) else {
            invalid("image.tar image manifest has a malformed config digest \(TarFormat.quoted(manifest.config.digest))")
            return nil
        }
        var layerPaths: [String] = []
        for layer in manifest.layers {
            guard let path = ImageInspector.blobPath(layer.digest) else {
                invalid("image.tar image manifest has a malformed layer digest \(TarFormat.quoted(layer.digest))")
                return nil
            }
            layerPaths.append(path)
        }
        return ImageDescription(configPath: configPath, layerPaths: layerPaths, tags: [])
    }

    /// index.json must not describe another image than manifest.json. Entries whose manifest
    /// blob is absent or is a nested index are not followed (docker save of a multi-platform
    /// image writes only the local platform's blobs).
    private mutating func crossCheck(index: OCIIndex, configPath: String) {
        guard let configName = resolvePath(configPath), let config = files[configName] else { return }
        for descriptor in index.manifests where !ImageInspector.isIndexMediaType(descriptor.mediaType) {
            guard let blob = ImageInspector.blobPath(descriptor.digest), let name = resolvePath(blob),
                  let bytes = json[name],
                  let manifest = try? JSONDecoder().decode(OCIImageManifest.self, from: Data(bytes)),
                  manifest.config.digest.hasPrefix("sha256:"),
                  let digest = SHA256Digest(hex: manifest.config.digest.dropFirst(7)) else { continue }
            if digest != config.digest {
                invalid("image.tar holds 2 images: index.json refers to config \(digest.hex), manifest.json to \(config.digest.hex); a package must hold exactly one")
                return
            }
        }
    }

    // MARK: - Helpers

    /// The tag an index.json entry gives its image: `io.containerd.image.name`, else an
    /// `org.opencontainers.image.ref.name` that is a full reference with a tag.
    static func tagAnnotation(_ annotations: [String: String]?) -> String? {
        guard let annotations else { return nil }
        if let name = annotations["io.containerd.image.name"] {
            // A digest-only name (an image saved by id) is not a tag.
            if let reference = try? ImageReference(name), reference.tag == nil { return nil }
            return name
        }
        if let ref = annotations["org.opencontainers.image.ref.name"],
           let reference = try? ImageReference(ref), reference.tag != nil, ref.contains(":") {
            return ref
        }
        return nil
    }

    static func isIndexMediaType(_ mediaType: String?) -> Bool {
        mediaType == "application/vnd.oci.image.index.v1+json" ||
            mediaType == "application/vnd.docker.distribution.manifest.list.v2+json"
    }

    /// `sha256:<hex>` → `blobs/sha256/<hex>`.
    static func blobPath(_ digest: String) -> String? {
        guard digest.hasPrefix("sha256:"), SHA256Digest(hex: digest.dropFirst(7)) != nil else { return nil }
        return "blobs/sha256/" + digest.dropFirst(7)
    }

    /// The digest a `blobs/sha256/<hex>` path states.
    static func blobDigest(_ path: String) -> SHA256Digest? {
        guard path.hasPrefix("blobs/sha256/") else { return nil }
        return SHA256Digest(hex: path.dropFirst("blobs/sha256/".count))
    }

    /// The digest a legacy config name `<hex>.json` states.
    static func legacyConfigDigest(_ path: String) -> SHA256Digest? {
        guard let clean = cleanPath(path), !clean.contains("/"), clean.hasSuffix(".json") else { return nil }
        return SHA256Digest(hex: clean.dropLast(5))
    }

    /// Normalizes an archive path: drops "." and empty components, applies "..", and refuses
    /// paths that leave the archive root. A leading "/" is read as the root.
    static func cleanPath(_ path: String) -> String? {
        if isClean(path) { return path }
        var parts: [Substring] = []
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            if component == ".." {
                guard !parts.isEmpty else { return nil }
                parts.removeLast()
                continue
            }
            parts.append(component)
        }
        guard !parts.isEmpty else { return nil }
        return parts.joined(separator: "/")
    }

    /// No empty, "." or ".." component: the common case, without allocating.
    private static func isClean(_ path: String) -> Bool {
        var componentLength = 0
        var dots = 0
        for c in path.utf8 {
            if c == UInt8(ascii: "/") {
                if componentLength == 0 || componentLength == dots { return false }
                componentLength = 0
                dots = 0
            } else {
                componentLength += 1
                if c == UInt8(ascii: "."), dots == componentLength - 1 { dots += 1 }
            }
        }
        return componentLength > 0 && !(componentLength == dots && dots <= 2)
    }

    /// A symbolic link's target relative to the link's folder (absolute targets from the root).
    static func resolveLinkTarget(_ target: String, from linkPath: String) -> String? {
        if target.hasPrefix("/") { return cleanPath(target) }
        let folder = linkPath.split(separator: "/").dropLast().joined(separator: "/")
        return cleanPath(folder.isEmpty ? target : folder + "/" + target)
    }

    static let magicLength = 6

    /// gzip, zstd, bzip2 or xz magic at the start of `bytes`.
    static func hasCompressionMagic(_ bytes: [UInt8]) -> Bool {
        func starts(_ magic: [UInt8]) -> Bool {
            bytes.count >= magic.count && zip(bytes, magic).allSatisfy { $0 == $1 }
        }
        return starts([0x1f, 0x8b]) || starts([0x28, 0xb5, 0x2f, 0xfd]) ||
            starts([0x42, 0x5a, 0x68]) || starts([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])
    }

    static func isJSONSpace(_ c: UInt8) -> Bool {
        c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let context):
            return context.debugDescription
        case DecodingError.keyNotFound(let key, let context):
            return "missing \(path(context.codingPath + [key]))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "unexpected value at \(path(context.codingPath))"
        default:
            return "\(error)"
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.isEmpty ? "top level" : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}

extension TarReader {
    /// Calls `body` with each remaining chunk of the current body.
    func readBodyChunkLoop(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        while try readBodyChunk(body) > 0 {}
    }
}
