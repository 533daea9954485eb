import CaissonCore

extension CaissonStore: UpdateJournal {
    /// The shortest prefix `updateAttempt(_:)` resolves (like git's abbreviated hashes).
    public static let minimumIDPrefixLength = 8

    /// One atomic, durable write: upserts the attempt, appends the journal entry (next per-attempt
    /// sequence number), upserts the candidate release and service state if present and appends
    /// the audit events to the hash chain — all in one `BEGIN IMMEDIATE` transaction.
    public func write(_ write: JournalWrite) throws {
        do {
            try writeOnce(write)
        } catch let e as CaissonError where e.code == "store.disk_full" && releaseReserve() {
            // The room the reserve held is the journal's: once more.
            try writeOnce(write)
        }
    }

    private func writeOnce(_ write: JournalWrite) throws {
        try ensureAlive("writing the update journal")
        try StoreErrors.wrap(databasePath, "writing the update journal") {
            try db.transaction {
                try upsertAttempt(write.attempt)
                if let entry = write.entry {
                    let snapshot: [UInt8]
                    do {
                        snapshot = try entry.encodedSnapshot()
                    } catch {
                        throw CaissonError("store.encode_failed",
                                           "could not encode the update machine snapshot for storage: \(error)")
                    }
                    try db.run("""
                        INSERT INTO journal_entries (update_id, seq, phase, step, detail, snapshot, at)
                        VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM journal_entries WHERE update_id = ?1),
                                ?2, ?3, ?4, ?5, ?6)
                        """,
                        [.text(write.attempt.updateID), .text(entry.phase.rawValue), .text(entry.step),
                         .text(entry.detail), .blob(snapshot), .text(entry.at)])
                }
                if let release = write.candidateRelease { try upsertCandidateRelease(release) }
                if let state = write.serviceState { try upsertServiceState(state) }
                try appendAuditInTransaction(write.events)
                for e in write.evidence { try insertEvidence(e, updateID: write.attempt.updateID) }
            }
        }
    }

    /// Inserts or updates an attempt on its own (the journal's `write` does this too).
    public func recordUpdateAttempt(_ attempt: UpdateAttempt) throws {
        try ensureAlive("recording an update attempt")
        try StoreErrors.wrap(databasePath, "recording an update attempt") {
            try db.transaction { try upsertAttempt(attempt) }
        }
    }

    func upsertAttempt(_ attempt: UpdateAttempt) throws {
        let json = try encode(attempt, "update attempt")
        // An upsert, never INSERT OR REPLACE: a replace would delete the row, cascading to its
        // journal entries, and give it a new row_id (breaking newest-first order).
        try db.run("""
            INSERT INTO update_attempts (update_id, service_name, status, kind, started_at, finished_at, record)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (update_id) DO UPDATE SET
                service_name = excluded.service_name, status = excluded.status, kind = excluded.kind,
                started_at = excluded.started_at, finished_at = excluded.finished_at,
                record = excluded.record
            """,
            [.text(attempt.updateID), .text(attempt.serviceName), .text(attempt.status.rawValue),
             .text(attempt.kind), .text(attempt.startedAt), .optional(attempt.finishedAt), .text(json)])
        try linkRecord(kind: RecordChain.updateAttempt, key: attempt.updateID, json: json)
    }

    /// Non-terminal attempts, oldest first, each with the machine of its latest journal entry.
    ///
    /// Damage never hides an in-flight attempt (recovery must hear of it): a snapshot that cannot
    /// be decoded gives `machine == nil` with `unreadable` set; an attempt record that cannot be
    /// decoded is taken from its snapshot when that decodes (with the status column), else stands
    /// in as a placeholder (id, service, status, kind, start from the typed columns) with
    /// `unreadable` set. `inFlightAttemptList()` also lists what was damaged.
    public func inFlightAttempts() throws -> [InFlightAttempt] {
        try inFlightAttemptList().records
    }

