import CaissonCore
import Foundation
import Testing

/// Issue 12: the http, tcp and exec health kinds in `services.toml`, validated with clear errors.
@Suite("Catalog: health probes")
struct HealthProbeCatalogTests {
    static func catalog(_ health: String) -> String {
        """
        catalog_version = 1
        [[services]]
        name = "frontend"
        service_revision = "frontend-v1"
        platform = "linux/amd64"
        runtime_mode = "docker"
        [services.docker]
        container_name = "frontend"
        image_reference = "example/frontend:current"
        [services.health_check]
        \(health)
        """
    }

    static func parse(_ health: String) throws(CaissonError) -> HealthPolicy {
        try Catalog.parse(Array(catalog(health).utf8), path: "/etc/caisson/services.toml").services[0].health
    }

    @Test func httpWithEveryField() throws {
        let h = try Self.parse("""
            kind = "http"
            port = 8080
            path = "/healthz"
            expect_status = [200, 204]
            timeout_secs = 30
            poll_interval_secs = 2
            stable_secs = 5
            probe_timeout_secs = 3
            """)
        #expect(h == HealthPolicy(kind: .http, timeoutSecs: 30, pollIntervalSecs: 2, stableSecs: 5, port: 8080,
                                  path: "/healthz", expectStatus: [200, 204], probeTimeoutSecs: 3))
        #expect(h.summary == "http GET :8080/healthz expecting 200/204, timeout 30s, poll 2s, stable 5s, probe timeout 3s")
    }

    @Test func httpDefaultsAndTcpAndExec() throws {
        let http = try Self.parse("kind = \"http\"\nport = 80")
        #expect(http.path == "/" && http.expectStatus.isEmpty && http.probeTimeoutSecs == 2 && http.stableSecs == 5)
        let tcp = try Self.parse("kind = \"tcp\"\nport = 5432\ntimeout_secs = 1")
        #expect(tcp.port == 5432 && tcp.probeTimeoutSecs == 1 && tcp.stableSecs == 1)
        let exec = try Self.parse("kind = \"exec\"\ncommand = [\"/bin/check\", \"--quick\"]")
        #expect(exec.command == ["/bin/check", "--quick"] && exec.port == nil)
        #expect(exec.summary.hasPrefix("exec /bin/check --quick, "))
    }

    @Test func oldKindsAndCatalogsWithoutTheTableStillWork() throws {
        #expect(try Self.parse("kind = \"running\"") == HealthPolicy(kind: .running))
        #expect(try Self.parse("kind = \"container_health\"\ntimeout_secs = 10").kind == .containerHealth)
        let bare = Self.catalog("").replacingOccurrences(of: "[services.health_check]", with: "")
        #expect(try Catalog.parse(Array(bare.utf8), path: "c.toml").services[0].health == HealthPolicy())
    }

    @Test("bad probe fields are clear errors naming the field", arguments: [
        ("kind = \"grpc\"", "health_check.kind", "must be one of \"running\", \"container_health\", \"http\", \"tcp\", \"exec\", found \"grpc\""),
        ("kind = 3", "health_check.kind", "found an integer"),
        ("kind = \"http\"", "health_check.port", "missing: an http check needs the container port"),
        ("kind = \"tcp\"\nport = 0", "health_check.port", "from 1 to 65535, found 0"),
        ("kind = \"http\"\nport = 70000", "health_check.port", "from 1 to 65535, found 70000"),
        ("kind = \"http\"\nport = \"80\"", "health_check.port", "must be an integer"),
        ("kind = \"http\"\nport = 80\npath = \"healthz\"", "health_check.path", "must start with \"/\""),
        ("kind = \"http\"\nport = 80\npath = \"/a b\"", "health_check.path", "printable ASCII"),
        ("kind = \"http\"\nport = 80\nexpect_status = []", "health_check.expect_status", "must not be empty"),
        ("kind = \"http\"\nport = 80\nexpect_status = [200, 700]", "health_check.expect_status[1]", "from 100 to 599"),
        ("kind = \"exec\"", "health_check.command", "missing: an exec check needs the command"),
        ("kind = \"exec\"\ncommand = []", "health_check.command", "must not be empty"),
        ("kind = \"exec\"\ncommand = \"/bin/check\"", "health_check.command", "must be an array of strings"),
        ("kind = \"exec\"\ncommand = [\"\"]", "health_check.command[0]", "the program must not be empty"),
        ("kind = \"exec\"\ncommand = [\"/bin/x\", 1]", "health_check.command[1]", "must be a string"),
        ("kind = \"exec\"\ncommand = [\"/bin/x\"]\nport = 80", "health_check.port", "applies only to http and tcp checks, not to kind \"exec\""),
        ("kind = \"running\"\npath = \"/\"", "health_check.path", "applies only to http checks"),
        ("kind = \"tcp\"\nport = 80\ncommand = [\"x\"]", "health_check.command", "applies only to exec checks"),
        ("kind = \"container_health\"\nprobe_timeout_secs = 2", "health_check.probe_timeout_secs", "applies only to http and tcp and exec checks"),
        ("kind = \"tcp\"\nport = 80\nprobe_timeout_secs = 0", "health_check.probe_timeout_secs", "must be > 0"),
        ("kind = \"tcp\"\nport = 80\ntimeout_secs = 5\nprobe_timeout_secs = 6", "health_check.probe_timeout_secs", "must fit in timeout_secs (5s)"),
    ])
    func badFields(_ health: String, _ field: String, _ why: String) throws {
        do {
            _ = try Self.parse(health)
            Issue.record("accepted: \(health)")
        } catch {
            #expect(error.code == "catalog.invalid")
            #expect(error.message.contains("service \"frontend\": field `\(field)`"), "\(error.message)")
            #expect(error.message.contains(why), "\(error.message)")
        }
    }

    /// Journal snapshots written before the probe fields existed still decode (recovery reads them).
    @Test func policiesJournaledBeforeProbesDecode() throws {
        let old = #"{"kind":"container_health","timeoutSecs":20,"pollIntervalSecs":1,"stableSecs":5}"#
        let p = try JSONDecoder().decode(HealthPolicy.self, from: Data(old.utf8))
        #expect(p == HealthPolicy(kind: .containerHealth, timeoutSecs: 20, pollIntervalSecs: 1, stableSecs: 5))
        let round = try JSONDecoder().decode(HealthPolicy.self, from: JSONEncoder().encode(try Self.parse("kind = \"http\"\nport = 1")))
        #expect(round.port == 1 && round.kind == .http)
    }
}

