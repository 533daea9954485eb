import Foundation
import Testing
@testable import CaissonTOML

/// Parsing at the depth limit must not need a big call stack: values are parsed with an explicit
/// stack, so even a thread with a small stack copes (Darwin's secondary threads get 512 KiB).
@Suite struct StackTests {
    static let deepDocuments: [String] = [
        "a = " + String(repeating: "[{b=", count: 64) + "1" + String(repeating: "}]", count: 64),
        "a = " + String(repeating: "[", count: 128) + String(repeating: "]", count: 128),
        "[" + Array(repeating: "k", count: 128).joined(separator: ".") + "]\nv = 1",
        Array(repeating: "k", count: 129).joined(separator: ".") + " = 1",
        "a = " + String(repeating: "[", count: 100_000),
    ]

    @Test func deepDocumentsParseOnASmallStack() async {
        let results: [Bool] = await withCheckedContinuation { continuation in
            let thread = Thread {
                var ok: [Bool] = []
                for doc in StackTests.deepDocuments {
                    do {
                        let t = try TOML.parse(doc)
                        ok.append(t == t)  // equality walks the whole tree too
                    } catch let error as TOMLError {
                        ok.append(error.message.contains("nesting is deeper") || error.message.contains("unterminated"))
                    } catch {
                        ok.append(false)
                    }
                }
                continuation.resume(returning: ok)
            }
            thread.stackSize = 256 * 1024  // debug builds need about 128 KiB here
            thread.start()
        }
        #expect(results == [true, true, true, true, true])
    }
}
