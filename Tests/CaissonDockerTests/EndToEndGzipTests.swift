import CaissonCore
import CaissonDocker
import Foundation
import Testing

/// Issue 11 item 3 on a real daemon: a package whose image.tar is gzip-compressed (made by
/// `package build --compress gzip`, and by `gzip` itself) validates and loads, the compressed
/// bytes going to `docker load` as they are through the verified, gated upload.
@Suite("End to end: gzip-compressed images on a real daemon", .serialized)
struct EndToEndGzipTests {
    /// `docker save` of `source` tagged `reference` into `dir/name` (the tag is removed again).
    static func save(_ w: EndToEndTests.World, source: String, reference: String, to name: String) throws -> String {
        let path = w.dir + "/" + name
        try RealDocker.docker(["tag", source, reference])
        let s = try RealDocker.docker(["save", "-o", path, reference])
        try RealDocker.docker(["rmi", reference])
        try #require(s.status == 0, "docker save: \(s.stderr)")
        return path
    }

    @Test(arguments: ["package build --compress gzip", "gzip -n, then package build"])
    func aGzipPackageLoadsAndUpdatesTheService(how: String) throws {
        guard RealDocker.usable("end-to-end gzip-compressed image (\(how))") else { return }
        let w = try EndToEndTests.World(how.hasPrefix("gzip") ? "gzn" : "gzb")
        defer { w.cleanup() }
        try w.startFrontend()
        let before = try #require(w.info(w.container))
        let reference = "caisson-e2e/frontend:2.0.0-\(w.tag)"
        defer { _ = try? RealDocker.docker(["rmi", reference]) }
        var tar = try Self.save(w, source: "caisson-test/app:2", reference: reference, to: "image.tar")
        var args = ["package", "build", "--service", "frontend", "--version", "2.0.0", "--output", w.dir + "/gz.edgepkg"]
        if how.hasPrefix("gzip") {
            let g = try RealDocker.command("gzip", ["-n", tar])
            try #require(g.status == 0, "gzip: \(g.stderr)")
            tar += ".gz"
        } else {
            args += ["--compress", "gzip"]
        }
        let b = try w.caisson(args + ["--from-tar", tar])
        #expect(b.status == 0, "\(b.stdout) \(b.stderr)")

        let pkg = try #require(FileManager.default.contents(atPath: w.dir + "/gz.edgepkg")).map { $0 }
        let scan = PackageScanner().scan(MemoryByteSource(pkg))
        #expect(scan.issues == [])
        #expect(scan.imageTar?.compression == .gzip)
        #expect(w.imageID(reference) == nil)

        let r = try w.caisson(["package", "load", w.dir + "/gz.edgepkg", "--yes"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        let after = try #require(w.info(w.container))
        #expect(after.imageID == w.imageID("caisson-test/app:2"))
        #expect(after.isRunning && after.id != before.id)
        #expect(try w.history().first?.status == "succeeded")
    }

    /// A gzip image whose stream is refused (a second member here, which `docker load` would read)
    /// never reaches the daemon, although the upload starts while validation runs.
    @Test func aRefusedGzipImageLeavesDockerUnchanged() throws {
        guard RealDocker.usable("end-to-end refused gzip image") else { return }
        let w = try EndToEndTests.World("gzr")
        defer { w.cleanup() }
        try w.startFrontend()
        let before = try #require(w.info(w.container))
        let reference = "caisson-e2e/frontend:3.0.0-\(w.tag)"
        defer { _ = try? RealDocker.docker(["rmi", reference]) }
        let tar = try Self.save(w, source: "caisson-test/app:2", reference: reference, to: "image.tar")
        let plain = try #require(FileManager.default.contents(atPath: tar)).map { $0 }
        let half = plain.count / 2
        let gz = try Gzip.compress(Array(plain[..<half])) + Gzip.compress(Array(plain[half...]))
        let manifest = EdgePackageWriter.manifest(service: "frontend", revision: "frontend-v1", platform: "linux/amd64",
                                                  version: "3.0.0", createdAt: "2026-03-16T18:30:00Z", reference: reference,
                                                  sha256: SHA256.hash(gz).hex, size: gz.count)
        try EdgePackageWriter.write(manifest: manifest, image: gz, to: w.dir + "/two.edgepkg")
        let r = try w.caisson(["package", "load", w.dir + "/two.edgepkg", "--yes"])
        #expect(r.status == 2, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("[image.gzip_multiple_members]"), "\(r.stdout)")
        #expect(w.imageID(reference) == nil, "the refused image reached the daemon")
        let after = try #require(w.info(w.container))
        #expect(after.id == before.id && after.isRunning)
    }
}
