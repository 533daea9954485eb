import CaissonCore
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

// The hostile-package corpus (issue 6 item 6). Every case is a package file a stranger could put
// on a USB stick. For each, the real `caisson` binary runs `package validate` and
// `package load --yes` as a child process, and the test checks:
//  (a) the exact issue codes reported (in order), in the output and in the stored validation record;
//  (b) nothing changed: the simulated host's persisted state (sim-host.json) is byte-identical,
//      the store has no new image import, candidate release, update attempt, journal entry,
//      staged package or service-state change (only the rejected validations and their
//      validation_started / validation_rejected audit events, which name the codes); with a real
//      Docker daemon, the same packages leave `docker images` / `docker ps -a` alone;
//  (c) bounded time and memory: each child is killed at a 60 s deadline (a hang detector, not a
//      speed test) and its peak RSS (wait4's ru_maxrss) must stay under 256 MiB, so a 1 GiB
//      claim or 100,000 entries cannot make it allocate in proportion.

/// One hostile package: how to build it and the exact codes it must get.
struct HostileCase: Sendable, CustomTestStringConvertible {
    let name: String
    let codes: [String]
    /// Large file or many entries: its time and peak RSS are printed.
    var heavy = false
    let build: @Sendable (HostileParts) throws -> [UInt8]

    var testDescription: String { name }
}

/// The honest parts of a package for one service (so that the hostile element is the only problem).
struct HostileParts: Sendable {
    var service = "frontend"
    var version = "2.0.0"
    /// Makes the image (and so its id) unique to this case.
    var label = UUID().uuidString

    var reference: String { "example/\(service):\(version)" }

    /// A genuine `docker save` archive; `inner` adds entries before its end marker.
    func image(_ inner: ((inout RawTar) -> Void)? = nil) throws -> (bytes: [UInt8], id: String) {
        var img = SyntheticImage(reference: reference)
        img.labels = ["io.caisson.sim.health": "healthy", "org.example.test-case": label]
        img.healthcheck = ["CMD", "/bin/true"]
        img.files = [("VERSION", Array(version.utf8))]
        let (bytes, id) = try img.archive()
        guard let inner else { return (bytes, id) }
        var tar = RawTar()
        tar.raw(Array(bytes.dropLast(1024)))
        inner(&tar)
        return (tar.finished(), id)
    }

    func manifestText(for image: [UInt8]) -> String {
        EdgePackageWriter.manifest(service: service, revision: "\(service)-v1", platform: "linux/amd64", version: version,
                                   createdAt: "2026-05-01T00:00:00Z", reference: reference,
                                   sha256: SHA256.hash(image).hex, size: image.count)
    }

    /// `manifest.toml` then `image.tar` (honest unless given), then `extra`; with the end marker.
    func package(manifest: [UInt8]? = nil, image: [UInt8]? = nil, _ extra: (inout RawTar) -> Void = { _ in }) throws -> [UInt8] {
        let img = try image ?? self.image().bytes
        var tar = RawTar()
        tar.file("manifest.toml", manifest ?? Array(manifestText(for: img).utf8))
        tar.file("image.tar", img)
        extra(&tar)
        return tar.finished()
    }

    /// `manifest.toml` only, then whatever `rest` writes (no end marker added).
    func manifestThen(_ rest: (inout RawTar) throws -> Void) throws -> [UInt8] {
        let img = try image().bytes
        var tar = RawTar()
        tar.file("manifest.toml", Array(manifestText(for: img).utf8))
        try rest(&tar)
        return tar.bytes
    }

    /// The honest manifest with `text` inserted before its first line.
    func manifest(prefix: [UInt8], suffix: String = "") throws -> [UInt8] {
        prefix + Array((manifestText(for: try image().bytes) + suffix).utf8)
    }
}

enum HostileCorpus {
    static let oneGiB: Int64 = 1 << 30
    static let content = Array("hostile\n".utf8)

