// HTTP/1.1 wire format: request head serialization, chunked encoding, and a buffered reader that
// parses heads and decodes bodies (Content-Length, chunked, read-until-close) from a StreamSocket.
// Shared by the Docker client (responses) and the console's server (requests).
// All sizes are bounded; nothing here allocates in proportion to a body it streams.

/// How a message body is delimited on the wire.
package enum BodyFraming: Sendable, Equatable {
    case none
    case length(UInt64)
    case chunked
    case untilClose
}

/// A wire-level failure; the HTTP client gives it a meaning (indeterminate or not).
package enum WireFailure: Error, Sendable, Equatable {
    case socket(SocketFailure)
    case endOfStream(String)
    case malformed(String)
    case tooLarge(String)
}

package enum HTTPCodec {
    package static let maxHeadBytes = 64 * 1024
    package static let maxLineBytes = 16 * 1024
    package static let maxHeaderCount = 256

    /// The request line and headers, ending with the blank line.
    package static func serializeHead(method: String, target: String, headers: [(name: String, value: String)],
                              framing: BodyFraming) -> [UInt8] {
        var text = "\(method) \(target) HTTP/1.1\r\n"
        for header in headers { text += "\(header.name): \(header.value)\r\n" }
        switch framing {
        case .none: break
        case .length(let length): text += "Content-Length: \(length)\r\n"
        case .chunked: text += "Transfer-Encoding: chunked\r\n"
        case .untilClose: break
        }
        text += "\r\n"
        return Array(text.utf8)
    }

    /// `hex(size)\r\n` for a chunk of `size` bytes.
    package static func chunkSizeLine(_ size: Int) -> [UInt8] {
        Array((String(size, radix: 16) + "\r\n").utf8)
    }

    package static let crlf: [UInt8] = [13, 10]
    package static let lastChunk: [UInt8] = Array("0\r\n\r\n".utf8)

    /// Parses `HTTP/1.1 200 OK`.
    package static func parseStatusLine(_ line: String) throws(WireFailure) -> (status: Int, reason: String) {
        let parts = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3,
              let status = Int(parts[1]), (100...599).contains(status) else {
            throw .malformed("bad status line '\(line.prefix(80))'")
        }
        return (status, parts.count == 3 ? String(parts[2]) : "")
    }

    /// Parses `GET /path?q HTTP/1.1`: a token method, an origin-form target (or `*`) of visible
    /// ASCII, and HTTP/1.0 or 1.1.
    package static func parseRequestLine(_ line: String) throws(WireFailure) -> (method: String, target: String, version: String) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .malformed("bad request line '\(line.prefix(80))'") }
        let method = String(parts[0]), target = String(parts[1]), version = String(parts[2])
        let tchar: (UInt8) -> Bool = { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || Array("!#$%&'*+-.^_`|~".utf8).contains(b)
        }
        guard !method.isEmpty, method.utf8.allSatisfy(tchar) else { throw .malformed("bad method '\(method.prefix(40))'") }
        guard target == "*" || target.hasPrefix("/"), target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .malformed("bad request target '\(target.prefix(80))'")
        }
        guard version == "HTTP/1.1" || version == "HTTP/1.0" else { throw .malformed("unsupported version '\(version.prefix(20))'") }
        return (method, target, version)
    }

    /// The status line, headers and blank line of a response.
    package static func serializeResponseHead(status: Int, reason: String, headers: [HTTPHeader]) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(reason)\r\n"
        for header in headers { text += "\(header.name): \(header.value)\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }

    /// Splits `Name: value` lines; rejects obsolete line folding and empty names.
    package static func parseHeaders(_ lines: [String]) throws(WireFailure) -> [HTTPHeader] {
        var headers: [HTTPHeader] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex,
                  line.first != " ", line.first != "\t" else {
                throw .malformed("bad header line '\(line.prefix(80))'")
            }
            let name = String(line[line.startIndex..<colon])
            guard !name.contains(" "), !name.contains("\t") else {
                throw .malformed("bad header name '\(name.prefix(80))'")
            }
            let value = String(line[line.index(after: colon)...]).trimmingWhitespace()
            headers.append(HTTPHeader(name, value))
        }
        return headers
    }

    /// Body framing of a response to `method` (RFC 9112 section 6.3).
    package static func responseFraming(_ head: HTTPResponseHead, method: String) throws(WireFailure) -> BodyFraming {
        if method == "HEAD" || (100..<200).contains(head.status) || head.status == 204 || head.status == 304 {
            return .none
        }
        return try messageFraming(head.headers, isRequest: false)
    }

    /// Body framing from headers: chunked wins over Content-Length; a response without either is
    /// read until close, a request without either has no body.
    package static func messageFraming(_ headers: [HTTPHeader], isRequest: Bool) throws(WireFailure) -> BodyFraming {
        let encodings = headers.filter { $0.name.lowercased() == "transfer-encoding" }
            .flatMap { $0.value.split(separator: ",") }
            .map { String($0).trimmingWhitespace().lowercased() }
            .filter { !$0.isEmpty }
        if let last = encodings.last {
            if last == "chunked" { return .chunked }
            if isRequest { throw .malformed("unsupported transfer-encoding '\(last)'") }
            return .untilClose
        }
        let lengths = headers.filter { $0.name.lowercased() == "content-length" }.map(\.value)
        if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }), !first.isEmpty, first.utf8.count <= 19,
                  first.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let length = UInt64(first) else {
                throw .malformed("bad Content-Length '\(first.prefix(40))'")
            }
            return .length(length)
        }
        return isRequest ? .none : .untilClose
    }
}

