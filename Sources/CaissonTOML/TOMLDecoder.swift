/// An error from decoding a TOML document into a `Decodable` type, naming the full key path.
///
/// `description` reads `services[0].docker.container_name: expected a string, found an integer`.
public struct TOMLDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The key path of the offending value: keys joined with '.', array indices as `[i]`, keys that
    /// are not bare TOML keys quoted. Empty for the document root.
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { path.isEmpty ? message : "\(path): \(message)" }
}

/// Decodes `Decodable` types from TOML.
///
/// - Unknown keys are ignored.
/// - A missing key decodes as `nil` for an `Optional` property and is an error otherwise.
/// - `Double`/`Float` accept TOML floats and integers; integer types accept integers that fit.
/// - `TOMLValue`, `TOMLTable` and `TOMLDateTime` decode as themselves; `TOMLDateTime` also accepts
///   a string holding a TOML/RFC 3339 date/time.
public struct TOMLDecoder: Sendable {
    public enum KeyDecodingStrategy: Sendable {
        /// Swift property names equal TOML keys (use `CodingKeys` for snake_case keys).
        case useDefaultKeys
        /// TOML `container_name` matches a Swift key `containerName` (like `JSONDecoder`).
        case convertFromSnakeCase
    }

    public var keyDecodingStrategy: KeyDecodingStrategy
    /// The TOML version documents are parsed as (`decode(from: bytes)` and `from: text`).
    public var spec: TOMLSpec
    public var limits: TOMLLimits
    public var userInfo: [CodingUserInfoKey: any Sendable]

    public init(keyDecodingStrategy: KeyDecodingStrategy = .useDefaultKeys, spec: TOMLSpec = .latest,
                limits: TOMLLimits = .default) {
        self.keyDecodingStrategy = keyDecodingStrategy
        self.spec = spec
        self.limits = limits
        self.userInfo = [:]
    }

    /// Decodes from a parsed table.
    public func decode<T: Decodable>(_ type: T.Type = T.self, from table: TOMLTable) throws(TOMLDecodingError) -> T {
        try decode(type, from: TOMLValue.table(table))
    }

    /// Decodes from any TOML value.
    public func decode<T: Decodable>(_ type: T.Type = T.self, from value: TOMLValue) throws(TOMLDecodingError) -> T {
        let impl = TOMLValueDecoderImpl(value: value, codingPath: [], tomlPath: [], options: options)
        do {
            return try impl.unbox(type)
        } catch let e as TOMLDecodingError {
            throw e
        } catch let e as DecodingError {
            throw impl.convert(e)
        } catch {
            throw TOMLDecodingError(path: "", message: "\(error)")
        }
    }

    /// Parses and decodes. Throws `TOMLError` for invalid TOML, `TOMLDecodingError` otherwise.
    public func decode<T: Decodable>(_ type: T.Type = T.self, from bytes: [UInt8]) throws -> T {
        let table = try TOML.parse(bytes, spec: spec, limits: limits)
        return try decode(type, from: table)
    }

    /// Parses and decodes. Throws `TOMLError` for invalid TOML, `TOMLDecodingError` otherwise.
    public func decode<T: Decodable>(_ type: T.Type = T.self, from text: String) throws -> T {
        try decode(type, from: Array(text.utf8))
    }

    var options: TOMLDecoderOptions {
        TOMLDecoderOptions(convertFromSnakeCase: keyDecodingStrategy == .convertFromSnakeCase, userInfo: userInfo)
    }
}

struct TOMLDecoderOptions {
    var convertFromSnakeCase: Bool
    var userInfo: [CodingUserInfoKey: any Sendable]
}

/// A coding key for array positions.
struct TOMLIndexKey: CodingKey {
    let index: Int
    init(_ index: Int) { self.index = index }
    init?(intValue: Int) { self.index = intValue }
    init?(stringValue: String) { return nil }
    var intValue: Int? { index }
    var stringValue: String { "Index \(index)" }
}

struct TOMLStringKey: CodingKey {
    let stringValue: String
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
    var intValue: Int? { nil }
}

enum TOMLPathComponent {
    case key(String)
    case index(Int)

