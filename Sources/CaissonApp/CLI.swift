import CaissonCore
import CaissonDocker
import CaissonSimulator
import CaissonStore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The `caisson` command line: parsing, prompts and output over `Application`.
public enum CaissonCLI {
    static let globals: [OptionSpec] = [
        OptionSpec("--services", value: "PATH", help: "The service catalog (default: services.toml)"),
        OptionSpec("--state-dir", value: "PATH", help: "Caisson's state directory (default: $CAISSON_STATE_DIR, else .caisson-state)"),
        OptionSpec("--host", value: "docker|sim", help: "Run against the Docker daemon (default) or the built-in simulator"),
        OptionSpec("--json", help: "Print one JSON document on stdout"),
        OptionSpec("--quiet", short: "-q", help: "Print no progress"),
    ]

    static let commands: [CommandSpec] = [
        CommandSpec(["service", "list"], summary: "List the services this device may update"),
        CommandSpec(["service", "show"], summary: "Show one service: catalog entry and current release",
                    positionals: [("NAME", "The service name from the catalog", false)]),
        CommandSpec(["package", "validate"], summary: "Check a package without touching Docker",
                    discussion: "Reads the package once, checks the archive, the manifest, the catalog and the image inside it,\nthen what this device already runs (an installed or newer version, a stale package) and, when the\ncontainer host answers, what would make the update fail before any downtime: the verdict is the one\n`package load` would give. Records the result. Exit 0 accepted, 2 rejected.",
                    positionals: [("PKG", "The .edgepkg file", false)],
                    options: [OptionSpec("--reinstall", help: "Judge as `package load --reinstall` would"),
                              OptionSpec("--allow-downgrade", help: "Judge as `package load --allow-downgrade` would"),
                              OptionSpec("--start", help: "Judge as `package load --start` would")]),
        CommandSpec(["package", "load"], summary: "Validate a package and update its service",
                    discussion: "Copies the package off the medium into the state directory (then says you may remove it),\nwhen it is on another filesystem than the state directory (--stage: always; --no-stage: never),\nvalidates it, shows what will happen, asks for confirmation, loads the image, swaps the\nservice, health-checks it and rolls back automatically if it is not healthy.\nNot enough free space to copy the package: exit 1 with [staging.insufficient_space] (the reserve\nkept free is CAISSON_STAGING_RESERVE_BYTES, default 32 MiB). A read error while copying: exit 2.\nThe package changed after validation (modified or replaced): exit 2 with [package.changed].\nCtrl-C / SIGTERM: at the prompt or before the update begins, exit 3 ([update.cancelled]); during\nthe swap or health check the previous release is restored (exit 4); a second one within 3 s\nexits at once and leaves it to `caisson recover`. Another Caisson changing the service: exit 1\n([lock.busy], [lock.service_busy], [update.foreign_attempt]).\nA reference outside the service's repository, a Caisson pin, or a tag another service or container\nuses: exit 2 with [image.reference_outside_service], [image.reference_reserved], [image.reference_in_use];\nimage labels of the com.docker.compose.* or io.caisson.* families: exit 2 with [image.reserved_label].\nContainers sharing the service's network namespace: exit 1 with [update.network_dependents],\nunless --recreate-dependents.",
                    positionals: [("PKG", "The .edgepkg file", false)],
                    options: [OptionSpec("--yes", short: "-y", help: "Do not ask for confirmation"),
                              OptionSpec("--dry-run", help: "Show the plan and stop"),
                              OptionSpec("--reinstall", help: "Apply a package version that is already installed"),
                              OptionSpec("--allow-downgrade", help: "Apply an older package version (audited)"),
                              OptionSpec("--start", help: "Start the service after the update even if it is stopped now (else it stays stopped)"),
                              OptionSpec("--stage", help: "Always copy the package into the state directory first"),
                              OptionSpec("--no-stage", help: "Never copy it: load from where it is (keep the medium in)"),
                              OptionSpec("--recreate-dependents", help: "Recreate the containers sharing the service's network namespace against the new container (else the update refuses)"),
                              OptionSpec("--receipt", value: "DIR", help: "Write the signed receipt of this load into DIR (e.g. the stick), whatever its outcome")]),
        CommandSpec(["package", "cleanup"], summary: "Remove staged packages, old images and leftover backup containers",
                    discussion: "Keeps the active and the previous known-good image of every service (and their pins), and\nwhatever an unfinished update still needs. Takes the operation lock; records a package_cleanup\naudit event. Exit 0, or 1 if something could not be removed (listed).",
                    options: [OptionSpec("--keep", value: "N", help: "Also keep the images of the N newest releases of each service"),
                              OptionSpec("--ignore-inventory", help: "Also remove images whose layers a thin package built from the last exported inventory needs")]),
        CommandSpec(["package", "build"], summary: "Build a package from a Docker image (on the connected side)",
                    discussion: "Writes a .edgepkg for a catalog service from an image in the local Docker daemon (--image) or\na docker save tarball (--from-tar). The manifest takes service_revision and platform from the\ncatalog, the reference from the image's single tag, and the SHA-256 and size of image.tar.\nThe package is then validated like any other. Exit 0 accepted, 2 rejected, 1 could not build.",
                    options: [OptionSpec("--service", value: "NAME", help: "The catalog service the package updates (required)"),
                              OptionSpec("--version", value: "V", help: "The package version, SemVer (required)"),
                              OptionSpec("--image", value: "REF", help: "Save this image from the Docker daemon"),
                              OptionSpec("--from-tar", value: "FILE", help: "Use this docker save tarball"),
                              OptionSpec("--output", value: "PATH", help: "Where to write the package (default: SERVICE-VERSION.edgepkg)"),
                              OptionSpec("--created-at", value: "T", help: "The manifest's created_at, RFC 3339 (default: now)"),
                              OptionSpec("--sign", value: "KEY", help: "Sign manifest.toml with this minisign secret key file (password from CAISSON_KEY_PASSWORD if encrypted)"),
                              OptionSpec("--encrypt-to", value: "RECIPIENT", help: "Encrypt the image to this age recipient (age1…); repeat for several devices"),
                              OptionSpec("--encrypt-passphrase", help: "Encrypt the image with the passphrase in CAISSON_AGE_PASSPHRASE (age scrypt)"),
                              OptionSpec("--encrypt-work-factor", value: "N", help: "scrypt work factor for --encrypt-passphrase (default 18, as age -p)"),
                              OptionSpec("--compress", value: "gzip|none", help: "Write image.tar gzip-compressed (docker load reads it; default none)"),
                              OptionSpec("--against", value: "INVENTORY", help: "A thin package: leave out the layers this device inventory holds"),
                              OptionSpec("--device-key", value: "PUB", help: "Check the inventory's signature with the device's public key first")]),
        CommandSpec(["package", "decrypt"], summary: "Decrypt an encrypted package into a folder (troubleshooting, connected side)",
                    discussion: "Writes manifest.toml (and its signature) and image.tar, decrypted from image.tar.age with the\ngiven age identity files (or the passphrase in CAISSON_AGE_PASSPHRASE). image.tar appears only\nonce every chunk authenticated and it matches the manifest's SHA-256. Exit 0 done, 2 the package\ndoes not decrypt ([encryption.*]), 1 other errors. `tar -xf PKG image.tar.age` and\n`age -d -i KEY image.tar.age > image.tar` give the same image.tar.",
                    positionals: [("PKG", "The .edgepkg file", false)],
                    options: [OptionSpec("--identity", short: "-i", value: "FILE", help: "An age identity file (AGE-SECRET-KEY-1…); repeatable"),
                              OptionSpec("--output", short: "-o", value: "DIR", help: "The folder to write into (required)")]),
        CommandSpec(["key", "generate"], summary: "Create a minisign-compatible key pair for signing packages, or a device's age key",
                    discussion: "Writes NAME.key (secret) and NAME.pub (public). Put the public key's second line into the\ndevice catalog's [trust] public_keys. The secret key is encrypted with the password in\nCAISSON_KEY_PASSWORD, or written unencrypted with --unencrypted.\nWith --age PATH instead: writes an age identity (AGE-SECRET-KEY-1…, mode 0600 from its first byte)\nfor this device and prints its recipient (age1…), which package builders pass to --encrypt-to.\nList PATH in the catalog's [trust] age_identities.",
                    positionals: [("NAME", "Path prefix for the key files (e.g. keys/release)", true)],
                    options: [OptionSpec("--unencrypted", help: "Write the secret key without a password"),
                              OptionSpec("--age", value: "PATH", help: "Write an age identity for encrypted packages to PATH and print its recipient"),
                              OptionSpec("--device", help: "Make this device's signing key (inventories, receipts) in the state directory"),
                              OptionSpec("--force", help: "Overwrite existing key files")]),
        inventoryExportSpec, inventoryVerifySpec, receiptExportSpec, receiptVerifySpec,
        CommandSpec(["history", "list"], summary: "List update attempts, newest first",
                    options: [OptionSpec("--service", value: "NAME", help: "Only this service"),
                              OptionSpec("--limit", value: "N", help: "At most N attempts (default 20; 0 lists none)")]),
        CommandSpec(["history", "show"], summary: "Show one update attempt with its audit events and failure evidence",
                    positionals: [("UPDATE_ID", "The update id (or a unique prefix of 8+ characters)", false)]),
        CommandSpec(["history", "verify"], summary: "Check the state database, the audit log and the records for damage, edits or deletions",
                    discussion: "Runs SQLite's integrity check on the state database, re-computes the audit log's hash chain\nand the record chain that covers every update attempt and service state (the previous\nknown-good releases and the downgrade floor). Exit 0 intact, 1 otherwise."),
        CommandSpec(["rollback"], summary: "Return a service to its previous known-good release",
                    positionals: [("SERVICE", "The service name", false)],
                    options: [OptionSpec("--yes", short: "-y", help: "Do not ask for confirmation"),
                              OptionSpec("--recreate-dependents", help: "Recreate the containers sharing the service's network namespace against the restored container (else the rollback refuses)")]),
        CommandSpec(["migrate"], summary: "Import the records of the Rust caisson kept in the state directory",
                    discussion: "Imports the Rust caisson 0.1.0's JSON records (service-states, update-attempts, validation-records,\nimage-import-records, candidate-releases, audit/events.jsonl) into Caisson's store with their ids,\ntimestamps and statuses; its audit events start the hash chain, marked as imported. Done by itself on\nthe first use of such a directory; run it again to add what is new (nothing is imported twice, the\nstore's own newer state is kept). The JSON files are left as they are. Unreadable records are listed\nand skipped. Exit 0, or 1 when something was skipped."),
        CommandSpec(["recover"], summary: "Finish or roll back any update interrupted by a crash (every command also does this first)",
                    discussion: "Recovers only an update whose process is gone: while another Caisson runs one, it shows it\n(pid, step, since when) and changes nothing. Also lists updates another state directory left\nunfinished on this host ([update.foreign_attempt], exit 5). Run at boot by\ncontrib/systemd/caisson-recover.service. Exit 0, or 5 when something needs a human."),
        CommandSpec(["demo"], summary: "Show the whole job on the built-in simulator, narrated (no Docker, no set-up)",
                    options: [OptionSpec("--keep", help: "Keep the demo's temporary directory"),
                              OptionSpec("--prepare", value: "DIR", help: "Only write the demo's catalog and packages into DIR (to try the console: caisson --services DIR/services.toml --host sim console --media DIR)")]),
        CommandSpec(["sim", "swarm"], summary: "Run seeded random fault-injection updates on the simulator and check invariants",
                    options: [OptionSpec("--runs", value: "N", help: "Number of runs (default 1000)"),
                              OptionSpec("--seed", value: "S", help: "Seed (default 1)"),
                              OptionSpec("--no-disruptions", help: "Draw but do not apply the updater's real-world disruptions (a second Caisson process, signals, a full state disk): the same runs otherwise, a baseline for their cost"),
                              OptionSpec("--run-seed", value: "R", help: "Replay the one run of that run seed (a violation names it) with its scenario, expected outcome, problems and trace")]),
    ]

