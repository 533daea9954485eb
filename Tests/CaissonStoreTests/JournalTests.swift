import CaissonCore
import CaissonStore
import Foundation
import Testing

@Suite struct JournalTests {
    @Test func writeStoresAttemptEntryEventsStateAndReleaseTogether() throws {
        try withStore { store, _ in
            let id = "u-1"
            try store.write(JournalWrite(attempt: Fixtures.attempt(id), entry: Fixtures.entry("inspect_old", update: id),
                                         events: [Fixtures.event(.updateStarted, update: id)]))
            var done = Fixtures.attempt(id, status: .succeeded)
            done.finishedAt = "2026-03-16T18:31:00Z"
            try store.write(JournalWrite(attempt: done, entry: Fixtures.entry("commit", phase: .outcome, update: id),
                                         events: [Fixtures.event(.healthCheckPassed, update: id),
                                                  Fixtures.event(.updateCommitted, update: id)],
                                         serviceState: Fixtures.state("frontend", active: "cr-\(id)"),
                                         candidateRelease: Fixtures.release("cr-\(id)")))
            #expect(try store.updateAttempt(id) == done)
            let entries = try store.journalEntries(updateID: id).records
            #expect(entries.map(\.seq) == [1, 2])
            #expect(entries.map(\.step) == ["inspect_old", "commit"])
            #expect(entries.map(\.phase) == [.intent, .outcome])
            #expect(try entries[1].machine() == Fixtures.machine(id))
            #expect(try store.auditEvents(updateID: id).records.map(\.event.kind)
                    == [.updateStarted, .healthCheckPassed, .updateCommitted])
            #expect(try store.serviceState("frontend")?.activeCandidateReleaseID == "cr-\(id)")
            #expect(try store.candidateRelease("cr-\(id)") == Fixtures.release("cr-\(id)"))
            // Upserting the attempt kept its journal (no INSERT OR REPLACE cascade).
            #expect(try store.updateAttempts().records.count == 1)
            #expect(try store.inFlightAttempts().isEmpty)
        }
    }

    /// One transaction: a failure in the last part (an audit insert) leaves nothing behind.
    @Test func aFailingWriteChangesNothing() throws {
        try withStore { store, dir in
            let raw = try SQLiteDatabase(path: dir.databasePath)
            try raw.execute("""
                CREATE TRIGGER fail_on_boom BEFORE INSERT ON audit_events WHEN NEW.message = 'boom'
                BEGIN SELECT RAISE(ABORT, 'injected failure'); END;
                """)
            raw.close()
            let write = JournalWrite(attempt: Fixtures.attempt("u-2"), entry: Fixtures.entry("create", update: "u-2"),
                                     events: [Fixtures.event(update: "u-2"), Fixtures.event(update: "u-2", message: "boom")],
                                     serviceState: Fixtures.state("frontend"), candidateRelease: Fixtures.release("cr-x"))
            let error = expectCaissonError("store.query_failed") { try store.write(write) }
            #expect(error?.cause?.contains("injected failure") == true)
            #expect(try store.updateAttempt("u-2") == nil)
            #expect(try store.journalEntries(updateID: "u-2").records.isEmpty)
            #expect(try store.auditEvents().records.isEmpty)
            #expect(try store.serviceState("frontend") == nil)
            #expect(try store.candidateRelease("cr-x") == nil)
            // And the store keeps working.
            try store.write(JournalWrite(attempt: Fixtures.attempt("u-3"), events: [Fixtures.event()]))
            #expect(try store.verifyAuditChain() == AuditChainReport(checked: 1, firstBreak: nil))
        }
    }

    @Test func inFlightAttemptsOldestFirstWithLatestSnapshot() throws {
        try withStore { store, _ in
            try store.write(JournalWrite(attempt: Fixtures.attempt("old")))  // no entry yet
            try store.write(JournalWrite(attempt: Fixtures.attempt("done", status: .rolledBack)))
            try store.write(JournalWrite(attempt: Fixtures.attempt("new", status: .healthChecking),
                                         entry: Fixtures.entry("a", update: "new")))
            try store.write(JournalWrite(attempt: Fixtures.attempt("new", status: .healthChecking),
                                         entry: Fixtures.entry("b", update: "new-later")))
            let inflight = try store.inFlightAttempts()
            #expect(inflight.map(\.attempt.updateID) == ["old", "new"])
            #expect(inflight[0].machine == nil && inflight[0].unreadable == nil)
            // The latest entry's machine (its plan names "new-later").
            #expect(inflight[1].machine == Fixtures.machine("new-later"))
            #expect(inflight[1].unreadable == nil)
            #expect(try store.serviceState("frontend") == nil)
        }
    }

    /// The store is a drop-in for the in-memory journal: same answers for the same writes.
    @Test func agreesWithInMemoryJournal() throws {
        try withStore { store, _ in
            let memory = InMemoryJournal()
            let writes = [
                JournalWrite(attempt: Fixtures.attempt("x"), entry: Fixtures.entry("s1", update: "x")),
                JournalWrite(attempt: Fixtures.attempt("y", service: "backend"), entry: Fixtures.entry("s1", update: "y")),
                JournalWrite(attempt: Fixtures.attempt("x", status: .succeeded), serviceState: Fixtures.state("frontend")),
                JournalWrite(attempt: Fixtures.attempt("y", service: "backend", status: .rollbackStarted),
                             entry: Fixtures.entry("s2", update: "y2")),
            ]
            for w in writes {
                try store.write(w)
                try memory.write(w)
            }
            #expect(try store.inFlightAttempts() == memory.inFlightAttempts())
            #expect(try store.serviceState("frontend") == memory.serviceState("frontend"))
            #expect(try store.serviceState("backend") == memory.serviceState("backend"))
        }
    }
}
