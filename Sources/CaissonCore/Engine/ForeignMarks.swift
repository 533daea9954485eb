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

extension ForeignMarks {
    /// Another live Caisson changing `service` right now (the holder of its host-wide lock),
    /// when that process works with another state directory than `stateDirectory`: what
    /// `recover` shows instead of "nothing to recover" (its marks are that process's, not
    /// leftovers; in Compose mode there are no marks at all, only the lock).
    public static func liveElsewhere(service: ServiceSpec, serviceLocks: any LockSpace, stateDirectory: String?) -> LockHolder? {
        guard let h = serviceLocks.holder(of: OperationLocks.serviceLockName(service)) else { return nil }
        if let mine = stateDirectory, h.stateDirectory == mine { return nil }
        return h
    }

    /// For `recover` in this state directory: every catalog service another live Caisson is
    /// changing now (in progress, left alone), and the unfinished marks of one that is gone
    /// (`update.foreign_attempt`: this state directory cannot recover them).
    public static func survey(services: [ServiceSpec], serviceLocks: any LockSpace, stateDirectory: String?,
                              host: any ContainerHost, journal: any UpdateJournal) throws -> (live: [LockHolder], leftovers: [Issue]) {
        var live: [LockHolder] = []
        var leftovers: [Issue] = []
        for service in services {
            if let h = liveElsewhere(service: service, serviceLocks: serviceLocks, stateDirectory: stateDirectory) {
                live.append(h)
                continue
            }
            let marks = try find(service: service, host: host, journal: journal)
            if !marks.isEmpty { leftovers.append(Issue("update.foreign_attempt", message(service: service, marks: marks))) }
        }
        return (live, leftovers)
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
