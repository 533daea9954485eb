import CaissonCore
import CaissonSimulator
import Testing

/// Exact replays of swarm violations (issue 10): each run is fully determined by its run seed,
/// so the run that broke an invariant stays a named test once it is fixed.
@Suite struct SwarmReplayTests {
    /// Seed 5, run 3795: Docker mode, an http probe, a new release that crashes, a network
    /// dependent, and a restore that meets 8 daemon crashes and a host error in most of its
    /// rounds. The dependent's start fails whenever a crash has stopped the restored service
    /// ("cannot join network of a non running container"), and each crash that stops the
    /// service costs a round to start it again: the restore spends its 20 rounds and ends
    /// `rollback_failed` on the last round's error (`rollback.inspect_failed`). The oracle only
    /// counted the injected errors against the round budget; each daemon fault in the restore
    /// may cost a round too (up to two with a dependent), so `rollback_failed` is the engine's
    /// bound, not a wrong decision.
    @Test func seed5Run3795DaemonCrashesSpendTheRestoreRounds() throws {
        let runSeed = Swarm.runSeed(5, 3795)
        #expect(runSeed == 17_789_223_100_012_983_993)
        let (s, problems) = Swarm.runOne(runSeed: runSeed, recordTrace: true)
        #expect(s.config.mode == .docker && s.config.dependent && s.config.healthKind == .http)
        let a = try #require(s.attempt)
        #expect(a.status == .rollbackFailed)
        #expect(a.issues.last?.code == "rollback.inspect_failed", "\(a.issues)")
        #expect(problems == [], "\(problems)")
        // The known-good release runs in the end (the restore started it again each time).
        #expect(s.host.container("app")?.status == .running)
    }
}
