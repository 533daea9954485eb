import CaissonCore
@testable import CaissonStore
import Foundation
import Testing

/// Issue 11 item 1: a state directory written by the real Rust caisson 0.1.0
/// (`fixtures/rust-state/state`, see its README) is imported with nothing lost.
@Suite struct RustImportTests {
    static var fixture: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("fixtures/rust-state/state").path
    }

    /// A copy of the real directory as `<tmp>/state` (the store opens inside it).
    static func copy(_ dir: TempDir) throws -> String {
        try FileManager.default.copyItem(atPath: fixture, toPath: dir.stateDir)
        return dir.stateDir
    }

    /// Every file of the Rust tool's layout with its bytes (to prove they are left untouched).
    static func snapshot(_ root: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for folder in RustStateImport.folders + ["audit", "staging"] {
            guard let e = FileManager.default.enumerator(atPath: root + "/" + folder) else { continue }
            for case let rel as String in e {
                let p = root + "/" + folder + "/" + rel
                var isDir: ObjCBool = false
                if FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue {
                    out[folder + "/" + rel] = try Data(contentsOf: URL(fileURLWithPath: p))
                }
            }
        }
        return out
    }

    static let now = "2027-01-01T00:00:00Z"

    @Test func theRealDirectoryIsImportedWithNothingLost() throws {
        try withTempDir { dir in
            let root = try Self.copy(dir)
            let before = try Self.snapshot(root)
            #expect(before.count == 4 + 3 + 3 + 3 + 1 + 1 + 4)
            #expect(RustStateImport.isPresent(in: root))
            let store = try CaissonStore(stateDirectory: root)
            defer { store.close() }
            #expect(try !RustStateImport.wasImported(into: store))
            let report = try RustStateImport.run(store: store, directory: root, now: Self.now)
            #expect(report.skipped == [])
            #expect(report.notes == [])
            #expect(report.imported.serviceStates == 1)
            #expect(report.imported.updateAttempts == 3)
            #expect(report.imported.validationRecords == 4)
            #expect(report.imported.imageImportRecords == 3)
            #expect(report.imported.candidateReleases == 3)
            #expect(report.imported.auditEvents == 27)
            #expect(try RustStateImport.wasImported(into: store))

            // Attempts: ids, statuses, timestamps as the Rust tool wrote them, newest first.
            let attempts = try store.updateAttempts().records
            #expect(attempts.map(\.updateID) == ["dbf8ede0-09cf-4f9b-b73b-158f467a7bd6",
                                                  "02db28ac-2dc2-4f38-aefe-d0647f8517d6",
                                                  "e7e978ff-1a4b-4e3f-9450-277de100baab"])
            #expect(attempts.map(\.status) == [.rolledBack, .succeeded, .succeeded])
            let rolled = attempts[0]
            #expect(rolled.startedAt == "2026-12-03T08:39:44.359047401Z")
            #expect(rolled.finishedAt == "2026-12-03T08:39:49.708066501Z")
            #expect(rolled.healthCheck?.outcome == .failed)
            #expect(rolled.healthCheck?.kind == .containerHealth)
            #expect(rolled.issues == [Issue("health_check.failed", "containers reported unhealthy: caisson-it-frontend")])
            #expect(rolled.targetImageID == "sha256:f4beb8a7b43d6d06365da30dc98763e6d408a337270054439c8724112a061423")
            #expect(rolled.packageVersion == "7.0.0")
            #expect(rolled.previousImageID == "sha256:c35f9293be19ca77ef004fb16873d24f4508c75fbe8f48089cf5e601bd6bfad0")
            #expect(rolled.rollbackContainerName == "caisson-it-frontend-caisson-rollback-dbf8ede0")
            #expect(attempts[2].previousCandidateReleaseID == nil)
            #expect(attempts[2].previousImageReference == "example/frontend:current")
            #expect(try store.inFlightAttempts().isEmpty)

            // The service state, with the downgrade floor of what the Rust tool left active.
            let state = try #require(try store.serviceState("frontend"))
            #expect(state.activeImageReference == "example/frontend:1.0.0")
            #expect(state.activeCandidateReleaseID == "9572a33e-b168-47e2-bfa6-6471f4355b82")
            #expect(state.activeImageID == "sha256:c35f9293be19ca77ef004fb16873d24f4508c75fbe8f48089cf5e601bd6bfad0")
            #expect(state.previousKnownGoodImageReference == "example/frontend:2.0.0")
            #expect(state.previousKnownGoodImageID == "sha256:b1e82a6f17f2d4b4e0adf4bac505e219402cb21ed40a06d76116cb6e6dbb9157")
            #expect(state.highestPackageVersion == "1.0.0")
            #expect(state.newestCreatedAt == "2026-03-16T18:30:00Z")
            #expect(state.updatedAt == "2026-12-03T08:39:49.708064508Z")

            // Validations, imports, releases.
            let rejected = try #require(try store.validation("20e7e13b-9d0f-4766-bf07-c5619ab32bf6"))
            #expect(rejected.status == .rejected)
            #expect(rejected.issues.map(\.code) == ["package.updater_too_old"])
            #expect(rejected.packagePath == "/media/usb/manifest-updater-too-old.edgepkg")
            #expect(rejected.packageSize == 2150400)
            #expect(try store.validations().records.count == 4)
            let imp = try #require(try store.imageImport("01a3cd3c-0f33-4be9-9516-af7d680e4a4d"))
            #expect(imp.status == "succeeded")
            #expect(imp.imageID == "sha256:c35f9293be19ca77ef004fb16873d24f4508c75fbe8f48089cf5e601bd6bfad0")
            #expect(imp.finishedAt == "2026-12-03T08:39:35.43967122Z")
            let release = try #require(try store.candidateRelease("bf37eeba-7850-444f-9da1-263eeff4a60d"))
            #expect(release.packageVersion == "2.0.0")
            #expect(release.repoTags == ["caisson-test/app:2", "example/frontend:2.0.0"])
            #expect(release.architecture == "amd64")
            #expect(try store.candidateReleases(service: "frontend").records.count == 3)

            // The audit chain starts from the imported events, marked, in the Rust tool's order.
            let events = try store.auditEvents().records
            #expect(events.count == 28)
            #expect(events.first?.event.kind == .validationStarted)
            #expect(events.first?.event.message == "[imported from the Rust tool, event cd37ab76-3ac5-44d3-bfe4-87ab3004fed5] started validating package `/media/usb/manifest-updater-too-old.edgepkg`")
            #expect(events.dropLast().allSatisfy { $0.event.message.hasPrefix(RustStateImport.eventPrefix) })
            #expect(events.last?.event.kind == .stateImported)
            #expect(events.last?.event.message.contains("27 audit events") == true)
            let ofRollback = try store.auditEvents(updateID: "dbf8ede0-09cf-4f9b-b73b-158f467a7bd6").records.map(\.event.kind)
            #expect(ofRollback == [.updateStarted, .healthCheckStarted, .healthCheckFailed, .rollbackStarted, .rollbackSucceeded])
            let ofValidation = try store.auditEvents(validationID: "27e42923-14b0-46e3-b4b1-3e4f09720189").records
            #expect(ofValidation.map(\.event.kind).prefix(4) == [.validationStarted, .validationAccepted, .imageImportStarted, .imageImportSucceeded])
            #expect(ofValidation.allSatisfy { $0.event.serviceName == "frontend" })
            #expect(try store.verifyAuditChain().firstBreak == nil)

            // The JSON files are untouched.
            #expect(try Self.snapshot(root) == before)
        }
    }

    @Test func importingTwiceImportsNothingTwice() throws {
        try withTempDir { dir in
            let root = try Self.copy(dir)
            let store = try CaissonStore(stateDirectory: root)
            defer { store.close() }
            let first = try RustStateImport.run(store: store, directory: root, now: Self.now)
            let second = try RustStateImport.run(store: store, directory: root, now: Self.now)
            #expect(second.imported.total == 0)
            #expect(second.alreadyPresent == first.imported)
            #expect(try store.updateAttempts().records.count == 3)
            #expect(try store.auditEvents().records.count == 27 + 2)
            #expect(try store.verifyAuditChain().firstBreak == nil)
        }
    }

    /// Resumable: an import cut short after some records (here: the audit log appears only on
    /// the second run, as after a crash before the events were appended) completes without
    /// duplicates; records Caisson already has (its own newer service state) are kept.
    @Test func anInterruptedImportCompletesOnTheNextRun() throws {
        try withTempDir { dir in
            let root = try Self.copy(dir)
            let log = root + "/" + RustStateImport.auditLog
            try FileManager.default.moveItem(atPath: log, toPath: dir.path + "/events.jsonl")
            let store = try CaissonStore(stateDirectory: root)
            defer { store.close() }
            // As if the first run died after two attempts were written.
            let partial = try RustStateImport.run(store: store, directory: root, now: Self.now)
            #expect(partial.imported.updateAttempts == 3)
            #expect(partial.imported.auditEvents == 0)
            var mine = try #require(try store.serviceState("frontend"))
            mine.activeImageReference = "example/frontend:8.0.0"
            try store.setServiceState(mine)
            try FileManager.default.moveItem(atPath: dir.path + "/events.jsonl", toPath: log)
            let rest = try RustStateImport.run(store: store, directory: root, now: Self.now)
            #expect(rest.imported.auditEvents == 27)
            #expect(rest.imported.updateAttempts == 0)
            #expect(rest.alreadyPresent.updateAttempts == 3)
            #expect(rest.alreadyPresent.serviceStates == 1)
            #expect(try store.serviceState("frontend")?.activeImageReference == "example/frontend:8.0.0")
            #expect(try store.verifyAuditChain().firstBreak == nil)
        }
    }

    /// Damaged copies: a truncated file, an unknown status, a bad event line, a symbolic link —
    /// each reported and skipped; everything else imported.
    @Test func damagedRecordsAreReportedAndSkipped() throws {
        try withTempDir { dir in
            let root = try Self.copy(dir)
            let truncated = root + "/update-attempts/e7e978ff-1a4b-4e3f-9450-277de100baab.json"
            let text = try String(contentsOfFile: truncated, encoding: .utf8)
            try String(text.prefix(200)).write(toFile: truncated, atomically: false, encoding: .utf8)
            let unknown = root + "/update-attempts/02db28ac-2dc2-4f38-aefe-d0647f8517d6.json"
            try (try String(contentsOfFile: unknown, encoding: .utf8))
                .replacingOccurrences(of: "\"status\": \"succeeded\"", with: "\"status\": \"paused_forever\"")
                .write(toFile: unknown, atomically: false, encoding: .utf8)
            let rejected = root + "/validation-records/20e7e13b-9d0f-4766-bf07-c5619ab32bf6.json"
            try (try String(contentsOfFile: rejected, encoding: .utf8))
                .replacingOccurrences(of: "\"status\": \"rejected\"", with: "\"status\": \"maybe\"")
                .write(toFile: rejected, atomically: false, encoding: .utf8)
            let log = root + "/" + RustStateImport.auditLog
            var lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n").map(String.init)
            lines[3] = String(lines[3].prefix(40))
            lines[5] = lines[5].replacingOccurrences(of: "image_import_succeeded", with: "image_teleported")
            try (lines.joined(separator: "\n") + "\n").write(toFile: log, atomically: false, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: root + "/candidate-releases/zz-link.json",
                                                       withDestinationPath: root + "/candidate-releases/bf37eeba-7850-444f-9da1-263eeff4a60d.json")

            let store = try CaissonStore(stateDirectory: root)
            defer { store.close() }
            let r = try RustStateImport.run(store: store, directory: root, now: Self.now)
            #expect(r.skipped.map(\.code).sorted() == ["import.unknown_kind", "import.unknown_status", "import.unknown_status",
                                                       "import.unreadable_record", "import.unreadable_record", "import.unreadable_record"])
            #expect(r.skipped.contains { $0.message.hasPrefix("update-attempts/e7e978ff-1a4b-4e3f-9450-277de100baab.json: not valid JSON") })
            #expect(r.skipped.contains { $0.message.hasPrefix("update-attempts/02db28ac-2dc2-4f38-aefe-d0647f8517d6.json: unknown status \"paused_forever\"") })
            #expect(r.skipped.contains { $0.message.hasPrefix("audit/events.jsonl line 4:") })
            #expect(r.skipped.contains { $0.message.hasPrefix("candidate-releases/zz-link.json: it is a symbolic link") })
            #expect(r.imported.updateAttempts == 1)
            #expect(r.imported.validationRecords == 3)
            #expect(r.imported.candidateReleases == 3)
            #expect(r.imported.auditEvents == 25)
            #expect(r.imported.serviceStates == 1)
            // The floor survives: the active release's version is still known.
            #expect(try store.serviceState("frontend")?.highestPackageVersion == "1.0.0")
            #expect(try store.updateAttempt("dbf8ede0-09cf-4f9b-b73b-158f467a7bd6")?.status == .rolledBack)
            #expect(try store.auditEvents().records.last?.event.message.contains("[import.unknown_status]") == true)
        }
    }

    /// An attempt the Rust tool never finished is not left for Caisson's recovery to take as
    /// its own: it is imported closed (failed), with a note.
    @Test func anUnfinishedRustAttemptIsImportedClosed() throws {
        try withTempDir { dir in
            let root = try Self.copy(dir)
            let path = root + "/update-attempts/dbf8ede0-09cf-4f9b-b73b-158f467a7bd6.json"
            try (try String(contentsOfFile: path, encoding: .utf8))
                .replacingOccurrences(of: "\"status\": \"rolled_back\"", with: "\"status\": \"health_checking\"")
                .replacingOccurrences(of: "\"finished_at\": \"2026-12-03T08:39:49.708066501Z\"", with: "\"finished_at\": null")
                .write(toFile: path, atomically: false, encoding: .utf8)
            let store = try CaissonStore(stateDirectory: root)
            defer { store.close() }
            let r = try RustStateImport.run(store: store, directory: root, now: Self.now)
            #expect(r.notes.map(\.code) == ["import.unfinished_attempt"])
            let a = try #require(try store.updateAttempt("dbf8ede0-09cf-4f9b-b73b-158f467a7bd6"))
            #expect(a.status == .failed)
            #expect(a.issues.last?.code == "import.unfinished_attempt")
            #expect(try store.inFlightAttempts().isEmpty)
        }
    }
}