@Suite("Probes and evidence: pure parts")
struct ProbeAndEvidenceTests {
    @Test func probeTargetsAndAnswers() {
        #expect(ProbeRequest.http(address: "172.18.0.5", port: 8080, path: "/healthz").target == "GET http://172.18.0.5:8080/healthz")
        #expect(ProbeRequest.tcp(address: "fd00::5", port: 5432).target == "TCP [fd00::5]:5432")
        #expect(ProbeRequest.exec(container: "c", command: ["/bin/check", "a b", "q\"x"]).target == #"exec /bin/check "a b" "q\"x""#)
        #expect(ProbeAnswer.httpStatus(503).text == "503")
        #expect(ProbeAnswer.noAnswer(afterMillis: 2000).text == "no answer within 2s")
        #expect(ProbeAnswer.exited(code: 1, output: " db down\n").text == #"exit 1 ("db down")"#)
        #expect(ProbeAnswer.httpStatus(503).isAnswer && !ProbeAnswer.refused("x").isAnswer && !ProbeAnswer.noAnswer(afterMillis: 1).isAnswer)
    }

    @Test func whatCountsAsHealthy() {
        var http = HealthPolicy(kind: .http, port: 80)
        #expect(http.isHealthy(.httpStatus(200)) && http.isHealthy(.httpStatus(302)))
        #expect(!http.isHealthy(.httpStatus(404)) && !http.isHealthy(.httpStatus(503)) && !http.isHealthy(.connected))
        http.expectStatus = [204]
        #expect(http.isHealthy(.httpStatus(204)) && !http.isHealthy(.httpStatus(200)))
        let tcp = HealthPolicy(kind: .tcp, port: 80)
        #expect(tcp.isHealthy(.connected) && !tcp.isHealthy(.refused("connection refused")))
        let exec = HealthPolicy(kind: .exec, command: ["x"])
        #expect(exec.isHealthy(.exited(code: 0, output: "")) && !exec.isHealthy(.exited(code: 1, output: "")))
        #expect(!exec.isHealthy(.noAnswer(afterMillis: 2000)))
    }

