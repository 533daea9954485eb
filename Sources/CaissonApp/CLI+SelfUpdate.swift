import CaissonCore
import CaissonStore
import CaissonSimulator
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The self-update commands (issue 14): `self-update`, `self-test`, `package build --updater`,
/// updater packages in `package validate` and `package load`, self-updates in `history`.
extension CaissonCLI {
    static let selfUpdateCommands: [CommandSpec] = [
        CommandSpec(["self-update"], summary: "Update Caisson itself from a signed updater package (or roll it back)",
                    discussion: """
                    Validates the updater package (signature under the catalog's [trust], version floor, the
                    executable's ELF header against this machine), shows the plan and asks. Then: stages the new
                    executable beside the installed one, test-runs it (--version must print the package's version;
                    self-test against a copy of the store), snapshots the store, swaps the executables atomically
                    keeping the installed one as <install>.previous, and lets the new one confirm itself by its first
                    run; a failing first run puts the previous one back. A kill or power cut at any point is finished
                    or undone by the next command of either executable.
                    --rollback returns to the previous executable (and to the store snapshot when the newer one
                    migrated the store); it works from <install>.previous too, even when the store is too new for it.
                    Exit 0 installed (or rolled back), 1 refused before anything (no room, an update in flight,
                    I/O), 2 package rejected, 3 declined, 4 the new executable failed its test-run or first run
                    (the installed one is untouched or back), 5 the rollback failed.
                    """,
                    positionals: [("PKG", "The updater .edgepkg (not with --rollback)", true)],
                    options: [OptionSpec("--yes", short: "-y", help: "Do not ask for confirmation"),
                              OptionSpec("--install-path", value: "PATH", help: "The executable to replace (default: this one, via /proc/self/exe)"),
                              OptionSpec("--dry-run", help: "Validate and show the plan, change nothing"),
                              OptionSpec("--reinstall", help: "Install the version that is already installed"),
                              OptionSpec("--allow-downgrade", help: "Install an older version (audited)"),
                              OptionSpec("--rollback", help: "Return to the previous executable and its store"),
                              OptionSpec("--test-timeout", value: "SECS", help: "Deadline of the test-run and of the first run (default 60)"),
                              OptionSpec("--confirm", value: "ID", help: "(internal) the first run of a new executable, started by the self-update")]),
        CommandSpec(["self-test"], summary: "Check this executable against a state directory (what a self-update's test-run runs)",
                    discussion: "Opens the store of --state-dir (applying its migrations), reads its records, reads the catalog,\nruns known-answer checks of the crypto, and with --ping reaches the host. Recovers nothing and\ntouches no container. Exit 0 when every check passes, 1 otherwise.",
                    options: [OptionSpec("--ping", help: "Also ping the host (Docker)")]),
    ]

    static let updaterBuildOptions: [OptionSpec] = [
        OptionSpec("--updater", value: "PATH", help: "Build an updater package of this caisson executable (no --service)"),
        OptionSpec("--platform", value: "P", help: "With --updater: the platform, checked against the ELF header (default: from it)"),
        OptionSpec("--min-updater-version", value: "V", help: "With --updater: the oldest Caisson that may install it"),
    ]

    struct SelfUpdateDocument: Encodable {
        var status: String
        var exitCode: Int32
        var validation: ValidationRecord?
        var plan: Application.SelfUpdatePlanView?
        var selfUpdate: SelfUpdateRecord?
        var issues: [Issue]
        enum CodingKeys: String, CodingKey {
            case status
            case exitCode = "exit_code"
            case validation, plan
            case selfUpdate = "self_update"
            case issues
        }
    }

