import CaissonCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A streaming reader of one `multipart/form-data` body (RFC 7578), for the upload form that
/// works without JavaScript: small fields are collected (bounded), a file part's bytes are handed
/// on as they arrive and never held (at most one delimiter's length is kept back between chunks).
final class MultipartStream {
    struct PartHead: Sendable, Equatable {
        var name: String
        /// Set for a file part (empty when the browser sent the form without a file chosen).
        var filename: String?
    }

    static let maxHeaderBytes = 16 * 1024
    static let maxFieldBytes = 4 * 1024
    static let maxFields = 32

    /// A small field, once complete.
    var onField: (String, String) throws -> Void = { _, _ in }
    /// A file part begins (throw to refuse it before any of its bytes are handed on).
    var onFileStart: (PartHead) throws -> Void = { _ in }
    var onFileData: (UnsafeRawBufferPointer) throws -> Void = { _ in }

    private enum State {
        case preamble
        case afterDelimiter
        case headers
        case field(String)
        case file
        case done
    }

    private let delimiter: [UInt8]
    private var state = State.preamble
    /// The body is read as if it began with CRLF, so the first boundary matches the delimiter.
    private var buffer: [UInt8] = [13, 10]
    private var fieldValue: [UInt8] = []
    private var fields = 0

    /// The boundary of a `multipart/form-data` Content-Type, nil when it is another type or the
    /// boundary is missing or invalid (RFC 2046: 1 to 70 characters).
    static func boundary(contentType: String?) -> String? {
        guard let contentType else { return nil }
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.first?.lowercased() == "multipart/form-data" else { return nil }
        for p in parts.dropFirst() {
            let kv = p.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, kv[0].lowercased() == "boundary" else { continue }
            var b = kv[1]
            if b.hasPrefix("\""), b.hasSuffix("\""), b.count >= 2 { b = String(b.dropFirst().dropLast()) }
            guard (1...70).contains(b.utf8.count), b.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) else { return nil }
            return b
        }
        return nil
    }

    init(boundary: String) {
        delimiter = Array("\r\n--\(boundary)".utf8)
    }

    static func malformed(_ why: String) -> CaissonError {
        CaissonError("upload.malformed", "the upload form could not be read (\(why)); nothing was kept")
    }

    func feed(_ chunk: UnsafeRawBufferPointer) throws {
        buffer.append(contentsOf: chunk)
        try process()
    }

    /// The body ended: it must have ended with the closing boundary.
    func finish() throws {
        guard case .done = state else { throw Self.malformed("it ended before its closing boundary") }
    }

    /// The first offset of `needle` in the buffer (memchr for its first byte, then memcmp).
    private func find(_ needle: [UInt8], from: Int = 0) -> Int? {
        buffer.withUnsafeBytes { hay in
            needle.withUnsafeBytes { n in
                let count = hay.count, m = n.count
                guard m > 0, count - from >= m, let base = hay.baseAddress, let nb = n.baseAddress else { return nil }
                let first = Int32(n[0])
                var i = from
                while i <= count - m {
                    guard let hit = memchr(base + i, first, count - m - i + 1) else { return nil }
                    let at = UnsafeRawPointer(hit) - base
                    if memcmp(base + at, nb, m) == 0 { return at }
                    i = at + 1
                }
                return nil
            }
        }
    }

    private func process() throws {
        while true {
            switch state {
            case .done:
                buffer.removeAll(keepingCapacity: true)  // the epilogue is ignored
                return
            case .preamble:
                guard let at = find(delimiter) else {
                    guard buffer.count < 1024 + delimiter.count else { throw Self.malformed("no boundary where the form should begin") }
                    return
                }
                buffer.removeFirst(at + delimiter.count)
                state = .afterDelimiter
            case .afterDelimiter:
                guard buffer.count >= 2 else { return }
                if buffer[0] == 45 && buffer[1] == 45 {  // "--": the closing boundary
                    state = .done
                } else if buffer[0] == 13 && buffer[1] == 10 {
                    buffer.removeFirst(2)
                    state = .headers
                } else if buffer[0] == 32 || buffer[0] == 9 {
                    buffer.removeFirst()  // transport padding after a boundary
                } else {
                    throw Self.malformed("unexpected bytes after a boundary")
                }
            case .headers:
                guard let end = find([13, 10, 13, 10]) else {
                    guard buffer.count <= Self.maxHeaderBytes else { throw Self.malformed("a part's headers are too long") }
                    return
                }
                let text = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeFirst(end + 4)
                let head = try Self.partHead(text)
                fields += 1
                guard fields <= Self.maxFields else { throw Self.malformed("too many fields") }
                if head.filename != nil {
                    try onFileStart(head)
                    state = .file
                } else {
                    fieldValue.removeAll(keepingCapacity: true)
                    state = .field(head.name)
                }
            case .field(let name):
                if let at = find(delimiter) {
                    fieldValue += buffer[..<at]
                    buffer.removeFirst(at + delimiter.count)
                    guard fieldValue.count <= Self.maxFieldBytes else { throw Self.malformed("a field is too long") }
                    try onField(name, String(decoding: fieldValue, as: UTF8.self))
                    state = .afterDelimiter
                } else {
                    let keep = delimiter.count - 1
                    if buffer.count > keep {
                        fieldValue += buffer[..<(buffer.count - keep)]
                        buffer.removeFirst(buffer.count - keep)
                    }
                    guard fieldValue.count <= Self.maxFieldBytes else { throw Self.malformed("a field is too long") }
                    return
                }
            case .file:
                if let at = find(delimiter) {
                    if at > 0 { try buffer.withUnsafeBytes { try onFileData(UnsafeRawBufferPointer(rebasing: $0[..<at])) } }
                    buffer.removeFirst(at + delimiter.count)
                    state = .afterDelimiter
                } else {
                    let keep = delimiter.count - 1
                    let n = buffer.count - keep
                    guard n > 0 else { return }
                    try buffer.withUnsafeBytes { try onFileData(UnsafeRawBufferPointer(rebasing: $0[..<n])) }
                    buffer.removeFirst(n)
                    return
                }
            }
        }
    }

    /// `Content-Disposition: form-data; name="file"; filename="a.edgepkg"` (other headers ignored).
    static func partHead(_ text: String) throws -> PartHead {
        for line in text.split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":"),
                  line[..<colon].trimmingCharacters(in: .whitespaces).lowercased() == "content-disposition" else { continue }
            let params = parameters(String(line[line.index(after: colon)...]))
            guard params.first?.0 == "form-data", let name = params.first(where: { $0.0 == "name" })?.1 else {
                throw malformed("a part is not a form field")
            }
            return PartHead(name: name, filename: params.first { $0.0 == "filename" }?.1)
        }
        throw malformed("a part has no Content-Disposition")
    }

    /// `form-data; name="a;b"; filename="x"` → [("form-data", ""), ("name", "a;b"), ("filename", "x")].
    static func parameters(_ text: String) -> [(String, String)] {
        var out: [(String, String)] = []
        var chars = Substring(text)
        while !chars.isEmpty {
            chars = chars.drop { $0 == " " || $0 == "\t" || $0 == ";" }
            let key = chars.prefix { $0 != "=" && $0 != ";" }
            chars = chars.dropFirst(key.count)
            var value = ""
            if chars.first == "=" {
                chars = chars.dropFirst()
                if chars.first == "\"" {
                    chars = chars.dropFirst()
                    while let c = chars.first, c != "\"" {
                        if c == "\\", chars.count > 1 { chars = chars.dropFirst() }
                        value.append(chars.first!)
                        chars = chars.dropFirst()
                    }
                    chars = chars.dropFirst()
                } else {
                    let v = chars.prefix { $0 != ";" }
                    value = String(v).trimmingCharacters(in: .whitespaces)
                    chars = chars.dropFirst(v.count)
                }
            }
            let k = key.trimmingCharacters(in: .whitespaces).lowercased()
            if !k.isEmpty { out.append((k, value)) }
        }
        return out
    }
}
