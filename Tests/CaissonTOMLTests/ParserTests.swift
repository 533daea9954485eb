import Foundation
import Testing
@testable import CaissonTOML

private func parse(_ text: String) throws -> TOMLTable { try TOML.parse(text) }

private func value(_ text: String) throws -> TOMLValue? { try TOML.parse("v = " + text)["v"] }

@Suite struct KeyTests {
    @Test func bareQuotedAndDottedKeys() throws {
        let t = try parse("""
            bare_key-1 = 1
            "quoted key" = 2
            'literal "key"' = 3
            "" = 4
            a . b. "c d" = 5
            1234 = 6
            3.14159 = 7
            """)
        #expect(t["bare_key-1"] == .integer(1))
        #expect(t["quoted key"] == .integer(2))
        #expect(t["literal \"key\""] == .integer(3))
        #expect(t[""] == .integer(4))
        #expect(t.value(at: ["a", "b", "c d"]) == .integer(5))
        #expect(t["1234"] == .integer(6))
        #expect(t.value(at: ["3", "14159"]) == .integer(7))
    }

    @Test func keysKeepDocumentOrder() throws {
        let t = try parse("zeta = 1\nalpha = 2\n[mid]\nx = 1\n[aaa]\n")
        #expect(t.keys == ["zeta", "alpha", "mid", "aaa"])
        #expect(t.map(\.key) == ["zeta", "alpha", "mid", "aaa"])
    }

    @Test func escapedKey() throws {
        let t = try parse(#""a\u00e9\n" = 1"#)
        #expect(t["aé\n"] == .integer(1))
    }
}

@Suite struct StringTests {
    @Test func basicEscapes() throws {
        #expect(try value(#""\b\t\n\f\r\"\\ \u00E9 \U0001F600""#) == .string("\u{8}\t\n\u{C}\r\"\\ é 😀"))
    }

