/// Containers that share the service's network namespace (issue 10 item 7): `docker run
/// --network container:NAME` (Docker stores the previous container's id) and Compose
/// `network_mode: service:X`. Replacing the service's container cuts them off (they keep running
/// without a network, and cannot even be restarted: their namespace owner is the stopped
/// backup), so the update either refuses before any change (`update.network_dependents`), or,
/// when told to go ahead, moves them with it:
///
/// Docker mode: list them before anything changes → stop the running ones (each with its own
/// stop timeout) before the previous container → once the new container runs, for each: rename
/// it to `NAME-caisson-rollback-<id>` and create its copy under its name joined to the new
/// container (`createDependentContainer`), started if it was running → health-check the
/// service → commit removes the renamed originals. The restore converges each back: our copy
/// stopped and removed, the original renamed back, and started again (joined to the restored
/// previous container's current run) if it was running.
///
/// Compose mode: `docker compose up -d --no-deps` of those services after the service's own
/// apply and after the restore's (Compose joins them to the current container).
extension UpdateMachine {
    public struct Dependent: Sendable, Codable, Equatable {
        public var id: String
        public var name: String
        public var wasRunning: Bool
        public var stopTimeoutSecs: Int?
        /// Our copy, once created.
        public var newID: String?
    }

    public static func dependentsRefusal(_ names: [String], of owner: String, how: String) -> Issue {
        Issue("update.network_dependents", "\(names.count == 1 ? "container" : "containers") \(names.joined(separator: ", ")) \(names.count == 1 ? "shares" : "share") the network namespace of \(owner) (\(how)): replacing it would cut \(names.count == 1 ? "it" : "them") off the network. Run the update with --recreate-dependents to recreate \(names.count == 1 ? "it" : "them") against the new container (and restore \(names.count == 1 ? "it" : "them") on rollback); nothing was changed")
    }

    func dependentBackupName(_ d: Dependent) -> String { "\(d.name)-caisson-rollback-\(idTag)" }

    /// Does `c` share the previous container's network namespace?
    func sharesOldNetwork(_ c: ContainerInfo) -> Bool {
        guard let owner = c.networkOwner, c.id != oldContainerID, let oldID = oldContainerID else { return false }
        if owner == oldID || owner == oldContainerName { return true }
        // A unique id prefix names it too (Docker stores the full id; be lenient).
        return owner.utf8.count >= 12 && oldID.hasPrefix(owner)
    }

    // MARK: Forward

    mutating func stopNextDependent(from index: Int) -> Action {
        let deps = dependents ?? []
        var i = index
        while i < deps.count && !deps[i].wasRunning { i += 1 }
        if i < deps.count {
            dependentIndex = i
            dependentsTouched = true
            needsPersist = true
            phase = .stopDependent
            return .call(.stopContainer(deps[i].id, graceSecs: deps[i].stopTimeoutSecs ?? ContainerInfo.defaultStopTimeoutSecs))
        }
        phase = .stopOld
        return .call(.stopContainer(oldContainerID!, graceSecs: oldStopGraceSecs))
    }

    mutating func recreateNextDependent(from index: Int, now: Int64, _ timestamp: String) -> Action {
        let deps = dependents ?? []
        guard index < deps.count else { return leavesServiceStopped ? commitLeftStopped(timestamp) : beginHealth(now: now, timestamp) }
        dependentIndex = index
        dependentsTouched = true
        needsPersist = true
        phase = .renameDependentAway
        return .call(.renameContainer(deps[index].id, to: dependentBackupName(deps[index])))
    }

    // MARK: Commit

    /// Each original is stopped (a no-op when it is: a daemon restart under `--restart always`
    /// may have started it again, joined to the backup) and then removed without force.
    mutating func commitNextDependent(from index: Int, _ timestamp: String) -> Action {
        let deps = dependents ?? []
        guard index < deps.count else { return commit(timestamp) }
        dependentIndex = index
        needsPersist = true
        phase = .commitStopDependent
        return .call(.stopContainer(deps[index].id, graceSecs: deps[index].stopTimeoutSecs ?? ContainerInfo.defaultStopTimeoutSecs))
    }

    // MARK: Restore

    mutating func restoreNextDependent(from index: Int, now: Int64, _ timestamp: String) -> Action {
        let deps = dependents ?? []
        guard dependentsTouched == true, index < deps.count else { return restoreHealthBegin(now: now, timestamp) }
        dependentIndex = index
        needsPersist = true
        phase = .restoreDepInspectName
        return .call(.inspectContainer(deps[index].name))
    }

    /// The dependent under the current index is in place under its name: start it if it was
    /// running and has not joined the restored container's current run.
    mutating func restoreDependentState(_ timestamp: String) -> Action {
        guard let i = dependentIndex, let deps = dependents, i < deps.count else { return unexpected(nil, timestamp) }
        let d = deps[i]
        phase = .restoreDepInspectState
        return .call(.inspectContainer(d.id))
    }

