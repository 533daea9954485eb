import CaissonCore

/// How a new container is made from an existing one ("cloning") for an image update.
///
/// The old container's `Config` holds the operator's settings MERGED with its old image's
/// defaults (Docker copies Env, Cmd, Entrypoint, Labels, Healthcheck, WorkingDir, User,
/// ExposedPorts, Volumes, StopSignal from the image at create). Copying it verbatim would pin the
/// old image's defaults onto the new image (the Rust tool's weakness 4). So every value that still
/// equals the old image's default is left out, and the daemon fills in the NEW image's default.
/// `HostConfig` is the operator's alone and is copied whole. Anonymous volumes of the old container
/// are carried over as explicit mounts (as Compose does), so data in `VOLUME` paths survives.
public struct ContainerClonePlan: Sendable, Equatable {
    /// The body of `POST /containers/create`.
    public var body: JSONValue
    /// Networks beyond the first, connected after create (API < 1.44 accepts one at create).
    public var extraNetworks: [NetworkAttachment]
    /// True when the old image was not available to tell its defaults apart (everything copied).
    public var copiedImageDefaults: Bool

    public struct NetworkAttachment: Sendable, Equatable {
        public var network: String
        public var endpointConfig: JSONValue
    }

    /// - Parameter networkOwner: join that container's network namespace (`container:<id>`)
    ///   instead of the template's network settings.
    public static func make(template: ContainerInspect, oldImage: ImageInspect?, image: String,
                            labels: [String: String], networkOwner: String? = nil) -> ContainerClonePlan {
        var config = template.config.raw.objectValue ?? [:]
        var hostConfig = template.hostConfig.objectValue ?? [:]
        if let networkOwner { hostConfig["NetworkMode"] = .string("container:" + networkOwner) }
        if (hostConfig["NetworkMode"]?.stringValue ?? "").hasPrefix("container:") {
            dropWhatContainerNetworkModeRefuses(config: &config, hostConfig: &hostConfig)
        }
        let imageConfig = oldImage?.config.raw.objectValue

        config["Image"] = .string(image)
        // Docker sets Hostname to the id prefix unless the operator gave one.
        if let hostname = config["Hostname"]?.stringValue, template.id.hasPrefix(hostname), hostname.count >= 12 {
            config.removeValue(forKey: "Hostname")
        }
        for key in ["ArgsEscaped", "OnBuild", "Shell"] { config.removeValue(forKey: key) }

        if let imageConfig {
            // Env: keep what the operator added or changed.
            let imageEnv = Set(imageConfig["Env"]?.stringArrayValue ?? [])
            let env = (config["Env"]?.stringArrayValue ?? []).filter { !imageEnv.contains($0) }
            config["Env"] = .array(env.map { .string($0) })

            // Entrypoint/Cmd. With an operator entrypoint, Docker does not take the image's Cmd, so
            // a Cmd equal to the old image's was given explicitly and stays.
            let sameEntrypoint = normalizedList(config["Entrypoint"]) == normalizedList(imageConfig["Entrypoint"])
            if sameEntrypoint {
                config.removeValue(forKey: "Entrypoint")
                if normalizedList(config["Cmd"]) == normalizedList(imageConfig["Cmd"]) {
                    config.removeValue(forKey: "Cmd")
                }
            }

            for key in ["WorkingDir", "User", "StopSignal"] where (config[key] ?? .null) == (imageConfig[key] ?? .null) {
                config.removeValue(forKey: key)
            }
            if let health = config["Healthcheck"], health == imageConfig["Healthcheck"] {
                config.removeValue(forKey: "Healthcheck")
            }

            // Labels the old image set (same key and value) are the image's, not the operator's.
            let imageLabels = imageConfig["Labels"]?.objectValue ?? [:]
            var containerLabels = config["Labels"]?.objectValue ?? [:]
            for (key, value) in imageLabels where containerLabels[key] == value {
                containerLabels.removeValue(forKey: key)
            }
            config["Labels"] = .object(containerLabels)

            // Ports/volumes the old image declared; a published port stays exposed.
            let published = Set((hostConfig["PortBindings"]?.objectValue ?? [:]).keys)
            if var ports = config["ExposedPorts"]?.objectValue {
                for key in (imageConfig["ExposedPorts"]?.objectValue ?? [:]).keys where !published.contains(key) {
                    ports.removeValue(forKey: key)
                }
                config["ExposedPorts"] = ports.isEmpty ? nil : .object(ports)
            }
            if var volumes = config["Volumes"]?.objectValue {
                for key in (imageConfig["Volumes"]?.objectValue ?? [:]).keys { volumes.removeValue(forKey: key) }
                config["Volumes"] = volumes.isEmpty ? nil : .object(volumes)
            }
        }

        var labelsObject = config["Labels"]?.objectValue ?? [:]
        for (key, value) in labels { labelsObject[key] = .string(value) }
        config["Labels"] = .object(labelsObject)

        var newHostConfig = hostConfig
        let carried = anonymousVolumeMounts(template: template, hostConfig: hostConfig)
        if !carried.isEmpty {
            newHostConfig["Mounts"] = .array((hostConfig["Mounts"]?.arrayValue ?? []) + carried)
        }
        config["HostConfig"] = .object(newHostConfig)

        // Networks: the primary one at create, the others connected afterwards.
        var extra: [NetworkAttachment] = []
        let mode = hostConfig["NetworkMode"]?.stringValue ?? "default"
        let shareless = mode == "host" || mode == "none" || mode.hasPrefix("container:")
        if !shareless && !template.networks.isEmpty {
            let primaryName = mode == "default" ? "bridge" : mode
            let primary = template.networks.first { $0.name == primaryName } ?? template.networks[0]
            config["NetworkingConfig"] = ["EndpointsConfig": .object([primary.name: endpointConfig(primary, template: template)])]
            extra = template.networks.filter { $0.name != primary.name }.map {
                NetworkAttachment(network: $0.name, endpointConfig: endpointConfig($0, template: template))
            }
        }
        return ContainerClonePlan(body: .object(config), extraNetworks: extra, copiedImageDefaults: oldImage == nil)
    }

