import CaissonHTTP
import CaissonCore
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `ContainerHost` over the Docker Engine API (and `docker compose` for Compose mode).
///
/// Error mapping (`DockerError` → `HostError`): a timeout or dropped connection after sending is
/// `.indeterminate`; a missing/refused/forbidden socket or a too-old daemon is `.unreachable`;
/// 404 is `.notFound`, 409 `.conflict`; "no space left on device" anywhere is `.diskFull`;
/// everything else is `.failed`.
public final class DockerHost: ContainerHost {
    public let client: DockerClient
    /// `docker compose` and its settings for Compose mode.
    public var compose: ComposeSettings
    /// Free space required on the daemon's `DockerRootDir` before a load, beyond twice the archive
    /// size (the daemon first unpacks the archive to a temporary folder, then into its layer store).
    public var freeSpaceMargin: Int64 = 64 * 1024 * 1024
    /// Compose project models already read (`docker compose config`), keyed by project, file and
    /// profile choice; an entry holds while the compose file keeps its identity and mtime.
    var composeModelCache: [String: (stamp: ComposeFileStamp, model: ComposeModel)] = [:]

    public init(client: DockerClient, compose: ComposeSettings = ComposeSettings()) {
        self.client = client
        self.compose = compose
    }

    /// A host for the daemon named by `DOCKER_HOST` (default socket when unset).
    public convenience init(environment: [String: String]) throws(HostError) {
        do {
            self.init(client: try DockerClient(environment: environment, timeouts: .default))
        } catch {
            throw HostError(.unreachable, error.description)
        }
    }

    // MARK: - Error mapping

    public static func hostError(_ error: any Error) -> HostError {
        guard let error = error as? DockerError else { return HostError(.failed, "\(error)") }
        let text = error.description
        if error.isIndeterminate { return HostError(.indeterminate, text) }
        switch error.kind {
        case .unreachable, .permissionDenied, .unsupportedHost, .apiVersionUnsupported, .timeout:
            return HostError(.unreachable, text)
        default:
            break
        }
        if text.lowercased().contains("no space left on device") { return HostError(.diskFull, text) }
        switch error.httpStatus {
        case 404?: return HostError(.notFound, text)
        case 409?: return HostError(.conflict, text)
        default: return HostError(.failed, text)
        }
    }

    @inline(__always)
    func run<T>(_ body: () throws -> T) throws(HostError) -> T {
        do {
            return try body()
        } catch {
            throw Self.hostError(error)
        }
    }

    // MARK: - ContainerHost

    public func ping() throws(HostError) -> String {
        try run {
            let version = try client.version()
            return "Docker \(version.version ?? "?"), API \(try client.apiVersion())"
        }
    }

    public func loadImage(_ payload: ImagePayload, progress: (Int64) -> Void) throws(HostError) -> ImageInfo {
        guard payload.offset >= 0, payload.length > 0 else {
            throw HostError(.failed, "invalid image archive range: offset \(payload.offset), length \(payload.length)")
        }
        try checkFreeSpace(forArchiveBytes: payload.unpackedBytes)
        // Streamed out of the package and verified before it ends (identity, digest): a file
        // changed after validation is vetoed before Docker tags anything.
        let body: RequestBody = try run { try RequestBody.verifiedImageArchive(payload) }
        try run {
            try withoutActuallyEscaping(progress) { progress in
                _ = try client.loadImage(body, uploadProgress: { progress(Int64(clamping: $0)) })
            }
        }
        guard let image = try inspectImage(payload.reference) else {
            throw HostError(.failed, "docker load finished but no image is tagged \(payload.reference)")
        }
        return image
    }

    public func inspectImage(_ reference: String) throws(HostError) -> ImageInfo? {
        try run { try client.inspectImageIfPresent(reference).map(Self.imageInfo) }
    }

    public func listImages() throws(HostError) -> [ImageInfo] {
        let ids: [String] = try run { try client.listImageIDs() }
        var out: [ImageInfo] = []
        for id in ids {
            // An image removed between the list and its inspection is simply gone.
            if let info = try inspectImage(id) { out.append(info) }
        }
        return out
    }

