import CaissonCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Takes over a state directory written by the Rust `caisson` 0.1.0: its JSON records
/// (`service-states/`, `update-attempts/`, `validation-records/`, `image-import-records/`,
/// `candidate-releases/`, `audit/events.jsonl`) become store records with the same ids,
/// timestamps and statuses, and its audit events start (or continue) the hash chain, each marked
/// `[imported from the Rust tool, event <id>]`. The JSON files are only read, never changed (the
/// Rust tool can still read them).
///
/// Everything goes through the store's public API. The import is resumable rather than one
/// transaction: every record is written by id and only when the store does not have it yet, the
/// audit events in one append (skipping events already imported, by their Rust event id), and the
/// `state_imported` event that marks the import done comes last. A crash anywhere leaves a state
/// the next run completes, with nothing imported twice.
///
/// A record that cannot be read (truncated JSON, a missing field, an unknown status or kind, a
/// bad timestamp) is reported and skipped; it never stops the import of the others.
public enum RustStateImport {
    /// The Rust tool's record folders (FORMATS §6), in the order they are read.
    public static let folders = ["validation-records", "image-import-records", "candidate-releases",
                                 "update-attempts", "service-states"]
    public static let auditLog = "audit/events.jsonl"
    /// The marker of an imported audit event's message.
    public static let eventPrefix = "[imported from the Rust tool, event "
    /// Larger JSON files are not Rust records (each is a few KiB): reported, not read.
    static let maxRecordBytes = 4 << 20
    static let maxAuditLogBytes = 256 << 20

    public struct Counts: Sendable, Equatable, Encodable {
        public var serviceStates = 0
        public var updateAttempts = 0
        public var validationRecords = 0
        public var imageImportRecords = 0
        public var candidateReleases = 0
        public var auditEvents = 0

        public init() {}

        public var total: Int {
            serviceStates + updateAttempts + validationRecords + imageImportRecords + candidateReleases + auditEvents
        }

        /// "1 service state, 3 update attempts, ..." (every kind, zeros too).
        public var sentence: String {
            func n(_ v: Int, _ one: String, _ many: String) -> String { "\(v) \(v == 1 ? one : many)" }
            return [n(serviceStates, "service state", "service states"),
                    n(updateAttempts, "update attempt", "update attempts"),
                    n(validationRecords, "validation record", "validation records"),
                    n(imageImportRecords, "image import record", "image import records"),
                    n(candidateReleases, "candidate release", "candidate releases"),
                    n(auditEvents, "audit event", "audit events")].joined(separator: ", ")
        }

        enum CodingKeys: String, CodingKey {
            case serviceStates = "service_states"
            case updateAttempts = "update_attempts"
            case validationRecords = "validation_records"
            case imageImportRecords = "image_import_records"
            case candidateReleases = "candidate_releases"
            case auditEvents = "audit_events"
        }
    }

    public struct Report: Sendable, Equatable, Encodable {
        public var directory: String
        public var imported = Counts()
        /// Records the store already had (an earlier import, or Caisson's own newer state).
        public var alreadyPresent = Counts()
        /// Files or lines that could not be imported (`import.unreadable_record`, ...).
        public var skipped: [Issue] = []
        /// Things imported with a change the operator should know about.
        public var notes: [Issue] = []

        public init(directory: String) { self.directory = directory }

        enum CodingKeys: String, CodingKey {
            case directory, imported, skipped, notes
            case alreadyPresent = "already_present"
        }

        /// One paragraph for the operator.
        public var summary: String {
            var s = "Imported the Rust caisson state in \(directory): \(imported.sentence)"
            if alreadyPresent.total > 0 { s += "; already in the store: \(alreadyPresent.total) record(s)" }
            if !skipped.isEmpty { s += "; skipped \(skipped.count) unreadable record(s)" }
            return s + "."
        }
    }

    /// Does `directory` hold anything the Rust tool writes? (A few `lstat`s.)
    public static func isPresent(in directory: String) -> Bool {
        (folders + [auditLog]).contains { name in
            var st = stat()
            return lstat(directory + "/" + name, &st) == 0
        }
    }

    // MARK: The Rust tool's JSON shapes (field names as it writes them)

    struct RIssue: Decodable {
        var code: String
        var message: String
    }

