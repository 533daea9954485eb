import CaissonCore
import CaissonSimulator
import Foundation
import Testing
@testable import CaissonDocker

/// Finer than whole updates: single `ContainerHost` calls and container states, observed the same
/// way on `SimulatedHost` and a real `DockerHost`, must agree (status, health, exit code, restart
/// count where it is deterministic, and the `HostError` kind of every refused call).
@Suite("Conformance probes: single calls and container states", .serialized)
struct ConformanceProbeTests {
    struct Probe: Sendable, CustomTestStringConvertible {
        var name: String
        /// Runs on a world with a fresh service name; returns observations as text lines.
        var body: @Sendable (any ConformanceWorld, String) throws -> [String]
        var testDescription: String { name }
    }

    static func state(_ c: ContainerInfo?) -> String {
        guard let c else { return "absent" }
        return "\(c.status.rawValue) health=\(c.health.rawValue) exit=\(c.exitCode)"
    }

    static func kind(_ body: () throws -> Void) -> String {
        do { try body(); return "ok" } catch let e as HostError { return e.kind.rawValue } catch { return "\(error)" }
    }

    static let probes: [Probe] = [
        Probe(name: "created, never started") { w, n in
            let img = try w.image("1")
            try w.createIdle(name: n, reference: img.reference)
            return [state(try w.host.inspectContainer(n))]
        },
        Probe(name: "healthy, then stopped (graceful)") { w, n in
            let img = try w.image("1")
            try w.runService(name: n, reference: img.reference)
            w.settle(name: n)
            let running = state(try w.host.inspectContainer(n))
            try w.host.stopContainer(n, graceSecs: 5)
            let stopped = state(try w.host.inspectContainer(n))
            let again = kind { try w.host.stopContainer(n, graceSecs: 5) }
            return [running, stopped, "stop again: \(again)"]
        },
        Probe(name: "ignores SIGTERM: killed after the grace") { w, n in
            let img = try w.image("stubborn")
            try w.runService(name: n, reference: img.reference)
            w.settle(name: n)
            try w.host.stopContainer(n, graceSecs: 1)
            return [state(try w.host.inspectContainer(n))]
        },
        Probe(name: "unhealthy keeps running") { w, n in
            let img = try w.image("unhealthy")
            try w.runService(name: n, reference: img.reference)
            w.clock.sleep(millis: 6_000)
            return [state(try w.host.inspectContainer(n))]
        },
        Probe(name: "never-ready stays starting") { w, n in
            let img = try w.image("never-ready")
            try w.runService(name: n, reference: img.reference)
            w.clock.sleep(millis: 5_000)
            return [state(try w.host.inspectContainer(n))]
        },
        Probe(name: "no healthcheck") { w, n in
            let img = try w.image("nohealth")
            try w.runService(name: n, reference: img.reference)
            w.clock.sleep(millis: 2_000)
            return [state(try w.host.inspectContainer(n))]
        },
        Probe(name: "crash without restart policy") { w, n in
            let img = try w.image("crash")
            try w.createIdle(name: n, reference: img.reference)
            try w.host.startContainer(n)
            w.clock.sleep(millis: 2_000)
            let early = state(try w.host.inspectContainer(n))
            w.clock.sleep(millis: 5_000)
            let late = try w.host.inspectContainer(n)
            return [early, state(late), "restarts=\(late?.restartCount ?? -1)"]
        },
        Probe(name: "crash with unless-stopped restarts") { w, n in
            let img = try w.image("crash")
            try w.runService(name: n, reference: img.reference)
            w.clock.sleep(millis: 4_500)
            let c = try w.host.inspectContainer(n)
            return ["restarted=\((c?.restartCount ?? 0) >= 1)"]
        },
        Probe(name: "refused calls") { w, n in
            let img = try w.image("1")
            try w.runService(name: n, reference: img.reference)
            try w.createIdle(name: n + "-other", reference: img.reference)
            let missing = n + "-missing"
            return [
                "inspect missing: \(state(try w.host.inspectContainer(missing)))",
                "inspect missing image: \(try w.host.inspectImage("caisson-conf/none:\(n)") == nil ? "nil" : "found")",
                "start missing: \(kind { try w.host.startContainer(missing) })",
                "stop missing: \(kind { try w.host.stopContainer(missing, graceSecs: 1) })",
                "rename missing: \(kind { try w.host.renameContainer(missing, to: n + "-x") })",
                "rename onto a taken name: \(kind { try w.host.renameContainer(n + "-other", to: n) })",
                "remove missing: \(kind { try w.host.removeContainer(missing) })",
                "create under a taken name: \(kind { _ = try w.host.createContainer(name: n, cloning: n, imageID: img.id, labels: [:]) })",
                "create from a missing template: \(kind { _ = try w.host.createContainer(name: n + "-y", cloning: missing, imageID: img.id, labels: [:]) })",
                "create with a missing image: \(kind { _ = try w.host.createContainer(name: n + "-z", cloning: n, imageID: "sha256:" + String(repeating: "ab", count: 32), labels: [:]) })",
                "tag a missing image: \(kind { try w.host.tagImage("sha256:" + String(repeating: "cd", count: 32), as: "caisson-conf/none:\(n)") })",
                "start running: \(kind { try w.host.startContainer(n) })",
                "remove running: \(kind { try w.host.removeContainer(n + "-other") })",
            ]
        },
    ]

