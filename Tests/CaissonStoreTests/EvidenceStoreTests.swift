import CaissonCore
import CaissonStore
import Foundation
import Testing

/// Issue 12: failure evidence is stored with its attempt (schema v3), in the journal write's
/// transaction, and read back in capture order.
@Suite struct EvidenceStoreTests {
    static func evidence(_ update: String, _ name: String, role: FailureEvidence.Role = .new) -> FailureEvidence {
        FailureEvidence(updateID: update, role: role, containerID: String(repeating: "c", count: 64), containerName: name,
                        imageID: "sha256:" + String(repeating: "a", count: 64), capturedAt: "2026-03-16T18:31:00Z",
                        state: .init(status: .exited, exitCode: 3, oomKilled: false, restartCount: 2, error: nil,
                                     startedAt: "2026-03-16T18:30:58.1Z", finishedAt: "2026-03-16T18:31:00.1Z", health: .unhealthy),
                        healthLog: [HealthLogEntry(start: "s", end: "e", exitCode: 1, output: "no answer on :8080\n")],
                        logTail: [LogLine(.stdout, "app: version 4 serving on :8080"), LogLine(.stderr, "app: crashing after 3s (exit 3)")],
                        logTruncated: true, problems: [], redactions: 1)
    }

    @Test func evidenceIsWrittenWithTheJournalAndReadBackInOrder() throws {
        try withStore { store, _ in
            let id = "e-1"
            try store.write(JournalWrite(attempt: Fixtures.attempt(id), entry: Fixtures.entry("start", update: id)))
            #expect(try store.failureEvidence(updateID: id).records.isEmpty)
            var w = JournalWrite(attempt: Fixtures.attempt(id, status: .rollbackStarted), entry: Fixtures.entry("remove", update: id))
            w.evidence = [Self.evidence(id, "frontend"), Self.evidence(id, "frontend-2")]
            try store.write(w)
            var w2 = JournalWrite(attempt: Fixtures.attempt(id, status: .rollbackFailed))
            w2.evidence = [Self.evidence(id, "frontend", role: .previous)]
            try store.write(w2)
            let list = try store.failureEvidence(updateID: id)
            #expect(list.unreadable.isEmpty)
            #expect(list.records == [Self.evidence(id, "frontend"), Self.evidence(id, "frontend-2"), Self.evidence(id, "frontend", role: .previous)])
            #expect(try store.failureEvidence(updateID: "other").records.isEmpty)
        }
    }

    /// A write that fails leaves no evidence behind either (one transaction).
    @Test func aFailingWriteLeavesNoEvidence() throws {
        try withStore { store, dir in
            let raw = try SQLiteDatabase(path: dir.databasePath)
            try raw.execute("""
                CREATE TRIGGER fail_on_boom BEFORE INSERT ON audit_events WHEN NEW.message = 'boom'
                BEGIN SELECT RAISE(ABORT, 'injected failure'); END;
                """)
            raw.close()
            var w = JournalWrite(attempt: Fixtures.attempt("e-2"), events: [Fixtures.event(update: "e-2", message: "boom")])
            w.evidence = [Self.evidence("e-2", "frontend")]
            _ = expectCaissonError("store.query_failed") { try store.write(w) }
            #expect(try store.failureEvidence(updateID: "e-2").records.isEmpty)
        }
    }

    /// The JSON shape is snake_case, like every other record.
    @Test func evidenceJSONShape() throws {
        let json = JSONCoding.string(Self.evidence("e-3", "frontend"), pretty: false)
        for key in ["\"update_id\"", "\"container_name\"", "\"exit_code\":3", "\"oom_killed\":false", "\"restart_count\":2",
                    "\"started_at\"", "\"finished_at\"", "\"health_log\"", "\"log_tail\"", "\"log_truncated\":true",
                    "\"stream\":\"stderr\"", "\"role\":\"new\""] {
            #expect(json.contains(key), "\(key) in \(json)")
        }
    }

    /// A damaged evidence record is reported, not fatal.
    @Test func aDamagedRecordIsNotedNotFatal() throws {
        try withStore { store, dir in
            var w = JournalWrite(attempt: Fixtures.attempt("e-4"))
            w.evidence = [Self.evidence("e-4", "frontend")]
            try store.write(w)
            let raw = try SQLiteDatabase(path: dir.databasePath)
            try raw.execute("UPDATE failure_evidence SET record = '{\"role\": 5}'")
            raw.close()
            let list = try store.failureEvidence(updateID: "e-4")
            #expect(list.records.isEmpty && list.unreadable.count == 1)
        }
    }
}