    static func render(_ path: [TOMLPathComponent]) -> String {
        var s = ""
        for c in path {
            switch c {
            case .key(let k):
                if !s.isEmpty { s += "." }
                s += TOMLKeyPath.render(k)
            case .index(let i):
                s += "[\(i)]"
            }
        }
        return s
    }
}

enum SnakeCase {
    /// `container_name` → `containerName` (leading/trailing underscores kept), as `JSONDecoder` does.
    static func toCamel(_ key: String) -> String {
        guard key.contains("_") else { return key }
        let scalars = Array(key)
        guard let first = scalars.firstIndex(where: { $0 != "_" }) else { return key }
        var last = scalars.count - 1
        while last > first && scalars[last] == "_" { last -= 1 }
        let core = String(scalars[first...last])
        let parts = core.split(separator: "_", omittingEmptySubsequences: true)
        guard let head = parts.first else { return key }
        var out = String(scalars[..<first]) + head.lowercased()
        for part in parts.dropFirst() {
            out += part.prefix(1).uppercased() + part.dropFirst().lowercased()
        }
        return out + String(scalars[(last + 1)...])
    }

    /// `containerName` → `container_name`, for naming keys in errors raised by user code.
    static func toSnake(_ key: String) -> String {
        var out = ""
        for ch in key {
            if ch.isUppercase {
                if !out.isEmpty { out += "_" }
                out += ch.lowercased()
            } else {
                out.append(ch)
            }
        }
        return out
    }
}

// MARK: - The Decoder

struct TOMLValueDecoderImpl: Decoder, SingleValueDecodingContainer {
    let value: TOMLValue
    let codingPath: [any CodingKey]
    let tomlPath: [TOMLPathComponent]
    let options: TOMLDecoderOptions

    var userInfo: [CodingUserInfoKey: Any] { options.userInfo }

    var pathString: String { TOMLPathComponent.render(tomlPath) }

    func failure(_ message: String) -> TOMLDecodingError {
        TOMLDecodingError(path: pathString, message: message)
    }

    func mismatch(_ expected: String) -> TOMLDecodingError {
        failure("expected \(expected), found \(value.typeDescription)")
    }

    func child(_ value: TOMLValue, key: any CodingKey, component: TOMLPathComponent) -> TOMLValueDecoderImpl {
        TOMLValueDecoderImpl(value: value, codingPath: codingPath + [key], tomlPath: tomlPath + [component],
                             options: options)
    }