    struct RManifest: Decodable {
        struct Target: Decodable { var service: String; var service_revision: String?; var platform: String? }
        struct Image: Decodable { var reference: String }
        var package_version: String
        var created_at: String?
        var target: Target
        var image: Image
    }

    struct RValidation: Decodable {
        struct Archive: Decodable { var entry_name: String; var size_bytes: Int64 }
        var attempt_id: String
        var status: String
        var source_path: String
        var staged_path: String?
        var source_file_size_bytes: Int64?
        var validated_at: String
        var manifest: RManifest?
        var image_archive: Archive?
        var issues: [RIssue]
    }

    struct RImage: Decodable {
        var image_id: String
        var repo_tags: [String]
        var repo_digests: [String]
        var architecture: String?
        var os: String?
    }

    struct RImport: Decodable {
        var import_id: String
        var validation_attempt_id: String
        var status: String
        var service_name: String
        var image_reference: String
        var package_version: String
        var imported_at: String
        var imported_image: RImage?
        var candidate_release_id: String?
        var issues: [RIssue]
    }

    struct RCandidate: Decodable {
        var candidate_release_id: String
        var import_id: String
        var validation_attempt_id: String
        var service_name: String
        var image_reference: String
        var package_version: String
        var created_at: String
        var imported_image: RImage
    }

    struct RHealth: Decodable {
        var kind: String
        var outcome: String
        var message: String
        var checked_at: String
    }

    struct RAttempt: Decodable {
        var update_id: String
        var candidate_release_id: String
        var validation_attempt_id: String
        var service_name: String
        var runtime_mode: String
        var target_image_reference: String
        var previous_candidate_release_id: String?
        var previous_image_reference: String?
        var rollback_container_name: String?
        var status: String
        var started_at: String
        var finished_at: String?
        var health_check: RHealth?
        var issues: [RIssue]
    }

    struct RState: Decodable {
        var service_name: String
        var active_candidate_release_id: String?
        var active_image_reference: String
        var previous_known_good_candidate_release_id: String?
        var previous_known_good_image_reference: String?
        var updated_at: String
    }

    struct REvent: Decodable {
        var event_id: String
        var attempt_id: String
        var occurred_at: String
        var kind: String
        var message: String
    }

    /// A record that cannot be imported, with the sentence why.
    struct Unusable: Error {
        var code: String
        var why: String
        init(_ why: String) {
            self.code = "import.unreadable_record"
            self.why = why
        }
        init(_ code: String, _ why: String) {
            self.code = code
            self.why = why
        }
    }

    // MARK: Import

