import CaissonCore
import CaissonSimulator
import Testing

/// Shared fixtures of the simulator tests.
enum SimFixture {
    static let v1 = SimulatedHost.fakeImageID("app-v1")
    static let v2 = SimulatedHost.fakeImageID("app-v2")
    static let v3 = SimulatedHost.fakeImageID("app-v3")

    static func config(health: String? = nil, healthcheck: Bool = true, stop: String? = nil,
                       extra: [String: String] = [:]) -> ImageConfig {
        var labels = extra
        if let health { labels[SimBehaviour.labelKey] = health }
        if let stop { labels[SimStopMode.labelKey] = stop }
        return ImageConfig(labels: labels, hasHealthcheck: healthcheck)
    }

    static func payload(_ reference: String, _ id: String, length: Int64 = 1000,
                        config: ImageConfig = ImageConfig()) -> ImagePayload {
        ImagePayload(path: "/nonexistent/pkg.edgepkg", offset: 512, length: length, reference: reference,
                     expectedImageID: id, config: config)
    }

    /// A host with `app:1` (v1) running as container `app`.
    static func hostWithApp(health: String? = nil, healthcheck: Bool = true, stop: String? = nil,
                            policy: SimRestartPolicy = .no, seed: UInt64 = 7) throws -> SimulatedHost {
        let host = SimulatedHost(seed: seed)
        try host.addImage(id: v1, tags: ["app:1"], config: config(health: health, healthcheck: healthcheck, stop: stop))
        try host.runContainer(name: "app", imageReference: "app:1", restartPolicy: policy, env: ["MODE=prod"],
                              ports: ["8080:80"])
        return host
    }
}

/// The error a host call threw, if any (anything but a `HostError` fails the test).
func simError<T>(_ body: () throws -> T) -> HostError? {
    do {
        _ = try body()
        return nil
    } catch let error as HostError {
        return error
    } catch {
        Testing.Issue.record("unexpected error type: \(error)")
        return nil
    }
}

@Suite("Simulator: PRNG, ids, clock")
struct SimulatorCoreTests {
    @Test func splitMix64MatchesReferenceOutputs() {
        var rng = SplitMix64(seed: 0)
        #expect(rng.next() == 0xE220_A839_7B1D_CDAF)
        #expect(rng.next() == 0x6E78_9E6A_A1B9_65F4)
        #expect(rng.next() == 0x06C4_5D18_8009_454F)
    }

    @Test func belowStaysInRangeAndCoversIt() {
        var rng = SplitMix64(seed: 42)
        var seen = [Int](repeating: 0, count: 7)
        for _ in 0..<7000 {
            let v = rng.below(7)
            #expect(v >= 0 && v < 7)
            seen[v] += 1
        }
        #expect(seen.allSatisfy { $0 > 800 && $0 < 1200 })
        #expect(rng.below(0) == 0 && rng.below(1) == 0)
    }

    @Test func chanceExtremesAndRate() {
        var rng = SplitMix64(seed: 9)
        #expect((0..<1000).allSatisfy { _ in !rng.chance(0) })
        #expect((0..<1000).allSatisfy { _ in rng.chance(1) })
        let hits = (0..<10_000).filter { _ in rng.chance(0.25) }.count
        #expect(hits > 2300 && hits < 2700)
    }

    @Test func seededIDsAreUUIDShapedAndReproducible() {
        let a = SeededIDGenerator(seed: 5)
        let b = SeededIDGenerator(seed: 5)
        let c = SeededIDGenerator(seed: 6)
        let ids = (0..<50).map { _ in a.next() }
        #expect(ids == (0..<50).map { _ in b.next() })
        #expect(ids.first != c.next())
        #expect(Set(ids).count == 50)
        for id in ids {
            let parts = id.split(separator: "-", omittingEmptySubsequences: false)
            #expect(parts.map(\.count) == [8, 4, 4, 4, 12])
            #expect(id.allSatisfy { "0123456789abcdef-".contains($0) })
            #expect(parts[2].first == "4")
            #expect("89ab".contains(parts[3].first ?? "x"))
        }
    }

    @Test func clockRendersOriginAndAdvances() {
        let clock = VirtualClock()
        #expect(clock.nowMillis == 0)
        #expect(clock.timestamp() == "2026-01-01T00:00:00Z")
        clock.sleep(millis: 61_500)
        #expect(clock.nowMillis == 61_500)
        #expect(clock.timestamp() == "2026-01-01T00:01:01Z")
        #expect(clock.preciseTimestamp() == "2026-01-01T00:01:01.500Z")
        clock.sleep(millis: -5)
        #expect(clock.nowMillis == 61_500)
        clock.sleep(millis: Int64.max)
        #expect(clock.nowMillis == Int64.max)
    }

    @Test func clockCrossesMonthsYearsAndLeapDays() {
        #expect(VirtualClock(nowMillis: 68_000_000_000).timestamp() == "2028-02-27T00:53:20Z")
        let day: Int64 = 86_400_000
        // 2028 is a leap year: 2028-02-29 exists; 2026-02 has 28 days.
        let feb29 = VirtualClock.daysFromCivil(year: 2028, month: 2, day: 29) - VirtualClock.daysFromCivil(year: 2026, month: 1, day: 1)
        #expect(VirtualClock(nowMillis: feb29 * day).timestamp() == "2028-02-29T00:00:00Z")
        #expect(VirtualClock(nowMillis: (feb29 + 1) * day).timestamp() == "2028-03-01T00:00:00Z")
        #expect(VirtualClock(nowMillis: 58 * day).timestamp() == "2026-02-28T00:00:00Z")
        #expect(VirtualClock(nowMillis: 59 * day).timestamp() == "2026-03-01T00:00:00Z")
        #expect(VirtualClock(nowMillis: 365 * day - 1000).timestamp() == "2026-12-31T23:59:59Z")
        #expect(VirtualClock(nowMillis: 0, originEpochMillis: 0).timestamp() == "1970-01-01T00:00:00Z")
        #expect(VirtualClock.rfc3339(epochMillis: 951_782_400_000, fractionDigits: 0) == "2000-02-29T00:00:00Z")
        #expect(VirtualClock.rfc3339(epochMillis: -1, fractionDigits: 3) == "1969-12-31T23:59:59.999Z")
    }

    @Test func civilDaysRoundTrip() {
        for days in stride(from: Int64(-800_000), through: 800_000, by: 997) {
            let (y, m, d) = VirtualClock.civilFromDays(days)
            #expect(VirtualClock.daysFromCivil(year: y, month: m, day: d) == days)
            #expect(m >= 1 && m <= 12 && d >= 1 && d <= 31)
        }
    }
}
