import CaissonCore
import CaissonSimulator
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The self-update machine (issue 14) against the simulated install: every fake binary, a crash
/// at every journal point (with and without a power cut), a death inside every call, and a fault
/// (ENOSPC, EXDEV, ETXTBSY, EIO) at every call. After each: the install path names a complete
/// executable (the old one, or the new one that passed its test-run), and once recovered the
/// outcome is consistent and the store is one the installed executable reads.
@Suite struct SelfUpdateMachineTests {
    static let installPath = "/opt/caisson/bin/caisson"
    static let stateDir = "/var/lib/caisson"
    static let packagePath = "/media/usb/caisson-0.3.0.edgepkg"
    static let oldSchema = 3

    final class Counter: SelfUpdateClock {
        var n = 0
        func timestamp() -> String {
            n += 1
            return "2026-03-16T18:\(String(format: "%02d", (n / 60) % 60)):\(String(format: "%02d", n % 60))Z"
        }
    }

    struct World {
        let sim: SimulatedInstall
        let journal: InMemorySelfUpdateJournal
        let clock = Counter()
        let old: SimulatedInstall.Binary
        let new: SimulatedInstall.Binary
        let plan: SelfUpdateMachine.Plan
        var ids = 0

        init(new behaviour: SimulatedInstall.Behaviour = .good, newSchema: Int = 3, freeBytes: Int64 = 1 << 30,
             earlierPoint: Bool = false) {
            journal = InMemorySelfUpdateJournal()
            sim = SimulatedInstall(stateDirectory: SelfUpdateMachineTests.stateDir, freeBytes: freeBytes,
                                   storeSchema: SelfUpdateMachineTests.oldSchema, journal: journal)
            old = SimulatedInstall.Binary(version: "0.2.0", schema: SelfUpdateMachineTests.oldSchema)
            new = SimulatedInstall.Binary(version: "0.3.0", behaviour: behaviour, schema: newSchema)
            sim.install(SelfUpdateMachineTests.installPath, old.bytes)
            sim.package[SelfUpdateMachineTests.packagePath] = new.bytes
            var p = SelfUpdateMachine.Plan.update(
                id: "11111111-2222-3333-4444-555555555555", installPath: SelfUpdateMachineTests.installPath,
                source: SelfUpdateSource(packagePath: SelfUpdateMachineTests.packagePath, offset: 1024,
                                         size: Int64(new.bytes.count), sha256: new.sha256),
                fromVersion: "0.2.0", fromSHA256: old.sha256, toVersion: "0.3.0",
                stateDirectory: SelfUpdateMachineTests.stateDir, catalogPath: "/etc/caisson/services.toml",
                storeSchemaVersion: SelfUpdateMachineTests.oldSchema)
            p.spaceReserveBytes = 1000
            if earlierPoint {
                // An earlier self-update (0.1.0 -> 0.2.0) left its rollback point and snapshot.
                let older = SimulatedInstall.Binary(version: "0.1.0", schema: 2)
                sim.install(SelfUpdateMachineTests.installPath + ".previous", older.bytes)
                let earlier = SelfUpdateRollbackPoint(
                    selfUpdateID: "00000000-0000-0000-0000-000000000000", installPath: SelfUpdateMachineTests.installPath,
                    previousPath: SelfUpdateMachineTests.installPath + ".previous",
                    previousTempPath: "/opt/caisson/bin/.caisson.previous-00000000", previousSHA256: older.sha256,
                    previousVersion: "0.1.0", newSHA256: old.sha256, newVersion: "0.2.0",
                    snapshotPath: SelfUpdateMachineTests.stateDir + "/self-update/00000000-0000-0000-0000-000000000000/store-snapshot.db",
                    snapshotSchemaVersion: 2, workDirectory: SelfUpdateMachineTests.stateDir + "/self-update/00000000-0000-0000-0000-000000000000",
                    createdAt: "2026-03-01T00:00:00Z")
                try? sim.writeRollbackPoint(earlier)
                sim.install(earlier.snapshotPath, Array("old snapshot".utf8))
                p.previousRollbackPoint = earlier
            }
            plan = p
        }

