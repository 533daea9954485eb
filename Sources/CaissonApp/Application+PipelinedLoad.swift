import CaissonCore
import Foundation

/// The image upload overlapped with validation, for hosts that stream archives (Docker).
///
/// Validation must finish before anything changes, but the bytes can travel while it runs: the
/// upload starts from a quick look at the package's headers, goes out as fast as the host takes
/// it, and its end is held by an `UploadGate` until the updater decides. Validation accepted and
/// the operator confirmed: `release`, the host finishes the load (and still checks the file's
/// identity and, when the manifest declares it, the archive's SHA-256). Anything else (rejected,
/// refused, declined, dry run, an error, a crash): the upload is dropped before its end and the
/// daemon, which reads the whole archive before it tags anything, loads nothing.
extension Application {
    /// Where `image.tar` is in the package and what the manifest says it must be tagged, from the
    /// first entries' headers only (at most 16 entries and the manifest's 64 KiB are read). nil
    /// when that cannot be told cheaply: the load then waits for validation as usual.
    static func locateImageArchive(_ path: String, identities: [any AgeIdentity] = [])
        -> (offset: Int64, length: Int64, reference: String, sha256: String?, encryption: ImageEncryption?)? {
        guard let source = try? FileByteSource(path: path) else { return nil }
        let reader = TarReader(source)
        var manifest: Manifest?
        var image: (offset: Int64, length: Int64, encrypted: Bool)?
        for _ in 0..<16 {
            guard let entry = try? reader.next() else { return nil }
            if entry.type == .regular, entry.name == "manifest.toml", manifest == nil {
                guard let bytes = try? reader.readWholeBody(limit: 64 * 1024) else { return nil }
                manifest = Manifest.parse(bytes).0
                if manifest == nil { return nil }
            } else if entry.type == .regular, entry.name == "image.tar" || entry.name == "image.tar.age", image == nil, entry.size > 0 {
                image = (entry.dataOffset, entry.size, entry.name == "image.tar.age")
            }
            if let manifest, let image {
                let sha = manifest.image.sha256.map { $0.hasPrefix("sha256:") ? String($0.dropFirst(7)) : $0 }
                var encryption: ImageEncryption?
                if image.encrypted {
                    // Only the header is read here, and only X25519 keys are tried (cheap); a
                    // passphrase (scrypt) waits for validation rather than run twice.
                    guard sha != nil, let size = manifest.image.size, !identities.isEmpty,
                          identities.allSatisfy({ $0 is AgeX25519Identity }),
                          let range = try? FileByteSource(path: path, offset: image.offset, length: image.length),
                          let age = try? AgeDecryptingSource(range, identities: identities) else { return nil }
                    encryption = ImageEncryption(fileKey: age.fileKey, plaintextSize: size)
                }
                return (image.offset, image.length, manifest.image.reference, sha?.lowercased(), encryption)
            }
        }
        return nil
    }

    /// An upload running on its own thread until its gate decides.
    final class PipelinedUpload: @unchecked Sendable {
        let payload: ImagePayload
        let gate: UploadGate
        private let done = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var result: Result<ImageInfo, HostError>?
        private var sentBytes: Int64 = 0
        /// Set by the release: progress from then on (the main thread is waiting; before it,
        /// nobody shows it).
        private var onProgress: ((Int64) -> Void)?

        /// Starts uploading `payload` (which must carry `gate`) to `host` on a new thread.
        init(host: any ContainerHost, payload: ImagePayload, gate: UploadGate) {
            self.payload = payload
            self.gate = gate
            // The host is used from this thread for the load only; the main thread meanwhile
            // inspects (plan). DockerHost's client is safe for that (one connection per request).
            nonisolated(unsafe) let host = host
            let thread = Thread { [self] in
                let r: Result<ImageInfo, HostError>
                do throws(HostError) {
                    r = .success(try host.loadImage(payload) { bytes in self.progressed(bytes) })
                } catch {
                    r = .failure(error)
                }
                // Validation, feeding the upload its plaintext, no longer waits for it.
                payload.plaintextFeed?.readerFinished()
                self.lock.withLock { self.result = r }
                self.done.signal()
            }
            thread.name = "caisson-image-upload"
            thread.start()
        }

        private func progressed(_ bytes: Int64) {
            let report: ((Int64) -> Void)? = lock.withLock {
                sentBytes = bytes
                return onProgress
            }
            report?(bytes)
        }

        /// Lets the upload end and waits for the load; `progress` sees the bytes sent from now on.
        func release(progress: @escaping (Int64) -> Void) -> Result<ImageInfo, HostError> {
            let already = lock.withLock {
                onProgress = progress
                return sentBytes
            }
            progress(already)
            gate.release()
            done.wait()
            done.signal()
            return lock.withLock { result! }
        }

        /// Stops the upload before its end (no effect once released) and waits for the thread.
        func abandon(_ reason: String) {
            stop(reason)
            done.wait()
            done.signal()
        }

        /// Vetoes the upload at once (a reader waiting for validation's plaintext stops too).
        func stop(_ reason: String) {
            gate.veto(reason)
            payload.plaintextFeed?.close(complete: false, reason: reason)
        }
    }

    /// Starts the overlapped upload when the host streams archives and the package's headers
    /// say where its image is; nil otherwise (the load then happens after validation).
    func startPipelinedUpload(readPath: String, identity: FileIdentity?, flags: LoadFlags) -> PipelinedUpload? {
        // Only `--host docker` is asked: creating the simulated host provisions its state, which
        // must not happen before validation has accepted the package.
        guard !flags.dryRun, flags.overlapUpload, options.host == .docker, let identity,
              let host = try? host(), host.streamsImageArchives,
              let where_ = Self.locateImageArchive(readPath, identities: (try? ageIdentities()) ?? []) else { return nil }
        let gate = UploadGate()
        var payload = ImagePayload(path: readPath, offset: where_.offset, length: where_.length, reference: where_.reference,
                                   expectedImageID: "", config: ImageConfig())
        payload.identity = identity
        payload.sha256 = where_.sha256
        payload.gate = gate
        payload.encryption = where_.encryption
        // One decryption: validation's authenticated plaintext is what the upload sends.
        if where_.encryption != nil { payload.plaintextFeed = PlaintextFeed() }
        return PipelinedUpload(host: host, payload: payload, gate: gate)
    }
}
