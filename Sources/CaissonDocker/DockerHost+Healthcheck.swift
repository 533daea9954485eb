import CaissonCore

extension DockerHost {
    /// Docker mode: the container's own `Config.Healthcheck` when it differs from its image's
    /// (what an update carries over, see `ContainerClonePlan`); Compose: the file's `healthcheck:`.
    public func configuredHealthcheck(for service: ServiceSpec) throws(HostError) -> Bool? {
        switch service.runtimeMode {
        case .docker:
            guard let name = service.docker?.containerName else { return nil }
            return try run { () throws -> Bool? in
                guard let c = try client.inspectContainerIfPresent(name) else { return nil }
                guard let own = c.config.raw["Healthcheck"], own != .null else { return nil }
                let image = try client.inspectImageIfPresent(c.image)
                if let image, image.config.raw["Healthcheck"] == own { return nil }
                return own["Test"]?.stringArrayValue?.first != "NONE"
            }
        case .compose:
            guard let target = service.compose else { return nil }
            return try composeService(target).service.healthcheck
        }
    }
}
