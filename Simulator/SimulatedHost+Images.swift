import CaissonCore

extension SimulatedHost {
    /// Normalised reference, memoised; nil when invalid.
    func normalized(_ reference: String) -> String? {
        referenceCache.normalize(reference)
    }

    enum ImageLookup {
        case found(String)
        case missing
        /// Not a reference, not an id.
        case invalid
    }

    /// Docker's `GetImage`: full id, then tag, then unique id prefix.
    func lookupImage(_ refOrID: String) -> ImageLookup {
        let looksLikeID = refOrID.hasPrefix("sha256:")
        if looksLikeID, state.images[refOrID] != nil { return .found(refOrID) }
        if let full = SimReference.fullImageID(refOrID) {
            return state.images[full] != nil ? .found(full) : .missing
        }
        let norm = looksLikeID ? nil : normalized(refOrID)
        if let norm, let id = state.tags[norm] { return .found(id) }
        if let prefix = SimReference.idPrefix(refOrID) {
            var match: String? = nil
            for id in state.images.keys where id.utf8.dropFirst(7).starts(with: prefix.utf8) {
                if match != nil { return .missing }  // ambiguous: Docker answers "No such image"
                match = id
            }
            if let match { return .found(match) }
            return .missing
        }
        return (looksLikeID || norm != nil) ? .missing : .invalid
    }

    func invalidReference(_ r: String) -> HostError {
        HostError(.failed, "invalid reference format: \"\(r)\"")
    }

    /// Points `norm` at `id`, taking it from whichever image had it.
    func moveTag(_ norm: String, to id: String) {
        if let old = state.tags[norm], old != id {
            state.images[old]?.repoTags.removeAll { $0 == norm }
        }
        state.tags[norm] = id
        if var image = state.images[id], !image.repoTags.contains(norm) {
            image.repoTags.append(norm)
            image.repoTags.sort()
            state.images[id] = image
        }
    }

    func imageInUse(_ id: String) -> SimContainer? {
        var user: SimContainer? = nil
        for c in state.containers.values where c.imageID == id {
            // Prefer reporting a running user, and the first by name, for a stable message.
            if user == nil || (c.status == .running && user?.status != .running)
                || (c.status == user?.status && c.name < (user?.name ?? "")) { user = c }
        }
        return user
    }

    func deleteImage(_ id: String) {
        guard let image = state.images.removeValue(forKey: id) else { return }
        for t in image.repoTags where state.tags[t] == id { state.tags.removeValue(forKey: t) }
        let (sum, overflow) = state.freeDiskBytes.addingReportingOverflow(image.sizeBytes)
        state.freeDiskBytes = overflow ? Int64.max : sum
    }

    // MARK: Operations

    func doLoadImage(_ payload: ImagePayload, progress: (Int64) -> Void) throws(HostError) -> ImageInfo {
        guard let id = SimReference.canonicalImageID(payload.expectedImageID) else {
            throw HostError(.failed, "invalid image archive: image id \"\(payload.expectedImageID)\" is not sha256:<hex>")
        }
        guard let norm = normalized(payload.reference), !norm.utf8.contains(UInt8(ascii: "@")) else { throw invalidReference(payload.reference) }
        guard payload.length > 0, payload.offset >= 0 else {
            throw HostError(.failed, "invalid image archive range: offset \(payload.offset), length \(payload.length)")
        }
        let sent = payload.length
        // The daemon unpacks the whole archive first (inflating a compressed one), even when it
        // turns out to hold an image it already has; a new image then keeps `length` bytes.
        let length = payload.unpackedBytes
        let (scaled, o1) = length.multipliedReportingOverflow(by: max(1, state.loadSpaceMultiplier))
        let (needed, o2) = scaled.addingReportingOverflow(max(0, state.loadSpaceMarginBytes))
        if o1 || o2 || needed > state.freeDiskBytes {
            throw HostError(.diskFull, "no space left on device: loading \(length) bytes needs \(o1 || o2 ? Int64.max : needed), \(max(0, state.freeDiskBytes)) free")
        }
        if !payload.requiredChainIDs.isEmpty {
            // A thin archive: like `docker load`, which opens a layer's file only when its chain is
            // not in the layer store, and fails (loading nothing) when the file is not there.
            let held = heldChainIDs()
            if let missing = payload.requiredChainIDs.first(where: { !held.contains($0) }) {
                throw HostError(.failed, "open /var/lib/docker/tmp/docker-import-sim/\(missing.dropFirst(7).prefix(64))/layer.tar: no such file or directory")
            }
        }
        if payload.encryption != nil {
            // Like the daemon, which reads the whole archive before it tags anything: an encrypted
            // archive is decrypted to its end (every chunk authenticated, the plaintext digest
            // checked) before the image exists. A failure changes nothing.
            try readEncryptedArchive(payload)
        }
        let steps: Int64 = 4
        for k in 1...steps { progress(sent / steps * k + (k == steps ? sent % steps : 0)) }
        if state.images[id] == nil {
            state.images[id] = SimImage(id: id, repoTags: [], config: payload.config, sizeBytes: length, layers: payload.diffIDs)
            state.freeDiskBytes = saturatingAdd(state.freeDiskBytes, -length)
        }
        moveTag(norm, to: id)
        guard let image = state.images[id] else { throw HostError(.failed, "internal simulator error: image vanished") }
        return image.info
    }

