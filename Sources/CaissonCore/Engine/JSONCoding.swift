import Foundation

/// JSON with sorted keys, so snapshots, records and `--json` output are byte-for-byte stable.
public enum JSONCoding {
    public static func encode<T: Encodable>(_ value: T, pretty: Bool = false) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(bytes))
    }

    public static func string<T: Encodable>(_ value: T, pretty: Bool = false) -> String {
        guard let bytes = try? encode(value, pretty: pretty) else { return "{}" }
        return String(decoding: bytes, as: UTF8.self)
    }
}
