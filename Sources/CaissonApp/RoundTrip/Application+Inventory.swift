import CaissonCore
import CaissonStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a device holds, for the connected side (issue 16): which release each service runs and
/// which image layers are on the device, so a package can leave out what is already there.
/// JSON, snake_case, signed by the device key (`SignedDocument`).
public struct DeviceInventory: Sendable, Codable, Equatable {
    public static let formatName = "caisson-inventory/1"

    public var format: String
    public var deviceID: String
    public var deviceKeyID: String
    /// The device's platform (`linux/amd64`, `linux/arm64`, `linux/arm/v7`).
    public var platform: String
    public var caissonVersion: String
    public var exportedAt: String
    /// The runtime as it answered (`Docker 20.10.24, API 1.41`).
    public var runtime: String
    public var services: [Service]
    /// Every image on the device (untagged and intermediate ones too), sorted by id.
    public var images: [Image]
    public var freeDisk: FreeDisk
    /// The newest link of the device's audit chain when the inventory was taken.
    public var auditHead: AuditHead?
    /// The device's age recipients (`age1…`): what packages for it are encrypted to.
    public var ageRecipients: [String]

    public struct Service: Sendable, Codable, Equatable {
        public var name: String
        public var runtimeMode: String
        /// The image the service's container runs now (nil: no container found).
        public var imageID: String?
        public var imageReference: String?
        public var diffIDs: [String]
        public var chainIDs: [String]
        /// The package version of the active release, when Caisson installed it.
        public var version: String?
        public var lastOutcome: LastOutcome?

        enum CodingKeys: String, CodingKey {
            case name, version
            case runtimeMode = "runtime_mode", imageID = "image_id", imageReference = "image_reference"
            case diffIDs = "diff_ids", chainIDs = "chain_ids", lastOutcome = "last_outcome"
        }
    }

    public struct LastOutcome: Sendable, Codable, Equatable {
        public var updateID: String
        public var kind: String
        public var status: String
        public var packageVersion: String?
        public var finishedAt: String?

        enum CodingKeys: String, CodingKey {
            case kind, status
            case updateID = "update_id", packageVersion = "package_version", finishedAt = "finished_at"
        }
    }

    public struct Image: Sendable, Codable, Equatable {
        public var id: String
        public var repoTags: [String]
        public var chainIDs: [String]

        enum CodingKeys: String, CodingKey {
            case id
            case repoTags = "repo_tags", chainIDs = "chain_ids"
        }
    }

    public struct FreeDisk: Sendable, Codable, Equatable {
        public var stateDirBytes: Int64?
        public var imageStorePath: String?
        public var imageStoreBytes: Int64?

        enum CodingKeys: String, CodingKey {
            case stateDirBytes = "state_dir_bytes", imageStorePath = "image_store_path", imageStoreBytes = "image_store_bytes"
        }
    }

    enum CodingKeys: String, CodingKey {
        case format, platform, runtime, services, images
        case deviceID = "device_id", deviceKeyID = "device_key_id", caissonVersion = "caisson_version"
        case exportedAt = "exported_at", freeDisk = "free_disk", auditHead = "audit_head", ageRecipients = "age_recipients"
    }

    /// Every ChainID the device held.
    public var heldChainIDs: Set<String> {
        var held = Set<String>()
        for i in images { held.formUnion(i.chainIDs) }
        for s in services { held.formUnion(s.chainIDs) }
        return held
    }

    /// Reads an inventory document; `inventory.invalid` when it is not one.
    public static func decode(_ bytes: [UInt8], path: String) throws -> DeviceInventory {
        let inventory: DeviceInventory
        do { inventory = try JSONCoding.decode(DeviceInventory.self, from: bytes) } catch {
            throw CaissonError("inventory.invalid", "\(path) is not a Caisson device inventory: \(error)")
        }
        guard inventory.format == formatName else {
            throw CaissonError("inventory.invalid", "\(path) is a \(inventory.format) document, not \(formatName)")
        }
        for c in inventory.images.flatMap(\.chainIDs) + inventory.services.flatMap(\.chainIDs) where !LayerChain.isDigest(c) {
            throw CaissonError("inventory.invalid", "\(path) lists the chain id \"\(c.prefix(80))\", which is not a sha256 digest")
        }
        return inventory
    }
}

extension Application {
    /// The device's copy of the last inventory it exported (for retention, `package cleanup`).
    public var lastInventoryPath: String { stateDir + "/inventory-last.json" }

    public struct InventoryExport: Sendable {
        public var inventory: DeviceInventory
        public var path: String
        public var signaturePath: String
        public var sha256: String
    }

    /// Takes the device inventory, signs it with the device key and writes it to `output` (and
    /// `output.minisig`), keeping a copy in the state directory. Takes the operation lock.
    public func exportInventory(to output: String) throws -> InventoryExport {
        let key = try deviceSecretKey()
        let lock = try OperationLock.acquire(stateDir: stateDir, operation: "inventory export", since: systemClock.timestamp())
        defer { lock.release() }
        try recoverIfNeeded()
        let inventory = try takeInventory(keyID: key.keyID.description)
        let bytes = try JSONCoding.encode(inventory, pretty: true) + [0x0A]
        let sha = SHA256.hash(bytes).hex
        let path = Self.absolute(output)
        let comment = "caisson inventory device \(inventory.deviceID) exported \(inventory.exportedAt) sha256 \(sha)"
        try SignedDocument.write(bytes, to: path, key: key, trustedComment: comment)
        try SignedDocument.write(bytes, to: lastInventoryPath, key: key, trustedComment: comment)
        try store().appendAudit([AuditEvent(kind: .inventoryExported, at: systemClock.timestamp(),
                                            message: "inventory exported to \(path) (sha256 \(sha), \(inventory.images.count) image(s), audit head \(inventory.auditHead.map { String($0.seq) } ?? "none"))")])
        finish()
        return InventoryExport(inventory: inventory, path: path, signaturePath: path + SignedDocument.signatureSuffix, sha256: sha)
    }

