/// One recipient stanza of an age header: `-> TYPE ARG...` and its body.
public struct AgeStanza: Equatable, Sendable {
    public var type: String
    public var arguments: [String]
    public var body: [UInt8]

    public init(type: String, arguments: [String], body: [UInt8]) {
        self.type = type
        self.arguments = arguments
        self.body = body
    }

    /// The stanza as it appears in a header (lines end with LF; the body wrapped at 64 columns,
    /// always ending with a short, possibly empty, line).
    var encoded: [UInt8] {
        var out = Array("->".utf8)
        for a in [type] + arguments { out += [UInt8(ascii: " ")] + Array(a.utf8) }
        out.append(UInt8(ascii: "\n"))
        let b64 = Array(UnpaddedBase64.encode(body).utf8)
        var i = 0
        while i + 64 <= b64.count {
            out += b64[i..<(i + 64)] + [UInt8(ascii: "\n")]
            i += 64
        }
        out += b64[i...] + [UInt8(ascii: "\n")]
        return out
    }
}

/// An age v1 header (C2SP age spec): the version line, the stanzas, the MAC.
public struct AgeHeader: Equatable, Sendable {
    public static let versionLine = "age-encryption.org/v1"
    /// Caisson's bound on a header (far above any real one: a recipient stanza is ~110 bytes).
    public static let defaultMaxBytes = 256 * 1024

    public var stanzas: [AgeStanza]
    public var mac: [UInt8]
    /// The bytes the MAC covers: the header up to and including `---`.
    var macInput: [UInt8]

    /// The header MAC under `fileKey`.
    static func mac(fileKey: [UInt8], macInput: [UInt8]) -> [UInt8] {
        let key = AgeCrypto.hkdf(ikm: fileKey, salt: [], info: "header", count: 32)
        return AgeCrypto.hmacSHA256(key: key, message: macInput)
    }

    /// Serialises a header for `stanzas` with its MAC under `fileKey`.
    static func encode(stanzas: [AgeStanza], fileKey: [UInt8]) -> [UInt8] {
        var out = Array(versionLine.utf8) + [UInt8(ascii: "\n")]
        for s in stanzas { out += s.encoded }
        out += Array("---".utf8)
        let mac = mac(fileKey: fileKey, macInput: out)
        return out + Array(" \(UnpaddedBase64.encode(mac))\n".utf8)
    }

    /// Whether the MAC verifies under `fileKey`.
    func verifies(fileKey: [UInt8]) -> Bool {
        AgeCrypto.equal(Self.mac(fileKey: fileKey, macInput: macInput), mac)
    }

    /// Parses header lines handed out one at a time by `nextLine` (each without its LF; nil at
    /// the end of the data). Strict: LF only, no CR anywhere, arguments of printable ASCII
    /// separated by single spaces, canonical unpadded base64 bodies in 64-column lines ending
    /// with a shorter line, the MAC a canonical 32-byte value after exactly one space.
    static func parse(nextLine: () throws(AgeError) -> [UInt8]?) throws(AgeError) -> AgeHeader {
        func bad(_ why: String) -> AgeError { AgeError(.headerInvalid, "the age header is invalid: \(why)") }
        guard let first = try nextLine() else { throw bad("the file ends before the version line") }
        var macInput = first + [UInt8(ascii: "\n")]
        guard first == Array(versionLine.utf8) else {
            if first.starts(with: Array("age-encryption.org/".utf8)) {
                throw bad("unsupported version \(printable(first)) (only \(versionLine) is read)")
            }
            throw bad("the first line is not \(versionLine)")
        }
        var stanzas: [AgeStanza] = []
        var line = try nextLine()
        while true {
            guard let current = line else { throw bad("the file ends inside the header") }
            if current.starts(with: Array("---".utf8)) {
                guard current.count > 4, current[3] == UInt8(ascii: " ") else {
                    throw bad("the MAC line must be '--- ' followed by the MAC")
                }
                let encoded = current[4...]
                guard let mac = UnpaddedBase64.decode(encoded), mac.count == 32 else {
                    throw bad("the header MAC is not a canonical base64 encoding of 32 bytes")
                }
                macInput += Array("---".utf8)
                return AgeHeader(stanzas: stanzas, mac: mac, macInput: macInput)
            }
            guard current.starts(with: Array("-> ".utf8)) else {
                throw bad("expected a stanza ('-> ') or the MAC line ('--- '), found \(printable(current))")
            }
            macInput += current + [UInt8(ascii: "\n")]
            let parts = current[3...].split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0 >= 33 && $0 <= 126 } }) else {
                throw bad("a stanza has an empty argument or characters outside printable ASCII")
            }
            let args = parts.map { String(decoding: $0, as: UTF8.self) }
            var body: [UInt8] = []
            while true {
                guard let b = try nextLine() else { throw bad("the file ends inside a stanza body") }
                macInput += b + [UInt8(ascii: "\n")]
                guard b.count <= 64 else { throw bad("a stanza body line is longer than 64 columns") }
                guard let decoded = UnpaddedBase64.decode(b) else {
                    throw bad("a stanza body is not canonical unpadded base64")
                }
                body += decoded
                if b.count < 64 { break }
            }
            stanzas.append(AgeStanza(type: args[0], arguments: Array(args.dropFirst()), body: body))
            line = try nextLine()
        }
    }

    static func printable(_ bytes: some Collection<UInt8>) -> String {
        let shown = bytes.prefix(40).map { $0 >= 32 && $0 < 127 ? Character(Unicode.Scalar($0)) : "?" }
        return "\"" + String(shown) + (bytes.count > 40 ? "…" : "") + "\""
    }
}
