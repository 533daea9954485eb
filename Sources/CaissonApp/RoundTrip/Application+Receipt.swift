import CaissonCore
import CaissonStore
import Foundation

/// What happened to one package on the device, signed by the device (issue 16): it goes back on
/// the stick, and the connected side verifies it with the device's public key.
public struct UpdateReceipt: Sendable, Codable, Equatable {
    public static let formatName = "caisson-receipt/1"

    public var format: String
    /// The update id, or the validation attempt id for a package that never got that far.
    public var receiptID: String
    public var deviceID: String
    public var deviceKeyID: String
    public var caissonVersion: String
    public var writtenAt: String
    public var service: String?
    public var package: Package
    public var validation: Validation
    /// `succeeded`, `rolled_back`, `failed`, `rollback_failed` (an update ran); `rejected`
    /// (validation or a check before any change refused it), `declined`, `import_failed`,
    /// `refused` (a preflight: no room), `planned` (a dry run).
    public var outcome: String
    /// The exit code `package load` ended with (nil when exported later and not known).
    public var exitCode: Int32?
    public var attempt: UpdateAttempt?
    public var versionBefore: String?
    public var versionAfter: String?
    public var imageBefore: ImageRef?
    public var imageAfter: ImageRef?
    /// The new release's health check, and the restored release's after a rollback.
    public var health: HealthCheckRecord?
    public var rollbackHealth: HealthCheckRecord?
    /// Every issue: validation's, a refusal, the import's, the update's.
    public var issues: [Issue]
    /// The newest link of the device's audit chain when the receipt was written.
    public var auditHead: AuditHead?

    public struct Package: Sendable, Codable, Equatable {
        public var path: String?
        public var version: String?
        public var imageReference: String?
        public var imageID: String?
        /// SHA-256 of the package's image.tar as validated.
        public var imageTarSHA256: String?
        public var thin: Bool

        enum CodingKeys: String, CodingKey {
            case path, version, thin
            case imageReference = "image_reference", imageID = "image_id", imageTarSHA256 = "image_tar_sha256"
        }
    }

    public struct Validation: Sendable, Codable, Equatable {
        public var validationAttemptID: String?
        public var status: String
        public var issues: [Issue]

        enum CodingKeys: String, CodingKey {
            case status, issues
            case validationAttemptID = "validation_attempt_id"
        }
    }

    public struct ImageRef: Sendable, Codable, Equatable {
        public var reference: String?
        public var id: String?
    }

    enum CodingKeys: String, CodingKey {
        case format, service, package, validation, outcome, attempt, health, issues
        case receiptID = "receipt_id", deviceID = "device_id", deviceKeyID = "device_key_id"
        case caissonVersion = "caisson_version", writtenAt = "written_at", exitCode = "exit_code"
        case versionBefore = "version_before", versionAfter = "version_after"
        case imageBefore = "image_before", imageAfter = "image_after"
        case rollbackHealth = "rollback_health", auditHead = "audit_head"
    }

    public static func decode(_ bytes: [UInt8], path: String) throws -> UpdateReceipt {
        let receipt: UpdateReceipt
        do { receipt = try JSONCoding.decode(UpdateReceipt.self, from: bytes) } catch {
            throw CaissonError("receipt.invalid", "\(path) is not a Caisson update receipt: \(error)")
        }
        guard receipt.format == formatName else {
            throw CaissonError("receipt.invalid", "\(path) is a \(receipt.format) document, not \(formatName)")
        }
        return receipt
    }
}

extension Application {
    public struct ReceiptFile: Sendable {
        public var receipt: UpdateReceipt
        public var path: String
        public var signaturePath: String
    }

