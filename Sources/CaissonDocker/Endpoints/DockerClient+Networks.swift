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
