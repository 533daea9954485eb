import CaissonCore
#if canImport(Glibc)
import Glibc
#endif

/// The self-update swarm (issue 14): many seeded runs of `SelfUpdateWorld`, each drawing a fake
/// new executable, whether it migrates the store, an earlier rollback point, and any mix of the
/// self-update's fault kinds — a failing call (ENOSPC, EXDEV, ETXTBSY, EIO, EACCES), a crash at a
/// journal write (before or after it is durable), a death inside a call, a power cut, a crash
/// during the recovery, and a `--rollback` afterwards with its own crash. Every run checks the
/// invariants at every instant (a working executable at the install path, never an untested one)
/// and after recovery (a consistent outcome, a store the installed executable reads).
public enum SelfUpdateSwarm {
    public struct Summary: Sendable, Codable, Equatable {
        public var runs: Int
        public var seed: UInt64
        public var violations: Int
        public var statuses: [String: Int]
        public var crashes: Int
        public var faults: Int
        public var rollbacks: Int
        public var traceDigest: String
        public var firstViolation: Violation?

        enum CodingKeys: String, CodingKey {
            case runs, seed, violations, statuses, crashes, faults, rollbacks
            case traceDigest = "trace_digest"
            case firstViolation = "first_violation"
        }
    }

    public struct Violation: Sendable, Codable, Equatable {
        public var run: Int
        public var seed: UInt64
        public var scenario: String
        public var problems: [String]
    }

    static let behaviours: [SimulatedInstall.Behaviour] = SimulatedInstall.Behaviour.allCases
    static let errnos: [Int32] = [ENOSPC, EXDEV, ETXTBSY, EIO, EACCES]

    /// One run: its scenario text, its problems, and what it did (for the summary).
    public struct Run: Sendable {
        public var scenario: String
        public var problems: [String]
        public var status: String
        public var crashed: Bool
        public var faulted: Bool
        public var rolledBack: Bool
        public var calls: [String]
    }

