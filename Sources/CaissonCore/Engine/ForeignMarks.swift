/// Marks of an unfinished update that this state directory did not run.
///
/// An update in Docker mode leaves marks on the host while it runs: the new container is created
/// as `NAME-caisson-new-<tag>` (labelled `io.caisson.update-id`), the previous one is kept as
/// `NAME-caisson-rollback-<tag>` until the commit removes it. A Caisson with another state
/// directory (a relative `--state-dir` typed in another folder, a second installation) cannot
/// see that update in its own journal: before touching the service it looks for such marks, and
/// refuses (`update.foreign_attempt`) when one carries a tag that no attempt of its own has.
///
/// A Compose update of Caisson leaves no such mark (Compose recreates the service's container
/// under its own name); there the host-wide service lock is the guard against a concurrent
/// update of another Caisson. But the compose service's containers may carry the marks of
/// another Caisson that took its container for a Docker-mode service (see `findCompose`).
public enum ForeignMarks {
    /// The containers of `service` that carry another state directory's unfinished marks.
    /// Throws `docker.service_inspect_failed` (Compose: `compose.image_lookup_failed`) when the
    /// host cannot be listed.
    public static func find(service: ServiceSpec, host: any ContainerHost, journal: any UpdateJournal) throws -> [ContainerInfo] {
        if service.runtimeMode == .compose { return try findCompose(service: service, host: host, journal: journal) }
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
        if let target = service.compose, service.runtimeMode == .compose {
            return "compose service \(target.project)/\(target.service) (\(service.name)) has containers carrying the marks of an unfinished update that this state directory did not run: \(list). "
                + "Another Caisson with another state directory (whose catalog takes the container for a Docker-mode service) is updating it, or was interrupted doing so; "
                + "docker compose up would take them for the service's own (and start a stopped one). Nothing was changed. Run `caisson recover` with that state directory (--state-dir or CAISSON_STATE_DIR). "
                + "If it no longer exists: make sure the service's own container runs (docker compose up -d --no-deps \(target.service)), "
                + "then remove the -caisson-new- and -caisson-rollback- containers left over, and recreate a container that only carries the io.caisson.update-id label "
                + "(docker compose up -d --no-deps --force-recreate \(target.service))."
        }
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

extension ForeignMarks {
    /// The name infixes of an update's temporary containers.
    static let markInfixes = ["-caisson-new-", "-caisson-rollback-"]

    /// Compose: the members of the compose service (by its `com.docker.compose.*` labels, in any
    /// state) that carry an update's marks, a `-caisson-new-`/`-caisson-rollback-` name or an
    /// `io.caisson.update-id` label, of an update that no attempt of this state directory has.
    /// A Compose update of Caisson leaves neither (Compose recreates the container under its
    /// own name, from the file): they come from another Caisson that took the service's
    /// container for a Docker-mode service (another state directory, another catalog) and
    /// cloned it with its compose labels. `docker compose up` counts them as the service's
    /// containers: Compose v2.40 starts a stopped one beside the recreated container (that
    /// Caisson's backup of the previous release running as a second copy of the service; the
    /// simulator's Compose removes it instead). Either way that Caisson's update is broken.
    static func findCompose(service: ServiceSpec, host: any ContainerHost, journal: any UpdateJournal) throws -> [ContainerInfo] {
        guard let target = service.compose else { return [] }
        let members: [ContainerInfo]
        do {
            members = try host.composeContainers(target)
        } catch {
            throw CaissonError("compose.image_lookup_failed", "could not look for unfinished updates of \(service.name) on the host: \(error.message); nothing was changed")
        }
        let marked = members.filter { $0.labels[UpdateMachine.updateLabel] != nil || nameTag($0.name) != nil }
        guard !marked.isEmpty else { return [] }
        let ownTags = try journal.updateIDs(service: service.name).map(UpdateMachine.idTag(of:))
        return marked.filter { c in
            let tag = c.labels[UpdateMachine.updateLabel].map(UpdateMachine.idTag(of:)) ?? nameTag(c.name) ?? ""
            return !ownTags.contains(tag)
        }
    }

    /// What follows the last mark infix in `name` (nil: no mark infix).
    static func nameTag(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        var best: Int?
        for infix in markInfixes {
            let needle = Array(infix.utf8)
            guard bytes.count >= needle.count else { continue }
            var i = bytes.count - needle.count
            while i >= 0 {
                if bytes[i..<(i + needle.count)].elementsEqual(needle) {
                    if best.map({ i + needle.count > $0 }) ?? true { best = i + needle.count }
                    break
                }
                i -= 1
            }
        }
        return best.map { String(decoding: bytes[$0...], as: UTF8.self) }
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
