import CaissonCore

/// The audit log is a hash chain. Event `seq` (1, 2, …) stores
/// `hash = SHA-256(prev_hash || canonical(event))`, where `prev_hash` is the previous event's
/// hash (32 zero bytes for event 1) and `canonical` is, byte for byte:
///
///     "caisson-audit-v1"                       16 ASCII bytes
///     seq                                      8 bytes, big-endian
///     kind, at, service_name, update_id,       each: 0x00 if null, else 0x01,
///     validation_attempt_id, message           4-byte big-endian length, UTF-8 bytes
///
/// A one-row table `audit_head` holds the last event's seq and hash, so deleting the newest
/// events is detected too. Anyone can re-verify the chain with a few lines of Python.
enum AuditChain {
    static let genesis = [UInt8](repeating: 0, count: 32)
    static let magic = Array("caisson-audit-v1".utf8)

    static func canonicalBytes(seq: Int64, fields: [[UInt8]?]) -> [UInt8] {
        var out = magic
        out.reserveCapacity(magic.count + 8 + fields.reduce(0) { $0 + 5 + ($1?.count ?? 0) })
        appendBigEndian(UInt64(bitPattern: seq), byteCount: 8, to: &out)
        for field in fields {
            guard let field else {
                out.append(0)
                continue
            }
            out.append(1)
            appendBigEndian(UInt64(field.count), byteCount: 4, to: &out)
            out.append(contentsOf: field)
        }
        return out
    }

    static func fields(_ event: AuditEvent) -> [[UInt8]?] {
        [Array(event.kind.rawValue.utf8), Array(event.at.utf8), event.serviceName.map { Array($0.utf8) },
         event.updateID.map { Array($0.utf8) }, event.validationAttemptID.map { Array($0.utf8) },
         Array(event.message.utf8)]
    }

    static func hash(previous: [UInt8], seq: Int64, fields: [[UInt8]?]) -> [UInt8] {
        var sha = SHA256()
        sha.update(previous)
        sha.update(canonicalBytes(seq: seq, fields: fields))
        return sha.finalize()
    }

    private static func appendBigEndian(_ value: UInt64, byteCount: Int, to out: inout [UInt8]) {
        for shift in stride(from: (byteCount - 1) * 8, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        }
    }
}

extension CaissonStore {
    /// Appends events to the audit log in their own transaction (durable when this returns).
    public func appendAudit(_ events: [AuditEvent]) throws {
        guard !events.isEmpty else { return }
        try ensureAlive("appending to the audit log")
        try StoreErrors.wrap(databasePath, "appending to the audit log") {
            try db.transaction { try appendAuditInTransaction(events) }
        }
    }