/// Buffered reading of HTTP heads and bodies from a socket.
package struct HTTPWireReader {
    package let socket: StreamSocket
    package var deadline: IODeadline
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    /// Bytes received so far (head and body), for "did anything come back" decisions.
    package private(set) var bytesReceived: UInt64 = 0

    package init(socket: StreamSocket, deadline: IODeadline, bufferSize: Int = 64 * 1024) {
        self.socket = socket
        self.deadline = deadline
        self.buffer = [UInt8](repeating: 0, count: bufferSize)
    }

    /// Refills the buffer when empty. Returns false at end of stream.
    private mutating func fillIfEmpty() throws(WireFailure) -> Bool {
        if start < end { return true }
        start = 0
        end = 0
        let deadline = self.deadline
        let socket = self.socket
        var failure: SocketFailure?
        let n = buffer.withUnsafeMutableBytes { raw -> Int in
            do throws(SocketFailure) { return try socket.read(into: raw, deadline: deadline) } catch {
                failure = error
                return 0
            }
        }
        if let failure { throw .socket(failure) }
        end = n
        bytesReceived += UInt64(n)
        return n > 0
    }

    /// One line without its CRLF (a bare LF is tolerated). `nil` at a clean end of stream.
    package mutating func readLine(limit: Int = HTTPCodec.maxLineBytes, context: String) throws(WireFailure) -> [UInt8]? {
        var line: [UInt8] = []
        var sawAny = false
        while true {
            guard try fillIfEmpty() else {
                if !sawAny { return nil }
                throw .endOfStream("connection closed in the middle of \(context)")
            }
            sawAny = true
            if let newline = buffer[start..<end].firstIndex(of: 10) {
                line.append(contentsOf: buffer[start..<newline])
                start = newline + 1
                if line.last == 13 { line.removeLast() }
                guard line.count <= limit else { throw .tooLarge("\(context) line longer than \(limit) bytes") }
                return line
            }
            line.append(contentsOf: buffer[start..<end])
            start = end
            guard line.count <= limit + 1 else { throw .tooLarge("\(context) line longer than \(limit) bytes") }
        }
    }

    /// A start line and its header lines, up to the blank line.
    package mutating func readRawHead(context: String, maxBytes: Int = HTTPCodec.maxHeadBytes) throws(WireFailure) -> (startLine: String, headers: [HTTPHeader])? {
        var total = 0
        var startLine: String?
        var lines: [String] = []
        while true {
            guard let line = try readLine(limit: min(HTTPCodec.maxLineBytes, maxBytes), context: context) else {
                if startLine == nil && lines.isEmpty { return nil }
                throw .endOfStream("connection closed in the middle of \(context)")
            }
            total += line.count + 2
            guard total <= maxBytes else { throw .tooLarge("\(context) larger than \(maxBytes) bytes") }
            if startLine == nil {
                if line.isEmpty { continue }  // tolerate stray CRLF before a message
                startLine = String(decoding: line, as: UTF8.self)
                continue
            }
            if line.isEmpty { break }
            lines.append(String(decoding: line, as: UTF8.self))
            guard lines.count <= HTTPCodec.maxHeaderCount else { throw .tooLarge("\(context) has more than \(HTTPCodec.maxHeaderCount) headers") }
        }
        return (startLine ?? "", try HTTPCodec.parseHeaders(lines))
    }

    /// The final (non-1xx) response head.
    package mutating func readResponseHead() throws(WireFailure) -> HTTPResponseHead {
        while true {
            guard let raw = try readRawHead(context: "the response head") else {
                throw .endOfStream("connection closed before any response")
            }
            let (status, reason) = try HTTPCodec.parseStatusLine(raw.startLine)
            if (100..<200).contains(status) && status != 101 { continue }  // 100 Continue etc.
            return HTTPResponseHead(status: status, reason: reason, headers: raw.headers)
        }
    }

    /// The next request head (server side), at most `maxBytes` long. `nil` at a clean end of
    /// stream before any byte of a new request (a keep-alive connection the client closed).
    package mutating func readRequestHead(maxBytes: Int) throws(WireFailure) -> HTTPRequestHead? {
        guard let raw = try readRawHead(context: "the request head", maxBytes: maxBytes) else { return nil }
        let (method, target, version) = try HTTPCodec.parseRequestLine(raw.startLine)
        return HTTPRequestHead(method: method, target: target, version: version, headers: raw.headers)
    }

    /// Bytes already read from the socket but not yet consumed (a pipelined request's start).
    package var hasBufferedBytes: Bool { start < end }

    /// Feeds the body to `sink` piece by piece, as it arrives.
    package mutating func readBody(_ framing: BodyFraming,
                           sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        switch framing {
        case .none:
            return
        case .length(var remaining):
            while remaining > 0 {
                guard try fillIfEmpty() else {
                    throw WireFailure.endOfStream("connection closed with \(remaining) body bytes still to come")
                }
                let take = Int(min(UInt64(end - start), remaining))
                try deliver(take, to: sink)
                remaining -= UInt64(take)
            }
        case .untilClose:
            while try fillIfEmpty() {
                try deliver(end - start, to: sink)
            }
        case .chunked:
            while true {
                guard let sizeLine = try readLine(limit: 4096, context: "a chunk size") else {
                    throw WireFailure.endOfStream("connection closed before the last chunk")
                }
                let size = try Self.parseChunkSize(sizeLine)
                if size == 0 {
                    // Trailers, up to the blank line.
                    var trailerBytes = 0
                    while true {
                        guard let trailer = try readLine(context: "the chunked trailer") else {
                            throw WireFailure.endOfStream("connection closed in the chunked trailer")
                        }
                        if trailer.isEmpty { return }
                        trailerBytes += trailer.count
                        if trailerBytes > HTTPCodec.maxHeadBytes { throw WireFailure.tooLarge("chunked trailer too large") }
                    }
                }
                var remaining = size
                while remaining > 0 {
                    guard try fillIfEmpty() else {
                        throw WireFailure.endOfStream("connection closed in the middle of a chunk")
                    }
                    let take = Int(min(UInt64(end - start), remaining))
                    try deliver(take, to: sink)
                    remaining -= UInt64(take)
                }
                guard let terminator = try readLine(limit: 0, context: "a chunk terminator"), terminator.isEmpty else {
                    throw WireFailure.malformed("chunk not followed by CRLF")
                }
            }
        }
    }

    private mutating func deliver(_ count: Int, to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let range = start..<(start + count)
        start += count
        try buffer.withUnsafeBytes { raw in
            try sink(UnsafeRawBufferPointer(rebasing: raw[range]))
        }
    }

    /// Hex size, ignoring `;extensions`.
    package static func parseChunkSize(_ line: [UInt8]) throws(WireFailure) -> UInt64 {
        var digits = line[...]
        if let semicolon = digits.firstIndex(of: UInt8(ascii: ";")) { digits = digits[..<semicolon] }
        while let last = digits.last, last == 32 || last == 9 { digits = digits.dropLast() }
        guard !digits.isEmpty, digits.count <= 15 else {
            throw .malformed("bad chunk size '\(String(decoding: line.prefix(40), as: UTF8.self))'")
        }
        var value: UInt64 = 0
        for byte in digits {
            let digit: UInt64
            switch byte {
            case 48...57: digit = UInt64(byte - 48)
            case 65...70: digit = UInt64(byte - 55)
            case 97...102: digit = UInt64(byte - 87)
            default: throw .malformed("bad chunk size '\(String(decoding: line.prefix(40), as: UTF8.self))'")
            }
            value = value * 16 + digit
        }
        return value
    }
}

