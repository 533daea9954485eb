import CaissonCore
import CaissonSimulator
import Testing

/// Issue 12 on the simulator: http, tcp and exec probes judged by the update machine, and the
/// failure evidence it captures before a failed container goes.
@Suite("Engine: health probes and failure evidence")
struct ProbeAndEvidenceEngineTests {
    /// A Docker-mode update of `app` on a fresh simulated host: the old image answers its probes
    /// healthily, the new one as `newLabels` script it.
    final class World {
        let host: SimulatedHost
        let journal = InMemoryJournal()
        var plan: UpdateMachine.Plan
        let oldID = SimulatedHost.fakeImageID("example/app:1")
        let newID = SimulatedHost.fakeImageID("example/app:2")
        var machine: UpdateMachine

        init(health: HealthPolicy, newLabels: [String: String], oldLabels: [String: String] = [:],
             env: [String] = [], networks: [String] = [], restart: SimRestartPolicy = .unlessStopped,
             automaticRollback: Bool = true) throws {
            host = SimulatedHost(seed: 3)
            var old = ["io.caisson.sim.health": "healthy", SimScript.httpLabel: "200", SimScript.execLabel: "0"]
            for (k, v) in oldLabels { old[k] = v }
            try host.addImage(id: oldID, tags: ["example/app:1"], config: ImageConfig(labels: old, hasHealthcheck: true))
            try host.addImage(id: newID, tags: ["example/app:2"], config: ImageConfig(labels: newLabels, hasHealthcheck: true))
            _ = try host.runContainer(name: "app", imageReference: "example/app:1", restartPolicy: restart, env: env, networks: networks)
            host.clock.sleep(millis: 10_000)
            let service = ServiceSpec(name: "app", serviceRevision: "app-v1", platform: "linux/amd64", runtimeMode: .docker,
                                      docker: DockerTarget(containerName: "app", imageReference: "example/app:1"),
                                      health: health, automaticRollback: automaticRollback)
            plan = UpdateMachine.Plan(updateID: "e71de4ce-0000-4000-8000-000000000012", candidateReleaseID: "cr", validationAttemptID: nil,
                                      service: service, targetImageReference: "example/app:2", targetImageID: newID)
            machine = UpdateMachine(plan: plan, startedAt: host.clock.timestamp())
        }

        func run() throws -> UpdateAttempt {
            try UpdateDriver(host: host, journal: journal, clock: host.clock).run(&machine)
        }
    }

    static let http = HealthPolicy(kind: .http, timeoutSecs: 20, pollIntervalSecs: 1, stableSecs: 5, port: 8080, path: "/healthz")
    static let tcp = HealthPolicy(kind: .tcp, timeoutSecs: 20, pollIntervalSecs: 1, stableSecs: 5, port: 8080)
    static let exec = HealthPolicy(kind: .exec, timeoutSecs: 20, pollIntervalSecs: 1, stableSecs: 5, command: ["/bin/check", "--quick"])

    /// (policy, label, value, status, outcome, message pattern: the parts it must contain in order).
    static let cases: [(String, HealthPolicy, String, String, UpdateStatus, HealthOutcome, [String])] = [
        ("http 200", http, SimScript.httpLabel, "200", .succeeded, .passed, ["GET http://172.18.0.", ":8080/healthz → 200, healthy for 5s ("]),
        ("http 503", http, SimScript.httpLabel, "503", .rolledBack, .failed, ["GET http://172.18.0.", ":8080/healthz → 503 after ", " probes"]),
        ("http hang", http, SimScript.httpLabel, "hang", .rolledBack, .timedOut, ["GET http://172.18.0.", " → no answer within 2s after "]),
        ("http refused", http, SimScript.httpLabel, "refused", .rolledBack, .timedOut, ["→ connection refused after "]),
        ("tcp open", tcp, SimScript.httpLabel, "503", .succeeded, .passed, ["TCP 172.18.0.", ":8080 → connected, healthy for 5s"]),
        ("tcp refused", tcp, SimScript.httpLabel, "refused", .rolledBack, .timedOut, ["TCP 172.18.0.", " → connection refused after "]),
        ("exec 0", exec, SimScript.execLabel, "0", .succeeded, .passed, ["exec /bin/check --quick → exit 0, healthy for 5s"]),
        ("exec 1", exec, SimScript.execLabel, "1", .rolledBack, .failed, ["exec /bin/check --quick → exit 1 after "]),
        ("exec hang", exec, SimScript.execLabel, "hang", .rolledBack, .timedOut, ["exec /bin/check --quick → no answer within 2s after "]),
    ]

