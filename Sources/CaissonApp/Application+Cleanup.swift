import CaissonCore
import CaissonStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `package cleanup`: staged copies, images and backup containers no longer needed.
extension Application {
    public struct CleanupReport: Sendable, Encodable {
        public struct RemovedImage: Sendable, Encodable {
            public var service: String
            public var imageID: String
            public var references: [String]
            enum CodingKeys: String, CodingKey {
                case service
                case imageID = "image_id"
                case references
            }
        }
        /// Where staged packages live (`<state-dir>/staging`).
        public var stagingDirectory = ""
        public var removedStagedPackages: [String] = []
        public var removedImages: [RemovedImage] = []
        public var keptImageIDs: [String] = []
        public var removedContainers: [String] = []
        public var problems: [Issue] = []
        /// Images kept because a thin package built from the last exported inventory needs
        /// their layers (issue 16; `--ignore-inventory` removes them anyway).
        public var keptForInventory: [String] = []

        enum CodingKeys: String, CodingKey {
            case stagingDirectory = "staging_directory"
            case removedStagedPackages = "removed_staged_packages"
            case removedImages = "removed_images"
            case keptImageIDs = "kept_image_ids"
            case removedContainers = "removed_containers"
            case problems
            case keptForInventory = "kept_for_inventory"
        }
    }

    /// Removes staged packages not used by an in-flight attempt, images of releases that are
    /// neither active nor previous known-good (nor among the `keep` newest releases of their
    /// service) with their pins, and leftover backup containers of committed attempts.
    /// Takes the operation lock; a failure to remove one thing is reported and the rest goes on.
    public func cleanup(keep: Int? = nil, ignoreInventory: Bool = false) throws -> CleanupReport {
        let lock = try acquireStateLock("package cleanup")
        defer { lock.release() }
        try recoverIfNeeded()
        let s = try store()
        var report = CleanupReport()
        report.stagingDirectory = stagingDir
        let inFlight = try s.inFlightAttempts().map(\.attempt)

        // Staged packages.
        let busyValidations = Set(inFlight.compactMap(\.validationAttemptID))
        var keptStagedPaths: Set<String> = []
        for p in try s.stagedPackages().records {
            if let v = p.validationAttemptID, busyValidations.contains(v) {
                keptStagedPaths.insert(p.path)
                continue
            }
            // Only inside the staging directory, and never through a link (a link is removed itself).
            guard Paths.directory(of: p.path) == stagingDir else {
                report.problems.append(Issue("cleanup.remove_failed", "the staged package record \(p.packageID) names \(p.path), outside \(stagingDir); not removing it"))
                continue
            }
            let err = StateDirectory.removeFile(stagingDir, Paths.lastComponent(of: p.path))
            if err == 0 {
                try s.removeStagedPackage(p.packageID)
                report.removedStagedPackages.append(p.path)
            } else {
                report.problems.append(Issue("cleanup.remove_failed", "cannot remove the staged package \(p.path): \(ByteSourceError.describe(errno: err))"))
            }
        }
        // Files in the staging directory that no record names (a copy cut short by a crash).
        // Never following a link: a `staging` that is one is reported, not entered.
        let dir = stagingDir
        let stagedNames: [String]
        do {
            stagedNames = try StateDirectory.entries(dir)
        } catch let e as CaissonError {
            report.problems.append(e.issue)
            stagedNames = []
        }
        for name in stagedNames {
            let path = dir + "/" + name
            guard !keptStagedPaths.contains(path), name.hasSuffix(".edgepkg") || name.hasSuffix(".edgepkg.partial") else { continue }
            if StateDirectory.removeFile(dir, name) == 0 { report.removedStagedPackages.append(path) }
        }
        removeRustStagingLeftovers(&report)

        // Images. Without a reachable host the staged packages are still cleaned; the rest is
        // reported as a problem (exit 1), never a silent success.
        let host: any ContainerHost
        do {
            host = try self.host()
        } catch {
            report.problems.append(Issue("cleanup.host_unavailable",
                                         "images and backup containers were not cleaned: \((error as? CaissonError)?.message ?? "\(error)")"))
            return try finishCleanup(report, store: s)
        }
        let catalog = try catalog()
        var keepIDs: Set<String> = Set(inFlight.compactMap(\.targetImageID) + inFlight.compactMap(\.previousImageID))
        var candidates: [(service: String, imageID: String, reference: String?)] = []
        let attempts = try s.updateAttempts().records
        for svc in catalog.services.sorted(by: { $0.name < $1.name }) {
            let state = try s.serviceState(svc.name)
            if let a = state?.activeImageID { keepIDs.insert(a) }
            if let p = state?.previousKnownGoodImageID { keepIDs.insert(p) }
            let releases = try s.candidateReleases(service: svc.name).records
                .sorted { ($0.createdAt, $0.candidateReleaseID) > ($1.createdAt, $1.candidateReleaseID) }
            if let keep { for r in releases.prefix(max(0, keep)) { keepIDs.insert(r.imageID) } }
            for r in releases { candidates.append((svc.name, r.imageID, r.imageReference)) }
            // Images an attempt pinned that no release names (e.g. the catalog image): only the pin.
            for a in attempts where a.serviceName == svc.name {
                for id in [a.previousImageID, a.targetImageID].compactMap({ $0 }) where !releases.contains(where: { $0.imageID == id }) {
                    candidates.append((svc.name, id, nil))
                }
            }
        }
        if !ignoreInventory {
            // Only candidates whose image goes (a pin-only candidate keeps its image).
            let protected = inventoryProtectedImages(candidates: candidates.filter { $0.reference != nil && !keepIDs.contains($0.imageID) }.map(\.imageID),
                                                     host: host, problems: &report.problems)
            report.keptForInventory = protected.sorted()
            keepIDs.formUnion(protected)
        }
        report.keptImageIDs = keepIDs.sorted()
        var seen: Set<String> = []
        for c in candidates where !keepIDs.contains(c.imageID) && !seen.contains(c.service + " " + c.imageID) {
            seen.insert(c.service + " " + c.imageID)
            var removed: [String] = []
            do {
                let pin = UpdateMachine.pinReference(service: c.service, imageID: c.imageID)
                if try host.inspectImage(pin)?.id == c.imageID {
                    try host.removeImage(pin)
                    removed.append(pin)
                }
                if let ref = c.reference {
                    if try host.inspectImage(ref)?.id == c.imageID {
                        try host.removeImage(ref)
                        removed.append(ref)
                    }
                    // Still there under another tag of ours or untagged: remove it by id.
                    if let left = try host.inspectImage(c.imageID), left.repoTags.isEmpty {
                        try host.removeImage(c.imageID)
                        removed.append(c.imageID)
                    }
                }
            } catch {
                report.problems.append(Issue("cleanup.image_remove_failed", "could not remove image \(Format.shortID(c.imageID)) of \(c.service): \(error.message)"))
            }
            if !removed.isEmpty {
                report.removedImages.append(CleanupReport.RemovedImage(service: c.service, imageID: c.imageID, references: removed))
            }
        }

        // Backup containers that a finished attempt left (docker.cleanup_failed, or kept because
        // automatic rollback was off and since replaced), except the one a service's newest
        // attempt still keeps for `caisson rollback`, and never after a failed rollback (the
        // backup may be the only copy of the service).
        var kept: Set<String> = []
        for svc in catalog.services { if let k = try keptBackup(service: svc.name) { kept.insert(k) } }
        let names = Set(attempts.filter { [.succeeded, .failed, .rolledBack].contains($0.status) && $0.runtimeMode == .docker }
            .compactMap(\.rollbackContainerName)).subtracting(kept)
        for name in names.sorted() {
            do {
                if try host.inspectContainer(name) != nil {
                    try host.removeContainer(name)
                    report.removedContainers.append(name)
                }
            } catch {
                report.problems.append(Issue("cleanup.container_remove_failed", "could not remove the backup container \(name): \(error.message)"))
            }
        }
        return try finishCleanup(report, store: s)
    }

