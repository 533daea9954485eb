import CaissonCore
import CaissonStore
import Foundation
import Testing

@Suite struct RetentionTests {
    @Test func deleteValidationsFinishedBeforeKeepsReferencedOnes() throws {
        try withStore { store, _ in
            try store.recordValidation(Fixtures.validation("old", finishedAt: "2026-01-01T00:00:00Z"))
            try store.recordValidation(Fixtures.validation("old-used", finishedAt: "2026-01-02T00:00:00Z"))
            try store.recordValidation(Fixtures.validation("frac", finishedAt: "2026-03-01T00:00:00.5Z"))
            try store.recordValidation(Fixtures.validation("new", finishedAt: "2026-03-16T00:00:00Z"))
            try store.recordCandidateRelease(Fixtures.release("cr-1", validation: "old-used"))
            // Fractional seconds and offsets compare as times, not strings.
            #expect(try store.deleteValidations(finishedBefore: "2026-03-01T00:00:01+00:00") == 2)
            #expect(try store.validations().records.map(\.validationAttemptID) == ["new", "old-used"])
            expectCaissonError("store.invalid_timestamp") { _ = try store.deleteValidations(finishedBefore: "yesterday") }
        }
    }

    @Test func deleteValidationsKeepingNewest() throws {
        try withStore { store, _ in
            for i in 1...5 { try store.recordValidation(Fixtures.validation("v\(i)")) }
            try store.recordCandidateRelease(Fixtures.release("cr-1", validation: "v1"))
            #expect(try store.deleteValidations(keepingNewest: 2) == 2)
            #expect(try store.validations().records.map(\.validationAttemptID) == ["v5", "v4", "v1"])
        }
    }

    @Test func stagedPackagesRecordListRemoveAndExpire() throws {
        try withStore { store, dir in
            let a = StagedPackage(packageID: "p-a", path: "/s/a.edgepkg", originalPath: "/media/a.edgepkg", size: 10,
                                  sha256: "aa", serviceName: "frontend", stagedAt: "2026-03-01T00:00:00Z")
            let b = StagedPackage(packageID: "p-b", path: "/s/b.edgepkg", stagedAt: "2026-03-02T00:00:00Z")
            let c = StagedPackage(packageID: "p-c", path: "/s/c.edgepkg", stagedAt: "2026-03-20T00:00:00Z")
            for p in [a, b, c] { try store.recordStagedPackage(p) }
            #expect(try store.stagedPackage("p-a") == a)
            #expect(try store.stagedPackages().records == [a, b, c])
            #expect(try store.removeStagedPackage("p-c"))
            #expect(try !store.removeStagedPackage("p-c"))
            // A damaged row is still returned (from its typed columns), so its file can be removed.
            try SQLiteDatabase(path: dir.databasePath).run("UPDATE staged_packages SET record = '{' WHERE package_id = 'p-b'")
            let deleted = try store.deleteStagedPackages(stagedBefore: "2026-03-10T00:00:00Z")
            #expect(deleted.map(\.packageID) == ["p-a", "p-b"])
            #expect(deleted.map(\.path) == ["/s/a.edgepkg", "/s/b.edgepkg"])
            #expect(deleted.first == a)
            #expect(try store.stagedPackages().records.isEmpty)
        }
    }
}