    @Test("each probe kind and answer ends as it should, saying what was probed and what came back",
          arguments: cases.indices)
    func probeOutcomes(_ i: Int) throws {
        let (name, policy, label, value, status, outcome, parts) = Self.cases[i]
        var labels = ["io.caisson.sim.health": "healthy", SimScript.httpLabel: "200", SimScript.execLabel: "0"]
        labels[label] = value
        let w = try World(health: policy, newLabels: labels)
        let started = w.host.clock.nowMillis
        let a = try w.run()
        #expect(a.status == status, "\(name)")
        let h = try #require(a.healthCheck)
        #expect(h.outcome == outcome, "\(name): \(h.message)")
        var rest = Substring(h.message)
        for p in parts {
            guard let r = rest.range(of: p) else { Issue.record("\(name): '\(h.message)' lacks '\(p)'"); break }
            rest = rest[r.upperBound...]
        }
        if status == .rolledBack {
            #expect(a.rollbackHealthCheck?.outcome == .passed)
            #expect(a.issues.first?.code == (outcome == .timedOut ? "health_check.timed_out" : "health_check.failed"))
            #expect(w.host.containers(named: "app").first?.imageID == w.oldID)
        }
        // A hanging probe is a failed probe, never a hung update: the check ends within its
        // timeout plus one probe deadline (and the restore's own check).
        #expect(w.host.clock.nowMillis - started < 2 * (20_000 + 2_000 + 1_000) + 5_000)
    }

    @Test func aCrashingImageFailsAProbeCheckAtOnceAndLeavesItsLastWords() throws {
        let w = try World(health: Self.http, newLabels: ["io.caisson.sim.health": "crash:3", "io.caisson.sim.exit_code": "3",
                                                          SimScript.httpLabel: "200", SimScript.exitLogLabel: "app: crashing after 3s (exit 3)"],
                          restart: .no)
        let a = try w.run()
        #expect(a.status == .rolledBack)
        #expect(a.healthCheck?.outcome == .failed)
        #expect(a.healthCheck?.message == "container app exited with code 3")
        let e = try #require(w.journal.evidence.first)
        #expect(w.journal.evidence.count == 1)
        #expect(e.role == .new && e.containerName == "app" && e.imageID == w.newID && e.updateID == w.plan.updateID)
        #expect(e.state?.status == .exited && e.state?.exitCode == 3 && e.state?.oomKilled == false)
        #expect(e.logTail.map(\.text) == ["sim: started", "app: crashing after 3s (exit 3)"])
        #expect(e.logTail.map(\.stream) == [.stdout, .stderr])
        #expect(e.problems.isEmpty && !e.logTruncated)
        #expect(e.state?.finishedAt.hasPrefix("2026-") == true && e.state?.startedAt.hasPrefix("2026-") == true)
        // Docker's health log of the crashed container: the last (up to) 5 results.
        #expect(!e.healthLog.isEmpty && e.healthLog.count <= 5)
        // Captured before the new container was removed.
        #expect(w.host.allContainers.filter { $0.imageID == w.newID }.isEmpty)
    }

    @Test func anOOMKilledImageSaysSo() throws {
        let w = try World(health: HealthPolicy(kind: .running, timeoutSecs: 20, pollIntervalSecs: 1, stableSecs: 5),
                          newLabels: ["io.caisson.sim.health": "oom:2", SimScript.exitLogLabel: "app: allocating memory"], restart: .no)
        let a = try w.run()
        #expect(a.status == .rolledBack)
        #expect(a.healthCheck?.message == "container app exited with code 137")
        let e = try #require(w.journal.evidence.first)
        #expect(e.state?.oomKilled == true && e.state?.exitCode == 137)
        #expect(e.logTail.last == LogLine(.stderr, "app: allocating memory"))
        #expect(e.summary == "app (new release): exited, exit code 137, killed for memory (OOM), health unhealthy")
    }

