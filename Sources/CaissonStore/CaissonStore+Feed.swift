import CaissonCore

/// Reading the audit log as a feed: what a watcher (the console's live progress) has not seen yet.
extension CaissonStore {
    /// Audit events with `seq` greater than `after`, oldest first, at most `limit`.
    public func auditEvents(after seq: Int64, limit: Int = 500) throws -> [StoredAuditEvent] {
        try StoreErrors.wrap(databasePath, "reading the audit log") {
            let rows = try db.query("""
                SELECT seq, kind, at, service_name, update_id, validation_attempt_id, message, hash
                FROM audit_events WHERE seq > ? ORDER BY seq ASC LIMIT ?
                """, [.integer(seq), .integer(Int64(max(1, limit)))]) {
                ($0.int64(0), $0.text(1), $0.text(2), $0.optionalText(3), $0.optionalText(4),
                 $0.optionalText(5), $0.text(6), $0.blob(7))
            }
            return rows.compactMap { seq, kind, at, service, update, validation, message, hash in
                guard let auditKind = AuditKind(rawValue: kind) else { return nil }
                return StoredAuditEvent(seq: seq, event: AuditEvent(kind: auditKind, at: at, serviceName: service, updateID: update,
                                                                    validationAttemptID: validation, message: message),
                                        hash: SHA256Digest(hash).hex)
            }
        }
    }

    /// The sequence number of the newest audit event (0 for an empty log).
    public func lastAuditSeq() throws -> Int64 {
        try StoreErrors.wrap(databasePath, "reading the audit log") {
            try db.query("SELECT COALESCE(MAX(seq), 0) FROM audit_events") { $0.int64(0) }.first ?? 0
        }
    }
}
