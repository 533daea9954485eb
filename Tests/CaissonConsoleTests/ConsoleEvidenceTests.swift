import CaissonApp
import CaissonCore
import CaissonSimulator
import Foundation
import Testing
@testable import CaissonConsole

/// Issue 12, "offered to the console": after an update that fails, the result page, the state
/// document (`/api/state`) and the attempt's history page show why — the failed container's plain
/// sentence, exit code, OOM flag and last log lines — with the container's secrets redacted.
@Suite struct ConsoleEvidenceTests {
    static let secret = "correct-horse-battery"

    /// A device whose `frontend` container carries a secret in its environment, and on the stick a
    /// frontend 1.4.0 that prints that secret when it starts, then crashes (exit 1) with a last line
    /// (the container's restart policy, unless-stopped, restarts it).
    static func crashingDevice() throws -> TestConsole {
        let c = try TestConsole()
        let ref = "example/frontend:current"
        let h = SimulatedHost(seed: 1, recordTrace: false)
        _ = try h.addImage(id: SimulatedHost.fakeImageID(ref), tags: [ref],
                           config: ImageConfig(labels: ["io.caisson.sim.health": "healthy"], hasHealthcheck: true))
        _ = try h.runContainer(name: "frontend", imageReference: ref, restartPolicy: .unlessStopped,
                               env: ["DB_PASSWORD=\(secret)", "APP_MODE=production"])
        h.clock.sleep(millis: 30_000)
        try FileManager.default.createDirectory(atPath: c.stateDir, withIntermediateDirectories: true)
        try h.save(to: c.stateDir + "/sim-host.json")

        var img = SyntheticImage(reference: "example/frontend:1.4.0")
        img.labels = ["io.caisson.sim.health": "crash:2", "org.opencontainers.image.version": "1.4.0",
                      SimScript.logLabel: "connecting to the database with password=\(secret)",
                      SimScript.exitLogLabel: "fatal: the database refused the connection"]
        img.healthcheck = ["CMD", "/bin/true"]
        img.files = [("app/VERSION", Array("1.4.0\n".utf8))]
        let (bytes, _) = try img.archive()
        let manifest = EdgePackageWriter.manifest(service: "frontend", revision: "frontend-v1", platform: "linux/amd64",
                                                  version: "1.4.0", createdAt: "2026-11-04T08:00:00Z",
                                                  reference: "example/frontend:1.4.0", sha256: SHA256.hash(bytes).hex, size: bytes.count)
        try EdgePackageWriter.write(manifest: manifest, image: bytes, to: c.media + "/frontend-1.4.0.edgepkg")

        let url = try c.start()
        let signIn = try c.request("GET", String(url.dropFirst("http://".count).drop { $0 != "/" }))
        #expect(signIn.status == 303)
        c.cookie = signIn.cookie(ConsoleAuth.cookieName)
        c.csrf = try c.request("GET", "/").bodyText.firstMatch(of: /data-csrf="([0-9a-f]+)"/).map { String($0.1) } ?? ""
        #expect(c.csrf.count == 64)
        return c
    }

    @Test func aFailedUpdateShowsWhyWithSecretsRedacted() throws {
        let c = try Self.crashingDevice()
        #expect(try c.post("/check", form: ["package": try c.packageID("frontend-1.4.0.edgepkg")]).status == 303)
        try c.wait(for: .confirming)
        _ = try c.post("/operation/go", form: ["op": try #require(c.console.operation).id])
        try c.wait(for: .finished)
        let result = try #require(c.console.operation?.snapshot.result)
        #expect(result.outcome == "rolled_back")
        let evidence = try #require(result.evidence.first)
        #expect(result.evidence.map(\.role) == [.new])
        #expect(evidence.state?.exitCode == 1 && evidence.state?.oomKilled == false)

        // The result page: the plain reason first, the last words, the log with the secret hidden.
        let page = try c.request("GET", "/operation").bodyText
        #expect(page.contains("Why it failed"))
        // It crashed (exit 1) and its restart policy kept restarting it.
        #expect(page.contains("The new version kept crashing and restarting."))
        #expect(page.contains("exit code 1, out of memory: no, restarts: 1"))
        #expect(page.contains("Its last words: <code>fatal: the database refused the connection</code>"))
        #expect(page.contains("password=[redacted DB_PASSWORD]"))
        #expect(page.contains("secret value(s) were hidden"))
        #expect(!page.contains(Self.secret))

        // The state document (what the page's script and other clients read).
        let state = try c.request("GET", "/api/state")
        #expect(state.status == 200)
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(state.body)) as? [String: Any])
        let op = try #require(doc["op"] as? [String: Any])
        let list = try #require(op["evidence"] as? [[String: Any]])
        #expect(list.count == 1)
        #expect(list.first?["sentence"] as? String == "The new version kept crashing and restarting.")
        #expect(list.first?["exit_code"] as? Int == 1 && list.first?["oom_killed"] as? Bool == false)
        #expect((list.first?["last_log_lines"] as? [String])?.last == "fatal: the database refused the connection")
        #expect((list.first?["redactions"] as? Int ?? 0) >= 1)
        #expect(!state.bodyText.contains(Self.secret))

        // The attempt's page in the history: the whole kept log, still without the secret.
        let id = try #require(result.attempt?.updateID)
        let detail = try c.request("GET", "/history/\(id)").bodyText
        #expect(detail.contains("Why it failed") && detail.contains("exit code 1"))
        #expect(detail.contains("connecting to the database with password=[redacted DB_PASSWORD]"))
        #expect(!detail.contains(Self.secret))
        // And nothing in the store carries it either.
        let stored = try c.app().failureEvidence(updateID: id).records
        #expect(stored == result.evidence)
        #expect(!JSONCoding.string(stored, pretty: false).contains(Self.secret))
    }

    @Test func aGoodUpdateShowsNoEvidence() throws {
        let c = try TestConsole.signedIn()
        _ = try c.post("/check", form: ["package": try c.packageID("frontend-1.1.0.edgepkg")])
        try c.wait(for: .confirming)
        _ = try c.post("/operation/go", form: ["op": try #require(c.console.operation).id])
        try c.wait(for: .finished)
        #expect(c.console.operation?.snapshot.result?.outcome == "updated")
        #expect(!(try c.request("GET", "/operation").bodyText.contains("Why it failed")))
        #expect(!(try c.request("GET", "/api/state").bodyText.contains("\"evidence\"")))
    }
}
