import CaissonCore
import Foundation
import Testing

/// Encrypted packages through the real binary (issue 15): `key generate --age`, `package build
/// --encrypt-to` / `--encrypt-passphrase`, a device catalog with `age_identities` and
/// `require_encryption`, validate, load on the simulator, `package decrypt`, and the package as
/// Debian's `age` and `tar` see it (both ways).
@Suite struct EncryptionCLITests {
    static let ageAvailable = FileManager.default.isExecutableFile(atPath: "/usr/bin/age")

    @discardableResult
    static func tool(_ dir: String, _ args: [String]) throws -> (Int32, Data, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, o, String(decoding: e, as: UTF8.self))
    }

    /// A docker save archive of a few chunks (a 200 KB layer file).
    static func imageTar(_ dir: String, version: String) throws -> [UInt8] {
        var img = SyntheticImage(reference: "example/frontend:\(version)")
        img.labels = ["io.caisson.sim.health": "healthy"]
        img.healthcheck = ["CMD", "/bin/true"]
        var seed: UInt64 = 42
        let noise = (0..<200_000).map { _ -> UInt8 in
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: seed >> 33)
        }
        img.files = [("app", noise)]
        let (bytes, _) = try img.archive()
        FileManager.default.createFile(atPath: dir + "/image-\(version).tar", contents: Data(bytes))
        return bytes
    }

    @Test(.enabled(if: ageAvailable, "needs Debian's age (scripts/test.sh installs it)"))
    func encryptedPackageEndToEndOnTheSimulatorAndWithAge() throws {
        let c = try Caisson()
        // The device's key: 0600 from the start, its recipient printed, no silent overwrite.
        let gen = try c.run(["key", "generate", "--age", "device.agekey", "--json"], sim: false)
        #expect(gen.status == 0, "\(gen.stderr)")
        let recipient = try #require(gen.json?["recipient"] as? String)
        var st = stat()
        #expect(stat(c.dir + "/device.agekey", &st) == 0 && st.st_mode & 0o777 == 0o600)
        let keyText = try String(contentsOfFile: c.dir + "/device.agekey", encoding: .utf8)
        #expect(try AgeIdentityFile.parse(keyText).map(\.recipient.text) == [recipient])
        #expect(try c.run(["key", "generate", "--age", "device.agekey"], sim: false).status == 1)
        let plainGen = try c.run(["key", "generate", "--age", "other.agekey"], sim: false)
        #expect(plainGen.stdout.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("age1"))
        let (rcY, pubOut, _) = try Self.tool(c.dir, ["age-keygen", "-y", "device.agekey"])
        #expect(rcY == 0 && String(decoding: pubOut, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == recipient)

        let device = Caisson.catalog + "\n[trust]\nage_identities = [\"device.agekey\"]\nrequire_encryption = true\n"
        try device.write(toFile: c.dir + "/services.toml", atomically: true, encoding: .utf8)
        let tarBytes = try Self.imageTar(c.dir, version: "3.0.0")

        // Build, encrypted to this device and another one.
        let other = try String(contentsOfFile: c.dir + "/other.agekey", encoding: .utf8)
        let otherRecipient = try AgeIdentityFile.parse(other)[0].recipient.text
        let b = try c.run(["package", "build", "--service", "frontend", "--version", "3.0.0", "--from-tar", "image-3.0.0.tar",
                           "--output", "enc.edgepkg", "--encrypt-to", recipient, "--encrypt-to", otherRecipient], sim: false)
        #expect(b.status == 0, "\(b.stdout) \(b.stderr)")
        let (_, list, _) = try Self.tool(c.dir, ["tar", "-tf", "enc.edgepkg"])
        #expect(String(decoding: list, as: UTF8.self) == "manifest.toml\nimage.tar.age\n")
        // manifest.toml stays readable without any key, and binds both the age file and image.tar.
        let (_, manifestOut, _) = try Self.tool(c.dir, ["tar", "-xOf", "enc.edgepkg", "manifest.toml"])
        let manifest = try #require(Manifest.parse(Array(manifestOut)).0)
        #expect(manifest.image.sha256 == SHA256.hash(tarBytes).hex && manifest.image.size == Int64(tarBytes.count))
        #expect(manifest.encryption?.format == "age-encryption.org/v1" && manifest.encryption?.sha256 != nil)

        let v = try c.run(["package", "validate", "enc.edgepkg"])
        #expect(v.status == 0, "\(v.stdout)")
        #expect(v.stdout.contains("Encrypted: age to 2 recipient(s)"), "\(v.stdout)")

        // tar + age -d -i KEY gives the docker save archive back.
        #expect(try Self.tool(c.dir, ["tar", "-xf", "enc.edgepkg", "image.tar.age"]).0 == 0)
        let (rcD, decrypted, errD) = try Self.tool(c.dir, ["age", "-d", "-i", "other.agekey", "image.tar.age"])
        #expect(rcD == 0 && Array(decrypted) == tarBytes, "\(errD)")

        // A clear package is refused by this device.
        let clear = try c.run(["package", "build", "--service", "frontend", "--version", "3.0.1", "--from-tar", "image-3.0.0.tar",
                               "--output", "clear.edgepkg"], sim: false)
        #expect(clear.status == 2 && clear.stdout.contains("[encryption.required]"), "\(clear.stdout)")

        // Load on the simulator.
        let load = try c.run(["package", "load", "enc.edgepkg", "--yes"])
        #expect(load.status == 0, "\(load.stdout) \(load.stderr)")
        #expect(load.stdout.contains("Status: succeeded"), "\(load.stdout)")

        // A package whose image.tar.age was made by `age -r` is accepted.
        let tar4 = try Self.imageTar(c.dir, version: "4.0.0")
        try FileManager.default.createDirectory(atPath: c.dir + "/byage", withIntermediateDirectories: true)
        let (rcE, _, errE) = try Self.tool(c.dir, ["age", "-r", recipient, "-o", "byage/image.tar.age", "image-4.0.0.tar"])
        try #require(rcE == 0, "\(errE)")
        let ageFile = Array(try Data(contentsOf: URL(fileURLWithPath: c.dir + "/byage/image.tar.age")))
        let m4 = EdgePackageWriter.manifest(service: "frontend", revision: "frontend-v1", platform: "linux/amd64", version: "4.0.0",
                                            createdAt: "2030-01-01T00:00:00Z", reference: "example/frontend:4.0.0",
                                            sha256: SHA256.hash(tar4).hex, size: tar4.count)
            + "\n[encryption]\nformat = \"age-encryption.org/v1\"\nsha256 = \"\(SHA256.hash(ageFile).hex)\"\nsize = \(ageFile.count)\n"
        try m4.write(toFile: c.dir + "/byage/manifest.toml", atomically: true, encoding: .utf8)
        #expect(try Self.tool(c.dir, ["tar", "-cf", "byage.edgepkg", "-C", "byage", "manifest.toml", "image.tar.age"]).0 == 0)
        let v4 = try c.run(["package", "validate", "byage.edgepkg"])
        #expect(v4.status == 0, "\(v4.stdout)")

        // package decrypt (connected side).
        let d = try c.run(["package", "decrypt", "enc.edgepkg", "-i", "other.agekey", "-o", "out"], sim: false)
        #expect(d.status == 0, "\(d.stdout) \(d.stderr)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: c.dir + "/out/image.tar"))) == tarBytes)
        #expect(FileManager.default.fileExists(atPath: c.dir + "/out/manifest.toml"))
        let stranger = try c.run(["key", "generate", "--age", "stranger.agekey"], sim: false)
        #expect(stranger.status == 0)
        let wrong = try c.run(["package", "decrypt", "enc.edgepkg", "-i", "stranger.agekey", "-o", "out2"], sim: false)
        #expect(wrong.status == 2 && wrong.stderr.contains("[encryption.no_identity]"), "\(wrong.stderr)")
        #expect(!FileManager.default.fileExists(atPath: c.dir + "/out2/image.tar") && !FileManager.default.fileExists(atPath: c.dir + "/out2/image.tar.partial"))

        // A device without the key: encryption.no_identity, exit 2.
        let strangerDevice = Caisson.catalog + "\n[trust]\nage_identities = [\"stranger.agekey\"]\n"
        try strangerDevice.write(toFile: c.dir + "/services.toml", atomically: true, encoding: .utf8)
        let vs = try c.run(["package", "validate", "enc.edgepkg"])
        #expect(vs.status == 2 && vs.stdout.contains("[encryption.no_identity]"), "\(vs.stdout)")
    }

    /// A flipped bit or a truncation at a chunk boundary of image.tar.age: validation refuses it
    /// (`encryption.payload_invalid`, exit 2) and the simulated host gets no image.
    @Test func tamperedEncryptedPackageNeverReachesTheSimulatedHost() throws {
        let c = try Caisson()
        #expect(try c.run(["key", "generate", "--age", "device.agekey"], sim: false).status == 0)
        let device = Caisson.catalog + "\n[trust]\nage_identities = [\"device.agekey\"]\n"
        try device.write(toFile: c.dir + "/services.toml", atomically: true, encoding: .utf8)
        _ = try Self.imageTar(c.dir, version: "3.0.0")
        let recipient = try AgeIdentityFile.parse(try String(contentsOfFile: c.dir + "/device.agekey", encoding: .utf8))[0].recipient.text
        #expect(try c.run(["package", "build", "--service", "frontend", "--version", "3.0.0", "--from-tar", "image-3.0.0.tar",
                           "--output", "enc.edgepkg", "--encrypt-to", recipient], sim: false).status == 0)
        let pkg = Array(try Data(contentsOf: URL(fileURLWithPath: c.dir + "/enc.edgepkg")))
        // image.tar.age starts after manifest.toml's header, body and padding, and its own header.
        let manifestSize = Int(String(decoding: pkg[124..<135], as: UTF8.self), radix: 8)!
        let ageStart = 512 + (manifestSize + 511) / 512 * 512 + 512
        let ageSize = Int(String(decoding: pkg[(ageStart - 512 + 124)..<(ageStart - 512 + 135)], as: UTF8.self), radix: 8)!
        let headerEnd = pkg[ageStart...].firstRange(of: Array("\n---".utf8))!.upperBound
        let nonceEnd = pkg[headerEnd...].firstIndex(of: 0x0a)! + 1 + 16
        let cases: [(String, [UInt8])] = [
            ("flip at chunk 1 start", { var p = pkg; p[nonceEnd + 65552] ^= 1; return p }()),
            ("flip at chunk 0 end", { var p = pkg; p[nonceEnd + 65551] ^= 0x80; return p }()),
            ("flip in the final tag", { var p = pkg; p[ageStart + ageSize - 1] ^= 1; return p }()),
        ]
        for (name, bytes) in cases {
            FileManager.default.createFile(atPath: c.dir + "/bad.edgepkg", contents: Data(bytes))
            let v = try c.run(["package", "load", "bad.edgepkg", "--yes"])
            #expect(v.status == 2 && v.stdout.contains("[encryption.payload_invalid]"), "\(name): \(v.stdout)")
        }
        // Truncated at a chunk boundary (the tar entry still says the full size: a cut-short
        // package; and a package rewritten with the shorter age file).
        let cut = nonceEnd + 2 * 65552 - ageStart
        var w = TarArchiveWriter()
        w.addFile("manifest.toml", Array(pkg[512..<(512 + manifestSize)]))
        w.addFile("image.tar.age", Array(pkg[ageStart..<(ageStart + cut)]))
        FileManager.default.createFile(atPath: c.dir + "/short.edgepkg", contents: Data(w.finished()))
        let v = try c.run(["package", "load", "short.edgepkg", "--yes"])
        #expect(v.status == 2 && v.stdout.contains("[encryption.payload_invalid]"), "\(v.stdout)")
        // The simulated host was never even provisioned, let alone given the image.
        let sim = (try? String(contentsOfFile: c.dir + "/.caisson-state/sim-host.json", encoding: .utf8)) ?? ""
        #expect(!sim.contains("example/frontend:3.0.0"), "the simulated host got the image")
    }

    @Test func passphraseEncryptedPackageFromTheEnvironmentOnly() throws {
        let c = try Caisson()
        _ = try Self.imageTar(c.dir, version: "3.0.0")
        let noPass = try c.run(["package", "build", "--service", "frontend", "--version", "3.0.0", "--from-tar", "image-3.0.0.tar",
                                "--output", "p.edgepkg", "--encrypt-passphrase"], sim: false)
        #expect(noPass.status == 1 && noPass.stderr.contains("CAISSON_AGE_PASSPHRASE"), "\(noPass.stderr)")
        let env = ["CAISSON_AGE_PASSPHRASE": "correct horse"]
        let b = try c.run(["package", "build", "--service", "frontend", "--version", "3.0.0", "--from-tar", "image-3.0.0.tar",
                           "--output", "p.edgepkg", "--encrypt-passphrase", "--encrypt-work-factor", "12"], sim: false, env: env)
        #expect(b.status == 0, "\(b.stdout) \(b.stderr)")
        #expect(try c.run(["package", "validate", "p.edgepkg"], env: env).status == 0)
        let wrong = try c.run(["package", "validate", "p.edgepkg"], env: ["CAISSON_AGE_PASSPHRASE": "wrong"])
        #expect(wrong.status == 2 && wrong.stdout.contains("[encryption.no_identity]"), "\(wrong.stdout)")
        // A device that caps the work factor below the file's refuses before running scrypt.
        try (Caisson.catalog + "\n[trust]\nage_max_work_factor = 11\n").write(toFile: c.dir + "/services.toml", atomically: true, encoding: .utf8)
        let capped = try c.run(["package", "validate", "p.edgepkg"], env: env)
        #expect(capped.status == 2 && capped.stdout.contains("[encryption.work_factor_too_high]"), "\(capped.stdout)")
    }
}

