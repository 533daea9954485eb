/// A header field as it appeared on the wire (name case preserved).
public struct HTTPHeader: Sendable, Equatable, Hashable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

extension Array where Element == HTTPHeader {
    /// The first value of header `name` (case-insensitive).
    public func first(_ name: String) -> String? {
        let lower = name.lowercased()
        return first { $0.name.lowercased() == lower }?.value
    }

    /// All values of header `name` (case-insensitive).
    public func all(_ name: String) -> [String] {
        let lower = name.lowercased()
        return filter { $0.name.lowercased() == lower }.map(\.value)
    }
}

/// The status line and headers of a response.
public struct HTTPResponseHead: Sendable, Equatable {
    public var status: Int
    public var reason: String
    public var headers: [HTTPHeader]

    public init(status: Int, reason: String, headers: [HTTPHeader]) {
        self.status = status
        self.reason = reason
        self.headers = headers
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? { headers.first(name) }

    /// All values of header `name`.
    public func headers(named name: String) -> [String] { headers.all(name) }
}

/// A complete response with its (bounded) body.
public struct HTTPResponse: Sendable, Equatable {
    public var head: HTTPResponseHead
    public var body: [UInt8]
    public var status: Int { head.status }

    public init(head: HTTPResponseHead, body: [UInt8]) {
        self.head = head
        self.body = body
    }
}

/// The request line and headers of a request (server side).
public struct HTTPRequestHead: Sendable, Equatable {
    public var method: String
    /// The origin-form target as sent: path and query, percent-encoded.
    public var target: String
    public var version: String
    public var headers: [HTTPHeader]

    public init(method: String, target: String, version: String = "HTTP/1.1", headers: [HTTPHeader]) {
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
    }

    public func header(_ name: String) -> String? { headers.first(name) }

    /// The path part of the target, percent-decoded (nil if the encoding is invalid).
    public var path: String? {
        let raw = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
        return raw.removingPercentEncodingStrict()
    }

    /// The query's `name=value` pairs, percent-decoded (`+` is a space), in order.
    public var query: [(name: String, value: String)] {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else { return [] }
        return FormDecoding.pairs(String(parts[1]))
    }

    public func queryValue(_ name: String) -> String? { query.first { $0.name == name }?.value }
}

/// `application/x-www-form-urlencoded` decoding.
public enum FormDecoding {
    public static func pairs(_ text: String) -> [(name: String, value: String)] {
        text.split(separator: "&", omittingEmptySubsequences: true).compactMap { pair in
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(kv[0]).replacingPlus().removingPercentEncodingStrict()
            let value = (kv.count > 1 ? String(kv[1]) : "").replacingPlus().removingPercentEncodingStrict()
            guard let name, let value else { return nil }
            return (name, value)
        }
    }
}

extension String {
    package func trimmingWhitespace() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" || first == "\n" || first == "\r" {
            scalars = scalars.dropFirst()
        }
        while let last = scalars.last, last == " " || last == "\t" || last == "\n" || last == "\r" {
            scalars = scalars.dropLast()
        }
        return String(scalars)
    }

    fileprivate func replacingPlus() -> String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0 == "+" ? " " : $0 }))
    }

    /// Percent-decoding that refuses malformed escapes and invalid UTF-8 (no Foundation).
    package func removingPercentEncodingStrict() -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var iterator = utf8.makeIterator()
        func hex(_ b: UInt8) -> UInt8? {
            switch b {
            case 48...57: return b - 48
            case 65...70: return b - 55
            case 97...102: return b - 87
            default: return nil
            }
        }
        while let b = iterator.next() {
            if b == UInt8(ascii: "%") {
                guard let h = iterator.next().flatMap(hex), let l = iterator.next().flatMap(hex) else { return nil }
                bytes.append(h << 4 | l)
            } else {
                bytes.append(b)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
