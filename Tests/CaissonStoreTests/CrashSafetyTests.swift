import CaissonCore
import CaissonStore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// "A half-written record after a crash must never break a later command."
@Suite struct CrashSafetyTests {
    // MARK: (a) a writer process SIGKILLed mid-write

    /// A python3 writer using its own sqlite3 module writes big transactions (an attempt, 20
    /// journal entries of 4 KiB and 3 chained audit events each) in a loop while this process
    /// appends audit events to the same chain; the writer is SIGKILLed mid-stream. The store then
    /// opens, reads every record, finds the audit chain intact and keeps writing.
    @Test(.enabled(if: Python.available)) func writerKilledMidWriteNeverBreaksTheStore() throws {
        try withTempDir { dir in
            let store = try CaissonStore(stateDirectory: dir.stateDir)
            try store.write(JournalWrite(attempt: Fixtures.attempt("swift-0"), entry: Fixtures.entry("s", update: "swift-0"),
                                         events: [Fixtures.event(update: "swift-0")]))
            var attempt = Fixtures.attempt("template")
            attempt.status = .applying
            let attemptJSON = String(decoding: try JSONCoding.encode(attempt), as: UTF8.self)
            let snapshotHex = try JSONCoding.encode(Fixtures.machine("py")).map { String(format: "%02x", $0) }.joined()

            let child = try Python.start(Self.pythonWriter, [dir.databasePath, attemptJSON, snapshotHex])
            defer { child.killHard() }
            #expect(child.readLine() == "started", "writer failed: \(child.stderrText)")

            // Interleave our own chained appends with the child's until it has committed plenty.
            let raw = try SQLiteDatabase(path: dir.databasePath)
            var ours = 1
            var committed: Int64 = 0
            for _ in 0..<20_000 {
                try store.appendAudit([Fixtures.event(.packageCleanup, message: "swift \(ours)")])
                ours += 1
                committed = try raw.scalar("SELECT count(*) FROM update_attempts WHERE update_id LIKE 'py-%'")
                    .integerValue ?? 0
                if committed >= 25 && ours >= 20 || !child.process.isRunning { break }
                usleep(2_000)
            }
            #expect(child.process.isRunning, "writer died by itself: \(child.stderrText)")
            #expect(committed >= 1)
            // Leave the writer as the last process with the database open, make it stop halfway
            // through a big transaction (pages spilled into the write-ahead log, no commit), kill
            // it there: the next open finds a hot log ending in a half-written transaction.
            raw.close()
            store.close()
            child.stdin.fileHandleForWriting.write(Data("stop\n".utf8))
            #expect(child.readLine() == "mid", "writer failed: \(child.stderrText)")
            kill(child.pid, SIGKILL)
            child.process.waitUntilExit()
            #expect(child.process.terminationReason == .uncaughtSignal)
            let walSize = (try FileManager.default.attributesOfItem(atPath: dir.databasePath + "-wal")[.size] as? Int) ?? 0
            #expect(walSize > 0)

            // A fresh open recovers the WAL; everything committed is whole, nothing half-written shows.
            let reopened = try CaissonStore(stateDirectory: dir.stateDir)
            defer { reopened.close() }
            #expect(try reopened.integrityProblems().isEmpty)
            #expect(try reopened.updateAttempt("py-torn") == nil)
            #expect(try reopened.journalEntries(updateID: "py-torn").records.isEmpty)
            let attempts = try reopened.updateAttempts()
            #expect(attempts.unreadable.isEmpty)
            let pyAttempts = attempts.records.filter { $0.updateID.hasPrefix("py-") }
            #expect(pyAttempts.count >= Int(committed))
            for a in pyAttempts {
                let entries = try reopened.journalEntries(updateID: a.updateID)
                #expect(entries.unreadable.isEmpty)
                #expect(entries.records.map(\.seq) == Array(1...20), "attempt \(a.updateID) is torn")
            }
            let inflight = try reopened.inFlightAttempts()
            #expect(inflight.count == pyAttempts.count + 1)
            #expect(inflight.allSatisfy { $0.unreadable == nil })
            let report = try reopened.verifyAuditChain()
            #expect(report == AuditChainReport(checked: 3 * pyAttempts.count + ours, firstBreak: nil))
            #expect(try reopened.auditEvents().unreadable.isEmpty)

            // And later commands write on.
            try reopened.write(JournalWrite(attempt: Fixtures.attempt("swift-1", status: .succeeded),
                                            events: [Fixtures.event(.updateCommitted, update: "swift-1")],
                                            serviceState: Fixtures.state("frontend")))
            #expect(try reopened.updateAttempt("swift-1")?.status == .succeeded)
            #expect(try reopened.verifyAuditChain().isIntact)
        }
    }

