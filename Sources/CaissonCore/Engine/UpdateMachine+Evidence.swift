/// Failure evidence (issue 12): before a failed new container is removed (and when a restore
/// fails), the machine asks the host to capture each container's state and log tail. The
/// evidence rides out with the next journal write (`takeEvidence`), never in the machine's
/// snapshot; a capture that fails is noted in the evidence, and never stops the restore.
extension UpdateMachine {
    /// What to do once the evidence is captured.
    enum AfterEvidence: Sendable, Equatable {
        case restore(Issue)
        case finishFailed
        case restoreFailed(Issue)
    }

    /// The new release's containers: the new container (Docker), or the service's containers on
    /// the new image at the last look (Compose).
    var newReleaseContainers: [String] {
        if plan.service.runtimeMode == .docker { return newContainerID.map { [$0] } ?? [] }
        return (health?.lastObserved ?? []).filter { $0.imageID == plan.targetImageID }.map(\.id)
    }

    /// The previous release's containers, when restoring it failed.
    var previousReleaseContainers: [String] {
        if plan.service.runtimeMode == .docker { return oldContainerID.map { [$0] } ?? [] }
        guard let old = oldImageID else { return [] }
        return (health?.lastObserved ?? []).filter { $0.imageID == old }.map(\.id)
    }

    mutating func captureEvidence(of containers: [String], role: FailureEvidence.Role, then next: AfterEvidence,
                                  _ timestamp: String) -> Action {
        evidenceQueue = containers.filter { !evidenceTaken.contains($0) }
        evidenceRole = role
        afterEvidence = next
        return nextEvidence(timestamp)
    }

    mutating func nextEvidence(_ timestamp: String) -> Action {
        if let id = evidenceQueue.first {
            phase = .captureEvidence
            return .call(.captureEvidence(container: id, role: evidenceRole))
        }
        let next = afterEvidence
        afterEvidence = nil
        switch next {
        case .restore(let issue)?: return startRestore(issue, timestamp)
        case .finishFailed?: return finishKeepingNewRelease(timestamp)
        case .restoreFailed(let issue)?: return endRestoreFailed(issue, timestamp)
        case nil: return unexpected(nil, timestamp, input: .woke)
        }
    }

    mutating func afterEvidenceReply(_ reply: Reply, now: Int64, _ timestamp: String) -> Action {
        if let id = evidenceQueue.first {
            evidenceQueue.removeFirst()
            evidenceTaken.append(id)
        }
        if case .evidence(let e) = reply {
            pendingEvidence.append(e)
            needsPersist = true
        }
        return nextEvidence(timestamp)
    }
}