    /// Must run inside a write transaction.
    func appendAuditInTransaction(_ events: [AuditEvent]) throws {
        guard !events.isEmpty else { return }
        // Continue from whichever is further along: the head or the last stored event. A damaged
        // log must never block new events; `verifyAuditChain()` reports the damage.
        var seq: Int64 = 0
        var previous = AuditChain.genesis
        let head = try db.query("SELECT seq, hash FROM audit_head WHERE id = 1") { ($0.int64(0), $0.blob(1)) }
        let last = try db.query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1") {
            ($0.int64(0), $0.blob(1))
        }
        for candidate in head + last where candidate.0 >= seq {
            seq = candidate.0
            previous = candidate.1
        }
        let insert = try db.prepare("""
            INSERT INTO audit_events (seq, kind, at, service_name, update_id, validation_attempt_id,
                                      message, prev_hash, hash)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for event in events {
            seq += 1
            let hash = AuditChain.hash(previous: previous, seq: seq, fields: AuditChain.fields(event))
            insert.reset()
            try insert.bind([.integer(seq), .text(event.kind.rawValue), .text(event.at),
                             .optional(event.serviceName), .optional(event.updateID),
                             .optional(event.validationAttemptID), .text(event.message),
                             .blob(previous), .blob(hash)])
            while try insert.step() {}
            previous = hash
        }
        try db.run("""
            INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?)
            ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash
            """, [.integer(seq), .blob(previous)])
    }

    /// Audit events in log order, filtered by any of update id, validation id and service (all
    /// given filters must match). With `limit`, the newest `limit` matching events.
    public func auditEvents(updateID: String? = nil, validationID: String? = nil, service: String? = nil,
                            limit: Int? = nil) throws -> RecordList<StoredAuditEvent> {
        var conditions: [String] = []
        var values: [SQLiteValue] = []
        if let updateID {
            conditions.append("update_id = ?")
            values.append(.text(updateID))
        }
        if let validationID {
            conditions.append("validation_attempt_id = ?")
            values.append(.text(validationID))
        }
        if let service {
            conditions.append("service_name = ?")
            values.append(.text(service))
        }
        let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        values.append(Self.limitValue(limit))
        return try StoreErrors.wrap(databasePath, "reading the audit log") {
            let rows = try db.query("""
                SELECT seq, kind, at, service_name, update_id, validation_attempt_id, message, hash
                FROM audit_events \(whereClause) ORDER BY seq DESC LIMIT ?
                """, values) {
                ($0.int64(0), $0.text(1), $0.text(2), $0.optionalText(3), $0.optionalText(4),
                 $0.optionalText(5), $0.text(6), $0.blob(7))
            }
            var list = RecordList<StoredAuditEvent>()
            for (seq, kind, at, service, update, validation, message, hash) in rows.reversed() {
                guard let auditKind = AuditKind(rawValue: kind) else {
                    list.unreadable.append(UnreadableRecord(kind: "audit event", key: "\(seq)",
                                                            reason: "unknown kind \"\(kind)\""))
                    continue
                }
                let event = AuditEvent(kind: auditKind, at: at, serviceName: service, updateID: update,
                                       validationAttemptID: validation, message: message)
                list.records.append(StoredAuditEvent(seq: seq, event: event, hash: SHA256Digest(hash).hex))
            }
            return list
        }
    }

    /// Re-computes the whole chain, streaming: the first broken link (if any) and how many events
    /// were checked good before it.
    public func verifyAuditChain() throws -> AuditChainReport {
        try StoreErrors.wrap(databasePath, "verifying the audit log") {
            // One read transaction, so a concurrent append cannot look like a broken head.
            try db.execute("BEGIN")
            defer { try? db.execute("COMMIT") }
            return try verifyChainInTransaction()
        }
    }

    private func verifyChainInTransaction() throws -> AuditChainReport {
        do {
            let stmt = try db.prepare("""
                SELECT seq, kind, at, service_name, update_id, validation_attempt_id, message, prev_hash, hash
                FROM audit_events ORDER BY seq
                """)
            var expected: Int64 = 1
            var previous = AuditChain.genesis
            var checked = 0
            while try stmt.step() {
                let seq = stmt.int64(0)
                if seq != expected {
                    return AuditChainReport(checked: checked, firstBreak: AuditChainBreak(
                        seq: seq, reason: .gap(missingFrom: expected, missingTo: seq - 1)))
                }
                if stmt.blob(7) != previous {
                    return AuditChainReport(checked: checked, firstBreak: AuditChainBreak(
                        seq: seq, reason: seq == 1 ? .badStart : .reordered))
                }
                // Raw bytes as stored, so nothing is "repaired" on the way to the hash.
                let fields: [[UInt8]?] = [stmt.blob(1), stmt.blob(2), stmt.optionalBlob(3), stmt.optionalBlob(4),
                                          stmt.optionalBlob(5), stmt.blob(6)]
                let stored = stmt.blob(8)
                if AuditChain.hash(previous: previous, seq: seq, fields: fields) != stored {
                    return AuditChainReport(checked: checked, firstBreak: AuditChainBreak(
                        seq: seq, reason: .editedContent))
                }
                checked += 1
                previous = stored
                expected = seq + 1
            }
            let last = expected - 1
            let head = try db.query("SELECT seq, hash FROM audit_head WHERE id = 1") { ($0.int64(0), $0.blob(1)) }
            if let (headSeq, headHash) = head.first {
                if headSeq > last {
                    return AuditChainReport(checked: checked, firstBreak: AuditChainBreak(
                        seq: last, reason: .truncated(headSeq: headSeq)))
                }
                if headSeq != last || headHash != previous {
                    return AuditChainReport(checked: checked, firstBreak: AuditChainBreak(
                        seq: last, reason: .headMismatch))
                }
            } else if last > 0 {
                return AuditChainReport(checked: checked, firstBreak: AuditChainBreak(
                    seq: last, reason: .headMismatch))
            }
            return AuditChainReport(checked: checked, firstBreak: nil)
        }
    }
}
