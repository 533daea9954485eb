import CaissonCore
import CaissonStore
import Foundation

/// One verdict for a package, whichever command asks (issue 10 item 12): `package validate`
/// refuses what `package load` would refuse — an already installed or older version, a stale
/// package, and failures that can be foreseen before any downtime (the catalog asks for
/// `container_health` and the new container would have no healthcheck).
extension Application {
    /// What the package's signature says, for the operator.
    public struct SignatureVerdict: Sendable, Encodable, Equatable {
        /// `verified`, `unsigned`, `not_checked` (signed, but the catalog trusts no key) or `rejected`.
        public var status: String
        public var keyID: String?
        public var trustedComment: String?
        public var sentence: String

        enum CodingKeys: String, CodingKey {
            case status, sentence
            case keyID = "key_id"
            case trustedComment = "trusted_comment"
        }
    }

    /// The refusals that come from what this device already runs (the store), not the package.
    public func versionVerdict(_ validation: inout ValidationOutcome, flags: LoadFlags) throws -> Issue? {
        guard validation.report.status == .accepted, let manifest = validation.report.manifest,
              let service = validation.report.service else { return nil }
        guard let refusal = Self.versionRefusal(manifest: manifest, state: try store().serviceState(service.name), flags: flags) else {
            return nil
        }
        try reject(&validation, refusal)
        return refusal
    }

    /// Records `issue` as the validation's verdict (the record says rejected, as it is).
    func reject(_ validation: inout ValidationOutcome, _ issue: Issue) throws {
        validation.report.issues.append(issue)
        validation.record.issues.append(issue)
        validation.record.status = .rejected
        let s = try store()
        try s.recordValidation(validation.record)
        try s.appendAudit([AuditEvent(kind: .validationRejected, at: systemClock.timestamp(), serviceName: validation.record.serviceName,
                                      validationAttemptID: validation.record.validationAttemptID, message: issue.description)])
    }

    /// What can be seen on the host before anything changes. `refusal`: the package cannot work
    /// here (exit 2, like a validation rejection); `preflight`: the service is not in a state to be
    /// updated (exit 1). Both leave everything as it was.
    public struct Foresight: Sendable, Equatable {
        public var refusal: Issue?
        public var preflight: Issue?
    }

    public func foresee(service: ServiceSpec, image: ImageConfig, reference: String, flags: LoadFlags,
                        host: any ContainerHost) -> Foresight {
        // The references the package may set (issue 10 item 8), the host's side: the compose
        // file's image, other catalog services' compose images, containers outside the service.
        // A host that cannot answer stops the update (it is not a pass).
        if let catalog = try? catalog() {
            switch Result(catching: { () throws(HostError) -> [Issue] in
                try ReferencePolicy.checkOnHost(reference: reference, service: service, catalog: catalog, host: host)
            }) {
            case .success(let issues):
                if let first = issues.first { return Foresight(refusal: first) }
            case .failure(let e):
                return Foresight(preflight: Issue("docker.inspect_failed", "could not check which containers use \(reference): \(e.message); nothing was changed"))
            }
        }
        var running = false
        switch service.runtimeMode {
        case .docker:
            let name = service.docker!.containerName
            switch Result(catching: { () throws(HostError) -> ContainerInfo? in try host.inspectContainer(name) }) {
            case .success(nil):
                return Foresight(preflight: Issue("docker.service_inspect_failed", "container \(name) of service \(service.name) does not exist on this host; nothing was changed"))
            case .success(let c?): running = c.isRunning
            case .failure(let e):
                return Foresight(preflight: Issue("docker.service_inspect_failed", "could not inspect container \(name) of service \(service.name): \(e.message); nothing was changed"))
            }
        case .compose:
            let t = service.compose!
            switch Result(catching: { () throws(HostError) -> [ContainerInfo] in try host.composeContainers(t) }) {
            case .success(let cs) where cs.isEmpty:
                return Foresight(preflight: Issue("compose.image_lookup_failed", "compose service \(t.service) of project \(t.project) has no container; start it once with docker compose before updating; nothing was changed"))
            case .success(let cs):
                running = cs.contains { $0.isRunning }
                // The update moves the tag the compose file names (so that it lasts): a digest
                // cannot be moved, and the next `docker compose up` would put that image back.
                if let image = (try? host.composeServiceFacts(t))?.image, image.contains("@") {
                    return Foresight(preflight: Issue("compose.image_pinned_by_digest", "compose service \(t.service) names its image by digest (\(image)) in \(t.file): an update could not last, the next docker compose up would put that image back; name it by a tag; nothing was changed"))
                }
                if !running && !flags.start {
                    return Foresight(preflight: Issue("update.service_stopped", "compose service \(t.service) is stopped and Compose would start it to update it; update with --start to update and start it; nothing was changed"))
                }
            case .failure(let e):
                return Foresight(preflight: Issue("compose.image_lookup_failed", "could not list the containers of compose service \(t.service): \(e.message); nothing was changed"))
            }
        }
        // A health check that can only fail: `container_health` of a container without one.
        // (A stopped service left stopped is not health-checked.)
        if service.health.kind == .containerHealth && (running || flags.start) {
            let configured = (try? host.configuredHealthcheck(for: service)) ?? nil
            if !(configured ?? image.hasHealthcheck) {
                let why = configured == false ? "the service's own settings disable the healthcheck" : "image \(reference) has no HEALTHCHECK and the service sets none of its own"
                return Foresight(refusal: Issue("image.healthcheck_missing", "the catalog checks \(service.name) with container_health, but \(why): the update could only fail; nothing was changed"))
            }
        }
        return Foresight()
    }

    /// `package validate`: the package's own verdict, then the device's (version floor and, when
    /// the host answers, what can be foreseen), so it says what `package load` would.
    public func validateLikeLoad(_ path: String, flags: LoadFlags) throws -> ValidationOutcome {
        var v = try validate(path)
        _ = try versionVerdict(&v, flags: flags)
        guard v.report.status == .accepted, let service = v.report.service, let payload = v.report.imagePayload else { return v }
        let host: any ContainerHost
        do { host = try self.host() } catch {
            onNotice?("Not checked against the container host (\(error.message)): whether the service can be updated now.")
            return v
        }
        let f = foresee(service: service, image: payload.config, reference: payload.reference, flags: flags, host: host)
        if let refusal = f.refusal { try reject(&v, refusal) }
        if let p = f.preflight { onNotice?("note: \(p)") }
        return v
    }
}

extension Application.ValidationOutcome {
    public var signature: Application.SignatureVerdict {
        let r = report
        let problems = r.issues.filter { $0.code.hasPrefix("signature.") }
        if !problems.isEmpty {
            return .init(status: "rejected", sentence: "rejected: " + problems.map(\.description).joined(separator: "; "))
        }
        if let s = r.signature {
            let comment = s.trustedComment.isEmpty ? "" : " (trusted comment: \(s.trustedComment))"
            return .init(status: "verified", keyID: s.keyID, trustedComment: s.trustedComment,
                         sentence: "verified, signed by trusted key \(s.keyID)\(comment)")
        }
        if r.scan?.entries.contains(where: { $0.name == PackageSignature.entryName }) == true {
            // Which key signed it, even unchecked (read from the signature file itself).
            let key = r.scan?.signatureBytes.flatMap { try? MinisignSignature(parsing: $0) }?.keyID.description
            return .init(status: "not_checked", keyID: key,
                         sentence: "present but not checked\(key.map { " (made with key \($0))" } ?? ""): the catalog trusts no key ([trust] public_keys)")
        }
        return .init(status: "unsigned", sentence: "none (the catalog does not require one)")
    }
}
