import CaissonCore

/// Ctrl-C or SIGTERM to the updater while the update machine runs.
public struct SignalPlan: Sendable, Codable, Equatable {
    /// The first signal arrives after the journal write with this index (0-based).
    public var afterWrite: Int
    /// A second signal this long (virtual ms) after the first: within `forceWindowMillis` the
    /// process exits at once and leaves the attempt to recovery; later, it is ignored.
    public var secondAfterMillis: Int64?

    /// The CLI's window for "press Ctrl-C again to quit now".
    public static let forceWindowMillis: Int64 = 3_000

    public init(afterWrite: Int, secondAfterMillis: Int64? = nil) {
        self.afterWrite = afterWrite
        self.secondAfterMillis = secondAfterMillis
    }
}

/// The state directory's disk fills up (or the state database is deleted) during the update.
public struct StorageFault: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable, Equatable {
        /// `store.disk_full`; the store's reserve buys `reserveWrites` more writes.
        case diskFull
        /// `store.gone`: the database was deleted or emptied; nothing more can be written.
        case gone
    }
    public var kind: Kind
    /// Writes from this index (0-based) on fail.
    public var fromWrite: Int
    /// Writes the released reserve still lets through (0: the reserve was eaten by others).
    public var reserveWrites: Int
    /// The disk is already too full when the update starts: the reserve cannot be made.
    public var reserveFails: Bool
    /// The disk is still full when the next process recovers (a power cut or `kill -9` on a full
    /// disk, then the boot-time recovery unit): only what is left of the reserve can be written.
    /// Room comes back only after that recovery.
    public var stillFullAtRecovery: Bool

    public init(kind: Kind = .diskFull, fromWrite: Int, reserveWrites: Int = 0, reserveFails: Bool = false,
                stillFullAtRecovery: Bool = false) {
        self.kind = kind
        self.fromWrite = fromWrite
        self.reserveWrites = reserveWrites
        self.reserveFails = reserveFails
        self.stillFullAtRecovery = stillFullAtRecovery
    }

    var error: CaissonError {
        switch kind {
        case .diskFull: return CaissonError("store.disk_full", "the disk holding the state database is full (simulated)")
        case .gone: return CaissonError("store.gone", "the state database was deleted while Caisson ran (simulated)")
        }
    }
}

/// What the disruptions of a run did, for the invariants.
struct DisruptionState {
    var signal: SignalPlan?
    var storage: StorageFault?
    /// Virtual time of the first signal, once it arrived.
    var firstSignalAt: Int64?
    /// The process was killed by the second signal.
    var killedBySecondSignal = false
    var cancelEffect: UpdateDriver.CancelEffect?
    /// When the stop request reached the machine: host call count, virtual time, and the calls
    /// changing the live service made by then (the harness's own observation of the host).
    var cancelCall: Int?
    var cancelMillis: Int64?
    var cancelLiveChanges = 0
    /// This update's audit events durable when the stop request reached the machine.
    var cancelDurableEvents = 0
    /// Live-service changes before the update began (the world's own).
    var liveChangesAtStart = 0
    /// Host calls that change the live service, made by the updater's own process.
    var liveChanges = 0
    /// Writes the storage fault refused.
    var failedWrites = 0
    /// The update's attempt was still unfinished in the journal when its process ended.
    var inFlightAtExit = false
    /// What the recovery on a still-full disk did (`StorageFault.stillFullAtRecovery`).
    var fullDiskRecovery: FullDiskRecovery?
}

/// The next process's recovery while the state disk is still full.
struct FullDiskRecovery {
    /// The error it failed with, when it could not run at all.
    var failure: CaissonError?
    var report: Recovery.Report?
    /// Host invariants right after it (before room comes back and the record is finished).
    var hostProblems: [String] = []
    /// Journal writes it could not make.
    var failedWrites = 0
}

extension UpdateScenario {
    func armDisruptions(secondProcess: SecondProcessPlan?, signal: SignalPlan?, storage: StorageFault?) {
        disruption = DisruptionState(signal: signal, storage: storage)
        if let storage {
            journal.failFromWrite = storage.fromWrite
            journal.reserveWrites = storage.reserveWrites
            journal.reserveFails = storage.reserveFails
            journal.storageFailure = storage.error
        }
        let sp = secondProcess.flatMap { $0.afterCrash ? nil : $0 }
        guard sp != nil || signal != nil else { return }
        journal.afterWrite = { [unowned self] index in
            if let sp, index == sp.afterWrite {
                self.secondProcessSawInFlight = !(try self.journal.inFlightAttempts()).isEmpty
                self.secondProcessReport = self.runSecondProcess(sp.command)
            }
            guard let signal else { return }
            if index == signal.afterWrite, self.disruption.firstSignalAt == nil {
                self.disruption.firstSignalAt = self.host.clock.nowMillis
            }
            // A second signal within the window: the process exits here, leaving it to recovery.
            if let first = self.disruption.firstSignalAt, let d = signal.secondAfterMillis, d < SignalPlan.forceWindowMillis,
               self.host.clock.nowMillis >= first + d {
                self.disruption.killedBySecondSignal = true
                throw SimulatedCrash(writeIndex: index)
            }
        }
    }