    /// Imports what `directory` holds into `store`. `now` stamps the closing `state_imported`
    /// event. Throws only when the store itself fails (a write, not a record).
    @discardableResult
    public static func run(store: CaissonStore, directory: String, now: String) throws -> Report {
        var report = Report(directory: directory)
        var reader = Reader(directory: directory)

        let validations: [RValidation] = reader.records("validation-records", &report).sorted {
            (instant($0.validated_at), $0.attempt_id) < (instant($1.validated_at), $1.attempt_id)
        }
        let imports: [RImport] = reader.records("image-import-records", &report).sorted {
            (instant($0.imported_at), $0.import_id) < (instant($1.imported_at), $1.import_id)
        }
        let candidates: [RCandidate] = reader.records("candidate-releases", &report).sorted {
            (instant($0.created_at), $0.candidate_release_id) < (instant($1.created_at), $1.candidate_release_id)
        }
        let attempts: [RAttempt] = reader.records("update-attempts", &report).sorted {
            (instant($0.started_at), $0.update_id) < (instant($1.started_at), $1.update_id)
        }
        let states: [RState] = reader.records("service-states", &report).sorted { $0.service_name < $1.service_name }
        let events = reader.events(&report)

        let validationByID = Dictionary(validations.map { ($0.attempt_id, $0) }, uniquingKeysWith: { a, _ in a })
        let candidateByID = Dictionary(candidates.map { ($0.candidate_release_id, $0) }, uniquingKeysWith: { a, _ in a })
        let attemptByID = Dictionary(attempts.map { ($0.update_id, $0) }, uniquingKeysWith: { a, _ in a })
        let importByCandidate = Dictionary(imports.compactMap { i in i.candidate_release_id.map { ($0, i) } },
                                           uniquingKeysWith: { a, _ in a })

        /// A release's package version, from whichever record still says it.
        func version(ofCandidate id: String?) -> String? {
            guard let id else { return nil }
            if let c = candidateByID[id] { return c.package_version }
            if let i = importByCandidate[id] { return i.package_version }
            for a in attempts where a.candidate_release_id == id {
                if let v = validationByID[a.validation_attempt_id]?.manifest?.package_version { return v }
            }
            return nil
        }
        /// The manifest `created_at` of a release's package (for the freshness check).
        func createdAt(ofCandidate id: String?) -> String? {
            guard let id else { return nil }
            var validationID = candidateByID[id]?.validation_attempt_id ?? importByCandidate[id]?.validation_attempt_id
            if validationID == nil {
                validationID = attempts.first(where: { $0.candidate_release_id == id })?.validation_attempt_id
            }
            guard let v = validationID, let created = validationByID[v]?.manifest?.created_at else { return nil }
            return Timestamps.normalize(created)
        }

        for v in validations {
            if try store.validation(v.attempt_id) != nil { report.alreadyPresent.validationRecords += 1; continue }
            try store.recordValidation(ValidationRecord(
                validationAttemptID: v.attempt_id, packagePath: v.source_path, packageSize: v.source_file_size_bytes,
                status: v.status == "accepted" ? .accepted : .rejected, serviceName: v.manifest?.target.service,
                packageVersion: v.manifest?.package_version, imageReference: v.manifest?.image.reference, imageID: nil,
                imageLayers: [], imageSize: nil, imageTarSHA256: nil, issues: v.issues.map { Issue($0.code, $0.message) },
                startedAt: v.validated_at, finishedAt: v.validated_at))
            report.imported.validationRecords += 1
        }
        for i in imports {
            if try store.imageImport(i.import_id) != nil { report.alreadyPresent.imageImportRecords += 1; continue }
            var finished: String?
            for e in events where e.attempt_id == i.validation_attempt_id {
                if e.kind == "image_import_succeeded" || e.kind == "image_import_failed" { finished = e.occurred_at }
            }
            try store.recordImport(ImageImportRecord(
                importID: i.import_id, validationAttemptID: i.validation_attempt_id, serviceName: i.service_name,
                imageReference: i.image_reference, imageID: i.imported_image?.image_id,
                status: i.status == "imported" ? "succeeded" : "failed", issues: i.issues.map { Issue($0.code, $0.message) },
                startedAt: i.imported_at, finishedAt: finished ?? i.imported_at))
            report.imported.imageImportRecords += 1
        }
        for c in candidates {
            if try store.candidateRelease(c.candidate_release_id) != nil { report.alreadyPresent.candidateReleases += 1; continue }
            try store.recordCandidateRelease(CandidateRelease(
                candidateReleaseID: c.candidate_release_id, serviceName: c.service_name, packageVersion: c.package_version,
                imageReference: c.image_reference, imageID: c.imported_image.image_id, repoTags: c.imported_image.repo_tags,
                repoDigests: c.imported_image.repo_digests, architecture: c.imported_image.architecture ?? "",
                os: c.imported_image.os ?? "", validationAttemptID: c.validation_attempt_id,
                packageCreatedAt: createdAt(ofCandidate: c.candidate_release_id), createdAt: c.created_at))
            report.imported.candidateReleases += 1
        }
        for a in attempts {
            if try store.updateAttempt(a.update_id) != nil { report.alreadyPresent.updateAttempts += 1; continue }
            var status = UpdateStatus(rawValue: a.status)!  // checked when read
            var issues = a.issues.map { Issue($0.code, $0.message) }
            var finished = a.finished_at
            if !status.isTerminal {
                // The Rust tool died during this attempt and never finished it. Left in flight,
                // Caisson's recovery would take it for its own; it is closed instead, and said so.
                issues.append(Issue("import.unfinished_attempt", "the Rust tool left this update `\(a.status)` and never finished it; what it changed was not recovered: check service \(a.service_name) (`caisson service show \(a.service_name)`)"))
                report.notes.append(Issue("import.unfinished_attempt", "update \(a.update_id) of \(a.service_name) was left `\(a.status)` by the Rust tool; imported as failed"))
                status = .failed
                finished = finished ?? a.started_at
            }
            let health = a.health_check.map {
                HealthCheckRecord(kind: HealthKind(rawValue: $0.kind)!, outcome: HealthOutcome(rawValue: $0.outcome)!,
                                  message: $0.message, checkedAt: $0.checked_at)
            }
            try store.recordUpdateAttempt(UpdateAttempt(
                updateID: a.update_id, candidateReleaseID: a.candidate_release_id, validationAttemptID: a.validation_attempt_id,
                serviceName: a.service_name, runtimeMode: RuntimeMode(rawValue: a.runtime_mode)!,
                targetImageReference: a.target_image_reference,
                targetImageID: candidateByID[a.candidate_release_id]?.imported_image.image_id,
                packageVersion: version(ofCandidate: a.candidate_release_id),
                previousCandidateReleaseID: a.previous_candidate_release_id, previousImageReference: a.previous_image_reference,
                previousImageID: a.previous_candidate_release_id.flatMap { candidateByID[$0]?.imported_image.image_id },
                rollbackContainerName: a.rollback_container_name, status: status, startedAt: a.started_at,
                finishedAt: finished, healthCheck: health, kind: "update", issues: issues))
            report.imported.updateAttempts += 1
        }
        for st in states {
            if try store.serviceState(st.service_name) != nil { report.alreadyPresent.serviceStates += 1; continue }
            // The version floor is the version of the release the Rust tool left active (it had no
            // downgrade refusal: what it installed last, on purpose, is what runs).
            let activeVersion = version(ofCandidate: st.active_candidate_release_id)
            if activeVersion == nil {
                report.notes.append(Issue("import.version_unknown", "no record says which package version service \(st.service_name) runs (\(st.active_image_reference)): it has no downgrade floor until its next update"))
            }
            try store.setServiceState(ServiceState(
                serviceName: st.service_name, activeCandidateReleaseID: st.active_candidate_release_id,
                activeImageReference: st.active_image_reference,
                activeImageID: st.active_candidate_release_id.flatMap { candidateByID[$0]?.imported_image.image_id },
                previousKnownGoodCandidateReleaseID: st.previous_known_good_candidate_release_id,
                previousKnownGoodImageReference: st.previous_known_good_image_reference,
                previousKnownGoodImageID: st.previous_known_good_candidate_release_id.flatMap { candidateByID[$0]?.imported_image.image_id },
                highestPackageVersion: activeVersion, newestCreatedAt: createdAt(ofCandidate: st.active_candidate_release_id),
                updatedAt: st.updated_at))
            report.imported.serviceStates += 1
        }
        // A service whose state file is missing or unreadable keeps its floor: the Rust tool
        // wrote a service's state only when an update succeeded (a rollback restored it as it
        // was), so its newest succeeded attempt says what it left active and what it replaced.
        let stated = Set(states.map(\.service_name))
        var services: [String] = []
        for a in attempts where !stated.contains(a.service_name) && !services.contains(a.service_name) { services.append(a.service_name) }
        for name in services {
            let mine = attempts.filter { $0.service_name == name }
            guard let last = mine.last(where: { $0.status == "succeeded" }) else { continue }
            if try store.serviceState(name) != nil { continue }
            let updated = mine.last(where: { $0.status == "succeeded" || $0.status == "rolled_back" }).map { $0.finished_at ?? $0.started_at } ?? last.started_at
            let activeVersion = version(ofCandidate: last.candidate_release_id)
            try store.setServiceState(ServiceState(
                serviceName: name, activeCandidateReleaseID: last.candidate_release_id,
                activeImageReference: last.target_image_reference,
                activeImageID: candidateByID[last.candidate_release_id]?.imported_image.image_id,
                previousKnownGoodCandidateReleaseID: last.previous_candidate_release_id,
                previousKnownGoodImageReference: last.previous_image_reference,
                previousKnownGoodImageID: last.previous_candidate_release_id.flatMap { candidateByID[$0]?.imported_image.image_id },
                highestPackageVersion: activeVersion, newestCreatedAt: createdAt(ofCandidate: last.candidate_release_id),
                updatedAt: updated))
            report.imported.serviceStates += 1
            report.notes.append(Issue("import.state_reconstructed", "service \(name) has no readable state file: its state was taken from its newest succeeded update \(last.update_id) (\(last.target_image_reference)\(activeVersion.map { ", package version \($0)" } ?? ""))"))
        }

        // Audit events: one append, those not imported before, then the marker.
        var done: Set<String> = []
        for e in try store.auditEvents().records where e.event.message.hasPrefix(eventPrefix) {
            let rest = e.event.message.dropFirst(eventPrefix.count)
            if let end = rest.firstIndex(of: "]") { done.insert(String(rest[..<end])) }
        }
        let updateKinds: Set<String> = ["update_started", "health_check_started", "health_check_passed", "health_check_failed",
                                        "rollback_started", "rollback_succeeded", "rollback_failed", "update_committed"]
        var batch: [AuditEvent] = []
        for e in events {
            if done.contains(e.event_id) { report.alreadyPresent.auditEvents += 1; continue }
            done.insert(e.event_id)
            let kind = AuditKind(rawValue: e.kind)!  // checked when read
            var event = AuditEvent(kind: kind, at: e.occurred_at, message: "\(eventPrefix)\(e.event_id)] \(e.message)")
            if let a = attemptByID[e.attempt_id] {
                event.updateID = a.update_id
                event.validationAttemptID = a.validation_attempt_id
                event.serviceName = a.service_name
            } else if let v = validationByID[e.attempt_id] {
                event.validationAttemptID = v.attempt_id
                event.serviceName = v.manifest?.target.service ?? imports.first { $0.validation_attempt_id == v.attempt_id }?.service_name
            } else if updateKinds.contains(e.kind) {
                event.updateID = e.attempt_id
            } else {
                event.validationAttemptID = e.attempt_id
            }
            batch.append(event)
        }
        report.imported.auditEvents = batch.count
        batch.append(AuditEvent(kind: .stateImported, at: now, message: report.summary
                                    + report.skipped.map { " " + $0.description }.joined()))
        try store.appendAudit(batch)
        return report
    }