        /// A run of the update; nil when the (simulated) process died.
        func run() throws -> SelfUpdateRecord? {
            var machine = SelfUpdateMachine(plan: plan, startedAt: clock.timestamp())
            do {
                return try SelfUpdateDriver(system: sim, journal: journal, clock: clock).run(&machine)
            } catch is SimulatedCrash {
                return nil
            }
        }

        /// What the next command does first (either executable: the recovery is the same code).
        mutating func recover() throws -> [SelfUpdateRecord] {
            journal.crashAtWrite = nil
            sim.failCall = nil
            sim.dieDuringCall = nil
            var counter = ids
            defer { ids = counter }
            let context = SelfUpdateRecovery.Context(
                rollbackPoint: sim.readRollbackPoint(), stateDirectory: SelfUpdateMachineTests.stateDir,
                catalogPath: "/etc/caisson/services.toml", storeSchemaVersion: sim.storeSchema,
                newID: { counter += 1; return "99999999-0000-0000-0000-\(String(format: "%012d", counter))" })
            return try SelfUpdateRecovery.run(system: sim, journal: journal, clock: clock, context: context)
        }

        var record: SelfUpdateRecord? { journal.records.first { $0.selfUpdateID == plan.id } }
        var installed: [UInt8]? { sim.contents(SelfUpdateMachineTests.installPath) }

        /// What must hold at every instant, even right after a power cut.
        func alwaysProblems() -> [String] {
            var p: [String] = []
            if installed != old.bytes && installed != new.bytes {
                p.append("the install path holds \(installed.map { "\($0.count) unknown bytes" } ?? "nothing")")
            }
            if installed == new.bytes {
                let tested = sim.runs.contains { $0.sha256 == new.sha256 && $0.arguments == ["--version"] && $0.outcome == .exited(0) }
                    && sim.runs.contains { $0.sha256 == new.sha256 && $0.arguments.first == "self-test" && $0.outcome == .exited(0) }
                if !tested { p.append("the new executable is installed without a passed test-run") }
            }
            if sim.selfTestsOnLiveStore > 0 { p.append("a self-test ran against the live store") }
            return p
        }

