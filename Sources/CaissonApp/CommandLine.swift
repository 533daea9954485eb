import Foundation

/// A small declarative command-line parser in swift-argument-parser's vocabulary: a command tree,
/// `--help` on every node, global options accepted before or after the subcommand, and usage
/// errors that name the problem.
public struct OptionSpec: Sendable {
    public var name: String          // "--limit"
    public var short: String?        // "-y"
    public var valueName: String?    // "N" (nil: a flag)
    public var help: String

    public init(_ name: String, short: String? = nil, value: String? = nil, help: String) {
        self.name = name
        self.short = short
        self.valueName = value
        self.help = help
    }
}

public struct CommandSpec: Sendable {
    public var path: [String]
    public var summary: String
    public var discussion: String
    public var positionals: [(name: String, help: String, optional: Bool)]
    public var options: [OptionSpec]

    public init(_ path: [String], summary: String, discussion: String = "",
                positionals: [(name: String, help: String, optional: Bool)] = [], options: [OptionSpec] = []) {
        self.path = path
        self.summary = summary
        self.discussion = discussion
        self.positionals = positionals
        self.options = options
    }
}

public struct ParsedCommand: Sendable {
    public var path: [String]
    public var positionals: [String]
    public var values: [String: String]
    public var flags: Set<String>
    public var globals: [String: String]
    public var globalFlags: Set<String>

    /// Every value given to an option that may be repeated (`--encrypt-to A --encrypt-to B`), in order.
    public var repeatedValues: [String: [String]] = [:]

    public func value(_ name: String) -> String? { values[name] }
    public func values(_ name: String) -> [String] { repeatedValues[name] ?? [] }
    public func flag(_ name: String) -> Bool { flags.contains(name) || globalFlags.contains(name) }
}

public enum ParseOutcome: Sendable {
    case run(ParsedCommand)
    case help(String)
    case version
    case usageError(String)
}

public struct CommandLineParser: Sendable {
    public var tool: String
    public var about: String
    public var globalOptions: [OptionSpec]
    public var commands: [CommandSpec]

    public init(tool: String, about: String, globalOptions: [OptionSpec], commands: [CommandSpec]) {
        self.tool = tool
        self.about = about
        self.globalOptions = globalOptions
        self.commands = commands
    }

    public func parse(_ args: [String]) -> ParseOutcome {
        var globals: [String: String] = [:]
        var globalFlags: Set<String> = []
        var rest: [String] = []
        var wantsHelp = false
        var wantsVersion = false
        var versionAt: Set<Int> = []
        // Pass 1: pull out global options wherever they are.
        var i = 0
        var afterDoubleDash = false
        while i < args.count {
            let a = args[i]
            if afterDoubleDash { rest.append(a); i += 1; continue }
            if a == "--" { afterDoubleDash = true; rest.append(a); i += 1; continue }
            if a == "--help" || a == "-h" { wantsHelp = true; i += 1; continue }
            if a == "--version" || a == "-V" || a.hasPrefix("--version=") {
                // Kept in place: a command may have its own --version option (package build).
                wantsVersion = true
                versionAt.insert(rest.count)
                rest.append(a)
                i += 1
                continue
            }
            let (name, inline) = Self.split(a)
            if let g = globalOptions.first(where: { $0.name == name || ($0.short != nil && $0.short == name) }) {
                if g.valueName != nil {
                    if let inline { globals[g.name] = inline; i += 1; continue }
                    guard i + 1 < args.count else { return .usageError("option \(g.name) needs a value (\(g.valueName!))") }
                    globals[g.name] = args[i + 1]
                    i += 2
                } else {
                    if inline != nil { return .usageError("option \(g.name) takes no value") }
                    globalFlags.insert(g.name)
                    i += 1
                }
                continue
            }
            rest.append(a)
            i += 1
        }
        // Pass 2: the command path (longest match of leading words).
        let words = rest.prefix { !$0.hasPrefix("-") }
        var match: CommandSpec?
        for c in commands where c.path.count <= words.count && Array(words.prefix(c.path.count)) == c.path {
            if match == nil || c.path.count > match!.path.count { match = c }
        }
        if let cmd = match, cmd.options.contains(where: { $0.name == "--version" }), wantsVersion, !wantsHelp {
            // A command with its own `--version V` (package build's package version): `-V`, or
            // `--version` as the command's only argument, is still the tool's version.
            let own = rest.dropFirst(cmd.path.count)
            if own.contains("-V") || Array(own) == ["--version"] { return .version }
        }
        if match?.options.contains(where: { $0.name == "--version" }) != true {
            rest = rest.enumerated().filter { !versionAt.contains($0.offset) }.map(\.element)
            // `--version` works on every command (clap's propagate_version), unless the command
            // has an option of that name (package build's package version).
            if wantsVersion && !wantsHelp { return .version }
        }
        guard let cmd = match else {
            if wantsVersion && rest.isEmpty { return .version }
            if rest.isEmpty || wantsHelp {
                // Help for a group ("caisson package --help") or the whole tool.
                let group = Array(words)
                if !group.isEmpty, commands.contains(where: { Array($0.path.prefix(group.count)) == group }) {
                    return .help(groupHelp(group))
                }
                if !group.isEmpty { return .usageError("unknown command '\(group.joined(separator: " "))'") }
                return .help(toolHelp())
            }
            let group = Array(words)
            if let first = group.first, commands.contains(where: { $0.path.first == first }) {
                let known = commands.filter { $0.path.first == first }.map { $0.path.joined(separator: " ") }
                if group.count == 1 {
                    return .usageError("'\(first)' needs a subcommand: \(known.joined(separator: ", "))")
                }
                return .usageError("unknown command '\(group.joined(separator: " "))' (did you mean one of: \(known.joined(separator: ", "))?)")
            }
            if let first = rest.first, first.hasPrefix("-") { return .usageError("unknown option '\(first)'") }
            return .usageError("unknown command '\(group.joined(separator: " "))'")
        }
        if wantsHelp { return .help(commandHelp(cmd)) }
        // Pass 3: the command's own options and positionals.
        var positionals: [String] = []
        var values: [String: String] = [:]
        var repeated: [String: [String]] = [:]
        var flags: Set<String> = []
        var j = cmd.path.count
        var literal = false
        let name = cmd.path.joined(separator: " ")
        while j < rest.count {
            let a = rest[j]
            if literal { positionals.append(a); j += 1; continue }
            if a == "--" { literal = true; j += 1; continue }
            if a.hasPrefix("-") && a.count > 1 {
                let (n, inline) = Self.split(a)
                guard let o = cmd.options.first(where: { $0.name == n || ($0.short != nil && $0.short == n) }) else {
                    return .usageError("unknown option '\(n)' for '\(tool) \(name)'")
                }
                if o.valueName != nil {
                    if let inline { values[o.name] = inline; repeated[o.name, default: []].append(inline); j += 1; continue }
                    guard j + 1 < rest.count else { return .usageError("option \(o.name) of '\(tool) \(name)' needs a value (\(o.valueName!))") }
                    values[o.name] = rest[j + 1]
                    repeated[o.name, default: []].append(rest[j + 1])
                    j += 2
                } else {
                    if inline != nil { return .usageError("option \(o.name) takes no value") }
                    flags.insert(o.name)
                    j += 1
                }
                continue
            }
            positionals.append(a)
            j += 1
        }
        let required = cmd.positionals.filter { !$0.optional }
        if positionals.count < required.count {
            let missing = required[positionals.count...].map(\.name).joined(separator: " ")
            return .usageError("'\(tool) \(name)' needs \(missing)")
        }
        if positionals.count > cmd.positionals.count {
            return .usageError("unexpected argument '\(positionals[cmd.positionals.count])' for '\(tool) \(name)'")
        }
        var parsed = ParsedCommand(path: cmd.path, positionals: positionals, values: values, flags: flags,
                                   globals: globals, globalFlags: globalFlags)
        parsed.repeatedValues = repeated
        return .run(parsed)
    }

