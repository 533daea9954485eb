import CaissonCore

/// Failure evidence (issue 12), one row per captured container, written in the same transaction
/// as the journal entry that carries it.
extension CaissonStore {
    func insertEvidence(_ e: FailureEvidence, updateID: String) throws {
        let json = try encode(e, "failure evidence")
        try db.run("""
            INSERT INTO failure_evidence (update_id, role, container_name, captured_at, record)
            VALUES (?, ?, ?, ?, ?)
            """, [.text(updateID), .text(e.role.rawValue), .text(e.containerName), .text(e.capturedAt), .text(json)])
    }

    /// The evidence captured during an attempt, in capture order (empty for attempts without any,
    /// including every attempt recorded before evidence existed).
    public func failureEvidence(updateID: String) throws -> RecordList<FailureEvidence> {
        try StoreErrors.wrap(databasePath, "reading failure evidence") {
            let rows = try db.query("SELECT row_id, record FROM failure_evidence WHERE update_id = ? ORDER BY row_id",
                                    [.text(updateID)]) { ($0.int(0), $0.blob(1)) }
            var list = RecordList<FailureEvidence>()
            for (row, record) in rows {
                switch decode(FailureEvidence.self, record) {
                case .success(let e): list.records.append(e)
                case .failure(let why):
                    list.unreadable.append(UnreadableRecord(kind: "failure evidence", key: "\(updateID)#\(row)", reason: why.text))
                }
            }
            return list
        }
    }
}
