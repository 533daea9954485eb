import CaissonCore
import CaissonSimulator
import Foundation
import Testing
@testable import CaissonDocker

/// Issue 12's conformance: http, tcp and exec health checks and failure evidence, the same
/// scenarios on `SimulatedHost` and on a real daemon (images from scripts/make-test-images whose
/// `io.caisson.sim.*` labels say what they do), with the same outcome and the same evidence fields.
struct ProbeScenario: Sendable, CustomTestStringConvertible {
    var name: String
    var mode = RuntimeMode.docker
    var oldVariant = "1"
    var newVariant: String
    var health: HealthPolicy
    /// `--memory` (and `--memory-swap`) of the service container, in MiB (the clone keeps it).
    var memoryMiB: Int? = nil
    var restart = "no"
    var expected: ProbeOutcome

    var testDescription: String { name }

    /// `stable`: the crash and OOM scenarios need a window well past the moment their process dies
    /// (3 s, and 2 s plus the allocation, after start), even on a loaded machine.
    static func policy(_ kind: HealthKind, timeout: Int = 6, stable: Int = 3) -> HealthPolicy {
        var p = HealthPolicy(kind: kind, timeoutSecs: timeout, pollIntervalSecs: 1, stableSecs: stable, probeTimeoutSecs: 2)
        switch kind {
        case .http: p.port = 8080; p.path = "/cgi-bin/healthz"
        case .tcp: p.port = 8080
        case .exec: p.command = ["/app/app.sh", "probe"]
        case .running, .containerHealth: break
        }
        return p
    }

    static let all: [ProbeScenario] = [
        ProbeScenario(name: "http answers 200", newVariant: "nohealth", health: policy(.http),
                      expected: .init(status: .succeeded, health: .passed, probe: "GET http://<ip>:8080/cgi-bin/healthz → 200")),
        ProbeScenario(name: "http answers 503", newVariant: "http-503", health: policy(.http),
                      expected: .init(status: .rolledBack, health: .failed, probe: "GET http://<ip>:8080/cgi-bin/healthz → 503",
                                      evidence: [.init(role: .new, status: .running, exitCode: 0, oomKilled: false,
                                                       lastLine: "app: version 8 serving on :8080 (hello from http-503)", healthLog: true)])),
        ProbeScenario(name: "http never answers", newVariant: "http-hang", health: policy(.http),
                      expected: .init(status: .rolledBack, health: .timedOut, probe: "GET http://<ip>:8080/cgi-bin/healthz → no answer within 2s",
                                      evidence: [.init(role: .new, status: .running, exitCode: 0, oomKilled: false,
                                                       lastLine: "app: version 9 serving on :8080 (hello from http-hang)", healthLog: true)])),
        ProbeScenario(name: "http never listens", newVariant: "http-never", health: policy(.http),
                      expected: .init(status: .rolledBack, health: .timedOut, probe: "GET http://<ip>:8080/cgi-bin/healthz → connection refused",
                                      evidence: [.init(role: .new, status: .running, exitCode: 0, oomKilled: false,
                                                       lastLine: "app: version 10 serving on :8080 (hello from http-never)", healthLog: true)])),
        ProbeScenario(name: "tcp connects to a server that never answers HTTP", newVariant: "http-hang", health: policy(.tcp),
                      expected: .init(status: .succeeded, health: .passed, probe: "TCP <ip>:8080 → connected")),
        ProbeScenario(name: "tcp to nothing listening", newVariant: "http-never", health: policy(.tcp),
                      expected: .init(status: .rolledBack, health: .timedOut, probe: "TCP <ip>:8080 → connection refused",
                                      evidence: [.init(role: .new, status: .running, exitCode: 0, oomKilled: false,
                                                       lastLine: "app: version 10 serving on :8080 (hello from http-never)", healthLog: true)])),
        ProbeScenario(name: "exec check passes", newVariant: "2", health: policy(.exec),
                      expected: .init(status: .succeeded, health: .passed, probe: "exec /app/app.sh probe → exit 0")),
        ProbeScenario(name: "exec check fails", newVariant: "exec-fail", health: policy(.exec),
                      expected: .init(status: .rolledBack, health: .failed, probe: "exec /app/app.sh probe → exit 1",
                                      evidence: [.init(role: .new, status: .running, exitCode: 0, oomKilled: false,
                                                       lastLine: "app: version 11 serving on :8080 (hello from exec-fail)", healthLog: true)])),
        ProbeScenario(name: "crash leaves its last words and exit code 3", newVariant: "crash", health: policy(.http, timeout: 20, stable: 12),
                      expected: .init(status: .rolledBack, health: .failed, probe: nil,
                                      evidence: [.init(role: .new, status: .exited, exitCode: 3, oomKilled: false,
                                                       lastLine: "app: crashing after 3s (exit 3)", healthLog: true)])),
        ProbeScenario(name: "killed for memory: OOMKilled", newVariant: "oom", health: policy(.running, timeout: 20, stable: 12), memoryMiB: 32,
                      expected: .init(status: .rolledBack, health: .failed, probe: nil,
                                      evidence: [.init(role: .new, status: .exited, exitCode: 137, oomKilled: true,
                                                       lastLine: "app: allocating memory", healthLog: true)])),
        ProbeScenario(name: "compose: http answers 503", mode: .compose, newVariant: "http-503", health: policy(.http), restart: "unless-stopped",
                      expected: .init(status: .rolledBack, health: .failed, probe: "GET http://<ip>:8080/cgi-bin/healthz → 503",
                                      evidence: [.init(role: .new, status: .running, exitCode: 0, oomKilled: false,
                                                       lastLine: "app: version 8 serving on :8080 (hello from http-503)", healthLog: true)])),
        ProbeScenario(name: "compose: exec check passes", mode: .compose, newVariant: "nohealth", health: policy(.exec), restart: "unless-stopped",
                      expected: .init(status: .succeeded, health: .passed, probe: "exec /app/app.sh probe → exit 0")),
    ]
}

