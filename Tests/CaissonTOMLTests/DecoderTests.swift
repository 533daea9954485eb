import Testing
import Foundation
@testable import CaissonTOML

// Shapes like the services.toml catalog in FORMATS.md.
private struct Catalog: Decodable, Equatable {
    var catalog_version: Int
    var services: [Service]
}

private struct Service: Decodable, Equatable {
    enum Mode: String, Decodable { case docker, compose }
    var name: String
    var runtime_mode: Mode
    var docker: Docker?
    var health_check: Health?
    var tags: [String]?
}

private struct Docker: Decodable, Equatable {
    var container_name: String
    var image_reference: String
}

private struct Health: Decodable, Equatable {
    var timeout_secs: Double
    var poll_interval_secs: UInt16?
}

private let catalogText = """
    catalog_version = 1
    unknown_top = "ignored"

    [[services]]
    name = "frontend"
    runtime_mode = "docker"
    future_field = { anything = [1, 2] }
    [services.docker]
    container_name = "frontend"
    image_reference = "example/frontend:current"
    [services.health_check]
    timeout_secs = 30
    poll_interval_secs = 2

    [[services]]
    name = "backend"
    runtime_mode = "compose"
    tags = ["a", "b"]
    """

private func decodingError<T: Decodable>(_ type: T.Type, _ text: String,
                                         decoder: TOMLDecoder = TOMLDecoder()) -> TOMLDecodingError? {
    do {
        _ = try decoder.decode(type, from: text)
        return nil
    } catch let e as TOMLDecodingError {
        return e
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}

@Suite struct DecoderTests {
    @Test func decodesNestedStructsArraysOptionalsAndIgnoresUnknownKeys() throws {
        let c = try TOMLDecoder().decode(Catalog.self, from: catalogText)
        #expect(c.catalog_version == 1)
        #expect(c.services.count == 2)
        #expect(c.services[0] == Service(name: "frontend", runtime_mode: .docker,
                                         docker: Docker(container_name: "frontend",
                                                        image_reference: "example/frontend:current"),
                                         health_check: Health(timeout_secs: 30, poll_interval_secs: 2), tags: nil))
        #expect(c.services[1].docker == nil)
        #expect(c.services[1].tags == ["a", "b"])
    }

    @Test func typeMismatchNamesTheFullKeyPath() {
        let text = catalogText.replacingOccurrences(of: #"container_name = "frontend""#, with: "container_name = 42")
        let e = decodingError(Catalog.self, text)
        #expect(e == TOMLDecodingError(path: "services[0].docker.container_name",
                                       message: "expected a string, found an integer"))
        #expect(e?.description == "services[0].docker.container_name: expected a string, found an integer")
    }

    @Test func missingRequiredKeyNamesTheFullKeyPath() {
        let text = catalogText.replacingOccurrences(of: #"image_reference = "example/frontend:current""#, with: "")
        let e = decodingError(Catalog.self, text)
        #expect(e?.description == "services[0].docker.image_reference: missing required key")
    }

    @Test func invalidEnumValueNamesThePath() {
        let text = catalogText.replacingOccurrences(of: #"runtime_mode = "compose""#, with: #"runtime_mode = "podman""#)
        let e = decodingError(Catalog.self, text)
        #expect(e?.path == "services[1].runtime_mode")
        #expect(e?.message.contains("podman") == true)
    }

    @Test func integerRangeIsChecked() {
        let text = catalogText.replacingOccurrences(of: "poll_interval_secs = 2", with: "poll_interval_secs = 70000")
        let e = decodingError(Catalog.self, text)
        #expect(e?.description == "services[0].health_check.poll_interval_secs: integer 70000 is out of range for UInt16")
    }

    @Test func wrongContainerKinds() {
        #expect(decodingError(Catalog.self, "catalog_version = 1\nservices = 3")?.description
                == "services: expected an array, found an integer")
        #expect(decodingError(Catalog.self, "catalog_version = 1\nservices = [1]")?.description
                == "services[0]: expected a table, found an integer")
        #expect(decodingError(Catalog.self, "catalog_version = 1.5\nservices = []")?.description
                == "catalog_version: expected an integer, found a float")
        #expect(decodingError(Catalog.self, "services = []")?.description == "catalog_version: missing required key")
    }

    @Test func quotedKeysInPaths() {
        struct Inner: Decodable { var x: Bool }
        struct Outer: Decodable {
            var inner: Inner
            enum CodingKeys: String, CodingKey { case inner = "my key" }
        }
        #expect(decodingError(Outer.self, "\"my key\" = { x = 1 }")?.description
                == "\"my key\".x: expected a boolean, found an integer")
    }

    @Test func scalarsAndSpecialTypes() throws {
        struct All: Decodable {
            var i: Int, i64: Int64, i8: Int8, u: UInt, d: Double, dFromInt: Double, f: Float, b: Bool, s: String
            var when: TOMLDateTime, whenFromString: TOMLDateTime, raw: TOMLValue, tbl: TOMLTable
            var nested: [[Int]], opt: String?, optPresent: String?
        }
        let a = try TOMLDecoder().decode(All.self, from: """
            i = -5
            i64 = 9223372036854775807
            i8 = -128
            u = 7
            d = 2.5
            dFromInt = 3
            f = 0.5
            b = true
            s = "x"
            when = 2026-03-16T18:30:00Z
            whenFromString = "2026-03-16T18:30:00Z"
            raw = [1, "two"]
            tbl = { k = 1 }
            nested = [[1, 2], [], [3]]
            optPresent = "here"
            """)
        #expect(a.i == -5 && a.i64 == .max && a.i8 == -128 && a.u == 7)
        #expect(a.d == 2.5 && a.dFromInt == 3 && a.f == 0.5 && a.b && a.s == "x")
        #expect(a.when.kind == .offsetDateTime && a.when.epochSeconds == 1_773_685_800)
        #expect(a.whenFromString == a.when)
        #expect(a.raw == [1, "two"])
        #expect(a.tbl == ["k": 1])
        #expect(a.nested == [[1, 2], [], [3]])
        #expect(a.opt == nil && a.optPresent == "here")
    }

    @Test func dateTimeErrors() {
        struct M: Decodable { var created_at: TOMLDateTime }
        #expect(decodingError(M.self, "created_at = \"yesterday\"")?.description
                == "created_at: expected a date/time, found a string that is not one: \"yesterday\"")
        #expect(decodingError(M.self, "created_at = 5")?.description
                == "created_at: expected a date/time, found an integer")
    }

    @Test func negativeIntoUnsigned() {
        struct U: Decodable { var n: UInt32 }
        #expect(decodingError(U.self, "n = -1")?.description == "n: integer -1 is out of range for UInt32")
    }

    @Test func convertFromSnakeCase() throws {
        struct S: Decodable, Equatable {
            var containerName: String
            var imageReference: String?
            var healthCheck: H
        }
        struct H: Decodable, Equatable { var timeoutSecs: Int }
        var decoder = TOMLDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let s = try decoder.decode(S.self, from: "container_name = \"c\"\n[health_check]\ntimeout_secs = 3")
        #expect(s == S(containerName: "c", imageReference: nil, healthCheck: H(timeoutSecs: 3)))
        let e = decodingError(S.self, "container_name = \"c\"\n[health_check]\ntimeout_secs = \"3\"", decoder: decoder)
        #expect(e?.description == "health_check.timeout_secs: expected an integer, found a string")
        let missing = decodingError(S.self, "[health_check]\ntimeout_secs = 3", decoder: decoder)
        #expect(missing?.description == "container_name: missing required key")
    }

    @Test func parseErrorsStayTOMLErrors() {
        #expect(throws: TOMLError.self) { try TOMLDecoder().decode(Catalog.self, from: "a = ") }
    }

    @Test func decodeFromValueAndTopLevelArrays() throws {
        let v: TOMLValue = [1, 2, 3]
        #expect(try TOMLDecoder().decode([Int].self, from: v) == [1, 2, 3])
        #expect(throws: TOMLDecodingError(path: "[1]", message: "expected an integer, found a string")) {
            try TOMLDecoder().decode([Int].self, from: TOMLValue.array([1, "x"]))
        }
    }

    @Test func customInitWithNestedContainers() throws {
        struct P: Decodable {
            var first: Int, rest: [String]
            enum K: String, CodingKey { case pair }
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: K.self)
                var u = try c.nestedUnkeyedContainer(forKey: .pair)
                first = try u.decode(Int.self)
                var rest: [String] = []
                while !u.isAtEnd { rest.append(try u.decode(String.self)) }
                self.rest = rest
            }
        }
        let p = try TOMLDecoder().decode(P.self, from: "pair = [1, \"a\", \"b\"]")
        #expect(p.first == 1 && p.rest == ["a", "b"])
        #expect(decodingError(P.self, "pair = [1, 2]")?.description == "pair[1]: expected a string, found an integer")
    }
}

@Suite struct OtherDecoderTests {
    @Test func valueModelDecodesFromJSONToo() throws {
        struct Doc: Decodable { var raw: TOMLValue; var when: TOMLDateTime }
        let json = Data(#"{"raw": {"a": [1, 2.5, "x", true]}, "when": "1979-05-27T07:32:00Z"}"#.utf8)
        let d = try JSONDecoder().decode(Doc.self, from: json)
        #expect(d.raw == ["a": [1, 2.5, "x", true]])
        #expect(d.when.epochSeconds == 296_638_320)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(Doc.self, from: Data(#"{"raw": 1, "when": "soon"}"#.utf8))
        }
    }
}
