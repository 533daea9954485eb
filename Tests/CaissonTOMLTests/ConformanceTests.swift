import Foundation
import Testing

/// Runs the toml-test conformance suite (shared/toml-test: 709 TOML 1.0 cases, 712 TOML 1.1 cases)
/// against the built `toml-test-decoder` executable, which must sit next to the test bundle
/// (`swift build` first), once per specification with the decoder in that mode.
@Suite struct ConformanceTests {
    /// The package root, from this file's location: <root>/Tests/CaissonTOMLTests/<file>.
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test(arguments: [(TOMLSpecName.v1_0, 709), (TOMLSpecName.v1_1, 712)])
    func tomlTestSuitePassesCompletely(spec: TOMLSpecName, cases: Int) throws {
        let buildDir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let decoder = buildDir.appendingPathComponent("toml-test-decoder")
        let runner = Self.packageRoot.deletingLastPathComponent()
            .appendingPathComponent("shared/scripts/toml-test-run")
        try #require(FileManager.default.isExecutableFile(atPath: decoder.path),
                     "toml-test-decoder not found at \(decoder.path): run `swift build` first (it builds all products)")
        try #require(FileManager.default.fileExists(atPath: runner.path),
                     "the conformance runner is missing at \(runner.path) (shared/ must sit beside the repository)")

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", runner.path, "--verbose", "--spec", spec.rawValue, "--",
                             decoder.path, "--spec", spec.rawValue]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.contains("\(cases) passed, 0 failed"), "TOML \(spec.rawValue) conformance output:\n\(text.suffix(4000))")
        #expect(process.terminationStatus == 0)
    }
}

/// The specification names the runner and the decoder both take.
enum TOMLSpecName: String, Sendable, CustomTestStringConvertible {
    case v1_0 = "1.0.0"
    case v1_1 = "1.1.0"
    var testDescription: String { "TOML " + rawValue }
}
