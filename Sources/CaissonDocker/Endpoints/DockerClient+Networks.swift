import CaissonHTTP
extension DockerClient {
    /// `POST /networks/{id}/connect`: attaches a (created or running) container to a network,
    /// with an `EndpointConfig` object (Aliases, IPAMConfig, Links, DriverOpts...).
    public func connectNetwork(_ network: String, container: String, endpointConfig: JSONValue = .object([:])) throws {
        guard !network.isEmpty, !network.contains("/") else {
            throw DockerError(.invalidRequest, "invalid network name '\(network.prefix(80))'")
        }
        let operation = "connect container '\(container)' to network '\(network)'"
        let body: JSONValue = ["Container": .string(container), "EndpointConfig": endpointConfig]
        let response = try call("POST", "/networks/\(Self.percentEncode(network, allowing: .pathSegment))/connect",
                                body: .bytes(body.serialized(), contentType: "application/json"))
        try expect(response, [200, 204], operation: operation, subject: .container(container))
    }
}

extension DockerClient {
    /// `POST /networks/create` (a user-defined bridge by default). Returns the network id.
    public func createNetwork(_ name: String, driver: String = "bridge", labels: [String: String] = [:]) throws -> String {
        let operation = "create network '\(name)'"
        let body: JSONValue = ["Name": .string(name), "Driver": .string(driver), "CheckDuplicate": true,
                               "Labels": .object(labels.mapValues { .string($0) })]
        let response = try call("POST", "/networks/create", body: .bytes(body.serialized(), contentType: "application/json"))
        try expect(response, [200, 201], operation: operation, subject: .daemon, conflict: "a network with that name exists")
        guard let id = try decodeJSON(response, operation: operation)["Id"]?.stringValue else {
            throw DockerError(.protocolError(indeterminate: true), "cannot \(operation): the answer has no Id")
        }
        return id
    }

    /// `DELETE /networks/{id}`.
    public func removeNetwork(_ name: String) throws {
        guard !name.isEmpty, !name.contains("/") else {
            throw DockerError(.invalidRequest, "invalid network name '\(name.prefix(80))'")
        }
        let response = try call("DELETE", "/networks/\(Self.percentEncode(name, allowing: .pathSegment))")
        try expect(response, [200, 204], operation: "remove network '\(name)'", subject: .daemon,
                   conflict: "the network has active endpoints")
    }
}
