import CaissonCore

/// Compose (issue 10 item 2): among the compose service's containers, another Caisson's
/// unfinished marks. That Caisson (another state directory, another catalog) took the compose
/// container `stack-app-1` for a Docker-mode service and was interrupted updating it: its clone
/// carries the compose labels it was cloned with and its `io.caisson.update-id`, so Compose
/// counts it as a member of `app`: the simulator's `docker compose up` removes it (the other
/// Caisson's only copy of the previous release); Compose v2.40 starts a stopped one beside the
/// recreated container instead (a known difference of the model; the real-Docker test checks
/// that it stays stopped). The update must refuse before any change
/// (`update.foreign_attempt`) and leave it where it is.
public enum ForeignMark: String, Sendable, Hashable, Codable, CaseIterable {
    /// Its backup of the previous container, `stack-app-1-caisson-rollback-f00dfeed` (not running).
    case backupName
    /// Its new container, created and never started: `stack-app-1-caisson-new-f00dfeed`.
    case newName
}

extension UpdateScenario {
    /// The other Caisson's update.
    public static let foreignUpdateID = "f00dfeed-0000-4000-8000-0000000000aa"

    public static func foreignMarkName(_ mark: ForeignMark) -> String {
        "stack-app-1" + (mark == .backupName ? "-caisson-rollback-" : "-caisson-new-") + UpdateMachine.idTag(of: foreignUpdateID)
    }

    /// Puts `mark` on `host`, beside the compose service `target`'s container.
    static func provisionForeignMark(_ mark: ForeignMark, host: SimulatedHost, target: ComposeTarget) {
        let labels = [SimulatedHost.composeProjectLabel: target.project, SimulatedHost.composeServiceLabel: target.service,
                      "com.docker.compose.container-number": "1", "com.docker.compose.oneoff": "False",
                      UpdateMachine.updateLabel: foreignUpdateID]
        _ = try? host.runContainer(name: foreignMarkName(mark), imageReference: "example/app:current", restartPolicy: .no,
                                   labels: labels, start: false)
    }

    /// Refused before any change, the mark left alone.
    func foreignMarkViolations() -> [String] {
        guard let mark = config.foreignMark else { return [] }
        var out: [String] = []
        let name = Self.foreignMarkName(mark)
        if host.simContainer(name) == nil { out.append("another Caisson's unfinished mark \(name) was removed") }
        switch refusal?.code {
        case "update.foreign_attempt":
            if refusal?.message.contains(name) != true { out.append("the refusal does not name \(name): \(refusal?.message ?? "")") }
        case "compose.image_lookup_failed":
            break // the listing failed (an armed fault): refused all the same
        case let code?:
            out.append("refused with \(code), not update.foreign_attempt")
        case nil:
            out.append("the update went ahead over another Caisson's unfinished mark \(name) (\(attempt?.status.rawValue ?? "no attempt"))")
        }
        let changes = host.mutatingCallCount - mutatingCallsAtStart
        if changes > 0 { out.append("the host was changed \(changes) time(s) over another Caisson's unfinished mark") }
        return out
    }
}
