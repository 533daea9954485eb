import CaissonCore

/// The device's memory is tamper-evident beyond the audit log: every version of an update
/// attempt and of a service state (the previous known-good release and the downgrade floor) is
/// a link of a second hash chain, `record_chain`.
///
/// Link `seq` (1, 2, …) stores `hash = SHA-256(prev_hash || canonical)`, where `prev_hash` is the
/// previous link's hash (32 zero bytes for link 1) and `canonical` is, byte for byte:
///
///     "caisson-records-v1"                     18 ASCII bytes
///     seq                                      8 bytes, big-endian
///     kind, record_key, record_hash            each: 0x01, 4-byte big-endian length, bytes
///
/// `kind` is `update_attempt` (key: the update id) or `service_state` (key: the service name);
/// `record_hash` is the SHA-256 of the record's JSON exactly as stored. A link is appended in the
/// same transaction as every write that changes such a record, whatever writes it (the update
/// journal, `setServiceState`, `recordUpdateAttempt`: records imported from the Rust tool go
/// through these too), and `record_chain_head` holds the last link. `history verify` re-computes
/// the chain and checks that each record's current JSON is what its latest link says, so an
/// edited, deleted or inserted attempt or service state is detected, as is a dropped link.
enum RecordChain {
    static let magic = Array("caisson-records-v1".utf8)
    static let updateAttempt = "update_attempt"
    static let serviceState = "service_state"

    static func hash(previous: [UInt8], seq: Int64, kind: String, key: String, recordHash: [UInt8]) -> [UInt8] {
        var out = magic
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: UInt64(bitPattern: seq) >> UInt64(shift))) }
        for field in [Array(kind.utf8), Array(key.utf8), recordHash] {
            out.append(1)
            let n = UInt32(field.count)
            out += [UInt8(n >> 24), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
            out += field
        }
        var sha = SHA256()
        sha.update(previous)
        sha.update(out)
        return sha.finalize()
    }

    static func recordHash(_ json: String) -> [UInt8] {
        var sha = SHA256()
        sha.update(Array(json.utf8))
        return sha.finalize()
    }
}

/// What `verifyRecordChain()` found.
public struct RecordChainReport: Sendable, Equatable {
    /// Links checked good.
    public var links: Int
    /// Attempts and service states whose stored JSON matches their latest link.
    public var records: Int
    /// Each problem as a sentence (empty: intact).
    public var problems: [String]

    public var isIntact: Bool { problems.isEmpty }
}

extension CaissonStore {
    /// Appends a link for `json` of (`kind`, `key`) unless the latest link already says it. Must
    /// run inside a write transaction.
    func linkRecord(kind: String, key: String, json: String) throws {
        let digest = RecordChain.recordHash(json)
        let latest = try db.query("""
            SELECT record_hash FROM record_chain WHERE kind = ? AND record_key = ? ORDER BY seq DESC LIMIT 1
            """, [.text(kind), .text(key)]) { $0.blob(0) }
        if latest.first == digest { return }
        var seq: Int64 = 0
        var previous = [UInt8](repeating: 0, count: 32)
        let head = try db.query("SELECT seq, hash FROM record_chain_head WHERE id = 1") { ($0.int64(0), $0.blob(1)) }
        let last = try db.query("SELECT seq, hash FROM record_chain ORDER BY seq DESC LIMIT 1") { ($0.int64(0), $0.blob(1)) }
        // Continue from whichever is further along (a damaged chain never blocks a write;
        // `verifyRecordChain()` reports the damage).
        for candidate in head + last where candidate.0 >= seq {
            seq = candidate.0
            previous = candidate.1
        }
        seq += 1
        let hash = RecordChain.hash(previous: previous, seq: seq, kind: kind, key: key, recordHash: digest)
        try db.run("""
            INSERT INTO record_chain (seq, kind, record_key, record_hash, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)
            """, [.integer(seq), .text(kind), .text(key), .blob(digest), .blob(previous), .blob(hash)])
        try db.run("""
            INSERT INTO record_chain_head (id, seq, hash) VALUES (1, ?, ?)
            ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash
            """, [.integer(seq), .blob(hash)])
    }

