import CaissonCore
import Foundation

/// `service list` / `service show`: what really runs, beside what Caisson recorded, and the drift
/// between the two (issue 10 item 10).
extension Application {
    public struct LiveContainer: Sendable, Codable, Equatable {
        public var name: String
        public var status: String
        public var health: String
        public var imageID: String
        /// The reference the container was created from (Config.Image).
        public var imageReference: String
        /// When its current run started (Docker's State.StartedAt); nil if it never ran.
        public var since: String?

        enum CodingKeys: String, CodingKey {
            case name, status, health
            case imageID = "image_id"
            case imageReference = "image_reference"
            case since
        }
    }

    public struct LiveState: Sendable, Codable, Equatable {
        public var containers: [LiveContainer]
        /// Compose: the image id the compose file's `image:` resolves to now (what the next
        /// `docker compose up` would run).
        public var composeImageID: String?
        /// Why the live state could not be read (the host unreachable, ...).
        public var error: String?
        /// Sentences: what runs differs from what Caisson recorded, or would change on the next
        /// routine command. Empty when all agree.
        public var drift: [String]

        enum CodingKeys: String, CodingKey {
            case containers
            case composeImageID = "compose_image_id"
            case error, drift
        }
    }

    /// The live state of `service`, compared with `state` (nil: Caisson never updated it).
    func liveState(of service: ServiceSpec, state: ServiceState?) -> LiveState {
        let host: any ContainerHost
        do { host = try self.host() } catch {
            return LiveState(containers: [], composeImageID: nil, error: error.message, drift: [])
        }
        var live = LiveState(containers: [], composeImageID: nil, error: nil, drift: [])
        let found: [ContainerInfo]
        do {
            switch service.runtimeMode {
            case .docker:
                found = try host.inspectContainer(service.docker!.containerName).map { [$0] } ?? []
            case .compose:
                let target = service.compose!
                found = try host.composeContainers(target)
                if let image = try host.composeServiceFacts(target).image {
                    live.composeImageID = try host.inspectImage(image)?.id
                    if live.composeImageID == nil { live.drift.append("the compose file's image \(image) is not on this host") }
                }
            }
        } catch {
            live.error = error.message
            return live
        }
        live.containers = found.map { c in
            LiveContainer(name: c.name, status: c.status.rawValue, health: c.health.rawValue, imageID: c.imageID,
                          imageReference: c.imageReference,
                          since: c.startedAt.isEmpty || c.startedAt.hasPrefix("0001-") ? nil : c.startedAt)
        }
        live.drift += Self.drift(service: service, state: state, containers: found, composeImageID: live.composeImageID)
        return live
    }

    static func drift(service: ServiceSpec, state: ServiceState?, containers: [ContainerInfo], composeImageID: String?) -> [String] {
        var out: [String] = []
        if containers.isEmpty {
            out.append(service.runtimeMode == .docker
                       ? "no container named \(service.docker?.containerName ?? service.name) exists"
                       : "compose service \(service.compose?.service ?? service.name) has no container")
            return out
        }
        for c in containers where !c.isRunning {
            out.append("container \(c.name) is \(c.status.rawValue)\(c.status == .exited ? " (exit code \(c.exitCode))" : "")")
        }
        if let recorded = state?.activeImageID {
            for c in containers where c.imageID != recorded {
                out.append("container \(c.name) runs image \(Format.shortID(c.imageID)), but Caisson recorded \(state?.activeImageReference ?? "?") (\(Format.shortID(recorded))): changed outside Caisson")
            }
        }
        if let next = composeImageID {
            for c in containers where c.imageID != next {
                out.append("the next docker compose up would replace container \(c.name) (image \(Format.shortID(c.imageID))) with image \(Format.shortID(next)), which the compose file's image: names now")
            }
        }
        return out
    }
}
