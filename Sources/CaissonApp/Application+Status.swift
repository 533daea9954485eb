import CaissonCore
import CaissonStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Read-only views for front ends that show the device at a glance (the console). None of them
/// recovers, locks or changes anything: they may run while another process updates a service.
extension Application {
    public struct DeviceStatus: Sendable, Codable, Equatable {
        public var name: String
        public var version: String
        /// `docker` or `sim`.
        public var host: String
        public var runtimeReachable: Bool
        /// Why the container runtime cannot be reached (nil when it can).
        public var runtimeProblem: String?
        public var freeDiskBytes: Int64?
        public var stateDir: String

        enum CodingKeys: String, CodingKey {
            case name, version, host
            case runtimeReachable = "runtime_reachable"
            case runtimeProblem = "runtime_problem"
            case freeDiskBytes = "free_disk_bytes"
            case stateDir = "state_dir"
        }
    }

    /// The device: its name, this Caisson, whether the runtime answers, free disk for staging.
    public func deviceStatus() -> DeviceStatus {
        var reachable = true
        var problem: String?
        do {
            _ = try host().ping()
        } catch {
            reachable = false
            problem = error.message
        }
        return DeviceStatus(name: Self.hostName(), version: Self.version, host: options.host.rawValue,
                            runtimeReachable: reachable, runtimeProblem: problem,
                            freeDiskBytes: Self.freeBytes(stateDir), stateDir: stateDir)
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "this device" }
        return String(cString: buffer)
    }

    public struct ServiceStatus: Sendable, Codable, Equatable {
        public var name: String
        public var runtimeMode: String
        /// The package version that runs now, as Caisson recorded it (nil: never updated by Caisson).
        public var version: String?
        public var imageReference: String?
        public var imageID: String?
        /// `running`, `stopped`, `missing` or `unknown` (the runtime could not be asked).
        public var running: String
        /// `healthy`, `unhealthy`, `starting`, `none` (no health check) or `unknown`.
        public var health: String
        /// Since when the container runs (RFC 3339, when known).
        public var since: String?
        public var lastAttempt: UpdateAttempt?
        /// The release a rollback would return to.
        public var previousVersion: String?
        public var previousImageReference: String?
        public var canRollBack: Bool

        enum CodingKeys: String, CodingKey {
            case name, version, running, health, since
            case runtimeMode = "runtime_mode"
            case imageReference = "image_reference"
            case imageID = "image_id"
            case lastAttempt = "last_attempt"
            case previousVersion = "previous_version"
            case previousImageReference = "previous_image_reference"
            case canRollBack = "can_roll_back"
        }
    }

    /// Every catalog service: what runs now, whether it is healthy, its last update.
    public func serviceStatuses() throws -> [ServiceStatus] {
        let catalog = try catalog()
        let s = try store()
        let host = try? host()
        return try catalog.services.map { svc in
            let state = try s.serviceState(svc.name)
            var info: ContainerInfo?
            var asked = host != nil
            if let host {
                do {
                    switch svc.runtimeMode {
                    case .docker: info = try host.inspectContainer(svc.docker!.containerName)
                    case .compose: info = try host.composeContainers(svc.compose!).first
                    }
                } catch {
                    asked = false
                }
            }
            let running: String
            let health: String
            if let info {
                running = info.isRunning ? "running" : "stopped"
                health = info.isRunning ? info.health.rawValue : "unhealthy"
            } else {
                running = asked ? "missing" : "unknown"
                health = "unknown"
            }
            let active = try state?.activeCandidateReleaseID.flatMap { try s.candidateRelease($0) }
            let previous = try state?.previousKnownGoodCandidateReleaseID.flatMap { try s.candidateRelease($0) }
            let last = try s.updateAttempts(service: svc.name, limit: 1).records.first
            return ServiceStatus(name: svc.name, runtimeMode: svc.runtimeMode.rawValue,
                                 version: active?.packageVersion ?? state?.highestPackageVersion,
                                 imageReference: state?.activeImageReference ?? info?.imageReference,
                                 imageID: info?.imageID ?? state?.activeImageID, running: running, health: health,
                                 since: info?.startedAt, lastAttempt: last,
                                 previousVersion: previous?.packageVersion,
                                 previousImageReference: state?.previousKnownGoodImageReference,
                                 canRollBack: state?.previousKnownGoodImageID != nil)
        }
    }

    public struct Activity: Sendable, Codable, Equatable {
        /// Who holds the operation lock now (any process), if anyone.
        public var holder: LockHolder?
        /// Update attempts not finished yet, oldest first.
        public var inFlight: [UpdateAttempt]

        enum CodingKeys: String, CodingKey {
            case holder
            case inFlight = "in_flight"
        }
    }

    /// What is going on now, from the lock file and the journal; changes nothing. The holder is
    /// the lock file's description only while its process lives (a SIGKILLed holder's description
    /// stays in the file, its lock does not).
    public func activity() throws -> Activity {
        let holder = stateLocks.holder(of: OperationLocks.stateLockName)
        let inFlight = try store().inFlightAttempts().map(\.attempt)
        return Activity(holder: holder, inFlight: inFlight)
    }

    /// Audits an action taken in another front end, naming who took it and from where. The
    /// records the action itself leads to are the CLI's.
    public func auditFrontEndAction(_ message: String, service: String? = nil, updateID: String? = nil) throws {
        try store().appendAudit([AuditEvent(kind: .consoleAction, at: systemClock.timestamp(), serviceName: service,
                                            updateID: updateID, message: message)])
    }

    /// One attempt with its audit events and journal, for a details view.
    public struct AttemptDetail: Sendable {
        public var attempt: UpdateAttempt
        public var events: [StoredAuditEvent]
        public var journal: [StoredJournalEntry]
        public var validation: ValidationRecord?
        /// Failure evidence (issue 12): what the failed containers left behind (state, health
        /// log, log tail with secrets redacted), empty when the update did not fail.
        public var evidence: [FailureEvidence] = []
        /// Evidence records that could not be read back, as sentences.
        public var notes: [String] = []
    }

    public func attemptDetail(_ id: String) throws -> AttemptDetail? {
        let s = try store()
        guard let a = try s.updateAttempt(id) else { return nil }
        var events = try s.auditEvents(updateID: a.updateID).records
        if let v = a.validationAttemptID {
            let validationEvents = try s.auditEvents(validationID: v).records
            events = (validationEvents + events).sorted { $0.seq < $1.seq }
            var seen = Set<Int64>()
            events = events.filter { seen.insert($0.seq).inserted }
        }
        let evidence = try s.failureEvidence(updateID: a.updateID)
        return AttemptDetail(attempt: a, events: events, journal: try s.journalEntries(updateID: a.updateID).records,
                             validation: try a.validationAttemptID.flatMap { try s.validation($0) },
                             evidence: evidence.records, notes: evidence.unreadable.map(\.message))
    }
}
