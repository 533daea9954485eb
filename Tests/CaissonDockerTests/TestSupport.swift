import Foundation
import Testing
@testable import CaissonDocker

/// A minimal ustar writer for test root filesystems (directories, files, symlinks).
struct TestTar {
    private(set) var bytes: [UInt8] = []

    mutating func directory(_ name: String) {
        header(name.hasSuffix("/") ? name : name + "/", size: 0, type: UInt8(ascii: "5"), mode: 0o755)
    }

    mutating func file(_ name: String, _ contents: [UInt8], mode: Int = 0o755) {
        header(name, size: contents.count, type: UInt8(ascii: "0"), mode: mode)
        bytes += contents
        bytes += [UInt8](repeating: 0, count: (512 - contents.count % 512) % 512)
    }

    mutating func symlink(_ name: String, to target: String) {
        header(name, size: 0, type: UInt8(ascii: "2"), mode: 0o777, linkName: target)
    }

    /// The archive with its end-of-archive marker.
    var archive: [UInt8] { bytes + [UInt8](repeating: 0, count: 1024) }

    private mutating func header(_ name: String, size: Int, type: UInt8, mode: Int, linkName: String = "") {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, _ offset: Int, _ length: Int) {
            for (index, byte) in text.utf8.prefix(length).enumerated() { block[offset + index] = byte }
        }
        func octal(_ value: Int, _ offset: Int, _ length: Int) {
            let digits = String(value, radix: 8)
            put(String(repeating: "0", count: max(0, length - 1 - digits.count)) + digits, offset, length - 1)
        }
        put(name, 0, 100)
        octal(mode, 100, 8)
        octal(0, 108, 8)
        octal(0, 116, 8)
        octal(size, 124, 12)
        octal(1_700_000_000, 136, 12)
        for index in 148..<156 { block[index] = 32 }
        block[156] = type
        put(linkName, 157, 100)
        put("ustar\u{0}00", 257, 8)
        let checksum = block.reduce(0) { $0 + Int($1) }
        octal(checksum, 148, 7)
        block[155] = 32
        bytes += block
    }
}

/// Is a real Docker daemon available for the real-daemon tests?
enum RealDocker {
    /// `DOCKER_HOST` if set; else the `export DOCKER_HOST=...` line of `<repo>/.docker-test/env`
    /// (written by `scripts/docker.sh start`); else the default socket.
    static let dockerHost: String? = {
        if let value = ProcessInfo.processInfo.environment["DOCKER_HOST"], !value.isEmpty { return value }
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let envFile = repo.appendingPathComponent(".docker-test/env").path
        guard let text = try? String(contentsOfFile: envFile, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            for prefix in ["export DOCKER_HOST=", "DOCKER_HOST="] where trimmed.hasPrefix(prefix) {
                return String(trimmed.dropFirst(prefix.count)).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            }
        }
        return nil
    }()

    /// A client for that daemon, if it answers a ping (checked once).
    static let client: DockerClient? = {
        do {
            let endpoint = try DockerEndpoint.parse(dockerHost: dockerHost)
            let client = DockerClient(configuration: .init(
                endpoint: endpoint,
                timeouts: DockerTimeouts(connect: .seconds(5), call: .seconds(120)),
                loadTimeouts: DockerTimeouts(connect: .seconds(5), call: .seconds(600), idle: .seconds(120))))
            _ = try client.ping()
            _ = try client.apiVersion()
            return client
        } catch {
            print("NOTICE: real-Docker tests SKIPPED: no daemon answers at \(dockerHost ?? "unix://\(DockerEndpoint.defaultSocketPath)") (\(error)). Run `scripts/docker.sh install && scripts/docker.sh start` to enable them.")
            return nil
        }
    }()

    static var available: Bool { client != nil }

    /// A static busybox for FROM-scratch test images (Debian's busybox-static).
    static let busybox: [UInt8]? = {
        guard let data = FileManager.default.contents(atPath: "/bin/busybox"), data.count > 100_000 else {
            print("NOTICE: real-Docker image tests SKIPPED: /bin/busybox missing (apt-get install busybox-static)")
            return nil
        }
        let bytes = [UInt8](data)
        // A dynamically linked busybox names its ELF interpreter; it cannot run FROM scratch.
        if bytes.prefix(8192).withUnsafeBufferPointer({ buffer in
            let needle = Array("ld-linux".utf8)
            return (0...(buffer.count - needle.count)).contains { start in
                needle.indices.allSatisfy { buffer[start + $0] == needle[$0] }
            }
        }) {
            print("NOTICE: real-Docker image tests SKIPPED: /bin/busybox is not static (apt-get install busybox-static)")
            return nil
        }
        return bytes
    }()

    static var availableWithBusybox: Bool { available && busybox != nil }

    /// A root filesystem with /bin/busybox and /bin/sh.
    static func rootfs(extraFile: (String, [UInt8])? = nil) -> [UInt8] {
        var tar = TestTar()
        tar.directory("bin")
        tar.directory("tmp")
        tar.file("bin/busybox", busybox ?? [])
        tar.symlink("bin/sh", to: "busybox")
        if let (name, contents) = extraFile { tar.file(name, contents, mode: 0o644) }
        return tar.archive
    }

    /// A unique suffix per test process, so parallel runs never share names.
    static let runID = String(getpid())
}

/// A temporary file removed on deinit.
final class TemporaryFile {
    let path: String
    init(_ name: String) {
        path = NSTemporaryDirectory() + "caisson-docker-\(RealDocker.runID)-\(name)"
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Suite("Real-Docker gate")
struct RealDockerGate {
    /// scripts/test.sh sets CAISSON_REQUIRE_DOCKER=1: then the real-daemon tests must run, not skip.
    @Test func daemonPresentWhenRequired() {
        let required = ProcessInfo.processInfo.environment["CAISSON_REQUIRE_DOCKER"] == "1"
        #expect(!required || RealDocker.available,
                "CAISSON_REQUIRE_DOCKER=1 but no Docker daemon answers at \(RealDocker.dockerHost ?? "the default socket")")
        #expect(!required || RealDocker.busybox != nil, "CAISSON_REQUIRE_DOCKER=1 but /bin/busybox (static) is missing")
    }
}