    /// Whether a Rust state was already imported into `store` (its `state_imported` event).
    public static func wasImported(into store: CaissonStore) throws -> Bool {
        try store.hasAuditEvent(kind: .stateImported)
    }

    static func instant(_ s: String) -> Instant { Timestamps.parse(s) ?? Instant(seconds: .min) }

    // MARK: Reading, strictly

    struct Reader {
        let directory: String
        let decoder = JSONDecoder()

        init(directory: String) { self.directory = directory }

        /// The decodable, valid records of one folder, in file-name order; the rest reported.
        mutating func records<T: Decodable>(_ folder: String, _ report: inout Report) -> [T] {
            let dir = directory + "/" + folder
            var st = stat()
            guard lstat(dir, &st) == 0 else { return [] }
            guard (st.st_mode & S_IFMT) == S_IFDIR else {
                report.skipped.append(Issue("import.unreadable_record", "\(folder) is not a directory; nothing in it was imported"))
                return []
            }
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
            var out: [T] = []
            for name in names where name.hasSuffix(".json") {
                let rel = folder + "/" + name
                do {
                    let bytes = try read(dir + "/" + name, limit: RustStateImport.maxRecordBytes)
                    let record: T
                    do { record = try decoder.decode(T.self, from: bytes) } catch { throw Unusable(Self.describe(error)) }
                    try check(record)
                    out.append(record)
                } catch let u as Unusable {
                    report.skipped.append(Issue(u.code, "\(rel): \(u.why); skipped"))
                } catch {
                    report.skipped.append(Issue("import.unreadable_record", "\(rel): \(error); skipped"))
                }
            }
            return out
        }