    public static func runOne(runSeed: UInt64) -> Run {
        var rng = SplitMix64(seed: runSeed)
        let behaviour = behaviours[rng.below(behaviours.count)]
        let newSchema = rng.chance(0.5) ? 4 : 3
        let earlier = rng.chance(0.3)
        var w = SelfUpdateWorld(new: behaviour, newSchema: newSchema, earlierPoint: earlier)
        var scenario = "\(behaviour.rawValue) schema \(newSchema)\(earlier ? " earlier-point" : "")"
        var problems: [String] = []
        var crashed = false, faulted = false, rolledBack = false
        // At most 60 calls / 40 writes in a self-update: draw a point in that range.
        if rng.chance(0.4) {
            let at = rng.below(60), e = errnos[rng.below(errnos.count)]
            w.sim.failCall = (at, e)
            scenario += ", errno \(e) at call \(at)"
            faulted = true
        }
        switch rng.below(3) {
        case 0:
            let at = rng.below(40), before = rng.chance(0.5)
            w.journal.crashAtWrite = at
            w.journal.crashBeforeWrite = before
            scenario += ", crash at write \(at)\(before ? " (before)" : "")"
        case 1:
            let at = rng.below(60)
            w.sim.dieDuringCall = at
            scenario += ", death in call \(at)"
        default: break
        }
        let powerCut = rng.chance(0.3)
        do {
            if try w.run() == nil { crashed = true }
        } catch {
            problems.append("the run threw \(error)")
        }
        if crashed && powerCut {
            w.sim.powerCut()
            scenario += ", power cut"
        }
        problems += w.alwaysProblems().map { "after the run: " + $0 }
        // A crash during the recovery too, sometimes.
        if crashed && rng.chance(0.3) {
            let second = rng.below(20)
            scenario += ", crash at recovery write \(second)"
            w.journal.crashAtWrite = w.journal.writeCount + second
            w.journal.crashBeforeWrite = false
            w.sim.failCall = nil
            w.sim.dieDuringCall = nil
            let context = SelfUpdateRecovery.Context(rollbackPoint: w.sim.readRollbackPoint(), stateDirectory: SelfUpdateWorld.stateDir,
                                                     catalogPath: "/c", storeSchemaVersion: w.sim.storeSchema,
                                                     newID: { "88888888-0000-0000-0000-000000000000" })
            _ = try? SelfUpdateRecovery.run(system: w.sim, journal: w.journal, clock: w.clock, context: context)
            if rng.chance(0.5) { w.sim.powerCut() }
            problems += w.alwaysProblems().map { "after the crashed recovery: " + $0 }
        }
        do {
            _ = try w.recover()
            problems += try w.finalProblems().map { "after recovery: " + $0 }
        } catch {
            problems.append("recovery threw \(error)")
        }
        // Then, sometimes, `self-update --rollback` with its own crash.
        if w.record?.status == .succeeded, let point = w.sim.readRollbackPoint(), rng.chance(0.5) {
            rolledBack = true
            let plan = SelfUpdateMachine.Plan.rollback(id: "22222222-0000-0000-0000-000000000000", point: point,
                                                       stateDirectory: SelfUpdateWorld.stateDir, catalogPath: "/c",
                                                       storeSchemaVersion: w.sim.storeSchema)
            var crashAt: Int?
            if rng.chance(0.5) {
                crashAt = 1 + rng.below(25)
                w.journal.crashAtWrite = w.journal.writeCount + crashAt!
                w.journal.crashBeforeWrite = rng.chance(0.5)
                scenario += ", rollback crashed at write \(crashAt!)"
            } else {
                scenario += ", rollback"
            }
            var m = SelfUpdateMachine(plan: plan, startedAt: w.clock.timestamp())
            do {
                _ = try SelfUpdateDriver(system: w.sim, journal: w.journal, clock: w.clock).run(&m)
            } catch is SimulatedCrash {
                if rng.chance(0.5) { w.sim.powerCut() }
            } catch {
                problems.append("the rollback threw \(error)")
            }
            if w.installed != w.old.bytes && w.installed != w.new.bytes {
                problems.append("during the rollback the install path holds another file")
            }
            do {
                _ = try w.recover()
            } catch {
                problems.append("recovery after the rollback threw \(error)")
            }
            if w.installed != w.old.bytes { problems.append("after the rollback the new executable is still installed") }
            if w.sim.storeSchema > w.old.schema { problems.append("after the rollback the store (schema \(w.sim.storeSchema)) is too new") }
            if w.sim.readRollbackPoint() != nil { problems.append("after the rollback a rollback point is left") }
            if w.record?.status != .rolledBack { problems.append("after the rollback the update is \(w.record?.status.rawValue ?? "gone")") }
        }
        return Run(scenario: scenario, problems: problems, status: w.record?.status.rawValue ?? "none", crashed: crashed,
                   faulted: faulted, rolledBack: rolledBack, calls: w.sim.calls)
    }

    /// The seed of run `i`.
    public static func runSeed(_ seed: UInt64, _ i: Int) -> UInt64 {
        var r = SplitMix64(seed: seed &+ UInt64(i) &* 0xD1B5_4A32_D192_ED03)
        return r.next()
    }

    public static func run(runs: Int, seed: UInt64) -> Summary {
        var s = Summary(runs: runs, seed: seed, violations: 0, statuses: [:], crashes: 0, faults: 0, rollbacks: 0,
                        traceDigest: "", firstViolation: nil)
        var trace: [UInt8] = []
        for i in 0..<runs {
            let rs = runSeed(seed, i)
            let r = runOne(runSeed: rs)
            s.statuses[r.status, default: 0] += 1
            if r.crashed { s.crashes += 1 }
            if r.faulted { s.faults += 1 }
            if r.rolledBack { s.rollbacks += 1 }
            if !r.problems.isEmpty {
                s.violations += 1
                if s.firstViolation == nil { s.firstViolation = Violation(run: i, seed: rs, scenario: r.scenario, problems: r.problems) }
            }
            trace += Array("\(i) \(r.scenario) \(r.status) \(r.calls.count)\n".utf8)
        }
        s.traceDigest = SHA256.hash(trace).hex
        return s
    }
}