    static let pythonWriter = """
        import hashlib, json, select, sqlite3, struct, sys
        path, template, snapshot = sys.argv[1], json.loads(sys.argv[2]), bytes.fromhex(sys.argv[3])
        db = sqlite3.connect(path, timeout=60, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        def canon(seq, fields):
            out = b"caisson-audit-v1" + struct.pack(">q", seq)
            for f in fields:
                out += b"\\x00" if f is None else b"\\x01" + struct.pack(">I", len(f.encode())) + f.encode()
            return out
        def torn():
            db.execute("PRAGMA cache_size=8")  # small cache: pages spill into the WAL before commit
            db.execute("BEGIN IMMEDIATE")
            rec = dict(template, update_id="py-torn")
            db.execute("INSERT INTO update_attempts (update_id, service_name, status, kind, started_at, finished_at, record) VALUES (?, ?, ?, ?, ?, NULL, ?)",
                       ("py-torn", rec["service_name"], rec["status"], rec["kind"], rec["started_at"], json.dumps(rec)))
            for s in range(1, 301):
                db.execute("INSERT INTO journal_entries (update_id, seq, phase, step, detail, snapshot, at) VALUES ('py-torn', ?, 'intent', 'x', 'torn', ?, 'now')",
                           (s, bytes([s % 256]) * 4096))
            print("mid", flush=True)
            sys.stdin.read()
        i = 0
        while True:
            i += 1
            uid = "py-%08d" % i
            rec = dict(template, update_id=uid)
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO update_attempts (update_id, service_name, status, kind, started_at, finished_at, record) VALUES (?, ?, ?, ?, ?, NULL, ?)",
                       (uid, rec["service_name"], rec["status"], rec["kind"], rec["started_at"], json.dumps(rec, sort_keys=True)))
            for s in range(1, 21):
                blob = snapshot if s == 20 else bytes([s]) * 4096
                db.execute("INSERT INTO journal_entries (update_id, seq, phase, step, detail, snapshot, at) VALUES (?, ?, 'intent', ?, 'python', ?, '2026-03-16T18:30:00Z')",
                           (uid, s, "step%d" % s, blob))
            row = db.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
            seq, prev = (row[0], row[1]) if row else (0, bytes(32))
            for k in range(3):
                seq += 1
                fields = ["update_started", "2026-03-16T18:30:00Z", rec["service_name"], uid, None, "python %d" % k]
                h = hashlib.sha256(prev + canon(seq, fields)).digest()
                db.execute("INSERT INTO audit_events (seq, kind, at, service_name, update_id, validation_attempt_id, message, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (seq, *fields, prev, h))
                prev = h
            db.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash", (seq, prev))
            db.execute("COMMIT")
            if i == 1:
                print("started", flush=True)
            if select.select([sys.stdin], [], [], 0)[0]:
                torn()
        """

    // MARK: (b) damaged JSON is reported, never a crash