        /// The audit log's events, in the Rust tool's order (by time, then event id).
        mutating func events(_ report: inout Report) -> [REvent] {
            let path = directory + "/" + RustStateImport.auditLog
            var st = stat()
            guard lstat(path, &st) == 0 else { return [] }
            let bytes: Data
            do { bytes = try read(path, limit: RustStateImport.maxAuditLogBytes) } catch let u as Unusable {
                report.skipped.append(Issue(u.code, "\(RustStateImport.auditLog): \(u.why); no audit event was imported"))
                return []
            } catch {
                report.skipped.append(Issue("import.unreadable_record", "\(RustStateImport.auditLog): \(error)"))
                return []
            }
            var out: [REvent] = []
            var lineNumber = 0
            for line in bytes.split(separator: 0x0A, omittingEmptySubsequences: false) {
                lineNumber += 1
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                do {
                    let e: REvent
                    do { e = try decoder.decode(REvent.self, from: Data(line)) } catch { throw Unusable(Self.describe(error)) }
                    try check(e)
                    out.append(e)
                } catch let u as Unusable {
                    report.skipped.append(Issue(u.code, "\(RustStateImport.auditLog) line \(lineNumber): \(u.why); skipped"))
                } catch {
                    report.skipped.append(Issue("import.unreadable_record", "\(RustStateImport.auditLog) line \(lineNumber): \(error); skipped"))
                }
            }
            return out.enumerated().sorted {
                (instant($0.element.occurred_at), $0.element.event_id, $0.offset) < (instant($1.element.occurred_at), $1.element.event_id, $1.offset)
            }.map(\.element)
        }

