import Testing
@testable import CaissonTOML

struct PositionCase: CustomTestStringConvertible, Sendable {
    var input: String
    var line: Int
    var column: Int
    var message: String
    var spec: TOMLSpec = .latest
    var testDescription: String { "\(line):\(column) \(message) (TOML \(spec.rawValue))" }
}

@Suite struct ErrorPositionTests {
    static let cases: [PositionCase] = [
        .init(input: "a = 1\nb = \n", line: 2, column: 5, message: "expected a value after '='"),
        .init(input: "a = 1\nname \"x\"", line: 2, column: 6, message: "expected '=' after the key 'name'"),
        .init(input: "[a]\nb = 1\n\n[a]", line: 4, column: 2, message: "table [a] is defined more than once"),
        .init(input: "x = 1\nx = 2", line: 2, column: 1, message: "duplicate key 'x'"),
        .init(input: "[s]\nk.v = 1\nk.v = 2", line: 3, column: 3, message: "duplicate key 's.k.v'"),
        .init(input: "s = \"ab\\qc\"", line: 1, column: 8, message: "invalid escape sequence '\\q'"),
        .init(input: "\ts = 'abc", line: 1, column: 10, message: "unterminated string"),
        .init(input: "n = 0x", line: 1, column: 5, message: "invalid number '0x'"),
        .init(input: "n = 12 34", line: 1, column: 8, message: "expected a newline or a comment, found '3'"),
        .init(input: "d = 2023-02-29", line: 1, column: 5, message: "invalid date: day 29"),
        .init(input: "t = 10:61:00", line: 1, column: 5, message: "minute 61"),
        .init(input: "a = [1, 2\nb = 3", line: 2, column: 1, message: "expected ',' or ']' in the array"),
        .init(input: "a = [1,\n2", line: 2, column: 2, message: "unterminated array (opened at line 1, column 5)"),
        .init(input: "a = { b = 1,}", line: 1, column: 13, message: "trailing comma", spec: .v1_0),
        .init(input: "a = { b = 1\n}", line: 1, column: 12, message: "single line", spec: .v1_0),
        .init(input: "a = { b = 1,\n, }", line: 2, column: 1, message: "expected a key, found ','"),
        .init(input: "a = { b = 1 c = 2 }", line: 1, column: 13, message: "expected ',' or '}' in the inline table"),
        .init(input: "s = \"\\x4\"", line: 1, column: 6, message: "'\\x' needs 2 hexadecimal digits"),
        .init(input: "s = \"\\x41\"", line: 1, column: 6, message: "invalid escape sequence '\\x'", spec: .v1_0),
        .init(input: "t = 07:32", line: 1, column: 10, message: "seconds are required", spec: .v1_0),
        .init(input: "[a.b]\n[a]\nb.c = 1", line: 3, column: 1, message: "cannot add keys to table 'a.b'"),
        .init(input: "a = 1\n[a.b]", line: 2, column: 2, message: "it is already an integer"),
        .init(input: "# é comment\nkey = é", line: 2, column: 7, message: "expected a value, found 'é' (U+00E9)"),
        .init(input: "s = \"é\u{1}\"", line: 1, column: 7, message: "control character U+0001"),
        .init(input: "a = 1\r\nb = 2\r\nc = @", line: 3, column: 5, message: "expected a value, found '@'"),
        .init(input: "a = 1\rb = 2", line: 1, column: 6, message: "carriage return"),
        .init(input: "[[a]\nx = 1", line: 1, column: 5, message: "expected ']]'"),
        .init(input: "k = \"\\uD83D\"", line: 1, column: 6, message: "not a Unicode scalar value"),
        .init(input: "\u{FEFF}x = \n", line: 1, column: 5, message: "expected a value"),
    ]

    @Test(arguments: cases)
    func errorPosition(_ c: PositionCase) {
        do {
            _ = try TOML.parse(c.input, spec: c.spec)
            Issue.record("expected an error for \(c.input.debugDescription)")
        } catch {
            #expect(error.line == c.line)
            #expect(error.column == c.column)
            #expect(error.message.contains(c.message), "message was: \(error.message)")
        }
    }

    @Test func descriptionFormat() {
        let e = TOMLError(line: 3, column: 14, message: "expected '=' after key")
        #expect(e.description == "line 3, column 14: expected '=' after key")
    }

    @Test func invalidUTF8ReportsItsPosition() {
        // "a = 1\nb = \"x" then a lone continuation byte.
        var bytes = Array("a = 1\nb = \"x".utf8)
        bytes.append(0x80)
        bytes += Array("\"\n".utf8)
        #expect(throws: TOMLError(line: 2, column: 7, message: "invalid UTF-8 (byte 0x80)")) {
            try TOML.parse(bytes)
        }
    }

    @Test(arguments: [
        [0xC0, 0xAF] as [UInt8],          // overlong '/'
        [0xE0, 0x80, 0xAF],               // overlong
        [0xED, 0xA0, 0x80],               // encoded surrogate U+D800
        [0xF4, 0x90, 0x80, 0x80],         // beyond U+10FFFF
        [0xF5, 0x80, 0x80, 0x80],
        [0xE2, 0x82],                     // truncated at end of input
        [0xFF],
    ])
    func invalidUTF8SequencesRejectedInComments(_ seq: [UInt8]) {
        let bytes = Array("# ".utf8) + seq
        #expect(throws: TOMLError.self) { try TOML.parse(bytes) }
        do {
            _ = try TOML.parse(bytes)
        } catch {
            #expect(error.line == 1 && error.column == 3)
            #expect(error.message.hasPrefix("invalid UTF-8"))
        }
    }

    @Test func validMultibyteUTF8Accepted() throws {
        let t = try TOML.parse("k = \"日本語 😀 \u{10FFFF}\"")
        #expect(t["k"] == .string("日本語 😀 \u{10FFFF}"))
    }
}

