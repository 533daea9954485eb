import CaissonCore
import Foundation

/// Loading a thin package (issue 16): before anything changes, every layer it leaves out must be
/// in Docker's layer store (by ChainID); after the load, the image must be the full image the
/// manifest binds.
extension Application {
    /// `package.base_missing` when the host lacks a layer the thin package leaves out, naming the
    /// missing layers and (where the inventory knew) the images that had them; nil when all are there.
    func baseMissingIssue(_ thin: Manifest.Thin, host: any ContainerHost) throws -> Issue? {
        let images: [ImageInfo]
        do { images = try host.listImages() } catch {
            throw CaissonError("docker.list_failed", "could not list the images on this device to check the layers a thin package needs: \(error.message)")
        }
        let absent = ThinPlan.missing(thin.requiredChainIDs, images: images)
        let missing = thin.requiredChainIDs.enumerated().filter { absent.contains($0.element) }
        guard !missing.isEmpty else { return nil }
        let chains = LayerChain.chainIDs(thin.diffIDs)
        let shown = missing.prefix(4).map { m -> String in
            let position = chains.firstIndex(of: m.element).map { "layer \($0 + 1) of \(chains.count)" } ?? "a layer"
            return "\(LayerChain.short(m.element)) (\(position))"
        }.joined(separator: ", ") + (missing.count > 4 ? " and \(missing.count - 4) more" : "")
        var had: [String] = []
        for b in thin.bases where missing.contains(where: { thin.basesHolding($0.element).contains(b) }) {
            had.append((b.references.first.map { "\($0) " } ?? "") + "(\(LayerChain.short(b.imageID)))")
        }
        var message = "this thin package leaves out \(thin.requiredChainIDs.count) layer(s) it expects on this device, and \(missing.count) are not here: \(shown)"
        if !had.isEmpty {
            message += "; the inventory it was built from\(thin.deviceID.map { " (device \($0))" } ?? "") saw them in " + had.prefix(3).joined(separator: ", ")
        }
        message += ". Nothing was loaded; bring that base image back, or use a full package (built without --against)"
        return Issue("package.base_missing", message)
    }

    /// After the load: the image must be the full image validated (its id is checked already) with
    /// exactly the DiffIDs of its config (what a thin package's `[thin]` binds). Hosts that do not
    /// report layers are not checked here.
    static func layerMismatch(_ info: ImageInfo, payload: ImagePayload) -> String? {
        guard !payload.diffIDs.isEmpty, !info.layers.isEmpty, info.layers != payload.diffIDs else { return nil }
        return "the loaded image has \(info.layers.count) layer(s) that are not the \(payload.diffIDs.count) DiffIDs validated"
    }
}

extension Application {
    /// Ends a load before any change with `issue` as its refusal (exit 2), audited.
    func refuse(_ outcome: LoadOutcome, _ issue: Issue, service: String, validationID: String) throws -> LoadOutcome {
        var outcome = outcome
        outcome.refusal = issue
        try store().appendAudit([AuditEvent(kind: .validationRejected, at: systemClock.timestamp(), serviceName: service,
                                            validationAttemptID: validationID, message: issue.description)])
        finish()
        return outcome
    }
}