    /// A catalog naming a compose service its file does not define. Docker (which reads the
    /// project model with `docker compose config`) refuses both calls; the simulator refuses the
    /// apply but lists no containers instead of refusing the lookup (it has no project model):
    /// same update outcome (failed, `compose.image_lookup_failed`, nothing changed), different
    /// message. Known difference, reported to the simulator's owner.
    @Test func composeServiceMissingFromTheFile() throws {
        guard RealDocker.usable("conformance probe 'compose service missing'") else { return }
        guard RealDocker.composeAvailable else {
            if RealDocker.required { Issue.record("CAISSON_REQUIRE_DOCKER=1 but docker compose is missing") }
            return
        }
        let name = "caisson-probe-\(RealDocker.runID)-nosvc"
        func observe(_ w: any ConformanceWorld) throws -> (list: String, apply: String, untouched: String) {
            let img = try w.image("1")
            let target = try w.runCompose(project: name, reference: img.reference)
            let before = try w.host.composeContainers(target).map(\.startedAt)
            let wrong = ComposeTarget(project: target.project, file: target.file, service: "nope")
            let list = Self.kind { _ = try w.host.composeContainers(wrong) }
            let apply = Self.kind { try w.host.composeApply(wrong, imageReference: img.reference) }
            let after = try w.host.composeContainers(target).map(\.startedAt)
            return (list, apply, after == before && after.count == 1 ? "untouched" : "changed \(before) -> \(after)")
        }
        let docker = DockerWorld(prefix: name)
        defer { docker.cleanup() }
        let real = try observe(docker)
        let simulated = try observe(SimulatorWorld())
        #expect(real.apply == "failed" && simulated.apply == "failed")
        #expect(real.untouched == "untouched" && simulated.untouched == "untouched")
        #expect(real.list == "failed")
        #expect(real.list == simulated.list)
    }

    @Test("simulator and Docker observe the same", arguments: probes)
    func probe(_ probe: Probe) throws {
        guard RealDocker.usable("conformance probe '\(probe.name)'") else {
            // Without a daemon, still check the simulator side runs.
            let sim = SimulatorWorld()
            #expect(try !probe.body(sim, "caisson-probe-sim").isEmpty)
            return
        }
        let index = Self.probes.firstIndex { $0.name == probe.name } ?? 0
        let name = "caisson-probe-\(RealDocker.runID)-\(index)"
        let docker = DockerWorld(prefix: name)
        defer { docker.cleanup() }
        let real = try probe.body(docker, name)
        let simulated = try probe.body(SimulatorWorld(), name)
        #expect(real == simulated, "\(probe.name): Docker \(real) vs simulator \(simulated)")
    }
}
