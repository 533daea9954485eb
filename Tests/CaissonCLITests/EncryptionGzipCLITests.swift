import CaissonCore
import Foundation
import Testing

/// Issue 15 with issue 14's compression, through the real binary on the simulator: a package
/// built `--compress gzip --encrypt-to` holds the gzip stream encrypted; it validates (decrypted,
/// then inflated, in one stream), loads, and decrypts to the very gzip file its manifest binds.
/// And what validation judges an age file by: its plaintext, not its bytes.
@Suite struct EncryptionGzipCLITests {
    /// A device catalog opening `device.agekey`, and its recipient.
    static func device(_ c: Caisson) throws -> AgeX25519Recipient {
        #expect(try c.run(["key", "generate", "--age", "device.agekey"], sim: false).status == 0)
        let device = Caisson.catalog + "\n[trust]\nage_identities = [\"device.agekey\"]\n"
        try device.write(toFile: c.dir + "/services.toml", atomically: true, encoding: .utf8)
        return try AgeIdentityFile.parse(try String(contentsOfFile: c.dir + "/device.agekey", encoding: .utf8))[0].recipient
    }

    /// The root entries of a package (name, data) as a plain tar reader sees them.
    static func entries(_ pkg: [UInt8]) -> [(String, [UInt8])] {
        var out: [(String, [UInt8])] = []
        var at = 0
        while at + 512 <= pkg.count, pkg[at] != 0 {
            let name = String(decoding: pkg[at..<(at + 100)].prefix { $0 != 0 }, as: UTF8.self)
            let size = Int(String(decoding: pkg[(at + 124)..<(at + 135)], as: UTF8.self), radix: 8)!
            out.append((name, Array(pkg[(at + 512)..<(at + 512 + size)])))
            at += 512 + (size + 511) / 512 * 512
        }
        return out
    }

    static func simHost(_ c: Caisson) -> String {
        (try? String(contentsOfFile: c.dir + "/.caisson-state/sim-host.json", encoding: .utf8)) ?? ""
    }

    @Test func encryptedGzipPackageBuildsValidatesLoadsAndDecrypts() throws {
        let c = try Caisson()
        let recipient = try Self.device(c)
        let tarBytes = try EncryptionCLITests.imageTar(c.dir, version: "3.0.0")
        let build = try c.run(["package", "build", "--service", "frontend", "--version", "3.0.0", "--from-tar", "image-3.0.0.tar",
                               "--output", "encgz.edgepkg", "--encrypt-to", recipient.text, "--compress", "gzip"], sim: false)
        try #require(build.status == 0, "\(build.stdout) \(build.stderr)")
        let pkg = Array(try Data(contentsOf: URL(fileURLWithPath: c.dir + "/encgz.edgepkg")))
        let entries = Self.entries(pkg)
        #expect(entries.map(\.0) == ["manifest.toml", "image.tar.age"], "\(entries.map(\.0))")
        let manifest = String(decoding: entries.first { $0.0 == "manifest.toml" }?.1 ?? [], as: UTF8.self)
        let age = entries.first { $0.0 == "image.tar.age" }?.1 ?? []
        // No plaintext in the package: neither the tar nor the gzip stream shows through.
        #expect(age.count > 0 && !age.starts(with: [0x1f, 0x8b]))

        // Decrypted (the connected side's troubleshooting): the gzip stream the manifest binds,
        // which inflates to the docker save archive given to the build.
        let d = try c.run(["package", "decrypt", "encgz.edgepkg", "-i", "device.agekey", "-o", "out"], sim: false)
        try #require(d.status == 0, "\(d.stdout) \(d.stderr)")
        let gz = Array(try Data(contentsOf: URL(fileURLWithPath: c.dir + "/out/image.tar")))
        #expect(gz.starts(with: [0x1f, 0x8b]), "image.tar inside the age file is not gzip")
        #expect(gz.count < tarBytes.count)
        #expect(manifest.contains(SHA256.hash(gz).hex), "the manifest does not bind the compressed image.tar: \(manifest)")
        #expect(manifest.contains("size = \(age.count)"), "the manifest does not bind the age file's size: \(manifest)")
        let (rc, inflated, err) = try EncryptionCLITests.tool(c.dir, ["gzip", "-dc", "out/image.tar"])
        #expect(rc == 0 && Array(inflated) == tarBytes, "\(err)")

        // Validated on the device: decrypted, inflated, inspected as one stream.
        let v = try c.run(["package", "validate", "encgz.edgepkg"])
        #expect(v.status == 0, "\(v.stdout) \(v.stderr)")
        #expect(v.stdout.contains("Encrypted: age to 1 recipient(s)"), "\(v.stdout)")
        #expect(!Self.simHost(c).contains("example/frontend:3.0.0"), "validate gave the simulated host the image")

        // A corrupted gzip stream, encrypted and bound correctly (every chunk authenticates):
        // refused by what inflating finds, exit 2, nothing loaded.
        var badGz = gz
        badGz[badGz.count - 5] ^= 0xff   // inside the CRC-32 trailer
        var bytes: [UInt8] = []
        let enc = try AgeEncryptor(recipients: [recipient], randomness: .system) { bytes += Array($0) }
        try enc.write(badGz)
        try enc.finish()
        let m = manifest.replacingOccurrences(of: SHA256.hash(gz).hex, with: SHA256.hash(badGz).hex)
            .replacingOccurrences(of: "size = \(age.count)", with: "size = \(bytes.count)")
        var w = TarArchiveWriter()
        w.addFile("manifest.toml", Array(m.utf8))
        w.addFile("image.tar.age", bytes)
        FileManager.default.createFile(atPath: c.dir + "/badgz.edgepkg", contents: Data(w.finished()))
        let bad = try c.run(["package", "load", "badgz.edgepkg", "--yes"])
        #expect(bad.status == 2 && bad.stdout.contains("[image.gzip_corrupt]"), "\(bad.stdout) \(bad.stderr)")
        #expect(!Self.simHost(c).contains("example/frontend:3.0.0"), "the simulated host got the corrupt image")

        // Loaded on the simulator.
        let load = try c.run(["package", "load", "encgz.edgepkg", "--yes"])
        #expect(load.status == 0, "\(load.stdout) \(load.stderr)")
        #expect(load.stdout.contains("Status: succeeded"), "\(load.stdout)")
        #expect(Self.simHost(c).contains("example/frontend:3.0.0"), "the simulated host has no image after the load")
    }