    @Test func secretsOfTheContainerNeverReachTheRecord() throws {
        let w = try World(health: Self.exec,
                          newLabels: ["io.caisson.sim.health": "healthy", SimScript.execLabel: "1",
                                      SimScript.logLabel: "connecting with password=correct-horse token=tok_0123456789 user=admin"],
                          env: ["DB_PASSWORD=correct-horse", "API_TOKEN=tok_0123456789", "DB_USER=admin"])
        let a = try w.run()
        #expect(a.status == .rolledBack)
        let e = try #require(w.journal.evidence.first)
        let text = e.logTail.map(\.text).joined(separator: "\n")
        #expect(text == "connecting with password=[redacted DB_PASSWORD] token=[redacted API_TOKEN] user=admin")
        #expect(e.redactions == 2)
        let json = JSONCoding.string(w.journal.evidence, pretty: false)
        #expect(!json.contains("correct-horse") && !json.contains("tok_0123456789"))
    }

    @Test func noEvidenceWhenTheUpdateSucceeds() throws {
        let w = try World(health: Self.http, newLabels: ["io.caisson.sim.health": "healthy", SimScript.httpLabel: "204"])
        #expect(try w.run().status == .succeeded)
        #expect(w.journal.evidence.isEmpty)
    }

    @Test func aFailedRestoreKeepsThePreviousContainersEvidence() throws {
        // The previous release answers 503 too once it is probed: the restore cannot pass.
        let w = try World(health: Self.http, newLabels: ["io.caisson.sim.health": "healthy", SimScript.httpLabel: "503"],
                          oldLabels: [SimScript.httpLabel: "503"])
        let a = try w.run()
        #expect(a.status == .rollbackFailed)
        #expect(w.journal.evidence.map(\.role) == [.new, .previous])
        #expect(w.journal.evidence.last?.imageID == w.oldID)
        #expect(w.journal.evidence.last?.state?.status == .running)
    }

    @Test func withoutAutomaticRollbackTheEvidenceIsKeptToo() throws {
        let w = try World(health: Self.exec, newLabels: ["io.caisson.sim.health": "healthy", SimScript.execLabel: "1"],
                          automaticRollback: false)
        let a = try w.run()
        #expect(a.status == .failed)
        #expect(w.journal.evidence.map(\.role) == [.new])
        #expect(w.journal.evidence.first?.state?.status == .running)
    }

    @Test func hostNetworkingIsProbedOnLocalhostAndNoNetworkNeverPasses() throws {
        let host = try World(health: Self.http, newLabels: ["io.caisson.sim.health": "healthy", SimScript.httpLabel: "200"],
                             networks: ["host"])
        let a = try host.run()
        #expect(a.status == .succeeded)
        #expect(a.healthCheck?.message.hasPrefix("GET http://127.0.0.1:8080/healthz → 200") == true)
        let none = try World(health: Self.tcp, newLabels: ["io.caisson.sim.health": "healthy", SimScript.httpLabel: "200"],
                             networks: ["none"])
        let b = try none.run()
        #expect(b.status == .rollbackFailed)
        #expect(b.healthCheck?.message.hasPrefix("TCP <no address>:8080 → the container has no network address after ") == true)
    }

    @Test func composeServicesAreProbedAndTheirContainersLeaveEvidence() throws {
        for (answer, status) in [("200", UpdateStatus.succeeded), ("503", .rolledBack)] {
            let config = UpdateScenario.Config(mode: .compose, healthKind: .http, newBehaviour: "healthy", probe: answer)
            let s = UpdateScenario(config)
            let a = try #require(s.run())
            #expect(a.status == status)
            #expect(s.violations() == [])
            #expect(s.journal.evidence.count == (status == .succeeded ? 0 : 1))
            if let e = s.journal.evidence.first {
                #expect(e.role == .new && e.containerName == "stack-app-1" && e.imageID == s.newImageID)
            }
        }
    }

    /// Evidence rides with the next journal write and is never part of a snapshot.
    @Test func evidenceIsNotInTheMachineSnapshots() throws {
        let w = try World(health: Self.http, newLabels: ["io.caisson.sim.health": "healthy", SimScript.httpLabel: "503",
                                                          SimScript.logLabel: "unique-log-line-xyz"])
        _ = try w.run()
        #expect(!w.journal.evidence.isEmpty)
        for (_, entry) in w.journal.entries {
            let bytes = try entry.encodedSnapshot()
            #expect(!String(decoding: bytes, as: UTF8.self).contains("unique-log-line-xyz"))
        }
    }
}