    static var parser: CommandLineParser { parser(frontEnds: []) }

    static func parser(frontEnds: [CLIFrontEnd]) -> CommandLineParser {
        CommandLineParser(tool: "caisson", about: "Caisson \(Application.version): offline updates of Docker services from a USB stick.",
                          globalOptions: globals, commands: withSelfUpdate(commands) + frontEnds.flatMap(\.commands))
    }

    final class Output: @unchecked Sendable {
        var json: Bool
        var quiet: Bool
        init(json: Bool, quiet: Bool) {
            self.json = json
            self.quiet = quiet
        }
        func line(_ s: String = "") { print(s) }
        func progress(_ s: String) {
            guard !quiet else { return }
            FileHandle.standardError.write(Data((s + "\n").utf8))
        }
        /// Shown even with --quiet (not with --json: stdout is one document, stderr stays quiet).
        func notice(_ s: String, always: Bool = false) {
            guard !json || always else { return }
            FileHandle.standardError.write(Data((s + "\n").utf8))
        }
        func error(_ s: String) { FileHandle.standardError.write(Data(("error: " + s + "\n").utf8)) }
        func document<T: Encodable>(_ value: T) {
            print(JSONCoding.string(value, pretty: true))
        }
        /// One JSON document: the command's object with the top-level `status`, `issues` and
        /// `exit_code` every command's JSON carries.
        func result<T: Encodable>(_ value: T, status: String, issues: [Issue] = [], exitCode: Int32) {
            var object: [String: JSONValue] = [:]
            if let bytes = try? JSONCoding.encode(value), case .object(let o)? = try? JSONValue.parse(bytes) { object = o }
            object["status"] = .string(status)
            object["issues"] = .array(issues.map { .object(["code": .string($0.code), "message": .string($0.message)]) })
            object["exit_code"] = .int(Int64(exitCode))
            print(JSONCoding.string(JSONValue.object(object), pretty: true))
        }
        /// The document of a command that failed (also keeps `error` for older readers).
        func failure(_ issue: Issue, exitCode: Int32 = 1) {
            result(ErrorDocument(error: ErrorDocument.Body(code: issue.code, message: issue.message)),
                   status: "error", issues: [issue], exitCode: exitCode)
        }
    }

