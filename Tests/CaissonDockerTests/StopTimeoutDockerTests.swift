import CaissonCore
import Foundation
import Testing
@testable import CaissonDocker

/// Issue 10 item 3 on a real daemon: a `--stop-timeout 30` container whose SIGTERM handler needs
/// 15 s to flush. The update must give it its 30 s (Caisson used to stop with 10 s: SIGKILL
/// mid-flush, data lost).
@Suite("Stop timeout on a real daemon", .serialized)
struct StopTimeoutDockerTests {
    /// On SIGTERM: 15 s of "flushing", then a line in /data/flushed and exit 0.
    static func flushingCommand(_ tag: String) -> String {
        #"CMD ["/bin/sh", "-c", "trap '/bin/busybox sleep 15; echo flushed-\#(tag) >> /data/flushed; exit 0' TERM; echo \#(tag) >> /data/starts; while :; do /bin/busybox sleep 1 & wait $!; done"]"#
    }

    @Test func theUpdateStopsTheOldContainerWithItsOwnStopTimeout() throws {
        guard RealDocker.usable("stop-timeout test on Docker") else { return }
        let client = try #require(RealDocker.client)
        let host = DockerHost(client: client)
        let run = RealDocker.runID
        let v1 = try RealDocker.makeImage("flush1", [Self.flushingCommand("1")])
        let v2 = try RealDocker.makeImage("flush2", [Self.flushingCommand("2")])
        let name = "caisson-flush-\(run)"
        let control = "caisson-flush-control-\(run)"
        let data = NSTemporaryDirectory() + "caisson-flush-\(run)"
        let controlData = data + "-control"
        for dir in [data, controlData] { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        defer {
            for c in [name, control] { try? host.removeContainer(c) }
            RealDocker.removeContainers(prefix: name + "-caisson-")
            for image in [v1.reference, v2.reference] { _ = try? client.removeImage(image, force: true) }
            for dir in [data, controlData] { try? FileManager.default.removeItem(atPath: dir) }
        }
        func create(_ container: String, _ dir: String) throws {
            _ = try client.createContainer(name: container, body: [
                "Image": .string(v1.reference), "StopTimeout": 30,
                "HostConfig": ["Binds": .array([.string("\(dir):/data")]), "RestartPolicy": ["Name": "unless-stopped"]],
            ])
            try host.startContainer(container)
        }
        try create(name, data)
        #expect(try host.inspectContainer(name)?.stopTimeoutSecs == 30)
        RealDocker.waitUntil(seconds: 10) { FileManager.default.fileExists(atPath: data + "/starts") }

        let plan = UpdateMachine.Plan(
            updateID: "f1a5f1a5-0000-4000-8000-000000000001", candidateReleaseID: "cr-flush", validationAttemptID: nil,
            service: ServiceSpec(name: name, serviceRevision: "r1", platform: "linux/amd64", runtimeMode: .docker,
                                 docker: DockerTarget(containerName: name, imageReference: v1.reference),
                                 health: HealthPolicy(kind: .running, timeoutSecs: 30, pollIntervalSecs: 1, stableSecs: 2)),
            targetImageReference: v2.reference, targetImageID: v2.id, packageVersion: "2.0.0")
        var machine = UpdateMachine(plan: plan, startedAt: RealTestClock().timestamp())
        let journal = InMemoryJournal()
        let started = Date()
        let attempt = try UpdateDriver(host: host, journal: journal, clock: RealTestClock()).run(&machine)
        #expect(attempt.status == .succeeded, "\(attempt.issues)")
        // The old container got the time it needed and flushed before it exited.
        let flushed = (try? String(contentsOfFile: data + "/flushed", encoding: .utf8)) ?? ""
        #expect(flushed == "flushed-1\n")
        #expect(Date().timeIntervalSince(started) >= 15)
        let stop = journal.entries.first { $0.entry.step == "stop_container" && $0.entry.phase == .intent }
        #expect(stop?.entry.detail.contains("(grace 30s)") == true, "\(stop?.entry.detail ?? "no stop")")
        #expect(try host.inspectContainer(name)?.imageID == v2.id)

        // Control: the grace Caisson used to give (10 s) kills it mid-flush, nothing is written.
        try create(control, controlData)
        RealDocker.waitUntil(seconds: 10) { FileManager.default.fileExists(atPath: controlData + "/starts") }
        try host.stopContainer(control, graceSecs: 10)
        #expect(try host.inspectContainer(control)?.exitCode == 137)
        #expect(!FileManager.default.fileExists(atPath: controlData + "/flushed"))
    }

    /// The plan shows the grace the current container will get: `docker run --stop-timeout 30`
    /// shows 30 s (its own), a container run without it shows Docker's default (10 s).
    @Test(arguments: [30, nil] as [Int?])
    func thePlanShowsTheContainersStopTimeout(_ secs: Int?) throws {
        guard RealDocker.usable("stop timeout in the plan on Docker") else { return }
        let w = try EndToEndTests.World("stp\(secs ?? 0)")
        defer { w.cleanup() }
        try w.startFrontend(secs.map { ["--stop-timeout", String($0)] } ?? [])
        let pkg = try w.package("frontend-2.edgepkg", service: "frontend", version: "2.0.0", source: "caisson-test/app:2")
        let r = try w.caisson(["package", "load", pkg, "--dry-run"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let grace = secs ?? 10
        #expect(r.stdout.contains("Stop timeout: \(grace)s between SIGTERM and SIGKILL for the current container\n"), "\(r.stdout)")
        #expect(r.stdout.contains(secs == nil ? "(up to 10s after SIGTERM: Docker's default stop timeout)"
                                              : "(up to \(grace)s after SIGTERM: its own stop timeout)"), "\(r.stdout)")
        let json = try w.caisson(["package", "load", pkg, "--dry-run", "--json"])
        let plan = (try? JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])?["plan"] as? [String: Any]
        #expect(plan?["stop_grace_secs"] as? Int == grace, "\(json.stdout)")
    }
}
