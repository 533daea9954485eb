import CaissonCore
import CaissonStore

extension Application {
    /// The failure evidence of one attempt (issue 12; empty when there is none), with a sentence
    /// for each record that could not be read back.
    public func failureEvidence(updateID: String) throws -> (records: [FailureEvidence], notes: [String]) {
        let list = try store().failureEvidence(updateID: updateID)
        return (list.records, list.unreadable.map(\.message))
    }
}

extension FailureEvidence {
    /// What became of the container, in plain words for a front end (the console): the reason
    /// first, no codes but the exit code.
    public var plainSentence: String {
        let who = role == .new ? "The new version" : "The previous version"
        guard let st = state else {
            return problems.isEmpty ? "\(who) left nothing to look at." : "\(who) could not be looked at: \(problems.joined(separator: "; "))."
        }
        if st.oomKilled {
            return "\(who) ran out of memory and was stopped by the system."
        }
        switch st.status {
        case .exited, .dead:
            return st.exitCode == 0 ? "\(who) stopped by itself." : "\(who) stopped with an error (exit code \(st.exitCode))."
        case .restarting:
            return "\(who) kept crashing and restarting."
        case .running:
            if st.health == .unhealthy { return "\(who) was running but reported itself unhealthy." }
            return "\(who) was running but did not pass its health check."
        case .created, .paused, .removing:
            return "\(who) never got going (it was \(st.status.rawValue))."
        }
    }
}