    func armCancel(_ driver: UpdateDriver) {
        driver.isCancelRequested = { [unowned self] in self.disruption.firstSignalAt != nil }
        disruption.liveChangesAtStart = liveServiceChanges
        driver.onCancel = { [unowned self] effect in
            self.disruption.cancelEffect = effect
            self.disruption.cancelCall = self.host.callCount
            self.disruption.cancelMillis = self.host.clock.nowMillis
            self.disruption.cancelLiveChanges = self.liveServiceChanges - self.disruption.liveChangesAtStart
            self.disruption.cancelDurableEvents = self.journal.events.filter { $0.updateID == self.plan.updateID }.count
        }
    }

    /// The updater's process has ended (returned, refused or died): what it left.
    func noteProcessExit() {
        guard disruption.signal != nil || disruption.storage != nil else { return }
        disruption.liveChanges = liveServiceChanges
        disruption.failedWrites = journal.failedWrites
        // With a full disk the store cannot record the end: only a process that stopped
        // mid-update (rather than finishing or restoring) is wrong.
        disruption.inFlightAtExit = crashed || processes.first?.error != nil || inProcessAttempt.map { !$0.status.isTerminal } ?? false
    }

    /// A power cut (or `kill -9`) left an attempt unfinished on a disk that is still full: the
    /// next process (the boot-time unit, `caisson recover`) must still bring the service back to
    /// a known release, going on without the journal, and say the record is incomplete.
    func recoverOnFullDisk(faultsDuringRecovery: Bool) {
        guard let storage = disruption.storage, storage.stillFullAtRecovery,
              let inFlight = try? journal.inFlightAttempts(), !inFlight.isEmpty else { return }
        journal.crashAtWrite = nil
        // Every write fails but what is left of the reserve.
        journal.failFromWrite = journal.writeCount
        journal.reserveFails = false
        if !faultsDuringRecovery { host.faultPlan = .none }
        let failedBefore = journal.failedWrites
        let next = holder(Self.recoveryPID, "recover")
        var r = FullDiskRecovery()
        do {
            r.report = try RecoveryGate.run(stateLocks: stateLocks, serviceLocks: hostLocks, holder: next, journal: journal,
                                            host: { host }, clock: { host.clock }).report
        } catch {
            r.failure = error as? CaissonError ?? CaissonError("error", "\(error)")
        }
        r.failedWrites = journal.failedWrites - failedBefore
        if let a = r.report?.recovered.first(where: { $0.updateID == plan.updateID }) {
            r.hostProblems = hostViolations(for: a)
        } else if r.failure == nil, (try? journal.inFlightAttempts())?.contains(where: { $0.attempt.updateID == plan.updateID }) == true {
            r.hostProblems = ["recovery on a still-full disk left the update unfinished without saying what it did"]
        }
        disruption.fullDiskRecovery = r
        // Room again (someone ran `package cleanup`): the next command finishes the record.
        journal.failFromWrite = nil
    }

    func fullDiskRecoveryViolations() -> [String] {
        guard let r = disruption.fullDiskRecovery else { return [] }
        var out: [String] = []
        if let f = r.failure {
            out.append("recovery on a still-full state disk could not run (\(f.code)): the interrupted update stays as it was until space is freed")
        }
        out += r.hostProblems.map { "after recovery on a still-full state disk: \($0)" }
        if r.failedWrites > 0, let report = r.report {
            if !report.problems.contains(where: { $0.code.hasPrefix("store.") }) {
                out.append("recovery on a still-full state disk could not write its record but did not say so")
            }
            for a in report.recovered where !a.issues.contains(where: { $0.code.hasPrefix("store.") }) {
                out.append("attempt \(a.updateID) recovered on a still-full disk does not say its record is incomplete")
            }
        }
        return out
    }

    /// Calls that change the live service (stop, rename, compose apply) so far.
    var liveServiceChanges: Int {
        host.callCount(of: .stopContainer) + host.callCount(of: .renameContainer) + host.callCount(of: .composeApply)
            // Compose: the retag of the file's reference (every tag after the update's pin) is one too.
            + (config.mode == .compose ? max(0, host.callCount(of: .tagImage) - 1) : 0)
    }