    /// Links every attempt and service state not linked yet (the migration that introduced the
    /// chain adopts the records already there). Must run inside a write transaction.
    func adoptRecordsIntoChain() throws {
        let attempts = try db.query("SELECT update_id, record FROM update_attempts ORDER BY row_id") { ($0.text(0), $0.text(1)) }
        for (key, json) in attempts { try linkRecord(kind: RecordChain.updateAttempt, key: key, json: json) }
        let states = try db.query("SELECT service_name, record FROM service_states ORDER BY service_name") { ($0.text(0), $0.text(1)) }
        for (key, json) in states { try linkRecord(kind: RecordChain.serviceState, key: key, json: json) }
    }

    /// Re-computes the record chain and compares every attempt and service state with its latest
    /// link.
    public func verifyRecordChain() throws -> RecordChainReport {
        try StoreErrors.wrap(databasePath, "verifying the record chain") {
            try db.execute("BEGIN")
            defer { try? db.execute("COMMIT") }
            var report = RecordChainReport(links: 0, records: 0, problems: [])
            var latest: [String: [UInt8]] = [:]
            let stmt = try db.prepare("SELECT seq, kind, record_key, record_hash, prev_hash, hash FROM record_chain ORDER BY seq")
            var expected: Int64 = 1
            var previous = [UInt8](repeating: 0, count: 32)
            var broken = false
            while try stmt.step() {
                let seq = stmt.int64(0)
                let kind = stmt.text(1), key = stmt.text(2), digest = stmt.blob(3)
                latest[kind + "\u{0}" + key] = digest
                if broken { continue }
                if seq != expected {
                    report.problems.append("record chain: links \(expected)…\(seq - 1) are missing")
                    broken = true
                } else if stmt.blob(4) != previous {
                    report.problems.append("record chain: link \(seq) does not follow link \(seq - 1) (reordered or replaced)")
                    broken = true
                } else if RecordChain.hash(previous: previous, seq: seq, kind: kind, key: key, recordHash: digest) != stmt.blob(5) {
                    report.problems.append("record chain: link \(seq) (\(kind) \(key)) was edited")
                    broken = true
                } else {
                    report.links += 1
                    previous = stmt.blob(5)
                    expected = seq + 1
                }
            }
            if !broken {
                let head = try db.query("SELECT seq, hash FROM record_chain_head WHERE id = 1") { ($0.int64(0), $0.blob(1)) }
                let last = expected - 1
                if let (headSeq, headHash) = head.first {
                    if headSeq != last || headHash != previous {
                        report.problems.append("record chain: the head says link \(headSeq) but the chain ends at \(last) (links were removed or added)")
                    }
                } else if last > 0 {
                    report.problems.append("record chain: the head is missing")
                }
            }
            for (kind, table, column) in [(RecordChain.updateAttempt, "update_attempts", "update_id"),
                                          (RecordChain.serviceState, "service_states", "service_name")] {
                let rows = try db.query("SELECT \(column), record FROM \(table) ORDER BY \(column)") { ($0.text(0), $0.text(1)) }
                var present: Set<String> = []
                for (key, json) in rows {
                    present.insert(key)
                    guard let digest = latest[kind + "\u{0}" + key] else {
                        report.problems.append("\(kind.replacingOccurrences(of: "_", with: " ")) \(key) is in no link of the record chain (inserted by hand?)")
                        continue
                    }
                    if digest != RecordChain.recordHash(json) {
                        report.problems.append("\(kind.replacingOccurrences(of: "_", with: " ")) \(key) was changed outside Caisson (its record does not match the record chain)")
                    } else {
                        report.records += 1
                    }
                }
                for k in latest.keys.sorted() where k.hasPrefix(kind + "\u{0}") {
                    let key = String(k.dropFirst(kind.count + 1))
                    if !present.contains(key) {
                        report.problems.append("\(kind.replacingOccurrences(of: "_", with: " ")) \(key) was deleted outside Caisson")
                    }
                }
            }
            return report
        }
    }
}