    /// The simulated layer store: the ChainIDs of every image's layers.
    func heldChainIDs() -> Set<String> {
        var held = Set<String>()
        for image in state.images.values { held.formUnion(LayerChain.chainIDs(image.layers)) }
        return held
    }

    func readEncryptedArchive(_ payload: ImagePayload) throws(HostError) {
        if let bytes = media[payload.path], let e = payload.encryption {
            // The simulated stick (the swarm's encrypted packages): the same checks, in memory.
            do {
                let from = Int(clamping: max(0, payload.offset))
                let to = Int(clamping: min(Int64(bytes.count), payload.offset + payload.length))
                let source = try AgeDecryptingSource(MemoryByteSource(from < to ? Array(bytes[from..<to]) : []), fileKey: e.fileKey)
                var sha = SHA256()
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
                defer { buffer.deallocate() }
                while true {
                    let n = try source.read(into: buffer)
                    if n == 0 { break }
                    sha.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                }
                if let want = payload.sha256?.lowercased(), sha.hex != want {
                    throw HostError(.failed, "the decrypted archive has SHA-256 \(sha.hex), not \(want) as validated")
                }
            } catch {
                throw HostError(.failed, "invalid image archive: the encrypted image does not decrypt (\(error)); nothing was loaded")
            }
            return
        }
        do {
            let reader = try PayloadArchiveReader(payload) { path, offset, length in
                try FileByteSource(path: path, offset: offset, length: length)
            }
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            while try reader.read(into: buffer) > 0 {}
        } catch {
            throw HostError(.failed, "invalid image archive: the encrypted image does not decrypt (\(error)); nothing was loaded")
        }
    }

    func doInspectImage(_ reference: String) throws(HostError) -> ImageInfo? {
        switch lookupImage(reference) {
        case .found(let id): return state.images[id]?.info
        case .missing: return nil
        case .invalid: throw invalidReference(reference)
        }
    }

    func doTagImage(_ imageID: String, as reference: String) throws(HostError) {
        let id: String
        switch lookupImage(imageID) {
        case .found(let found): id = found
        case .missing: throw HostError(.notFound, "No such image: \(imageID)")
        case .invalid: throw invalidReference(imageID)
        }
        guard let norm = normalized(reference) else { throw invalidReference(reference) }
        guard !norm.utf8.contains(UInt8(ascii: "@")) else { throw HostError(.failed, "refusing to create a tag with a digest reference") }
        moveTag(norm, to: id)
    }

    /// Returns what happened, for the trace.
    func doRemoveImage(_ reference: String) throws(HostError) -> String {
        let id: String
        switch lookupImage(reference) {
        case .found(let found): id = found
        case .missing: return "not found"
        case .invalid: throw invalidReference(reference)
        }
        guard let image = state.images[id] else { return "not found" }
        let hex = id.dropFirst(7)
        let byID = id.hasPrefix(reference) || hex.hasPrefix(reference)
        if !byID {
            guard let norm = normalized(reference) else { throw invalidReference(reference) }
            state.tags.removeValue(forKey: norm)
            state.images[id]?.repoTags.removeAll { $0 == norm }
            if image.repoTags.count > 1 { return "untagged " + norm }
            if imageInUse(id) != nil { return "untagged " + norm + " (image kept: in use)" }
            deleteImage(id)
            return "untagged " + norm + ", deleted " + id
        }
        if let user = imageInUse(id) {
            let how = user.status == .running ? "(cannot be forced) - image is being used by running container"
                                              : "(must be forced) - image is being used by stopped container"
            throw HostError(.conflict, "conflict: unable to delete \(hex.prefix(12)) \(how) \(user.id.prefix(12))")
        }
        if image.repoTags.count > 1 {
            throw HostError(.conflict, "conflict: unable to delete \(hex.prefix(12)) (must be forced) - image is referenced in multiple repositories")
        }
        deleteImage(id)
        return "deleted " + id
    }
}