    public func tagImage(_ imageID: String, as reference: String) throws(HostError) {
        try run { try client.tagImage(imageID, as: reference) }
    }

    public func removeImage(_ reference: String) throws(HostError) {
        do {
            try client.removeImage(reference)
        } catch let error as DockerError where error.isNotFound {
            return
        } catch {
            throw Self.hostError(error)
        }
    }

    public func inspectContainer(_ nameOrID: String) throws(HostError) -> ContainerInfo? {
        try run { try client.inspectContainerIfPresent(nameOrID).map(Self.containerInfo) }
    }

    public func createContainer(name: String, cloning template: String, imageID: String,
                                labels: [String: String]) throws(HostError) -> String {
        let plan: ContainerClonePlan = try run {
            let old = try client.inspectContainer(template)
            let oldImage = try client.inspectImageIfPresent(old.image)
            return ContainerClonePlan.make(template: old, oldImage: oldImage, image: imageID, labels: labels)
        }
        let id = try run { try client.createContainer(name: name, body: plan.body).id }
        for attachment in plan.extraNetworks {
            do {
                try client.connectNetwork(attachment.network, container: id, endpointConfig: attachment.endpointConfig)
            } catch {
                // Leave nothing half-made behind: a container missing a network must not go live.
                try? client.removeContainer(id, force: true)
                let cause = Self.hostError(error)
                throw HostError(cause.kind == .indeterminate ? .indeterminate : .failed,
                                "created \(name) but could not connect it to network \(attachment.network): \(cause.message)")
            }
        }
        return id
    }

    public func createDependentContainer(name: String, cloning template: String, networkOwner owner: String,
                                         labels: [String: String]) throws(HostError) -> String {
        let plan: ContainerClonePlan = try run {
            let old = try client.inspectContainer(template)
            let ownerID = try client.inspectContainer(owner).id
            let image = try client.inspectImageIfPresent(old.image)
            return ContainerClonePlan.make(template: old, oldImage: image, image: old.image, labels: labels, networkOwner: ownerID)
        }
        return try run { try client.createContainer(name: name, body: plan.body).id }
    }

    public func startContainer(_ nameOrID: String) throws(HostError) {
        try run { _ = try client.startContainer(nameOrID) }
    }

    public func stopContainer(_ nameOrID: String, graceSecs: Int) throws(HostError) {
        try run { _ = try client.stopContainer(nameOrID, graceSeconds: graceSecs < 0 ? nil : graceSecs) }
    }

    public func renameContainer(_ nameOrID: String, to newName: String) throws(HostError) {
        try run { try client.renameContainer(nameOrID, to: newName) }
    }

    public func listContainers(namePrefixes: [String], label: String?) throws(HostError) -> [ContainerInfo] {
        // Two listings (Docker ANDs filters of different kinds), then a full inspection of each
        // container found (a handful: the marks of an update).
        var ids: [String] = []
        if !namePrefixes.isEmpty {
            ids += try run { try client.listContainers(all: true, filters: ContainerListFilters(namePrefixes: namePrefixes)).map(\.id) }
        }
        if let label {
            ids += try run { try client.listContainers(all: true, filters: ContainerListFilters(labels: [label])).map(\.id) }
        }
        var seen: Set<String> = []
        var out: [ContainerInfo] = []
        for id in ids where seen.insert(id).inserted {
            // Gone since the listing: not a mark any more.
            if let c = try inspectContainer(id) { out.append(c) }
        }
        return out.sorted { $0.name < $1.name }
    }

    public func removeContainer(_ nameOrID: String) throws(HostError) {
        do {
            // Never `v=1`: volumes (anonymous ones included) may hold the service's data.
            try client.removeContainer(nameOrID, force: true, removeVolumes: false)
        } catch let error as DockerError where error.isNotFound {
            return
        } catch {
            throw Self.hostError(error)
        }
    }

    public func listContainers() throws(HostError) -> [ContainerInfo] {
        try run {
            var result: [ContainerInfo] = []
            for summary in try client.listContainers(all: true) {
                // A container removed between list and inspect is simply gone.
                if let container = try client.inspectContainerIfPresent(summary.id) { result.append(Self.containerInfo(container)) }
            }
            return result.sorted { ($0.name, $0.id) < ($1.name, $1.id) }
        }
    }

