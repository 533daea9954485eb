import CaissonHTTP
extension DockerClient {
    /// `POST /images/load?quiet=0`: streams a `docker save` tarball to the daemon.
    ///
    /// The daemon answers 200 and then a stream of JSON messages; a failure arrives INSIDE that
    /// stream (`{"errorDetail":{"message":...},"error":...}`) and is thrown as `.streamError`.
    /// `uploadProgress` sees the bytes sent so far; `onMessage` every message (progress included).
    /// Timeouts default to `configuration.loadTimeouts` (no whole-call limit, a limit on silence).
    ///
    /// Note the daemon applies the tags inside the tarball (`RepoTags` of its manifest); callers
    /// that must not let a package retag other images check the tarball before loading.
    public func loadImage(_ body: RequestBody, timeouts: DockerTimeouts? = nil,
                          uploadProgress: ((UInt64) -> Void)? = nil,
                          onMessage: ((DockerStreamMessage) -> Void)? = nil) throws -> ImageLoadResult {
        var body = body
        if body.contentType == nil { body.contentType = "application/x-tar" }
        var result = ImageLoadResult(loadedReferences: [], loadedImageIDs: [], streamLines: [])
        try streamJSONMessages("POST", "/images/load", query: [("quiet", "0")], body: body,
                               timeouts: timeouts ?? configuration.loadTimeouts, operation: "load the image",
                               failurePrefix: "docker load failed", uploadProgress: uploadProgress) { message in
            onMessage?(message)
            guard let stream = message.stream else { return }
            for piece in stream.split(separator: "\n") {
                let line = String(piece).trimmingWhitespace()
                guard !line.isEmpty else { continue }
                // Bounded: at most 1000 lines of at most 1 KiB each are kept.
                if result.streamLines.count < 1000 { result.streamLines.append(String(line.prefix(1024))) }
                if line.hasPrefix("Loaded image ID: "), result.loadedImageIDs.count < 1000 {
                    result.loadedImageIDs.append(String(line.dropFirst("Loaded image ID: ".count)))
                } else if line.hasPrefix("Loaded image: "), result.loadedReferences.count < 1000 {
                    result.loadedReferences.append(String(line.dropFirst("Loaded image: ".count)))
                }
            }
        }
        return result
    }

    /// `POST /images/create?fromSrc=-` (`docker import`): makes a one-layer image from a root
    /// filesystem tarball, with Dockerfile-style `changes` (`CMD ["/bin/sh"]`, `LABEL a=b`, ...).
    /// Returns the new image's id. Used to build test images without a registry or a Dockerfile.
    public func importImage(rootfs: RequestBody, repository: String, tag: String? = nil, changes: [String] = [],
                            platform: String? = nil, timeouts: DockerTimeouts? = nil) throws -> String {
        var body = rootfs
        if body.contentType == nil { body.contentType = "application/x-tar" }
        var query = [("fromSrc", "-"), ("repo", repository)]
        if let tag { query.append(("tag", tag)) }
        for change in changes { query.append(("changes", change)) }
        if let platform { query.append(("platform", platform)) }
        var imageID: String?
        try streamJSONMessages("POST", "/images/create", query: query, body: body,
                               timeouts: timeouts ?? configuration.loadTimeouts, operation: "import an image",
                               failurePrefix: "docker import failed", uploadProgress: nil) { message in
            if let status = message.status, status.hasPrefix("sha256:") { imageID = status }
        }
        guard let imageID else {
            throw DockerError(.protocolError(indeterminate: true), "cannot import an image: the daemon reported no image id")
        }
        return imageID
    }

    /// `GET /images/get?names=...` (`docker save`): streams the tarball of `references` to `sink`.
    public func saveImages(_ references: [String], timeouts: DockerTimeouts? = nil,
                           sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !references.isEmpty else { throw DockerError(.invalidRequest, "cannot save images: no image named") }
        for reference in references { _ = try imagePath(reference) }
        let operation = "save image(s) \(references.joined(separator: ", "))"
        let target = try self.target("/images/get", query: references.map { ("names", $0) }, versioned: true)
        var status = 0
        var errorBody: [UInt8] = []
        try http.execute(HTTPRequest(method: "GET", target: target), timeouts: timeouts ?? configuration.loadTimeouts,
                         onHead: { status = $0.status }) { chunk in
            if status == 200 { try sink(chunk) } else { Self.appendBounded(&errorBody, chunk) }
        }
        if status != 200 {
            throw statusError(HTTPResponse(head: HTTPResponseHead(status: status, reason: "", headers: []), body: errorBody),
                              operation: operation, subject: .image(references[0]))
        }
    }

