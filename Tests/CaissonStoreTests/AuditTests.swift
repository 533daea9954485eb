import CaissonCore
@testable import CaissonStore
import Foundation
import Testing

@Suite struct AuditTests {
    /// Five events: seq 1…5, alternating updates u-1 / u-2.
    static func seeded(_ store: CaissonStore) throws {
        try store.appendAudit([
            Fixtures.event(.validationStarted, validation: "v-1", message: "validating"),
            Fixtures.event(.validationAccepted, validation: "v-1", message: "accepted"),
        ])
        try store.appendAudit([
            Fixtures.event(.updateStarted, update: "u-1", validation: "v-1", message: "start"),
            Fixtures.event(.updateStarted, update: "u-2", service: "backend", message: "start b"),
            Fixtures.event(.updateCommitted, update: "u-1", message: "committed"),
        ])
    }

    @Test func appendAssignsSequenceAndChainsHashes() throws {
        try withStore { store, _ in
            try Self.seeded(store)
            let all = try store.auditEvents().records
            #expect(all.map(\.seq) == [1, 2, 3, 4, 5])
            #expect(Set(all.map(\.hash)).count == 5)
            #expect(all.allSatisfy { $0.hash.count == 64 })
            #expect(try store.verifyAuditChain() == AuditChainReport(checked: 5, firstBreak: nil))
            // The first hash is SHA-256(32 zero bytes || canonical bytes of event 1), recomputable.
            let expected = SHA256Digest(AuditChain.hash(previous: AuditChain.genesis, seq: 1,
                                                        fields: AuditChain.fields(all[0].event))).hex
            #expect(all[0].hash == expected)
            try store.appendAudit([])
            #expect(try store.auditEvents().records.count == 5)
        }
    }

    @Test func canonicalBytesAreTheDocumentedLayout() {
        let bytes = AuditChain.canonicalBytes(seq: 258, fields: [Array("ab".utf8), nil])
        #expect(bytes == Array("caisson-audit-v1".utf8) + [0, 0, 0, 0, 0, 0, 1, 2] + [1, 0, 0, 0, 2, 0x61, 0x62] + [0])
        // Null and empty differ.
        #expect(AuditChain.canonicalBytes(seq: 1, fields: [nil]) != AuditChain.canonicalBytes(seq: 1, fields: [[]]))
    }

    @Test func filtersAndLimit() throws {
        try withStore { store, _ in
            try Self.seeded(store)
            #expect(try store.auditEvents(updateID: "u-1").records.map(\.seq) == [3, 5])
            #expect(try store.auditEvents(validationID: "v-1").records.map(\.seq) == [1, 2, 3])
            #expect(try store.auditEvents(service: "backend").records.map(\.seq) == [4])
            #expect(try store.auditEvents(updateID: "u-1", validationID: "v-1").records.map(\.seq) == [3])
            // limit keeps the newest, still in log order.
            #expect(try store.auditEvents(limit: 2).records.map(\.seq) == [4, 5])
        }
    }

    @Test func editedContentIsDetected() throws {
        try withStore { store, dir in
            try Self.seeded(store)
            try SQLiteDatabase(path: dir.databasePath).run("UPDATE audit_events SET message = 'nothing happened' WHERE seq = 3")
            let report = try store.verifyAuditChain()
            #expect(report.firstBreak == AuditChainBreak(seq: 3, reason: .editedContent))
            #expect(report.checked == 2)
            #expect(report.firstBreak?.description.contains("edited") == true)
        }
    }

    @Test func deletedEventIsAGap() throws {
        try withStore { store, dir in
            try Self.seeded(store)
            try SQLiteDatabase(path: dir.databasePath).run("DELETE FROM audit_events WHERE seq IN (2, 3)")
            let report = try store.verifyAuditChain()
            #expect(report.firstBreak == AuditChainBreak(seq: 4, reason: .gap(missingFrom: 2, missingTo: 3)))
            #expect(report.checked == 1)
            #expect(report.firstBreak?.description.contains("deleted") == true)
        }
    }

    @Test func deletedFirstEventIsAGap() throws {
        try withStore { store, dir in
            try Self.seeded(store)
            try SQLiteDatabase(path: dir.databasePath).run("DELETE FROM audit_events WHERE seq = 1")
            #expect(try store.verifyAuditChain().firstBreak == AuditChainBreak(seq: 2, reason: .gap(missingFrom: 1, missingTo: 1)))
        }
    }

    @Test func reorderedEventsAreDetected() throws {
        try withStore { store, dir in
            try Self.seeded(store)
            // Swap events 2 and 3 wholesale (content and hashes), keeping the sequence numbers.
            let raw = try SQLiteDatabase(path: dir.databasePath)
            try raw.transaction {
                try raw.run("UPDATE audit_events SET seq = -2 WHERE seq = 2")
                try raw.run("UPDATE audit_events SET seq = 2 WHERE seq = 3")
                try raw.run("UPDATE audit_events SET seq = 3 WHERE seq = -2")
            }
            let report = try store.verifyAuditChain()
            #expect(report.firstBreak == AuditChainBreak(seq: 2, reason: .reordered))
            #expect(report.checked == 1)
        }
    }

