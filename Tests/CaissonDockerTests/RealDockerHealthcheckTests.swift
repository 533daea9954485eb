import CaissonCore
import Foundation
import Testing
@testable import CaissonDocker

/// `DockerHost.configuredHealthcheck` on a real daemon (issue 10 item 12: the preflight refuses a
/// `container_health` update that can only fail, and must not refuse one the service's own
/// settings make checkable), and the same question for a Compose file.
@Suite("Configured healthchecks on a real daemon", .serialized, .enabled(if: RealDocker.availableWithBusybox))
struct RealDockerHealthcheckTests {
    let client = RealDocker.client!
    var host: DockerHost { DockerHost(client: client) }

    static func service(_ container: String) -> ServiceSpec {
        ServiceSpec(name: "web", serviceRevision: "web-v1", platform: "linux/amd64", runtimeMode: .docker,
                    docker: DockerTarget(containerName: container, imageReference: "unused"), health: HealthPolicy(kind: .containerHealth))
    }

    @Test func containerLevelHealthchecks() throws {
        let run = RealDocker.runID
        let plain = try RealDocker.makeImage("nohc", [#"CMD ["/bin/sleep", "600"]"#])
        let checked = try RealDocker.makeImage("hc", [#"CMD ["/bin/sleep", "600"]"#, #"HEALTHCHECK CMD ["/bin/true"]"#])
        let prefix = "caisson-hc-\(run)-"
        defer {
            RealDocker.removeContainers(prefix: prefix)
            for image in [plain.reference, checked.reference] { _ = try? client.removeImage(image, force: true) }
        }
        func make(_ name: String, _ image: String, _ healthcheck: JSONValue?) throws {
            var body: [String: JSONValue] = ["Image": .string(image)]
            if let healthcheck { body["Healthcheck"] = healthcheck }
            _ = try client.createContainer(name: prefix + name, body: .object(body))
        }
        try make("own", plain.reference, ["Test": ["CMD", "/bin/true"]])
        try make("image", checked.reference, nil)
        try make("none", plain.reference, nil)
        try make("disabled", checked.reference, ["Test": ["NONE"]])
        #expect(try host.configuredHealthcheck(for: Self.service(prefix + "own")) == true)
        #expect(try host.configuredHealthcheck(for: Self.service(prefix + "image")) == nil)
        #expect(try host.configuredHealthcheck(for: Self.service(prefix + "none")) == nil)
        #expect(try host.configuredHealthcheck(for: Self.service(prefix + "disabled")) == false)
        #expect(try host.configuredHealthcheck(for: Self.service(prefix + "missing")) == nil)
    }

    @Test func composeFileHealthchecks() throws {
        guard RealDocker.composeAvailable else { return }
        let dir = NSTemporaryDirectory() + "caisson-hc-compose-\(RealDocker.runID)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
        services:
          checked:
            image: caisson-test/app:nohealth
            healthcheck:
              test: ["CMD", "/bin/true"]
          disabled:
            image: caisson-test/app:1
            healthcheck:
              disable: true
          plain:
            image: caisson-test/app:1

        """.write(toFile: dir + "/compose.yaml", atomically: true, encoding: .utf8)
        func spec(_ s: String) -> ServiceSpec {
            ServiceSpec(name: s, serviceRevision: "v1", platform: "linux/amd64", runtimeMode: .compose,
                        compose: ComposeTarget(project: "caisson-hc-\(RealDocker.runID)", file: dir + "/compose.yaml", service: s),
                        health: HealthPolicy(kind: .containerHealth))
        }
        #expect(try host.configuredHealthcheck(for: spec("checked")) == true)
        #expect(try host.configuredHealthcheck(for: spec("disabled")) == false)
        #expect(try host.configuredHealthcheck(for: spec("plain")) == nil)
    }
}
