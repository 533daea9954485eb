import CaissonCore

extension CaissonCLI {
    /// Failure evidence (issue 12): per container, its state, Docker's health log and the end of
    /// its log (`tailLines`: only the last lines of it). After the Rust tool's lines.
    static func printEvidence(_ list: [FailureEvidence], out: Output, tailLines: Int? = nil) {
        guard !list.isEmpty else { return }
        out.line("Failure evidence:")
        for e in list {
            out.line("- \(e.summary)")
            if let st = e.state {
                out.line("    Container: \(Format.shortID(e.containerID)), image \(Format.shortID(e.imageID))")
                out.line("    Exit code: \(st.exitCode), OOM killed: \(st.oomKilled ? "yes" : "no"), restarts: \(st.restartCount)")
                out.line("    Started: \(st.startedAt), finished: \(st.finishedAt)")
                if let err = st.error { out.line("    Error: \(err)") }
            }
            for p in e.problems { out.line("    Not captured: \(p)") }
            if !e.healthLog.isEmpty {
                out.line("    Health log (last \(e.healthLog.count)):")
                for h in e.healthLog {
                    let text = h.output.split(whereSeparator: \.isNewline).joined(separator: " ").prefix(200)
                    out.line("      \(h.start) exit \(h.exitCode): \(text)")
                }
            }
            let lines = tailLines.map { Array(e.logTail.suffix($0)) } ?? e.logTail
            if lines.isEmpty {
                out.line("    Log: (empty)")
            } else {
                let more = lines.count < e.logTail.count || e.logTruncated
                out.line("    Log (last \(lines.count) line\(lines.count == 1 ? "" : "s")\(more ? ", earlier output left out" : "")\(e.redactions > 0 ? ", \(e.redactions) secret value(s) redacted" : "")):")
                for l in lines { out.line("      \(l.stream == .stderr ? "err" : "out") | \(l.text)") }
            }
        }
    }
}
