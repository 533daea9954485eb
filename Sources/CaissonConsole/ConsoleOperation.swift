import CaissonApp
import CaissonCore
import Foundation
import Synchronization

/// The one mutating operation the console runs at a time (an update from a package, or a
/// rollback), on its own thread, through the same `Application` calls as the CLI. The page reads
/// its snapshot; only the session that started it may answer its question.
final class ConsoleOperation: @unchecked Sendable {
    enum Kind: Sendable, Equatable {
        case update(packageName: String, path: String, upload: Bool)
        case rollback(service: String)
    }

    enum Phase: String, Sendable, Codable {
        /// Copying, checking, planning.
        case preparing
        /// The plan is shown; waiting for the person to go ahead or cancel.
        case confirming
        /// Going ahead: loading, swapping, health-checking.
        case running
        case finished
    }

    enum Decision: Sendable { case go, cancel }

    struct Snapshot: Sendable {
        var id: String
        var kind: Kind
        var phase: Phase
        var actor: String
        var sessionLabel: String
        var startedAt: String
        var steps: [String]
        var byteLabel: String?
        var bytesDone: Int64
        var bytesTotal: Int64
        var mediumRemovable: Bool
        var validation: Application.ValidationOutcome?
        var plan: Application.LoadPlan?
        var result: Result?
        var attemptID: String?
        var revision: Int
    }

    /// How it ended, in the words the page shows.
    struct Result: Sendable {
        /// `updated`, `rolled_back`, `rejected`, `declined`, `failed`, `needs_help`, `refused`.
        var outcome: String
        var headline: String
        var detail: String
        var issues: [Issue]
        var exitCode: Int32
        var attempt: UpdateAttempt?
        /// What the failed containers left behind (issue 12).
        var evidence: [FailureEvidence] = []
    }

    let id: String
    let options: AppOptions
    private let state: Mutex<Snapshot>
    private let decisionLock = NSCondition()
    private var decision: Decision?
    private let stopping: @Sendable () -> Bool
    /// Called when it ends (the console removes a used upload, audits).
    var onFinish: (@Sendable (Snapshot) -> Void)?

    static let confirmTimeout: TimeInterval = 15 * 60

    init(kind: Kind, options: AppOptions, actor: String, sessionLabel: String, startedAt: String, stopping: @escaping @Sendable () -> Bool) {
        self.id = ConsoleAuth.randomHex(8)
        self.options = options
        self.stopping = stopping
        self.state = Mutex(Snapshot(id: id, kind: kind, phase: .preparing, actor: actor, sessionLabel: sessionLabel, startedAt: startedAt,
                                    steps: [], byteLabel: nil, bytesDone: 0, bytesTotal: 0, mediumRemovable: false, validation: nil,
                                    plan: nil, result: nil, attemptID: nil, revision: 0))
    }

    var snapshot: Snapshot { state.withLock { $0 } }
    var isFinished: Bool { state.withLock { $0.phase == .finished } }

    private func update(_ change: (inout Snapshot) -> Void) {
        state.withLock { s in
            change(&s)
            s.revision += 1
        }
    }

    /// The person's answer to the plan. False when no question is pending.
    func decide(_ d: Decision) -> Bool {
        guard state.withLock({ $0.phase == .confirming }) else { return false }
        decisionLock.lock()
        defer { decisionLock.unlock() }
        guard decision == nil else { return false }
        decision = d
        decisionLock.broadcast()
        return true
    }

    func start() {
        let thread = Thread { [self] in run() }
        thread.name = "console-operation"
        thread.start()
    }

    private func makeApp() -> Application {
        let app = Application(options: options)
        app.onProgress = { [weak self] line in
            self?.update { s in
                s.steps.append(line.trimmingCharacters(in: .whitespaces))
                if s.steps.count > 200 { s.steps.removeFirst(s.steps.count - 200) }
            }
        }
        app.onNotice = { [weak self] line in
            self?.update { s in
                s.steps.append(line)
                if line.contains("remove the medium") { s.mediumRemovable = true }
            }
        }
        app.onValidated = { [weak self] outcome in
            self?.update { s in s.validation = outcome }
        }
        app.makeProgress = { [weak self] phase, total in
            let meter = ProgressMeter(label: phase.rawValue, total: total, terminal: false, colour: false, write: { _ in })
            self?.update { s in
                s.byteLabel = phase.rawValue
                s.bytesDone = 0
                s.bytesTotal = total
            }
            meter.onUpdate = { [weak self] done in
                self?.state.withLock { s in
                    if done != s.bytesDone {
                        s.bytesDone = done
                        s.revision += 1
                    }
                }
            }
            return meter
        }
        return app
    }

