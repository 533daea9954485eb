import CaissonCore
import Foundation
import Testing

@Suite struct BuildTests {
    func imageTar(_ c: Caisson, _ name: String, reference: String, architecture: String = "amd64", extraTag: String? = nil) throws -> [UInt8] {
        var img = SyntheticImage(reference: reference)
        img.architecture = architecture
        img.labels = ["io.caisson.sim.health": "healthy"]
        img.healthcheck = ["CMD", "/bin/true"]
        img.files = [("VERSION", Array("x".utf8))]
        let (bytes, _) = try img.archive()
        try Data(bytes).write(to: URL(fileURLWithPath: c.dir + "/" + name))
        return bytes
    }

    @Test func buildFromADockerSaveTarballThenLoadIt() throws {
        let c = try Caisson()
        let bytes = try imageTar(c, "img.tar", reference: "example/frontend:2.0.0")
        let r = try c.run(["package", "build", "--service", "frontend", "--from-tar", "img.tar", "--version", "2.0.0",
                           "--created-at", "2026-05-01T00:00:00Z", "--output", "out.edgepkg"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("Wrote ") && r.stdout.contains("Status: accepted"))
        // Byte for byte what the reference recipe writes for the same manifest and image.
        let m = EdgePackageWriter.manifest(service: "frontend", revision: "frontend-v1", platform: "linux/amd64", version: "2.0.0",
                                           createdAt: "2026-05-01T00:00:00Z", reference: "example/frontend:2.0.0",
                                           sha256: SHA256.hash(bytes).hex, size: bytes.count)
        try EdgePackageWriter.write(manifest: m, image: bytes, to: c.dir + "/ref.edgepkg")
        let built = try Data(contentsOf: URL(fileURLWithPath: c.dir + "/out.edgepkg"))
        #expect(built == (try Data(contentsOf: URL(fileURLWithPath: c.dir + "/ref.edgepkg"))))
        #expect(!FileManager.default.fileExists(atPath: c.dir + "/out.edgepkg.partial"))
        // Tar agrees it is an archive of manifest.toml then image.tar.
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        tar.arguments = ["tar", "-tf", c.dir + "/out.edgepkg"]
        let pipe = Pipe()
        tar.standardOutput = pipe
        try tar.run()
        let listing = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        tar.waitUntilExit()
        #expect(listing == "manifest.toml\nimage.tar\n")

        let load = try c.run(["package", "load", "out.edgepkg", "--yes"])
        #expect(load.status == 0, "\(load.stdout) \(load.stderr)")

        let j = try c.run(["package", "build", "--service", "frontend", "--from-tar", "img.tar", "--version", "2.0.1", "--json"])
        #expect(j.status == 0)
        #expect((j.json?["output"] as? String)?.hasSuffix("/frontend-2.0.1.edgepkg") == true)
        #expect((j.json?["validation"] as? [String: Any])?["status"] as? String == "accepted")
    }

    @Test func buildRefusesWhatCannotMakeAGoodPackage() throws {
        let c = try Caisson()
        _ = try imageTar(c, "arm.tar", reference: "example/frontend:2.0.0", architecture: "arm64")
        let arm = try c.run(["package", "build", "--service", "frontend", "--from-tar", "arm.tar", "--version", "2.0.0"])
        #expect(arm.status == 1)
        #expect(arm.stderr.contains("[build.platform_mismatch]"), "\(arm.stderr)")
        try Data("not a tarball at all".utf8).write(to: URL(fileURLWithPath: c.dir + "/junk.tar"))
        let junk = try c.run(["package", "build", "--service", "frontend", "--from-tar", "junk.tar", "--version", "2.0.0"])
        #expect(junk.status == 1 && junk.stderr.contains("[build.invalid_image]"), "\(junk.stderr)")
        let unknown = try c.run(["package", "build", "--service", "nope", "--from-tar", "arm.tar", "--version", "2.0.0"])
        #expect(unknown.status == 1 && unknown.stderr.contains("[package.unknown_service]"))
        let both = try c.run(["package", "build", "--service", "frontend", "--version", "2.0.0"])
        #expect(both.status == 1 && both.stderr.contains("exactly one of --image REF and --from-tar FILE"))
        let badVersion = try c.run(["package", "build", "--service", "frontend", "--from-tar", "arm.tar", "--version", "two"])
        #expect(badVersion.status == 1 && badVersion.stderr.contains("SemVer"))
        let files = try FileManager.default.contentsOfDirectory(atPath: c.dir)
        #expect(!files.contains { $0.hasSuffix(".edgepkg") || $0.hasSuffix(".partial") }, "\(files)")
    }
}