/// What an observer of the attempt sees, normalised so both hosts can be compared.
struct ProbeOutcome: Equatable, Sendable, CustomStringConvertible {
    struct Evidence: Equatable, Sendable {
        var role: FailureEvidence.Role
        var status: ContainerStatus
        var exitCode: Int
        var oomKilled: Bool
        var lastLine: String?
        /// Docker's health log was captured (the image has a HEALTHCHECK).
        var healthLog: Bool
    }
    var status: UpdateStatus
    var health: HealthOutcome?
    /// The health message's "what was probed → what came back", addresses as `<ip>` and exec
    /// output left out (nil: the check ended on the container's state, not a probe).
    var probe: String?
    var evidence: [Evidence] = []

    var description: String { "\(status.rawValue), health \(health?.rawValue ?? "-"), probe \(probe ?? "-"), evidence \(evidence)" }

    /// `GET http://172.18.0.5:8080/x → 503 after 12 probes` → `GET http://<ip>:8080/x → 503`.
    static func probePart(_ message: String) -> String? {
        guard message.contains(" → ") else { return nil }
        var m = message
        if let r = m.range(of: " after ", options: .backwards) { m = String(m[..<r.lowerBound]) }
        if let r = m.range(of: ", healthy for ") { m = String(m[..<r.lowerBound]) }
        if let r = m.range(of: " (\"") { m = String(m[..<r.lowerBound]) }
        return m.replacingOccurrences(of: #"\d+\.\d+\.\d+\.\d+"#, with: "<ip>", options: .regularExpression)
    }
}

@Suite("Conformance: health probes and failure evidence, simulator and Docker", .serialized)
struct ProbeConformanceTests {
    static func run(_ scenario: ProbeScenario, on world: any ConformanceWorld, service: String, index: Int) throws
        -> (ProbeOutcome, UpdateAttempt, [FailureEvidence]) {
        let old = try world.image(scenario.oldVariant)
        let new = try world.image(scenario.newVariant)
        var compose: ComposeTarget?
        switch scenario.mode {
        case .compose:
            compose = try world.runCompose(project: service, reference: old.reference)
            world.settle(name: "\(service)-app-1")
        case .docker:
            try Self.runService(on: world, name: service, reference: old.reference, restart: scenario.restart, memoryMiB: scenario.memoryMiB)
            world.settle(name: service)
        }
        let plan = UpdateMachine.Plan(
            updateID: "e71de4ce\(String(format: "%02d", index))-0000-4000-8000-000000000012",
            candidateReleaseID: "cr-probe", validationAttemptID: nil,
            service: ServiceSpec(name: service, serviceRevision: "\(service)-v1", platform: "linux/amd64", runtimeMode: scenario.mode,
                                 docker: compose == nil ? DockerTarget(containerName: service, imageReference: old.reference) : nil,
                                 compose: compose, health: scenario.health),
            targetImageReference: new.reference, targetImageID: new.id, packageVersion: "2.0.0", stopGraceSecs: 5)
        var machine = UpdateMachine(plan: plan, startedAt: world.clock.timestamp())
        let journal = InMemoryJournal()
        let attempt = try UpdateDriver(host: world.host, journal: journal, clock: world.clock).run(&machine)
        var outcome = ProbeOutcome(status: attempt.status, health: attempt.healthCheck?.outcome,
                                   probe: attempt.healthCheck.flatMap { ProbeOutcome.probePart($0.message) })
        outcome.evidence = journal.evidence.map { e in
            ProbeOutcome.Evidence(role: e.role, status: e.state?.status ?? .dead, exitCode: e.state?.exitCode ?? -1,
                                  oomKilled: e.state?.oomKilled ?? false, lastLine: e.logTail.last?.text, healthLog: !e.healthLog.isEmpty)
        }
        // Every evidence record is whole: no capture problems, the container's own id and image.
        for e in journal.evidence {
            #expect(e.problems.isEmpty, "\(e.problems)")
            #expect(e.imageID == new.id && e.updateID == plan.updateID)
            #expect(e.state?.startedAt.hasPrefix("20") == true)
        }
        return (outcome, attempt, journal.evidence)
    }