    static func runSelfUpdate(_ cmd: ParsedCommand, app: Application, out: Output) throws -> Int32 {
        if let id = cmd.value("--confirm") {
            let checks = try app.confirmSelfUpdate(id)
            if out.json { out.document(["confirmed": id]) } else {
                out.line("Caisson \(Application.version) confirmed self-update \(id) (\(checks.count) checks passed)")
            }
            return 0
        }
        let yes = cmd.flag("--yes")
        if cmd.flag("--rollback") {
            guard cmd.positionals.isEmpty else { throw CaissonError("usage.invalid", "'caisson self-update --rollback' takes no PKG") }
            let (view, record) = try app.selfUpdateRollback(confirm: { v in
                if !out.json {
                    out.line("Self-update rollback")
                    out.line("Install path: \(v.installPath)")
                    out.line("Version: \(v.currentVersion) -> \(v.previousVersion) (from \(v.previousPath))")
                    out.line("Store: " + (v.restoresStore ? "restored from the snapshot \(v.snapshot) (schema \(v.storeSchemaVersion.map(String.init) ?? "?") -> \(v.snapshotSchemaVersion)); the newer one is kept aside" : "kept as it is (schema \(v.storeSchemaVersion.map(String.init) ?? "?"), readable by Caisson \(v.previousVersion))"))
                }
                if yes { return true }
                return prompt("Continue and roll Caisson back? [y/N]: ", toStderr: out.json)
            })
            guard let record else {
                if out.json { out.document(SelfUpdateDocument(status: "declined", exitCode: 3, plan: nil, selfUpdate: nil, issues: [])) }
                else { out.line("Rollback declined; nothing was changed.") }
                _ = view
                return 3
            }
            let code = exitCode(record)
            if out.json { out.document(SelfUpdateDocument(status: record.status.rawValue, exitCode: code, selfUpdate: record, issues: record.issues)) }
            else { printSelfUpdate(record, out: out) }
            return code
        }
        guard let pkg = cmd.positionals.first else {
            throw CaissonError("usage.invalid", "'caisson self-update' needs PKG (or --rollback)")
        }
        var flags = Application.SelfUpdateFlags()
        flags.installPath = cmd.value("--install-path")
        flags.allowDowngrade = cmd.flag("--allow-downgrade")
        flags.reinstall = cmd.flag("--reinstall")
        flags.dryRun = cmd.flag("--dry-run")
        if let t = cmd.value("--test-timeout") {
            guard let n = Int(t), n > 0, n <= 3600 else { throw CaissonError("usage.invalid_number", "--test-timeout must be a number of seconds from 1 to 3600, not '\(t)'") }
            flags.testTimeoutSecs = n
        }
        let o = try app.selfUpdate(pkg, flags: flags, confirm: { plan in
            if !out.json { printSelfUpdatePlan(plan, out: out) }
            if yes || flags.dryRun { return true }
            return prompt("Continue and update Caisson? [y/N]: ", toStderr: out.json)
        })
        let code = o.exitCode
        if out.json {
            var issues = o.validation?.issues ?? []
            if let r = o.refusal { issues.append(r) }
            issues += o.record?.issues ?? []
            let status = o.refusal != nil ? "refused" : o.validation?.status == .rejected ? "rejected" : o.declined ? "declined"
                : o.record?.status.rawValue ?? "planned"
            out.document(SelfUpdateDocument(status: status, exitCode: code, validation: o.validationRecord, plan: o.plan,
                                            selfUpdate: o.record, issues: issues))
            return code
        }
        if let r = o.refusal {
            out.error("\(r); nothing was changed")
            return code
        }
        if let v = o.validation, v.status == .rejected {
            printUpdaterValidation(v, record: o.validationRecord, out: out)
            return code
        }
        if o.declined { out.line("Self-update declined; nothing was changed."); return code }
        guard let record = o.record else { out.line("Dry run: nothing was changed."); return code }
        printSelfUpdate(record, out: out)
        return code
    }

    static func exitCode(_ r: SelfUpdateRecord) -> Int32 {
        switch r.status {
        case .succeeded: return 0
        case .rolledBack: return r.kind == "rollback" ? 0 : 4
        case .rollbackFailed: return 5
        default: return 4
        }
    }

    static func printSelfUpdatePlan(_ p: Application.SelfUpdatePlanView, out: Output) {
        out.line("")
        out.line("Self-update plan")
        out.line("Install path: \(p.installPath)")
        out.line("Version: \(p.installedVersion) -> \(p.newVersion)")
        out.line("New executable: \(Format.bytes(p.newSize)), \(p.platform), \(p.executable), SHA-256 \(p.newSHA256)")
        if let k = p.signedBy { out.line("Signed by: key \(k)") }
        if let f = p.freeBytes { out.line("Free disk (install directory): \(Format.bytes(f))") }
        out.line("Steps:")
        for (i, s) in p.steps.enumerated() { out.line("  \(i + 1). \(s)") }
    }