    /// Sends a request whose 200 answer is a stream of JSON messages (load, import, pull...),
    /// calling `onMessage` for each; an `error` message becomes a `.streamError`.
    func streamJSONMessages(_ method: String, _ path: String, query: [(String, String)], body: RequestBody,
                            timeouts: DockerTimeouts, operation: String, failurePrefix: String,
                            uploadProgress: ((UInt64) -> Void)?,
                            onMessage: (DockerStreamMessage) throws -> Void) throws {
        let request = HTTPRequest(method: method, target: try target(path, query: query, versioned: true), body: body)
        let label = UnixSocketHTTPClient.label(request)
        var status = 0
        var errorBody: [UInt8] = []
        var splitter = LineSplitter(limit: 1024 * 1024)

        func handle(_ line: [UInt8]) throws {
            let text = String(decoding: line, as: UTF8.self).trimmingWhitespace()
            guard !text.isEmpty else { return }
            let message: DockerStreamMessage
            if text.hasPrefix("{"), let json = try? JSONValue.parse(text), json.objectValue != nil {
                message = DockerStreamMessage(json: json)
            } else {
                // A daemon that answers in plain text.
                message = DockerStreamMessage(json: .object(["stream": .string(text + "\n")]))
            }
            if let error = message.error {
                throw DockerError(.streamError, "\(failurePrefix): \(error)", daemonMessage: error)
            }
            try onMessage(message)
        }

        do {
            try http.execute(request, timeouts: timeouts, uploadProgress: uploadProgress,
                             onHead: { status = $0.status }) { chunk in
                if status == 200 { try splitter.feed(chunk, line: handle) } else { Self.appendBounded(&errorBody, chunk) }
            }
            if status == 200 { try splitter.finish(line: handle) }
        } catch let failure as WireFailure {
            throw DockerError(.protocolError(indeterminate: true), "\(label): invalid answer from the Docker daemon (\(failure))")
        }
        if status != 200 {
            throw statusError(HTTPResponse(head: HTTPResponseHead(status: status, reason: "", headers: []), body: errorBody),
                              operation: operation, subject: .image(path))
        }
    }

    static func appendBounded(_ buffer: inout [UInt8], _ chunk: UnsafeRawBufferPointer, limit: Int = 64 * 1024) {
        if buffer.count < limit { buffer.append(contentsOf: chunk.prefix(limit - buffer.count)) }
    }

    /// `GET /images/{name}/json`.
    public func inspectImage(_ reference: String) throws -> ImageInspect {
        let operation = "inspect image '\(reference)'"
        let response = try call("GET", try imagePath(reference, "/json"))
        try expect(response, [200], operation: operation, subject: .image(reference))
        guard let image = ImageInspect(json: try decodeJSON(response, operation: operation)) else {
            throw DockerError(.protocolError(indeterminate: false), "cannot \(operation): the answer has no image Id")
        }
        return image
    }

    /// Like `inspectImage`, but `nil` when the daemon has no such image.
    public func inspectImageIfPresent(_ reference: String) throws -> ImageInspect? {
        do {
            return try inspectImage(reference)
        } catch let error as DockerError where error.isNotFound {
            return nil
        }
    }

    /// `POST /images/{name}/tag?repo=&tag=`: gives `source` the reference `repository:tag`.
    public func tagImage(_ source: String, repository: String, tag: String?) throws {
        let reference = tag.map { "\(repository):\($0)" } ?? repository
        var query = [("repo", repository)]
        if let tag { query.append(("tag", tag)) }
        let response = try call("POST", try imagePath(source, "/tag"), query: query)
        try expect(response, [200, 201], operation: "tag image '\(source)' as '\(reference)'", subject: .image(source),
                   conflict: "the tag is in use")
    }

    /// Tags `source` as `reference` (`repo[:tag]`; the tag is after the last `:` past the last `/`).
    public func tagImage(_ source: String, as reference: String) throws {
        let (repository, tag) = Self.splitReference(reference)
        try tagImage(source, repository: repository, tag: tag)
    }

    /// `DELETE /images/{name}?force=&noprune=`.
    @discardableResult
    public func removeImage(_ reference: String, force: Bool = false, noPrune: Bool = false) throws -> [ImageDeleteItem] {
        let operation = "remove image '\(reference)'"
        let response = try call("DELETE", try imagePath(reference),
                                query: [("force", force ? "1" : "0"), ("noprune", noPrune ? "1" : "0")])
        try expect(response, [200], operation: operation, subject: .image(reference),
                   conflict: "the image is in use (by a container, or has dependent images)")
        let json = (try? JSONValue.parse(response.body)) ?? .array([])
        return (json.arrayValue ?? []).map {
            ImageDeleteItem(untagged: $0["Untagged"]?.stringValue, deleted: $0["Deleted"]?.stringValue)
        }
    }

    /// `repo[:tag]` split the way the daemon does: a `:` after the last `/` starts the tag.
    /// A digest reference (`repo@sha256:...`) has no tag.
    public static func splitReference(_ reference: String) -> (repository: String, tag: String?) {
        if reference.contains("@") { return (reference, nil) }
        let lastSlash = reference.lastIndex(of: "/")
        if let colon = reference.lastIndex(of: ":"), lastSlash.map({ colon > $0 }) ?? true {
            return (String(reference[..<colon]), String(reference[reference.index(after: colon)...]))
        }
        return (reference, nil)
    }
}
