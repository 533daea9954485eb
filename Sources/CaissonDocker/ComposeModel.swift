import CaissonCore

/// The parts of a Compose project that Caisson uses, as `docker compose config --format json`
/// reports them: Compose itself has resolved the YAML, `.env`, interpolation, `extends`,
/// `include` and the project name, so nothing here scans YAML by hand.
public struct ComposeModel: Sendable, Equatable {
    public struct Service: Sendable, Equatable {
        public var name: String
        /// `image:` after interpolation (nil for a build-only service).
        public var image: String?
        /// `container_name:` if the file sets one (else Compose names containers
        /// `<project>-<service>-<n>`).
        public var containerName: String?
        /// The service has a `build:` section.
        public var hasBuild: Bool
        /// `profiles:` (a service with profiles only appears when one is enabled).
        public var profiles: [String]
        /// `network_mode:` (e.g. `service:app`, `host`), nil when unset.
        public var networkMode: String? = nil
        /// `healthcheck:`: true when the file sets one, false when it disables it (`disable: true`
        /// or a test of `NONE`), nil when the image's applies.
        public var healthcheck: Bool?

        public init(name: String, image: String? = nil, containerName: String? = nil, hasBuild: Bool = false,
                    profiles: [String] = [], healthcheck: Bool? = nil) {
            self.name = name
            self.image = image
            self.containerName = containerName
            self.hasBuild = hasBuild
            self.profiles = profiles
            self.healthcheck = healthcheck
        }
    }

    /// The project name Compose uses (its `com.docker.compose.project` label): `-p` if given,
    /// else `name:` of the file, `COMPOSE_PROJECT_NAME`, or the folder name.
    public var name: String
    public var services: [String: Service]

    public init(name: String, services: [String: Service]) {
        self.name = name
        self.services = services
    }

    /// Service names, sorted.
    public var serviceNames: [String] { services.keys.sorted() }

    /// The largest `config` output we read (a real project model is a few KiB).
    public static let maxBytes = 16 * 1024 * 1024

    /// Parses `docker compose config --format json` output. Unknown fields are ignored.
    public static func parse(_ bytes: [UInt8]) throws(HostError) -> ComposeModel {
        guard bytes.count <= maxBytes else {
            throw HostError(.failed, "the compose project model is larger than \(maxBytes) bytes")
        }
        let document: JSONValue
        do {
            document = try JSONValue.parse(bytes)
        } catch {
            let head = String(decoding: bytes.prefix(120), as: UTF8.self).split(separator: "\n").joined(separator: " ")
            throw HostError(.failed, "docker compose config did not print a JSON project model (output starts: \(head.isEmpty ? "(empty)" : head))")
        }
        guard case .object = document else {
            throw HostError(.failed, "the compose project model is not a JSON object")
        }
        guard let name = document["name"]?.stringValue, !name.isEmpty else {
            throw HostError(.failed, "the compose project model has no project name (`name`); Compose v2 is required")
        }
        var services: [String: Service] = [:]
        switch document["services"] {
        case nil, .null?:
            break
        case .object(let entries)?:
            for key in entries.keys.sorted() {
                guard let entry = entries[key], case .object = entry else {
                    throw HostError(.failed, "the compose project model's service \"\(key)\" is not an object")
                }
                func text(_ field: String) throws(HostError) -> String? {
                    switch entry[field] {
                    case nil, .null?: return nil
                    case .string(let value)?: return value.isEmpty ? nil : value
                    case let other?:
                        throw HostError(.failed, "the compose project model's service \"\(key)\" has a non-string `\(field)`: \(other)")
                    }
                }
                let build = entry["build"]
                var healthcheck: Bool?
                if case .object(let h)? = entry["healthcheck"] {
                    let test = h["test"]?.stringArrayValue ?? h["test"]?.stringValue.map { [$0] }
                    healthcheck = !(h["disable"]?.boolValue == true || test?.first == "NONE")
                }
                var service = Service(name: key, image: try text("image"), containerName: try text("container_name"),
                                      hasBuild: build != nil && build != .null,
                                      profiles: entry["profiles"]?.stringArrayValue ?? [], healthcheck: healthcheck)
                service.networkMode = try text("network_mode")
                services[key] = service
            }
        case let other?:
            throw HostError(.failed, "the compose project model's `services` is not an object: \(other)")
        }
        return ComposeModel(name: name, services: services)
    }
}