    static func printSelfUpdate(_ r: SelfUpdateRecord, out: Output) {
        out.line("")
        out.line("Self-update \(r.selfUpdateID)\(r.kind == "rollback" ? " (rollback)" : "")")
        out.line("Install path: \(r.installPath)")
        out.line("Version: \(r.fromVersion) -> \(r.toVersion)")
        for c in r.checks { out.line("- \(c.ok ? "ok" : "FAILED") \(c.name): \(c.detail)") }
        out.line("Status: \(r.status.rawValue)")
        for i in r.issues { out.line("- \(i)") }
        for n in r.notes { out.line("  note: \(n)") }
        switch (r.status, r.kind) {
        case (.succeeded, _):
            out.line("Caisson \(r.toVersion) is installed; the previous one is kept as \(r.previousPath) (caisson self-update --rollback returns to it).")
        case (.failed, _):
            out.line("The installed Caisson \(r.fromVersion) was not changed.")
        case (.rolledBack, "rollback"):
            out.line("Caisson \(r.toVersion) is back at \(r.installPath)\(r.storeRestored == true ? "; the store was restored from its snapshot (the newer one is kept at \(r.replacedStore ?? "?"))" : "").")
        case (.rolledBack, _):
            out.line("The new Caisson failed its first run; Caisson \(r.fromVersion) was put back\(r.storeRestored == true ? " with the store snapshot" : "").")
        case (.rollbackFailed, _):
            out.line("ROLLBACK FAILED: see the issues above. The installed executable still works; run `caisson self-update --rollback` again once the cause is fixed.")
        default: break
        }
    }

    static func runSelfTest(_ cmd: ParsedCommand, app: Application, out: Output) -> Int32 {
        let report = app.selfTest(ping: cmd.flag("--ping"))
        if out.json { out.document(report) } else {
            out.line("Self-test of Caisson \(report.version): \(report.ok ? "ok" : "FAILED")")
            for c in report.checks { out.line("- \(c.ok ? "ok" : "FAILED") \(c.name): \(c.detail)") }
        }
        return report.ok ? 0 : 1
    }

    /// `package validate` of an updater package; nil when `path` is not one.
    static func validateIfUpdater(_ path: String, app: Application, out: Output) throws -> Int32? {
        guard UpdaterPackageValidator.packageType(path: Application.absolute(path)) == UpdaterManifest.packageType else { return nil }
        let (report, record) = try app.validateUpdater(path)
        printUpdaterValidation(report, record: record, out: out)
        return report.status == .accepted ? 0 : 2
    }

    struct UpdaterValidationDocument: Encodable {
        var validation: ValidationRecord?
        var updater: UpdaterManifest?
        var executable: UpdaterExecutable?
        var installedVersion: String?
        enum CodingKeys: String, CodingKey {
            case validation, updater, executable
            case installedVersion = "installed_version"
        }
    }

    static func printUpdaterValidation(_ r: UpdaterValidationReport, record: ValidationRecord?, out: Output) {
        if out.json {
            out.document(UpdaterValidationDocument(validation: record, updater: r.manifest, executable: r.executable,
                                                   installedVersion: r.installedVersion))
            return
        }
        out.line("Package validation")
        out.line("Package: \(r.packagePath)")
        if let m = r.manifest {
            out.line("Updater: Caisson \(m.packageVersion) for \(m.platform) (created \(m.createdAt)); installed: \(r.installedVersion ?? "?")")
        }
        if let x = r.executable {
            out.line("Executable: \(Format.bytes(x.size)), \(x.elf?.summary ?? "not ELF"), SHA-256 \(x.sha256)")
        }
        if let s = r.signature { out.line("Signature: good, key \(s.keyID)") }
        if let record { out.line("Validation id: \(record.validationAttemptID)") }
        out.line("Status: \(r.status.rawValue)")
        for i in r.issues { out.line("- \(i)") }
        if r.status == .accepted { out.line("Install it with: caisson self-update \(r.packagePath)") }
    }

    static func buildUpdater(_ cmd: ParsedCommand, app: Application, out: Output) throws -> Int32 {
        guard let exe = cmd.value("--updater"), let version = cmd.value("--version") else {
            throw CaissonError("usage.missing_option", "'caisson package build --updater PATH' needs --version V")
        }
        guard cmd.value("--service") == nil, cmd.value("--image") == nil, cmd.value("--from-tar") == nil,
              cmd.values("--encrypt-to").isEmpty, !cmd.flag("--encrypt-passphrase") else {
            throw CaissonError("usage.invalid", "--updater builds an updater package: no --service, --image, --from-tar or encryption (updater packages are not encrypted yet)")
        }
        let b = try app.buildUpdater(Application.UpdaterBuildRequest(
            executable: exe, version: version, platform: cmd.value("--platform"), output: cmd.value("--output"),
            createdAt: cmd.value("--created-at"), minUpdaterVersion: cmd.value("--min-updater-version"),
            signingKey: cmd.value("--sign"), signingKeyPassword: ProcessInfo.processInfo.environment["CAISSON_KEY_PASSWORD"]))
        if out.json {
            out.document(["output": b.output, "status": b.validation.status.rawValue, "sha256": b.validation.executable?.sha256 ?? ""])
        } else {
            out.line("Wrote \(b.output) (\(Format.bytes(b.validation.packageSize ?? 0)))")
            out.line("")
            printUpdaterValidation(b.validation, record: nil, out: out)
        }
        return b.validation.status == .accepted ? 0 : 2
    }

