/// A TOML value: one of the TOML types (the same in 1.0 and 1.1).
///
/// Equality is structural. Floats compare as `Double` does, so a `nan` is never equal to anything;
/// tables compare without regard to key order.
public enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case boolean(Bool)
    /// Any of the four date/time kinds; `TOMLDateTime.kind` tells which.
    case datetime(TOMLDateTime)
    case array([TOMLValue])
    case table(TOMLTable)

    /// Structural equality, computed with an explicit work list so that deeply nested values do
    /// not need a deep call stack.
    public static func == (lhs: TOMLValue, rhs: TOMLValue) -> Bool {
        var work: [(TOMLValue, TOMLValue)] = [(lhs, rhs)]
        while let (a, b) = work.popLast() {
            switch (a, b) {
            case (.string(let x), .string(let y)): if x != y { return false }
            case (.integer(let x), .integer(let y)): if x != y { return false }
            case (.float(let x), .float(let y)): if x != y { return false }
            case (.boolean(let x), .boolean(let y)): if x != y { return false }
            case (.datetime(let x), .datetime(let y)): if x != y { return false }
            case (.array(let x), .array(let y)):
                guard x.count == y.count else { return false }
                work.append(contentsOf: zip(x, y))
            case (.table(let x), .table(let y)):
                guard x.count == y.count else { return false }
                for (key, v) in x {
                    guard let w = y[key] else { return false }
                    work.append((v, w))
                }
            default:
                return false
            }
        }
        return true
    }

    /// The TOML type name used in error messages, with its article: "a string", "an integer", ...
    public var typeDescription: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a float"
        case .boolean: return "a boolean"
        case .datetime(let dt): return dt.kind.typeDescription
        case .array: return "an array"
        case .table: return "a table"
        }
    }
}

// MARK: - Accessors

extension TOMLValue {
    /// The string, if this is a string.
    public var string: String? { if case .string(let v) = self { return v } else { return nil } }
    /// The integer, if this is an integer.
    public var integer: Int64? { if case .integer(let v) = self { return v } else { return nil } }
    /// The integer as `Int`, if this is an integer (always fits on 64-bit platforms).
    public var int: Int? {
        if case .integer(let v) = self { return Int(exactly: v) } else { return nil }
    }
    /// The float, if this is a float. Integers are *not* converted; see `double`.
    public var float: Double? { if case .float(let v) = self { return v } else { return nil } }
    /// A float, or an integer converted exactly to `Double` (nil if the integer has no exact `Double`).
    public var double: Double? {
        switch self {
        case .float(let v): return v
        case .integer(let v): return Double(exactly: v)
        default: return nil
        }
    }
    /// The boolean, if this is a boolean.
    public var boolean: Bool? { if case .boolean(let v) = self { return v } else { return nil } }
    /// The date/time, if this is one (any kind).
    public var datetime: TOMLDateTime? { if case .datetime(let v) = self { return v } else { return nil } }
    /// The array, if this is an array (including an array of tables).
    public var array: [TOMLValue]? { if case .array(let v) = self { return v } else { return nil } }
    /// The table, if this is a table (including an inline table).
    public var table: TOMLTable? { if case .table(let v) = self { return v } else { return nil } }

    /// The value under `key` when this is a table; nil otherwise.
    public subscript(key: String) -> TOMLValue? {
        if case .table(let t) = self { return t[key] }
        return nil
    }

    /// The element at `index` when this is an array and the index is in range; nil otherwise.
    public subscript(index: Int) -> TOMLValue? {
        if case .array(let a) = self, a.indices.contains(index) { return a[index] }
        return nil
    }
}

// MARK: - Literals (handy for tests and for building documents in code)

extension TOMLValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(floatLiteral value: Double) { self = .float(value) }
    public init(booleanLiteral value: Bool) { self = .boolean(value) }
    public init(arrayLiteral elements: TOMLValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, TOMLValue)...) {
        var t = TOMLTable()
        for (k, v) in elements { t[k] = v }
        self = .table(t)
    }
}

/// A TOML table: keys kept in document order, with O(1) lookup by key.
public struct TOMLTable: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    public typealias Element = (key: String, value: TOMLValue)

    private var entries: [Element] = []
    private var index: [String: Int] = [:]

    public init() {}

    public init(dictionaryLiteral elements: (String, TOMLValue)...) {
        for (k, v) in elements { self[k] = v }
    }

    /// Builds a table from key/value pairs in order; a repeated key keeps its first position and
    /// its last value.
    public init<S: Sequence>(_ pairs: S) where S.Element == (String, TOMLValue) {
        for (k, v) in pairs { self[k] = v }
    }

    /// The value under `key`. Setting a new key appends it; setting nil removes it (O(n)).
    public subscript(key: String) -> TOMLValue? {
        get {
            guard let i = index[key] else { return nil }
            return entries[i].value
        }
        set {
            if let newValue {
                if let i = index[key] {
                    entries[i].value = newValue
                } else {
                    index[key] = entries.count
                    entries.append((key: key, value: newValue))
                }
            } else if let i = index.removeValue(forKey: key) {
                entries.remove(at: i)
                for j in i..<entries.count { index[entries[j].key] = j }
            }
        }
    }

    /// The keys in document order (deterministic).
    public var keys: [String] { entries.map(\.key) }
    /// The values in document order.
    public var values: [TOMLValue] { entries.map(\.value) }
    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public func contains(_ key: String) -> Bool { index[key] != nil }

    /// Entries in document order.
    public func makeIterator() -> IndexingIterator<[Element]> { entries.makeIterator() }

    /// Follows a path of keys through nested tables: `table.value(at: ["services", "docker"])`.
    public func value(at path: [String]) -> TOMLValue? {
        guard let first = path.first, var v = self[first] else { return nil }
        for k in path.dropFirst() {
            guard let next = v[k] else { return nil }
            v = next
        }
        return v
    }

    /// Order-insensitive equality: the same keys with equal values.
    public static func == (lhs: TOMLTable, rhs: TOMLTable) -> Bool {
        TOMLValue.table(lhs) == TOMLValue.table(rhs)
    }
}
