import CaissonCore

/// The newest link of the audit chain: what a device inventory and an update receipt (issue 16)
/// carry, so the connected side can tell later whether the device's history went on from there
/// (`history verify` on the device checks the chain itself).
public struct AuditHead: Sendable, Codable, Equatable {
    /// Sequence number of the newest audit event.
    public var seq: Int64
    /// Its chain hash (lowercase hex of SHA-256(prev_hash || event)).
    public var hash: String

    public init(seq: Int64, hash: String) {
        self.seq = seq
        self.hash = hash
    }
}

extension CaissonStore {
    /// The head of the audit chain; nil while the log is empty.
    public func auditHead() throws -> AuditHead? {
        try StoreErrors.wrap(databasePath, "reading the audit head") {
            try db.query("SELECT seq, hash FROM audit_head WHERE id = 1") {
                AuditHead(seq: $0.int64(0), hash: SHA256Digest($0.blob(1)).hex)
            }.first
        }
    }
}