    @Test(arguments: [#""\uD800""#, #""\uDFFF""#, #""\U00110000""#, #""\UFFFFFFFF""#, #""\u12""#])
    func badEscapesRejected(_ text: String) {
        #expect(throws: TOMLError.self) { try value(text) }
    }

    @Test(arguments: [#""\x41""#, #""\e""#])
    func escapesNewIn11RejectedIn10(_ text: String) {
        #expect(throws: TOMLError.self) { try TOML.parse("v = " + text, spec: .v1_0) }
    }

    @Test func literalStringsHaveNoEscapes() throws {
        #expect(try value(#"'C:\Users\nodejs'"#) == .string(#"C:\Users\nodejs"#))
    }

    @Test func multilineBasicTrimsFirstNewlineAndLineEndingBackslash() throws {
        let text = "\"\"\"\nRoses are red\nViolets are \\   \n\n     blue\"\"\""
        #expect(try value(text) == .string("Roses are red\nViolets are blue"))
    }

    @Test func multilineQuotesNextToDelimiters() throws {
        let q = "\""
        let three = String(repeating: q, count: 3)
        #expect(try value(three + q + "one" + q + three) == .string(q + "one" + q))
        #expect(try value(three + q + q + "two" + q + q + three) == .string(q + q + "two" + q + q))
        #expect(try value("'''''x'''''") == .string("''x''"))
        #expect(throws: TOMLError.self) { try value(three + "a" + three + three) }
    }

    @Test func multilineLiteralKeepsBackslashes() throws {
        #expect(try value("'''\nfirst \\\n  second'''") == .string("first \\\n  second"))
    }

    @Test func crlfInsideMultilineStringsBecomesLF() throws {
        let t = try TOML.parse(Array("a = \"\"\"\r\nx\r\ny\"\"\"\r\nb = '''p\r\nq'''\r\n".utf8))
        #expect(t["a"] == .string("x\ny"))
        #expect(t["b"] == .string("p\nq"))
    }

    @Test func controlCharactersRejected() {
        #expect(throws: TOMLError.self) { try value("\"a\u{1}b\"") }
        #expect(throws: TOMLError.self) { try value("'a\u{7F}b'") }
        #expect(throws: TOMLError.self) { try value("\"\"\"a\u{0}b\"\"\"") }
        #expect(throws: TOMLError.self) { try parse("a = 1 # bad \u{1F} comment") }
        #expect(throws: TOMLError.self) { try parse("a = 1 # bare \r comment") }
        #expect(throws: TOMLError.self) { try value("\"one\ntwo\"") }
    }

    @Test func tabsAllowedInStringsAndComments() throws {
        let t = try parse("a = \"x\ty\" # a\tcomment\nb = 'p\tq'")
        #expect(t["a"] == .string("x\ty"))
        #expect(t["b"] == .string("p\tq"))
    }
}

@Suite struct NumberTests {
    @Test func integers() throws {
        #expect(try value("+99") == .integer(99))
        #expect(try value("-17") == .integer(-17))
        #expect(try value("0") == .integer(0))
        #expect(try value("-0") == .integer(0))
        #expect(try value("1_000_000") == .integer(1_000_000))
        #expect(try value("0xDEAD_beef") == .integer(0xDEADBEEF))
        #expect(try value("0o755") == .integer(0o755))
        #expect(try value("0b1101_0110") == .integer(0b1101_0110))
        #expect(try value("9223372036854775807") == .integer(.max))
        #expect(try value("-9223372036854775808") == .integer(.min))
        #expect(try value("0x7FFFFFFFFFFFFFFF") == .integer(.max))
    }

    @Test(arguments: ["9223372036854775808", "-9223372036854775809", "0x8000000000000000", "01", "+01",
                      "1__0", "_1", "1_", "0x", "0X1F", "+0x1", "-0b1", "0b2", "0o8", "1_000_", "0x_1",
                      "99999999999999999999999"])
    func badIntegers(_ text: String) {
        #expect(throws: TOMLError.self) { try value(text) }
    }

    @Test func floats() throws {
        #expect(try value("+1.0") == .float(1.0))
        #expect(try value("3.1415") == .float(3.1415))
        #expect(try value("-0.01") == .float(-0.01))
        #expect(try value("5e+22") == .float(5e22))
        #expect(try value("1e06") == .float(1e6))
        #expect(try value("-2E-2") == .float(-0.02))
        #expect(try value("6.626e-34") == .float(6.626e-34))
        #expect(try value("224_617.445_991_228") == .float(224_617.445_991_228))
        #expect(try value("inf") == .float(.infinity))
        #expect(try value("+inf") == .float(.infinity))
        #expect(try value("-inf") == .float(-.infinity))
        #expect(try value("nan")?.float?.isNaN == true)
        #expect(try value("-nan")?.float?.isNaN == true)
        let negZero = try #require(try value("-0.0")?.float)
        #expect(negZero == 0 && negZero.sign == .minus)
    }

    @Test(arguments: [".7", "7.", "3.e+20", "1e", "1e+", "1.5_", "1._5", "1e_5", "01.5", "-01.5", "Inf", "NaN",
                      "infinity", "nan_", "1.2.3", "1e2.3", "1ee2", "+.5"])
    func badFloats(_ text: String) {
        #expect(throws: TOMLError.self) { try value(text) }
    }

    @Test func booleans() throws {
        #expect(try value("true") == .boolean(true))
        #expect(try value("false") == .boolean(false))
        for bad in ["True", "FALSE", "tru", "falsey", "t"] {
            #expect(throws: TOMLError.self) { try value(bad) }
        }
    }
}

@Suite struct DateTimeTests {
    @Test func offsetDateTimes() throws {
        let v = try #require(try value("1979-05-27T00:32:00.999999-07:00")?.datetime)
        #expect(v.kind == .offsetDateTime)
        #expect([v.year, v.month, v.day, v.hour, v.minute, v.second] as [Int] == [1979, 5, 27, 0, 32, 0])
        #expect(v.fraction == "999999")
        #expect(v.offsetMinutes == -420)
        #expect(v.rfc3339 == "1979-05-27T00:32:00.999999-07:00")
        #expect(v.epochSeconds == 296_638_320)
        #expect(v.nanosecond == 999_999_000)

        let z = try #require(try value("1979-05-27 07:32:00z")?.datetime)
        #expect(z.kind == .offsetDateTime && z.offsetMinutes == 0)
        #expect(z.rfc3339 == "1979-05-27T07:32:00Z")
        #expect(z.epochSeconds == 296_638_320)
    }

    @Test func fractionKeptExactly() throws {
        let v = try #require(try value("07:32:00.123456789012")?.datetime)
        #expect(v.fraction == "123456789012")
        #expect(v.rfc3339 == "07:32:00.123456789012")
        #expect(v.nanosecond == 123_456_789)
    }

    @Test func localKinds() throws {
        #expect(try value("1979-05-27T07:32:00")?.datetime?.kind == .localDateTime)
        #expect(try value("1979-05-27")?.datetime?.kind == .localDate)
        #expect(try value("07:32:00")?.datetime?.kind == .localTime)
        #expect(try value("1979-05-27")?.datetime?.rfc3339 == "1979-05-27")
        #expect(try value("1979-05-27")?.datetime?.epochSeconds == nil)
        // A date followed by a space and a comment stays a date.
        #expect(try parse("d = 1979-05-27 # note")["d"]?.datetime?.kind == .localDate)
    }

    @Test func leapYears() throws {
        #expect(try value("2000-02-29")?.datetime?.day == 29)
        #expect(try value("2024-02-29T12:00:00Z")?.datetime?.day == 29)
        #expect(throws: TOMLError.self) { try value("1900-02-29") }
        #expect(throws: TOMLError.self) { try value("2023-02-29") }
        #expect(throws: TOMLError.self) { try value("2024-02-30") }
        #expect(throws: TOMLError.self) { try value("2024-04-31") }
    }

    @Test func leapSecondAllowedButNotSixtyOne() throws {
        #expect(try value("1990-12-31T23:59:60Z")?.datetime?.second == 60)
        #expect(throws: TOMLError.self) { try value("1990-12-31T23:59:61Z") }
    }

    @Test(arguments: ["1979-13-01", "1979-00-01", "1979-01-00", "1979-01-32", "24:00:00", "12:60:00",
                      "1979-05-27T07:3", "07:3", "07:32.5", "1979-05-27T07:32.5Z", "1979-5-27", "79-05-27", "10000-01-01", "1979-05-27T",
                      "1979-05-27T07:32:00.", "1979-05-27T07:32:00+24:00", "1979-05-27T07:32:00+07:60",
                      "1979-05-27T07:32:00+7:00", "1979-05-27T07:32:00Zx", "1979-05-27 07:32:00X"])
    func badDateTimes(_ text: String) {
        #expect(throws: TOMLError.self) { try value(text) }
    }

    @Test func parsingInitializer() {
        #expect(TOMLDateTime(parsing: "2026-03-16T18:30:00Z")?.epochSeconds == 1_773_685_800)
        #expect(TOMLDateTime(parsing: "2026-03-16")?.kind == .localDate)
        #expect(TOMLDateTime(parsing: "2026-03-16T18:30:00Z trailing") == nil)
        #expect(TOMLDateTime(parsing: "") == nil)
    }
}

@Suite struct StructureTests {
    @Test func arraysMayMixTypesAndSpanLines() throws {
        let v = try value("""
            [
              1, "two", # comment
              [3.0, true],
              { four = 4 },
            ]
            """)
        #expect(v == .array([.integer(1), .string("two"), .array([.float(3), .boolean(true)]),
                             .table(["four": 4])]))
        #expect(try value("[]") == .array([]))
    }

    @Test func inlineTables() throws {
        let t = try parse(#"point = { x = 1, y.z = 2, "q" = { } }"#)
        #expect(t["point"] == .table(["x": 1, "y": .table(["z": 2]), "q": .table([:])]))
    }

    @Test func tablesAndArraysOfTables() throws {
        let t = try parse("""
            title = "x"
            [owner]
            name = "Tom"
            [servers.alpha]
            ip = "10.0.0.1"
            [[products]]
            name = "Hammer"
            [[products]]
            [[products]]
            name = "Nail"
            [products.dims]
            w = 1
            """)
        #expect(t["title"] == "x")
        #expect(t["owner"]?["name"] == "Tom")
        #expect(t.value(at: ["servers", "alpha", "ip"]) == "10.0.0.1")
        let products = try #require(t["products"]?.array)
        #expect(products.count == 3)
        #expect(products[1] == .table([:]))
        #expect(products[2]["dims"]?["w"] == 1)
    }

    @Test func superTableAfterSubTableIsAllowed() throws {
        let t = try parse("[x.y.z.w]\n[x]\na = 1\n")
        #expect(t["x"]?["a"] == 1)
        #expect(t["x"]?["y"]?["z"]?["w"] == .table([:]))
    }

    @Test func dottedKeysExtendTheirOwnSectionOnly() throws {
        let t = try parse("[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n[fruit.apple.texture]\nsmooth = true")
        #expect(t.value(at: ["fruit", "apple", "texture", "smooth"]) == true)
        #expect(t.value(at: ["fruit", "apple", "taste", "sweet"]) == true)
    }

    @Test(arguments: [
        "a = 1\na = 2",
        "[a]\n[a]",
        "[a]\nb = 1\n[a.b]",
        "a = {}\n[a.b]",
        "a = { b = 1 }\na.c = 2",
        "[fruit]\napple.color = 1\n[fruit.apple]",
        "[a.b.c]\nz = 9\n[a]\nb.c.t = 1",
        "[[a]]\n[a]",
        "[a]\n[[a]]",
        "a = []\n[[a]]",
        "[[a.b]]\n[a]\nb.y = 2",
        "a = {b = 1, b = 2}",
        "a.b = 1\na.b.c = 2",
        "[[albums.songs]]\n[[albums]]",
        "t = {a = 1,,}",
        "t = {a = 1\nb = 2}",
    ])
    func redefinitionsAndSyntaxErrors(_ text: String) {
        #expect(throws: TOMLError.self) { try parse(text) }
    }

    @Test(arguments: ["t = {a = 1,}", "t = {a = 1\n}"])
    func inlineTableFormsNewIn11RejectedIn10(_ text: String) {
        #expect(throws: TOMLError.self) { try TOML.parse(text, spec: .v1_0) }
    }

    @Test func emptyAndWhitespaceDocuments() throws {
        #expect(try parse("").isEmpty)
        #expect(try parse(" \t\n\r\n# only a comment\n").isEmpty)
        #expect(try TOML.parse([0xEF, 0xBB, 0xBF, 0x61, 0x3D, 0x31]) == ["a": 1])
    }

    @Test func genericCollectionEntryPoint() throws {
        let bytes: ArraySlice<UInt8> = Array("x = 1\ny = 2".utf8)[...]
        #expect(try TOML.parse(bytes) == ["x": 1, "y": 2])
        #expect(try TOML.parse(Data("z = 3".utf8)) == ["z": 3])
    }
}

@Suite struct ValueModelTests {
    @Test func accessors() {
        let v: TOMLValue = ["s": "x", "i": 3, "f": 1.5, "b": true, "a": [1, 2]]
        #expect(v["s"]?.string == "x")
        #expect(v["i"]?.integer == 3)
        #expect(v["i"]?.int == 3)
        #expect(v["i"]?.double == 3.0)
        #expect(v["i"]?.float == nil)
        #expect(v["f"]?.float == 1.5)
        #expect(v["b"]?.boolean == true)
        #expect(v["a"]?[1] == 2)
        #expect(v["a"]?[2] == nil)
        #expect(v["a"]?.array?.count == 2)
        #expect(v.table?.keys == ["s", "i", "f", "b", "a"])
        #expect(v["missing"] == nil)
        #expect(v["s"]?.integer == nil)
        #expect(TOMLValue.integer(1).typeDescription == "an integer")
    }

    @Test func tableEqualityIgnoresOrderAndRemovalKeepsOrder() {
        var a: TOMLTable = ["x": 1, "y": 2, "z": 3]
        let b: TOMLTable = ["z": 3, "y": 2, "x": 1]
        #expect(a == b)
        a["y"] = nil
        #expect(a.keys == ["x", "z"])
        #expect(a["z"] == 3)
        #expect(a != b)
    }
}
