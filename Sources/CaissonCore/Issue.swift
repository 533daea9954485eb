/// A validation or operation issue: a stable `area.snake_case` code and a sentence for the operator.
/// Codes are the compatibility contract of FORMATS.md §4; new checks get new codes in the same style.
public struct Issue: Equatable, Hashable, Sendable, Codable, CustomStringConvertible {
    public var code: String
    public var message: String

    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The Rust tool's rendering: `[code] message`.
    public var description: String { "[\(code)] \(message)" }
}

/// An error that carries an issue code, a sentence, and optionally its cause.
public struct CaissonError: Error, Equatable, Sendable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var cause: String?

    public init(_ code: String, _ message: String, cause: String? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var issue: Issue { Issue(code, message) }
    public var description: String {
        if let cause { return "[\(code)] \(message) (\(cause))" }
        return "[\(code)] \(message)"
    }
}
