import CaissonCore
import CaissonStore
import Foundation

/// Text output. Where the Rust tool printed a line for a field, the same label and layout
/// (scripts written for it keep parsing: `docs/cli.md` of caisson 0.1.0 and its `src/cli`); what
/// Caisson knows beyond it comes on further lines, never inside the Rust tool's lines.
extension CaissonCLI {
    /// The Rust tool's words for an attempt status in text output (JSON keeps the snake_case value).
    static func statusLabel(_ s: UpdateStatus) -> String {
        switch s {
        case .applying: return "applying"
        case .healthChecking: return "health checking"
        case .succeeded: return "succeeded"
        case .failed: return "failed"
        case .rollbackStarted: return "rolling back"
        case .rolledBack: return "rolled back"
        case .rollbackFailed: return "rollback failed"
        }
    }

    static func outcomeLabel(_ o: HealthOutcome) -> String {
        switch o {
        case .passed: return "passed"
        case .failed: return "failed"
        case .timedOut: return "timed out"
        }
    }

    /// `Issues: none`, or `Issues:` and one `- [code] message` line each.
    static func printIssues(_ issues: [Issue], out: Output) {
        if issues.isEmpty {
            out.line("Issues: none")
            return
        }
        out.line("Issues:")
        for i in issues { out.line("- \(i)") }
    }

    /// The Rust tool's active-image label: the recorded one, else the catalog image (Docker mode),
    /// else `not recorded yet`. Pins never show: `REFERENCE (short id)` when the id is known.
    static func activeImageLabel(_ v: Application.ServiceView, app: Application) -> String {
        if let st = v.state, st.activeImageReference != nil || st.activeImageID != nil {
            if st.activeImageID == nil, let r = st.activeImageReference { return r }
            return app.displayImage(st.activeImageReference, id: st.activeImageID, service: v.name)
        }
        return v.target.imageReference ?? "not recorded yet"
    }

    static func printServiceList(_ views: [Application.ServiceView], app: Application, out: Output) {
        out.line("Known services")
        for v in views {
            let last = v.lastUpdate.map { statusLabel($0.status) } ?? "none yet"
            out.line("- \(v.name) | runtime: \(v.runtimeMode) | active image: \(activeImageLabel(v, app: app)) | last update: \(last)")
            if let version = v.state?.highestPackageVersion { out.line("  package version: \(version)") }
            if let live = v.live { printLive(live, out: out, indent: "  live ") }
        }
        if views.isEmpty { out.line("No services are defined in the current service catalog.") }
    }

    static func printServiceShow(_ v: Application.ServiceView, app: Application, out: Output) {
        out.line("Service: \(v.name)")
        out.line("Revision: \(v.serviceRevision)")
        out.line("Platform: \(v.platform)")
        out.line("Runtime: \(v.runtimeMode)")
        if v.target.kind == "container" {
            out.line("Container: \(v.target.containerName ?? "")")
            out.line("Catalog image: \(v.target.imageReference ?? "")")
        } else {
            out.line("Compose project: \(v.target.project ?? "")")
            out.line("Compose file: \(v.target.file ?? "")")
            out.line("Compose service: \(v.target.service ?? "")")
        }
        out.line("Health check: \(v.healthCheck.kind)")
        out.line("Active image: \(activeImageLabel(v, app: app))")
        let previous: String
        if let st = v.state, st.previousKnownGoodImageReference != nil || st.previousKnownGoodImageID != nil {
            previous = st.previousKnownGoodImageID == nil ? st.previousKnownGoodImageReference!
                : app.displayImage(st.previousKnownGoodImageReference, id: st.previousKnownGoodImageID, service: v.name)
        } else {
            previous = "not recorded yet"
        }
        out.line("Previous known-good image: \(previous)")
        if let st = v.state { out.line("State updated: \(st.updatedAt)") }
        if let a = v.lastUpdate {
            out.line("Last update: \(statusLabel(a.status))")
            out.line("Last target image: \(app.displayImage(a.targetImageReference, id: nil, service: v.name))")
            out.line("Last started: \(a.startedAt)")
            if let f = a.finishedAt { out.line("Last finished: \(f)") }
        } else {
            out.line("Last update: none yet")
        }
        // Ours.
        if let id = v.state?.activeImageID { out.line("Active image id: \(Format.shortID(id))") }
        if let id = v.state?.previousKnownGoodImageID { out.line("Previous known-good image id: \(Format.shortID(id))") }
        out.line("Package version: \(v.state?.highestPackageVersion ?? "unknown")")
        let h = v.healthCheck
        out.line("Health check settings: timeout \(h.timeoutSecs)s, poll every \(h.pollIntervalSecs)s, stable for \(h.stableSecs)s")
        out.line("Automatic rollback: \(v.automaticRollback ? "on" : "off")")
        if let a = v.lastUpdate { out.line("Last update id: \(a.updateID)") }
        if let live = v.live {
            out.line("Live:")
            printLive(live, out: out, indent: "    ")
        }
    }

