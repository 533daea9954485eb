/// A syntax or semantic error in a TOML document, with the position where it was found.
///
/// `line` and `column` are 1-based; the column counts Unicode scalars (a tab is one column).
public struct TOMLError: Error, Equatable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int
    public var message: String

    public init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    /// `line 3, column 14: expected '=' after key`
    public var description: String { "line \(line), column \(column): \(message)" }
}

/// Resource limits applied while parsing untrusted input.
public struct TOMLLimits: Equatable, Sendable {
    /// Maximum nesting depth of the resulting document: every table, array, inline table and
    /// array of tables counts one level (the root table is level 0). `[a.b.c]` reaches level 3;
    /// `x = [[1]]` reaches level 2. Deeper input is an error, never a stack overflow.
    public var maxDepth: Int
    /// Maximum input size in bytes.
    public var maxInputBytes: Int

    public init(maxDepth: Int = 128, maxInputBytes: Int = 16 * 1024 * 1024) {
        self.maxDepth = maxDepth
        self.maxInputBytes = maxInputBytes
    }

    /// Depth 128, 16 MiB.
    public static let `default` = TOMLLimits()
}

/// Which TOML specification a document is read against.
///
/// 1.1 is what the Rust tool's parser (and so every existing manifest and catalog) reads: newlines,
/// comments and a trailing comma inside inline tables, the `\xHH` and `\e` escapes, and times
/// without seconds (`07:32`, read as `07:32:00`). 1.0 refuses all of those; it is kept for the
/// 1.0 conformance suite and for callers that must not accept more than 1.0.
public enum TOMLSpec: String, Sendable, CaseIterable {
    case v1_0 = "1.0.0"
    case v1_1 = "1.1.0"

    /// The newest specification, the default everywhere.
    public static let latest: TOMLSpec = .v1_1
}

/// Entry points.
public enum TOML {
    /// Parses a complete TOML document (1.1 unless `spec` says otherwise) from UTF-8 bytes (a
    /// leading BOM is skipped).
    public static func parse(_ bytes: [UInt8], spec: TOMLSpec = .latest, limits: TOMLLimits = .default) throws(TOMLError) -> TOMLTable {
        var parser = TOMLParser(bytes: bytes, spec: spec, limits: limits)
        return try parser.parseDocument()
    }

    /// Parses a complete TOML document from any collection of UTF-8 bytes (`Data`, a slice, ...).
    public static func parse<C: Collection<UInt8>>(_ bytes: C, spec: TOMLSpec = .latest, limits: TOMLLimits = .default) throws(TOMLError) -> TOMLTable {
        guard bytes.count <= limits.maxInputBytes else {
            throw TOMLError(line: 1, column: 1,
                            message: "input is \(bytes.count) bytes, more than the limit of \(limits.maxInputBytes) bytes")
        }
        return try parse(Array(bytes), spec: spec, limits: limits)
    }

    /// Parses a complete TOML document from a string.
    public static func parse(_ text: String, spec: TOMLSpec = .latest, limits: TOMLLimits = .default) throws(TOMLError) -> TOMLTable {
        try parse(Array(text.utf8), spec: spec, limits: limits)
    }
}