    static let cases: [HostileCase] = [
        // Traversal and absolute names, in the header and via pax `path=`: more than one path
        // component as the Rust tool splits them (FORMATS §4), so `archive.nested_entry`.
        HostileCase(name: "traversal name ../x", codes: ["archive.nested_entry"]) { p in
            try p.package { $0.file("../x", content) }
        },
        HostileCase(name: "traversal name a/../../x", codes: ["archive.nested_entry"]) { p in
            try p.package { $0.file("a/../../x", content) }
        },
        HostileCase(name: "absolute name /etc/passwd", codes: ["archive.nested_entry"]) { p in
            try p.package { $0.file("/etc/passwd", content) }
        },
        HostileCase(name: "pax path=../x", codes: ["archive.nested_entry"]) { p in
            try p.package { $0.pax([("path", Array("../x".utf8))]); $0.file("innocent", content) }
        },
        HostileCase(name: "pax path=a/../../x", codes: ["archive.nested_entry"]) { p in
            try p.package { $0.pax([("path", Array("a/../../x".utf8))]); $0.file("innocent", content) }
        },
        HostileCase(name: "pax path=/etc/passwd", codes: ["archive.nested_entry"]) { p in
            try p.package { $0.pax([("path", Array("/etc/passwd".utf8))]); $0.file("innocent", content) }
        },
        HostileCase(name: "pax path=/image.tar carries the image", codes: ["archive.nested_entry"]) { p in
            let img = try p.image().bytes
            return try p.manifestThen { t in
                t.pax([("path", Array("/image.tar".utf8))])
                t.file("image.tar", img)
                t.end()
            }
        },
        // Links.
        HostileCase(name: "symlink image.tar -> /etc/passwd", codes: ["archive.unsafe_entry_type"]) { p in
            try p.manifestThen { t in t.special("image.tar", type: "2", linkName: "/etc/passwd"); t.end() }
        },
        HostileCase(name: "symlink extra -> ../../etc", codes: ["archive.unsafe_entry_type"]) { p in
            try p.package { $0.special("etc", type: "2", linkName: "../../etc") }
        },
        HostileCase(name: "hard link image.tar -> manifest.toml", codes: ["archive.unsafe_entry_type"]) { p in
            try p.manifestThen { t in t.special("image.tar", type: "1", linkName: "manifest.toml"); t.end() }
        },
        HostileCase(name: "hard link extra -> /etc/shadow", codes: ["archive.unsafe_entry_type"]) { p in
            try p.package { $0.special("shadow", type: "1", linkName: "/etc/shadow") }
        },
        // Devices and FIFOs.
        HostileCase(name: "character device", codes: ["archive.unsafe_entry_type"]) { p in
            try p.package { $0.special("console", type: "3", devMajor: 5, devMinor: 1) }
        },
        HostileCase(name: "block device", codes: ["archive.unsafe_entry_type"]) { p in
            try p.package { $0.special("sda", type: "4", devMajor: 8, devMinor: 0) }
        },
        HostileCase(name: "FIFO", codes: ["archive.unsafe_entry_type"]) { p in
            try p.package { $0.special("fifo", type: "6") }
        },
        HostileCase(name: "FIFO named manifest.toml", codes: ["archive.unsafe_entry_type"]) { p in
            let img = try p.image().bytes
            var t = RawTar()
            t.special("manifest.toml", type: "6")
            t.file("image.tar", img)
            return t.finished()
        },
        // Sizes that lie.
        HostileCase(name: "manifest.toml claims more bytes than the file has", codes: ["manifest.read_failed"]) { p in
            let img = try p.image().bytes
            let m = Array(p.manifestText(for: img).utf8)
            var t = RawTar()
            t.raw(RawTar.header(name: Array("manifest.toml".utf8), size: 60_000))
            t.raw(m)
            return t.bytes  // the file ends long before the 60,000 bytes claimed
        },
        HostileCase(name: "image.tar claims 1 MiB more than the file has", codes: ["archive.entry_read_failed"]) { p in
            let img = try p.image().bytes
            return try p.manifestThen { t in
                t.raw(RawTar.header(name: Array("image.tar".utf8), size: Int64(img.count + (1 << 20))))
                t.raw(img)
                t.end()
            }
        },
        // The 10 bytes read as manifest.toml ("# padding ") are a comment: the six required
        // fields are each reported missing, after the unreadable archive.
        HostileCase(name: "manifest.toml claims fewer bytes: next header is garbage",
                    codes: ["archive.entry_read_failed"] + Array(repeating: "manifest.parse_failed", count: 6)) { p in
            // A manifest longer than one block, so the reader's next "header" is manifest text.
            let img = try p.image().bytes
            let m = Array(("# " + String(repeating: "padding ", count: 100) + "\n" + p.manifestText(for: img)).utf8)
            var t = RawTar()
            t.raw(RawTar.header(name: Array("manifest.toml".utf8), size: 10))
            t.raw(m + RawTar.padding(m.count))
            t.file("image.tar", img)
            return t.finished()
        },
        HostileCase(name: "image.tar claims fewer bytes: next header is garbage",
                    codes: ["image.read_failed", "archive.entry_read_failed", "image.size_mismatch"]) { p in
            // Cut image.tar just after its last inner header: the outer reader lands on JSON text.
            let img = try p.image().bytes
            return try p.manifestThen { t in
                t.raw(RawTar.header(name: Array("image.tar".utf8), size: Int64(img.count - 1536)))
                t.raw(img)
                t.end()
            }
        },
        // Many entries.
        HostileCase(name: "100,000 tiny entries at the root", codes: ["archive.too_many_entries"], heavy: true) { p in
            try p.package { t in
                for i in 0..<100_000 { t.raw(tinyHeader(i)) }
            }
        },
        HostileCase(name: "100,000 tiny entries inside image.tar", codes: ["image.invalid_archive"], heavy: true) { p in
            let img = try p.image { t in
                for i in 0..<100_000 { t.raw(tinyHeader(i)) }
            }.bytes
            return try p.package(image: img)
        },
        // A 1 GiB claim in a tiny file.
        HostileCase(name: "GNU sparse 'S' image.tar claiming 1 GiB", codes: ["archive.unsafe_entry_type"], heavy: true) { p in
            try p.manifestThen { t in
                t.raw(RawTar.header(name: Array("image.tar".utf8), size: 512, type: UInt8(ascii: "S"), magic: .gnu,
                                    gnuSparse: (oneGiB, [(oneGiB - 512, 512)])))
                t.raw([UInt8](repeating: 0x41, count: 512))
                t.end()
            }
        },
        HostileCase(name: "pax GNU.sparse image.tar claiming 1 GiB", codes: ["archive.unsafe_entry_type"], heavy: true) { p in
            try p.manifestThen { t in
                t.pax([("GNU.sparse.major", Array("1".utf8)), ("GNU.sparse.minor", Array("0".utf8)),
                       ("GNU.sparse.name", Array("image.tar".utf8)), ("GNU.sparse.realsize", Array(String(oneGiB).utf8))])
                t.file("image.tar", Array("1\n1073741312\n512\n".utf8) + RawTar.padding(18) + [UInt8](repeating: 0x41, count: 512))
                t.end()
            }
        },
        HostileCase(name: "image.tar header claims 1 GiB in a tiny file", codes: ["archive.entry_read_failed"], heavy: true) { p in
            let img = try p.image().bytes
            return try p.manifestThen { t in
                t.raw(RawTar.header(name: Array("image.tar".utf8), size: oneGiB))
                t.raw(img)
                t.end()
            }
        },
        HostileCase(name: "pax size=1 GiB on image.tar in a tiny file", codes: ["archive.entry_read_failed"], heavy: true) { p in
            let img = try p.image().bytes
            return try p.manifestThen { t in
                t.pax([("size", Array(String(oneGiB).utf8))])
                t.file("image.tar", img)
                t.end()
            }
        },
        HostileCase(name: "a layer inside image.tar claims 1 GiB", codes: ["image.read_failed"], heavy: true) { p in
            let img = try p.image { t in
                t.raw(RawTar.header(name: Array("blobs/huge".utf8), size: oneGiB))
                t.raw([UInt8](repeating: 0x41, count: 512))
            }.bytes
            return try p.package(image: img)
        },
        // The same inside image.tar: `docker load` would get them (Docker 20.10 loads such an
        // archive and makes the device node in its temporary folder).
        HostileCase(name: "image.tar entry ../../etc/cron.d/x", codes: ["image.unsafe_entry_path"]) { p in
            try p.package(image: try p.image { $0.file("../../etc/cron.d/x", content) }.bytes)
        },
        HostileCase(name: "image.tar entry /etc/passwd", codes: ["image.unsafe_entry_path"]) { p in
            try p.package(image: try p.image { $0.file("/etc/passwd", content) }.bytes)
        },
        HostileCase(name: "image.tar pax path=a/../../x", codes: ["image.unsafe_entry_path"]) { p in
            try p.package(image: try p.image { $0.pax([("path", Array("a/../../x".utf8))]); $0.file("innocent", content) }.bytes)
        },
        HostileCase(name: "image.tar hard link -> ../../etc/shadow", codes: ["image.unsafe_entry_path"]) { p in
            try p.package(image: try p.image { $0.special("shadow", type: "1", linkName: "../../etc/shadow") }.bytes)
        },
        HostileCase(name: "image.tar NUL byte in a pax path", codes: ["image.unsafe_entry_path"]) { p in
            try p.package(image: try p.image { $0.pax([("path", Array("x".utf8) + [0] + Array("/../../y".utf8))]); $0.file("innocent", content) }.bytes)
        },
        HostileCase(name: "image.tar character device", codes: ["image.unsafe_entry_type"]) { p in
            try p.package(image: try p.image { $0.special("console", type: "3", devMajor: 5, devMinor: 1) }.bytes)
        },
        HostileCase(name: "image.tar block devices and FIFOs, 1,000 of each", codes: ["image.unsafe_entry_type"]) { p in
            try p.package(image: try p.image { t in
                for i in 0..<1_000 { t.special("sda\(i)", type: "4", devMajor: 8); t.special("fifo\(i)", type: "6") }
            }.bytes)
        },
        HostileCase(name: "image.tar GNU sparse entry claiming 1 GiB", codes: ["image.unsafe_entry_type"], heavy: true) { p in
            try p.package(image: try p.image { t in
                t.raw(RawTar.header(name: Array("blobs/sparse".utf8), size: 512, type: UInt8(ascii: "S"), magic: .gnu,
                                    gnuSparse: (oneGiB, [(oneGiB - 512, 512)])))
                t.raw([UInt8](repeating: 0x41, count: 512))
            }.bytes)
        },
        // manifest.toml content.
        HostileCase(name: "10,000 nested arrays in manifest.toml", codes: ["manifest.parse_failed"]) { p in
            let deep = "x = " + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "\n"
            return try p.package(manifest: try p.manifest(prefix: Array(deep.utf8)))
        },
        HostileCase(name: "10,000 nested inline tables in manifest.toml", codes: ["manifest.parse_failed"]) { p in
            let deep = "x = " + String(repeating: "{a=", count: 10_000) + "1" + String(repeating: "}", count: 10_000) + "\n"
            return try p.package(manifest: try p.manifest(prefix: Array(deep.utf8)))
        },
        HostileCase(name: "10,000-deep table header in manifest.toml", codes: ["manifest.parse_failed"]) { p in
            let deep = "\n[" + Array(repeating: "a", count: 10_000).joined(separator: ".") + "]\nx = 1\n"
            return try p.package(manifest: try p.manifest(prefix: [], suffix: deep))
        },
        HostileCase(name: "10,000-deep dotted key in manifest.toml", codes: ["manifest.parse_failed"]) { p in
            let deep = Array(repeating: "a", count: 10_000).joined(separator: ".") + " = 1\n"
            return try p.package(manifest: try p.manifest(prefix: Array(deep.utf8)))
        },
        HostileCase(name: "invalid UTF-8 in manifest.toml", codes: ["manifest.invalid_utf8"]) { p in
            try p.package(manifest: try p.manifest(prefix: Array("# caf".utf8) + [0xC3, 0x28, 0xFF, 0xFE] + Array("\n".utf8)))
        },
        HostileCase(name: "two BOMs at the start of manifest.toml", codes: ["manifest.parse_failed"]) { p in
            try p.package(manifest: try p.manifest(prefix: [0xEF, 0xBB, 0xBF, 0xEF, 0xBB, 0xBF]))
        },
        // NUL bytes and invalid UTF-8 in names.
        HostileCase(name: "NUL byte in a pax path", codes: ["archive.invalid_entry_path"]) { p in
            try p.package { $0.pax([("path", Array("evil".utf8) + [0] + Array(".sh".utf8))]); $0.file("innocent", content) }
        },
        HostileCase(name: "NUL byte in a GNU long name", codes: ["archive.invalid_entry_path"]) { p in
            try p.package { $0.gnuLongName(Array("image.tar".utf8) + [0] + Array("/../../x".utf8)); $0.file("innocent", content) }
        },
        HostileCase(name: "invalid UTF-8 in an entry name", codes: ["archive.invalid_entry_path"]) { p in
            try p.package { $0.entry([0x65, 0xFF, 0xFE, 0x78], content) }
        },
        // Not a package at all (the Rust tool's codes: the first header cannot be read; an empty
        // file has no entries, so no manifest).
        HostileCase(name: "empty file", codes: ["archive.missing_manifest", "archive.missing_image"]) { _ in [] },
        HostileCase(name: "a text file renamed .edgepkg", codes: ["archive.entry_read_failed"]) { _ in
            Array(String(repeating: "this is not a tar archive\n", count: 100).utf8)
        },
        HostileCase(name: "gzip-compressed tar", codes: ["archive.entry_read_failed"]) { p in
            try gzip(try p.package())
        },
        HostileCase(name: "a header with a bad checksum", codes: ["archive.entry_read_failed"]) { p in
            var bytes = try p.package()
            bytes[0] ^= 0x20  // the first byte of manifest.toml's name; its checksum no longer adds up
            return bytes
        },
        HostileCase(name: "a lone '.' entry", codes: ["archive.invalid_entry_path"]) { p in
            try p.package { $0.file(".", content) }
        },
        HostileCase(name: "image.tar that is not a tar", codes: ["image.invalid_archive"]) { p in
            try p.package(image: Array(String(repeating: "not a docker save archive\n", count: 200).utf8))
        },
        HostileCase(name: "format_version that is not a number", codes: ["manifest.parse_failed"]) { p in
            let img = try p.image().bytes
            let text = p.manifestText(for: img).replacingOccurrences(of: "format_version = 1", with: "format_version = \"one\"")
            return try p.package(manifest: Array(text.utf8), image: img)
        },
        HostileCase(name: "negative format_version", codes: ["manifest.parse_failed"]) { p in
            let img = try p.image().bytes
            let text = p.manifestText(for: img).replacingOccurrences(of: "format_version = 1", with: "format_version = -1")
            return try p.package(manifest: Array(text.utf8), image: img)
        },
        // A gzip-compressed image.tar (accepted when honest) that is hostile: refused before
        // Docker gets anything usable, in flat memory.
        HostileCase(name: "gzip bomb image.tar (256 MiB of zeros in 256 KiB)", codes: ["image.gzip_ratio_exceeded"], heavy: true) { p in
            try p.package(image: try gzipBomb(p))
        },
        HostileCase(name: "gzip image.tar cut short", codes: ["image.gzip_truncated"]) { p in
            let gz = try Gzip.compress(try p.image().bytes)
            return try p.package(image: Array(gz.prefix(gz.count * 2 / 3)))
        },
        HostileCase(name: "gzip image.tar with trailing garbage", codes: ["image.gzip_trailing_data"]) { p in
            try p.package(image: try Gzip.compress(try p.image().bytes) + Array("garbage".utf8))
        },
        HostileCase(name: "gzip image.tar of two members", codes: ["image.gzip_multiple_members"]) { p in
            let tar = try p.image().bytes
            let half = tar.count / 2
            return try p.package(image: try Gzip.compress(Array(tar[..<half])) + Gzip.compress(Array(tar[half...])))
        },
        HostileCase(name: "gzip image.tar whose CRC does not match", codes: ["image.gzip_corrupt"]) { p in
            var gz = try Gzip.compress(try p.image().bytes)
            gz[gz.count - 8] ^= 0x01  // the CRC-32 of the trailer: found only at the very end
            return try p.package(image: gz)
        },
        HostileCase(name: "gzip image.tar hiding ../../etc/cron.d/x", codes: ["image.unsafe_entry_path"]) { p in
            try p.package(image: try Gzip.compress(try p.image { $0.file("../../etc/cron.d/x", content) }.bytes))
        },
        HostileCase(name: "xz-compressed image.tar", codes: ["image.unsupported_compression"]) { p in
            try p.package(image: [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00] + (try p.image().bytes))
        },
        // Other entries a package must not hold.
        HostileCase(name: "pax global header", codes: ["archive.unsafe_entry_type"]) { p in
            try p.package { $0.entry(Array("pax_global_header".utf8), RawTar.paxRecord("comment", Array("hi".utf8)), type: UInt8(ascii: "g")) }
        },
        HostileCase(name: "directory image.tar/", codes: ["archive.unsafe_entry_type"]) { p in
            try p.manifestThen { t in t.special("image.tar/", type: "5"); t.end() }
        },
        HostileCase(name: "size field that is not a number", codes: ["archive.invalid_entry_size"]) { p in
            try p.package { t in
                var h = RawTar.header(name: Array("extra".utf8), size: 0)
                for i in 124..<136 { h[i] = UInt8(ascii: "9") }
                for i in 148..<156 { h[i] = 0x20 }
                let sum = h.reduce(0) { $0 + Int($1) }
                let s = Array(String(sum, radix: 8).utf8)
                for i in 0..<6 { h[148 + i] = i < 6 - s.count ? UInt8(ascii: "0") : s[i - (6 - s.count)] }
                h[154] = 0
                t.raw(h)
            }
        },
    ]

