import CaissonCore
import CaissonSimulator
import Testing

/// The swarm's speed work shares storage between the machine and its journal snapshots and
/// renders text lazily or through fast paths: these pin down that nothing observable changed.
@Suite("Engine: snapshots and renderings")
struct SnapshotAndRenderingTests {
    /// The renderings before the fast paths, as references.
    static func referencePin(_ service: String, _ imageID: String) -> String {
        let repo = service.lowercased().map { c -> Character in
            (c.isLetter && c.isASCII) || c.isNumber || c == "-" || c == "_" || c == "." ? c : "-"
        }
        let hex = imageID.hasPrefix("sha256:") ? String(imageID.dropFirst(7)) : imageID
        return "caisson-pin/\(String(repo)):\(String(hex.prefix(12)))"
    }

    static let id = "sha256:" + String(repeating: "0123456789abcdef", count: 4)

    @Test(arguments: ["app", "My_App.v2", "web server", "Ünïcode-svc", "tab\tname", "cr\r\nlf", "٣digits", ""])
    func pinReferenceMatchesTheCharacterRendering(_ service: String) {
        for imageID in [Self.id, "0123", "sha256:", "é" + String(repeating: "a", count: 20)] {
            #expect(UpdateMachine.pinReference(service: service, imageID: imageID) == Self.referencePin(service, imageID))
        }
    }

    @Test func commandDetailShortensIDsAsBefore() {
        let c = UpdateMachine.Command.stopContainer(String(repeating: "ab", count: 32), graceSecs: 10)
        #expect(c.detail == "stop container abababababab (grace 10s)")
        let t = UpdateMachine.Command.tagImage(id: Self.id, reference: "caisson-pin/app:x")
        #expect(t.detail == "tag 0123456789ab as caisson-pin/app:x")
        #expect(UpdateMachine.Command.removeContainer("short").detail == "remove container short")
        #expect(UpdateMachine.Command.startContainer("e\u{301}" + String(repeating: "1", count: 12)).detail
                == "start container e\u{301}" + String(repeating: "1", count: 11))
    }

    @Test func rfc3339CoversWideYearsAndNanoseconds() {
        #expect(VirtualClock.rfc3339(epochMillis: 0, fractionDigits: 9, extraNanos: 42) == "1970-01-01T00:00:00.000000042Z")
        #expect(VirtualClock.rfc3339(epochMillis: 1_767_225_605_250, fractionDigits: 3) == "2026-01-01T00:00:05.250Z")
        // Year 10000 and year -1 (proleptic): widths beyond four digits, and a sign.
        #expect(VirtualClock.rfc3339(epochMillis: 253_402_300_800_000, fractionDigits: 0) == "10000-01-01T00:00:00Z")
        #expect(VirtualClock.rfc3339(epochMillis: -62_198_755_200_000, fractionDigits: 0) == "-0001-01-01T00:00:00Z")
    }

    /// Every journal entry keeps the machine as it was when written, although the machine and
    /// its snapshots share storage until the machine changes.
    @Test func journalSnapshotsAreNotChangedByLaterSteps() throws {
        let s = UpdateScenario(UpdateScenario.Config(mode: .docker, healthKind: .containerHealth, newBehaviour: "unhealthy"))
        s.journal.keepEntries = true
        let a = try #require(s.run())
        #expect(a.status == .rolledBack)
        let statuses = s.journal.entries.map { $0.entry.machine.attempt.status }
        #expect(statuses.first == .applying)
        #expect(statuses.last == .rolledBack)
        #expect(statuses.contains(.healthChecking))
        // Intent entries describe the command they precede, rendered on demand.
        let intents = s.journal.entries.filter { $0.entry.phase == .intent }.map(\.entry.detail)
        #expect(intents.contains { $0.hasPrefix("create container app-caisson-new-") })
        #expect(s.journal.entries.filter { $0.entry.phase == .outcome }.allSatisfy { !$0.entry.detail.isEmpty })
        // A copied entry is independent of the original.
        var copy = s.journal.entries[0].entry
        copy.detail = "changed"
        #expect(s.journal.entries[0].entry.detail != "changed")
    }

    /// A run from a provisioned world behaves exactly like one that provisions its own.
    @Test func runsFromASharedWorldMatchFreshOnes() {
        let config = UpdateScenario.Config(mode: .compose, healthKind: .running, newBehaviour: "crash")
        let world = UpdateScenario.World(config)
        let fresh = UpdateScenario(config, seed: 9, recordTrace: true)
        let shared = UpdateScenario(world, seed: 9, recordTrace: true)
        let again = UpdateScenario(world, seed: 9, recordTrace: true)
        for s in [fresh, shared, again] { s.run(faults: FaultPlan(rules: [.on(.composeApply, nth: 0, .failAfterApplying)])) }
        #expect(fresh.host.trace == shared.host.trace)
        #expect(shared.host.trace == again.host.trace)
        #expect(fresh.host.traceDigest == again.host.traceDigest)
        #expect(fresh.attempt?.status == again.attempt?.status)
        #expect(again.violations() == [])
    }
}