    /// The receipt of a load that just ended (`package load --receipt DIR`).
    public func receipt(for o: LoadOutcome, dryRun: Bool = false) throws -> UpdateReceipt {
        let s = try store()
        let v = o.validation.record
        var issues = o.validation.report.issues
        for i in [o.refusal, o.preflightIssue, o.importIssue].compactMap({ $0 }) { issues.append(i) }
        let outcome: String
        if o.validation.report.status == .rejected || o.refusal != nil { outcome = "rejected" }
        else if o.preflightIssue != nil { outcome = "refused" }
        else if o.declined { outcome = "declined" }
        else if o.importIssue != nil { outcome = "import_failed" }
        else if let a = o.attempt { outcome = a.status.rawValue }
        else { outcome = dryRun ? "planned" : "unknown" }
        var r = try makeReceipt(id: o.attempt?.updateID ?? v.validationAttemptID, validation: v,
                                manifest: o.validation.report.manifest, attempt: o.attempt, outcome: outcome, issues: issues,
                                currentState: v.serviceName.flatMap { try? s.serviceState($0) } ?? nil)
        r.exitCode = o.exitCode
        return r
    }

    /// The receipt of an update (by id or unique prefix), or of a validation attempt that went no
    /// further, from the device's records (`receipt export`).
    public func receipt(id: String) throws -> UpdateReceipt {
        let s = try store()
        if let a = try s.updateAttempt(id) {
            let v = try a.validationAttemptID.flatMap { try s.validation($0) }
            var issues = v?.issues ?? []
            issues += a.issues
            return try makeReceipt(id: a.updateID, validation: v, manifest: nil, attempt: a, outcome: a.status.rawValue,
                                   issues: issues, currentState: nil)
        }
        if let v = try s.validation(id) {
            // A package that went no further: what the audit log says refused it after validation.
            let events = try s.auditEvents(validationID: v.validationAttemptID).records.map(\.event)
            var issues = v.issues
            var refused = false
            for e in events where e.kind == .validationRejected && v.status == .accepted {
                refused = true
                issues.append(Self.issue(fromAuditMessage: e.message))
            }
            let imported = try s.imageImports(service: v.serviceName).records.first { $0.validationAttemptID == v.validationAttemptID }
            let outcome = v.status == .rejected || refused ? "rejected" : imported?.status == "failed" ? "import_failed" : "not_applied"
            issues += imported?.issues ?? []
            return try makeReceipt(id: v.validationAttemptID, validation: v, manifest: nil, attempt: nil, outcome: outcome,
                                   issues: issues, currentState: nil)
        }
        throw CaissonError("history.unknown_id", "no update attempt or validation has id \(id)")
    }

    /// `[code] message` of an audit message back into an issue.
    static func issue(fromAuditMessage m: String) -> Issue {
        if m.hasPrefix("["), let close = m.firstIndex(of: "]") {
            let code = String(m[m.index(after: m.startIndex)..<close])
            return Issue(code, String(m[m.index(after: close)...]).trimmingCharacters(in: .whitespaces))
        }
        return Issue("package.refused", m)
    }