    /// An empty regular file `f000000`… (one header block each; precomputed checksum arithmetic
    /// would be faster, but this stays obviously correct).
    static func tinyHeader(_ i: Int) -> [UInt8] {
        let digits = String(i)
        return RawTar.header(name: Array(("f" + String(repeating: "0", count: 6 - digits.count) + digits).utf8), size: 0)
    }

    /// A genuine docker save archive whose last layer is 256 MiB of zeros, gzip-compressed in
    /// flat memory (never held whole).
    static func gzipBomb(_ p: HostileParts) throws -> [UInt8] {
        struct Bomb: ByteSource {
            var head: [UInt8]
            var zeros: Int64
            var pos = 0
            mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
                if pos < head.count {
                    let n = min(buffer.count, head.count - pos)
                    head.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + pos, byteCount: n) }
                    pos += n
                    return n
                }
                let n = Int(min(Int64(buffer.count), zeros))
                buffer.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: n)
                zeros -= Int64(n)
                return n
            }
        }
        let size: Int64 = 256 << 20
        let image = try p.image().bytes
        var source = Bomb(head: Array(image.dropLast(1024)) + RawTar.header(name: Array("blobs/zeros".utf8), size: size),
                          zeros: size + 1024)
        var out: [UInt8] = []
        try Gzip.compress(&source, level: 9) { out.append(contentsOf: $0) }
        return out
    }

    static func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("caisson-hostile-gz-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/p.tar"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let gz = try #require(["/usr/bin/gzip", "/bin/gzip"].first { FileManager.default.isExecutableFile(atPath: $0) }, "gzip is needed")
        let r = try Child.run(gz, ["-n", "-f", path])
        try #require(r.status == 0, "gzip: \(r)")
        let out = try #require(FileManager.default.contents(atPath: path + ".gz"))
        return [UInt8](out)
    }
}