    /// Like `inFlightAttempts()`, plus a note for each damaged attempt record or snapshot.
    public func inFlightAttemptList() throws -> RecordList<InFlightAttempt> {
        let terminal = UpdateStatus.allCases.filter(\.isTerminal).map { SQLiteValue.text($0.rawValue) }
        let placeholders = Array(repeating: "?", count: terminal.count).joined(separator: ", ")
        return try StoreErrors.wrap(databasePath, "reading in-flight update attempts") {
            let rows = try db.query("""
                SELECT a.update_id, a.service_name, a.status, a.kind, a.started_at, a.record,
                       j.snapshot, j.step, j.at
                FROM update_attempts a LEFT JOIN journal_entries j ON j.entry_id =
                    (SELECT k.entry_id FROM journal_entries k WHERE k.update_id = a.update_id
                     ORDER BY k.seq DESC LIMIT 1)
                WHERE a.status NOT IN (\(placeholders)) ORDER BY a.row_id
                """, terminal) {
                InFlightRow(updateID: $0.text(0), service: $0.text(1), status: $0.text(2), kind: $0.text(3),
                            startedAt: $0.text(4), record: $0.blob(5), snapshot: $0.optionalBlob(6),
                            step: $0.optionalText(7), stepAt: $0.optionalText(8))
            }
            var list = RecordList<InFlightAttempt>()
            for row in rows {
                var machine: UpdateMachine?
                var snapshotProblem: String?
                if let snapshot = row.snapshot {
                    switch decode(UpdateMachine.self, snapshot) {
                    case .success(let m): machine = m
                    case .failure(let reason):
                        snapshotProblem = reason.text
                        list.unreadable.append(UnreadableRecord(kind: "journal snapshot of update attempt",
                                                                key: row.updateID, reason: reason.text))
                    }
                }
                switch decode(UpdateAttempt.self, row.record) {
                case .success(let attempt):
                    if !attempt.status.isTerminal {
                        list.records.append(InFlightAttempt(attempt: attempt, machine: machine,
                                                            unreadable: snapshotProblem, lastStep: row.step,
                                                            lastStepAt: row.stepAt))
                    }
                case .failure(let reason):
                    list.unreadable.append(UnreadableRecord(kind: "update attempt", key: row.updateID,
                                                            reason: reason.text))
                    if var attempt = machine?.attempt {
                        attempt.status = UpdateStatus(rawValue: row.status) ?? attempt.status
                        if !attempt.status.isTerminal {
                            list.records.append(InFlightAttempt(attempt: attempt, machine: machine,
                                                                lastStep: row.step, lastStepAt: row.stepAt))
                        }
                    } else {
                        let placeholder = UpdateAttempt(
                            updateID: row.updateID, candidateReleaseID: "", validationAttemptID: nil,
                            serviceName: row.service, runtimeMode: .docker, targetImageReference: "",
                            status: UpdateStatus(rawValue: row.status) ?? .applying, startedAt: row.startedAt,
                            kind: row.kind)
                        let why = snapshotProblem.map { "; its journal snapshot too: \($0)" } ?? ""
                        list.records.append(InFlightAttempt(
                            attempt: placeholder, machine: nil,
                            unreadable: "the attempt record is unreadable (\(reason.text))\(why)",
                            lastStep: row.step, lastStepAt: row.stepAt))
                    }
                }
            }
            return list
        }
    }

    private struct InFlightRow {
        var updateID, service, status, kind, startedAt: String
        var record: [UInt8]
        var snapshot: [UInt8]?
        var step: String?
        var stepAt: String?
    }

    /// The attempt with this id, or with this unique id prefix of at least 8 characters
    /// (case-insensitive). Nil when none matches; `store.ambiguous_id` when several do.
    public func updateAttempt(_ idOrPrefix: String) throws -> UpdateAttempt? {
        try StoreErrors.wrap(databasePath, "reading an update attempt") {
            let kind = "update attempt"
            if let exact = try readOne(UpdateAttempt.self, kind: kind,
                                       "SELECT update_id, record FROM update_attempts WHERE update_id = ?",
                                       [.text(idOrPrefix)]) {
                return exact
            }
            guard idOrPrefix.count >= Self.minimumIDPrefixLength else { return nil }
            let matches = try db.query("""
                SELECT update_id FROM update_attempts
                WHERE lower(substr(update_id, 1, length(?1))) = lower(?1) ORDER BY row_id LIMIT 11
                """, [.text(idOrPrefix)]) { $0.text(0) }
            if matches.count > 1 {
                let shown = matches.prefix(10).joined(separator: ", ") + (matches.count > 10 ? ", …" : "")
                throw CaissonError("store.ambiguous_id",
                                   "the update id prefix \(idOrPrefix) matches several attempts (\(shown)); "
                                       + "give more characters")
            }
            guard let id = matches.first else { return nil }
            return try readOne(UpdateAttempt.self, kind: kind,
                               "SELECT update_id, record FROM update_attempts WHERE update_id = ?", [.text(id)])
        }
    }

    public func updateIDs(service serviceName: String) throws -> [String] {
        try StoreErrors.wrap(databasePath, "reading update attempts") {
            try db.query("SELECT update_id FROM update_attempts WHERE service_name = ? ORDER BY row_id",
                         [.text(serviceName)]) { $0.text(0) }
        }
    }

    /// Attempts newest first (by insertion order, not timestamp strings), optionally for one service.
    public func updateAttempts(service: String? = nil, limit: Int? = nil) throws -> RecordList<UpdateAttempt> {
        try StoreErrors.wrap(databasePath, "reading update attempts") {
            try newestFirst(UpdateAttempt.self, kind: "update attempt", table: "update_attempts",
                            idColumn: "update_id", service: service, limit: limit)
        }
    }

    /// The journal entries of an attempt, in order. Snapshots stay encoded (`StoredJournalEntry.machine()`).
    public func journalEntries(updateID: String) throws -> RecordList<StoredJournalEntry> {
        try StoreErrors.wrap(databasePath, "reading the update journal") {
            let rows = try db.query("""
                SELECT seq, phase, step, detail, snapshot, at FROM journal_entries
                WHERE update_id = ? ORDER BY seq
                """, [.text(updateID)]) {
                ($0.int(0), $0.text(1), $0.text(2), $0.text(3), $0.blob(4), $0.text(5))
            }
            var list = RecordList<StoredJournalEntry>()
            for (seq, phase, step, detail, snapshot, at) in rows {
                guard let phase = JournalPhase(rawValue: phase) else {
                    list.unreadable.append(UnreadableRecord(kind: "journal entry", key: "\(updateID)#\(seq)",
                                                            reason: "unknown phase \"\(phase)\""))
                    continue
                }
                list.records.append(StoredJournalEntry(updateID: updateID, seq: seq, phase: phase, step: step,
                                                       detail: detail, snapshot: snapshot, at: at))
            }
            return list
        }
    }
}
