import CaissonCore

/// A package whose `[image] reference` may be hostile (issue 10 item 8), on a host where three
/// catalog services run (`frontend` in Docker mode, `backend` and `worker` in one Compose project)
/// beside a container outside the catalog (`cron`, created from `example/backend:cron`). The
/// package targets `backend`. The run does what `package load` does: validation's reference
/// checks, the preflight against the host (with the drawn faults armed), and only if both pass,
/// the load and the update. The oracle is the menu's: which references must be refused.
public final class HostileReferenceScenario {
    /// The references the swarm draws from, with whether a package for `backend` may set them.
    public static let menu: [(reference: String, allowed: Bool)] = [
        ("example/backend:2.0.0", true),
        ("docker.io/example/backend:2.0.0", true),
        ("example/backend:current", true),          // its own compose reference: durable
        ("example/frontend:current", false),        // another catalog service's tag
        ("example/worker:current", false),          // another compose service's image
        ("example/backend:cron", false),            // a container outside the service uses it
        ("example/other:1.0", false),               // another repository
        ("caisson-pin/backend:0123456789ab", false),
        ("caisson-pin/frontend:0123456789ab", false),
    ]

    /// Image labels the swarm draws for the package's image (issue 10 item 9), with whether a
    /// package may carry them. The simulator's own `io.caisson.sim.*` family stays allowed.
    public static let labelMenu: [(labels: [String: String], allowed: Bool)] = [
        ([:], true),
        (["io.caisson.sim.flush_secs": "0"], true),
        (["org.opencontainers.image.version": "2.0.0"], true),
        ([SimulatedHost.composeProjectLabel: "stack", SimulatedHost.composeServiceLabel: "worker"], false),
        (["com.docker.compose.config-hash": "0"], false),
        (["io.caisson.update-id": "4057113e-0000-4000-8000-000000000001"], false),
    ]

    public static let catalog: Catalog = {
        let text = """
        catalog_version = 1
        [[services]]
        name = "frontend"
        service_revision = "frontend-v1"
        platform = "linux/amd64"
        runtime_mode = "docker"
        [services.docker]
        container_name = "frontend"
        image_reference = "example/frontend:current"
        [[services]]
        name = "backend"
        service_revision = "backend-v1"
        platform = "linux/amd64"
        runtime_mode = "compose"
        [services.compose]
        project = "stack"
        file = "/srv/stack/compose.yaml"
        service = "backend"
        [[services]]
        name = "worker"
        service_revision = "worker-v1"
        platform = "linux/amd64"
        runtime_mode = "compose"
        [services.compose]
        project = "stack"
        file = "/srv/stack/compose.yaml"
        service = "worker"
        """
        // A fixed, valid catalog: parsing cannot fail.
        return (try? Catalog.parse(Array(text.utf8), path: "/srv/services.toml"))
            ?? Catalog(catalogVersion: 1, services: [], trust: Catalog.Trust(), baseDirectory: "/srv")
    }()

    public let reference: String
    public let allowed: Bool
    public let host: SimulatedHost
    public let journal = InMemoryJournal()
    public private(set) var refusal: [Issue] = []
    public private(set) var preflightError: HostError?
    public private(set) var attempt: UpdateAttempt?
    let tagsBefore: [String: String]
    let containersBefore: [String: String]
    public static let newImageID = SimulatedHost.fakeImageID("hostile-package-image")

    public let labels: [String: String]

    public init(menuIndex: Int, labelIndex: Int = 0, seed: UInt64) {
        let entry = Self.menu[menuIndex % Self.menu.count]
        let labelEntry = Self.labelMenu[labelIndex % Self.labelMenu.count]
        reference = entry.reference
        labels = labelEntry.labels
        allowed = entry.allowed && labelEntry.allowed
        host = SimulatedHost(seed: seed, recordTrace: false)
        let healthy = ImageConfig(labels: ["io.caisson.sim.health": "healthy"], hasHealthcheck: true)
        for ref in ["example/frontend:current", "example/backend:current", "example/worker:current", "example/backend:cron"] {
            _ = try? host.addImage(id: SimulatedHost.fakeImageID(ref), tags: [ref], config: healthy)
        }
        _ = try? host.runContainer(name: "frontend", imageReference: "example/frontend:current", restartPolicy: .unlessStopped)
        for s in ["backend", "worker"] {
            if let target = Self.catalog.service(named: s)?.compose {
                _ = try? host.provisionCompose(target: target, imageReference: "example/\(s):current")
            }
        }
        _ = try? host.runContainer(name: "cron", imageReference: "example/backend:cron", restartPolicy: .unlessStopped)
        host.clock.sleep(millis: 10_000)
        tagsBefore = host.snapshot.tags
        containersBefore = Dictionary(uniqueKeysWithValues: host.allContainers.map { ($0.name, $0.imageID) })
    }