    public func removeStoppedContainer(_ nameOrID: String) throws(HostError) {
        do {
            // Without force: Docker refuses (409) a running container instead of killing it.
            try client.removeContainer(nameOrID, force: false, removeVolumes: false)
        } catch let error as DockerError where error.isNotFound {
            return
        } catch {
            throw Self.hostError(error)
        }
    }

    // MARK: - Mapping

    static func imageInfo(_ image: ImageInspect) -> ImageInfo {
        let test = image.config.healthcheck?.test ?? []
        let config = ImageConfig(os: image.os ?? "", architecture: image.architecture ?? "", variant: image.variant,
                                 labels: image.config.labels,
                                 hasHealthcheck: !test.isEmpty && test.first != "NONE")
        return ImageInfo(id: image.id, repoTags: image.repoTags.sorted(), repoDigests: image.repoDigests.sorted(),
                         config: config, layers: image.layers)
    }

    static func containerInfo(_ container: ContainerInspect) -> ContainerInfo {
        let status = ContainerStatus(rawValue: container.state.status) ?? (container.state.running ? .running : .dead)
        let health = container.state.healthStatus.flatMap(HealthStatus.init(rawValue:)) ?? .none
        return ContainerInfo(id: container.id, name: container.name, imageID: container.image,
                             imageReference: container.config.image ?? "", status: status, health: health,
                             restartCount: Int(clamping: container.restartCount),
                             startedAt: container.state.startedAt ?? "",
                             exitCode: Int(clamping: container.state.exitCode ?? 0),
                             labels: container.config.labels,
                             stopTimeoutSecs: container.config.stopTimeout.map { Int(clamping: $0) },
                             networkMode: container.hostConfig["NetworkMode"]?.stringValue)
    }

    // MARK: - Free space

    /// Refuses a load that cannot fit: the daemon needs about twice the archive (unpacked to a
    /// temporary folder, then into the layer store). Skipped when `DockerRootDir` is not visible
    /// from here (a daemon in another mount namespace).
    func checkFreeSpace(forArchiveBytes length: Int64) throws(HostError) {
        let root: String? = try run { try client.info().dockerRootDir }
        guard let root, let free = Self.freeBytes(at: root) else { return }
        let (doubled, overflow1) = length.multipliedReportingOverflow(by: 2)
        let (needed, overflow2) = doubled.addingReportingOverflow(freeSpaceMargin)
        if overflow1 || overflow2 || free < needed {
            throw HostError(.diskFull, "not enough free space in \(root) to load the image: \(free) bytes free, about \(overflow1 || overflow2 ? Int64.max : needed) needed (twice the \(length)-byte archive plus \(freeSpaceMargin) bytes)")
        }
    }

    public func imageStorage(forArchiveBytes length: Int64) -> ImageStorage? {
        guard let root = try? client.info().dockerRootDir, let free = Self.freeBytes(at: root) else { return nil }
        let (doubled, o1) = length.multipliedReportingOverflow(by: 2)
        let (needed, o2) = doubled.addingReportingOverflow(freeSpaceMargin)
        return ImageStorage(path: root, freeBytes: free, neededBytes: o1 || o2 ? Int64.max : needed)
    }

    static func freeBytes(at path: String) -> Int64? {
        var stats = statvfs()
        var rc: Int32
        repeat { rc = statvfs(path, &stats) } while rc != 0 && errno == EINTR
        guard rc == 0 else { return nil }
        let (bytes, overflow) = UInt64(stats.f_bavail).multipliedReportingOverflow(by: UInt64(stats.f_frsize))
        return overflow ? Int64.max : Int64(clamping: bytes)
    }
}

extension RequestBody {
    /// A streamed body pulled from a Core `ByteSource` (e.g. a hashing tee over a package entry),
    /// chunked unless `length` is given. The source's end (where a verifying source may still
    /// throw) always comes before the last body byte is sent.
    public static func source<S: ByteSource>(_ source: S, length: UInt64? = nil,
                                             contentType: String? = "application/x-tar") -> RequestBody {
        var source = source
        return .stream(length: length, contentType: contentType) { buffer in try source.read(into: buffer) }
    }
}
