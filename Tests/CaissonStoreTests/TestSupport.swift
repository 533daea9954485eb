import CaissonCore
import CaissonStore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A fresh temporary directory, removed by `remove()` (call it in a `defer`).
struct TempDir {
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "caisson-store-test-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let base = buffer.baseAddress, let result = mkdtemp(base) else { return nil }
            return String(cString: result)
        }
        path = try #require(made, "mkdtemp failed")
    }

    /// A state directory inside the temp dir (not yet created: the store creates it).
    var stateDir: String { path + "/state" }
    var databasePath: String { stateDir + "/caisson.db" }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Runs `body` with a fresh temp dir and removes it afterwards.
@discardableResult
func withTempDir<T>(_ body: (TempDir) throws -> T) throws -> T {
    let dir = try TempDir()
    defer { dir.remove() }
    return try body(dir)
}

@discardableResult
func withStore<T>(_ body: (CaissonStore, TempDir) throws -> T) throws -> T {
    try withTempDir { dir in
        let store = try CaissonStore(stateDirectory: dir.stateDir)
        defer { store.close() }
        return try body(store, dir)
    }
}

/// Expects `body` to throw a `CaissonError` with this code; returns it for more checks.
@discardableResult
func expectCaissonError(_ code: String, sourceLocation: SourceLocation = #_sourceLocation,
                        _ body: () throws -> Void) -> CaissonError? {
    do {
        try body()
        Testing.Issue.record("expected error \(code), got success", sourceLocation: sourceLocation)
        return nil
    } catch let error as CaissonError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Testing.Issue.record("expected CaissonError \(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

enum Fixtures {
    static func attempt(_ id: String, service: String = "frontend", status: UpdateStatus = .applying,
                        startedAt: String = "2026-03-16T18:30:00Z") -> UpdateAttempt {
        UpdateAttempt(updateID: id, candidateReleaseID: "cr-\(id)", validationAttemptID: "val-\(id)",
                      serviceName: service, runtimeMode: .docker,
                      targetImageReference: "example/\(service):1.2.3", targetImageID: "sha256:abc",
                      packageVersion: "1.2.3", previousImageReference: "example/\(service):current",
                      rollbackContainerName: "\(service)-caisson-rollback-\(id.prefix(8))",
                      status: status, startedAt: startedAt,
                      healthCheck: status == .succeeded
                          ? HealthCheckRecord(kind: .running, outcome: .passed, message: "running",
                                              checkedAt: startedAt)
                          : nil,
                      issues: status == .failed ? [CaissonCore.Issue("docker.start_failed", "boom")] : [])
    }

    static func validation(_ id: String, service: String? = "frontend", finishedAt: String = "2026-03-16T18:30:05Z",
                           status: ValidationStatus = .accepted) -> ValidationRecord {
        ValidationRecord(validationAttemptID: id, packagePath: "/tmp/\(id).edgepkg", packageSize: 1234,
                         status: status, serviceName: service, packageVersion: "1.2.3",
                         imageReference: "example/frontend:1.2.3", imageID: "sha256:abc",
                         imageLayers: ["sha256:l1", "sha256:l2"], imageSize: 999,
                         imageTarSHA256: "deadbeef",
                         issues: status == .rejected ? [CaissonCore.Issue("manifest.parse_failed", "bad")] : [],
                         startedAt: "2026-03-16T18:30:00Z", finishedAt: finishedAt)
    }

    static func release(_ id: String, service: String = "frontend", validation: String? = nil) -> CandidateRelease {
        CandidateRelease(candidateReleaseID: id, serviceName: service, packageVersion: "1.2.3",
                         imageReference: "example/\(service):1.2.3", imageID: "sha256:\(id)",
                         repoTags: ["example/\(service):1.2.3"], repoDigests: [],
                         architecture: "amd64", os: "linux", validationAttemptID: validation,
                         packageCreatedAt: "2026-03-16T18:00:00Z", createdAt: "2026-03-16T18:30:10Z")
    }

    static func state(_ service: String, active: String? = "cr-1", at: String = "2026-03-16T18:31:00Z") -> ServiceState {
        ServiceState(serviceName: service, activeCandidateReleaseID: active,
                     activeImageReference: "example/\(service):1.2.3", activeImageID: "sha256:abc",
                     highestPackageVersion: "1.2.3", newestCreatedAt: "2026-03-16T18:00:00Z", updatedAt: at)
    }

    static func event(_ kind: AuditKind = .updateStarted, update: String? = nil, validation: String? = nil,
                      service: String? = "frontend", message: String = "event") -> AuditEvent {
        AuditEvent(kind: kind, at: "2026-03-16T18:30:00Z", serviceName: service, updateID: update,
                   validationAttemptID: validation, message: message)
    }

    static func machine(_ updateID: String, service: String = "frontend") -> UpdateMachine {
        let spec = ServiceSpec(name: service, serviceRevision: "\(service)-v1", platform: "linux/amd64",
                               runtimeMode: .docker,
                               docker: DockerTarget(containerName: service, imageReference: "example/\(service):current"))
        let plan = UpdateMachine.Plan(updateID: updateID, candidateReleaseID: "cr-\(updateID)",
                                      validationAttemptID: "val-\(updateID)", service: spec,
                                      targetImageReference: "example/\(service):1.2.3", targetImageID: "sha256:abc")
        return UpdateMachine(plan: plan, startedAt: "2026-03-16T18:30:00Z")
    }

    static func entry(_ step: String, phase: JournalPhase = .intent, update: String = "u") -> JournalEntry {
        JournalEntry(phase: phase, step: step, detail: "detail of \(step)", machine: machine(update),
                     at: "2026-03-16T18:30:01Z")
    }
}

/// A python3 interpreter for child-process tests (crash and lock), if one is installed.
enum Python {
    static let path: String? = {
        let candidates = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
            .split(separator: ":").map { "\($0)/python3" } + ["/usr/bin/python3"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    static var available: Bool { path != nil }

    /// Starts `python3 -c script args…` with stdin and stdout on pipes.
    static func start(_ script: String, _ arguments: [String]) throws -> Child {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(path))
        process.arguments = ["-c", script] + arguments
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        return Child(process: process, stdin: stdin, stdout: stdout, stderr: stderr)
    }

    final class Child {
        let process: Process
        let stdin: Pipe
        let stdout: Pipe
        let stderr: Pipe

        init(process: Process, stdin: Pipe, stdout: Pipe, stderr: Pipe) {
            self.process = process
            self.stdin = stdin
            self.stdout = stdout
            self.stderr = stderr
        }

        var pid: Int32 { process.processIdentifier }

        /// Blocks until the child writes a line (or exits: then nil).
        func readLine() -> String? {
            var bytes: [UInt8] = []
            while true {
                let data = stdout.fileHandleForReading.readData(ofLength: 1)
                guard let byte = data.first else { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
                if byte == 0x0A { return String(decoding: bytes, as: UTF8.self) }
                bytes.append(byte)
            }
        }

        func killHard() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }

        var stderrText: String {
            String(decoding: stderr.fileHandleForReading.availableData, as: UTF8.self)
        }
    }
}