/// Splits a byte stream into lines (LF, optional CR before it), each at most `limit` bytes.
package struct LineSplitter {
    package let limit: Int
    private var pending: [UInt8] = []

    package init(limit: Int) { self.limit = limit }

    /// Appends bytes and calls `line` for every complete line.
    package mutating func feed(_ bytes: UnsafeRawBufferPointer, line: ([UInt8]) throws -> Void) throws {
        var index = bytes.startIndex
        while index < bytes.endIndex {
            if let newline = bytes[index...].firstIndex(of: 10) {
                pending.append(contentsOf: bytes[index..<newline])
                index = newline + 1
                if pending.last == 13 { pending.removeLast() }
                let complete = pending
                pending.removeAll(keepingCapacity: true)
                try checkLimit(complete.count)
                try line(complete)
            } else {
                pending.append(contentsOf: bytes[index...])
                index = bytes.endIndex
                try checkLimit(pending.count)
            }
        }
    }

    /// Delivers a final line without a newline, if any.
    package mutating func finish(line: ([UInt8]) throws -> Void) throws {
        if !pending.isEmpty {
            let rest = pending
            pending.removeAll()
            try line(rest)
        }
    }

    private func checkLimit(_ count: Int) throws {
        if count > limit { throw WireFailure.tooLarge("a streamed message longer than \(limit) bytes") }
    }
}