    private func run() {
        let app = makeApp()
        let kind = state.withLock { $0.kind }
        var result: Result
        do {
            switch kind {
            case .update(_, let path, _):
                result = try runUpdate(app, path: path)
            case .rollback(let service):
                result = try runRollback(app, service: service)
            }
        } catch {
            let code = (error as? CaissonError)?.code ?? "error"
            let message = (error as? CaissonError)?.message ?? "\(error)"
            let issue = Issue(code, message)
            let busy = code == "lock.busy"
            result = Result(outcome: busy ? "refused" : "failed",
                            headline: busy ? "Another update is running on this device" : "The operation could not run",
                            detail: busy ? "Nothing was changed. Wait for the other update to finish, then try again." : "Nothing was changed by this step.",
                            issues: [issue], exitCode: 1, attempt: nil)
        }
        app.finish()
        update { s in
            s.result = result
            s.phase = .finished
            s.attemptID = result.attempt?.updateID ?? s.attemptID
        }
        onFinish?(snapshot)
    }

    private func waitForDecision() -> Decision {
        let deadline = Date().addingTimeInterval(Self.confirmTimeout)
        decisionLock.lock()
        defer { decisionLock.unlock() }
        while decision == nil {
            if stopping() || Date() >= deadline { return .cancel }
            _ = decisionLock.wait(until: min(deadline, Date().addingTimeInterval(0.25)))
        }
        return decision!
    }

    private func runUpdate(_ app: Application, path: String) throws -> Result {
        var flags = Application.LoadFlags()
        flags.staging = .auto
        let outcome = try app.load(path, flags: flags, confirm: { [self] plan in
            update { s in
                s.plan = plan
                s.phase = .confirming
            }
            let answer = waitForDecision()
            update { s in s.phase = answer == .go ? .running : .preparing }
            return answer == .go
        })
        update { s in s.validation = outcome.validation }
        return Self.describe(outcome)
    }

    private func runRollback(_ app: Application, service: String) throws -> Result {
        update { s in s.phase = .running }
        guard let attempt = try app.rollback(service: service, confirm: { _ in true }) else {
            return Result(outcome: "declined", headline: "Nothing was changed", detail: "", issues: [], exitCode: 3, attempt: nil)
        }
        var r = Self.describe(attempt)
        if attempt.status != .succeeded { r.evidence = (try? app.failureEvidence(updateID: attempt.updateID).records) ?? [] }
        return r
    }

    static func describe(_ o: Application.LoadOutcome) -> Result {
        if o.validation.report.status == .rejected || o.refusal != nil {
            let issues = o.validation.report.issues + (o.refusal.map { [$0] } ?? [])
            return Result(outcome: "rejected", headline: "This package was not accepted",
                          detail: "Nothing was changed on this device.", issues: issues, exitCode: o.exitCode, attempt: nil)
        }
        if let i = o.preflightIssue {
            return Result(outcome: "refused", headline: "There is not enough room to install this update",
                          detail: "Nothing was changed on this device.", issues: [i], exitCode: o.exitCode, attempt: nil)
        }
        if o.declined {
            return Result(outcome: "declined", headline: "Update cancelled", detail: "Nothing was changed on this device.",
                          issues: [], exitCode: o.exitCode, attempt: nil)
        }
        if let i = o.importIssue {
            return Result(outcome: "failed", headline: "The update could not be installed",
                          detail: "The service was not touched: it still runs its previous version.", issues: [i], exitCode: o.exitCode, attempt: nil)
        }
        if let a = o.attempt {
            var r = describe(a)
            r.evidence = o.evidence
            return r
        }
        return Result(outcome: "failed", headline: "The update did not run", detail: "", issues: [], exitCode: o.exitCode, attempt: nil)
    }

    static func describe(_ a: UpdateAttempt) -> Result {
        let rollback = a.kind == "rollback"
        switch a.status {
        case .succeeded:
            return Result(outcome: "updated",
                          headline: rollback ? "Rolled back: the previous version runs and is healthy" : "Updated and healthy",
                          detail: "\(a.serviceName) now runs \(a.packageVersion.map { "version \($0)" } ?? a.targetImageReference).",
                          issues: a.issues, exitCode: 0, attempt: a)
        case .rolledBack, .failed:
            return Result(outcome: "rolled_back", headline: "The update failed; the previous version is running again",
                          detail: "\(a.serviceName) was put back as it was before. Nothing else needs doing now.",
                          issues: a.issues, exitCode: 4, attempt: a)
        case .rollbackFailed:
            return Result(outcome: "needs_help", headline: "The service needs a technician",
                          detail: "The update failed and the previous version could not be started again. Call support with the details below.",
                          issues: a.issues, exitCode: 5, attempt: a)
        default:
            return Result(outcome: "failed", headline: "The update stopped part-way", detail: "Caisson will finish it safely on its next start.",
                          issues: a.issues, exitCode: 4, attempt: a)
        }
    }
}