    static func printHistoryList(_ list: RecordList<UpdateAttempt>, app: Application, out: Output) {
        out.line("Update history")
        for a in list.records {
            out.line("- \(a.updateID) | \(a.startedAt) | \(a.serviceName) | \(statusLabel(a.status))")
            out.line("  target image: \(app.displayImage(a.targetImageReference, id: nil, service: a.serviceName))")
            if a.kind != "update" { out.line("  kind: \(a.kind)") }
        }
        if list.records.isEmpty { out.line("No update history matched the current filter.") }
        for u in list.unreadable { out.line("  note: \(u.message)") }
    }

    static func printHistoryShow(_ a: UpdateAttempt, events: [AuditEvent], app: Application, out: Output) {
        out.line("Update: \(a.updateID)")
        out.line("Service: \(a.serviceName)")
        out.line("Status: \(statusLabel(a.status))")
        out.line("Target image: \(app.displayImage(a.targetImageReference, id: nil, service: a.serviceName))")
        if let p = a.previousImageReference { out.line("Previous image: \(app.displayImage(p, id: nil, service: a.serviceName))") }
        out.line("Started: \(a.startedAt)")
        if let f = a.finishedAt { out.line("Finished: \(f)") }
        if let h = a.healthCheck { out.line("Health check: \(outcomeLabel(h.outcome)) (\(h.message))") }
        printAttemptExtras(a, app: app, out: out)
        printIssues(a.issues, out: out)
        out.line("Events:")
        for e in events { out.line("- \(e.at) | \(e.kind.rawValue) | \(e.message)") }
        if events.isEmpty { out.line("- none recorded") }
    }

    /// Lines the Rust tool did not have (before `Issues:`).
    static func printAttemptExtras(_ a: UpdateAttempt, app: Application, out: Output) {
        if let h = a.rollbackHealthCheck { out.line("After rollback: \(outcomeLabel(h.outcome)) (\(h.message))") }
        if a.kind != "update" { out.line("Kind: \(a.kind)") }
        out.line("Runtime: \(a.runtimeMode.rawValue)")
        if let id = a.targetImageID { out.line("Target image id: \(Format.shortID(id))") }
        if let id = a.previousImageID { out.line("Previous image id: \(Format.shortID(id))") }
        if let v = a.packageVersion { out.line("Package version: \(v)") }
        if let v = a.validationAttemptID { out.line("Validation id: \(v)") }
    }

    /// The Rust tool's `Update result` block (package load, rollback), then our summary.
    static func printAttempt(_ a: UpdateAttempt, app: Application, out: Output) {
        out.line("Update result")
        out.line("Status: \(statusLabel(a.status))")
        out.line("Service: \(a.serviceName)")
        out.line("Target image: \(app.displayImage(a.targetImageReference, id: a.targetImageID, service: a.serviceName))")
        if let p = a.previousImageReference {
            out.line("Previous image: \(app.displayImage(p, id: a.previousImageID, service: a.serviceName))")
        }
        out.line("Started: \(a.startedAt)")
        if let f = a.finishedAt { out.line("Finished: \(f)") }
        if let h = a.healthCheck { out.line("Health check: \(outcomeLabel(h.outcome)) (\(h.message))") }
        if let h = a.rollbackHealthCheck { out.line("After rollback: \(outcomeLabel(h.outcome)) (\(h.message))") }
        out.line("Update id: \(a.updateID)")
        printIssues(a.issues, out: out)
        out.line("Summary: \(rustSummary(a.status))")
        out.line(truth(a, app: app))
    }

    /// The Rust tool's summary sentence, word for word (scripts match on it).
    static func rustSummary(_ s: UpdateStatus) -> String {
        switch s {
        case .succeeded: return "the package was loaded and the service stayed healthy"
        case .rolledBack: return "the update failed, so the service was moved back to the previous image"
        case .rollbackFailed: return "the update failed and the automatic rollback did not finish cleanly"
        case .failed: return "the update did not finish cleanly"
        case .applying: return "the update is still marked as applying"
        case .healthChecking: return "the update is still waiting on health checks"
        case .rollbackStarted: return "rollback started but did not finish yet"
        }
    }