    /// Validation judges image.tar.age by what it decrypts to: the same image.tar re-encrypted
    /// (other bytes, same size) is the same image and is accepted; another image.tar of the same
    /// size, encrypted to the device and authenticating chunk by chunk, is refused by the signed
    /// plaintext SHA-256 (`image.checksum_mismatch`, exit 2) and never reaches the host.
    @Test func aSwappedAgeFileIsJudgedByItsPlaintext() throws {
        let c = try Caisson()
        let recipient = try Self.device(c)
        let tarBytes = try EncryptionCLITests.imageTar(c.dir, version: "3.0.0")
        let build = try c.run(["package", "build", "--service", "frontend", "--version", "3.0.0", "--from-tar", "image-3.0.0.tar",
                               "--output", "enc.edgepkg", "--encrypt-to", recipient.text], sim: false)
        try #require(build.status == 0, "\(build.stdout) \(build.stderr)")
        let pkg = Array(try Data(contentsOf: URL(fileURLWithPath: c.dir + "/enc.edgepkg")))
        let manifest = Self.entries(pkg).first { $0.0 == "manifest.toml" }?.1 ?? []
        let original = Self.entries(pkg).first { $0.0 == "image.tar.age" }?.1 ?? []

        // Another image of exactly the same size (other layer bytes).
        var img = SyntheticImage(reference: "example/frontend:3.0.0")
        img.labels = ["io.caisson.sim.health": "healthy"]
        img.healthcheck = ["CMD", "/bin/true"]
        var seed: UInt64 = 7
        img.files = [("app", (0..<200_000).map { _ -> UInt8 in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: seed >> 33)
        })]
        let (other, _) = try img.archive()
        try #require(other.count == tarBytes.count && other != tarBytes)

        func repackaged(_ name: String, _ plaintext: [UInt8]) throws -> String {
            var bytes: [UInt8] = []
            let enc = try AgeEncryptor(recipients: [recipient], randomness: .system) { bytes += Array($0) }
            try enc.write(plaintext)
            try enc.finish()
            #expect(bytes.count == original.count && bytes != original)
            var w = TarArchiveWriter()
            w.addFile("manifest.toml", manifest)
            w.addFile("image.tar.age", bytes)
            FileManager.default.createFile(atPath: c.dir + "/" + name, contents: Data(w.finished()))
            return name
        }

        let swapped = try repackaged("swapped.edgepkg", other)
        let v = try c.run(["package", "validate", swapped])
        #expect(v.status == 2 && v.stdout.contains("[image.checksum_mismatch]"), "\(v.stdout)")
        let l = try c.run(["package", "load", swapped, "--yes"])
        #expect(l.status == 2 && l.stdout.contains("[image.checksum_mismatch]"), "\(l.stdout)")
        #expect(!Self.simHost(c).contains("example/frontend:3.0.0"), "the simulated host got the swapped image")

        let same = try repackaged("same.edgepkg", tarBytes)
        let ok = try c.run(["package", "load", same, "--yes"])
        #expect(ok.status == 0 && ok.stdout.contains("Status: succeeded"), "\(ok.stdout) \(ok.stderr)")
    }
}
