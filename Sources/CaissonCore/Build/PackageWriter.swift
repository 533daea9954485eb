import Foundation

/// Writes plain ustar archives of regular files (what `.edgepkg` and `docker save` need), byte
/// for byte as GNU tar does for short names. Used by `caisson demo` and package building.
public struct TarArchiveWriter {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func addFile(_ name: String, _ data: [UInt8], mode: Int = 0o644, mtime: Int = 0) {
        addEntry(name, data: data, type: UInt8(ascii: "0"), mode: mode, mtime: mtime)
    }

    public mutating func addDirectory(_ name: String, mtime: Int = 0) {
        addEntry(name.hasSuffix("/") ? name : name + "/", data: [], type: UInt8(ascii: "5"), mode: 0o755, mtime: mtime)
    }

    mutating func addEntry(_ name: String, data: [UInt8], type: UInt8, mode: Int, mtime: Int) {
        bytes += Self.header(name: name, size: Int64(data.count), type: type, mode: mode, mtime: mtime)
        bytes += data
        bytes += Self.padding(Int64(data.count))
    }

    /// One ustar header block for a short `name` (≤ 100 bytes). Sizes past the 11-digit octal
    /// field use GNU base-256, as GNU tar writes them.
    public static func header(name: String, size: Int64, type: UInt8 = UInt8(ascii: "0"), mode: Int = 0o644,
                              mtime: Int = 0) -> [UInt8] {
        precondition(name.utf8.count <= 100, "TarArchiveWriter writes short names only")
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ off: Int, _ len: Int) {
            for (i, b) in s.utf8.prefix(len).enumerated() { h[off + i] = b }
        }
        func octal(_ v: Int64, _ off: Int, _ len: Int) {
            let s = String(v, radix: 8)
            put(String(repeating: "0", count: max(0, len - 1 - s.count)) + s, off, len - 1)
        }
        put(name, 0, 100)
        octal(Int64(mode), 100, 8)
        octal(0, 108, 8)
        octal(0, 116, 8)
        if size < 0o77777777777 {
            octal(size, 124, 12)
        } else {
            h[124] = 0x80
            var v = size
            for i in stride(from: 135, through: 125, by: -1) { h[i] = UInt8(v & 0xFF); v >>= 8 }
        }
        octal(Int64(mtime), 136, 12)
        for i in 148..<156 { h[i] = 0x20 }
        h[156] = type
        put("ustar", 257, 6)
        put("00", 263, 2)
        put("root", 265, 32)
        put("root", 297, 32)
        let sum = h.reduce(0) { $0 + Int($1) }
        let s = String(sum, radix: 8)
        put(String(repeating: "0", count: max(0, 6 - s.count)) + s, 148, 6)
        h[154] = 0
        h[155] = 0x20
        return h
    }

    /// Zero bytes that pad an entry body of `size` bytes to the 512-byte block.
    public static func padding(_ size: Int64) -> [UInt8] {
        [UInt8](repeating: 0, count: Int((512 - size % 512) % 512))
    }

    /// The archive with its end-of-archive marker (two zero blocks).
    public func finished() -> [UInt8] {
        bytes + [UInt8](repeating: 0, count: 1024)
    }
}

/// A package written in one streaming pass, as `package build` and `updater build` write theirs:
/// `manifest.toml`, one large entry copied from a file between `packageHead` and `packageTail`
/// (its bytes never held in memory), the detached `manifest.toml.minisig` when signed, and the
/// end of the archive. Byte for byte what `TarArchiveWriter` writes for the same files.
extension TarArchiveWriter {
    /// `manifest.toml` (header, body, padding) and the header of the entry streamed after it.
    public static func packageHead(manifest: [UInt8], entry name: String, size: Int64, mode: Int = 0o644) -> [UInt8] {
        header(name: "manifest.toml", size: Int64(manifest.count)) + manifest + padding(Int64(manifest.count))
            + header(name: name, size: size, mode: mode)
    }

    /// What follows the streamed entry of `size` bytes: its padding, the signature entry when
    /// there is one, and the end-of-archive marker (two zero blocks).
    public static func packageTail(afterEntryOf size: Int64, signature: [UInt8]?) -> [UInt8] {
        var out = padding(size)
        if let signature {
            out += header(name: PackageSignature.entryName, size: Int64(signature.count)) + signature + padding(Int64(signature.count))
        }
        return out + [UInt8](repeating: 0, count: 1024)
    }
}

