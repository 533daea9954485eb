import CaissonHTTP
extension DockerClient {
    /// `GET /_ping` (unversioned): is the daemon there, and which API does it speak.
    public func ping() throws -> DockerPing {
        let response = try http.execute(HTTPRequest(method: "GET", target: "/_ping"),
                                        timeouts: configuration.timeouts, maxBodyBytes: 64 * 1024)
        try expect(response, [200], operation: "ping the Docker daemon", subject: .daemon)
        let head = response.head
        return DockerPing(apiVersion: head.header("API-Version"), osType: head.header("OSType"),
                          experimental: head.header("Docker-Experimental") == "true",
                          builderVersion: head.header("Builder-Version"))
    }

    /// `GET /version` (unversioned, so it works before negotiation).
    public func version() throws -> DockerVersion {
        let response = try call("GET", "/version", versioned: false)
        try expect(response, [200], operation: "query the Docker daemon version", subject: .daemon)
        return DockerVersion(json: try decodeJSON(response, operation: "query the Docker daemon version"))
    }

    /// `GET /info`: `DockerRootDir` (for free-space checks), storage driver, counts.
    public func info() throws -> DockerInfo {
        let response = try call("GET", "/info")
        try expect(response, [200], operation: "query Docker daemon info", subject: .daemon)
        return DockerInfo(json: try decodeJSON(response, operation: "query Docker daemon info"))
    }
}
