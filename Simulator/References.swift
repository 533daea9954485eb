/// Image references and object ids the way the Docker daemon reads them.
enum SimReference {
    /// Docker's familiar normalised form of a reference: `repo:tag` (`:latest` added when no tag
    /// or digest is given), `docker.io/` and `docker.io/library/` stripped; digest references stay
    /// `repo@sha256:<hex>` (with the tag dropped, as Docker does when both are given).
    /// `nil` when Docker would answer "invalid reference format".
    static func normalize(_ raw: String) -> String? {
        let bytes = Array(raw.utf8)
        guard !bytes.isEmpty, bytes.count <= 512 else { return nil }
        var namePart = bytes[...]
        var digest: ArraySlice<UInt8>? = nil
        if let at = bytes.firstIndex(of: UInt8(ascii: "@")) {
            namePart = bytes[..<at]
            let d = bytes[(at + 1)...]
            guard isDigest(d) else { return nil }
            digest = d
        }
        var tag: ArraySlice<UInt8>? = nil
        let lastSlash = namePart.lastIndex(of: UInt8(ascii: "/"))
        if let colon = namePart.lastIndex(of: UInt8(ascii: ":")), colon > (lastSlash ?? namePart.startIndex - 1) {
            let t = namePart[(colon + 1)...]
            guard isTag(t) else { return nil }
            tag = t
            namePart = namePart[..<colon]
        }
        guard !namePart.isEmpty, namePart.count <= 255 else { return nil }
        var components = namePart.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        var domain: ArraySlice<UInt8>? = nil
        if components.count > 1, isDomainLike(components[0]) {
            guard isDomain(components[0]) else { return nil }
            domain = components[0]
            components.removeFirst()
        }
        for c in components { guard isPathComponent(c) else { return nil } }
        // A bare 64-hex name is an image id, never a repository (Docker refuses it as a name).
        if domain == nil, components.count == 1, tag == nil, digest == nil, components[0].count == 64,
           components[0].allSatisfy(isLowerHex) { return nil }
        var out = [UInt8]()
        out.reserveCapacity(bytes.count + 7)
        let isHub = domain.map { Array($0) == Array("docker.io".utf8) || Array($0) == Array("index.docker.io".utf8) } ?? true
        if !isHub, let domain {
            out.append(contentsOf: domain)
            out.append(UInt8(ascii: "/"))
        }
        var path = components
        if isHub, path.count == 2, Array(path[0]) == Array("library".utf8) { path.removeFirst() }
        for (i, c) in path.enumerated() {
            if i > 0 { out.append(UInt8(ascii: "/")) }
            out.append(contentsOf: c)
        }
        if let digest {
            out.append(UInt8(ascii: "@"))
            out.append(contentsOf: digest)
        } else {
            out.append(UInt8(ascii: ":"))
            if let tag { out.append(contentsOf: tag) } else { out.append(contentsOf: "latest".utf8) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `sha256:<64 hex>` or `<64 hex>` → `sha256:<64 hex>`; anything else nil.
    static func fullImageID(_ s: String) -> String? {
        let u = s.utf8
        if u.count == 64, u.allSatisfy(isLowerHex) { return "sha256:" + s }
        if u.count == 71, s.hasPrefix("sha256:"), u.dropFirst(7).allSatisfy(isLowerHex) { return s }
        return nil
    }

    /// An id to store: `sha256:<1...64 hex>` as is, 64 bare hex digits prefixed; otherwise nil.
    /// (Real ids have 64 digits; shorter ones are accepted for hand-written test fixtures.)
    static func canonicalImageID(_ s: String) -> String? {
        if let full = fullImageID(s) { return full }
        guard s.hasPrefix("sha256:"), let hex = idPrefix(s) else { return nil }
        return "sha256:" + hex
    }

    /// The hex prefix an id lookup would use (`abc`, `sha256:abc`), or nil if `s` is not one.
    static func idPrefix(_ s: String) -> Substring? {
        var sub = Substring(s)
        if sub.hasPrefix("sha256:") { sub = sub.dropFirst(7) }
        guard !sub.isEmpty, sub.utf8.count <= 64, sub.utf8.allSatisfy(isLowerHex) else { return nil }
        return sub
    }

    /// Docker container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (so at least two characters).
    static func isValidContainerName(_ name: String) -> Bool {
        let u = Array(name.utf8)
        guard u.count >= 2, u.count <= 255, isAlnum(u[0]) else { return false }
        for b in u.dropFirst() where !(isAlnum(b) || b == UInt8(ascii: "_") || b == UInt8(ascii: ".") || b == UInt8(ascii: "-")) {
            return false
        }
        return true
    }

    // MARK: Grammar pieces (github.com/distribution/reference)

    static func isLowerHex(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "f"))
    }

    static func isAlnum(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z"))
            || (b >= UInt8(ascii: "A") && b <= UInt8(ascii: "Z"))
    }

    static func isLowerAlnum(_ b: UInt8) -> Bool {
        (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9")) || (b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z"))
    }

    private static func isDigest(_ d: ArraySlice<UInt8>) -> Bool {
        let prefix = Array("sha256:".utf8)
        guard d.count == 71, Array(d.prefix(7)) == prefix else { return false }
        return d.dropFirst(7).allSatisfy(isLowerHex)
    }

    private static func isTag(_ t: ArraySlice<UInt8>) -> Bool {
        guard let first = t.first, t.count <= 128, isAlnum(first) || first == UInt8(ascii: "_") else { return false }
        return t.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    private static func isDomainLike(_ c: ArraySlice<UInt8>) -> Bool {
        Array(c) == Array("localhost".utf8)
            || c.contains(UInt8(ascii: ".")) || c.contains(UInt8(ascii: ":"))
            || c.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
    }

    private static func isDomain(_ c: ArraySlice<UInt8>) -> Bool {
        var host = c
        if let colon = c.firstIndex(of: UInt8(ascii: ":")) {
            let port = c[(colon + 1)...]
            guard !port.isEmpty, port.count <= 5,
                  port.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return false }
            host = c[..<colon]
        }
        guard let f = host.first, let l = host.last, isAlnum(f), isAlnum(l) else { return false }
        return host.allSatisfy { isAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
    private static func isPathComponent(_ c: ArraySlice<UInt8>) -> Bool {
        guard let f = c.first, let l = c.last, isLowerAlnum(f), isLowerAlnum(l) else { return false }
        var i = c.startIndex
        while i < c.endIndex {
            let b = c[i]
            if isLowerAlnum(b) { i += 1; continue }
            // A separator run: ".", "_", "__" or one or more "-".
            var j = i
            while j < c.endIndex, !isLowerAlnum(c[j]) { j += 1 }
            let sep = c[i..<j]
            let ok = sep.allSatisfy { $0 == UInt8(ascii: "-") }
                || Array(sep) == [UInt8(ascii: ".")] || Array(sep) == [UInt8(ascii: "_")]
                || Array(sep) == [UInt8(ascii: "_"), UInt8(ascii: "_")]
            guard ok else { return false }
            i = j
        }
        return true
    }
}