    func signalViolations() -> [String] {
        guard disruption.signal != nil, disruption.firstSignalAt != nil, !disruption.killedBySecondSignal else { return [] }
        var out: [String] = []
        if disruption.inFlightAtExit && !crashedByPlan {
            out.append("after one signal the updater stopped mid-update, leaving the service to a later recovery")
        }
        guard let a = inProcessAttempt else {
            if !crashed && refusal == nil { out.append("signalled update returned no attempt") }
            return out
        }
        switch disruption.cancelEffect {
        case nil:
            // Arrived after the last action: the attempt had ended.
            break
        case .stoppedUntouched?:
            // (After a journal failure the attempt is re-derived from the last durable snapshot,
            // which may predate the stop: then it says why it stopped instead.)
            if a.status != .failed || !a.issues.contains(where: { $0.code == "update.cancelled" || $0.code.hasPrefix("store.") }) {
                out.append("a stop before any change ended \(a.status.rawValue), not failed with update.cancelled")
            }
        case .restoring?:
            if a.status == .succeeded { out.append("Ctrl-C during the swap or health check committed the new release") }
        case .finishing?:
            break
        }
        return out
    }

    func storageViolations() -> [String] {
        guard let storage = disruption.storage else { return [] }
        var out: [String] = []
        if storage.reserveFails {
            if journal.writeCount > 0 && journal.attempts.contains(where: { $0.updateID == plan.updateID }) {
                out.append("the update went ahead although the journal's reserve could not be made")
            }
            // (An earlier check may refuse first: a host that cannot be listed, another's marks.)
            if refusal == nil { out.append("a disk too full for the journal was not refused") }
            return out
        }
        guard disruption.failedWrites > 0 else { return out }
        if disruption.inFlightAtExit && !crashedByPlan {
            out.append("a journal failure (\(storage.error.code)) stopped the updater mid-update instead of restoring or finishing")
        }
        guard let a = inProcessAttempt else { return out }
        if !a.issues.contains(where: { $0.code == storage.error.code }) {
            out.append("the journal failed (\(storage.error.code)) but the attempt does not say so")
        }
        if disruption.liveChanges > 0, a.issues.contains(where: { $0.message.contains("nothing was changed") }) {
            out.append("the service was touched, yet the attempt says nothing was changed")
        }
        if !a.status.isTerminal { out.append("the updater's own outcome is \(a.status.rawValue)") }
        return out
    }
}

/// The swarm's draw of the issue-10 disruptions, each independently.
public struct Disruptions: Sendable, Equatable {
    public var secondProcess: SecondProcessPlan?
    public var signal: SignalPlan?
    public var storage: StorageFault?

    public static func draw(_ rng: inout SplitMix64) -> Disruptions {
        var d = Disruptions()
        if rng.chance(0.15) {
            let commands = SecondCommand.allCases
            d.secondProcess = SecondProcessPlan(afterWrite: rng.below(30), command: commands[rng.below(commands.count)],
                                                afterCrash: rng.chance(0.25))
        }
        if rng.chance(0.15) {
            let seconds: [Int64?] = [nil, nil, 500, 2_500, 5_000]
            d.signal = SignalPlan(afterWrite: rng.below(30), secondAfterMillis: seconds[rng.below(seconds.count)])
        }
        if rng.chance(0.1) {
            let reserves = [0, 1, 3, 1_000]
            let kind: StorageFault.Kind = rng.chance(0.7) ? .diskFull : .gone
            d.storage = StorageFault(kind: kind, fromWrite: rng.below(30),
                                     reserveWrites: reserves[rng.below(reserves.count)], reserveFails: rng.chance(0.1),
                                     stillFullAtRecovery: kind == .diskFull && rng.chance(0.5))
        }
        return d
    }
}

extension UpdateScenario {
    /// A signal reached the updater during this run.
    public var signalled: Bool { disruption.firstSignalAt != nil }
    /// The storage fault refused at least one write (or the reserve).
    public var storageFaulted: Bool { disruption.failedWrites > 0 || (disruption.storage?.reserveFails ?? false) }
    /// A recovery ran while the state disk was still full: what it reported, or why it could not run.
    public var fullDiskRecoveryOutcome: Result<Recovery.Report, CaissonError>? {
        guard let r = disruption.fullDiskRecovery else { return nil }
        if let f = r.failure { return .failure(f) }
        return r.report.map { .success($0) }
    }
}