/// The same on a real daemon: an encrypted package loads and swaps the service; a tampered copy
/// (one flipped bit inside image.tar.age) is refused with `encryption.payload_invalid` and Docker
/// gains no image and no container.
@Suite(.serialized) struct EncryptionRealDockerCLITests {
    @Test func encryptedPackageLoadsOnARealDaemonAndATamperedOneChangesNothing() throws {
        guard HostileDocker.usable("encrypted package load on a real daemon") else { return }
        let c = try Caisson()
        let run = "enc\(getpid())"
        let ref = "caisson-enc/app:2-\(run)"
        let name = "caisson-enc-\(run)"
        defer {
            _ = try? HostileDocker.docker(["rm", "-f", name])
            _ = try? HostileDocker.docker(["ps", "-aq", "--filter", "name=\(name)-caisson"]).stdout.split(separator: "\n").map {
                try? HostileDocker.docker(["rm", "-f", String($0)])
            }
            _ = try? HostileDocker.docker(["rmi", "-f", ref])
        }
        try #require(try HostileDocker.docker(["tag", "caisson-test/app:2", ref]).status == 0, "needs scripts/make-test-images")
        try #require(try HostileDocker.docker(["save", "-o", c.dir + "/image.tar", ref]).status == 0)
        let imageID = try HostileDocker.docker(["image", "inspect", "--format", "{{.Id}}", ref]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try HostileDocker.docker(["rmi", ref]).status == 0)
        #expect(try HostileDocker.docker(["run", "-d", "--name", name, "caisson-test/app:1"]).status == 0)
        let catalog = """
        catalog_version = 1
        [[services]]
        name = "encsvc"
        service_revision = "encsvc-v1"
        platform = "linux/amd64"
        runtime_mode = "docker"
        [services.docker]
        container_name = "\(name)"
        image_reference = "caisson-enc/app:1"
        [services.health_check]
        kind = "running"
        timeout_secs = 20
        stable_secs = 1
        [trust]
        age_identities = ["device.agekey"]
        require_encryption = true

        """
        try catalog.write(toFile: c.dir + "/services.toml", atomically: true, encoding: .utf8)
        let gen = try c.run(["key", "generate", "--age", "device.agekey", "--json"], sim: false)
        let recipient = try #require(gen.json?["recipient"] as? String)
        let b = try c.run(["package", "build", "--service", "encsvc", "--version", "2.0.0", "--from-tar", "image.tar",
                           "--output", "enc.edgepkg", "--encrypt-to", recipient], sim: false, env: HostileDocker.environment)
        #expect(b.status == 0, "\(b.stdout) \(b.stderr)")

        // Tampered: a flipped bit 100 KiB into image.tar.age.
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: c.dir + "/enc.edgepkg")))
        let manifestSize = Int(String(decoding: bytes[124..<135], as: UTF8.self), radix: 8)!
        let ageStart = 512 + (manifestSize + 511) / 512 * 512 + 512
        bytes[ageStart + 100_000] ^= 0x10
        FileManager.default.createFile(atPath: c.dir + "/bad.edgepkg", contents: Data(bytes))
        let before = try HostileDocker.listings()
        let bad = try c.run(["package", "load", "bad.edgepkg", "--yes"], sim: false, env: HostileDocker.environment)
        #expect(bad.status == 2 && bad.stdout.contains("[encryption.payload_invalid]"), "\(bad.stdout) \(bad.stderr)")
        let after = try HostileDocker.listings()
        #expect(before.images == after.images && before.containers == after.containers, "Docker changed")
        // (The image id is caisson-test/app:2's, which stays; what must not appear is the tag.)
        #expect(try HostileDocker.docker(["image", "inspect", ref]).status != 0, "the tampered package tagged \(ref)")

        let good = try c.run(["package", "load", "enc.edgepkg", "--yes"], sim: false, env: HostileDocker.environment)
        #expect(good.status == 0, "\(good.stdout) \(good.stderr)")
        let running = try HostileDocker.docker(["inspect", "--format", "{{.Image}}", name]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(running == imageID)
    }
}