    struct Empty: Encodable {}

    /// Runs the command line. `frontEnds` add commands served by other targets (the console),
    /// which get the same global options, `Application` and error printing.
    public static func main(_ args: [String], frontEnds: [CLIFrontEnd] = []) -> Int32 {

        switch parser(frontEnds: frontEnds).parse(args) {
        case .help(let text):
            print(text)
            return 0
        case .version:
            if Application.testFault("version-hang") { while true { sleep(3600) } }
            if Application.testFault("version-exit") { return 1 }
            print("caisson \(Application.version)")
            return 0
        case .usageError(let message):
            FileHandle.standardError.write(Data("error: \(message)\nRun 'caisson --help' for usage.\n".utf8))
            if (args.firstIndex(of: "--") .map { args[..<$0] } ?? args[...]).contains("--json") {
                Output(json: true, quiet: true).failure(Issue("usage.invalid", message))
            }
            return 1
        case .run(let cmd):
            var options = AppOptions.fromEnvironment()
            if let s = cmd.globals["--services"] { options.servicesPath = s }
            if let s = cmd.globals["--state-dir"] { options.stateDir = s }
            if let h = cmd.globals["--host"] {
                guard let kind = HostKind(rawValue: h) else {
                    FileHandle.standardError.write(Data("error: [usage.invalid] --host must be docker or sim, not '\(h)'\n".utf8))
                    if cmd.flag("--json") { Output(json: true, quiet: true).failure(Issue("usage.invalid", "--host must be docker or sim, not '\(h)'")) }
                    return 1
                }
                options.host = kind
            }
            let out = Output(json: cmd.flag("--json"), quiet: cmd.flag("--quiet") || cmd.flag("--json"))
            // Commands that change things stop safely on Ctrl-C / SIGTERM (see SignalWatch).
            if [["package", "load"], ["rollback"], ["recover"]].contains(cmd.path) {
                SignalWatch.shared.say = { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
                SignalWatch.shared.phase = cmd.path == ["recover"] ? .recovering : .preparing
                SignalWatch.shared.install()
            }
            let app = Application(options: options)
            app.onProgress = { out.progress($0) }
            app.onNotice = { out.notice($0) }
            if !out.quiet {
                let terminal = ProgressMeter.stderrIsTerminal
                let colour = terminal && ProgressMeter.colourAllowed()
                app.makeProgress = { phase, total in
                    ProgressMeter(label: phase.rawValue, total: total, terminal: terminal, colour: colour)
                }
            }
            app.onImport = { report in
                // Said on stderr (stdout stays the command's output or its one JSON document).
                FileHandle.standardError.write(Data((report.summary + "\n").utf8))
                for i in report.skipped + report.notes { FileHandle.standardError.write(Data("- \(i)\n".utf8)) }
            }
            do {
                if cmd.flag("--json") && !cmd.flag("--yes") && !cmd.flag("--dry-run") && cmd.value("--confirm") == nil
                    && (cmd.path == ["package", "load"] || cmd.path == ["rollback"] || cmd.path == ["self-update"]) {
                    throw CaissonError("usage.json_needs_yes", "--json never prompts: add --yes to '\(cmd.path.joined(separator: " "))' (or --dry-run to see the plan)")
                }
                // A command that needs the container host: docker.unreachable (exit 1) before
                // anything is done, not even the state directory's lock or the Rust import.
                if options.host == .docker && Self.needsHost.contains(cmd.path) { _ = try app.host() }
                // The first use of a Rust caisson state directory imports it (issue 11 item 1).
                if !Self.stateless.contains(cmd.path) { try app.importRustStateIfNeeded() }
                if let frontEnd = frontEnds.first(where: { $0.commands.contains { $0.path == cmd.path } }) {
                    return try frontEnd.run(cmd, app, CLIPrinter(json: out.json, quiet: out.quiet))
                }
                return try run(cmd, app: app, out: out)
            } catch {
                if out.json {
                    out.failure(Issue((error as? CaissonError)?.code ?? "error", error.message))
                } else if let e = error as? CaissonError {
                    out.error("[\(e.code)] \(e.message)")
                } else {
                    out.error(error.message)
                }
                return 1
            }
        }
    }

    /// Commands that do not use the state directory (no import of a Rust state on their account).
    /// The commands that change or inspect the container host (FORMATS §5: Docker unreachable is
    /// exit 1 with docker.unreachable, checked before any change). `package build --image` checks
    /// it itself (`--from-tar` needs no daemon); the read-only commands (service, history,
    /// package validate) work without it and say what they could not check; `package cleanup`
    /// still empties staging/ without it, as the Rust tool's did, and lists the rest as a problem.
    static let needsHost: [[String]] = [["package", "load"], ["rollback"], ["recover"]]

    static let stateless: [[String]] = [["demo"], ["sim", "swarm"], ["key", "generate"], ["package", "build"], ["migrate"]]

    struct ErrorDocument: Encodable {
        struct Body: Encodable { var code: String; var message: String }
        var error: Body
    }

    static func run(_ cmd: ParsedCommand, app: Application, out: Output) throws -> Int32 {
        switch cmd.path {
        case ["self-update"]:
            return try runSelfUpdate(cmd, app: app, out: out)

        case ["self-test"]:
            return runSelfTest(cmd, app: app, out: out)

        case ["package", "build"] where cmd.value("--updater") != nil:
            return try buildUpdater(cmd, app: app, out: out)

        case ["package", "validate"]:
            showInProgress(try app.recoverIfNeeded(), out: out)
            if let rc = try validateIfUpdater(cmd.positionals[0], app: app, out: out) { return rc }
            var flags = Application.LoadFlags()
            flags.reinstall = cmd.flag("--reinstall")
            flags.allowDowngrade = cmd.flag("--allow-downgrade")
            flags.start = cmd.flag("--start")
            if !out.json { out.line("Validating package...") }
            let v = try app.validateLikeLoad(cmd.positionals[0], flags: flags)
            printValidation(v, out: out)
            return v.report.status == .accepted ? 0 : 2

        case ["package", "load"]:
            var flags = Application.LoadFlags()
            flags.dryRun = cmd.flag("--dry-run")
            flags.reinstall = cmd.flag("--reinstall")
            flags.allowDowngrade = cmd.flag("--allow-downgrade")
            flags.recreateDependents = cmd.flag("--recreate-dependents")
            flags.start = cmd.flag("--start")
            if cmd.flag("--stage") && cmd.flag("--no-stage") {
                throw CaissonError("usage.invalid", "--stage and --no-stage cannot be used together")
            }
            flags.staging = cmd.flag("--stage") ? .always : cmd.flag("--no-stage") ? .never : .auto
            let receiptDir = cmd.value("--receipt")
            if receiptDir != nil { _ = try app.deviceID() }  // no device key: say so before loading
            let yes = cmd.flag("--yes")
            // The Rust tool's blocks in its order: the validation, (the plan,) the prompt, the
            // image import, the update result.
            if !out.json { out.line("Validating package...") }
            let validated = Box<Application.ValidationOutcome?>(nil)
            app.onValidated = { validated.value = $0 }
            let outcome = try app.load(cmd.positionals[0], flags: flags, confirm: { plan in
                if !out.json {
                    if let v = validated.value { printValidationText(v, out: out) }
                    printPlan(plan, out: out)
                }
                let go = yes || prompt("Continue and update the service? [y/N]: ", toStderr: out.json)
                if go && !out.json { out.line("Importing image into Docker...") }
                return go
            })
            printLoad(outcome, dryRun: flags.dryRun, app: app, out: out)
            if let receiptDir { writeLoadReceipt(outcome, dryRun: flags.dryRun, directory: receiptDir, app: app, out: out) }
            return outcome.exitCode

        case ["package", "cleanup"]:
            var keep: Int?
            if let k = cmd.value("--keep") {
                guard let n = Int(k), n >= 0 else { throw CaissonError("usage.invalid_number", "--keep must be a number of releases (0 or more), not '\(k)'") }
                keep = n
            }
            let r = try app.cleanup(keep: keep, ignoreInventory: cmd.flag("--ignore-inventory"))
            let rc: Int32 = r.problems.isEmpty ? 0 : 1
            if out.json { out.result(r, status: rc == 0 ? "ok" : "incomplete", issues: r.problems, exitCode: rc); return rc }
            printCleanup(r, out: out)
            return rc

        case ["key", "generate"] where cmd.flag("--device"):
            return try keyGenerateDevice(cmd, app: app, out: out)

        case ["key", "generate"] where cmd.value("--age") != nil:
            guard cmd.positionals.isEmpty else {
                throw CaissonError("usage.invalid", "'caisson key generate --age PATH' takes no NAME")
            }
            let path = cmd.value("--age")!
            let id = try app.generateAgeIdentity(path: path, force: cmd.flag("--force"))
            if out.json {
                out.result(["identity_file": path, "recipient": id.recipient.text], status: "ok", exitCode: 0)
            } else {
                out.line(id.recipient.text)
                out.notice("Age identity written to \(path) (mode 0600; keep it on this device only).", always: true)
                out.notice("Add to the device catalog:  [trust] age_identities = [\"\(path)\"]", always: true)
                out.notice("Build packages for it with:  caisson package build ... --encrypt-to \(id.recipient.text)", always: true)
            }
            return 0

        case ["package", "decrypt"]:
            guard let dir = cmd.value("--output") else {
                throw CaissonError("usage.missing_option", "'caisson package decrypt' needs --output DIR")
            }
            let ids = cmd.values("--identity")
            guard !ids.isEmpty || !(ProcessInfo.processInfo.environment[Application.agePassphraseVariable] ?? "").isEmpty else {
                throw CaissonError("usage.missing_option", "'caisson package decrypt' needs -i IDENTITY_FILE (or a passphrase in \(Application.agePassphraseVariable))")
            }
            do {
                let r = try app.decryptPackage(cmd.positionals[0], identityFiles: ids, directory: dir)
                if out.json { out.result(r, status: "ok", exitCode: 0); return 0 }
                out.line("Decrypted into \(r.outputDirectory): \(r.files.joined(separator: ", "))")
                out.line("image.tar: \(Format.bytes(r.imageSize)), SHA-256 \(r.imageSHA256)\(r.manifestDigestMatches == true ? " (matches the manifest)" : "")")
                return 0
            } catch let e as CaissonError where e.code.hasPrefix("encryption.") && e.code != "encryption.identity_unreadable" || e.code == "image.checksum_mismatch" {
                if out.json {
                    out.failure(e.issue, exitCode: 2)
                } else {
                    out.error("[\(e.code)] \(e.message)")
                }
                return 2
            }

        case ["key", "generate"]:
            guard let name = cmd.positionals.first else {
                throw CaissonError("usage.invalid", "'caisson key generate' needs NAME (or --age PATH)")
            }
            let (sec, pub) = (name + ".key", name + ".pub")
            for f in [sec, pub] where FileManager.default.fileExists(atPath: f) && !cmd.flag("--force") {
                throw CaissonError("key.exists", "\(f) already exists (use --force to overwrite)")
            }
            let password = ProcessInfo.processInfo.environment["CAISSON_KEY_PASSWORD"]
            guard cmd.flag("--unencrypted") || !(password ?? "").isEmpty else {
                throw CaissonError("key.password_required", "set CAISSON_KEY_PASSWORD to encrypt the secret key, or pass --unencrypted")
            }
            let pair = try KeyPair.generate()
            let secretText = cmd.flag("--unencrypted") ? pair.secretKey.fileContents() : try pair.secretKey.encryptedFileContents(password: password!)
            // The secret is 0600 from its first byte: created with that mode (never chmod-ed after).
            try SecretFile.write(sec, Array(secretText.utf8), mode: 0o600, replace: cmd.flag("--force"))
            try SecretFile.write(pub, Array(pair.publicKey.fileContents.utf8), mode: 0o644, replace: cmd.flag("--force"))
            if out.json {
                out.result(["secret_key": sec, "public_key_file": pub, "public_key": pair.publicKey.base64], status: "ok", exitCode: 0)
            } else {
                out.line("Secret key: \(sec)\(cmd.flag("--unencrypted") ? " (unencrypted: keep it safe)" : "")")
                out.line("Public key: \(pub)")
                out.line("Add to the device catalog:")
                out.line("[trust]")
                out.line("public_keys = [\"\(pair.publicKey.base64)\"]")
                out.line("require_signature = true")
            }
            return 0

        case ["package", "build"]:
            guard let service = cmd.value("--service"), let version = cmd.value("--version") else {
                throw CaissonError("usage.missing_option", "'caisson package build' needs --service NAME and --version V")
            }
            guard (cmd.value("--image") == nil) != (cmd.value("--from-tar") == nil) else {
                throw CaissonError("usage.image_source", "'caisson package build' needs exactly one of --image REF and --from-tar FILE")
            }
            var request = Application.BuildRequest(service: service, version: version, imageReference: cmd.value("--image"),
                                                   fromTar: cmd.value("--from-tar"), output: cmd.value("--output"),
                                                   createdAt: cmd.value("--created-at"), signingKey: cmd.value("--sign"),
                                                   signingKeyPassword: ProcessInfo.processInfo.environment["CAISSON_KEY_PASSWORD"],
                                                   encryption: try encryptionOptions(cmd), against: cmd.value("--against"),
                                                   deviceKey: cmd.value("--device-key"))
            if let c = cmd.value("--compress") {
                guard let compression = ImageCompression(rawValue: c) else {
                    throw CaissonError("usage.invalid_value", "--compress takes gzip or none, not \(c)")
                }
                request.compress = compression
            }
            let b = try app.build(request)
            let accepted = b.validation.report.status == .accepted
            if out.json {
                out.result(BuildDocument(output: b.output, validation: b.validation.record,
                                         manifest: b.validation.report.manifest.map(ManifestDocument.init),
                                         signature: b.validation.signature, thin: b.thin),
                           status: accepted ? "accepted" : "rejected", issues: b.validation.record.issues, exitCode: accepted ? 0 : 2)
            } else {
                out.line("Wrote \(b.output) (\(Format.bytes(b.validation.record.packageSize ?? 0)))")
                printThinBuild(b.thin, out: out)
                out.line("")
                printValidation(b.validation, out: out)
            }
            return accepted ? 0 : 2

        case ["service", "list"]:
            let gate = try app.recoverIfNeeded()
            let views = try app.services()
            if out.json { out.result(ServicesDocument(services: views, inProgress: gate.inProgress), status: "ok", exitCode: 0); return 0 }
            showInProgress(gate, out: out)
            printServiceList(views, app: app, out: out)
            return 0

        case ["service", "show"]:
            showInProgress(try app.recoverIfNeeded(), out: out)
            guard let v = try app.services().first(where: { $0.name == cmd.positionals[0] }) else {
                throw CaissonError("service.unknown", "service \(cmd.positionals[0]) is not in the catalog")
            }
            if out.json { out.result(v, status: "ok", exitCode: 0); return 0 }
            printServiceShow(v, app: app, out: out)
            return 0

        case ["history", "list"]:
            let gate = try app.recoverIfNeeded()
            var limit = 20
            if let l = cmd.value("--limit") {
                guard let n = Int(l), n >= 0 else { throw CaissonError("usage.invalid_limit", "--limit must be a number (0 or more), not '\(l)'") }
                limit = n
            }
            let list = try app.store().updateAttempts(service: cmd.value("--service"), limit: limit)
            let selfUpdates = cmd.value("--service") == nil ? try app.store().selfUpdates(limit: limit).records : []
            if out.json {
                out.result(SelfUpdateHistoryDocument(attempts: list.records, selfUpdates: selfUpdates, inProgress: gate.inProgress),
                           status: "ok", issues: list.unreadable.map(\.issue), exitCode: 0)
                return 0
            }
            showInProgress(gate, out: out)
            printHistoryList(list, app: app, out: out)
            printSelfUpdateHistory(selfUpdates, out: out)
            return 0

        case ["history", "show"]:
            showInProgress(try app.recoverIfNeeded(), out: out)
            guard let detail = try app.attemptDetail(cmd.positionals[0]) else {
                if let rc = try showSelfUpdate(cmd.positionals[0], app: app, out: out) { return rc }
                throw CaissonError("history.unknown_id", "no update attempt has id \(cmd.positionals[0])")
            }
            let events = detail.events.map(\.event)
            if out.json {
                out.result(AttemptDocument(attempt: detail.attempt, auditEvents: events, evidence: detail.evidence),
                           status: "ok", exitCode: 0)
                return 0
            }
            printHistoryShow(detail.attempt, events: events, app: app, out: out)
            printEvidence(detail.evidence, out: out)
            for n in detail.notes { out.line("  note: \(n)") }
            return 0

        case ["history", "verify"]:
            let store = try app.store()
            let integrity = try store.integrityProblems(full: true)
            let report = try store.verifyAuditChain()
            let records = try store.verifyRecordChain()
            let ok = report.firstBreak == nil && integrity.isEmpty && records.isIntact
            if out.json {
                var issues: [Issue] = integrity.map { Issue("store.corrupt", $0) }
                if let b = report.firstBreak { issues.append(Issue("history.chain_broken", "\(b)")) }
                issues += records.problems.map { Issue("history.records_changed", $0) }
                out.result(ChainDocument(checked: report.checked, ok: ok, firstBreak: report.firstBreak.map { "\($0)" },
                                         integrityProblems: integrity, recordsChecked: records.records, recordProblems: records.problems),
                           status: ok ? "intact" : "broken", issues: issues, exitCode: ok ? 0 : 1)
                return ok ? 0 : 1
            }
            if integrity.isEmpty {
                out.line("Database: sound (integrity check)")
            } else {
                out.line("Database: DAMAGED")
                for p in integrity.prefix(20) { out.line("- \(p)") }
            }
            if let b = report.firstBreak {
                out.line("Audit log: BROKEN after checking \(report.checked) events")
                out.line("- \(b)")
            } else {
                out.line("Audit log: intact (\(report.checked) events checked)")
            }
            if records.isIntact {
                out.line("Records: intact (\(records.records) update attempts and service states, \(records.links) links checked)")
            } else {
                out.line("Records: CHANGED OUTSIDE CAISSON")
                for p in records.problems.prefix(20) { out.line("- \(p)") }
            }
            return ok ? 0 : 1

        case ["rollback"]:
            let yes = cmd.flag("--yes")
            guard let a = try app.rollback(service: cmd.positionals[0], recreateDependents: cmd.flag("--recreate-dependents"), confirm: { question in
                if yes { return true }
                if out.json { out.notice(question, always: true) } else { out.line(question) }
                return prompt("Continue and roll back the service? [y/N]: ", toStderr: out.json)
            }) else {
                if out.json { out.result(Empty(), status: "declined", exitCode: 3) } else { out.line("Rollback declined; nothing was changed.") }
                return 3
            }
            if out.json {
                out.result(["attempt": a], status: a.status.rawValue, issues: a.issues, exitCode: exitCode(for: a.status))
            } else {
                printAttempt(a, app: app, out: out)
            }
            return exitCode(for: a.status)

        case ["recover"]:
            let gate = try app.recoverIfNeeded()
            if let busy = gate.inProgress {
                // Its owner is alive: not interrupted, and not ours to touch.
                if out.json {
                    out.result(RecoverDocument(recovered: [], problems: [], inProgress: busy), status: "in_progress", exitCode: 0)
                    return 0
                }
                out.line("Nothing to recover now: another Caisson process is running an operation; nothing was changed.")
                for l in busy.lines { out.line(l) }
                return 0
            }
            var report = gate.report
            // Another state directory's update cannot be recovered from here: one that runs is
            // shown (its process, by the service's host-wide lock), one left unfinished is a problem.
            let foreign = try? app.foreignActivity()
            report.problems += foreign?.leftovers ?? []
            let elsewhere = foreign?.live ?? []
            if out.json {
                let rc: Int32 = report.problems.isEmpty ? 0 : 5
                let busy = elsewhere.first.map { OperationInProgress(holder: $0, attempts: []) }
                out.result(RecoverDocument(recovered: report.recovered, problems: report.problems, inProgress: busy),
                           status: rc != 0 ? "needs_attention" : busy != nil && report.recovered.isEmpty ? "in_progress" : "ok",
                           issues: report.problems, exitCode: rc)
                return rc
            }
            for h in elsewhere {
                out.line("In progress elsewhere: another Caisson on this host is changing a service now, with another state directory: \(h.description). Nothing was changed; run `caisson recover` with that state directory if it stops.")
            }
            if report.recovered.isEmpty && report.problems.isEmpty && elsewhere.isEmpty {
                out.line("Nothing to recover: no update was interrupted.")
            }
            for a in report.recovered {
                out.line("Recovered update \(a.updateID) of \(a.serviceName): \(a.status.rawValue)")
                for i in a.issues { out.line("- \(i)") }
            }
            for p in report.problems { out.line("- \(p)") }
            return report.problems.isEmpty ? 0 : 5

        case ["demo"]:
            if let dir = cmd.value("--prepare") {
                let files = try Demo.prepare(dir: dir)
                if out.json { out.result(["files": files], status: "ok", exitCode: 0) } else { files.forEach { out.line($0) } }
                return 0
            }
            if out.json {
                // The narration goes to stderr; stdout gets the outcome as one document.
                fflush(nil)
                let saved = dup(1)
                dup2(2, 1)
                let result = Result { try Demo.run(say: { print($0) }, keep: cmd.flag("--keep")) }
                fflush(nil)
                dup2(saved, 1)
                close(saved)
                let rc = try result.get()
                out.result(DemoDocument(ok: rc == 0), status: rc == 0 ? "ok" : "failed", exitCode: rc)
                return rc
            }
            return try Demo.run(say: { out.line($0) }, keep: cmd.flag("--keep"))

        case ["sim", "swarm"] where cmd.flag("--self-update"):
            return try runSelfUpdateSwarm(cmd, out: out)

        case ["sim", "swarm"] where cmd.value("--run-seed") != nil:
            guard let runSeed = UInt64(cmd.value("--run-seed") ?? "") else {
                throw CaissonError("usage.invalid_number", "--run-seed takes a non-negative integer")
            }
            let (scenario, problems) = Swarm.runOne(runSeed: runSeed, recordTrace: true)
            let rc: Int32 = problems.isEmpty ? 0 : 1
            if out.json {
                out.result(["scenario": scenario.config.description, "status": scenario.attempt?.status.rawValue ?? "none",
                            "expected": scenario.lastExpectation?.description ?? ""],
                           status: problems.isEmpty ? "ok" : "violations", issues: problems.map { Issue("swarm.violation", $0) }, exitCode: rc)
            } else {
                out.line("Run seed \(runSeed): \(scenario.config)\(scenario.thinImport.map { "/\($0)" } ?? "")")
                out.line("  ended: \(scenario.attempt?.status.rawValue ?? "no record") \(scenario.attempt?.issues.map(\.code) ?? [])")
                out.line("  expected: \(scenario.lastExpectation?.description ?? "?")")
                for n in scenario.lastExpectation?.notes ?? [] { out.line("  note: \(n)") }
                for p in problems { out.line("- \(p)") }
                out.line("Trace:")
                for t in scenario.host.trace { out.line("  \(t)") }
            }
            return rc

        case ["sim", "swarm"]:
            let runs = Int(cmd.value("--runs") ?? "1000") ?? -1
            let seed = UInt64(cmd.value("--seed") ?? "1")
            guard runs > 0, let seed else { throw CaissonError("usage.invalid_number", "--runs and --seed take non-negative integers") }
            let start = ContinuousClock.now
            var summary = Swarm.run(runs: runs, seed: seed, disruptions: !cmd.flag("--no-disruptions"))
            let elapsed = ContinuousClock.now - start
            let secs = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            summary.runsPerSecond = secs > 0 ? (Double(runs) / secs).rounded() : nil
            if out.json {
                out.result(summary, status: summary.violations == 0 ? "ok" : "violations",
                           issues: summary.firstViolation.map { v in v.problems.map { Issue("swarm.violation", $0) } } ?? [],
                           exitCode: summary.violations == 0 ? 0 : 1)
            } else {
                out.line("Swarm: \(summary.runs) runs, seed \(summary.seed), \(summary.violations) violation(s)")
                out.line("  outcomes: " + summary.statuses.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
                out.line("  updater crashes recovered: \(summary.crashes); host calls: \(summary.hostCalls)")
                out.line("  thin packages: \(summary.thinPackages) (refused, base missing: \(summary.basesMissing))")
                out.line("  second processes: \(summary.secondProcesses); signals: \(summary.signals); state disk full or deleted: \(summary.storageFaults) (recovered while still full: \(summary.fullDiskRecoveries)); another Caisson's marks (Compose): \(summary.foreignMarks)")
                out.line("  encrypted packages: \(summary.encryptedPackages) (refused, damaged, cut short, another device's or changed after validation: \(summary.encryptedRefused))")
                out.line("  \(Int(summary.runsPerSecond ?? 0)) runs/s; trace digest \(summary.traceDigest)")
                if let v = summary.firstViolation {
                    out.line("First violation: run \(v.run), seed \(v.seed) (\(v.scenario)); replay: caisson --host sim sim swarm --run-seed \(v.seed)")
                    for p in v.problems { out.line("- \(p)") }
                    out.line("Trace:")
                    for t in v.trace { out.line("  \(t)") }
                }
            }
            return summary.violations == 0 ? 0 : 1

        case ["migrate"]:
            guard let r = try app.migrate() else {
                if out.json { out.result(Empty(), status: "nothing_to_import", exitCode: 0) } else {
                    out.line("No Rust caisson state in \(app.stateDir): nothing to import.")
                }
                return 0
            }
            let rc: Int32 = r.skipped.isEmpty ? 0 : 1
            if out.json {
                out.result(["migration": r], status: rc == 0 ? "imported" : "imported_with_skips", issues: r.skipped, exitCode: rc)
            } else {
                printMigration(r, out: out)
            }
            return rc

        case ["inventory", "export"], ["inventory", "verify"], ["receipt", "export"], ["receipt", "verify"]:
            return try runRoundTrip(cmd, app: app, out: out)

        default:
            throw CaissonError("usage.unknown_command", "unknown command")
        }
    }

    struct AttemptDocument: Encodable {
        var attempt: UpdateAttempt
        var auditEvents: [AuditEvent]
        /// Failure evidence (issue 12).
        var evidence: [FailureEvidence]
        enum CodingKeys: String, CodingKey {
            case attempt, evidence
            case auditEvents = "audit_events"
        }
    }

    struct ChainDocument: Encodable {
        var checked: Int
        var ok: Bool
        var firstBreak: String?
        var integrityProblems: [String] = []
        var recordsChecked: Int = 0
        var recordProblems: [String] = []
        enum CodingKeys: String, CodingKey {
            case checked, ok
            case firstBreak = "first_break"
            case integrityProblems = "integrity_problems"
            case recordsChecked = "records_checked"
            case recordProblems = "record_problems"
        }
    }

    struct RecoverDocument: Encodable {
        var recovered: [UpdateAttempt]
        var problems: [Issue]
        var inProgress: OperationInProgress?
        enum CodingKeys: String, CodingKey {
            case recovered, problems
            case inProgress = "in_progress"
        }
    }

    struct ServicesDocument: Encodable {
        var services: [Application.ServiceView]
        var inProgress: OperationInProgress?
        enum CodingKeys: String, CodingKey {
            case services
            case inProgress = "in_progress"
        }
    }

    struct HistoryDocument: Encodable {
        var attempts: [UpdateAttempt]
        var inProgress: OperationInProgress?
        enum CodingKeys: String, CodingKey {
            case attempts
            case inProgress = "in_progress"
        }
    }

    /// A command that found another process's update running says so (and changed nothing).
    static func showInProgress(_ gate: RecoveryGate.Outcome, out: Output) {
        guard let busy = gate.inProgress, !out.json else { return }
        for l in busy.lines { out.line(l) }
        out.line("(another Caisson process is running it; this command changed nothing)")
        out.line("")
    }

    struct DemoDocument: Encodable {
        var ok: Bool
    }

    /// The manifest as FORMATS §2 names its fields (snake_case, like every JSON document).
    struct ManifestDocument: Encodable {
        struct Target: Encodable {
            var service, serviceRevision, platform: String
            enum CodingKeys: String, CodingKey {
                case service, platform
                case serviceRevision = "service_revision"
            }
        }
        struct Image: Encodable {
            var reference: String
            var sha256: String?
            var size: Int64?
        }
        struct Compatibility: Encodable {
            var minUpdaterVersion: String?
            enum CodingKeys: String, CodingKey { case minUpdaterVersion = "min_updater_version" }
        }
        var formatVersion: Int
        var packageType: String
        var packageVersion: String
        var createdAt: String
        var target: Target
        var image: Image
        var compatibility: Compatibility

        init(_ m: Manifest) {
            formatVersion = m.formatVersion
            packageType = m.packageType
            packageVersion = m.packageVersion
            createdAt = m.createdAt
            target = Target(service: m.target.service, serviceRevision: m.target.serviceRevision, platform: m.target.platform)
            image = Image(reference: m.image.reference, sha256: m.image.sha256, size: m.image.size)
            compatibility = Compatibility(minUpdaterVersion: m.minUpdaterVersion)
        }

        enum CodingKeys: String, CodingKey {
            case target, image, compatibility
            case formatVersion = "format_version"
            case packageType = "package_type"
            case packageVersion = "package_version"
            case createdAt = "created_at"
        }
    }

    struct BuildDocument: Encodable {
        var output: String
        var validation: ValidationRecord
        var manifest: ManifestDocument?
        var signature: Application.SignatureVerdict
        var thin: Application.ThinBuildSummary? = nil
    }

    struct ValidationDocument: Encodable {
        var validation: ValidationRecord
        var manifest: ManifestDocument?
        var signature: Application.SignatureVerdict
    }

    struct PlanDocument: Encodable {
        var service: String
        var runtimeMode: String
        var currentImage: String
        var currentImageID: String?
        var currentVersion: String?
        var currentVersionSource: String?
        var newImage: String
        var newImageID: String
        var newVersion: String
        var bytesToLoad: Int64
        var staysStopped: Bool
        var stopGraceSecs: Int?
        var steps: [String]

        init(_ p: Application.LoadPlan) {
            service = p.service.name
            runtimeMode = p.service.runtimeMode.rawValue
            currentImage = p.currentImage
            currentImageID = p.currentImageID
            currentVersion = p.currentVersion
            currentVersionSource = p.currentVersionSource
            newImage = p.newImage
            newImageID = p.newImageID
            newVersion = p.newVersion
            bytesToLoad = p.bytesToLoad
            staysStopped = p.staysStopped
            stopGraceSecs = p.stopGraceSecs
            steps = p.steps
        }

        enum CodingKeys: String, CodingKey {
            case service, steps
            case runtimeMode = "runtime_mode"
            case currentImage = "current_image"
            case currentImageID = "current_image_id"
            case currentVersion = "current_version"
            case currentVersionSource = "current_version_source"
            case newImage = "new_image"
            case newImageID = "new_image_id"
            case newVersion = "new_version"
            case bytesToLoad = "bytes_to_load"
            case staysStopped = "stays_stopped"
            case stopGraceSecs = "stop_grace_secs"
        }
    }

    struct LoadDocument: Encodable {
        var validation: ValidationRecord
        var signature: Application.SignatureVerdict
        var plan: PlanDocument?
        var attempt: UpdateAttempt?
        /// Failure evidence (issue 12): what the failed containers left behind.
        var evidence: [FailureEvidence]
    }

    static func exitCode(for status: UpdateStatus) -> Int32 { status.exitCode }

    /// The Rust tool's prompt: only y/yes go on; anything else, an empty line or EOF declines.
    /// With `--json` the question goes to stderr, so stdout stays one JSON document.
    /// Ctrl-C or SIGTERM while it waits is "no" too.
    static func prompt(_ question: String, toStderr: Bool = false) -> Bool {
        fflush(nil)
        let sink = toStderr ? FileHandle.standardError : FileHandle.standardOutput
        sink.write(Data(question.utf8))
        let watch = SignalWatch.shared
        let before = watch.phase
        watch.phase = .prompt
        defer { watch.phase = before }
        guard let answer = readAnswerLine(stopIf: { watch.requested }) else {
            sink.write(Data("\n".utf8))
            return false
        }
        let a = answer.trimmingCharacters(in: .whitespaces).lowercased()
        return a == "y" || a == "yes"
    }

    /// `--encrypt-to`, `--encrypt-passphrase` (the passphrase only from the environment) and
    /// `--encrypt-work-factor` of `package build`.
    static func encryptionOptions(_ cmd: ParsedCommand) throws -> (to: [String], passphrase: String?, workFactor: Int) {
        var passphrase: String?
        if cmd.flag("--encrypt-passphrase") {
            guard let p = ProcessInfo.processInfo.environment[Application.agePassphraseVariable], !p.isEmpty else {
                throw CaissonError("usage.missing_passphrase", "--encrypt-passphrase reads the passphrase from \(Application.agePassphraseVariable), which is not set")
            }
            passphrase = p
        }
        var workFactor = AgeScrypt.defaultWorkFactor
        if let w = cmd.value("--encrypt-work-factor") {
            guard let n = Int(w), n >= 1, n <= 30 else {
                throw CaissonError("usage.invalid_number", "--encrypt-work-factor must be from 1 to 30, not '\(w)'")
            }
            workFactor = n
        }
        return (cmd.values("--encrypt-to"), passphrase, workFactor)
    }

    /// One line from stdin (without its newline), read a byte at a time so nothing past the line
    /// is consumed; nil at EOF, on a read error, or once `stopIf` says so (checked every 100 ms).
    static func readAnswerLine(stopIf: () -> Bool) -> String? {
        var bytes: [UInt8] = []
        while true {
            if stopIf() { return nil }
            var fds = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
            let ready = poll(&fds, 1, 100)
            if ready < 0 {
                if errno == EINTR { continue }
                return nil
            }
            if ready == 0 { continue }
            var byte: UInt8 = 0
            let n = read(0, &byte, 1)
            if n < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return nil
            }
            if n == 0 { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if byte == 0x0A {
                if bytes.last == 0x0D { bytes.removeLast() }
                return String(decoding: bytes, as: UTF8.self)
            }
            bytes.append(byte)
            if bytes.count > 4096 { return String(decoding: bytes, as: UTF8.self) }
        }
    }

    static func printValidation(_ v: Application.ValidationOutcome, out: Output) {
        if out.json {
            let accepted = v.record.status == .accepted
            out.result(ValidationDocument(validation: v.record, manifest: v.report.manifest.map(ManifestDocument.init), signature: v.signature),
                       status: accepted ? "accepted" : "rejected", issues: v.record.issues, exitCode: accepted ? 0 : 2)
            return
        }
        printValidationText(v, out: out)
    }

    /// What runs now: one line per container, then any drift from what Caisson recorded.
    static func printLive(_ live: Application.LiveState, out: Output, indent: String) {
        if let error = live.error {
            out.line("\(indent)live state unavailable: \(error)")
            return
        }
        for c in live.containers {
            out.line("\(indent)\(c.name): \(c.status)\(c.health == "none" ? "" : ", \(c.health)"), image \(c.imageReference) (\(Format.shortID(c.imageID)))\(c.since.map { ", since \($0)" } ?? "")")
        }
        for d in live.drift { out.line("\(indent)DRIFT: \(d)") }
    }

    static func printPlan(_ p: Application.LoadPlan, out: Output) {
        out.line("")
        out.line("Update plan")
        out.line("Service: \(p.service.name) (\(p.service.runtimeMode.rawValue))")
        out.line("Current image: \(p.currentImage)")
        out.line("New image: \(p.newImage) (\(Format.shortID(p.newImageID)))")
        let source = p.currentVersionSource.map { $0 == "recorded by Caisson" ? "" : " (from the \($0))" } ?? ""
        out.line("Version: \(p.currentVersion ?? "unknown")\(source) -> \(p.newVersion)")
        if p.staysStopped { out.line("The service is stopped: the new release is installed but not started (use --start to start it).") }
        out.line("Bytes to load: \(Format.bytes(p.bytesToLoad))")
        if let g = p.stopGraceSecs { out.line("Stop timeout: \(g)s between SIGTERM and SIGKILL for the current container") }
        if !p.networkDependents.isEmpty { out.line("Sharing its network: \(p.networkDependents.joined(separator: ", "))") }
        if let f = p.freeDiskState { out.line("Free disk (state directory): \(Format.bytes(f))") }
        if let st = p.imageStorage {
            out.line("Free disk (image storage \(st.path)): \(Format.bytes(st.freeBytes)), the load needs about \(Format.bytes(st.neededBytes))")
        }
        out.line("Steps:")
        for (i, s) in p.steps.enumerated() { out.line("  \(i + 1). \(s)") }
    }

    static func printLoad(_ o: Application.LoadOutcome, dryRun: Bool, app: Application, out: Output) {
        if out.json {
            var issues = o.validation.record.issues
            for i in [o.refusal, o.importIssue, o.preflightIssue].compactMap({ $0 }) where !issues.contains(i) { issues.append(i) }
            if let a = o.attempt { issues += a.issues.filter { !issues.contains($0) } }
            let status: String
            if let c = o.cancelled { issues.append(c) }
            if o.cancelled != nil { status = "cancelled" }
            else if o.validation.report.status == .rejected || o.refusal != nil { status = "rejected" }
            else if o.preflightIssue != nil { status = "refused" }
            else if o.declined { status = "declined" }
            else if dryRun && o.attempt == nil { status = "planned" }
            else if o.importIssue != nil { status = "import_failed" }
            else { status = o.attempt?.status.rawValue ?? "unknown" }
            out.result(LoadDocument(validation: o.validation.record, signature: o.validation.signature,
                                    plan: o.plan.map(PlanDocument.init), attempt: o.attempt, evidence: o.evidence),
                       status: status, issues: issues, exitCode: o.exitCode)
            return
        }
        if let c = o.cancelled {
            out.line("Stopped; the service was not changed.")
            out.line("- \(c)")
            return
        }
        if o.validation.report.status == .rejected {
            printValidation(o.validation, out: out)
            return
        }
        if let r = o.refusal {
            var v = o.validation
            if !v.record.issues.contains(r) { v.record.issues.append(r) }
            v.record.status = .rejected
            printValidationText(v, out: out)
            return
        }
        if let i = o.preflightIssue {
            if let p = o.plan { printPlan(p, out: out) }
            out.error("\(i)\(i.message.hasSuffix("nothing was changed") ? "" : "; nothing was changed")")
            return
        }
        if o.declined {
            out.line("Cancelled before changing the service.")
            return
        }
        if dryRun {
            printValidationText(o.validation, out: out)
            if let p = o.plan { printPlan(p, out: out) }
            out.line("Dry run: nothing was changed.")
            return
        }
        let manifest = o.validation.report.manifest
        if let i = o.importIssue {
            out.line("Image import")
            out.line("Status: failed")
            if let m = manifest { out.line("Service: \(m.target.service)"); out.line("Image: \(m.image.reference)") }
            printIssues([i], out: out)
            out.line("Image import failed; the service was not touched.")
            return
        }
        if let id = o.importedImageID, let m = manifest {
            out.line("Image import")
            out.line("Status: imported")
            out.line("Service: \(m.target.service)")
            out.line("Image: \(m.image.reference)")
            out.line("Imported image id: \(id)")
            out.line("Issues: none")
        }
        if let a = o.attempt {
            out.line("Applying update...")
            printAttempt(a, app: app, out: out)
            if !o.evidence.isEmpty {
                printEvidence(o.evidence, out: out, tailLines: 10)
                out.line("All of it: caisson history show \(a.updateID)")
            }
        }
    }
}

/// Commands of another front end (the console) run by `caisson`.
public struct CLIFrontEnd: Sendable {
    public var commands: [CommandSpec]
    public var run: @Sendable (ParsedCommand, Application, CLIPrinter) throws -> Int32

    public init(commands: [CommandSpec], run: @escaping @Sendable (ParsedCommand, Application, CLIPrinter) throws -> Int32) {
        self.commands = commands
        self.run = run
    }
}

/// The CLI's output conventions for a front end's command: documents and lines on stdout,
/// progress and notices on stderr.
public struct CLIPrinter: Sendable {
    public let json: Bool
    public let quiet: Bool

    public func line(_ s: String = "") {
        print(s)
        fflush(nil)
    }

    public func progress(_ s: String) {
        guard !quiet else { return }
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }

    public func document<T: Encodable>(_ value: T) { print(JSONCoding.string(value, pretty: true)) }
}
