import CaissonApp
import CaissonCore
import CaissonHTTP
import CaissonStore
import Foundation

/// Live progress as Server-Sent Events. Two kinds of event:
/// - `audit`, with `id:` the audit log's sequence number: replayed from the log after the id the
///   browser last saw (`Last-Event-ID` on reconnect, or `?after=`), so a reload or a console
///   restart loses nothing;
/// - `state` (no id): the current picture, from this console's operation (bytes, steps) and from
///   the journal (which attempt is in flight, at which step, the health check's countdown), so it
///   is right after a restart too and for an update run from the command line.
extension Console {
    static let eventInterval: useconds_t = 200_000

    struct StateDocument: Encodable {
        struct Op: Encodable {
            var id: String
            var phase: String
            var revision: Int
            var kind: String
            var byte_label: String?
            var bytes_done: Int64
            var bytes_total: Int64
            var steps: [String]
            var medium_removable: Bool
            var outcome: String?
            var actor: String
            /// Why a failed update failed (issue 12): one entry per failed container, secrets
            /// already redacted when captured; absent while running and after a success.
            var evidence: [Evidence]?
        }
        struct Evidence: Encodable {
            var role: String
            var container: String
            var sentence: String
            var status: String?
            var exit_code: Int?
            var oom_killed: Bool?
            var restart_count: Int?
            var last_log_lines: [String]
            var log_truncated: Bool
            var redactions: Int

            init(_ e: FailureEvidence) {
                role = e.role.rawValue
                container = e.containerName
                sentence = e.plainSentence
                status = e.state?.status.rawValue
                exit_code = e.state?.exitCode
                oom_killed = e.state?.oomKilled
                restart_count = e.state?.restartCount
                last_log_lines = e.logTail.suffix(10).map(\.text)
                log_truncated = e.logTruncated || e.logTail.count > 10
                redactions = e.redactions
            }
        }
        struct InFlight: Encodable {
            var update_id: String
            var service: String
            var status: String
            var step: String?
            var step_detail: String?
            var health_remaining_secs: Int?
        }
        var op: Op?
        /// Another process's operation (this console runs none): who, which step, since when.
        var other: OtherDocument?
        var holder: String?
        var in_flight: [InFlight]
        var last_audit_seq: Int64
        /// The Caisson version serving (a page from another version reloads: issue 14 item 5).
        var version: String = Application.version
    }

    func currentState(app: Application) -> StateDocument {
        var doc = StateDocument(op: nil, other: nil, holder: nil, in_flight: [], last_audit_seq: 0)
        doc.other = otherOperation(app).map(Self.otherDocument)
        if let op = operation {
            let s = op.snapshot
            let kind: String
            switch s.kind {
            case .update: kind = "update"
            case .rollback: kind = "rollback"
            }
            doc.op = .init(id: s.id, phase: s.phase.rawValue, revision: s.revision, kind: kind, byte_label: s.byteLabel,
                           bytes_done: s.bytesDone, bytes_total: s.bytesTotal, steps: Array(s.steps.suffix(12)),
                           medium_removable: s.mediumRemovable, outcome: s.result?.outcome, actor: s.actor,
                           evidence: s.result.flatMap { $0.evidence.isEmpty ? nil : $0.evidence.map(StateDocument.Evidence.init) })
        }
        if let activity = try? app.activity() {
            doc.holder = activity.holder?.description
            let store = try? app.store()
            let catalog = try? app.catalog()
            for a in activity.inFlight {
                let last = (try? store?.journalEntries(updateID: a.updateID).records.last) ?? nil
                var remaining: Int?
                if a.status == .healthChecking, let started = (try? store?.auditEvents(updateID: a.updateID).records)??
                    .last(where: { $0.event.kind == .healthCheckStarted })?.event.at,
                   let t = Timestamps.parse(started), let svc = catalog?.service(named: a.serviceName) {
                    // On the simulator, simulated seconds pass at `simPace` real seconds each.
                    let elapsed = Date().timeIntervalSince1970 - Double(t.seconds)
                    let pace = config.options.host == .sim ? config.options.simPace : 1
                    let simulated = pace > 0 ? elapsed / pace : 0
                    remaining = max(0, Int((Double(svc.health.timeoutSecs) - simulated).rounded(.up)))
                }
                doc.in_flight.append(.init(update_id: a.updateID, service: a.serviceName, status: a.status.rawValue,
                                           step: last?.step, step_detail: last.map { app.operatorText($0.detail) }, health_remaining_secs: remaining))
            }
        }
        doc.last_audit_seq = (try? app.store().lastAuditSeq()) ?? 0
        return doc
    }

    func stateDocument() -> HTTPServerResponse {
        let app = Application(options: config.options)
        return HTTPServerResponse(status: 200, headers: [HTTPHeader("Content-Type", "application/json")],
                                  body: Array(JSONCoding.string(currentState(app: app), pretty: false).utf8))
    }

    static func auditJSON(_ e: StoredAuditEvent) -> String {
        struct Doc: Encodable {
            var seq: Int64
            var kind: String
            var at: String
            var service: String?
            var update_id: String?
            var message: String
            var text: String
        }
        return JSONCoding.string(Doc(seq: e.seq, kind: e.event.kind.rawValue, at: e.event.at, service: e.event.serviceName,
                                     update_id: e.event.updateID, message: e.event.message, text: Pages.auditText(e.event)), pretty: false)
    }

    func events(_ ctx: Context) -> HTTPServerResponse {
        let head = ctx.request.head
        let after = Int64(head.header("Last-Event-ID") ?? head.queryValue("after") ?? "") ?? -1
        let options = config.options
        return HTTPServerResponse(status: 200, headers: [HTTPHeader("Content-Type", "text/event-stream"),
                                                         HTTPHeader("X-Accel-Buffering", "no")]) { [weak self] writer in
            guard let self else { return }
            let app = Application(options: options)
            var last = after
            if last < 0 { last = (try? app.store().lastAuditSeq()) ?? 0 }
            try writer.write(Array("retry: 1000\n\n".utf8))
            var lastState = ""
            var lastBeat = Date()
            while !writer.isStopping && !self.isStopping {
                var out = ""
                if let events = try? app.store().auditEvents(after: last, limit: 200) {
                    for e in events {
                        out += "id: \(e.seq)\nevent: audit\ndata: \(Self.auditJSON(e))\n\n"
                        last = e.seq
                    }
                }
                let state = JSONCoding.string(self.currentState(app: app), pretty: false)
                if state != lastState {
                    out += "event: state\ndata: \(state)\n\n"
                    lastState = state
                }
                if out.isEmpty && Date().timeIntervalSince(lastBeat) > 10 { out = ": keep-alive\n\n" }
                if !out.isEmpty {
                    try writer.write(Array(out.utf8))
                    lastBeat = Date()
                } else if writer.clientClosed {
                    return
                }
                usleep(Self.eventInterval)
            }
        }
    }
}