@Suite struct LimitTests {
    @Test func nestingAtTheLimitIsAccepted() throws {
        // Array levels 1...128 under the root.
        let text = "a = " + String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        let t = try TOML.parse(text)
        var v = try #require(t["a"])
        var depth = 0
        while case .array(let items) = v, let first = items.first { v = first; depth += 1 }
        #expect(depth == 127)
    }

    @Test func nestingOverTheLimitIsAnError() {
        let text = "a = " + String(repeating: "[", count: 129) + String(repeating: "]", count: 129)
        #expect(throws: TOMLError(line: 1, column: 133, message: "nesting is deeper than the limit of 128 levels")) {
            try TOML.parse(text)
        }
    }

    @Test func hugeNestingIsAnErrorNotACrash() {
        let arrays = "a = " + String(repeating: "[", count: 200_000)
        #expect(throws: TOMLError.self) { try TOML.parse(arrays) }
        let tables = "a = " + String(repeating: "{b=", count: 100_000)
        #expect(throws: TOMLError.self) { try TOML.parse(tables) }
        let mixed = "a = " + String(repeating: "[{b=", count: 100_000)
        #expect(throws: TOMLError.self) { try TOML.parse(mixed) }
    }

    @Test func deepKeysCountTowardTheLimit() {
        let header = "[" + Array(repeating: "k", count: 129).joined(separator: ".") + "]"
        #expect(throws: TOMLError.self) { try TOML.parse(header) }
        let dotted = Array(repeating: "k", count: 130).joined(separator: ".") + " = 1"
        #expect(throws: TOMLError.self) { try TOML.parse(dotted) }
        let ok = Array(repeating: "k", count: 129).joined(separator: ".") + " = 1"  // 128 tables + an integer
        #expect((try? TOML.parse(ok)) != nil)
        // Keys and values add up: 100 table levels plus 29 array levels is too deep.
        let combined = "[" + Array(repeating: "k", count: 100).joined(separator: ".") + "]\nv = "
            + String(repeating: "[", count: 29) + String(repeating: "]", count: 29)
        #expect(throws: TOMLError.self) { try TOML.parse(combined) }
    }

    @Test func customLimits() throws {
        let limits = TOMLLimits(maxDepth: 2, maxInputBytes: 64)
        #expect(try TOML.parse("a = [[1]]", limits: limits)["a"] == [[1]])
        #expect(throws: TOMLError.self) { try TOML.parse("a = [[[1]]]", limits: limits) }
        #expect(throws: TOMLError.self) { try TOML.parse("[a.b.c]", limits: limits) }
        let big = "a = \"" + String(repeating: "x", count: 100) + "\""
        do {
            _ = try TOML.parse(big, limits: limits)
            Issue.record("expected a size error")
        } catch {
            #expect(error.message.contains("more than the limit of 64 bytes"))
        }
    }
}

/// Deterministic mutation fuzzing: whatever the bytes, parsing returns a table or a positioned
/// error, never a crash or hang.
@Suite struct RobustnessTests {
    struct SplitMix64 {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static let seed = """
        # catalog
        catalog_version = 1
        [[services]]
        name = "frontend"
        ports = [ 80, 443, 0x1F, 1e3, -inf, ]
        when = 1979-05-27T07:32:00.5-07:00
        day = 2000-02-29
        at = 07:32:00
        text = \"\"\"
        multi \\
          line "q" \\u00e9\"\"\"
        lit = '''raw\\n'''
        inline = { a.b = 1, c = [ { d = 'x' } ] }
        [services.docker]
        "quoted key" = true
        """

    @Test func mutatedDocumentsNeverCrash() {
        var rng = SplitMix64(state: 0xC0FFEE)
        let base = Array(Self.seed.utf8)
        let alphabet = Array("[]{}=.,\"'#\\\n\r\t _-+:0123456789eEinftxob".utf8) + [0x00, 0x7F, 0xC3, 0xA9, 0xFF, 0xED]
        var parsed = 0
        var rejected = 0
        for _ in 0..<3000 {
            var doc = base
            for _ in 0..<(1 + rng.below(4)) {
                guard !doc.isEmpty else { break }
                let at = rng.below(doc.count)
                switch rng.below(3) {
                case 0: doc[at] = alphabet[rng.below(alphabet.count)]
                case 1: doc.insert(alphabet[rng.below(alphabet.count)], at: at)
                default: doc.remove(at: at)
                }
            }
            do {
                _ = try TOML.parse(doc)
                parsed += 1
            } catch {
                #expect(error.line >= 1 && error.column >= 1 && !error.message.isEmpty)
                rejected += 1
            }
        }
        #expect(parsed + rejected == 3000)
        #expect(parsed > 0 && rejected > 0)
    }

    @Test func everyPrefixOfADocumentParsesOrFailsCleanly() {
        let base = Array(Self.seed.utf8)
        var errors = 0
        for n in 0...base.count {
            do { _ = try TOML.parse(Array(base[0..<n])) } catch {
                #expect(error.line >= 1)
                errors += 1
            }
        }
        #expect(errors > 0)
    }
}