    /// Turns a `DecodingError` thrown by user code (e.g. an enum's invalid raw value) into a
    /// `TOMLDecodingError` with a TOML key path.
    func convert(_ error: DecodingError) -> TOMLDecodingError {
        func render(_ ctx: DecodingError.Context, extra: (any CodingKey)? = nil) -> String {
            var keys = ctx.codingPath
            if let extra { keys.append(extra) }
            var comps = tomlPath
            // The context path normally starts with ours; only the suffix is new.
            let suffix = keys.count >= codingPath.count ? Array(keys.dropFirst(codingPath.count)) : keys
            if keys.count < codingPath.count { comps = [] }
            for k in suffix {
                if let idx = k as? TOMLIndexKey {
                    comps.append(.index(idx.index))
                } else {
                    comps.append(.key(options.convertFromSnakeCase ? SnakeCase.toSnake(k.stringValue) : k.stringValue))
                }
            }
            return TOMLPathComponent.render(comps)
        }
        switch error {
        case .keyNotFound(let key, let ctx):
            return TOMLDecodingError(path: render(ctx, extra: key), message: "missing required key")
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx), .dataCorrupted(let ctx):
            return TOMLDecodingError(path: render(ctx), message: ctx.debugDescription)
        @unknown default:
            return TOMLDecodingError(path: pathString, message: "\(error)")
        }
    }

    // MARK: Decoder

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .table(let table) = value else { throw mismatch("a table") }
        return KeyedDecodingContainer(TOMLKeyedContainer<Key>(decoder: self, table: table))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let array) = value else { throw mismatch("an array") }
        return TOMLUnkeyedContainer(decoder: self, array: array)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    // MARK: Unboxing

    func unbox<T: Decodable>(_ type: T.Type) throws -> T {
        switch type {
        case is String.Type:
            guard case .string(let s) = value else { throw mismatch("a string") }
            return try cast(s)
        case is Bool.Type:
            guard case .boolean(let v) = value else { throw mismatch("a boolean") }
            return try cast(v)
        case is Int.Type: return try cast(integer(Int.self))
        case is Int64.Type: return try cast(integer(Int64.self))
        case is Int32.Type: return try cast(integer(Int32.self))
        case is Int16.Type: return try cast(integer(Int16.self))
        case is Int8.Type: return try cast(integer(Int8.self))
        case is UInt.Type: return try cast(integer(UInt.self))
        case is UInt64.Type: return try cast(integer(UInt64.self))
        case is UInt32.Type: return try cast(integer(UInt32.self))
        case is UInt16.Type: return try cast(integer(UInt16.self))
        case is UInt8.Type: return try cast(integer(UInt8.self))
        case is Double.Type: return try cast(floating(Double.self))
        case is Float.Type: return try cast(floating(Float.self))
        case is TOMLValue.Type: return try cast(value)
        case is TOMLTable.Type:
            guard case .table(let t) = value else { throw mismatch("a table") }
            return try cast(t)
        case is TOMLDateTime.Type:
            switch value {
            case .datetime(let dt): return try cast(dt)
            case .string(let s):
                guard let dt = TOMLDateTime(parsing: s) else {
                    throw failure("expected a date/time, found a string that is not one: \"\(s)\"")
                }
                return try cast(dt)
            default:
                throw mismatch("a date/time")
            }
        default:
            do {
                return try T(from: self)
            } catch let e as DecodingError {
                throw convert(e)
            }
        }
    }

    private func cast<T, U>(_ v: U) throws -> T {
        guard let r = v as? T else { throw failure("internal error: cannot convert \(U.self) to \(T.self)") }
        return r
    }

    private func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        guard case .integer(let n) = value else { throw mismatch("an integer") }
        guard let v = I(exactly: n) else { throw failure("integer \(n) is out of range for \(I.self)") }
        return v
    }

    private func floating<F: BinaryFloatingPoint>(_ type: F.Type) throws -> F {
        switch value {
        case .float(let d): return F(d)
        case .integer(let n): return F(n)
        default: throw mismatch("a float")
        }
    }

    // MARK: SingleValueDecodingContainer

    func decodeNil() -> Bool { false }
    func decode(_ type: Bool.Type) throws -> Bool { try unbox(type) }
    func decode(_ type: String.Type) throws -> String { try unbox(type) }
    func decode(_ type: Double.Type) throws -> Double { try unbox(type) }
    func decode(_ type: Float.Type) throws -> Float { try unbox(type) }
    func decode(_ type: Int.Type) throws -> Int { try unbox(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try unbox(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try unbox(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try unbox(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try unbox(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try unbox(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try unbox(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try unbox(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try unbox(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try unbox(type) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try unbox(type) }
}

// MARK: - Keyed container

struct TOMLKeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let decoder: TOMLValueDecoderImpl
    let table: TOMLTable
    /// Swift key name → TOML key, when converting from snake_case.
    private let converted: [String: String]?

    init(decoder: TOMLValueDecoderImpl, table: TOMLTable) {
        self.decoder = decoder
        self.table = table
        if decoder.options.convertFromSnakeCase {
            var map: [String: String] = [:]
            for k in table.keys {
                let c = SnakeCase.toCamel(k)
                // An exact key wins over a converted one; otherwise the first in document order.
                if map[c] == nil || c == k { map[c] = k }
            }
            converted = map
        } else {
            converted = nil
        }
    }

    var codingPath: [any CodingKey] { decoder.codingPath }

    var allKeys: [Key] {
        table.keys.compactMap { Key(stringValue: converted == nil ? $0 : SnakeCase.toCamel($0)) }
    }

    private func tomlKey(_ key: Key) -> String? {
        if let converted { return converted[key.stringValue] }
        return table.contains(key.stringValue) ? key.stringValue : nil
    }

    private func tomlName(_ key: Key) -> String {
        tomlKey(key) ?? (converted == nil ? key.stringValue : SnakeCase.toSnake(key.stringValue))
    }

    func contains(_ key: Key) -> Bool { tomlKey(key) != nil }

    /// TOML has no null: an absent key is the only "nil".
    func decodeNil(forKey key: Key) throws -> Bool { tomlKey(key) == nil }

    private func childDecoder(_ key: Key) throws -> TOMLValueDecoderImpl {
        guard let name = tomlKey(key), let v = table[name] else {
            throw TOMLDecodingError(path: TOMLPathComponent.render(decoder.tomlPath + [.key(tomlName(key))]),
                                    message: "missing required key")
        }
        return decoder.child(v, key: key, component: .key(name))
    }

    private func value<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T {
        try childDecoder(key).unbox(type)
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try value(type, key) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try value(type, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try value(type, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try value(type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try value(type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try value(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try value(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try value(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try value(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try value(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try value(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try value(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try value(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try value(type, key) }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try value(type, key) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try childDecoder(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try childDecoder(key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        guard let k = Key(stringValue: "super") else {
            throw decoder.failure("missing required key 'super'")
        }
        return try childDecoder(k)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder { try childDecoder(key) }
}

// MARK: - Unkeyed container

struct TOMLUnkeyedContainer: UnkeyedDecodingContainer {
    let decoder: TOMLValueDecoderImpl
    let array: [TOMLValue]
    private(set) var currentIndex = 0

    init(decoder: TOMLValueDecoderImpl, array: [TOMLValue]) {
        self.decoder = decoder
        self.array = array
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { array.count }
    var isAtEnd: Bool { currentIndex >= array.count }

    mutating func decodeNil() throws -> Bool { false }

    private mutating func next() throws -> TOMLValueDecoderImpl {
        guard !isAtEnd else {
            throw TOMLDecodingError(path: TOMLPathComponent.render(decoder.tomlPath + [.index(currentIndex)]),
                                    message: "missing array element (the array has \(array.count))")
        }
        let d = decoder.child(array[currentIndex], key: TOMLIndexKey(currentIndex), component: .index(currentIndex))
        currentIndex += 1
        return d
    }

    private mutating func value<T: Decodable>(_ type: T.Type) throws -> T {
        // Only advance past an element once it decoded, as the protocol expects.
        let saved = currentIndex
        do {
            return try next().unbox(type)
        } catch {
            currentIndex = saved
            throw error
        }
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try value(type) }
    mutating func decode(_ type: String.Type) throws -> String { try value(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try value(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try value(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try value(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try value(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try value(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try value(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try value(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try value(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try value(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try value(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try value(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try value(type) }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try value(type) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
        -> KeyedDecodingContainer<NestedKey>
    {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try next().unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder { try next() }
}

// MARK: - Decodable conformances for the value model

extension TOMLValue: Decodable {
    /// With `TOMLDecoder` the value is handed over as it is. With other decoders (e.g. JSON) it is
    /// rebuilt from whatever the format offers: booleans, integers, floats, strings, arrays, objects.
    public init(from decoder: any Decoder) throws {
        if let d = decoder as? TOMLValueDecoderImpl {
            self = d.value
            return
        }
        if let c = try? decoder.singleValueContainer() {
            if let v = try? c.decode(Bool.self) { self = .boolean(v); return }
            if let v = try? c.decode(Int64.self) { self = .integer(v); return }
            if let v = try? c.decode(Double.self) { self = .float(v); return }
            if let v = try? c.decode(String.self) { self = .string(v); return }
        }
        if var u = try? decoder.unkeyedContainer() {
            var items: [TOMLValue] = []
            while !u.isAtEnd { items.append(try u.decode(TOMLValue.self)) }
            self = .array(items)
            return
        }
        let k = try decoder.container(keyedBy: TOMLStringKey.self)
        var t = TOMLTable()
        for key in k.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
            t[key.stringValue] = try k.decode(TOMLValue.self, forKey: key)
        }
        self = .table(t)
    }
}

extension TOMLTable: Decodable {
    public init(from decoder: any Decoder) throws {
        let v = try TOMLValue(from: decoder)
        guard case .table(let t) = v else {
            throw DecodingError.typeMismatch(TOMLTable.self, .init(codingPath: decoder.codingPath,
                                                                   debugDescription: "expected a table, found \(v.typeDescription)"))
        }
        self = t
    }
}
