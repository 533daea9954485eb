/// Marks of an unfinished update that this state directory did not run.
///
/// An update in Docker mode leaves marks on the host while it runs: the new container is created
/// as `NAME-caisson-new-<tag>` (labelled `io.caisson.update-id`), the previous one is kept as
/// `NAME-caisson-rollback-<tag>` until the commit removes it. A Caisson with another state
/// directory (a relative `--state-dir` typed in another folder, a second installation) cannot
/// see that update in its own journal: before touching the service it looks for such marks, and
/// refuses (`update.foreign_attempt`) when one carries a tag that no attempt of its own has.
///
/// Compose mode leaves no such mark (Compose recreates the service's container under its own
/// name); there the host-wide service lock is the guard against a concurrent update.
public enum ForeignMarks {
    /// The containers of `service` that carry another state directory's unfinished marks (empty
    /// in Compose mode). Throws `docker.service_inspect_failed` when the host cannot be listed.
    public static func find(service: ServiceSpec, host: any ContainerHost, journal: any UpdateJournal) throws -> [ContainerInfo] {
        guard service.runtimeMode == .docker, let name = service.docker?.containerName else { return [] }
        let newPrefix = name + "-caisson-new-"
        let backupPrefix = name + "-caisson-rollback-"
        let found: [ContainerInfo]
        do {
            found = try host.listContainers(namePrefixes: [newPrefix, backupPrefix], label: nil)
        } catch {
            throw CaissonError("docker.service_inspect_failed", "could not look for unfinished updates of \(service.name) on the host: \(error.message); nothing was changed")
        }
        guard !found.isEmpty else { return [] }
        let ownTags = try journal.updateIDs(service: service.name).map(UpdateMachine.idTag(of:))
        return found.filter { c in
            let tag = c.name.hasPrefix(newPrefix) ? String(c.name.dropFirst(newPrefix.count)) : String(c.name.dropFirst(backupPrefix.count))
            return !ownTags.contains(tag)
        }
    }

    /// Throws `update.foreign_attempt` naming the marks and how to recover, when there are any.
    public static func refuse(service: ServiceSpec, host: any ContainerHost, journal: any UpdateJournal) throws {
        let marks = try find(service: service, host: host, journal: journal)
        guard !marks.isEmpty else { return }
        throw CaissonError("update.foreign_attempt", message(service: service, marks: marks))
    }

    public static func message(service: ServiceSpec, marks: [ContainerInfo]) -> String {
        let list = marks.map { "\($0.name) (\($0.status.rawValue)\($0.labels[UpdateMachine.updateLabel].map { ", update \($0)" } ?? ""))" }
            .joined(separator: ", ")
        return "service \(service.name) carries the marks of an unfinished update that this state directory did not run: \(list). "
            + "Another Caisson with another state directory is updating it, or was interrupted doing so; nothing was changed. "
            + "Run `caisson recover` with that state directory (--state-dir or CAISSON_STATE_DIR). If it no longer exists: "
            + "when \(service.docker?.containerName ?? service.name) is missing or not running, rename the -caisson-rollback- "
            + "container back to it and start it; then remove the -caisson-new- and -caisson-rollback- containers left over."
    }
}

extension Error {
    /// The sentence to show an operator.
    var message: String {
        if let e = self as? HostError { return e.message }
        if let e = self as? CaissonError { return e.message }
        return "\(self)"
    }
}