        /// What must hold once nothing is in flight.
        func finalProblems() throws -> [String] {
            var p = alwaysProblems()
            if try !journal.inFlightSelfUpdates().isEmpty { p.append("a self-update is still in flight") }
            if sim.readRollbackPoint()?.state == .rollingBack { p.append("a rollback is still marked in progress") }
            guard let r = record else {
                // The process died before its first journal write: nothing may have changed.
                if installed != old.bytes { p.append("no record, and the install path changed") }
                if sim.listing("/opt/caisson/bin").contains(where: { $0.contains("/.caisson.") }) { p.append("no record, and files were created") }
                return p
            }
            let dir = "/opt/caisson/bin"
            let leftovers = sim.listing(dir).filter { $0.contains("/.caisson.") }
            if !leftovers.isEmpty && r.notes.isEmpty { p.append("temporary files left without a note: \(leftovers)") }
            switch r.status {
            case .succeeded:
                if installed != new.bytes { p.append("succeeded but the old executable is installed") }
                if sim.contents(installPath + ".previous") != old.bytes && !r.notes.contains(where: { $0.contains("previous executable stays") }) {
                    p.append("succeeded but the previous executable is not kept")
                }
                if sim.readRollbackPoint()?.newSHA256 != new.sha256 || sim.readRollbackPoint()?.previousSHA256 != old.sha256 {
                    p.append("succeeded without a rollback point to the old executable")
                }
                if sim.storeSchema != max(old.schema, new.schema) { p.append("store schema \(sim.storeSchema) after success") }
            case .failed:
                if installed != old.bytes { p.append("failed but the new executable is installed") }
                if r.issues.isEmpty { p.append("failed without an issue") }
                if sim.storeSchema > old.schema { p.append("failed and the store is too new for the old executable") }
                if sim.readRollbackPoint() != plan.previousRollbackPoint && sim.readRollbackPoint() != nil {
                    p.append("failed and the rollback point changed")
                }
            case .rolledBack:
                if installed != old.bytes { p.append("rolled back but the new executable is installed") }
                if sim.storeSchema > old.schema { p.append("rolled back and the store (schema \(sim.storeSchema)) is too new for the old executable") }
                if sim.readRollbackPoint() != nil { p.append("rolled back but the rollback point is left") }
            case .rollbackFailed:
                if r.issues.isEmpty { p.append("rollback failed without an issue") }
            default:
                p.append("status \(r.status.rawValue) is not final")
            }
            // One beginning, one end (the end may be told by the rollback that finished it).
            let mine = journal.events.filter { $0.updateID == plan.id }
            let rollbacks = Set(journal.records.filter { $0.rollsBack == plan.id }.map(\.selfUpdateID))
            let ends: Set<AuditKind> = [.selfUpdateSucceeded, .selfUpdateFailed, .selfUpdateRolledBack, .selfUpdateRollbackFailed]
            let endCount = mine.filter { ends.contains($0.kind) }.count
            let rollbackEnds = journal.events.filter { $0.updateID.map(rollbacks.contains) == true && ends.contains($0.kind) }.count
            if mine.filter({ $0.kind == .selfUpdateStarted }).count != 1 { p.append("\(mine.filter { $0.kind == .selfUpdateStarted }.count) start events") }
            if endCount > 1 || endCount + rollbackEnds == 0 { p.append("\(endCount) end events (+\(rollbackEnds) by a rollback)") }
            return p
        }

        var installPath: String { SelfUpdateMachineTests.installPath }
    }

    // MARK: The fake new binaries, no faults

    static let badBinaries: [(SimulatedInstall.Behaviour, String)] = [
        (.wrongVersion, "self_update.wrong_version"), (.versionExits, "self_update.test_failed"),
        (.versionHangs, "self_update.test_timed_out"), (.selfTestFails, "self_update.test_failed"),
        (.selfTestHangs, "self_update.test_timed_out"), (.selfTestCrashes, "self_update.test_crashed"),
        (.wrongMachine, "self_update.wrong_machine"), (.truncated, "self_update.wrong_machine"),
    ]