/// One run of the corpus against a state directory: the checks shared by both hosts.
struct HostileRun {
    static let deadline: Double = 60
    static let maxRSSMiB: Double = 256

    let caisson: Caisson
    let host: String
    var environment: [String: String]? = nil

    var stateDir: String { caisson.dir + "/.caisson-state" }

    func cli(_ args: [String]) throws -> ChildRun {
        try Child.run(Caisson.binary, ["--host", host, "--services", caisson.dir + "/services.toml", "--state-dir", stateDir] + args,
                      environment: environment, deadline: Self.deadline, measureMemory: true)
    }

    /// `- [code] message` lines of the text output.
    static func codes(inText text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("- ["), let close = line.firstIndex(of: "]") else { return nil }
            return String(line[line.index(line.startIndex, offsetBy: 3)..<close])
        }
    }

    /// Runs validate and load on `package`, checks codes, exit status, time and memory, and the
    /// store (nothing but the two rejected validations and their audit events).
    func rejectAndCheck(_ c: HostileCase, package: String) throws {
        let before = try StoreSnapshot.take(stateDir: stateDir)

        let validate = try cli(["package", "validate", package, "--json"])
        let load = try cli(["package", "load", package, "--yes"])
        for (what, run) in [("validate", validate), ("load", load)] {
            #expect(!run.timedOut && !run.signaled, "\(c.name) [\(host)] \(what): \(run)")
            #expect(run.status == 2, "\(c.name) [\(host)] \(what): \(run)")
            #expect(run.maxRSSKiB > 0 && run.maxRSSMiB < Self.maxRSSMiB, "\(c.name) [\(host)] \(what): \(run)")
            if c.heavy {
                print("HOSTILE \(c.name) [\(host)] \(what): \(String(format: "%.2f", run.seconds)) s, peak RSS \(String(format: "%.1f", run.maxRSSMiB)) MiB")
            }
        }
        let json = (try? JSONSerialization.jsonObject(with: Data(validate.stdout.utf8))) as? [String: Any]
        let issues = (json?["validation"] as? [String: Any])?["issues"] as? [[String: Any]]
        #expect(issues?.compactMap { $0["code"] as? String } == c.codes, "\(c.name) [\(host)] validate: \(validate)")
        #expect(Self.codes(inText: load.stdout) == c.codes, "\(c.name) [\(host)] load: \(load)")
        #expect(load.stdout.contains("Status: rejected"), "\(c.name) [\(host)] load: \(load)")

        // The store: unchanged, except two rejected validations and their audit events.
        let after = try StoreSnapshot.take(stateDir: stateDir)
        #expect(after.unchanged == before.unchanged, "\(c.name) [\(host)]: releases, imports, attempts or service states changed")
        let validations = try StoreSnapshot.validations(stateDir: stateDir, after: before.validationRows)
        #expect(validations.count == 2, "\(c.name) [\(host)]: \(validations)")
        for v in validations {
            #expect(v.status == "rejected" && v.codes == c.codes, "\(c.name) [\(host)]: \(v)")
        }
        let events = try StoreSnapshot.audit(stateDir: stateDir, after: before.lastAuditSeq)
        #expect(events.map(\.kind) == ["validation_started", "validation_rejected", "validation_started", "validation_rejected"],
                "\(c.name) [\(host)]: \(events)")
        for e in events where e.kind == "validation_rejected" {
            for code in c.codes { #expect(e.message.contains("[\(code)]"), "\(c.name) [\(host)]: \(e.message)") }
        }
        // No staged copy is left behind.
        let staged = (try? FileManager.default.contentsOfDirectory(atPath: stateDir + "/staging")) ?? []
        #expect(staged.isEmpty, "\(c.name) [\(host)]: staging holds \(staged)")
    }
}

