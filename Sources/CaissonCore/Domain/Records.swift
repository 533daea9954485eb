/// Persistent records (FORMATS.md §6). JSON field names are snake_case and stable: they are what
/// `--json` prints and what the Rust tool's history held.

public enum UpdateStatus: String, Sendable, Codable, Equatable, CaseIterable {
    case applying
    case healthChecking = "health_checking"
    case succeeded
    case failed
    case rollbackStarted = "rollback_started"
    case rolledBack = "rolled_back"
    case rollbackFailed = "rollback_failed"

    public var isTerminal: Bool {
        switch self {
        case .succeeded, .failed, .rolledBack, .rollbackFailed: return true
        case .applying, .healthChecking, .rollbackStarted: return false
        }
    }

    /// The exit code of a command whose update or rollback ended in this status (FORMATS: 0
    /// success, 4 the update failed or was rolled back, 5 the rollback failed and the service
    /// needs a human). The CLI and the simulator's oracles both read it from here.
    public var exitCode: Int32 {
        switch self {
        case .succeeded: return 0
        case .rollbackFailed: return 5
        case .applying, .healthChecking, .failed, .rollbackStarted, .rolledBack: return 4
        }
    }
}

public enum HealthOutcome: String, Sendable, Codable, Equatable {
    case passed
    case failed
    case timedOut = "timed_out"
}

public struct HealthCheckRecord: Sendable, Codable, Equatable {
    public var kind: HealthKind
    public var outcome: HealthOutcome
    public var message: String
    public var checkedAt: String

    public init(kind: HealthKind, outcome: HealthOutcome, message: String, checkedAt: String) {
        self.kind = kind
        self.outcome = outcome
        self.message = message
        self.checkedAt = checkedAt
    }

    enum CodingKeys: String, CodingKey {
        case kind, outcome, message
        case checkedAt = "checked_at"
    }
}

public struct UpdateAttempt: Sendable, Codable, Equatable {
    public var updateID: String
    public var candidateReleaseID: String
    public var validationAttemptID: String?
    public var serviceName: String
    public var runtimeMode: RuntimeMode
    public var targetImageReference: String
    public var targetImageID: String?
    public var packageVersion: String?
    public var previousCandidateReleaseID: String?
    public var previousImageReference: String?
    public var previousImageID: String?
    public var rollbackContainerName: String?
    public var status: UpdateStatus
    public var startedAt: String
    public var finishedAt: String?
    /// The health check of the new release.
    public var healthCheck: HealthCheckRecord?
    /// After a rollback: the health check of the restored release.
    public var rollbackHealthCheck: HealthCheckRecord?
    /// `update` for package loads, `rollback` for `caisson rollback SERVICE`.
    public var kind: String
    public var issues: [Issue]

    public init(updateID: String, candidateReleaseID: String, validationAttemptID: String?,
                serviceName: String, runtimeMode: RuntimeMode, targetImageReference: String,
                targetImageID: String? = nil, packageVersion: String? = nil,
                previousCandidateReleaseID: String? = nil, previousImageReference: String? = nil,
                previousImageID: String? = nil, rollbackContainerName: String? = nil,
                status: UpdateStatus = .applying, startedAt: String, finishedAt: String? = nil,
                healthCheck: HealthCheckRecord? = nil, rollbackHealthCheck: HealthCheckRecord? = nil,
                kind: String = "update", issues: [Issue] = []) {
        self.updateID = updateID
        self.candidateReleaseID = candidateReleaseID
        self.validationAttemptID = validationAttemptID
        self.serviceName = serviceName
        self.runtimeMode = runtimeMode
        self.targetImageReference = targetImageReference
        self.targetImageID = targetImageID
        self.packageVersion = packageVersion
        self.previousCandidateReleaseID = previousCandidateReleaseID
        self.previousImageReference = previousImageReference
        self.previousImageID = previousImageID
        self.rollbackContainerName = rollbackContainerName
        self.status = status
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.healthCheck = healthCheck
        self.rollbackHealthCheck = rollbackHealthCheck
        self.kind = kind
        self.issues = issues
    }

    enum CodingKeys: String, CodingKey {
        case updateID = "update_id"
        case candidateReleaseID = "candidate_release_id"
        case validationAttemptID = "validation_attempt_id"
        case serviceName = "service_name"
        case runtimeMode = "runtime_mode"
        case targetImageReference = "target_image_reference"
        case targetImageID = "target_image_id"
        case packageVersion = "package_version"
        case previousCandidateReleaseID = "previous_candidate_release_id"
        case previousImageReference = "previous_image_reference"
        case previousImageID = "previous_image_id"
        case rollbackContainerName = "rollback_container_name"
        case status
        case startedAt = "started_at"
        case finishedAt = "finished_at"
        case healthCheck = "health_check"
        case rollbackHealthCheck = "rollback_health_check"
        case kind
        case issues
    }
}