    /// The service container: `docker run -d --restart R [--memory M --memory-swap M] --name NAME REF`.
    static func runService(on world: any ConformanceWorld, name: String, reference: String, restart: String, memoryMiB: Int?,
                           env: [String] = []) throws {
        if let sim = world as? SimulatorWorld {
            try sim.sim.runContainer(name: name, imageReference: reference,
                                     restartPolicy: SimRestartPolicy(parsing: restart) ?? .no, env: env)
            return
        }
        let docker = try #require(world as? DockerWorld)
        var hostConfig: [String: JSONValue] = ["RestartPolicy": ["Name": .string(restart)]]
        if let m = memoryMiB {
            hostConfig["Memory"] = .int(Int64(m) << 20)
            hostConfig["MemorySwap"] = .int(Int64(m) << 20)
        }
        _ = try docker.docker.client.createContainer(name: name, body: [
            "Image": .string(reference), "Env": .array(env.map { .string($0) }),
            "Labels": ["io.caisson.test.run": .string(docker.prefix)], "HostConfig": .object(hostConfig),
        ])
        try docker.docker.startContainer(name)
    }

    @Test("same outcome and evidence on both hosts", arguments: ConformanceHost.allCases, ProbeScenario.all)
    func scenario(_ kind: ConformanceHost, _ scenario: ProbeScenario) throws {
        let index = ProbeScenario.all.firstIndex { $0.name == scenario.name } ?? 0
        let service = "caisson-probe-\(RealDocker.runID)-\(index)"
        let world: any ConformanceWorld
        switch kind {
        case .simulator: world = SimulatorWorld()
        case .docker:
            guard RealDocker.usable("probe conformance '\(scenario.name)' on Docker") else { return }
            world = DockerWorld(prefix: service)
        }
        defer { world.cleanup() }
        let (outcome, attempt, _) = try Self.run(scenario, on: world, service: service, index: index)
        #expect(outcome == scenario.expected, "\(kind.rawValue): \(scenario.name): got \(outcome) (\(attempt.healthCheck?.message ?? "-")), want \(scenario.expected)")
        if attempt.status == .rolledBack { #expect(attempt.rollbackHealthCheck?.outcome == .passed, "\(attempt.rollbackHealthCheck?.message ?? "-")") }
        if kind == .docker {
            let (simulated, _, _) = try Self.run(scenario, on: SimulatorWorld(), service: service, index: index)
            #expect(outcome == simulated, "\(scenario.name): Docker \(outcome), simulator \(simulated)")
        }
    }

    /// Secrets in the container's environment never reach the record, on a real daemon: the app
    /// prints APP_MESSAGE at start, and the operator set it to the value of a token.
    @Test func secretsAreRedactedFromRealLogs() throws {
        guard RealDocker.usable("probe conformance: redaction on Docker") else { return }
        let service = "caisson-probe-\(RealDocker.runID)-secret"
        let world = DockerWorld(prefix: service)
        defer { world.cleanup() }
        let old = try world.image("1")
        let new = try world.image("http-503")
        try Self.runService(on: world, name: service, reference: old.reference, restart: "no", memoryMiB: nil,
                            env: ["APP_MESSAGE=tok-4f9a2b7c1d", "API_TOKEN=tok-4f9a2b7c1d"])
        world.settle(name: service)
        let plan = UpdateMachine.Plan(updateID: "e71de4ce-5ec2-4000-8000-000000000012", candidateReleaseID: "cr", validationAttemptID: nil,
                                      service: ServiceSpec(name: service, serviceRevision: "r", platform: "linux/amd64", runtimeMode: .docker,
                                                           docker: DockerTarget(containerName: service, imageReference: old.reference),
                                                           health: ProbeScenario.policy(.http, timeout: 6)),
                                      targetImageReference: new.reference, targetImageID: new.id, stopGraceSecs: 5)
        var machine = UpdateMachine(plan: plan, startedAt: world.clock.timestamp())
        let journal = InMemoryJournal()
        let a = try UpdateDriver(host: world.host, journal: journal, clock: world.clock).run(&machine)
        #expect(a.status == .rolledBack)
        let e = try #require(journal.evidence.first)
        #expect(e.logTail.map(\.text) == ["app: version 8 serving on :8080 ([redacted API_TOKEN])"])
        #expect(e.redactions == 1)
        #expect(!JSONCoding.string(journal.evidence, pretty: false).contains("tok-4f9a2b7c1d"))
    }

    /// The simulator's scripts are the real images' own labels.
    @Test func simulatorLabelsMatchTheRealImages() throws {
        guard RealDocker.usable("probe conformance: image labels") else { return }
        let docker = DockerHost(client: RealDocker.client!)
        for variant in RealDocker.testVariants {
            let real = try #require(try docker.inspectImage("caisson-test/app:\(variant)"))
            let sim = SimulatorWorld.config(variant)
            let realSim = real.config.labels.filter { $0.key.hasPrefix("io.caisson.sim.") }
            let simSim = sim.labels.filter { $0.key.hasPrefix("io.caisson.sim.") }
            #expect(realSim == simSim, "caisson-test/app:\(variant)")
            #expect(real.config.hasHealthcheck == sim.hasHealthcheck, "caisson-test/app:\(variant)")
        }
    }

    /// The Engine API bodies on their own: logs of a TTY-less container (demultiplexed), an exec
    /// that passes, fails, hangs, and one in a stopped container.
    @Test func logsAndExecOnARealDaemon() throws {
        guard RealDocker.usable("probe conformance: logs and exec on Docker") else { return }
        let service = "caisson-probe-\(RealDocker.runID)-api"
        let world = DockerWorld(prefix: service)
        defer { world.cleanup() }
        let image = try world.image("crash")
        try Self.runService(on: world, name: service, reference: image.reference, restart: "no", memoryMiB: nil)
        let host = world.docker
        #expect(try host.probe(.exec(container: service, command: ["/app/app.sh", "probe"]), timeoutMillis: 5000)
                == .exited(code: 0, output: "probe: exit 0"))
        // stdout and stderr come as separate streams: their relative order is the daemon's.
        let both = try host.probe(.exec(container: service, command: ["sh", "-c", "echo out; echo err >&2; exit 4"]), timeoutMillis: 5000)
        #expect(both == .exited(code: 4, output: "out\nerr") || both == .exited(code: 4, output: "err\nout"), "\(both)")
        let t0 = ContinuousClock.now
        #expect(try host.probe(.exec(container: service, command: ["sleep", "30"]), timeoutMillis: 1000) == .noAnswer(afterMillis: 1000))
        #expect(ContinuousClock.now - t0 < .seconds(5))
        let missing = try host.probe(.exec(container: service, command: ["/no/such/program"]), timeoutMillis: 5000)
        if case .exited(let code, _) = missing { #expect(code == 126 || code == 127) } else { Issue.record("got \(missing)") }
        RealDocker.waitUntil(seconds: 15) { (try? host.inspectContainer(service))?.status == .exited }
        let tail = try host.containerLogs(service, limit: LogLimit())
        #expect(tail.lines == [LogLine(.stdout, "app: version 4 serving on :8080 (hello from crash)"),
                               LogLine(.stderr, "app: crashing after 3s (exit 3)")])
        #expect(try host.containerLogs(service, limit: LogLimit(maxLines: 1, maxBytes: 1000)).lines
                == [LogLine(.stderr, "app: crashing after 3s (exit 3)")])
        do {
            _ = try host.probe(.exec(container: service, command: ["true"]), timeoutMillis: 2000)
            Issue.record("an exec in a stopped container must fail")
        } catch {
            #expect(error.kind == .conflict, "\(error)")
        }
        let d = try #require(try host.containerDetails(service))
        #expect(d.info.exitCode == 3 && !d.oomKilled && d.probeAddress == nil && !d.finishedAt.isEmpty)
    }
}