    func makeReceipt(id: String, validation v: ValidationRecord?, manifest: Manifest?, attempt a: UpdateAttempt?,
                     outcome: String, issues: [Issue], currentState: ServiceState?) throws -> UpdateReceipt {
        let key = try deviceSecretKey()
        let s = try store()
        var before: String?
        var after: String?
        var imageBefore: UpdateReceipt.ImageRef?
        var imageAfter: UpdateReceipt.ImageRef?
        if let a {
            before = try a.previousCandidateReleaseID.flatMap { try s.candidateRelease($0) }?.packageVersion
            imageBefore = UpdateReceipt.ImageRef(reference: a.previousImageReference, id: a.previousImageID)
            let target = UpdateReceipt.ImageRef(reference: a.targetImageReference, id: a.targetImageID)
            switch a.status {
            case .succeeded: after = a.packageVersion; imageAfter = target
            case .rolledBack: after = before; imageAfter = imageBefore
            case .failed:
                // Without automatic rollback the new release may stay installed: the records say.
                let active = try s.serviceState(a.serviceName)?.activeImageID
                if active == a.targetImageID, a.targetImageID != nil { after = a.packageVersion; imageAfter = target } else {
                    after = before
                    imageAfter = imageBefore
                }
            case .rollbackFailed, .applying, .healthChecking, .rollbackStarted: break
            }
        } else if let st = currentState {
            // Nothing was changed: the service runs what it ran.
            let active = try st.activeCandidateReleaseID.flatMap { try s.candidateRelease($0) }?.packageVersion
            before = active
            after = active
            imageBefore = UpdateReceipt.ImageRef(reference: st.activeImageReference, id: st.activeImageID)
            imageAfter = imageBefore
        }
        let m = manifest
        return UpdateReceipt(
            format: UpdateReceipt.formatName, receiptID: id, deviceID: try deviceID(), deviceKeyID: key.keyID.description,
            caissonVersion: Self.version, writtenAt: systemClock.timestamp(), service: a?.serviceName ?? v?.serviceName,
            package: UpdateReceipt.Package(path: v?.packagePath, version: m?.packageVersion ?? v?.packageVersion ?? a?.packageVersion,
                                           imageReference: m?.image.reference ?? v?.imageReference ?? a?.targetImageReference,
                                           imageID: v?.imageID ?? a?.targetImageID, imageTarSHA256: v?.imageTarSHA256,
                                           thin: m?.thin != nil),
            validation: UpdateReceipt.Validation(validationAttemptID: v?.validationAttemptID ?? a?.validationAttemptID,
                                                 status: v?.status.rawValue ?? "unknown", issues: v?.issues ?? []),
            outcome: outcome, exitCode: a.map { $0.status == .succeeded ? 0 : $0.status == .rollbackFailed ? 5 : 4 }, attempt: a,
            versionBefore: before, versionAfter: after, imageBefore: imageBefore, imageAfter: imageAfter,
            health: a?.healthCheck, rollbackHealth: a?.rollbackHealthCheck, issues: issues, auditHead: try s.auditHead())
    }

    /// Signs `receipt` with the device key and writes `DIR/receipt-ID.json` (and `.minisig`).
    public func writeReceipt(_ receipt: UpdateReceipt, directory: String) throws -> ReceiptFile {
        let key = try deviceSecretKey()
        let dir = Self.absolute(directory)
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } else if !isDir.boolValue {
            throw CaissonError("receipt.write_failed", "\(directory) is not a directory")
        }
        let path = dir + "/receipt-\(receipt.receiptID).json"
        let bytes = try JSONCoding.encode(receipt, pretty: true) + [0x0A]
        let sha = SHA256.hash(bytes).hex
        try SignedDocument.write(bytes, to: path, key: key,
                                 trustedComment: "caisson receipt \(receipt.receiptID) device \(receipt.deviceID) \(receipt.service ?? "-") \(receipt.outcome) sha256 \(sha)")
        try store().appendAudit([AuditEvent(kind: .receiptWritten, at: systemClock.timestamp(), serviceName: receipt.service,
                                            updateID: receipt.attempt?.updateID, validationAttemptID: receipt.validation.validationAttemptID,
                                            message: "receipt \(receipt.outcome) written to \(path) (sha256 \(sha))")])
        return ReceiptFile(receipt: receipt, path: path, signaturePath: path + SignedDocument.signatureSuffix)
    }

    public struct ReceiptVerification: Sendable {
        public var receipt: UpdateReceipt
        public var signature: MinisignSignature
        public var sha256: String
    }

    /// Checks a receipt against a device public key (and that it is a receipt of that key).
    public func verifyReceipt(_ path: String, deviceKey: String) throws -> ReceiptVerification {
        let key = try SignedDocument.publicKey(deviceKey)
        let (bytes, signature) = try Self.verifyDocument(Self.absolute(path), signaturePath: nil, key: key)
        let receipt = try UpdateReceipt.decode(bytes, path: path)
        guard receipt.deviceKeyID == key.keyID.description else {
            throw CaissonError("receipt.key_mismatch", "the receipt says it was signed by device key \(receipt.deviceKeyID), but \(key.keyID) verified it")
        }
        return ReceiptVerification(receipt: receipt, signature: signature, sha256: SHA256.hash(bytes).hex)
    }
}