/// A small but genuine `docker save` archive (legacy layout: `manifest.json`, `repositories`,
/// `<id>/layer.tar`, `<config digest>.json`) with real SHA-256 digests, so validation, the
/// simulator and even a real `docker load` accept it.
public struct SyntheticImage {
    public var reference: String
    public var os = "linux"
    public var architecture = "amd64"
    public var labels: [String: String] = [:]
    public var env: [String] = []
    public var cmd: [String] = ["/bin/sh"]
    public var healthcheck: [String]? = nil
    /// Files in the image's top layer.
    public var files: [(String, [UInt8])] = []
    /// Layers below it, bottom first (each a list of files): a base the image shares with others.
    public var baseLayers: [[(String, [UInt8])]] = []

    public init(reference: String) {
        self.reference = reference
    }

    /// `(archive bytes, image id)`.
    public func archive() throws -> ([UInt8], String) {
        var layers: [(bytes: [UInt8], diffID: String, dir: String)] = []
        for fileSet in baseLayers + [files] {
            var layer = TarArchiveWriter()
            for (name, data) in fileSet { layer.addFile(name, data) }
            let bytes = layer.finished()
            let diffID = "sha256:" + SHA256.hash(bytes).hex
            // The legacy layout names a layer's folder after its chain (distinct per position).
            let chain = LayerChain.chainIDs(layers.map(\.diffID) + [diffID]).last!
            layers.append((bytes, diffID, layers.isEmpty ? SHA256.hash(Array(diffID.utf8)).hex : SHA256.hash(Array(chain.utf8)).hex))
        }
        var config: [String: Any] = [
            "architecture": architecture, "os": os,
            "created": "2026-01-01T00:00:00Z",
            "rootfs": ["type": "layers", "diff_ids": layers.map(\.diffID)],
        ]
        var c: [String: Any] = ["Env": env, "Cmd": cmd, "Labels": labels]
        if let hc = healthcheck { c["Healthcheck"] = ["Test": hc, "Interval": 1_000_000_000] }
        config["config"] = c
        let configBytes = Array(try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]))
        let configHex = SHA256.hash(configBytes).hex
        let (repo, tag) = Self.split(reference)
        let manifest: [[String: Any]] = [["Config": "\(configHex).json", "RepoTags": [reference], "Layers": layers.map { "\($0.dir)/layer.tar" }]]
        let repositories: [String: Any] = [repo: [tag: layers.last!.dir]]
        var w = TarArchiveWriter()
        for layer in layers {
            w.addDirectory(layer.dir)
            w.addFile("\(layer.dir)/VERSION", Array("1.0".utf8))
            w.addFile("\(layer.dir)/json", Array(#"{"id":"\#(layer.dir)"}"#.utf8))
            w.addFile("\(layer.dir)/layer.tar", layer.bytes)
        }
        w.addFile("\(configHex).json", configBytes)
        w.addFile("manifest.json", Array(try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])))
        w.addFile("repositories", Array(try JSONSerialization.data(withJSONObject: repositories, options: [.sortedKeys])))
        return (w.finished(), "sha256:" + configHex)
    }

    static func split(_ ref: String) -> (String, String) {
        if let colon = ref.lastIndex(of: ":"), !ref[colon...].contains("/") {
            return (String(ref[..<colon]), String(ref[ref.index(after: colon)...]))
        }
        return (ref, "latest")
    }
}

/// Writes a `.edgepkg` by the reference recipe (`manifest.toml`, then `image.tar`).
public enum EdgePackageWriter {
    public static func write(manifest: String, image: [UInt8], extras: [(String, [UInt8])] = [], to path: String) throws {
        var w = TarArchiveWriter()
        w.addFile("manifest.toml", Array(manifest.utf8))
        w.addFile("image.tar", image)
        for (n, d) in extras { w.addFile(n, d) }
        let data = Data(w.finished())
        guard FileManager.default.createFile(atPath: path, contents: data) else {
            throw CaissonError("package.write_failed", "could not write \(path)")
        }
    }

    public static func manifest(service: String, revision: String, platform: String, version: String,
                                createdAt: String, reference: String, sha256: String? = nil, size: Int? = nil) -> String {
        var s = """
        format_version = 1
        package_type = "service"
        package_version = "\(version)"
        created_at = "\(createdAt)"

        [target]
        service = "\(service)"
        service_revision = "\(revision)"
        platform = "\(platform)"

        [image]
        reference = "\(reference)"

        """
        if let sha256 { s += "sha256 = \"\(sha256)\"\n" }
        if let size { s += "size = \(size)\n" }
        return s
    }
}