    /// In `container:` network mode Docker refuses a hostname, a MAC address, exposed or
    /// published ports, DNS settings, extra hosts and links ("conflicting options"), yet fills
    /// the hostname in itself (the namespace owner's) when such a container starts: a verbatim
    /// clone of one could never be created. The namespace owner provides all of them.
    static func dropWhatContainerNetworkModeRefuses(config: inout [String: JSONValue], hostConfig: inout [String: JSONValue]) {
        for key in ["Hostname", "Domainname", "MacAddress", "ExposedPorts"] { config.removeValue(forKey: key) }
        for key in ["PortBindings", "PublishAllPorts", "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "Links"] {
            hostConfig.removeValue(forKey: key)
        }
    }

    /// Null and empty lists mean the same ("none given").
    private static func normalizedList(_ value: JSONValue?) -> [String] {
        value?.stringArrayValue ?? []
    }

    /// The operator's part of an endpoint: aliases (minus Docker's automatic id alias), static
    /// addresses, links, driver options. Not the MAC or the assigned IP (Docker assigns those).
    static func endpointConfig(_ network: ContainerNetwork, template: ContainerInspect) -> JSONValue {
        var endpoint: [String: JSONValue] = [:]
        let automatic = Set([template.id, String(template.id.prefix(12))])
        let aliases = network.aliases.filter { !automatic.contains($0) }
        if !aliases.isEmpty { endpoint["Aliases"] = .array(aliases.map { .string($0) }) }
        if let ipam = network.raw["IPAMConfig"], ipam.objectValue?.isEmpty == false { endpoint["IPAMConfig"] = ipam }
        if let links = network.raw["Links"], links.arrayValue?.isEmpty == false { endpoint["Links"] = links }
        if let options = network.raw["DriverOpts"], options.objectValue?.isEmpty == false { endpoint["DriverOpts"] = options }
        return .object(endpoint)
    }

    /// Anonymous volumes (64-hex names) the old container has at paths no bind or mount of the
    /// operator covers: mounted into the new container by name, so their data carries over.
    static func anonymousVolumeMounts(template: ContainerInspect, hostConfig: [String: JSONValue]) -> [JSONValue] {
        var covered = Set<String>()
        for bind in hostConfig["Binds"]?.stringArrayValue ?? [] {
            let parts = bind.split(separator: ":", omittingEmptySubsequences: false)
            if parts.count >= 2 { covered.insert(String(parts[1])) }
        }
        for mount in hostConfig["Mounts"]?.arrayValue ?? [] {
            if let target = mount["Target"]?.stringValue { covered.insert(target) }
        }
        var result: [JSONValue] = []
        let mounts = (template.raw["Mounts"]?.arrayValue ?? []).sorted {
            ($0["Destination"]?.stringValue ?? "") < ($1["Destination"]?.stringValue ?? "")
        }
        for mount in mounts {
            guard mount["Type"]?.stringValue == "volume", let name = mount["Name"]?.stringValue,
                  let destination = mount["Destination"]?.stringValue, !covered.contains(destination),
                  name.utf8.count == 64, name.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
                continue
            }
            var entry: [String: JSONValue] = ["Type": "volume", "Source": .string(name), "Target": .string(destination)]
            if mount["RW"]?.boolValue == false { entry["ReadOnly"] = true }
            result.append(.object(entry))
        }
        return result
    }
}
