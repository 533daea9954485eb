import Testing
@testable import CaissonTOML

/// What TOML 1.1 adds over 1.0, read in both modes: 1.1 accepts each construct with the value the
/// specification gives it, 1.0 refuses it (so the 1.0 mode really is 1.0).
@Suite struct SpecVersionTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var text: String
        var expected: TOMLTable
        var testDescription: String { name }
    }

    static let additions: [Case] = [
        Case(name: "newlines and comments in an inline table",
             text: "t = { # open\n  a = 1, # one\n  b = [1,\n 2], # two\n  c = { d = 3 }\n}\n",
             expected: ["t": ["a": 1, "b": [1, 2], "c": ["d": 3]]]),
        Case(name: "a trailing comma in an inline table",
             text: "t = { a = 1, }\nu = {\n  b = 2,\n}\n",
             expected: ["t": ["a": 1], "u": ["b": 2]]),
        Case(name: "the \\e escape",
             text: #"s = "a\eb""#,
             expected: ["s": .string("a\u{1B}b")]),
        Case(name: "the \\xHH escape (a code point, not a byte)",
             text: #"s = "\x41\xf8\x00""# + "\n" + #"m = """\x7F""""#,
             expected: ["s": .string("A\u{F8}\u{0}"), "m": .string("\u{7F}")]),
        Case(name: "a time without seconds",
             text: "t = 07:32\n",
             expected: ["t": .datetime(TOMLDateTime(kind: .localTime, hour: 7, minute: 32))]),
        Case(name: "date-times without seconds",
             text: "a = 1979-05-27T07:32Z\nb = 1979-05-27 07:32-07:00\nc = 1979-05-27T07:32\n",
             expected: [
                "a": .datetime(TOMLDateTime(kind: .offsetDateTime, year: 1979, month: 5, day: 27, hour: 7, minute: 32, offsetMinutes: 0)),
                "b": .datetime(TOMLDateTime(kind: .offsetDateTime, year: 1979, month: 5, day: 27, hour: 7, minute: 32, offsetMinutes: -420)),
                "c": .datetime(TOMLDateTime(kind: .localDateTime, year: 1979, month: 5, day: 27, hour: 7, minute: 32)),
             ]),
    ]

    @Test(arguments: additions)
    func acceptedIn11(_ c: Case) throws {
        #expect(try TOML.parse(c.text, spec: .v1_1) == c.expected)
        #expect(try TOML.parse(c.text) == c.expected, "1.1 is the default")
    }

    @Test(arguments: additions)
    func refusedIn10(_ c: Case) {
        #expect(throws: TOMLError.self) { try TOML.parse(c.text, spec: .v1_0) }
    }

    @Test func timeWithoutSecondsRendersZeroSeconds() throws {
        let t = try TOML.parse("t = 1979-05-27T07:32Z")
        #expect(t["t"]?.datetime?.rfc3339 == "1979-05-27T07:32:00Z")
    }

    @Test(arguments: ["t = { a = 1,, }", "t = { , }", "t = {\n,\n}", "t = { a = 1 \n b = 2 }",
                      #"s = "\x4""#, #"s = "\xZZ""#, #"s = "\x""#,
                      "t = 07:32.5", "t = 1979-05-27T07:32.5Z", "t = 7:32", "t = { a = 1 } , "])
    func stillInvalidIn11(_ text: String) {
        #expect(throws: TOMLError.self) { try TOML.parse(text, spec: .v1_1) }
    }

    @Test func literalStringsKeepBackslashX() throws {
        #expect(try TOML.parse(#"s = '\x41'"#)["s"] == #"\x41"#)
    }

    @Test func stringDateTimesStayRFC3339() {
        // `TOMLDateTime(parsing:)` reads RFC 3339 text held in strings, where seconds are required.
        #expect(TOMLDateTime(parsing: "2026-03-16T18:30Z") == nil)
        #expect(TOMLDateTime(parsing: "2026-03-16T18:30:00Z") != nil)
    }

    @Test func decoderUsesItsSpec() throws {
        struct Doc: Decodable { var t: [String: Int] }
        let text = "t = {\n a = 1,\n}\n"
        #expect(try TOMLDecoder().decode(Doc.self, from: text).t == ["a": 1])
        #expect(throws: TOMLError.self) { try TOMLDecoder(spec: .v1_0).decode(Doc.self, from: text) }
    }
}