public struct ServiceState: Sendable, Codable, Equatable {
    public var serviceName: String
    public var activeCandidateReleaseID: String?
    public var activeImageReference: String?
    public var activeImageID: String?
    public var previousKnownGoodCandidateReleaseID: String?
    public var previousKnownGoodImageReference: String?
    public var previousKnownGoodImageID: String?
    /// Anti-downgrade memory: the highest package_version installed and the newest accepted created_at.
    public var highestPackageVersion: String?
    public var newestCreatedAt: String?
    public var updatedAt: String

    public init(serviceName: String, activeCandidateReleaseID: String? = nil,
                activeImageReference: String? = nil, activeImageID: String? = nil,
                previousKnownGoodCandidateReleaseID: String? = nil,
                previousKnownGoodImageReference: String? = nil, previousKnownGoodImageID: String? = nil,
                highestPackageVersion: String? = nil, newestCreatedAt: String? = nil, updatedAt: String) {
        self.serviceName = serviceName
        self.activeCandidateReleaseID = activeCandidateReleaseID
        self.activeImageReference = activeImageReference
        self.activeImageID = activeImageID
        self.previousKnownGoodCandidateReleaseID = previousKnownGoodCandidateReleaseID
        self.previousKnownGoodImageReference = previousKnownGoodImageReference
        self.previousKnownGoodImageID = previousKnownGoodImageID
        self.highestPackageVersion = highestPackageVersion
        self.newestCreatedAt = newestCreatedAt
        self.updatedAt = updatedAt
    }

    enum CodingKeys: String, CodingKey {
        case serviceName = "service_name"
        case activeCandidateReleaseID = "active_candidate_release_id"
        case activeImageReference = "active_image_reference"
        case activeImageID = "active_image_id"
        case previousKnownGoodCandidateReleaseID = "previous_known_good_candidate_release_id"
        case previousKnownGoodImageReference = "previous_known_good_image_reference"
        case previousKnownGoodImageID = "previous_known_good_image_id"
        case highestPackageVersion = "highest_package_version"
        case newestCreatedAt = "newest_created_at"
        case updatedAt = "updated_at"
    }
}

public struct CandidateRelease: Sendable, Codable, Equatable {
    public var candidateReleaseID: String
    public var serviceName: String
    public var packageVersion: String
    public var imageReference: String
    public var imageID: String
    public var repoTags: [String]
    public var repoDigests: [String]
    public var architecture: String
    public var os: String
    public var validationAttemptID: String?
    public var packageCreatedAt: String?
    public var createdAt: String

    public init(candidateReleaseID: String, serviceName: String, packageVersion: String,
                imageReference: String, imageID: String, repoTags: [String], repoDigests: [String],
                architecture: String, os: String, validationAttemptID: String?,
                packageCreatedAt: String?, createdAt: String) {
        self.candidateReleaseID = candidateReleaseID
        self.serviceName = serviceName
        self.packageVersion = packageVersion
        self.imageReference = imageReference
        self.imageID = imageID
        self.repoTags = repoTags
        self.repoDigests = repoDigests
        self.architecture = architecture
        self.os = os
        self.validationAttemptID = validationAttemptID
        self.packageCreatedAt = packageCreatedAt
        self.createdAt = createdAt
    }

    enum CodingKeys: String, CodingKey {
        case candidateReleaseID = "candidate_release_id"
        case serviceName = "service_name"
        case packageVersion = "package_version"
        case imageReference = "image_reference"
        case imageID = "image_id"
        case repoTags = "repo_tags"
        case repoDigests = "repo_digests"
        case architecture, os
        case validationAttemptID = "validation_attempt_id"
        case packageCreatedAt = "package_created_at"
        case createdAt = "created_at"
    }
}

public enum ValidationStatus: String, Sendable, Codable, Equatable {
    case accepted, rejected
}

public struct ValidationRecord: Sendable, Codable, Equatable {
    public var validationAttemptID: String
    public var packagePath: String
    public var packageSize: Int64?
    public var status: ValidationStatus
    public var serviceName: String?
    public var packageVersion: String?
    public var imageReference: String?
    public var imageID: String?
    public var imageLayers: [String]
    public var imageSize: Int64?
    public var imageTarSHA256: String?
    public var issues: [Issue]
    public var startedAt: String
    public var finishedAt: String

    public init(validationAttemptID: String, packagePath: String, packageSize: Int64?,
                status: ValidationStatus, serviceName: String?, packageVersion: String?,
                imageReference: String?, imageID: String?, imageLayers: [String], imageSize: Int64?,
                imageTarSHA256: String?, issues: [Issue], startedAt: String, finishedAt: String) {
        self.validationAttemptID = validationAttemptID
        self.packagePath = packagePath
        self.packageSize = packageSize
        self.status = status
        self.serviceName = serviceName
        self.packageVersion = packageVersion
        self.imageReference = imageReference
        self.imageID = imageID
        self.imageLayers = imageLayers
        self.imageSize = imageSize
        self.imageTarSHA256 = imageTarSHA256
        self.issues = issues
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }

