import CaissonCore
import Foundation
import Testing

/// Signed packages through the validator, and interop with Debian's `minisign` (issue 6).
@Suite struct TrustPackageTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let catalogPath = root.appendingPathComponent("fixtures/catalogs/rust-example.toml").path

    static func catalog(keys: [String], require: Bool) throws -> Catalog {
        var text = String(decoding: try Data(contentsOf: URL(fileURLWithPath: catalogPath)), as: UTF8.self)
        text += "\n[trust]\npublic_keys = [" + keys.map { "\"" + $0.replacingOccurrences(of: "\n", with: "\\n") + "\"" }.joined(separator: ", ") + "]\nrequire_signature = \(require)\n"
        return try Catalog.parse(Array(text.utf8), path: catalogPath)
    }

    static func tempDir() throws -> String {
        let d = NSTemporaryDirectory() + "caisson-trust-" + String(UInt64.random(in: 0..<UInt64.max), radix: 16)
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    struct Built {
        var path: String
        var manifest: [UInt8]
        var image: [UInt8]
    }

    /// A valid package for the catalog's `frontend`; `bind` declares [image] sha256 and size.
    static func build(_ dir: String, bind: Bool = true, signature: ((([UInt8]) throws -> [UInt8]))? = nil) throws -> Built {
        var img = SyntheticImage(reference: "example/frontend:1.2.3")
        img.files = [("hello.txt", Array("hello".utf8))]
        let (bytes, _) = try img.archive()
        let m = EdgePackageWriter.manifest(service: "frontend", revision: "frontend-v1", platform: "linux/amd64", version: "1.2.3",
                                           createdAt: "2026-03-16T18:30:00Z", reference: "example/frontend:1.2.3",
                                           sha256: bind ? SHA256.hash(bytes).hex : nil, size: bind ? bytes.count : nil)
        let path = dir + "/p.edgepkg"
        let extras = try signature.map { [(PackageSignature.entryName, try $0(Array(m.utf8)))] } ?? []
        try EdgePackageWriter.write(manifest: m, image: bytes, extras: extras, to: path)
        return Built(path: path, manifest: Array(m.utf8), image: bytes)
    }

    static func validate(_ path: String, _ catalog: Catalog) -> ValidationReport {
        PackageValidator(catalog: catalog, updaterVersion: "0.2.0").validate(path: path)
    }

    static let pair: KeyPair = try! KeyPair.generate()

    static func signer(_ key: MinisignSecretKey = pair.secretKey) -> ([UInt8]) throws -> [UInt8] {
        { Array(try Minisign.sign($0, secretKey: key, trustedComment: "package frontend 1.2.3").fileContents.utf8) }
    }

    @Test func signedPackageIsAcceptedWithItsTrustedComment() throws {
        let dir = try Self.tempDir()
        let b = try Self.build(dir, signature: Self.signer())
        let r = Self.validate(b.path, try Self.catalog(keys: [Self.pair.publicKey.base64], require: true))
        #expect(r.issues == [])
        #expect(r.signature?.trustedComment == "package frontend 1.2.3")
        #expect(r.signature?.keyID == Self.pair.publicKey.keyID.description)
        // A whole minisign.pub file in the catalog works too, among other keys.
        let other = try KeyPair.generate().publicKey.base64
        let r2 = Self.validate(b.path, try Self.catalog(keys: [other, Self.pair.publicKey.fileContents], require: false))
        #expect(r2.issues == [])
    }

    @Test func missingUntrustedUnboundAndMalformed() throws {
        let dir = try Self.tempDir()
        let trusted = try Self.catalog(keys: [Self.pair.publicKey.base64], require: true)
        let unsigned = try Self.build(dir)
        #expect(Self.validate(unsigned.path, trusted).issues.map(\.code) == ["signature.missing"])
        // Not required: unsigned packages stay accepted.
        #expect(Self.validate(unsigned.path, try Self.catalog(keys: [Self.pair.publicKey.base64], require: false)).issues == [])

        let stranger = try KeyPair.generate()
        let foreign = try Self.build(dir, signature: Self.signer(stranger.secretKey))
        #expect(Self.validate(foreign.path, trusted).issues.map(\.code) == ["signature.untrusted_key"])

        let unbound = try Self.build(dir, bind: false, signature: Self.signer())
        #expect(Self.validate(unbound.path, trusted).issues.map(\.code) == ["signature.unbound_payload"])

        let junk = try Self.build(dir, signature: { _ in Array("not a signature\n".utf8) })
        #expect(Self.validate(junk.path, trusted).issues.map(\.code) == ["signature.malformed"])

        let huge = try Self.build(dir, signature: { _ in [UInt8](repeating: 0x41, count: 20_000) })
        #expect(Self.validate(huge.path, trusted).issues.map(\.code) == ["signature.malformed"])

        // A signature over other bytes (here: the manifest plus a newline).
        let other = try Self.build(dir, signature: { try Self.signer()($0 + [0x0a]) })
        #expect(Self.validate(other.path, trusted).issues.map(\.code) == ["signature.invalid"])
    }

    @Test func aSignatureIsIgnoredWhenTheCatalogTrustsNoKeys() throws {
        let dir = try Self.tempDir()
        let b = try Self.build(dir, signature: { _ in Array("junk".utf8) })
        let r = Self.validate(b.path, try Self.catalog(keys: [], require: false))
        #expect(r.issues == [])
        #expect(r.signature == nil)
    }

    /// A flipped byte anywhere in the manifest, the signature (outside the untrusted comment's
    /// free text) or the image rejects the package.
    @Test func flippedBytesAnywhereFail() throws {
        let dir = try Self.tempDir()
        let b = try Self.build(dir, signature: Self.signer())
        let catalog = try Self.catalog(keys: [Self.pair.publicKey.base64], require: true)
        #expect(Self.validate(b.path, catalog).issues == [])
        let pkg = Array(try Data(contentsOf: URL(fileURLWithPath: b.path)))
        let scan = PackageScanner().scan(path: b.path)
        func region(_ name: String) throws -> Range<Int> {
            let e = try #require(scan.entries.first { $0.name == name })
            return Int(e.dataOffset)..<Int(e.dataOffset + e.size)
        }
        let manifest = try region("manifest.toml"), sig = try region(PackageSignature.entryName), image = try region("image.tar")
        let sigBytes = Array(pkg[sig])
        let freeText = (sig.lowerBound + "untrusted comment: ".utf8.count)..<(sig.lowerBound + sigBytes.firstIndex(of: 0x0a)!)
        var offsets = Array(manifest) + Array(sig).filter { !freeText.contains($0) }
        offsets += stride(from: image.lowerBound, to: image.upperBound, by: max(1, image.count / 64)).map { $0 } + [image.upperBound - 1]
        let flipped = dir + "/flipped.edgepkg"
        for i in offsets {
            var copy = pkg
            copy[i] ^= 0x01
            try Data(copy).write(to: URL(fileURLWithPath: flipped))
            let codes = Self.validate(flipped, catalog).issues.map(\.code)
            #expect(!codes.isEmpty, "byte \(i) flipped was accepted")
            if manifest.contains(i) || sig.contains(i) {
                #expect(codes.contains { $0.hasPrefix("signature.") }, "byte \(i): \(codes)")
            }
        }
    }

    // MARK: Interop with Debian's minisign

    static let minisign: String? = ["/usr/bin/minisign", "/usr/local/bin/minisign"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @discardableResult
    static func run(_ args: [String], in dir: String, input: String? = nil) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try #require(minisign))
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        if let input {
            try Self.write(dir + "/.stdin", Array(input.utf8))
            p.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: dir + "/.stdin"))
        } else {
            p.standardInput = FileHandle.nullDevice
        }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }

    static func read(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }
    static func write(_ path: String, _ bytes: [UInt8]) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }

    @Test(.enabled(if: minisign != nil)) func packagesSignedByMinisignVerify() throws {
        let dir = try Self.tempDir()
        #expect(try Self.run(["-G", "-W", "-p", "k.pub", "-s", "k.key"], in: dir) == 0)
        let pub = try MinisignPublicKey(parsing: String(decoding: try Self.read(dir + "/k.pub"), as: UTF8.self))
        // Caisson reads minisign's unencrypted secret key and finds the same public key.
        let sk = try MinisignSecretKey(parsing: String(decoding: try Self.read(dir + "/k.key"), as: UTF8.self))
        #expect(sk.publicKey == pub)
        let catalog = try Self.catalog(keys: [pub.base64], require: true)
        for legacy in [false, true] {
            let b = try Self.build(dir, signature: { manifest in
                try Self.write(dir + "/manifest.toml", manifest)
                try? FileManager.default.removeItem(atPath: dir + "/manifest.toml.minisig")
                let args = ["-S", "-s", "k.key", "-m", "manifest.toml", "-t", "signed by minisign"] + (legacy ? ["-l"] : [])
                #expect(try Self.run(args, in: dir) == 0)
                return try Self.read(dir + "/manifest.toml.minisig")
            })
            let r = Self.validate(b.path, catalog)
            #expect(r.issues == [], "legacy: \(legacy)")
            #expect(r.signature?.trustedComment == "signed by minisign")
            #expect(r.signature?.algorithm == (legacy ? .legacy : .prehashed))
        }
    }

    @Test(.enabled(if: minisign != nil)) func minisignAcceptsWhatCaissonSigns() throws {
        let dir = try Self.tempDir()
        let pair = try KeyPair.generate()
        try Self.write(dir + "/c.pub", Array(pair.publicKey.fileContents.utf8))
        let data = Array("format_version = 1\npackage_type = \"service\"\n".utf8)
        try Self.write(dir + "/m", data)
        let sig = try Minisign.sign(data, secretKey: pair.secretKey, trustedComment: "timestamp:1\tfile:m")
        try Self.write(dir + "/m.minisig", Array(sig.fileContents.utf8))
        #expect(try Self.run(["-V", "-H", "-p", "c.pub", "-m", "m"], in: dir) == 0)
        #expect(try Self.run(["-V", "-P", pair.publicKey.base64, "-m", "m"], in: dir) == 0)
        // A flipped data byte fails for minisign too.
        var bad = data
        bad[3] ^= 0x01
        try Self.write(dir + "/m", bad)
        #expect(try Self.run(["-V", "-p", "c.pub", "-m", "m"], in: dir) != 0)
    }

    @Test(.enabled(if: minisign != nil)) func minisignSignsWithACaissonWrittenSecretKey() throws {
        let pair = try KeyPair.generate()
        let text = pair.secretKey.fileContents()
        let dir = try Self.tempDir()
        try Self.write(dir + "/c.key", Array(text.utf8))
        try Self.write(dir + "/m", Self.hello)
        #expect(try Self.run(["-S", "-W", "-s", "c.key", "-m", "m", "-t", "from a caisson key"], in: dir) == 0)
        let verified = try Minisign.verify(Self.hello, signatureFile: try Self.read(dir + "/m.minisig"), trustedKeys: [pair.publicKey])
        #expect(verified.trustedComment == "from a caisson key")
        // minisign recreates the same public key from the secret key file.
        #expect(try Self.run(["-R", "-s", "c.key", "-p", "r.pub"], in: dir) == 0)
        #expect(try MinisignPublicKey(parsing: String(decoding: try Self.read(dir + "/r.pub"), as: UTF8.self)) == pair.publicKey)
    }

    /// Password-protected keys both ways (scrypt with minisign's 1 GiB limits: slow, one test).
    @Test(.enabled(if: minisign != nil)) func encryptedKeysInteroperate() throws {
        let dir = try Self.tempDir()
        #expect(try Self.run(["-G", "-p", "e.pub", "-s", "e.key"], in: dir, input: "s3cret\ns3cret\n") == 0)
        let pub = try MinisignPublicKey(parsing: String(decoding: try Self.read(dir + "/e.pub"), as: UTF8.self))
        let text = String(decoding: try Self.read(dir + "/e.key"), as: UTF8.self)
        #expect(try MinisignSecretKey(parsing: text, password: "s3cret").publicKey == pub)
        #expect(throws: CaissonError("key.wrong_password", "wrong password for the secret key (or the key is corrupt)")) {
            try MinisignSecretKey(parsing: text, password: "s3creT")
        }
        // What Caisson encrypts, minisign decrypts and signs with (needs libsodium's BLAKE2b-256).
        let pair = try KeyPair.generate()
        guard let mine = try? pair.secretKey.encryptedFileContents(password: "caisson pw") else { return }
        try Self.write(dir + "/c.key", Array(mine.utf8))
        try Self.write(dir + "/m", Self.hello)
        #expect(try Self.run(["-S", "-s", "c.key", "-m", "m", "-t", "encrypted"], in: dir, input: "caisson pw\n") == 0)
        let sig = try Minisign.verify(Self.hello, signatureFile: try Self.read(dir + "/m.minisig"), trustedKeys: [pair.publicKey])
        #expect(sig.trustedComment == "encrypted")
    }

    static let hello = Array("hello\n".utf8)
}
