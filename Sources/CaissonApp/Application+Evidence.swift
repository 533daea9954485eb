import CaissonCore
import CaissonStore

/// One update attempt with everything recorded about it: for `history show` and the console.
public struct AttemptDetail: Sendable, Encodable {
    public var attempt: UpdateAttempt
    public var auditEvents: [AuditEvent]
    /// Failure evidence (issue 12): the failed containers' state and log tails, secrets redacted.
    public var evidence: [FailureEvidence]
    /// Records that could not be read back, as sentences.
    public var notes: [String]

    enum CodingKeys: String, CodingKey {
        case attempt, evidence, notes
        case auditEvents = "audit_events"
    }
}

extension Application {
    /// The attempt with this id (or unique prefix of 8+ characters), its audit events and its
    /// failure evidence; nil when there is no such attempt.
    public func attemptDetail(_ idOrPrefix: String) throws -> AttemptDetail? {
        let store = try store()
        guard let a = try store.updateAttempt(idOrPrefix) else { return nil }
        let events = try store.auditEvents(updateID: a.updateID)
        let evidence = try store.failureEvidence(updateID: a.updateID)
        return AttemptDetail(attempt: a, auditEvents: events.records.map(\.event), evidence: evidence.records,
                             notes: (events.unreadable + evidence.unreadable).map(\.message))
    }

    /// The failure evidence of one attempt (empty when there is none).
    public func failureEvidence(updateID: String) throws -> [FailureEvidence] {
        try store().failureEvidence(updateID: updateID).records
    }
}
