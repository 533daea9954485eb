import CaissonCore
import CaissonStore
import Foundation
import Testing

@Suite struct RecordTests {
    @Test func validationRecordsRoundTripAndUpsert() throws {
        try withStore { store, _ in
            let accepted = Fixtures.validation("v1")
            try store.recordValidation(accepted)
            try store.recordValidation(Fixtures.validation("v2", service: nil, status: .rejected))
            #expect(try store.validation("v1") == accepted)
            #expect(try store.validation("nope") == nil)
            var changed = accepted
            changed.issues = [CaissonCore.Issue("image.read_failed", "late")]
            try store.recordValidation(changed)
            #expect(try store.validation("v1") == changed)
            #expect(try store.validations().records.map(\.validationAttemptID) == ["v2", "v1"])
            #expect(try store.validations(service: "frontend").records.map(\.validationAttemptID) == ["v1"])
            #expect(try store.validations(limit: 1).records.count == 1)
        }
    }

    @Test func importRecordsRoundTrip() throws {
        try withStore { store, _ in
            let record = ImageImportRecord(importID: "i1", validationAttemptID: "v1", serviceName: "frontend",
                                           imageReference: "example/frontend:1.2.3", imageID: "sha256:abc",
                                           status: "succeeded", issues: [], startedAt: "2026-03-16T18:30:00Z",
                                           finishedAt: "2026-03-16T18:30:09Z")
            try store.recordImport(record)
            #expect(try store.imageImport("i1") == record)
            #expect(try store.imageImports(service: "frontend").records == [record])
            #expect(try store.imageImports(service: "backend").records.isEmpty)
        }
    }

    @Test func candidateReleasesNewestFirstPerService() throws {
        try withStore { store, _ in
            try store.recordCandidateRelease(Fixtures.release("cr-1"))
            try store.recordCandidateRelease(Fixtures.release("cr-2"))
            try store.recordCandidateRelease(Fixtures.release("cr-b", service: "backend"))
            try store.recordCandidateRelease(Fixtures.release("cr-1"))  // upsert keeps its place
            #expect(try store.candidateRelease("cr-2") == Fixtures.release("cr-2"))
            #expect(try store.candidateRelease("missing") == nil)
            #expect(try store.candidateReleases(service: "frontend").records.map(\.candidateReleaseID) == ["cr-2", "cr-1"])
        }
    }

    @Test func serviceStatesSetGetAndListSorted() throws {
        try withStore { store, _ in
            try store.setServiceState(Fixtures.state("zeta"))
            try store.setServiceState(Fixtures.state("alpha"))
            let updated = Fixtures.state("zeta", active: "cr-9", at: "2026-03-17T00:00:00Z")
            try store.setServiceState(updated)
            #expect(try store.serviceState("zeta") == updated)
            #expect(try store.serviceState("nobody") == nil)
            #expect(try store.serviceStates().records.map(\.serviceName) == ["alpha", "zeta"])
        }
    }

    /// Newest first follows insertion order, not the timestamp strings (which may be skewed).
    @Test func updateAttemptsNewestFirstByInsertionOrder() throws {
        try withStore { store, _ in
            try store.recordUpdateAttempt(Fixtures.attempt("a-1", startedAt: "2026-03-16T18:30:00Z"))
            try store.recordUpdateAttempt(Fixtures.attempt("a-2", service: "backend", startedAt: "2030-01-01T00:00:00Z"))
            try store.recordUpdateAttempt(Fixtures.attempt("a-3", startedAt: "2020-01-01T00:00:00Z"))
            try store.recordUpdateAttempt(Fixtures.attempt("a-1", status: .succeeded))  // update in place
            #expect(try store.updateAttempts().records.map(\.updateID) == ["a-3", "a-2", "a-1"])
            #expect(try store.updateAttempts(service: "frontend").records.map(\.updateID) == ["a-3", "a-1"])
            #expect(try store.updateAttempts(limit: 2).records.map(\.updateID) == ["a-3", "a-2"])
            #expect(try store.updateAttempts(limit: 0).records.isEmpty)
            #expect(try store.updateAttempt("a-1")?.status == .succeeded)
        }
    }

    @Test func updateAttemptByUniquePrefixOfAtLeastEightCharacters() throws {
        try withStore { store, _ in
            try store.recordUpdateAttempt(Fixtures.attempt("1F3A9C2E-0000-4000-8000-000000000001"))
            try store.recordUpdateAttempt(Fixtures.attempt("1f3a9c2e-1111-4000-8000-000000000002"))
            try store.recordUpdateAttempt(Fixtures.attempt("77aa88bb-0000-4000-8000-000000000003"))
            #expect(try store.updateAttempt("77aa88bb")?.updateID == "77aa88bb-0000-4000-8000-000000000003")
            #expect(try store.updateAttempt("77AA88BB-0000")?.updateID == "77aa88bb-0000-4000-8000-000000000003")
            #expect(try store.updateAttempt("77aa88b") == nil)  // too short for a prefix
            #expect(try store.updateAttempt("1f3a9c2e-1")?.updateID == "1f3a9c2e-1111-4000-8000-000000000002")
            #expect(try store.updateAttempt("%%%%%%%%") == nil)  // no LIKE wildcards
            let error = expectCaissonError("store.ambiguous_id") { _ = try store.updateAttempt("1f3a9c2e") }
            #expect(error?.message.contains("1F3A9C2E-0000-4000-8000-000000000001") == true)
            #expect(try store.updateAttempt("deadbeef-nope") == nil)
        }
    }

    @Test func closedStoreGivesAStoreErrorNotACrash() throws {
        try withStore { store, _ in
            store.close()
            expectCaissonError("store.query_failed") { _ = try store.serviceStates() }
        }
    }
}