    @Test func probeAddressChoice() {
        let info = ContainerInfo(id: "c", name: "app", imageID: "i", imageReference: "r", status: .running, health: .none)
        var d = ContainerDetails(info: info, networks: [ContainerNetworkAddress(network: "a-net", ipAddress: ""),
                                                        ContainerNetworkAddress(network: "b-net", ipAddress: "172.20.0.3"),
                                                        ContainerNetworkAddress(network: "c-net", ipAddress: "172.21.0.3")])
        #expect(d.probeAddress == "172.20.0.3")
        d.networkMode = "host"
        #expect(d.probeAddress == "127.0.0.1")
        d.networkMode = "none"
        d.networks = []
        #expect(d.probeAddress == nil)
    }

    @Test func logTailIsBoundedByLinesAndBytes() {
        let lines = (1...300).map { LogLine($0 % 2 == 0 ? .stderr : .stdout, "line \($0)") }
        let byLines = LogTail.bounded(lines, limit: LogLimit())
        #expect(byLines.lines.count == 200 && byLines.lines.first?.text == "line 101" && byLines.truncated)
        let byBytes = LogTail.bounded(lines, limit: LogLimit(maxLines: 200, maxBytes: 36))
        #expect(byBytes.lines.map(\.text) == ["line 297", "line 298", "line 299", "line 300"])
        let whole = LogTail.bounded(Array(lines.prefix(3)), limit: LogLimit())
        #expect(!whole.truncated && whole.lines.count == 3)
        let long = LogTail.bounded([LogLine(.stdout, String(repeating: "x", count: 100) + "END")], limit: LogLimit(maxLines: 10, maxBytes: 11))
        #expect(long.lines.map(\.text) == ["xxxxxxxEND"] && long.truncated)
    }

    @Test func secretsAreRedactedOnlyForSecretNamesAndLongValues() {
        let r = SecretRedactor(environment: ["DB_PASSWORD=hunter22", "API_TOKEN=abcdefghij", "ssh_key=k3yk3yk3y",
                                             "SHORT_SECRET=123456", "HOME=/root/dir", "MY_SECRET_THING=s3cr3t-value",
                                             "NOEQUALS", "API_KEY=abcdefghij"])
        var n = 0
        let text = r.redact("login hunter22 token=abcdefghij key k3yk3yk3y short 123456 home /root/dir s3cr3t-value hunter22", count: &n)
        #expect(!text.contains("hunter22") && !text.contains("abcdefghij") && !text.contains("k3yk3yk3y") && !text.contains("s3cr3t-value"))
        #expect(text.contains("123456") && text.contains("/root/dir"))
        #expect(text.contains("[redacted DB_PASSWORD]") && text.contains("[redacted ssh_key]"))
        #expect(n == 5)
        // A tail cut inside a secret starts with its end.
        var m = 0
        #expect(r.redact("er22 then", count: &m, allowPartialPrefix: true) == "[redacted DB_PASSWORD] then" && m == 1)
        #expect(r.redact("er22 then", count: &m) == "er22 then")
        #expect(SecretRedactor(environment: ["PATH=/usr/bin:/bin"]).isEmpty)
    }
}
