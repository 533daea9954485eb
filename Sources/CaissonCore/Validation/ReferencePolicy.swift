/// What a package may name and carry (issue 10 items 8 and 9). `docker load` applies the tag of
/// the manifest's `[image] reference`, and a container created from the image inherits its labels:
/// a package for one service must not be able to move another service's tag or pass its
/// containers off as another service's.
///
/// - A package may only set a reference in its own service's repository: Docker mode, the
///   repository of the catalog's `image_reference`; Compose, the repository of the service's
///   `image:` in the compose file (read from the host: `checkOnHost`).
/// - Never in `caisson-pin/*` (Caisson's own pins of previous releases).
/// - Never a tag another catalog service uses (its `image_reference`, or its compose `image:`),
///   nor a tag containers outside the service were created from (`checkOnHost`).
/// - Never image labels of the `com.docker.compose.*` family (Compose finds a service's
///   containers by them) or `io.caisson.*` (Caisson marks what it created with them). The
///   simulator's scripting family `io.caisson.sim.*` is allowed: only the simulator reads it, and
///   the real test images carry it so that one image behaves the same on both hosts.
public enum ReferencePolicy {
    public static let reservedLabelPrefixes = ["com.docker.compose.", "io.caisson."]
    /// Read only by `SimulatedHost`; inert on Docker.
    public static let simulatorLabelPrefix = "io.caisson.sim."
    /// The repository family of Caisson's pins (`UpdateMachine.pinReference`).
    public static let pinRepositoryPrefix = "caisson-pin/"

    /// The image labels a package may not carry, sorted.
    public static func reservedLabels(_ keys: [String]) -> [String] {
        keys.filter { key in
            !key.hasPrefix(simulatorLabelPrefix) && reservedLabelPrefixes.contains { key.hasPrefix($0) }
        }.sorted()
    }

    /// `image.reserved_label` for an image that carries reserved labels.
    public static func labelIssues(_ keys: [String]) -> [Issue] {
        let bad = reservedLabels(keys)
        guard !bad.isEmpty else { return [] }
        return [Issue("image.reserved_label", "the image carries label\(bad.count == 1 ? "" : "s") \(bad.joined(separator: ", ")): labels of the com.docker.compose.* and io.caisson.* families would make its container pass for another service's or for one Caisson created; a package may not set them")]
    }

    /// `repo:tag` normalized (default tag added), or nil for an invalid reference.
    public static func normalized(_ reference: String) -> ImageReference? {
        (try? ImageReference(reference))?.withDefaultTag()
    }

    /// The checks that need only the catalog (validation).
    public static func check(reference: String, service: ServiceSpec, catalog: Catalog) -> [Issue] {
        guard let ref = normalized(reference) else { return [] }  // the manifest check reports it
        var issues: [Issue] = []
        if ref.domain == ImageReference.defaultDomain && ref.path.hasPrefix(pinRepositoryPrefix) {
            issues.append(Issue("image.reference_reserved", "the package would tag \(ref.familiar): the \(pinRepositoryPrefix)* repository holds Caisson's pins of previous releases and no package may set it"))
            return issues
        }
        if service.runtimeMode == .docker, let own = service.docker.flatMap({ normalized($0.imageReference) }),
           own.repository != ref.repository {
            issues.append(Issue("image.reference_outside_service", "the package would tag \(ref.familiar), outside the repository \(own.familiarRepository) of service \(service.name) (its catalog image_reference \(own.familiar)); a package may only set references in its own service's repository"))
        }
        for other in catalog.services where other.name != service.name {
            if let theirs = other.docker.flatMap({ normalized($0.imageReference) }), theirs.normalized == ref.normalized {
                issues.append(Issue("image.reference_in_use", "the package for \(service.name) would move \(ref.familiar), the image_reference of catalog service \(other.name)"))
            }
        }
        return issues
    }

    /// The checks that need the host (the preflight, before anything changes): the compose
    /// file's image for a Compose service, other catalog Compose services' images, and the
    /// containers outside the service created from the reference. A host that cannot answer is
    /// an error, not a pass.
    public static func checkOnHost(reference: String, service: ServiceSpec, catalog: Catalog,
                                   host: any ContainerHost) throws(HostError) -> [Issue] {
        guard let ref = normalized(reference) else { return [] }
        var issues: [Issue] = []
        if service.runtimeMode == .compose, let target = service.compose {
            guard let image = try host.composeServiceFacts(target).image else {
                issues.append(Issue("image.reference_outside_service", "compose service \(target.service) of \(service.name) names no image: in \(target.file); Caisson updates a service by its image reference"))
                return issues
            }
            if let own = normalized(image), own.repository != ref.repository {
                issues.append(Issue("image.reference_outside_service", "the package would tag \(ref.familiar), outside the repository \(own.familiarRepository) of compose service \(target.service) (image: \(image) in \(target.file)); a package may only set references in its own service's repository"))
            }
        }
        var holders: [String] = []
        for other in catalog.services where other.name != service.name && other.runtimeMode == .compose {
            guard let target = other.compose, let image = try host.composeServiceFacts(target).image,
                  let theirs = normalized(image), theirs.normalized == ref.normalized else { continue }
            holders.append("the image of catalog service \(other.name) (compose service \(target.service))")
        }
        let ownIDs = try ownContainerIDs(service, host: host)
        var users: [String] = []
        for c in try host.listContainers() where !ownIDs.contains(c.id) {
            if let theirs = normalized(c.imageReference), theirs.normalized == ref.normalized { users.append(c.name) }
        }
        if !users.isEmpty {
            holders.append("the reference container\(users.count == 1 ? "" : "s") \(users.sorted().joined(separator: ", ")) outside the service \(users.count == 1 ? "was" : "were") created from")
        }
        if !holders.isEmpty {
            issues.append(Issue("image.reference_in_use", "the package for \(service.name) would move \(ref.familiar): \(holders.joined(separator: "; "))"))
        }
        return issues
    }

    /// The service's own containers: Docker mode, the container under its name and Caisson's
    /// `NAME-caisson-*` companions; Compose, the service's containers.
    static func ownContainerIDs(_ service: ServiceSpec, host: any ContainerHost) throws(HostError) -> [String] {
        switch service.runtimeMode {
        case .docker:
            guard let name = service.docker?.containerName else { return [] }
            return try host.listContainers().filter { $0.name == name || $0.name.hasPrefix(name + "-caisson-") }.map(\.id)
        case .compose:
            guard let target = service.compose else { return [] }
            return try host.composeContainers(target).map(\.id)
        }
    }
}
