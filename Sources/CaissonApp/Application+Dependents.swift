import CaissonCore

/// Containers sharing the service's network namespace (issue 10 item 7): the plan lists them, and
/// the update refuses (`update.network_dependents`) before any change unless the operator said
/// `--recreate-dependents`; then the engine recreates them against the new container.
extension Application {
    /// Docker mode: the containers whose `HostConfig.NetworkMode` is `container:<the service's
    /// container>` (Docker stores its id); Compose: the project's services with `network_mode:
    /// service:<the service>`. Sorted names.
    func networkDependents(of service: ServiceSpec, host: any ContainerHost) throws -> [String] {
        switch Result(catching: { () throws(HostError) -> [String] in try Self.listNetworkDependents(of: service, host: host) }) {
        case .success(let names): return names
        case .failure(let error):
            throw CaissonError("docker.inspect_failed", "could not list the containers sharing the network of \(service.name): \(error.message); nothing was changed")
        }
    }

    static func listNetworkDependents(of service: ServiceSpec, host: any ContainerHost) throws(HostError) -> [String] {
        switch service.runtimeMode {
        case .docker:
            guard let name = service.docker?.containerName, let c = try host.inspectContainer(name) else { return [] }
            return try host.listContainers().filter { other in
                guard other.id != c.id, let owner = other.networkOwner else { return false }
                return owner == c.id || owner == c.name || (owner.utf8.count >= 12 && c.id.hasPrefix(owner))
            }.map(\.name).sorted()
        case .compose:
            guard let target = service.compose else { return [] }
            return try host.composeServiceFacts(target).networkDependents
        }
    }

    /// The plan's steps for the dependents, and the refusal when the operator did not say go ahead.
    static func dependentsPlan(_ plan: inout LoadPlan, dependents: [String], recreate: Bool) -> Issue? {
        plan.networkDependents = dependents
        guard !dependents.isEmpty else { return nil }
        let names = dependents.joined(separator: ", ")
        guard recreate else {
            let how = plan.service.runtimeMode == .docker ? "--network container:\(plan.service.docker?.containerName ?? "")"
                                                          : "network_mode: service:\(plan.service.compose?.service ?? "")"
            return UpdateMachine.dependentsRefusal(dependents, of: plan.service.name, how: how)
        }
        // Before the health check (the last steps are the check and the rollback).
        let at = max(0, plan.steps.count - 2)
        switch plan.service.runtimeMode {
        case .docker:
            plan.steps.insert("stop \(names) (sharing its network) before it, then recreate \(dependents.count == 1 ? "it" : "them") against the new container, keeping the originals as NAME-caisson-rollback-… until the commit", at: at)
        case .compose:
            plan.steps.insert("docker compose up -d --no-deps \(dependents.joined(separator: " ")) (network_mode: service:\(plan.service.compose?.service ?? "")): Compose joins \(dependents.count == 1 ? "it" : "them") to the new container", at: at)
        }
        return nil
    }
}
