import CaissonCore

/// Issue 15 in the swarm: the new release arrives encrypted (`image.tar.age`, the age v1 format,
/// to the device's X25519 key), and what can go wrong with it on a stick happens: a flipped bit
/// in a chunk, a file cut short at a chunk boundary, a package encrypted to another device, or
/// the staged copy changed after validation accepted it. Like `caisson package load`: validation
/// decrypts the whole age file (every chunk authenticated, the final-chunk rule, the plaintext's
/// SHA-256 against the signed one) before anything changes, and the host's load decrypts it again
/// and only then has an image. A damaged package must never leave an image or begin an update.
public struct EncryptedImportPlan: Sendable, Codable, Equatable, CustomStringConvertible {
    public enum Damage: String, Sendable, Codable, Equatable, CaseIterable {
        /// The package as built: it loads.
        case none
        /// One bit of chunk `chunk` flipped on the stick: `encryption.payload_invalid`.
        case flippedChunk = "flipped-chunk"
        /// The age file cut after chunk `chunk` (a chunk boundary): `encryption.payload_invalid`.
        case truncated
        /// Encrypted to another device's key: `encryption.no_identity`.
        case wrongKey = "wrong-key"
        /// Intact when validated, one bit of chunk `chunk` flipped before the host reads it: the
        /// host's own decryption refuses it (`docker.load_failed`), nothing is loaded.
        case changedAfterValidation = "changed-after-validation"
        /// Another encryption of the same image.tar to the device (a fresh file key), swapped in
        /// for the one the signed manifest binds: it decrypts to the signed plaintext, and only
        /// the age file's own binding (size and SHA-256) refuses it: `encryption.checksum_mismatch`.
        case swapped
    }

    public var damage: Damage
    /// The chunk hit (0 ..< `EncryptedStick.chunks`).
    public var chunk: Int

    public init(damage: Damage, chunk: Int = 0) {
        self.damage = damage
        self.chunk = chunk
    }

    public var description: String {
        "encrypted/\(damage.rawValue)" + (damage == .none || damage == .wrongKey || damage == .swapped ? "" : "@\(chunk)")
    }

    /// The swarm's draw: an encrypted package in one run of ten (when the package is not thin);
    /// damaged in four of five of those.
    public static func draw(_ rng: inout SplitMix64) -> EncryptedImportPlan? {
        guard rng.chance(0.1) else { return nil }
        let damage = Damage.allCases[rng.below(Damage.allCases.count)]
        return EncryptedImportPlan(damage: damage, chunk: rng.below(EncryptedStick.chunks))
    }

    /// The code validation (or, changed after it, the load) must refuse the package with.
    public var expectedRefusal: String? {
        switch damage {
        case .none: return nil
        case .flippedChunk, .truncated: return "encryption.payload_invalid"
        case .wrongKey: return "encryption.no_identity"
        case .changedAfterValidation: return "docker.load_failed"
        case .swapped: return "encryption.checksum_mismatch"
        }
    }
}

/// The encrypted image on the simulated stick: a deterministic plaintext of a few 64 KiB chunks,
/// encrypted (with seeded randomness) to the device's key and to a stranger's. Built once.
public struct EncryptedStick: Sendable {
    public static let chunks = 3
    public static let path = "/media/stick/app-enc.edgepkg"
    public static let shared = EncryptedStick()

    public let device: AgeX25519Identity
    public let plaintextSHA256: String
    public let plaintextSize: Int64
    /// Encrypted to `device`, and to another device only.
    public let forDevice: [UInt8]
    public let forStranger: [UInt8]
    /// The same plaintext encrypted to `device` again (another file key): not the signed file.
    public let forDeviceAgain: [UInt8]
    /// What the signed manifest's `[encryption]` declares: the size and SHA-256 of `forDevice`.
    public let ciphertextSize: Int64
    public let ciphertextSHA256: String
    /// Where chunk k's sealed bytes start in the age file (header and payload nonce before them).
    public let payloadStart: Int