    static func split(_ arg: String) -> (String, String?) {
        guard arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") else { return (arg, nil) }
        return (String(arg[..<eq]), String(arg[arg.index(after: eq)...]))
    }

    func usageLine(_ c: CommandSpec) -> String {
        var parts = [tool] + c.path
        if !c.options.isEmpty { parts.append("[options]") }
        for p in c.positionals { parts.append(p.optional ? "[\(p.name)]" : p.name) }
        return parts.joined(separator: " ")
    }

    static func optionLines(_ opts: [OptionSpec]) -> [String] {
        let heads = opts.map { o -> String in
            var h = o.short.map { "\($0), " } ?? ""
            h += o.name
            if let v = o.valueName { h += " \(v)" }
            return h
        }
        let width = (heads.map(\.count).max() ?? 0) + 2
        return zip(heads, opts).map { h, o in "  " + h.padding(toLength: width, withPad: " ", startingAt: 0) + o.help }
    }

    public func commandHelp(_ c: CommandSpec) -> String {
        var out = ["\(c.summary)", "", "Usage: \(usageLine(c))"]
        if !c.discussion.isEmpty { out += ["", c.discussion] }
        if !c.positionals.isEmpty {
            out += ["", "Arguments:"]
            let width = (c.positionals.map(\.name.count).max() ?? 0) + 2
            out += c.positionals.map { "  " + $0.name.padding(toLength: width, withPad: " ", startingAt: 0) + $0.help }
        }
        if !c.options.isEmpty { out += ["", "Options:"] + Self.optionLines(c.options) }
        out += ["", "Global options:"] + Self.optionLines(globalOptions + [OptionSpec("--help", short: "-h", help: "Show help for this command")])
        return out.joined(separator: "\n")
    }

    public func groupHelp(_ group: [String]) -> String {
        let subs = commands.filter { Array($0.path.prefix(group.count)) == group }
        var out = ["Usage: \(tool) \(group.joined(separator: " ")) <subcommand>", "", "Subcommands:"]
        let width = (subs.map { $0.path.joined(separator: " ").count }.max() ?? 0) + 2
        out += subs.map { "  " + $0.path.joined(separator: " ").padding(toLength: width, withPad: " ", startingAt: 0) + $0.summary }
        out += ["", "Run '\(tool) \(group.joined(separator: " ")) <subcommand> --help' for details."]
        return out.joined(separator: "\n")
    }

    public func toolHelp() -> String {
        var out = [about, "", "Usage: \(tool) [global options] <command> [options]", "", "Commands:"]
        let width = (commands.map { $0.path.joined(separator: " ").count }.max() ?? 0) + 2
        out += commands.map { "  " + $0.path.joined(separator: " ").padding(toLength: width, withPad: " ", startingAt: 0) + $0.summary }
        out += ["", "Global options (before or after the command):"]
        out += Self.optionLines(globalOptions + [OptionSpec("--help", short: "-h", help: "Show help"),
                                                 OptionSpec("--version", short: "-V", help: "Show the version")])
        out += ["", "Exit codes: 0 success, 1 operational error, 2 package rejected, 3 declined at the prompt,",
                "            4 import failed or update rolled back, 5 rollback failed (the service needs a human)."]
        return out.joined(separator: "\n")
    }
}
