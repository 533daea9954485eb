@testable import CaissonApp
import CaissonCore
import Foundation
import Testing

/// The console's hand-over seam (issue 14 item 5): a long-running process learns that a
/// self-update replaced its executable since it started, and with which version.
@Suite struct SelfUpdateHandOverTests {
    static func app() -> Application {
        var o = AppOptions()
        o.stateDir = FileManager.default.temporaryDirectory.appendingPathComponent("caisson-handover-\(UUID().uuidString)").path
        o.host = .sim
        return Application(options: o)
    }

    static func record(_ id: String, kind: String = "update", status: SelfUpdateStatus, from: String, to: String,
                       path: String, finished: String) -> SelfUpdateRecord {
        var r = SelfUpdateRecord(selfUpdateID: id, kind: kind, status: status, installPath: path, previousPath: path + ".previous",
                                 fromVersion: from, toVersion: to, startedAt: "2026-12-03T10:00:00Z")
        r.finishedAt = finished
        return r
    }

    func write(_ app: Application, _ r: SelfUpdateRecord) throws {
        try app.store().write(SelfUpdateJournalWrite(record: r, phase: .note, step: "finish", detail: "test", machine: nil,
                                                     at: r.finishedAt ?? r.startedAt, events: []))
    }

    @Test func aSelfUpdateAfterTheStartIsHandedOver() throws {
        let app = Self.app()
        let me = try #require(Application.runningExecutablePath())
        #expect(try app.selfUpdateHandOver(since: "2026-12-03T09:00:00Z") == nil)
        try write(app, Self.record("11111111-0000-0000-0000-000000000000", status: .succeeded, from: Application.version,
                                   to: "9.9.9", path: me, finished: "2026-12-03T10:05:00Z"))
        let h = try #require(try app.selfUpdateHandOver(since: "2026-12-03T09:00:00Z"))
        #expect(h.installedVersion == "9.9.9")
        #expect(h.runningVersion == Application.version)
        #expect(h.installPath == me)
        #expect(h.message.contains("restart"))
        // Before this process started: the installed one is what runs (nothing to hand over).
        #expect(try app.selfUpdateHandOver(since: "2026-12-03T11:00:00Z") == nil)
        // Another install path: not ours.
        #expect(try app.selfUpdateHandOver(since: "2026-12-03T09:00:00Z", installPath: "/elsewhere/caisson") == nil)
    }

    @Test func aFailedOrRolledBackUpdateLeavesTheRunningVersion() throws {
        let app = Self.app()
        let me = try #require(Application.runningExecutablePath())
        try write(app, Self.record("22222222-0000-0000-0000-000000000000", status: .failed, from: Application.version,
                                   to: "9.9.9", path: me, finished: "2026-12-03T10:05:00Z"))
        #expect(try app.selfUpdateHandOver(since: "2026-12-03T09:00:00Z") == nil)
        try write(app, Self.record("33333333-0000-0000-0000-000000000000", status: .rolledBack, from: Application.version,
                                   to: "9.9.9", path: me, finished: "2026-12-03T10:06:00Z"))
        #expect(try app.selfUpdateHandOver(since: "2026-12-03T09:00:00Z") == nil)
        // A rollback to an older version after this process started: hand over to it.
        try write(app, Self.record("44444444-0000-0000-0000-000000000000", kind: "rollback", status: .rolledBack, from: Application.version,
                                   to: "0.0.1", path: me, finished: "2026-12-03T10:07:00Z"))
        #expect(try app.selfUpdateHandOver(since: "2026-12-03T09:00:00Z")?.installedVersion == "0.0.1")
    }
}
