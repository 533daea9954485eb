import CaissonCore

/// One simulated self-update world (issue 14): an installed Caisson 0.2.0 (schema 3), a package
/// of 0.3.0 behaving as asked, the machine's plan, an in-memory journal, and the invariants every
/// instant and every outcome must satisfy. Used by the machine's tests and by the self-update swarm.
public final class SelfUpdateCounterClock: SelfUpdateClock {
    public init() {}
    var n = 0
    public func timestamp() -> String {
        n += 1
        return "2026-03-16T18:\(String(format: "%02d", (n / 60) % 60)):\(String(format: "%02d", n % 60))Z"
    }
}

public struct SelfUpdateWorld {
    public static let installPath = "/opt/caisson/bin/caisson"
    public static let stateDir = "/var/lib/caisson"
    public static let packagePath = "/media/usb/caisson-0.3.0.edgepkg"
    public static let oldSchema = 3

    public let sim: SimulatedInstall
    public let journal: InMemorySelfUpdateJournal
    public let clock = SelfUpdateCounterClock()
    public let old: SimulatedInstall.Binary
    public let new: SimulatedInstall.Binary
    public let plan: SelfUpdateMachine.Plan
    public var ids = 0

    public init(new behaviour: SimulatedInstall.Behaviour = .good, newSchema: Int = 3, freeBytes: Int64 = 1 << 30,
         earlierPoint: Bool = false) {
        journal = InMemorySelfUpdateJournal()
        sim = SimulatedInstall(stateDirectory: SelfUpdateWorld.stateDir, freeBytes: freeBytes,
                               storeSchema: SelfUpdateWorld.oldSchema, journal: journal)
        old = SimulatedInstall.Binary(version: "0.2.0", schema: SelfUpdateWorld.oldSchema)
        new = SimulatedInstall.Binary(version: "0.3.0", behaviour: behaviour, schema: newSchema)
        sim.install(SelfUpdateWorld.installPath, old.bytes)
        sim.package[SelfUpdateWorld.packagePath] = new.bytes
        var p = SelfUpdateMachine.Plan.update(
            id: "11111111-2222-3333-4444-555555555555", installPath: SelfUpdateWorld.installPath,
            source: SelfUpdateSource(packagePath: SelfUpdateWorld.packagePath, offset: 1024,
                                     size: Int64(new.bytes.count), sha256: new.sha256),
            fromVersion: "0.2.0", fromSHA256: old.sha256, toVersion: "0.3.0",
            stateDirectory: SelfUpdateWorld.stateDir, catalogPath: "/etc/caisson/services.toml",
            storeSchemaVersion: SelfUpdateWorld.oldSchema)
        p.spaceReserveBytes = 1000
        if earlierPoint {
            // An earlier self-update (0.1.0 -> 0.2.0) left its rollback point and snapshot.
            let older = SimulatedInstall.Binary(version: "0.1.0", schema: 2)
            sim.install(SelfUpdateWorld.installPath + ".previous", older.bytes)
            let earlier = SelfUpdateRollbackPoint(
                selfUpdateID: "00000000-0000-0000-0000-000000000000", installPath: SelfUpdateWorld.installPath,
                previousPath: SelfUpdateWorld.installPath + ".previous",
                previousTempPath: "/opt/caisson/bin/.caisson.previous-00000000", previousSHA256: older.sha256,
                previousVersion: "0.1.0", newSHA256: old.sha256, newVersion: "0.2.0",
                snapshotPath: SelfUpdateWorld.stateDir + "/self-update/00000000-0000-0000-0000-000000000000/store-snapshot.db",
                snapshotSchemaVersion: 2, workDirectory: SelfUpdateWorld.stateDir + "/self-update/00000000-0000-0000-0000-000000000000",
                createdAt: "2026-03-01T00:00:00Z")
            try? sim.writeRollbackPoint(earlier)
            sim.install(earlier.snapshotPath, Array("old snapshot".utf8))
            p.previousRollbackPoint = earlier
        }
        plan = p
    }

    /// A run of the update; nil when the (simulated) process died.
    public func run() throws -> SelfUpdateRecord? {
        var machine = SelfUpdateMachine(plan: plan, startedAt: clock.timestamp())
        do {
            return try SelfUpdateDriver(system: sim, journal: journal, clock: clock).run(&machine)
        } catch is SimulatedCrash {
            return nil
        }
    }

    /// What the next command does first (either executable: the recovery is the same code).
    public mutating func recover() throws -> [SelfUpdateRecord] {
        journal.crashAtWrite = nil
        sim.failCall = nil
        sim.dieDuringCall = nil
        var counter = ids
        defer { ids = counter }
        let context = SelfUpdateRecovery.Context(
            rollbackPoint: sim.readRollbackPoint(), stateDirectory: SelfUpdateWorld.stateDir,
            catalogPath: "/etc/caisson/services.toml", storeSchemaVersion: sim.storeSchema,
            newID: { counter += 1; return "99999999-0000-0000-0000-\(String(format: "%012d", counter))" })
        return try SelfUpdateRecovery.run(system: sim, journal: journal, clock: clock, context: context)
    }

    public var record: SelfUpdateRecord? { journal.records.first { $0.selfUpdateID == plan.id } }
    public var installed: [UInt8]? { sim.contents(SelfUpdateWorld.installPath) }

    /// What must hold at every instant, even right after a power cut.
    public func alwaysProblems() -> [String] {
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
    public func finalProblems() throws -> [String] {
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

    public var installPath: String { SelfUpdateWorld.installPath }
}