    /// Validation, preflight and (if both pass) the load and the update, with `faults` armed.
    @discardableResult
    public func run(faults: FaultPlan) -> [Issue] {
        guard let service = Self.catalog.service(named: "backend") else { return [] }
        host.faultPlan = faults
        // Validation: the image's labels, then the references (catalog only).
        let imageLabels = labels.merging(["io.caisson.sim.health": "healthy"]) { $1 }
        refusal = ReferencePolicy.labelIssues(imageLabels.keys.sorted())
        refusal += ReferencePolicy.check(reference: reference, service: service, catalog: Self.catalog)
        if refusal.isEmpty {
            do {
                refusal = try ReferencePolicy.checkOnHost(reference: reference, service: service, catalog: Self.catalog, host: host)
            } catch {
                // The host could not answer: `package load` stops with an error, nothing changed.
                preflightError = error
                return refusal
            }
        }
        guard refusal.isEmpty else { return refusal }
        let payload = ImagePayload(path: "/staged/backend.edgepkg", offset: 1536, length: 4096, reference: reference,
                                   expectedImageID: Self.newImageID,
                                   config: ImageConfig(labels: imageLabels, hasHealthcheck: true))
        guard (try? host.loadImage(payload, progress: { _ in })) != nil else { return refusal }
        let plan = UpdateMachine.Plan(updateID: "4057113e-0000-4000-8000-000000000001", candidateReleaseID: "cr", validationAttemptID: nil,
                                      service: service, targetImageReference: reference, targetImageID: Self.newImageID,
                                      packageVersion: "2.0.0")
        var machine = UpdateMachine(plan: plan, startedAt: host.clock.timestamp())
        attempt = try? UpdateDriver(host: host, journal: journal, clock: host.clock).run(&machine)
        return refusal
    }

    /// The oracle: a reference the menu forbids is refused (or the preflight could not run), and
    /// then no tag moved and no container changed; an allowed one is never refused.
    public func violations() -> [String] {
        var out: [String] = []
        let stopped = refusal.isEmpty == false || preflightError != nil
        if !allowed && !stopped { out.append("hostile reference \(reference) or labels \(labels.keys.sorted()) were not refused") }
        if allowed && !refusal.isEmpty { out.append("allowed reference \(reference) (labels \(labels.keys.sorted())) was refused: \(refusal.map(\.description))") }
        if stopped {
            let tags = host.snapshot.tags
            if tags != tagsBefore {
                let moved = Set(tags.keys).union(tagsBefore.keys).filter { tags[$0] != tagsBefore[$0] }.sorted()
                out.append("a refused package changed tags: \(moved)")
            }
            let now = Dictionary(uniqueKeysWithValues: host.allContainers.map { ($0.name, $0.imageID) })
            if now != containersBefore { out.append("a refused package changed containers") }
        } else {
            // Whatever the update's outcome, the other services kept their images and tags.
            for ref in ["example/frontend:current", "example/worker:current", "example/backend:cron"] where host.snapshot.tags[SimReference.normalize(ref) ?? ref] != tagsBefore[SimReference.normalize(ref) ?? ref] {
                out.append("an update of backend moved \(ref)")
            }
            for name in ["frontend", "cron", "stack-worker-1"] where host.container(name)?.imageID != containersBefore[name] {
                out.append("an update of backend changed container \(name)")
            }
            // Compose membership: worker's containers are still exactly its own.
            host.advanceAll()
            if let worker = Self.catalog.service(named: "worker")?.compose,
               let members = try? host.doComposeContainers(worker), members.map(\.name) != ["stack-worker-1"] {
                out.append("compose service worker now counts \(members.map(\.name)) as its containers")
            }
        }
        return out
    }
}
