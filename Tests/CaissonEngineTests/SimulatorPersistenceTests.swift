import CaissonCore
import CaissonSimulator
import Foundation
import Testing

@Suite("Simulator: persistence")
struct SimulatorPersistenceTests {
    typealias F = SimFixture

    static func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "caisson-sim-tests-" + SeededIDGenerator(seed: UInt64(getpid())).next()
            + "-" + String(Int.random(in: 0..<1_000_000_000))
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A host with a bit of everything: images (one dangling), containers in several states,
    /// compose, a fault plan with a swarm, a moved clock.
    static func busyHost() throws -> SimulatedHost {
        let host = try F.hostWithApp(health: "crash", policy: .always)
        host.freeDiskBytes = 50_000
        _ = try host.loadImage(F.payload("app:1", F.v2, length: 2000), progress: { _ in })   // v1 left dangling
        try host.provisionCompose(target: ComposeTarget(project: "p", file: "/p.yaml", service: "s"), imageReference: F.v2,
                                  env: ["X=1"], ports: ["7000:7000"])
        _ = try host.createContainer(name: "app-next", cloning: "app", imageID: F.v2, labels: ["k": "v"])
        host.faultPlan = FaultPlan(rules: [.on(.startContainer, nth: 3, .timeout(millis: 1000))],
                                   swarm: SwarmFaults(seed: 5, kinds: [.fail, .slow(millis: 10)], probability: 0.1))
        host.clock.sleep(millis: 4321)
        _ = try host.inspectContainer("app")
        return host
    }

    @Test func saveThenLoadRoundTripsTheWholeState() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let host = try Self.busyHost()
        let path = dir + "/sim.json"
        try host.save(to: path)
        let loaded = try SimulatedHost.load(from: path)
        #expect(loaded.snapshot == host.snapshot)
        #expect(loaded.clock.nowMillis == host.clock.nowMillis)
        #expect(loaded.allContainers == host.allContainers)
        #expect(loaded.allImages == host.allImages)
        #expect(loaded.traceDigest == host.traceDigest)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["sim.json"])   // no temp file left
        // Both continue identically.
        for h in [host, loaded] { h.clock.sleep(millis: 10_000) }
        #expect(loaded.allContainers == host.allContainers)
        _ = simError { try host.startContainer("app-next") }
        _ = simError { try loaded.startContainer("app-next") }
        #expect(loaded.traceDigest == host.traceDigest)
        #expect(loaded.container("app-next") == host.container("app-next"))
    }

    @Test func savedBytesAreDeterministicWithSortedKeys() throws {
        let a = try Self.busyHost().encodedState()
        let b = try Self.busyHost().encodedState()
        #expect(a == b)
        let text = String(decoding: a, as: UTF8.self)
        let keys = ["\"callCount\"", "\"compose\"", "\"containers\"", "\"daemonRestarts\"", "\"faultPlan\"",
                    "\"format\"", "\"freeDiskBytes\"", "\"idRNG\"", "\"images\"", "\"names\"", "\"nowMillis\""]
        let positions = keys.compactMap { text.range(of: "\n  " + $0)?.lowerBound }   // top-level keys
        #expect(positions.count == keys.count)
        #expect(positions == positions.sorted())
    }

    @Test func overwritingKeepsAWholeFile() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/sim.json"
        let host = try Self.busyHost()
        try host.save(to: path)
        try host.runContainer(name: "more", imageReference: F.v2)
        try host.save(to: path)
        #expect(try SimulatedHost.load(from: path).container("more") != nil)
    }

    @Test func badFilesGiveClearErrors() throws {
        let dir = try Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func code(_ path: String) -> String? {
            do {
                _ = try SimulatedHost.load(from: path)
                return nil
            } catch let e as CaissonError {
                return e.code
            } catch {
                return "other"
            }
        }
        #expect(code(dir + "/missing.json") == "sim.state_read_failed")
        #expect(code(dir) == "sim.state_read_failed")
        try Data("{\"format\": 1, \"garbage".utf8).write(to: URL(fileURLWithPath: dir + "/torn.json"))
        #expect(code(dir + "/torn.json") == "sim.state_invalid")
        var state = try Self.busyHost().snapshot
        state.format = 99
        let encoder = JSONEncoder()
        try encoder.encode(state).write(to: URL(fileURLWithPath: dir + "/future.json"))
        #expect(code(dir + "/future.json") == "sim.state_invalid")
        #expect(throws: CaissonError.self) { try Self.busyHost().save(to: dir + "/no/such/dir/sim.json") }
    }

    @Test func hostileButWellFormedStatesDoNotTrap() throws {
        let host = try F.hostWithApp(health: "flap", stop: "ignore-sigterm", policy: .always)
        var state = host.snapshot
        for id in state.containers.keys.sorted() {
            state.containers[id]?.config.stopTimeoutSecs = Int.max
            state.containers[id]?.startedAtMillis = Int64.min
            state.containers[id]?.behaviour = .flap(periodMillis: 0)
            state.containers[id]?.backoffMillis = Int64.max
            state.containers[id]?.restartCount = Int.max
        }
        state.freeDiskBytes = Int64.min
        state.nowMillis = Int64.max - 10
        let loaded = try SimulatedHost(encodedState: try JSONEncoderForTests.encode(state))
        #expect(try loaded.inspectContainer("app")?.status == .running)
        try loaded.stopContainer("app", graceSecs: -1)      // the container's own (absurd) StopTimeout
        #expect(loaded.clock.nowMillis == Int64.max)
        loaded.restartDaemon(.graceful)
        try loaded.addImage(id: F.v3, tags: ["x:1"], sizeBytes: Int64.max)
        #expect(loaded.freeDiskBytes == Int64.min)
        #expect(simError { try loaded.loadImage(F.payload("app:9", F.v2), progress: { _ in }) }?.kind == .diskFull)
    }

    @Test func inconsistentStatesAreRefused() throws {
        var state = try F.hostWithApp().snapshot
        state.names = [:]
        #expect(throws: CaissonError.self) { try SimulatedHost(encodedState: try JSONEncoderForTests.encode(state)) }
    }
}

enum JSONEncoderForTests {
    static func encode(_ state: SimState) throws -> [UInt8] { Array(try JSONEncoder().encode(state)) }
}
