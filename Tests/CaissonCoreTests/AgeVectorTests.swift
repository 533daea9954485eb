@testable import CaissonCore
import Foundation
import Testing

/// The CCTV age test vectors (../shared/age-testkit, 143 files): every success vector decrypts to
/// its payload hash, every failure vector fails with the matching kind; armored and hybrid
/// (post-quantum) vectors are skipped and counted.
@Suite struct AgeVectorTests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let kit = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/age-testkit")

    struct Vector {
        var name: String
        var fields: [(String, String)]
        var body: [UInt8]
        func values(_ key: String) -> [String] { fields.filter { $0.0 == key }.map(\.1) }
        func value(_ key: String) -> String? { values(key).first }
    }

    /// Splits a vector file into its `key: value` lines and its (maybe compressed) age file.
    static func parse(name: String, bytes: [UInt8]) throws -> Vector {
        var fields: [(String, String)] = []
        var i = 0
        while true {
            guard let nl = bytes[i...].firstIndex(of: 0x0a) else { throw CaissonError("test", "\(name): no blank line") }
            let line = String(decoding: bytes[i..<nl], as: UTF8.self)
            i = nl + 1
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { throw CaissonError("test", "\(name): bad line \(line)") }
            fields.append((String(line[..<colon]), String(line[line.index(colon, offsetBy: 2)...])))
        }
        return Vector(name: name, fields: fields, body: Array(bytes[i...]))
    }

    /// Expands the zlib-compressed vectors with Python's zlib (never committed expanded).
    static func expand(_ vectors: [Vector]) throws -> [String: [UInt8]] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("caisson-age-vectors-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var names: [String] = []
        for v in vectors where v.value("compressed") == "zlib" {
            try Data(v.body).write(to: dir.appendingPathComponent(v.name + ".z"))
            names.append(v.name)
        }
        let script = "import sys,zlib,os\nd=sys.argv[1]\nfor n in sys.argv[2:]:\n open(os.path.join(d,n),'wb').write(zlib.decompress(open(os.path.join(d,n+'.z'),'rb').read()))\n"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script, dir.path] + names
        try p.run()
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "python3 could not expand the compressed vectors")
        var out: [String: [UInt8]] = [:]
        for n in names { out[n] = Array(try Data(contentsOf: dir.appendingPathComponent(n))) }
        return out
    }

    enum Outcome: Equatable {
        case success(String)
        case failure(AgeError.Kind, String)
    }

    /// Decrypts with streaming reads of `readSize` bytes; the SHA-256 of what was handed out.
    static func run(_ file: [UInt8], identities: [any AgeIdentity], readSize: Int, maxRead: Int = .max) -> (Outcome, String) {
        var sha = SHA256()
        do {
            let source = try AgeDecryptingSource(MemoryByteSource(file, maxReadSize: maxRead), identities: identities)
            var buffer = [UInt8](repeating: 0, count: readSize)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try source.read(into: $0) }
                if n == 0 { break }
                sha.update(Array(buffer[..<n]))
            }
            let hex = sha.finalizeDigest().hex
            return (.success(hex), hex)
        } catch let e as AgeError {
            return (.failure(e.kind, e.message), sha.finalizeDigest().hex)
        } catch {
            return (.failure(.internalFailure, "\(error)"), "")
        }
    }

    static func matches(_ expect: String, _ kind: AgeError.Kind) -> Bool {
        switch expect {
        case "no match": return kind == .noIdentity
        case "HMAC failure": return kind == .headerMACInvalid
        case "header failure": return kind == .headerInvalid || kind == .workFactorTooHigh
        case "payload failure": return kind == .payloadInvalid
        default: return false
        }
    }

    @Test func everyApplicableVectorPasses() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.kit.path).filter { $0 != "README.md" }.sorted()
        try #require(names.count == 143, "expected the 143 CCTV vectors in \(Self.kit.path) (shared/ must sit beside the repository)")
        let vectors = try names.map { try Self.parse(name: $0, bytes: Array(try Data(contentsOf: Self.kit.appendingPathComponent($0)))) }
        let expanded = try Self.expand(vectors)
        var passed = 0, failed: [String] = [], skippedArmor = 0, skippedHybrid = 0
        var prefixChecked = 0
        for v in vectors {
            if v.value("armored") == "yes" { skippedArmor += 1; continue }
            if v.name.hasPrefix("hybrid") { skippedHybrid += 1; continue }
            let file = v.value("compressed") == "zlib" ? expanded[v.name]! : v.body
            var identities: [any AgeIdentity] = []
            for text in v.values("identity") { identities.append(try AgeX25519Identity(parsing: text)) }
            for p in v.values("passphrase") { identities.append(AgeScryptIdentity(passphrase: p)) }
            let expect = v.value("expect") ?? "?"
            // Two read patterns: whole 1 MiB reads, and small reads over a source that dribbles.
            for (readSize, maxRead) in [(1 << 20, Int.max), (1000, 777)] {
                let (outcome, prefix) = Self.run(file, identities: identities, readSize: readSize, maxRead: maxRead)
                var ok: Bool
                switch outcome {
                case .success(let hex): ok = expect == "success" && hex == v.value("payload")
                case .failure(let kind, _):
                    ok = Self.matches(expect, kind)
                    if ok, expect == "payload failure", let want = v.value("payload") {
                        ok = prefix == want
                        prefixChecked += 1
                    }
                }
                if !ok { failed.append("\(v.name) [reads of \(readSize)]: expected \(expect), got \(outcome)") }
            }
            if !failed.contains(where: { $0.hasPrefix(v.name + " ") }) { passed += 1 }
        }
        print("CCTV age vectors: \(passed) passed, \(failed.count) failed, \(skippedArmor + skippedHybrid) skipped (\(skippedArmor) armored, \(skippedHybrid) hybrid post-quantum); \(prefixChecked / 2) payload-failure prefixes checked")
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(passed == 92)
        #expect(skippedArmor == 33 && skippedHybrid == 18)
    }

    /// What Caisson does with the vectors it skips: a clear `encryption.unsupported`.
    @Test func armoredAndPostQuantumFilesAreRefusedAsUnsupported() throws {
        let armor = try Self.parse(name: "armor_x25519", bytes: Array(try Data(contentsOf: Self.kit.appendingPathComponent("armor_x25519"))))
        let id = try AgeX25519Identity(parsing: armor.value("identity")!)
        #expect(throws: AgeError.self) { _ = try Age.decrypt(armor.body, identities: [id]) }
        do { _ = try Age.decrypt(armor.body, identities: [id]) } catch { #expect(error.kind == .unsupported && error.code == "encryption.unsupported") }
        let hybrid = try Self.parse(name: "hybrid", bytes: Array(try Data(contentsOf: Self.kit.appendingPathComponent("hybrid"))))
        do {
            _ = try Age.decrypt(hybrid.body, identities: [id])
            Issue.record("a post-quantum file decrypted")
        } catch {
            #expect(error.kind == .unsupported, "\(error)")
        }
        #expect(throws: AgeError.self) { _ = try AgeX25519Identity(parsing: hybrid.value("identity")!) }
    }
}