    @Test func deletedNewestEventsAreDetectedByTheHead() throws {
        try withStore { store, dir in
            try Self.seeded(store)
            try SQLiteDatabase(path: dir.databasePath).run("DELETE FROM audit_events WHERE seq >= 4")
            let report = try store.verifyAuditChain()
            #expect(report.firstBreak == AuditChainBreak(seq: 3, reason: .truncated(headSeq: 5)))
            #expect(report.checked == 3)
            // New events still append (after the head), and the damage stays visible.
            try store.appendAudit([Fixtures.event(message: "later")])
            #expect(try store.auditEvents().records.map(\.seq) == [1, 2, 3, 6])
            #expect(try store.verifyAuditChain().firstBreak == AuditChainBreak(seq: 6, reason: .gap(missingFrom: 4, missingTo: 5)))
        }
    }

    @Test func missingHeadIsDetectedAndDoesNotBlockAppends() throws {
        try withStore { store, dir in
            try Self.seeded(store)
            try SQLiteDatabase(path: dir.databasePath).run("DELETE FROM audit_head")
            #expect(try store.verifyAuditChain().firstBreak == AuditChainBreak(seq: 5, reason: .headMismatch))
            try store.appendAudit([Fixtures.event(message: "after")])
            #expect(try store.verifyAuditChain() == AuditChainReport(checked: 6, firstBreak: nil))
        }
    }

    @Test func emptyLogIsIntact() throws {
        try withStore { store, _ in
            let report = try store.verifyAuditChain()
            #expect(report == AuditChainReport(checked: 0, firstBreak: nil))
        }
    }

    @Test func unknownKindIsSkippedWithANoteButVerifies() throws {
        try withStore { store, dir in
            try Self.seeded(store)
            // A newer Caisson's kind: written with a correct hash, so the chain is intact.
            let event = Fixtures.event(message: "future")
            var fields = AuditChain.fields(event)
            fields[0] = Array("time_travel".utf8)
            let previous = try #require(try SQLiteDatabase(path: dir.databasePath)
                .scalar("SELECT hash FROM audit_events WHERE seq = 5").blobValue)
            let hash = AuditChain.hash(previous: previous, seq: 6, fields: fields)
            let raw = try SQLiteDatabase(path: dir.databasePath)
            try raw.run("""
                INSERT INTO audit_events (seq, kind, at, service_name, update_id, validation_attempt_id, message,
                                          prev_hash, hash) VALUES (6, 'time_travel', ?, 'frontend', NULL, NULL, 'future', ?, ?)
                """, [.text(event.at), .blob(previous), .blob(hash)])
            try raw.run("UPDATE audit_head SET seq = 6, hash = ?", [.blob(hash)])
            let list = try store.auditEvents()
            #expect(list.records.count == 5)
            #expect(list.unreadable.map(\.key) == ["6"])
            #expect(try store.verifyAuditChain() == AuditChainReport(checked: 6, firstBreak: nil))
        }
    }

    /// The chain is specified in bytes, not by Swift: an independent Python verifier agrees.
    @Test(.enabled(if: Python.available)) func independentPythonVerifierAgrees() throws {
        try withStore { store, dir in
            try Self.seeded(store)
            try store.write(JournalWrite(attempt: Fixtures.attempt("u-9"),
                                         events: [Fixtures.event(.updateStarted, update: "u-9", message: "ünïcødé ✓")]))
            let child = try Python.start(Self.pythonVerifier, [dir.databasePath])
            let line = child.readLine()
            child.process.waitUntilExit()
            #expect(line == "ok 6", "python said \(line ?? "nothing"): \(child.stderrText)")
        }
    }

    static let pythonVerifier = """
        import hashlib, sqlite3, struct, sys
        db = sqlite3.connect(sys.argv[1])
        db.text_factory = bytes
        prev, n = bytes(32), 0
        for row in db.execute("SELECT seq, kind, at, service_name, update_id, validation_attempt_id, message, prev_hash, hash FROM audit_events ORDER BY seq"):
            seq, fields, p, h = row[0], row[1:7], row[7], row[8]
            out = b"caisson-audit-v1" + struct.pack(">q", seq)
            for f in fields:
                out += b"\\x00" if f is None else b"\\x01" + struct.pack(">I", len(f)) + f
            if p != prev or hashlib.sha256(prev + out).digest() != h:
                print("broken", seq); sys.exit(0)
            prev, n = h, n + 1
        print("ok", n)
        """
}