    @Test func aGoodBinaryIsInstalledAndTheOldOneKept() throws {
        var w = World(earlierPoint: true)
        let r = try #require(try w.run())
        #expect(r.status == .succeeded)
        #expect(w.installed == w.new.bytes)
        #expect(w.sim.contents(Self.installPath + ".previous") == w.old.bytes)
        #expect(r.checks.map(\.name) == ["version", "self-test", "first run"])
        #expect(try w.finalProblems() == [])
        // The earlier self-update's snapshot is gone with its rollback point.
        #expect(!w.sim.exists(Self.stateDir + "/self-update/00000000-0000-0000-0000-000000000000/store-snapshot.db"))
        // Nothing left to recover.
        #expect(try w.recover().isEmpty)
        let kinds = w.journal.events.map(\.kind)
        #expect(kinds == [.selfUpdateStarted, .selfUpdateStaged, .selfUpdateTested, .selfUpdateSnapshotTaken,
                          .selfUpdateSwapped, .selfUpdateSucceeded])
    }

    @Test(arguments: badBinaries)
    func aBadBinaryIsRefusedAndNothingChanges(_ behaviour: SimulatedInstall.Behaviour, _ code: String) throws {
        let w = World(new: behaviour, earlierPoint: true)
        let r = try #require(try w.run())
        #expect(r.status == .failed)
        #expect(r.issues.first?.code == code, "\(r.issues)")
        #expect(w.installed == w.old.bytes)
        #expect(w.sim.listing("/opt/caisson/bin") == [Self.installPath, Self.installPath + ".previous"])
        #expect(w.sim.readRollbackPoint() == w.plan.previousRollbackPoint, "the earlier rollback point survives")
        #expect(!w.sim.calls.contains { $0.hasPrefix("rename") }, "never swapped")
        #expect(try w.finalProblems() == [])
        #expect(w.journal.events.contains { $0.kind == .selfUpdateTestFailed })
    }

    @Test func noRoomIsRefusedBeforeAnythingIsWritten() throws {
        let w = World(freeBytes: 150)
        let r = try #require(try w.run())
        #expect(r.status == .failed)
        #expect(r.issues.first?.code == "self_update.insufficient_space")
        #expect(!w.sim.calls.contains { $0.hasPrefix("write_executable") })
        #expect(try w.finalProblems() == [])
    }

    @Test(arguments: [SimulatedInstall.Behaviour.firstRunFails, .firstRunCrashes])
    func aFailingFirstRunPutsTheOldOneAndTheStoreBack(_ behaviour: SimulatedInstall.Behaviour) throws {
        let w = World(new: behaviour, newSchema: 4)
        let r = try #require(try w.run())
        #expect(r.status == .rolledBack)
        #expect(r.issues.first?.code == "self_update.first_run_failed")
        #expect(w.installed == w.old.bytes)
        #expect(w.sim.storeSchema == 3)
        #expect(r.storeRestored == (behaviour == .firstRunFails ? true : nil))
        #expect(try w.finalProblems() == [])
    }

    @Test(arguments: [3, 4])
    func aRollbackReturnsToTheOldOneAndItsStore(_ newSchema: Int) throws {
        var w = World(newSchema: newSchema)
        #expect(try w.run()?.status == .succeeded)
        let point = try #require(w.sim.readRollbackPoint())
        let plan = SelfUpdateMachine.Plan.rollback(id: "22222222-0000-0000-0000-000000000000", point: point,
                                                   stateDirectory: Self.stateDir, catalogPath: "/etc/caisson/services.toml",
                                                   storeSchemaVersion: w.sim.storeSchema)
        var m = SelfUpdateMachine(plan: plan, startedAt: w.clock.timestamp())
        let r = try SelfUpdateDriver(system: w.sim, journal: w.journal, clock: w.clock).run(&m)
        #expect(r.status == .rolledBack)
        #expect(w.installed == w.old.bytes)
        #expect(w.sim.storeSchema == 3)
        #expect(r.storeRestored == (newSchema == 4 ? true : nil))
        #expect(w.sim.readRollbackPoint() == nil)
        #expect(w.journal.records.first { $0.selfUpdateID == w.plan.id }?.status == .rolledBack)
        #expect(try w.recover().isEmpty)
        // A second rollback has nothing to go back to.
        #expect(w.sim.readRollbackPoint() == nil)
    }

    // MARK: A crash at every journal point

    /// The number of journal writes of a clean run of `world`.
    static func writes(_ make: () -> World) throws -> Int {
        let w = make()
        _ = try w.run()
        return w.journal.writeCount
    }

    static let crashScenarios: [(SimulatedInstall.Behaviour, Int)] = [
        (.good, 3), (.good, 4), (.selfTestFails, 3), (.firstRunFails, 4), (.firstRunCrashes, 3),
    ]

    @Test(arguments: crashScenarios)
    func aCrashAtEveryJournalPointIsFinishedOrUndone(_ behaviour: SimulatedInstall.Behaviour, _ schema: Int) throws {
        let total = try Self.writes { World(new: behaviour, newSchema: schema, earlierPoint: true) }
        var checked = 0
        for at in 0..<total {
            for before in [false, true] {
                for powerCut in [false, true] {
                    var w = World(new: behaviour, newSchema: schema, earlierPoint: true)
                    w.journal.crashAtWrite = at
                    w.journal.crashBeforeWrite = before
                    #expect(try w.run() == nil, "write \(at) should crash")
                    if powerCut { w.sim.powerCut() }
                    let now = w.alwaysProblems()
                    #expect(now == [], "right after a crash at write \(at) (before: \(before), power cut: \(powerCut))")
                    _ = try w.recover()
                    let after = try w.finalProblems()
                    #expect(after == [], "after recovery from a crash at write \(at) (before: \(before), power cut: \(powerCut)): \(w.sim.calls.suffix(6))")
                    checked += 1
                }
            }
        }
        #expect(checked == total * 4)
    }

    @Test func aCrashDuringRecoveryIsRecoveredToo() throws {
        let total = try Self.writes { World(new: .firstRunFails, newSchema: 4) }
        for first in stride(from: 0, to: total, by: 3) {
            // How many writes the recovery of this crash makes.
            var probe = World(new: .firstRunFails, newSchema: 4)
            probe.journal.crashAtWrite = first
            _ = try probe.run()
            let base = probe.journal.writeCount
            _ = try probe.recover()
            let recoveryWrites = probe.journal.writeCount - base
            for second in 0..<recoveryWrites {
                var w = World(new: .firstRunFails, newSchema: 4)
                w.journal.crashAtWrite = first
                _ = try w.run()
                w.journal.crashAtWrite = w.journal.writeCount + second
                w.journal.crashBeforeWrite = false
                let context = SelfUpdateRecovery.Context(rollbackPoint: w.sim.readRollbackPoint(), stateDirectory: Self.stateDir,
                                                         catalogPath: "/c", storeSchemaVersion: w.sim.storeSchema, newID: { "88888888-0000-0000-0000-000000000000" })
                _ = try? SelfUpdateRecovery.run(system: w.sim, journal: w.journal, clock: w.clock, context: context)
                w.sim.powerCut()
                #expect(w.alwaysProblems() == [], "crash \(first), then \(second) into the recovery")
                _ = try w.recover()
                let problems = try w.finalProblems()
                #expect(problems == [], "crash \(first), then \(second) into the recovery: \(w.record.map { "\($0.status) \($0.issues)" } ?? "-")")
            }
        }
    }

    // MARK: Faults at every call

    static func calls(_ make: () -> World) throws -> Int {
        let w = make()
        _ = try w.run()
        return w.sim.calls.count
    }

    @Test(arguments: [ENOSPC, EXDEV, ETXTBSY, EIO])
    func aFaultAtEveryCallLeavesAWorkingCaisson(_ code: Int32) throws {
        for scenario in [(SimulatedInstall.Behaviour.good, 3), (.good, 4), (.firstRunFails, 4)] {
            let total = try Self.calls { World(new: scenario.0, newSchema: scenario.1, earlierPoint: true) }
            for at in 0..<total {
                var w = World(new: scenario.0, newSchema: scenario.1, earlierPoint: true)
                w.sim.failCall = (at, code)
                let r = try #require(try w.run(), "no crash expected")
                let call = w.sim.calls[at]
                let problems = call.hasPrefix("write_rollback_point") ? w.alwaysProblems() : try w.finalProblems()
                #expect(problems == [], "\(scenario) fault \(code) at call \(at) (\(call)): \(r.status) \(r.issues) \(r.notes)")
                // A busy executable is retried; a fault on a check of the new executable never
                // installs it.
                if code == ETXTBSY && call.hasPrefix("run ") && scenario.0 == .good {
                    #expect(r.status == .succeeded, "ETXTBSY at \(call) is retried")
                }
                // A rollback point that could not be cleared is finished by the next command.
                let recovered = try w.recover()
                #expect(recovered.isEmpty || call.hasPrefix("write_rollback_point"), "nothing left to recover after a fault at \(call)")
                let after = try w.finalProblems()
                #expect(after == [], "after the recovery of \(scenario) fault \(code) at call \(at) (\(call))")
            }
        }
    }

    @Test func deathInsideEveryCallIsRecovered() throws {
        for scenario in [(SimulatedInstall.Behaviour.good, 4), (.firstRunFails, 4), (.selfTestHangs, 3)] {
            let total = try Self.calls { World(new: scenario.0, newSchema: scenario.1) }
            for at in 0..<total {
                for powerCut in [false, true] {
                    var w = World(new: scenario.0, newSchema: scenario.1)
                    w.sim.dieDuringCall = at
                    _ = try w.run()
                    if powerCut { w.sim.powerCut() }
                    #expect(w.alwaysProblems() == [], "\(scenario) death in call \(at) (\(w.sim.calls[at])), power cut \(powerCut)")
                    _ = try w.recover()
                    let problems = try w.finalProblems()
                    #expect(problems == [], "\(scenario) death in call \(at) (\(w.sim.calls[at])), power cut \(powerCut): \(w.record.map { "\($0.status) \($0.issues)" } ?? "-")")
                }
            }
        }
    }

    /// The faults the issue names, where they hurt most.
    static let namedFaults: [(String, Int32, SelfUpdateStatus, String?)] = [
        ("write_executable", ENOSPC, .failed, "self_update.insufficient_space"),
        ("rename /opt/caisson/bin/.caisson.new", EXDEV, .failed, "self_update.cross_device"),
        ("run /opt/caisson/bin/.caisson.new-11111111 --version", ETXTBSY, .succeeded, nil),
        ("run /opt/caisson/bin/.caisson.new-11111111 self-test", ETXTBSY, .succeeded, nil),
        ("run /opt/caisson/bin/caisson self-update", ETXTBSY, .succeeded, nil),
        ("sync_directory /opt/caisson/bin", EIO, .failed, "self_update.io_failed"),
        ("copy_store /var/lib/caisson/self-update/11111111-2222-3333-4444-555555555555/store-snapshot.db", ENOSPC, .failed, "self_update.insufficient_space"),
    ]

    @Test(arguments: namedFaults)
    func aNamedFaultEndsAsExpected(_ call: String, _ code: Int32, _ status: SelfUpdateStatus, _ issue: String?) throws {
        let probe = World(newSchema: 4)
        _ = try probe.run()
        let at = try #require(probe.sim.calls.firstIndex { $0.hasPrefix(call) }, "no call \(call)")
        let w = World(newSchema: 4)
        w.sim.failCall = (at, code)
        let r = try #require(try w.run())
        #expect(r.status == status, "\(r.issues)")
        #expect(r.issues.first?.code == issue)
        #expect(try w.finalProblems() == [])
        #expect(w.installed == (status == .succeeded ? w.new.bytes : w.old.bytes))
    }

    @Test func aFailedFsyncAfterTheSwapRollsBack() throws {
        let probe = World(newSchema: 4)
        _ = try probe.run()
        let syncs = probe.sim.calls.indices.filter { probe.sim.calls[$0] == "sync_directory /opt/caisson/bin" }
        let w = World(newSchema: 4)
        w.sim.failCall = (try #require(syncs.dropFirst().first), EIO)
        let r = try #require(try w.run())
        #expect(r.status == .rolledBack)
        #expect(r.issues.first?.code == "self_update.io_failed")
        #expect(w.installed == w.old.bytes)
        #expect(!w.sim.runs.contains { $0.arguments.first == "self-update" }, "never ran on an undurable swap")
        #expect(try w.finalProblems() == [])
    }

    @Test func theErrnoOfAFailedCallNamesTheProblem() {
        let e = { (n: Int32) in SelfUpdateMachine.issueCode(SystemCallError(errno: n, operation: "rename", path: "/x/caisson")) }
        #expect(e(ENOSPC) == "self_update.insufficient_space")
        #expect(e(EXDEV) == "self_update.cross_device")
        #expect(e(ETXTBSY) == "self_update.text_busy")
        #expect(e(EIO) == "self_update.io_failed")
        #expect(e(EACCES) == "self_update.not_writable")
    }
}
