import CaissonCore
import Foundation
import Testing

/// `caisson key generate` + `package build --sign` + a catalog that requires signatures.
@Suite struct SigningCLITests {
    @Test func signedBuildIsAcceptedUnsignedIsRefusedAndMinisignAgrees() throws {
        let c = try Caisson()
        let gen = try c.run(["key", "generate", "release", "--unencrypted", "--json"], sim: false)
        #expect(gen.status == 0, "\(gen.stderr)")
        let publicKey = try #require(gen.json?["public_key"] as? String)
        #expect(FileManager.default.fileExists(atPath: c.dir + "/release.key"))
        #expect(try c.run(["key", "generate", "release", "--unencrypted"], sim: false).status == 1)  // no silent overwrite

        let trusted = Caisson.catalog + "\n[trust]\npublic_keys = [\"\(publicKey)\"]\nrequire_signature = true\n"
        try trusted.write(toFile: c.dir + "/services.toml", atomically: true, encoding: .utf8)

        var img = SyntheticImage(reference: "example/frontend:3.0.0")
        img.files = [("v", Array("3".utf8))]
        let (bytes, _) = try img.archive()
        FileManager.default.createFile(atPath: c.dir + "/image.tar", contents: Data(bytes))

        let signed = try c.run(["package", "build", "--service", "frontend", "--version", "3.0.0", "--from-tar", "image.tar",
                                "--output", "signed.edgepkg", "--sign", "release.key"], sim: false)
        #expect(signed.status == 0, "\(signed.stdout) \(signed.stderr)")
        let v = try c.run(["package", "validate", "signed.edgepkg"], sim: false)
        #expect(v.status == 0, "\(v.stdout)")

        let unsigned = try c.run(["package", "build", "--service", "frontend", "--version", "3.0.1", "--from-tar", "image.tar",
                                  "--output", "unsigned.edgepkg"], sim: false)
        #expect(unsigned.status == 2)
        #expect(unsigned.stdout.contains("[signature.missing]"), "\(unsigned.stdout)")

        // The peer: Debian's minisign verifies what Caisson signed.
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/minisign") {
            let tar = Process()
            tar.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
            tar.currentDirectoryURL = URL(fileURLWithPath: c.dir)
            tar.arguments = ["-xf", "signed.edgepkg", "manifest.toml", "manifest.toml.minisig"]
            try tar.run()
            tar.waitUntilExit()
            #expect(tar.terminationStatus == 0)
            let verify = Process()
            verify.executableURL = URL(fileURLWithPath: "/usr/bin/minisign")
            verify.currentDirectoryURL = URL(fileURLWithPath: c.dir)
            verify.arguments = ["-V", "-p", "release.pub", "-m", "manifest.toml"]
            verify.standardOutput = FileHandle.nullDevice
            try verify.run()
            verify.waitUntilExit()
            #expect(verify.terminationStatus == 0)
        } else {
            print("notice: minisign not installed; skipping the peer check")
        }
    }
}