    /// What is true of the service after the attempt, in one sentence (ours, after the Rust one).
    static func truth(_ a: UpdateAttempt, app: Application) -> String {
        let target = app.displayImage(a.targetImageReference, id: a.targetImageID, service: a.serviceName, withID: true)
        let previous = a.previousImageReference.map { app.displayImage($0, id: a.previousImageID, service: a.serviceName, withID: true) } ?? "the previous release"
        switch a.status {
        case .succeeded:
            if a.issues.contains(where: { $0.code == "update.left_stopped" }) {
                return "\(target) is installed; the service was stopped before the update and stays stopped (update with --start to start it)."
            }
            return "The service now runs \(target)."
        case .rolledBack:
            return "The update did not stay healthy; the previous release \(previous) was restored and is running."
        case .failed:
            if a.issues.contains(where: { $0.code == "rollback.disabled" }) {
                let backup = a.rollbackContainerName.map { " (kept as container \($0))" } ?? ""
                return "Automatic rollback is off: the new release \(target) stays in place although its health check failed; the previous release\(backup) is what `caisson rollback \(a.serviceName)` returns to."
            }
            return "The service was not changed; it runs \(previous)."
        case .rollbackFailed:
            return "ROLLBACK FAILED: the service needs a human. See the issues above."
        case .applying, .healthChecking, .rollbackStarted:
            return "The attempt is unfinished; the next Caisson command recovers it."
        }
    }

    /// The Rust tool's `Package validation` block, then ours (before `Issues:`).
    static func printValidationText(_ v: Application.ValidationOutcome, out: Output) {
        let r = v.report
        out.line("Package validation")
        out.line("Status: \(v.record.status.rawValue)")
        out.line("Source package: \(v.record.packagePath)")
        if let m = r.manifest {
            out.line("Target service: \(m.target.service)")
            out.line("Service revision: \(m.target.serviceRevision)")
            out.line("Platform: \(m.target.platform)")
            out.line("Package version: \(m.packageVersion)")
            out.line("Target image: \(m.image.reference)")
        }
        if let t = r.scan?.imageTar { out.line("Image archive: image.tar (\(t.size) bytes)") }
        // Ours.
        if let m = r.manifest { out.line("Created at: \(m.createdAt)") }
        if let e = r.scan?.encryptedImage {
            let kinds = e.stanzaTypes.isEmpty ? "" : " to " + (e.stanzaTypes == ["scrypt"] ? "a passphrase" : "\(e.stanzaTypes.count) recipient(s)")
            out.line("Encrypted: age\(kinds), \(Format.bytes(e.size))\(e.fileKey != nil ? ", opened with this device's key" : "")")
        }
        if let f = r.image {
            out.line("Image id: \(Format.shortID(f.imageID)) (\(f.layers.count) layer\(f.layers.count == 1 ? "" : "s"), \(Format.bytes(f.totalLayerBytes)), \(f.platform), \(f.hasHealthcheck ? "with" : "no") HEALTHCHECK)")
        }
        out.line("Signature: \(v.signature.sentence)")
        out.line("Validation id: \(v.record.validationAttemptID)")
        printIssues(v.record.issues, out: out)
    }

    /// The Rust tool's `Package cleanup` block, then what else Caisson removed.
    static func printCleanup(_ r: Application.CleanupReport, out: Output) {
        out.line("Package cleanup")
        if r.removedStagedPackages.isEmpty {
            out.line("No leftover package artifacts were found.")
        } else {
            out.line("Removed leftover package artifacts under \(r.stagingDirectory)")
            out.line("Removed workspace entries: \(r.removedStagedPackages.count)")
        }
        for p in r.removedStagedPackages { out.line("- staged package \(p)") }
        for i in r.removedImages { out.line("- image \(Format.shortID(i.imageID)) of \(i.service): \(i.references.joined(separator: ", "))") }
        for c in r.removedContainers { out.line("- container \(c)") }
        out.line("Removed images: \(r.removedImages.count); removed backup containers: \(r.removedContainers.count)")
        if !r.keptImageIDs.isEmpty { out.line("Kept images: " + r.keptImageIDs.map { Format.shortID($0) }.joined(separator: ", ")) }
        if !r.keptForInventory.isEmpty { out.line("Kept for thin packages (last exported inventory): " + r.keptForInventory.map { Format.shortID($0) }.joined(separator: ", ")) }
        for p in r.problems { out.line("Problem: \(p)") }
    }

    static func printMigration(_ r: RustStateImport.Report, out: Output) {
        out.line("Rust caisson state in \(r.directory)")
        out.line("Imported: \(r.imported.sentence)")
        out.line("Already in the store: \(r.alreadyPresent.sentence)")
        if r.skipped.isEmpty {
            out.line("Skipped: none")
        } else {
            out.line("Skipped (unreadable, not imported):")
            for i in r.skipped { out.line("- \(i)") }
        }
        for n in r.notes { out.line("Note: \(n)") }
        out.line("The Rust tool's files were left as they are.")
    }
}

/// A value a closure fills in for its caller (the CLI runs one command on one thread).
final class Box<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}