    // MARK: Transitions

    mutating func nextDependents(_ input: Input, now: Int64, _ timestamp: String) -> Action {
        guard case .reply(let reply) = input else {
            // (Recovery resumes in the restore, never in these phases; a wake here is a bug.)
            return unexpected(nil, timestamp, input: input)
        }
        let i = dependentIndex ?? 0
        let deps = dependents ?? []
        let d: Dependent? = i < deps.count ? deps[i] : nil
        switch phase {
        case .listDependents:
            switch reply {
            case .containers(let all):
                let found = all.filter(sharesOldNetwork).sorted { $0.name < $1.name }
                if !found.isEmpty && plan.recreateNetworkDependents != true {
                    return fail(Self.dependentsRefusal(found.map(\.name), of: serviceContainerName, how: "--network container:\(serviceContainerName)"), timestamp)
                }
                dependents = found.map { Dependent(id: $0.id, name: $0.name, wasRunning: $0.isRunning || $0.status == .restarting,
                                                   stopTimeoutSecs: $0.stopTimeoutSecs) }
                return proceedToTarget()
            case .error(let e):
                return fail(Issue("docker.service_inspect_failed", "could not list the containers that may share the network of \(serviceContainerName): \(e.message)"), timestamp)
            default:
                return unexpected(reply, timestamp)
            }

        case .stopDependent:
            if case .error(let e) = reply {
                return startRestore(Issue("docker.stop_failed", "could not stop container \(d?.name ?? "?"), which shares the network of \(serviceContainerName): \(e.message)"), timestamp)
            }
            return stopNextDependent(from: i + 1)

        case .renameDependentAway:
            guard let d else { return unexpected(reply, timestamp) }
            if case .error(let e) = reply {
                return startRestore(Issue("docker.rename_failed", "could not rename \(d.name) to \(dependentBackupName(d)): \(e.message)"), timestamp)
            }
            phase = .createDependent
            return .call(.createDependentContainer(name: d.name, template: d.id, owner: newContainerID ?? serviceContainerName,
                                                   labels: [Self.updateLabel: plan.updateID]))

        case .createDependent:
            guard let d else { return unexpected(reply, timestamp) }
            switch reply {
            case .created(let id):
                dependents?[i].newID = id
                needsPersist = true
                if d.wasRunning && !leavesServiceStopped {
                    phase = .startDependent
                    return .call(.startContainer(id))
                }
                return recreateNextDependent(from: i + 1, now: now, timestamp)
            case .error(let e):
                return startRestore(Issue("docker.create_failed", "could not recreate \(d.name) sharing the network of the new container: \(e.message)"), timestamp)
            default:
                return unexpected(reply, timestamp)
            }

        case .startDependent:
            if case .error(let e) = reply {
                return startRestore(Issue("docker.start_failed", "could not start the recreated \(d?.name ?? "?"): \(e.message)"), timestamp)
            }
            return recreateNextDependent(from: i + 1, now: now, timestamp)

        case .composeDependents:
            if case .error(let e) = reply {
                return startRestore(Issue("compose.apply_failed", "docker compose could not recreate \((plan.composeNetworkDependents ?? []).joined(separator: ", ")) against the new container: \(e.message)"), timestamp)
            }
            return beginHealth(now: now, timestamp)

        case .commitStopDependent:
            guard let d else { return unexpected(reply, timestamp) }
            if case .error(let e) = reply {
                // Never force-remove a running container (SIGKILL): keep it for cleanup.
                attempt.issues.append(Issue("docker.cleanup_failed", "the update succeeded but the previous \(d.name) (now \(dependentBackupName(d))) could not be stopped: \(e.message); `caisson package cleanup` will retry"))
                return commitNextDependent(from: i + 1, timestamp)
            }
            phase = .commitRemoveDependent
            return .call(.removeStoppedContainer(d.id))

        case .commitRemoveDependent:
            if case .error(let e) = reply, e.kind == .conflict, (commitRetries ?? 0) < Self.maxCommitRetries {
                // Running again (a daemon restart under `--restart always`): stop it first.
                commitRetries = (commitRetries ?? 0) + 1
                return commitNextDependent(from: i, timestamp)
            }
            if case .error(let e) = reply, let d {
                attempt.issues.append(Issue("docker.cleanup_failed", "the update succeeded but the previous \(d.name) (now \(dependentBackupName(d))) could not be removed: \(e.message); `caisson package cleanup` will retry"))
            }
            return commitNextDependent(from: i + 1, timestamp)

        // Restore, one dependent at a time.
        case .restoreDepInspectName:
            guard let d else { return unexpected(reply, timestamp) }
            switch reply {
            case .container(let c?) where c.id == d.id:
                return restoreDependentState(timestamp)
            case .container(let c?) where c.id == d.newID || c.labels[Self.updateLabel] == plan.updateID:
                removingID = c.id
                if c.isRunning || c.status == .restarting {
                    phase = .restoreDepStopClone
                    return .call(.stopContainer(c.id, graceSecs: c.stopGraceSecs))
                }
                phase = .restoreDepRemoveClone
                return .call(.removeStoppedContainer(c.id))
            case .container(let c?):
                attempt.issues.append(Issue("rollback.rename_failed", "container \(c.name) (\(shortID(c.id))) holds the name of \(d.name) and was not created by this update; the previous \(d.name) stays \(dependentBackupName(d))"))
                return restoreNextDependent(from: i + 1, now: now, timestamp)
            case .container(nil):
                phase = .restoreDepInspectOriginal
                return .call(.inspectContainer(d.id))
            case .error(let e):
                return restoreRetry(Issue("rollback.inspect_failed", "could not inspect \(d.name): \(e.message)"), timestamp)
            default:
                return unexpected(reply, timestamp)
            }

        case .restoreDepStopClone:
            if case .error(let e) = reply {
                return restoreRetry(Issue("rollback.stop_failed", "could not stop the recreated \(d?.name ?? "?"): \(e.message)"), timestamp)
            }
            phase = .restoreDepRemoveClone
            return .call(.removeStoppedContainer(removingID ?? d?.newID ?? ""))

        case .restoreDepRemoveClone:
            if case .error(let e) = reply {
                return restoreRetry(Issue("rollback.remove_failed", "could not remove the recreated \(d?.name ?? "?"): \(e.message)"), timestamp)
            }
            removingID = nil
            dependents?[i].newID = nil
            needsPersist = true
            guard let d else { return unexpected(reply, timestamp) }
            phase = .restoreDepInspectOriginal
            return .call(.inspectContainer(d.id))

        case .restoreDepInspectOriginal:
            guard let d else { return unexpected(reply, timestamp) }
            switch reply {
            case .container(let c?) where c.name == d.name:
                return restoreDependentState(timestamp)
            case .container(_?):
                phase = .restoreDepRenameBack
                return .call(.renameContainer(d.id, to: d.name))
            case .container(nil):
                attempt.issues.append(Issue("rollback.dependent_lost", "container \(d.name) (\(shortID(d.id))), which shared the network of \(serviceContainerName), no longer exists"))
                return restoreNextDependent(from: i + 1, now: now, timestamp)
            case .error(let e):
                return restoreRetry(Issue("rollback.inspect_failed", "could not inspect the previous \(d.name): \(e.message)"), timestamp)
            default:
                return unexpected(reply, timestamp)
            }

        case .restoreDepRenameBack:
            if case .error(let e) = reply {
                return restoreRetry(Issue("rollback.rename_failed", "could not rename the previous \(d?.name ?? "?") back: \(e.message)"), timestamp)
            }
            return restoreDependentState(timestamp)

        case .restoreDepInspectState:
            guard let d else { return unexpected(reply, timestamp) }
            switch reply {
            case .container(let c?):
                guard d.wasRunning else { return restoreNextDependent(from: i + 1, now: now, timestamp) }
                if c.isRunning {
                    // Joined before the restored container's current run: its namespace is gone.
                    if let since = serviceStartedAt.flatMap(Timestamps.parse), let started = Timestamps.parse(c.startedAt), started < since {
                        phase = .restoreDepStopStale
                        return .call(.stopContainer(c.id, graceSecs: c.stopGraceSecs))
                    }
                    return restoreNextDependent(from: i + 1, now: now, timestamp)
                }
                phase = .restoreDepStart
                return .call(.startContainer(c.id))
            case .container(nil):
                return restoreNextDependent(from: i + 1, now: now, timestamp)
            case .error(let e):
                return restoreRetry(Issue("rollback.inspect_failed", "could not inspect the previous \(d.name): \(e.message)"), timestamp)
            default:
                return unexpected(reply, timestamp)
            }

        case .restoreDepStopStale:
            guard let d else { return unexpected(reply, timestamp) }
            if case .error(let e) = reply {
                return restoreRetry(Issue("rollback.stop_failed", "could not stop \(d.name) to rejoin the restored container: \(e.message)"), timestamp)
            }
            phase = .restoreDepStart
            return .call(.startContainer(d.id))

        case .restoreDepStart:
            if case .error(let e) = reply {
                return restoreRetry(Issue("rollback.start_failed", "could not start the previous \(d?.name ?? "?"): \(e.message)"), timestamp)
            }
            return restoreNextDependent(from: i + 1, now: now, timestamp)

        case .restoreComposeDependents:
            if case .error(let e) = reply {
                return restoreRetry(Issue("rollback.compose_apply_failed", "docker compose could not recreate \((plan.composeNetworkDependents ?? []).joined(separator: ", ")) against the restored container: \(e.message)"), timestamp)
            }
            return restoreHealthBegin(now: now, timestamp)

        default:
            return unexpected(reply, timestamp)
        }
    }
}
