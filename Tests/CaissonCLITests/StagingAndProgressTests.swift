import CaissonCore
import Foundation
import Testing

/// `caisson --host sim package load PKG OPTION` started and read up to its `[y/N]` prompt.
struct PromptedLoad {
    let process = Process()
    let out = Pipe(), err = Pipe(), input = Pipe()
    var stdout = Data()

    init(_ c: Caisson, _ pkg: String, _ option: String) throws {
        process.executableURL = URL(fileURLWithPath: Caisson.binary)
        process.currentDirectoryURL = URL(fileURLWithPath: c.dir)
        process.arguments = ["--host", "sim", "package", "load", pkg, option]
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        while !String(decoding: stdout, as: UTF8.self).contains("[y/N]: ") {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            stdout.append(d)
        }
    }

    /// Answers the prompt and waits: (exit status, all of stdout, stderr).
    func answer(_ text: String) throws -> (Int32, String, String) {
        input.fileHandleForWriting.write(Data((text + "\n").utf8))
        try input.fileHandleForWriting.close()
        let rest = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout + rest, as: UTF8.self), stderr)
    }
}

@Suite struct StagingAndProgressTests {
    func stagedFiles(_ c: Caisson) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: c.dir + "/.caisson-state/staging")) ?? []).sorted()
    }

    @Test func progressLinesWhenNotATerminal() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.1")
        let r = try c.run(["package", "validate", pkg])
        #expect(r.status == 0)
        #expect(r.stderr.contains("Validating: 100% ("), "stderr: \(r.stderr)")
        #expect(!r.stderr.contains("\u{1B}["), "no terminal control codes when stderr is not a terminal")
        let q = try c.run(["package", "validate", pkg, "--quiet"])
        #expect(q.status == 0 && !q.stderr.contains("Validating"))
        let j = try c.run(["package", "validate", pkg, "--json"])
        #expect(j.json != nil && !j.stderr.contains("Validating"))
    }

    @Test func loadCopiesThePackageOnceAndWorksFromTheCopy() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.2")
        // Answer the prompt only after the "medium" is gone: everything after the copy reads the copy.
        let prompt = try PromptedLoad(c, pkg, "--stage")
        let staged = stagedFiles(c)
        try FileManager.default.removeItem(atPath: c.dir + "/" + pkg)
        let (status, text, stderr) = try prompt.answer("y")
        #expect(status == 0, "\(text) \(stderr)")
        #expect(staged.count == 1 && staged.first?.hasSuffix(".edgepkg") == true, "\(staged)")
        #expect(stderr.contains("The package has been copied; you may remove the medium."))
        #expect(stderr.contains("Copying: 100% ("))
        #expect(stderr.contains("Loading image: 100% ("))
        #expect(text.contains("The service now runs example/frontend:1.0.2 ("))
        // The copy goes once the attempt is over.
        #expect(stagedFiles(c).isEmpty)
        // The notice shows with --quiet too, never with --json.
        let pkg2 = try c.package("q.edgepkg", version: "1.0.3", createdAt: "2026-03-17T00:00:00Z")
        let q = try c.run(["package", "load", pkg2, "--yes", "--quiet", "--stage"])
        #expect(q.status == 0 && q.stderr.contains("you may remove the medium") && !q.stderr.contains("Copying"))
    }

    @Test func aDeclinedOrRejectedLoadLeavesNoStagedCopy() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.4")
        #expect(try c.run(["package", "load", pkg, "--stage"], stdin: "n\n").status == 3)
        let evil = try c.package("evil.edgepkg", version: "1.0.5", tag: "example/backend:current")
        #expect(try c.run(["package", "load", evil, "--yes", "--stage"]).status == 2)
        #expect(stagedFiles(c).isEmpty)
    }

    @Test func aReadErrorMidCopyIsACleanRejection() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.6")
        let r = try c.run(["package", "load", pkg, "--yes", "--stage"], env: ["CAISSON_FAULT_STAGING_READ_AFTER": "1"])
        #expect(r.status == 2, "\(r.stdout) \(r.stderr)")
        #expect(r.stdout.contains("[package.read_failed]") && r.stdout.contains("Status: rejected"))
        #expect(!r.stderr.contains("you may remove the medium"))
        #expect(stagedFiles(c).isEmpty, "the partial copy is removed")
        let h = try c.run(["history", "list", "--json"])
        #expect((h.json?["attempts"] as? [Any])?.isEmpty == true)
        let show = try c.run(["service", "show", "frontend", "--json"])
        #expect(show.json != nil && show.json?["state"] == nil)
        let j = try c.run(["package", "load", pkg, "--yes", "--json", "--stage"], env: ["CAISSON_FAULT_STAGING_READ_AFTER": "1"])
        #expect(j.status == 2)
        #expect((j.json?["issues"] as? [[String: Any]])?.first?["code"] as? String == "package.read_failed")
    }

    @Test func notEnoughFreeSpaceIsRefusedBeforeCopying() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.7")
        let env = ["CAISSON_STAGING_RESERVE_BYTES": "9000000000000000000"]
        let r = try c.run(["package", "load", pkg, "--yes", "--stage"], env: env)
        #expect(r.status == 1)
        #expect(r.stderr.contains("error: [staging.insufficient_space] not enough free space"), "\(r.stderr)")
        #expect(stagedFiles(c).isEmpty)
        let j = try c.run(["package", "load", pkg, "--yes", "--json", "--stage"], env: env)
        #expect(j.status == 1)
        #expect((j.json?["error"] as? [String: Any])?["code"] as? String == "staging.insufficient_space")
    }

    /// The reserve is a documented operator setting: a value that is not a byte count is refused
    /// before anything is copied, not silently replaced by the default.
    @Test func anInvalidStagingReserveIsRefused() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.7")
        for bad in ["-1", "32MiB", ""] {
            let r = try c.run(["package", "load", pkg, "--yes", "--stage"], env: ["CAISSON_STAGING_RESERVE_BYTES": bad])
            #expect(r.status == 1, "\(bad): \(r.stderr)")
            #expect(r.stderr.contains("error: [staging.invalid_reserve]"), "\(r.stderr)")
            #expect(stagedFiles(c).isEmpty)
        }
        let ok = try c.run(["package", "load", pkg, "--yes", "--stage"], env: ["CAISSON_STAGING_RESERVE_BYTES": "0"])
        #expect(ok.status == 0, "\(ok.stderr)")
    }

    @Test func onTheStateDirectorysOwnFilesystemThePackageIsReadInPlace() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.8")
        let r = try c.run(["package", "load", pkg, "--yes"])
        #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
        #expect(!r.stderr.contains("Copying") && !r.stderr.contains("you may remove the medium"), "\(r.stderr)")
        #expect(r.stderr.contains("Validating: 100% ("))
        #expect(r.stdout.contains("The service now runs example/frontend:1.0.8 ("))
        #expect(stagedFiles(c).isEmpty)
        // --no-stage is the same; both flags at once is a usage error that changes nothing.
        let both = try c.run(["package", "load", pkg, "--yes", "--stage", "--no-stage"])
        #expect(both.status == 1 && both.stderr.contains("--stage and --no-stage cannot be used together"), "\(both.stderr)")
    }

    @Test func aPackageModifiedWhileThePromptWaitsIsRefused() throws {
        let c = try Caisson()
        let pkg = try c.package("p.edgepkg", version: "1.0.9")
        // An old mtime, so the write below shows even within one tick of the kernel's coarse clock.
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -86_400)], ofItemAtPath: c.dir + "/" + pkg)
        let prompt = try PromptedLoad(c, pkg, "--no-stage")
        // Someone writes to the package between the plan and the answer (same byte: only the write shows).
        let handle = try #require(FileHandle(forUpdatingAtPath: c.dir + "/" + pkg))
        let first = try #require(try handle.read(upToCount: 1))
        try handle.seek(toOffset: 0)
        handle.write(first)
        try handle.close()
        let (status, text, _) = try prompt.answer("y")
        #expect(status == 2, "\(text)")
        #expect(text.contains("[package.changed]"), "\(text)")
        let h = try c.run(["history", "list", "--json"])
        #expect((h.json?["attempts"] as? [Any])?.isEmpty == true, "nothing was attempted")
    }
}