    /// The Rust tool's staged copies: `staging/<validation id>/package.edgepkg`. Only those
    /// (a UUID-named directory, a regular `package.edgepkg`), never following a symbolic link.
    func removeRustStagingLeftovers(_ report: inout CleanupReport) {
        let dir = stagingDir
        var st = stat()
        guard lstat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return }
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() where Self.isUUID(name) {
            let sub = dir + "/" + name
            guard lstat(sub, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { continue }
            let file = sub + "/package.edgepkg"
            if lstat(file, &st) == 0 {
                guard (st.st_mode & S_IFMT) == S_IFREG else {
                    report.problems.append(Issue("cleanup.remove_failed", "\(file) is not a regular file; left as it is"))
                    continue
                }
                guard unlink(file) == 0 else {
                    report.problems.append(Issue("cleanup.remove_failed", "cannot remove \(file): \(ByteSourceError.describe(errno: errno))"))
                    continue
                }
            }
            if rmdir(sub) == 0 {
                report.removedStagedPackages.append(sub)
            } else {
                report.problems.append(Issue("cleanup.remove_failed", "cannot remove the Rust tool's staging folder \(sub): \(ByteSourceError.describe(errno: errno))"))
            }
        }
    }

    static func isUUID(_ name: String) -> Bool {
        let b = Array(name.utf8)
        guard b.count == 36 else { return false }
        for (i, c) in b.enumerated() {
            if [8, 13, 18, 23].contains(i) { if c != UInt8(ascii: "-") { return false }; continue }
            let hex = (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70)
            if !hex { return false }
        }
        return true
    }

    private func finishCleanup(_ report: CleanupReport, store s: CaissonStore) throws -> CleanupReport {
        finish()
        let summary = "removed \(report.removedStagedPackages.count) staged package(s), \(report.removedImages.count) image(s), \(report.removedContainers.count) backup container(s)"
            + (report.problems.isEmpty ? "" : "; \(report.problems.count) problem(s): " + report.problems.map(\.description).joined(separator: "; "))
        try s.appendAudit([AuditEvent(kind: .packageCleanup, at: systemClock.timestamp(), message: summary)])
        return report
    }
}