    @Test func corruptJSONRecordsAreSkippedWithAClearNote() throws {
        try withStore { store, dir in
            for id in ["a-1", "a-2", "a-3"] { try store.recordUpdateAttempt(Fixtures.attempt(id, status: .succeeded)) }
            try store.setServiceState(Fixtures.state("alpha"))
            try store.setServiceState(Fixtures.state("beta"))
            try store.recordValidation(Fixtures.validation("v-1"))
            try store.recordValidation(Fixtures.validation("v-2"))
            let raw = try SQLiteDatabase(path: dir.databasePath)
            try raw.run(#"UPDATE update_attempts SET record = '{"update_id": "a-2", "stat' WHERE update_id = 'a-2'"#)
            try raw.run(#"UPDATE service_states SET record = '{"service_name": "beta"}' WHERE service_name = 'beta'"#)
            try raw.run("UPDATE validations SET record = x'fffe007b' WHERE validation_attempt_id = 'v-1'")

            let attempts = try store.updateAttempts()
            #expect(attempts.records.map(\.updateID) == ["a-3", "a-1"])
            #expect(attempts.unreadable.map(\.key) == ["a-2"])
            let note = try #require(attempts.unreadable.first)
            #expect(note.message.hasPrefix("skipped update attempt a-2: its stored data could not be read"))
            #expect(note.issue.code == "store.unreadable_record")
            let single = expectCaissonError("store.unreadable_record") { _ = try store.updateAttempt("a-2") }
            #expect(single?.message.contains("a-2") == true)

            let states = try store.serviceStates()
            #expect(states.records.map(\.serviceName) == ["alpha"])
            #expect(states.unreadable.first?.reason.contains("updated_at") == true)  // names the missing field
            expectCaissonError("store.unreadable_record") { _ = try store.serviceState("beta") }

            #expect(try store.validations().records.map(\.validationAttemptID) == ["v-2"])
            #expect(try store.validations().unreadable.map(\.key) == ["v-1"])

            // The rest of the store keeps working, including writing over the damaged record.
            try store.recordUpdateAttempt(Fixtures.attempt("a-2", status: .failed))
            #expect(try store.updateAttempt("a-2")?.status == .failed)
        }
    }

    /// Recovery must hear about every in-flight attempt, however damaged.
    @Test func damagedInFlightAttemptsStillReachRecovery() throws {
        try withStore { store, dir in
            for id in ["ok", "bad-record", "bad-snapshot", "bad-both"] {
                try store.write(JournalWrite(attempt: Fixtures.attempt(id, status: .healthChecking),
                                             entry: Fixtures.entry("step", update: id)))
            }
            let raw = try SQLiteDatabase(path: dir.databasePath)
            try raw.run("UPDATE update_attempts SET record = 'garbage' WHERE update_id IN ('bad-record', 'bad-both')")
            try raw.run("UPDATE journal_entries SET snapshot = x'00' WHERE update_id IN ('bad-snapshot', 'bad-both')")

            let list = try store.inFlightAttemptList()
            #expect(list.records.map(\.attempt.updateID) == ["ok", "bad-record", "bad-snapshot", "bad-both"])
            let byID = Dictionary(uniqueKeysWithValues: list.records.map { ($0.attempt.updateID, $0) })
            #expect(byID["ok"]?.machine == Fixtures.machine("ok") && byID["ok"]?.unreadable == nil)
            // Record damaged: rebuilt from the snapshot's copy, with the status column.
            #expect(byID["bad-record"]?.machine != nil && byID["bad-record"]?.unreadable == nil)
            #expect(byID["bad-record"]?.attempt.status == .healthChecking)
            #expect(byID["bad-record"]?.attempt.serviceName == "frontend")
            // Snapshot damaged: no machine, a reason.
            #expect(byID["bad-snapshot"]?.machine == nil)
            #expect(byID["bad-snapshot"]?.unreadable?.isEmpty == false)
            // Both: a placeholder from the typed columns, flagged.
            #expect(byID["bad-both"]?.attempt.serviceName == "frontend")
            #expect(byID["bad-both"]?.unreadable?.contains("attempt record is unreadable") == true)
            #expect(Set(list.unreadable.map(\.key)) == ["bad-record", "bad-snapshot", "bad-both"])
            #expect(try store.inFlightAttempts().count == 4)
            // A damaged snapshot is an error on its own when asked for directly.
            let entry = try #require(try store.journalEntries(updateID: "bad-snapshot").records.first)
            #expect(throws: CaissonError.self) { _ = try entry.machine() }
        }
    }

    // MARK: (c) a damaged database file is a clear error

    @Test(arguments: [("garbage", 8192), ("garbage", 100), ("truncated", 50), ("truncated", 1000), ("truncated", 6000)])
    func damagedDatabaseFileIsStoreCorrupt(kind: String, size: Int) throws {
        try withTempDir { dir in
            if kind == "garbage" {
                try FileManager.default.createDirectory(atPath: dir.stateDir, withIntermediateDirectories: true)
                var state: UInt64 = 0x9E37_79B9_7F4A_7C15
                let bytes = (0..<size).map { _ -> UInt8 in
                    state = state &* 6364136223846793005 &+ 1442695040888963407
                    return UInt8(truncatingIfNeeded: state >> 56)
                }
                try Data(bytes).write(to: URL(fileURLWithPath: dir.databasePath))
            } else {
                let store = try CaissonStore(stateDirectory: dir.stateDir)
                for i in 0..<40 { try store.recordUpdateAttempt(Fixtures.attempt("a-\(i)")) }
                store.close()
                #expect(truncate(dir.databasePath, off_t(size)) == 0)
            }
            let error = expectCaissonError("store.corrupt") {
                let store = try CaissonStore(stateDirectory: dir.stateDir)
                defer { store.close() }
                _ = try store.updateAttempts()
            }
            #expect(error?.message.contains("is damaged or is not a Caisson database") == true)
            #expect(error?.message.contains("move the file aside") == true)
            #expect(error?.cause?.contains("SQLite error") == true)
        }
    }

    @Test func damagedTablePageIsStoreCorruptOnUse() throws {
        try withTempDir { dir in
            let store = try CaissonStore(stateDirectory: dir.stateDir)
            for i in 0..<200 { try store.recordUpdateAttempt(Fixtures.attempt("a-\(i)")) }
            try store.setServiceState(Fixtures.state("frontend"))
            store.close()
            let raw = try SQLiteDatabase(path: dir.databasePath)
            let root = try #require(try raw.scalar("SELECT rootpage FROM sqlite_master WHERE name = 'update_attempts'").integerValue)
            let pageSize = try #require(try raw.scalar("PRAGMA page_size").integerValue)
            raw.close()
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.databasePath))
            try handle.seek(toOffset: UInt64((root - 1) * pageSize))
            try handle.write(contentsOf: Data(repeating: 0xFF, count: Int(pageSize)))
            try handle.close()

            // Caught when the store opens (quick_check), not only when that table is read
            // (issue 10 item 11: a damaged page must not go unnoticed).
            let error = expectCaissonError("store.corrupt") { _ = try CaissonStore(stateDirectory: dir.stateDir) }
            #expect(error?.cause?.contains("quick_check") == true)
        }
    }

