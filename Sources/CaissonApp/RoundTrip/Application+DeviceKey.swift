import CaissonCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The device's own signing key (issue 16): a minisign key pair made once by `caisson key
/// generate --device` and kept in the state directory (`device.key`, 0600 from its first byte,
/// unencrypted so the device can sign unattended; `device.pub` beside it). The device signs its
/// inventories and update receipts with it; the connected side verifies them with `device.pub`
/// (or `minisign -Vm FILE -p device.pub`).
extension Application {
    public var deviceKeyPath: String { stateDir + "/device.key" }
    public var devicePublicKeyPath: String { stateDir + "/device.pub" }
    /// The device id, made with the first key and kept when the key is replaced.
    var deviceIDPath: String { stateDir + "/device-id" }

    public struct DeviceKeyInfo: Sendable, Codable {
        public var deviceID: String
        public var keyID: String
        public var secretKeyFile: String
        public var publicKeyFile: String
        /// The base64 line of `device.pub`.
        public var publicKey: String

        enum CodingKeys: String, CodingKey {
            case deviceID = "device_id", keyID = "key_id", secretKeyFile = "secret_key_file"
            case publicKeyFile = "public_key_file", publicKey = "public_key"
        }
    }

    /// Creates the device key pair (refused with `key.exists` if there is one, unless `force`).
    public func generateDeviceKey(force: Bool) throws -> DeviceKeyInfo {
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        if !force, FileManager.default.fileExists(atPath: deviceKeyPath) {
            throw CaissonError("key.exists", "this device already has a key (\(deviceKeyPath)); use --force to replace it (what it signed before then verifies only with the old device.pub)")
        }
        let pair = try KeyPair.generate()
        try SecretFile.write(deviceKeyPath, Array(pair.secretKey.fileContents().utf8), mode: 0o600, replace: force)
        try Self.writeFileAtomically(devicePublicKeyPath, Array(pair.publicKey.fileContents.utf8), mode: 0o644)
        let id = try deviceID(create: true)
        try store().appendAudit([AuditEvent(kind: .deviceKeyCreated, at: systemClock.timestamp(),
                                            message: "device key \(pair.publicKey.keyID) created for device \(id)\(force ? " (replacing the previous key)" : "")")])
        return DeviceKeyInfo(deviceID: id, keyID: pair.publicKey.keyID.description, secretKeyFile: deviceKeyPath,
                             publicKeyFile: devicePublicKeyPath, publicKey: pair.publicKey.base64)
    }

    /// The device's secret key; `device.no_key` when `key generate --device` was never run here.
    func deviceSecretKey() throws -> MinisignSecretKey {
        guard let data = FileManager.default.contents(atPath: deviceKeyPath) else {
            throw CaissonError("device.no_key", "this device has no signing key yet (\(deviceKeyPath)): run 'caisson key generate --device' once")
        }
        do {
            return try MinisignSecretKey(parsing: String(decoding: data, as: UTF8.self))
        } catch let e as CaissonError {
            throw CaissonError("device.key_unreadable", "the device key \(deviceKeyPath) is not usable: \(e.message)")
        }
    }

    /// The device id (a UUID made with the first device key), or `device.no_key`.
    public func deviceID(create: Bool = false) throws -> String {
        if let data = FileManager.default.contents(atPath: deviceIDPath) {
            let id = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if !id.isEmpty { return id }
        }
        guard create else {
            throw CaissonError("device.no_key", "this device has no identity yet: run 'caisson key generate --device' once")
        }
        let id = ids.next()
        try Self.writeFileAtomically(deviceIDPath, Array((id + "\n").utf8), mode: 0o644)
        return id
    }

    /// Writes `bytes` to `path` aside (`.tmp-PID`), fsynced, then renamed into place.
    static func writeFileAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t) throws {
        let temp = "\(path).tmp-\(getpid())"
        unlink(temp)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
        guard fd >= 0 else {
            throw CaissonError("io.write_failed", "cannot create \(temp): \(ByteSourceError.describe(errno: errno))")
        }
        var ok = true
        var off = 0
        while ok, off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, bytes.count - off) }
            if n < 0, errno == EINTR { continue }
            ok = n > 0
            off += max(0, n)
        }
        let e = errno
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(temp, path) == 0 else {
            unlink(temp)
            throw CaissonError("io.write_failed", "could not write \(path): \(ByteSourceError.describe(errno: ok ? errno : e))")
        }
    }
}

/// A JSON document signed by the device: `FILE` and, beside it, `FILE.minisig` (a minisign
/// signature, prehashed, whose trusted comment names the document). `minisign -Vm FILE -p
/// device.pub` verifies it too.
public enum SignedDocument {
    public static let signatureSuffix = ".minisig"

    /// Signs `bytes` and writes both files (each aside, then renamed). The document is written
    /// after its signature, so a reader that finds the document finds its signature.
    static func write(_ bytes: [UInt8], to path: String, key: MinisignSecretKey, trustedComment: String) throws {
        let signature = try Minisign.sign(bytes, secretKey: key, trustedComment: trustedComment,
                                          untrustedComment: "signature from caisson device key \(key.keyID)")
        try Application.writeFileAtomically(path + signatureSuffix, Array(signature.fileContents.utf8), mode: 0o644)
        try Application.writeFileAtomically(path, bytes, mode: 0o644)
    }

    /// A device public key given as a file (`device.pub`) or as its base64 line.
    public static func publicKey(_ argument: String) throws -> MinisignPublicKey {
        var text = argument
        if FileManager.default.fileExists(atPath: argument) {
            guard let data = FileManager.default.contents(atPath: argument) else {
                throw CaissonError("key.read_failed", "cannot read the public key \(argument)")
            }
            text = String(decoding: data, as: UTF8.self)
        }
        return try MinisignPublicKey(parsing: text)
    }

    /// Reads `path` and its signature (`signaturePath`, default `path.minisig`) and checks it
    /// with `key`: the bytes and the (now authentic) signature, or `signature.*` errors.
    public static func verify(path: String, signaturePath: String? = nil,
                              key: MinisignPublicKey) throws -> (bytes: [UInt8], signature: MinisignSignature) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw CaissonError("document.read_failed", "cannot read \(path)")
        }
        let sigPath = signaturePath ?? path + signatureSuffix
        guard let sig = FileManager.default.contents(atPath: sigPath) else {
            throw CaissonError("signature.missing", "\(path) has no signature beside it (\(sigPath))")
        }
        let bytes = Array(data)
        let verified = try Minisign.verify(bytes, signatureFile: Array(sig), trustedKeys: [key])
        return (bytes, verified)
    }
}
