import CaissonCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The packages the console may offer: `.edgepkg` files under the media roots (removable media
/// mount points) and the ones uploaded through the browser. A package is named to the browser by
/// an opaque id, never by a path: the server maps ids back by scanning again, so a request can
/// only ever reach a file that a scan found (no traversal, no symlink leading out of a root).
struct MediaLibrary: Sendable {
    static let defaultRoots = ["/media", "/run/media", "/mnt"]
    static let maxDepth = 4
    static let maxFiles = 500

    var roots: [String]
    var uploadDir: String

    struct Package: Sendable, Equatable {
        var id: String
        var name: String
        var path: String
        var size: Int64
        /// `usb` (a media root) or `upload`.
        var source: String
        var location: String
    }

    /// Every package found, media first (by path), then uploads.
    func scan() -> [Package] {
        var found: [Package] = []
        for root in roots {
            guard let realRoot = Self.realPath(root) else { continue }
            walk(realRoot, realRoot: realRoot, depth: 0, source: "usb", into: &found)
        }
        if let realUploads = Self.realPath(uploadDir) {
            walk(realUploads, realRoot: realUploads, depth: Self.maxDepth, source: "upload", into: &found)
        }
        return found
    }

    func package(id: String) -> Package? {
        guard id.count == 32, id.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else { return nil }
        return scan().first { $0.id == id }
    }

    private func walk(_ dir: String, realRoot: String, depth: Int, source: String, into found: inout [Package]) {
        guard found.count < Self.maxFiles, let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for name in names.sorted() where !name.hasPrefix(".") {
            let path = dir + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                if depth < Self.maxDepth { walk(path, realRoot: realRoot, depth: depth + 1, source: source, into: &found) }
            case S_IFREG, S_IFLNK:
                guard name.hasSuffix(".edgepkg") else { continue }
                // A symlink is followed only when it stays inside the same root.
                guard let real = Self.realPath(path), real.hasPrefix(realRoot + "/") else { continue }
                var target = stat()
                guard stat(real, &target) == 0, (target.st_mode & S_IFMT) == S_IFREG else { continue }
                let location = String(Paths.directory(of: path).dropFirst(realRoot.count)).trimmingCharacters(in: CharacterSet(charactersIn: "/"))
                found.append(Package(id: Self.id(real), name: name, path: real, size: Int64(target.st_size), source: source,
                                     location: source == "upload" ? "uploaded" : (location.isEmpty ? realRoot : location)))
                if found.count >= Self.maxFiles { return }
            default:
                continue
            }
        }
    }

    static func id(_ path: String) -> String {
        var h = SHA256()
        h.update(Array(path.utf8))
        return String(h.hex.prefix(32))
    }

    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }

    /// A file name for an upload: the browser's name reduced to safe characters, `.edgepkg` kept.
    static func uploadName(_ raw: String?) -> String {
        let base = (raw ?? "package.edgepkg").split(separator: "/").last.map(String.init) ?? "package.edgepkg"
        var safe = String(base.unicodeScalars.map { c -> Character in
            (c.isASCII && (CharacterSet.alphanumerics.contains(c) || c == "." || c == "-" || c == "_")) ? Character(c) : "_"
        }.prefix(100))
        while safe.hasPrefix(".") { safe.removeFirst() }
        return safe.isEmpty ? "package.edgepkg" : safe
    }
}