    /// Issue 10 item 11: a 0-byte caisson.db was truncated, not created fresh (a fresh store is
    /// created whole): refused, not taken as a new, empty history.
    @Test func emptyDatabaseFileIsRefused() throws {
        try withTempDir { dir in
            try FileManager.default.createDirectory(atPath: dir.stateDir, withIntermediateDirectories: true)
            #expect(FileManager.default.createFile(atPath: dir.databasePath, contents: Data()))
            expectCaissonError("store.truncated") { _ = try CaissonStore(stateDirectory: dir.stateDir) }
        }
    }

    /// A torn or garbage write-ahead log (a crash while appending to it) is ignored by SQLite's
    /// checksums: committed data stays, the store opens.
    @Test func garbageWriteAheadLogIsIgnored() throws {
        try withTempDir { dir in
            let store = try CaissonStore(stateDirectory: dir.stateDir)
            try store.setServiceState(Fixtures.state("frontend"))
            store.close()
            try Data(repeating: 0xAB, count: 10_000).write(to: URL(fileURLWithPath: dir.databasePath + "-wal"))
            let reopened = try CaissonStore(stateDirectory: dir.stateDir)
            defer { reopened.close() }
            #expect(try reopened.serviceState("frontend") == Fixtures.state("frontend"))
            try reopened.setServiceState(Fixtures.state("backend"))
            #expect(try reopened.serviceStates().records.count == 2)
        }
    }
}
