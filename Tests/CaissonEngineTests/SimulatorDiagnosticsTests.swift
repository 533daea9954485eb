import CaissonCore
import CaissonSimulator
import Foundation
import Testing

/// Issue 12's model in the simulator: logs, exit state and OOM, addresses, probe answers scripted
/// by image labels, and Docker's health log.
@Suite("Simulator: logs, addresses and probes")
struct SimulatorDiagnosticsTests {
    typealias F = SimFixture

    static func host(_ labels: [String: String], policy: SimRestartPolicy = .no, networks: [String] = []) throws -> SimulatedHost {
        let host = SimulatedHost(seed: 9)
        try host.addImage(id: F.v1, tags: ["app:1"], config: ImageConfig(labels: labels, hasHealthcheck: true))
        try host.runContainer(name: "app", imageReference: "app:1", restartPolicy: policy, env: ["X_TOKEN=abcdefgh"], networks: networks)
        return host
    }

    @Test func logsRecordEveryStartAndSelfExitAcrossRestarts() throws {
        let host = try Self.host(["io.caisson.sim.health": "crash:3", "io.caisson.sim.exit_code": "3",
                                  SimScript.logLabel: "up", SimScript.exitLogLabel: "down"], policy: .onFailure(maxRetries: 1))
        host.clock.advance(to: 60_000)
        let tail = try host.containerLogs("app", limit: LogLimit())
        #expect(tail.lines == [LogLine(.stdout, "up"), LogLine(.stderr, "down"), LogLine(.stdout, "up"), LogLine(.stderr, "down")])
        #expect(try host.containerLogs("app", limit: LogLimit(maxLines: 1, maxBytes: 100)) == LogTail(lines: [LogLine(.stderr, "down")], truncated: true))
        let d = try #require(try host.containerDetails("app"))
        #expect(d.info.status == .exited && d.info.exitCode == 3 && d.info.restartCount == 1 && !d.oomKilled)
        #expect(d.environment == ["X_TOKEN=abcdefgh"])
        #expect(d.finishedAt.hasPrefix("2026-01-01T00:00:06") && d.startedAt.hasPrefix("2026-01-01T00:00:03"))
        // Stopped: no address on its network any more.
        #expect(d.probeAddress == nil)
        #expect(simError { try host.containerLogs("nope", limit: LogLimit()) }?.kind == .notFound)
    }

    @Test func defaultsAndAStopByTheUserPrintNoLastWords() throws {
        let host = try Self.host([:])
        try host.stopContainer("app", graceSecs: 10)
        #expect(try host.containerLogs("app", limit: LogLimit()).lines == [LogLine(.stdout, "sim: started")])
    }

    @Test func oomIsFlaggedAndClearedByTheNextStart() throws {
        let host = try Self.host(["io.caisson.sim.health": "oom:2"])
        host.clock.advance(to: 5_000)
        var d = try #require(try host.containerDetails("app"))
        #expect(d.oomKilled && d.info.exitCode == 137 && d.info.status == .exited)
        try host.startContainer("app")
        d = try #require(try host.containerDetails("app"))
        #expect(!d.oomKilled && d.info.status == .running)
    }

    @Test func addressesPerNetworkMode() throws {
        let bridge = try Self.host([:])
        let a = try #require(try bridge.containerDetails("app"))
        #expect(a.networkMode == "bridge" && a.probeAddress == "172.18.0.2")
        let host = try Self.host([:], networks: ["host"])
        #expect(try host.containerDetails("app")?.probeAddress == "127.0.0.1")
        let none = try Self.host([:], networks: ["none"])
        #expect(try none.containerDetails("app")?.probeAddress == nil)
    }

