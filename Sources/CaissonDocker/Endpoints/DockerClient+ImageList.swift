extension DockerClient {
    /// `GET /images/json?all=1`: the ids of every image the daemon holds (intermediate images of
    /// the legacy builder included: they hold layer chains too), sorted.
    public func listImageIDs() throws -> [String] {
        let operation = "list images"
        let response = try call("GET", "/images/json", query: [("all", "1")])
        try expect(response, [200], operation: operation, subject: .daemon)
        let json = try decodeJSON(response, operation: operation)
        guard let items = json.arrayValue else {
            throw DockerError(.protocolError(indeterminate: false), "cannot \(operation): the answer is not a list")
        }
        return items.compactMap { $0["Id"]?.stringValue }.sorted()
    }
}