    enum CodingKeys: String, CodingKey {
        case validationAttemptID = "validation_attempt_id"
        case packagePath = "package_path"
        case packageSize = "package_size"
        case status
        case serviceName = "service_name"
        case packageVersion = "package_version"
        case imageReference = "image_reference"
        case imageID = "image_id"
        case imageLayers = "image_layers"
        case imageSize = "image_size"
        case imageTarSHA256 = "image_tar_sha256"
        case issues
        case startedAt = "started_at"
        case finishedAt = "finished_at"
    }
}

public struct ImageImportRecord: Sendable, Codable, Equatable {
    public var importID: String
    public var validationAttemptID: String?
    public var serviceName: String
    public var imageReference: String
    public var imageID: String?
    public var status: String  // "succeeded" | "failed"
    public var issues: [Issue]
    public var startedAt: String
    public var finishedAt: String?

    public init(importID: String, validationAttemptID: String?, serviceName: String,
                imageReference: String, imageID: String?, status: String, issues: [Issue],
                startedAt: String, finishedAt: String?) {
        self.importID = importID
        self.validationAttemptID = validationAttemptID
        self.serviceName = serviceName
        self.imageReference = imageReference
        self.imageID = imageID
        self.status = status
        self.issues = issues
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }

    enum CodingKeys: String, CodingKey {
        case importID = "import_id"
        case validationAttemptID = "validation_attempt_id"
        case serviceName = "service_name"
        case imageReference = "image_reference"
        case imageID = "image_id"
        case status, issues
        case startedAt = "started_at"
        case finishedAt = "finished_at"
    }
}

public enum AuditKind: String, Sendable, Codable, Equatable, CaseIterable {
    case validationStarted = "validation_started"
    case validationAccepted = "validation_accepted"
    case validationRejected = "validation_rejected"
    case imageImportStarted = "image_import_started"
    case imageImportSucceeded = "image_import_succeeded"
    case imageImportFailed = "image_import_failed"
    case updateStarted = "update_started"
    case healthCheckStarted = "health_check_started"
    case healthCheckPassed = "health_check_passed"
    case healthCheckFailed = "health_check_failed"
    case rollbackStarted = "rollback_started"
    case rollbackSucceeded = "rollback_succeeded"
    case rollbackFailed = "rollback_failed"
    case updateCommitted = "update_committed"
    // Ours.
    case updateFailed = "update_failed"
    case recoveryStarted = "recovery_started"
    case recoveryFinished = "recovery_finished"
    case downgradeAllowed = "downgrade_allowed"
    case packageCleanup = "package_cleanup"
    /// An action taken in the console, naming who and from where (the records it leads to are the
    /// same as the CLI's).
    case consoleAction = "console_action"
    /// A Rust caisson state directory was imported (`caisson migrate`, or its first use).
    case stateImported = "state_imported"
    // Self-update (issue 14).
    case selfUpdateStarted = "self_update_started"
    case selfUpdateStaged = "self_update_staged"
    case selfUpdateTested = "self_update_tested"
    case selfUpdateTestFailed = "self_update_test_failed"
    case selfUpdateSnapshotTaken = "self_update_snapshot_taken"
    case selfUpdateSwapped = "self_update_swapped"
    case selfUpdateConfirmed = "self_update_confirmed"
    case selfUpdateSucceeded = "self_update_succeeded"
    case selfUpdateFailed = "self_update_failed"
    case selfUpdateRollbackStarted = "self_update_rollback_started"
    case selfUpdateRolledBack = "self_update_rolled_back"
    case selfUpdateRollbackFailed = "self_update_rollback_failed"
    case inventoryExported = "inventory_exported"
    case receiptWritten = "receipt_written"
    case deviceKeyCreated = "device_key_created"
}

/// An audit event as written by the engine or the app; the store assigns its sequence number and
/// chains it to the previous event's hash.
public struct AuditEvent: Sendable, Codable, Equatable {
    public var kind: AuditKind
    public var at: String
    public var serviceName: String?
    public var updateID: String?
    public var validationAttemptID: String?
    public var message: String

    public init(kind: AuditKind, at: String, serviceName: String? = nil, updateID: String? = nil,
                validationAttemptID: String? = nil, message: String) {
        self.kind = kind
        self.at = at
        self.serviceName = serviceName
        self.updateID = updateID
        self.validationAttemptID = validationAttemptID
        self.message = message
    }

    enum CodingKeys: String, CodingKey {
        case kind, at, message
        case serviceName = "service_name"
        case updateID = "update_id"
        case validationAttemptID = "validation_attempt_id"
    }
}

/// Ids, injected (the CLI uses random UUIDs; the simulator a seeded generator).
public protocol IDGenerator: AnyObject {
    func next() -> String
}