    @Test("http and tcp answers come from the labels", arguments: [
        ("200", 8080, ProbeAnswer.httpStatus(200), ProbeAnswer.connected),
        ("503", 8080, .httpStatus(503), .connected),
        ("refused", 8080, .refused("connection refused"), .refused("connection refused")),
        ("200", 9999, .refused("connection refused"), .refused("connection refused")),
        ("hang", 8080, .noAnswer(afterMillis: 2000), .connected),
    ])
    func networkProbes(_ script: String, _ port: Int, _ http: ProbeAnswer, _ tcp: ProbeAnswer) throws {
        let host = try Self.host([SimScript.httpLabel: script])
        let addr = try #require(try host.containerDetails("app")?.probeAddress)
        let t0 = host.clock.nowMillis
        #expect(try host.probe(.http(address: addr, port: port, path: "/healthz"), timeoutMillis: 2000) == http)
        // A hang costs exactly the probe's deadline in virtual time.
        #expect(host.clock.nowMillis - t0 == (script == "hang" && port == 8080 ? 2000 : 0))
        #expect(try host.probe(.tcp(address: addr, port: port), timeoutMillis: 2000) == tcp)
        #expect(try host.probe(.tcp(address: "172.18.99.99", port: port), timeoutMillis: 2000) == .refused("no route to host"))
    }

    @Test func execAnswersComeFromTheLabelAndNeedARunningContainer() throws {
        #expect(try Self.host([SimScript.execLabel: "0"]).probe(.exec(container: "app", command: ["/bin/check"]), timeoutMillis: 1000)
                == .exited(code: 0, output: ""))
        #expect(try Self.host([SimScript.execLabel: "1"]).probe(.exec(container: "app", command: ["/bin/check"]), timeoutMillis: 1000)
                == .exited(code: 1, output: ""))
        #expect(try Self.host([SimScript.execLabel: "hang"]).probe(.exec(container: "app", command: ["/bin/check"]), timeoutMillis: 1000)
                == .noAnswer(afterMillis: 1000))
        #expect(try Self.host([:]).probe(.exec(container: "app", command: ["/bin/check"]), timeoutMillis: 1000)
                == .exited(code: 127, output: "exec: \"/bin/check\": not found"))
        let stopped = try Self.host([SimScript.execLabel: "0"])
        try stopped.stopContainer("app", graceSecs: 1)
        #expect(simError { try stopped.probe(.exec(container: "app", command: ["x"]), timeoutMillis: 1000) }?.kind == .conflict)
    }

    @Test func healthLogFollowsTheBehaviour() throws {
        let host = try Self.host(["io.caisson.sim.health": "healthy:2"])
        host.clock.advance(to: 10_000)
        let log = try #require(try host.containerDetails("app")).healthLog
        #expect(log.count == 5)
        #expect(log.map(\.exitCode) == [0, 0, 0, 0, 0])
        let early = try Self.host(["io.caisson.sim.health": "unhealthy:3"])
        early.clock.advance(to: 4_000)
        #expect(try early.containerDetails("app")?.healthLog.map(\.exitCode) == [1, 1, 1, 1])
    }

    /// Faults reach the new operations like any other call.
    @Test func faultsHitTheNewOperations() throws {
        let host = try Self.host([SimScript.httpLabel: "200"])
        host.faultPlan = FaultPlan(rules: [.on(.probe, .fail), .on(.containerLogs, .unreachable)])
        #expect(simError { try host.probe(.tcp(address: "172.18.0.2", port: 8080), timeoutMillis: 100) }?.kind == .failed)
        #expect(simError { try host.containerLogs("app", limit: LogLimit()) }?.kind == .unreachable)
        #expect(host.callCount(of: .probe) == 1 && host.callCount(of: .containerLogs) == 1)
    }

    /// A state saved before issue 12 (fewer operation counters, no logs) still loads.
    @Test func statesSavedBeforeTheNewOperationsLoad() throws {
        let host = try Self.host([:])
        var json = try JSONSerialization.jsonObject(with: Data(try host.encodedState())) as! [String: Any]
        json["operationCounts"] = Array(repeating: 0, count: 13)
        var containers = json["containers"] as! [String: [String: Any]]
        for (k, var c) in containers {
            for key in ["logs", "oomKilled", "finishedAt", "finishedAtMillis", "address"] { c.removeValue(forKey: key) }
            containers[k] = c
        }
        json["containers"] = containers
        json.removeValue(forKey: "addressCount")
        let loaded = try SimulatedHost(encodedState: Array(try JSONSerialization.data(withJSONObject: json)))
        #expect(loaded.callCount(of: .probe) == 0)
        #expect(try loaded.containerLogs("app", limit: LogLimit()).lines.isEmpty)
    }
}
