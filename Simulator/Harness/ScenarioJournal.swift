import CaissonCore

/// The journal every process of a scenario writes to and recovers from: the in-memory journal,
/// seen the way the oracles need it.
///
/// - Reads for recovery go through the store's encoding: each in-flight attempt and its latest
///   machine snapshot are encoded and decoded with `JSONCoding` exactly as `CaissonStore` writes
///   and reads them, so a snapshot that loses state on disk loses it here too (the in-memory
///   journal alone would hand recovery the very value the dead process held).
/// - It notes, for each durable write, what the history then proves: the virtual time of every
///   audit event, and whether the intent of a change to the live service (stop or rename of the
///   old container, compose apply) was durable — from then on a recovery cannot know the
///   service is untouched.
public final class ScenarioJournal: UpdateJournal {
    public let base: InMemoryJournal
    let clock: VirtualClock
    /// Round-trip snapshots through the store's encoding on recovery (on by default).
    public var encodesLikeTheStore = true
    /// Virtual time of each event in `base.events`, by index.
    public private(set) var eventMillis: [Int64] = []
    /// The intent of a change to the live service was durable.
    public private(set) var liveIntentDurable = false
    /// A durable record says the new release was installed and left stopped (committed).
    public private(set) var leftStoppedDurable = false
    /// Snapshots that did not survive the store's encoding (each one is a violation).
    public private(set) var encodingProblems: [String] = []

    init(base: InMemoryJournal, clock: VirtualClock) {
        self.base = base
        self.clock = clock
    }

    static func isLiveChange(_ step: String) -> Bool {
        step == "stop_container" || step == "rename_container" || step == "compose_apply"
    }

    public func write(_ write: JournalWrite) throws {
        let eventsBefore = base.events.count
        do {
            try base.write(write)
        } catch let crash as SimulatedCrash {
            // A crash "after" the write (or a second signal's exit after it): it is durable.
            if !(base.crashBeforeWrite && base.crashAtWrite == crash.writeIndex) { noteDurable(write, eventsBefore) }
            throw crash
        }
        noteDurable(write, eventsBefore)
    }

    private func noteDurable(_ write: JournalWrite, _ eventsBefore: Int) {
        let now = clock.nowMillis
        while eventMillis.count < eventsBefore { eventMillis.append(now) }
        for _ in write.events { eventMillis.append(now) }
        if !leftStoppedDurable, write.attempt.issues.contains(where: { $0.code == "update.left_stopped" }) {
            leftStoppedDurable = true
        }
        if !liveIntentDurable, let e = write.entry, e.phase == .intent, Self.isLiveChange(e.step) || (e.step == "tag_image" && e.machine.touchedLive) {
            liveIntentDurable = true
        }
    }

    public func inFlightAttempts() throws -> [InFlightAttempt] {
        let list = try base.inFlightAttempts()
        guard encodesLikeTheStore else { return list }
        return list.map { f in
            // As `CaissonStore.inFlightAttemptList`: the record and the snapshot are JSON.
            let attempt: UpdateAttempt
            do {
                attempt = try JSONCoding.decode(UpdateAttempt.self, from: JSONCoding.encode(f.attempt))
            } catch {
                encodingProblems.append("the attempt record did not survive the store's encoding: \(error)")
                attempt = f.attempt
            }
            guard let m = f.machine else {
                return InFlightAttempt(attempt: attempt, machine: nil, unreadable: f.unreadable, lastStep: f.lastStep, lastStepAt: f.lastStepAt)
            }
            do {
                let machine = try JSONCoding.decode(UpdateMachine.self, from: JSONCoding.encode(m))
                return InFlightAttempt(attempt: attempt, machine: machine, unreadable: f.unreadable, lastStep: f.lastStep,
                                       lastStepAt: f.lastStepAt)
            } catch {
                encodingProblems.append("the machine snapshot did not survive the store's encoding: \(error)")
                return InFlightAttempt(attempt: attempt, machine: nil, unreadable: "\(error)", lastStep: f.lastStep, lastStepAt: f.lastStepAt)
            }
        }
    }

    public func serviceState(_ serviceName: String) throws -> ServiceState? {
        try base.serviceState(serviceName)
    }

    public func updateIDs(service serviceName: String) throws -> [String] {
        try base.updateIDs(service: serviceName)
    }

    public func reserveSpace() throws {
        try base.reserveSpace()
    }

    /// When the event at `index` of `base.events` became durable (virtual ms).
    public func millis(ofEvent index: Int) -> Int64? {
        index < eventMillis.count ? eventMillis[index] : nil
    }
}