@Suite("Hostile package corpus") struct HostileCorpusTests {
    /// Writes the case's package into the test's temporary folder (never into the repository).
    static func write(_ c: HostileCase, parts: HostileParts, into dir: String) throws -> String {
        let path = dir + "/hostile.edgepkg"
        try Data(try c.build(parts)).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("every case has a distinct name and at least one code")
    func corpusIsWellFormed() {
        let names = HostileCorpus.cases.map(\.name)
        #expect(Set(names).count == names.count)
        #expect(HostileCorpus.cases.allSatisfy { !$0.codes.isEmpty })
        #expect(HostileCorpus.cases.count >= 30)
    }

    @Test("simulator: rejected with the exact codes, host and store unchanged, bounded", arguments: HostileCorpus.cases)
    func simulator(_ c: HostileCase) throws {
        let caisson = try Caisson()
        defer { try? FileManager.default.removeItem(atPath: caisson.dir) }
        // A service with a real release first, so "unchanged" has something to keep.
        let good = try caisson.package("good.edgepkg", version: "1.0.0")
        let primed = try caisson.run(["package", "load", good, "--yes"])
        try #require(primed.status == 0, "priming load: \(primed.stdout) \(primed.stderr)")
        let run = HostileRun(caisson: caisson, host: "sim")
        let simHost = run.stateDir + "/sim-host.json"
        let hostBefore = try #require(FileManager.default.contents(atPath: simHost))

        let package = try Self.write(c, parts: HostileParts(), into: caisson.dir)
        try run.rejectAndCheck(c, package: package)

        #expect(FileManager.default.contents(atPath: simHost) == hostBefore, "\(c.name): the simulated host changed")
        let show = try caisson.run(["service", "show", "frontend", "--json"])
        #expect((show.json?["state"] as? [String: Any])?["active_image_reference"] as? String == "example/frontend:1.0.0")
        #expect(try caisson.run(["history", "verify"]).status == 0)
    }

    @Test("real Docker: rejected with the exact codes, images and containers unchanged", arguments: HostileCorpus.cases)
    func realDocker(_ c: HostileCase) throws {
        guard HostileDocker.usable("hostile corpus on a real daemon (\(c.name))") else { return }
        let caisson = try Caisson()
        defer { try? FileManager.default.removeItem(atPath: caisson.dir) }
        let run = HostileRun(caisson: caisson, host: "docker", environment: HostileDocker.environment)
        let parts = HostileParts()
        let imageID = try parts.image().id
        let package = try Self.write(c, parts: parts, into: caisson.dir)
        // Create the store (reading the history touches no daemon).
        let history = try run.cli(["history", "list"])
        try #require(history.status == 0, "\(history)")

        let before = try HostileDocker.listings()
        try run.rejectAndCheck(c, package: package)
        let after = try HostileDocker.listings()

        // The case's own image (unique to it) never reached the daemon, and nothing was removed
        // or added by us. Other suites may use the same daemon at the same time, so a difference
        // in the listings is attributed before it fails the test.
        #expect(try !HostileDocker.hasImage(imageID), "\(c.name): image \(imageID) was loaded")
        if after.images != before.images || after.containers != before.containers {
            let newImages = Set(after.images).subtracting(before.images)
            let ours = try newImages.filter { id in
                let r = try HostileDocker.docker(["image", "inspect", "--format", "{{json .Config.Labels}}", id])
                return r.stdout.contains(parts.label)
            }
            #expect(ours.isEmpty, "\(c.name): images of this package appeared: \(ours)")
            print("NOTICE: hostile corpus (\(c.name)): Docker listings changed during the run, by another suite (not this package's image)")
        } else {
            #expect(after.images == before.images && after.containers == before.containers)
        }
    }

    /// TOML 1.0 has no word on a byte order mark; the Rust tool's `toml` crate skips one, and so
    /// does CaissonTOML: a manifest written by a Windows editor is accepted (compatibility).
    @Test("a UTF-8 BOM at the start of manifest.toml is accepted, without a crash and bounded")
    func bomIsAccepted() throws {
        let caisson = try Caisson()
        defer { try? FileManager.default.removeItem(atPath: caisson.dir) }
        let run = HostileRun(caisson: caisson, host: "sim")
        let parts = HostileParts()
        let bytes = try parts.package(manifest: try parts.manifest(prefix: [0xEF, 0xBB, 0xBF]))
        let package = caisson.dir + "/bom.edgepkg"
        try Data(bytes).write(to: URL(fileURLWithPath: package))
        let validate = try run.cli(["package", "validate", package])
        #expect(validate.status == 0 && validate.stdout.contains("Status: accepted"), "\(validate)")
        let load = try run.cli(["package", "load", package, "--yes"])
        #expect(load.status == 0, "\(load)")
        for r in [validate, load] { #expect(!r.timedOut && r.maxRSSMiB < HostileRun.maxRSSMiB, "\(r)") }
        let show = try caisson.run(["service", "show", "frontend", "--json"])
        #expect((show.json?["state"] as? [String: Any])?["active_image_reference"] as? String == parts.reference)
    }

    /// Not hostile, the control for the bounds above: a genuine image whose layer is 1 GiB (a
    /// sparse file on disk) is read to its end, hashed and accepted by `package validate`, and
    /// memory stays flat. (Only validate: `load` would stage a 1 GiB copy.)
    @Test("a genuine 1 GiB layer streams through validation in bounded memory")
    func oneGiBLayerStreams() throws {
        let caisson = try Caisson()
        defer { try? FileManager.default.removeItem(atPath: caisson.dir) }
        let run = HostileRun(caisson: caisson, host: "sim")
        let parts = HostileParts()
        let layerSize = HostileCorpus.oneGiB
        var sha = SHA256()
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        for _ in 0..<(layerSize >> 20) { sha.update(zeros) }
        let diffID = "sha256:" + sha.finalizeDigest().hex
        let config: [String: Any] = ["architecture": "amd64", "os": "linux",
                                     "config": ["Labels": ["org.example.test-case": parts.label],
                                                "Healthcheck": ["Test": ["CMD", "/bin/true"]]],
                                     "rootfs": ["type": "layers", "diff_ids": [diffID]]]
        let configBytes = Array(try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]))
        let configName = SHA256.hash(configBytes).hex + ".json"
        let manifestJSON = Array(try JSONSerialization.data(withJSONObject: [["Config": configName, "RepoTags": [parts.reference],
                                                                              "Layers": ["big/layer.tar"]]], options: [.sortedKeys]))
        var tail = RawTar()
        tail.file(configName, configBytes)
        tail.file("manifest.json", manifestJSON)
        tail.end()
        let imageSize = 512 + layerSize + Int64(tail.bytes.count)

        var head = RawTar()
        let manifest = EdgePackageWriter.manifest(service: parts.service, revision: "\(parts.service)-v1", platform: "linux/amd64",
                                                  version: parts.version, createdAt: "2026-05-01T00:00:00Z", reference: parts.reference)
        head.file("manifest.toml", Array(manifest.utf8))
        head.raw(RawTar.header(name: Array("image.tar".utf8), size: imageSize))
        head.raw(RawTar.header(name: Array("big/layer.tar".utf8), size: layerSize))
        let package = caisson.dir + "/big.edgepkg"
        try #require(FileManager.default.createFile(atPath: package, contents: Data(head.bytes)))
        let file = try FileHandle(forWritingTo: URL(fileURLWithPath: package))
        try file.seek(toOffset: UInt64(head.bytes.count) + UInt64(layerSize))  // a hole: 1 GiB of zeros
        try file.write(contentsOf: Data(tail.bytes + RawTar.padding(Int(imageSize % 512)) + [UInt8](repeating: 0, count: 1024)))
        try file.close()

        let validate = try run.cli(["package", "validate", package, "--json"])
        print("HOSTILE genuine 1 GiB layer [sim] validate: \(String(format: "%.2f", validate.seconds)) s, peak RSS \(String(format: "%.1f", validate.maxRSSMiB)) MiB")
        #expect(!validate.timedOut && validate.status == 0, "\(validate)")
        #expect(validate.maxRSSKiB > 0 && validate.maxRSSMiB < HostileRun.maxRSSMiB, "\(validate)")
        let record = (try? JSONSerialization.jsonObject(with: Data(validate.stdout.utf8))) as? [String: Any]
        let v = record?["validation"] as? [String: Any]
        #expect(v?["status"] as? String == "accepted")
        #expect((v?["image_size"] as? NSNumber)?.int64Value == layerSize)
    }

    /// The measuring harness itself: a child that hangs is killed at the deadline, a child that
    /// allocates is seen to, and a small child spawned while this process is large is seen small
    /// (so the figures above are the children's own, not this test process's).
    @Test func harnessKillsHangsAndMeasuresTheChildItself() throws {
        let hang = try Child.run("/bin/sleep", ["30"], deadline: 0.5, measureMemory: true)
        #expect(hang.timedOut && hang.seconds < 29, "\(hang)")
        let big = try Child.run("/bin/sh", ["-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}"],
                                deadline: 60, measureMemory: true)
        #expect(big.status == 0 && big.maxRSSMiB > 90, "\(big)")
        // Make this process large (300 MiB, touched), then measure a tiny child.
        let ballast = [UInt8](repeating: 1, count: 300 << 20)
        let small = try Child.run("/bin/true", [], deadline: 60, measureMemory: true)
        #expect(small.status == 0 && small.maxRSSKiB > 0 && small.maxRSSMiB < 64, "\(small)")
        #expect(ballast.count == 300 << 20)
    }
}