    struct SelfUpdateHistoryDocument: Encodable {
        var attempts: [UpdateAttempt]
        var selfUpdates: [SelfUpdateRecord]
        var inProgress: OperationInProgress?
        enum CodingKeys: String, CodingKey {
            case attempts
            case selfUpdates = "self_updates"
            case inProgress = "in_progress"
        }
    }

    /// The self-updates section of `history list`.
    static func printSelfUpdateHistory(_ list: [SelfUpdateRecord], out: Output) {
        guard !list.isEmpty else { return }
        out.line("")
        out.line("Self-updates (\(list.count))")
        for r in list {
            let what = r.kind == "rollback" ? "rollback \(r.fromVersion) -> \(r.toVersion)" : "caisson \(r.fromVersion) -> \(r.toVersion)"
            out.line("- \(r.selfUpdateID)  \(r.startedAt)  \(what)  \(r.status.rawValue)")
        }
    }

    /// `history show` of a self-update id; nil when it is none.
    static func showSelfUpdate(_ id: String, app: Application, out: Output) throws -> Int32? {
        let s = try app.store()
        guard let r = try s.selfUpdate(id) else { return nil }
        let events = try s.auditEvents(updateID: r.selfUpdateID).records.map(\.event)
        if out.json {
            struct Doc: Encodable {
                var selfUpdate: SelfUpdateRecord
                var auditEvents: [AuditEvent]
                enum CodingKeys: String, CodingKey {
                    case selfUpdate = "self_update"
                    case auditEvents = "audit_events"
                }
            }
            out.document(Doc(selfUpdate: r, auditEvents: events))
            return 0
        }
        printSelfUpdate(r, out: out)
        out.line("Audit events:")
        for e in events { out.line("- \(e.at) \(e.kind.rawValue): \(e.message)") }
        return 0
    }
}

extension CaissonCLI {
    /// The command tree with the self-update commands and `package build --updater`.
    static func withSelfUpdate(_ commands: [CommandSpec]) -> [CommandSpec] {
        commands.map { c in
            if c.path == ["sim", "swarm"] {
                var b = c
                b.options.append(OptionSpec("--self-update", help: "Swarm the self-update machine instead (issue 14): fake new executables, failing calls, crashes, power cuts, rollbacks"))
                return b
            }
            guard c.path == ["package", "build"] else { return c }
            var b = c
            b.options += updaterBuildOptions
            b.discussion += "\nWith --updater PATH: an updater package of a caisson executable instead (see caisson self-update)."
            return b
        } + selfUpdateCommands
    }
}

extension CaissonCLI {
    /// `caisson sim swarm --self-update`: `SelfUpdateSwarm` (the simulated install).
    static func runSelfUpdateSwarm(_ cmd: ParsedCommand, out: Output) throws -> Int32 {
        let runs = Int(cmd.value("--runs") ?? "1000") ?? -1
        let seed = UInt64(cmd.value("--seed") ?? "1")
        guard runs > 0, let seed else { throw CaissonError("usage.invalid_number", "--runs and --seed take non-negative integers") }
        let s = SelfUpdateSwarm.run(runs: runs, seed: seed)
        let rc: Int32 = s.violations == 0 ? 0 : 1
        if out.json {
            out.result(s, status: s.violations == 0 ? "ok" : "violations",
                       issues: s.firstViolation.map { v in v.problems.map { Issue("swarm.violation", $0) } } ?? [], exitCode: rc)
            return rc
        }
        out.line("Self-update swarm: \(s.runs) runs, seed \(s.seed), \(s.violations) violation(s)")
        out.line("  outcomes: " + s.statuses.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        out.line("  crashes recovered: \(s.crashes); failing calls: \(s.faults); rollbacks: \(s.rollbacks)")
        out.line("  trace digest \(s.traceDigest)")
        if let v = s.firstViolation {
            out.line("First violation: run \(v.run), seed \(v.seed) (\(v.scenario))")
            for p in v.problems { out.line("- \(p)") }
        }
        return rc
    }
}