    /// The inventory as the device is now (nothing written).
    public func takeInventory(keyID: String) throws -> DeviceInventory {
        let catalog = try catalog()
        let s = try store()
        let host = try host()
        let runtime: String
        do { runtime = try host.ping() } catch { throw CaissonError("docker.unreachable", error.message) }
        let images: [ImageInfo]
        do { images = try host.listImages() } catch {
            throw CaissonError("inventory.host_failed", "could not list the images on this device: \(error.message)")
        }
        var services: [DeviceInventory.Service] = []
        for svc in catalog.services {
            let state = try s.serviceState(svc.name)
            var live: ContainerInfo?
            switch svc.runtimeMode {
            case .docker: live = try? host.inspectContainer(svc.docker!.containerName)
            case .compose: live = (try? host.composeContainers(svc.compose!))?.first
            }
            let imageID = live?.imageID ?? state?.activeImageID
            let image = imageID.flatMap { id in images.first { $0.id == id } }
            var version: String?
            if let active = state?.activeCandidateReleaseID, state?.activeImageID == imageID {
                version = try s.candidateRelease(active)?.packageVersion
            }
            let last = try s.updateAttempts(service: svc.name, limit: 1).records.first.map {
                DeviceInventory.LastOutcome(updateID: $0.updateID, kind: $0.kind, status: $0.status.rawValue,
                                            packageVersion: $0.packageVersion, finishedAt: $0.finishedAt)
            }
            let reference = live?.imageReference ?? (state?.activeImageID == imageID ? state?.activeImageReference : nil)
            services.append(DeviceInventory.Service(
                name: svc.name, runtimeMode: svc.runtimeMode.rawValue, imageID: imageID, imageReference: reference,
                diffIDs: image?.layers ?? [], chainIDs: LayerChain.chainIDs(image?.layers ?? []),
                version: version, lastOutcome: last))
        }
        let storage = host.imageStorage(forArchiveBytes: 0)
        return DeviceInventory(
            format: DeviceInventory.formatName, deviceID: try deviceID(), deviceKeyID: keyID,
            platform: Self.devicePlatform, caissonVersion: Self.version, exportedAt: systemClock.timestamp(),
            runtime: runtime, services: services,
            images: images.map { DeviceInventory.Image(id: $0.id, repoTags: $0.repoTags, chainIDs: LayerChain.chainIDs($0.layers)) },
            freeDisk: DeviceInventory.FreeDisk(stateDirBytes: Self.freeBytes(stateDir), imageStorePath: storage?.path,
                                               imageStoreBytes: storage?.freeBytes),
            auditHead: try s.auditHead(), ageRecipients: try deviceAgeRecipients())
    }

    public struct InventoryVerification: Sendable {
        public var inventory: DeviceInventory
        public var signature: MinisignSignature
        public var sha256: String
        /// The document's bytes as verified.
        public var bytes: [UInt8]
    }

    /// Checks an inventory against a device public key (and that it is an inventory).
    public func verifyInventory(_ path: String, deviceKey: String, signaturePath: String? = nil) throws -> InventoryVerification {
        let key = try SignedDocument.publicKey(deviceKey)
        let (bytes, signature) = try Self.verifyDocument(Self.absolute(path), signaturePath: signaturePath.map(Self.absolute), key: key)
        let inventory = try DeviceInventory.decode(bytes, path: path)
        guard inventory.deviceKeyID == key.keyID.description else {
            throw CaissonError("inventory.key_mismatch", "the inventory says it was signed by device key \(inventory.deviceKeyID), but \(key.keyID) verified it")
        }
        return InventoryVerification(inventory: inventory, signature: signature, sha256: SHA256.hash(bytes).hex, bytes: bytes)
    }

    /// `SignedDocument.verify` with device-key wording for a signature by another key.
    static func verifyDocument(_ path: String, signaturePath: String?, key: MinisignPublicKey) throws -> ([UInt8], MinisignSignature) {
        do {
            return try SignedDocument.verify(path: path, signaturePath: signaturePath, key: key)
        } catch let e as CaissonError where e.code == "signature.untrusted_key" {
            let other = (try? MinisignSignature(parsing: Array(FileManager.default.contents(atPath: signaturePath ?? path + SignedDocument.signatureSuffix) ?? Data())))?.keyID
            throw CaissonError("signature.untrusted_key", "\(path) was signed by key \(other.map { "\($0)" } ?? "?"), not by device key \(key.keyID)")
        } catch let e as CaissonError where e.code == "signature.invalid" {
            throw CaissonError("signature.invalid", "\(path) does not verify with device key \(key.keyID): the document or its signature was altered")
        }
    }

    /// This machine's platform as Docker names it.
    static var devicePlatform: String {
        var u = utsname()
        guard uname(&u) == 0 else { return "linux/unknown" }
        let machine = withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        switch machine {
        case "x86_64", "amd64": return "linux/amd64"
        case "aarch64", "arm64": return "linux/arm64"
        case "armv7l", "armv7": return "linux/arm/v7"
        case "armv6l": return "linux/arm/v6"
        case "i386", "i686": return "linux/386"
        case "riscv64", "ppc64le", "s390x": return "linux/" + machine
        default: return "linux/" + machine
        }
    }
}