        func read(_ path: String, limit: Int) throws -> Data {
            let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard fd >= 0 else {
                let e = errno
                throw Unusable(e == ELOOP ? "it is a symbolic link (not followed)" : "cannot be read: \(FileSystem.errnoText(e))")
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { throw Unusable("it is not a regular file") }
            guard st.st_size <= limit else { throw Unusable("it is \(st.st_size) bytes, more than any record of the Rust tool") }
            var data = Data(count: Int(st.st_size))
            var done = 0
            while done < data.count {
                let n = data.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(done)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw Unusable(n == 0 ? "it shrank while it was read" : "cannot be read: \(FileSystem.errnoText(errno))") }
                done += n
            }
            return data
        }

        static func describe(_ error: Error) -> String {
            switch error {
            case DecodingError.dataCorrupted(let c):
                return "not valid JSON (\(c.underlyingError.map { "\($0)" } ?? c.debugDescription))"
            case DecodingError.keyNotFound(let key, _):
                return "field \(key.stringValue) is missing"
            case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
                return "field \(c.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type"
            default:
                return "\(error)"
            }
        }

        /// Values the records must hold for Caisson to understand them.
        func check<T>(_ record: T) throws {
            func time(_ field: String, _ value: String?) throws {
                if let value, Timestamps.parse(value) == nil { throw Unusable("\(field) \"\(value)\" is not an RFC 3339 timestamp") }
            }
            func status(_ value: String, _ allowed: [String]) throws {
                if !allowed.contains(value) {
                    throw Unusable("import.unknown_status", "unknown status \"\(value)\" (expected one of \(allowed.joined(separator: ", ")))")
                }
            }
            switch record {
            case let v as RValidation:
                try status(v.status, ["accepted", "rejected"])
                try time("validated_at", v.validated_at)
                try time("manifest.created_at", v.manifest?.created_at)
            case let i as RImport:
                try status(i.status, ["imported", "failed"])
                try time("imported_at", i.imported_at)
            case let c as RCandidate:
                try time("created_at", c.created_at)
            case let a as RAttempt:
                try status(a.status, UpdateStatus.allCases.map(\.rawValue))
                guard RuntimeMode(rawValue: a.runtime_mode) != nil else {
                    throw Unusable("import.unknown_status", "unknown runtime_mode \"\(a.runtime_mode)\"")
                }
                if let h = a.health_check {
                    guard HealthKind(rawValue: h.kind) != nil else { throw Unusable("import.unknown_status", "unknown health_check.kind \"\(h.kind)\"") }
                    try status(h.outcome, ["passed", "failed", "timed_out"])
                    try time("health_check.checked_at", h.checked_at)
                }
                try time("started_at", a.started_at)
                try time("finished_at", a.finished_at)
            case let s as RState:
                try time("updated_at", s.updated_at)
            case let e as REvent:
                guard AuditKind(rawValue: e.kind) != nil else {
                    throw Unusable("import.unknown_kind", "unknown event kind \"\(e.kind)\"")
                }
                try time("occurred_at", e.occurred_at)
            default:
                break
            }
        }
    }
}

extension CaissonStore {
    /// Whether the audit log holds an event of this kind.
    public func hasAuditEvent(kind: AuditKind) throws -> Bool {
        try StoreErrors.wrap(databasePath, "reading the audit log") {
            !(try db.query("SELECT 1 FROM audit_events WHERE kind = ? LIMIT 1", [.text(kind.rawValue)]) { $0.int64(0) }).isEmpty
        }
    }
}