    init() {
        var rng = SplitMix64(seed: 0x6167_652D_7374_6963)
        // Sim-only randomness (no real secret is made here): each use its own seeded stream.
        func seeded(_ salt: UInt64) -> AgeRandomness {
            AgeRandomness { n in
                var r = SplitMix64(seed: salt)
                return (0..<n).map { _ in UInt8(truncatingIfNeeded: r.next()) }
            }
        }
        let plaintext: [UInt8] = (0..<(Self.chunks - 1) * 65536 + 1000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        device = try! AgeX25519Identity.generate(randomness: seeded(1))
        let stranger = try! AgeX25519Identity.generate(randomness: seeded(2))
        plaintextSHA256 = SHA256.hash(plaintext).hex
        plaintextSize = Int64(plaintext.count)
        func encrypt(to id: AgeX25519Identity, _ salt: UInt64) -> [UInt8] {
            var out: [UInt8] = []
            let enc = try! AgeEncryptor(recipients: [id.recipient], randomness: seeded(salt)) { out += Array($0) }
            try! enc.write(plaintext)
            try! enc.finish()
            return out
        }
        forDevice = encrypt(to: device, 3)
        forStranger = encrypt(to: stranger, 4)
        forDeviceAgain = encrypt(to: device, 5)
        ciphertextSize = Int64(forDevice.count)
        ciphertextSHA256 = SHA256.hash(forDevice).hex
        payloadStart = forDevice.count - plaintext.count - Self.chunks * 16
    }

    /// Offset of a byte inside chunk `k` (its middle).
    func inside(chunk k: Int) -> Int {
        min(payloadStart + k * 65552 + 32_000, forDevice.count - 1)
    }

    /// The age file as the plan leaves it on the stick (before validation).
    func onStick(_ plan: EncryptedImportPlan) -> [UInt8] {
        switch plan.damage {
        case .none, .changedAfterValidation: return forDevice
        case .wrongKey: return forStranger
        case .swapped: return forDeviceAgain
        case .flippedChunk:
            var b = forDevice
            b[inside(chunk: plan.chunk)] ^= 0x10
            return b
        case .truncated:
            // After chunk `chunk` (0 ..< chunks-1: the final chunk is the last one, so cutting
            // after it is no cut; cut it at its start instead).
            let k = min(plan.chunk, Self.chunks - 1)
            return Array(forDevice[..<(payloadStart + k * 65552)])
        }
    }
}

extension UpdateScenario {
    /// The payload validation hands the host's load (offset 0: the stick holds the age file).
    func encryptedPayload(fileKey: AgeFileKey, length: Int) -> ImagePayload {
        let stick = EncryptedStick.shared
        var p = ImagePayload(path: EncryptedStick.path, offset: 0, length: Int64(length), reference: UpdateScenario.newReference,
                             expectedImageID: newImageID, config: encryptedImageConfig ?? ImageConfig())
        p.sha256 = stick.plaintextSHA256
        p.encryption = ImageEncryption(fileKey: fileKey, plaintextSize: stick.plaintextSize)
        return p
    }

    /// Like `caisson package load` of an encrypted package: validation decrypts the age file to
    /// its end with the device's identity, hashing the age file as it reads it, and checks both
    /// bindings of the signed manifest with the validator's own checks
    /// (`PackageValidator.checkAgeFileBinding`: the age file's size and SHA-256;
    /// `checkImageDigest`: the plaintext's SHA-256); then the host's load decrypts it again.
    /// Throws the refusal; nothing of the update has begun then.
    func importEncrypted(_ plan: EncryptedImportPlan) throws {
        encryptedImport = plan
        let stick = EncryptedStick.shared
        var bytes = stick.onStick(plan)
        let fileKey: AgeFileKey
        do {
            let source = try AgeDecryptingSource(MemoryByteSource(bytes), identities: [stick.device], ciphertextHasher: true)
            var sha = SHA256()
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
            defer { buffer.deallocate() }
            while true {
                let n = try source.read(into: buffer)
                if n == 0 { break }
                sha.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
            }
            let ciphertextSHA256 = source.isComplete ? source.finishCiphertextDigest()?.hex : nil
            var issues = PackageValidator.checkAgeFileBinding(size: Int64(bytes.count), sha256: ciphertextSHA256,
                                                              declaredSize: stick.ciphertextSize, declaredSHA256: stick.ciphertextSHA256)
            if let issue = PackageValidator.checkImageDigest(sha.hex, declared: stick.plaintextSHA256) { issues.append(issue) }
            if let first = issues.first { throw CaissonError(first.code, first.message) }
            fileKey = source.fileKey
        } catch let e as AgeError {
            throw CaissonError(e.issue.code, e.issue.message)
        }
        if plan.damage == .changedAfterValidation {
            bytes[stick.inside(chunk: plan.chunk)] ^= 0x10
        }
        host.media[EncryptedStick.path] = bytes
        let payload = encryptedPayload(fileKey: fileKey, length: bytes.count)
        let info: ImageInfo
        do { info = try host.loadImage(payload, progress: { _ in }) } catch {
            throw CaissonError("docker.load_failed", "could not load the image: \(error.message)")
        }
        guard info.id == newImageID else {
            throw CaissonError("docker.load_failed", "the loaded image is \(info.id), not the image validated")
        }
        encryptedLoaded = true
    }

    /// The encrypted package's own invariants (the others hold as for any run).
    func encryptedViolations() -> [String] {
        guard let plan = encryptedImport else { return [] }
        var out: [String] = []
        let loaded = host.image(newImageID)
        let began = journal.attempts.contains { $0.updateID == self.plan.updateID }
        if let want = plan.expectedRefusal {
            if let code = refusal?.code, code != want {
                out.append("a \(plan) package was refused with \(code), not \(want)")
            }
            if refusal == nil { out.append("a \(plan) package was not refused (\(began ? "the update began" : "no refusal"))") }
            if loaded != nil { out.append("a \(plan) package left an image behind") }
            if began { out.append("the update began with a \(plan) package") }
        } else {
            if let code = refusal?.code, code.hasPrefix("encryption.") || code == "image.checksum_mismatch" {
                out.append("an intact encrypted package was refused with \(code)")
            }
        }
        if began && !encryptedLoaded { out.append("the update began although the encrypted package was not loaded") }
        if encryptedLoaded && loaded == nil && !began { out.append("the encrypted load reported an image that is not there") }
        return out
    }
}
