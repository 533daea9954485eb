/// A Docker image reference, `[registry[:port]/]repository[:tag][@algorithm:hex]`, parsed and
/// normalized the way Docker does (distribution/reference `ParseNormalizedNamed`):
/// `busybox` → domain `docker.io`, path `library/busybox`; `index.docker.io` → `docker.io`.
///
/// Equality compares the normalized parts, so `busybox:1`, `library/busybox:1` and
/// `docker.io/library/busybox:1` are equal. A reference without a tag is NOT equal to one with
/// `:latest`; use `withDefaultTag()` to compare as `docker` does when it adds `latest`.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    /// Registry host (with port), normalized: `docker.io` for Docker Hub.
    public let domain: String
    /// Repository path within the registry, e.g. `library/busybox`, `example/app`.
    public let path: String
    public let tag: String?
    /// `algorithm:hex`, e.g. `sha256:…`.
    public let digest: String?

    public static let defaultDomain = "docker.io"
    public static let defaultTag = "latest"

    /// Why a reference does not parse.
    public struct ParseError: Error, Equatable, Sendable, CustomStringConvertible {
        public enum Reason: Equatable, Sendable {
            case empty
            case tooLong
            case invalidDomain
            case invalidRepository
            case uppercaseRepository
            case hexRepository
            case invalidTag
            case invalidDigest
        }
        public var reason: Reason
        public var reference: String
        public var message: String

        public var description: String { message }
    }

    /// Parses and normalizes `string`.
    public init(_ string: String) throws(ParseError) {
        func failure(_ reason: ParseError.Reason, _ detail: String) -> ParseError {
            ParseError(reason: reason, reference: string, message: "invalid image reference \(TarFormat.quoted(string)): \(detail)")
        }
        guard !string.isEmpty else { throw failure(.empty, "it is empty") }
        var rest = Substring(string)

        var digest: String?
        if let at = rest.firstIndex(of: "@") {
            let d = String(rest[rest.index(after: at)...])
            guard ImageReference.isValidDigest(d) else { throw failure(.invalidDigest, "the digest \(TarFormat.quoted(d)) is malformed") }
            digest = d
            rest = rest[..<at]
        }
        var tag: String?
        let lastSlash = rest.lastIndex(of: "/")
        if let colon = rest.lastIndex(of: ":"), lastSlash.map({ colon > $0 }) ?? true {
            let t = String(rest[rest.index(after: colon)...])
            guard ImageReference.isValidTag(t) else { throw failure(.invalidTag, "the tag \(TarFormat.quoted(t)) is malformed") }
            tag = t
            rest = rest[..<colon]
        }
        let name = String(rest)
        guard !name.isEmpty else { throw failure(.invalidRepository, "the repository name is empty") }
        guard name.utf8.count <= 255 else { throw failure(.tooLong, "the repository name is longer than 255 characters") }

        var domain = ImageReference.defaultDomain
        var path = name
        if let slash = name.firstIndex(of: "/") {
            let first = name[..<slash]
            if first.contains(".") || first.contains(":") || first == "localhost" || first.lowercased() != first {
                domain = String(first)
                path = String(name[name.index(after: slash)...])
            }
        }
        if domain == "index.docker.io" { domain = ImageReference.defaultDomain }
        guard ImageReference.isValidDomain(domain) else { throw failure(.invalidDomain, "the registry \(TarFormat.quoted(domain)) is malformed") }
        if domain == ImageReference.defaultDomain, !path.contains("/") { path = "library/" + path }
        if path != path.lowercased(), ImageReference.isValidPath(path.lowercased()) {
            throw failure(.uppercaseRepository, "repository names must be lowercase")
        }
        guard ImageReference.isValidPath(path) else { throw failure(.invalidRepository, "the repository name \(TarFormat.quoted(path)) is malformed") }
        if domain == ImageReference.defaultDomain, tag == nil, digest == nil, !name.contains("/"),
           name.utf8.count == 64, name.utf8.allSatisfy({ ImageReference.isHexDigit($0) }) {
            throw failure(.hexRepository, "a 64-character hexadecimal string is an image id, not a repository name")
        }
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest
    }

    /// Builds a reference from already normalized parts (not validated).
    public init(domain: String, path: String, tag: String?, digest: String?) {
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest
    }

    /// `docker.io/library/busybox`.
    public var repository: String { domain + "/" + path }

    /// The repository as Docker displays it: `busybox`, `example/app`, `registry:5000/app`.
    public var familiarRepository: String {
        guard domain == ImageReference.defaultDomain else { return repository }
        if path.hasPrefix("library/") {
            let rest = path.dropFirst("library/".count)
            if !rest.contains("/") { return String(rest) }
        }
        return path
    }

    /// Fully qualified: `docker.io/library/busybox:1.36@sha256:…` (only the parts present).
    public var normalized: String { repository + suffix }

    /// As the Docker CLI displays it: `busybox:1.36`, `example/app:latest` (a `latest` tag is kept).
    public var familiar: String { familiarRepository + suffix }

    private var suffix: String {
        var s = ""
        if let tag { s += ":" + tag }
        if let digest { s += "@" + digest }
        return s
    }

    /// This reference with the `latest` tag added when it has neither tag nor digest.
    public func withDefaultTag() -> ImageReference {
        guard tag == nil, digest == nil else { return self }
        return ImageReference(domain: domain, path: path, tag: ImageReference.defaultTag, digest: nil)
    }

    public var description: String { familiar }

    // MARK: - Grammar (distribution/reference)

    static func isHexDigit(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
    }

    private static func isLowerAlnum(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) }
    private static func isAlnum(_ c: UInt8) -> Bool { isLowerAlnum(c) || (c >= 0x41 && c <= 0x5a) }

    /// `[\w][\w.-]{0,127}`
    static func isValidTag(_ tag: String) -> Bool {
        let b = Array(tag.utf8)
        guard !b.isEmpty, b.count <= 128 else { return false }
        func word(_ c: UInt8) -> Bool { isAlnum(c) || c == UInt8(ascii: "_") }
        return word(b[0]) && b.dropFirst().allSatisfy { word($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    /// `algorithm:hex` with algorithm components `[A-Za-z][A-Za-z0-9]*` joined by `[+._-]` and at
    /// least 32 hex digits; `sha256` must have exactly 64 lowercase hex digits.
    static func isValidDigest(_ digest: String) -> Bool {
        guard let colon = digest.firstIndex(of: ":") else { return false }
        let algorithm = Array(digest[..<colon].utf8)
        let hex = Array(digest[digest.index(after: colon)...].utf8)
        guard hex.count >= 32, hex.allSatisfy(isHexDigit) else { return false }
        var expectLetter = true
        for c in algorithm {
            if expectLetter {
                guard (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) else { return false }
                expectLetter = false
            } else if "+._-".utf8.contains(c) {
                expectLetter = true
            } else if !isAlnum(c) {
                return false
            }
        }
        guard !algorithm.isEmpty, !expectLetter else { return false }
        if algorithm == Array("sha256".utf8) {
            return hex.count == 64 && SHA256Digest(hex: String(decoding: hex, as: UTF8.self)) != nil
        }
        return true
    }

    /// `host[:port]` with host components `[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?` joined by '.',
    /// or a bracketed IPv6 address.
    static func isValidDomain(_ domain: String) -> Bool {
        var host = Substring(domain)
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else { return false }
            let inner = host[host.index(after: host.startIndex)..<close]
            guard !inner.isEmpty, inner.utf8.allSatisfy({ isHexDigit($0) || $0 == UInt8(ascii: ":") }) else { return false }
            let after = host[host.index(after: close)...]
            if after.isEmpty { return true }
            guard after.first == ":" else { return false }
            let port = after.dropFirst()
            return !port.isEmpty && port.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
        }
        if let colon = host.lastIndex(of: ":") {
            let port = host[host.index(after: colon)...]
            guard !port.isEmpty, port.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return false }
            host = host[..<colon]
        }
        let components = host.split(separator: ".", omittingEmptySubsequences: false)
        guard !components.isEmpty else { return false }
        for component in components {
            let b = Array(component.utf8)
            guard let first = b.first, let last = b.last, isAlnum(first), isAlnum(last),
                  b.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "-") }) else { return false }
        }
        return true
    }

    /// Components `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by '/'.
    static func isValidPath(_ path: String) -> Bool {
        let components = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !components.isEmpty else { return false }
        for component in components {
            let b = Array(component.utf8)
            guard let first = b.first, let last = b.last, isLowerAlnum(first), isLowerAlnum(last) else { return false }
            var i = 0
            while i < b.count {
                if isLowerAlnum(b[i]) { i += 1; continue }
                // A separator run: ".", "_", "__" or "-"+, between alphanumerics.
                var j = i
                if b[i] == UInt8(ascii: "-") {
                    while j < b.count, b[j] == UInt8(ascii: "-") { j += 1 }
                } else if b[i] == UInt8(ascii: ".") {
                    j += 1
                } else if b[i] == UInt8(ascii: "_") {
                    j += 1
                    if j < b.count, b[j] == UInt8(ascii: "_") { j += 1 }
                } else {
                    return false
                }
                guard j < b.count, isLowerAlnum(b[j]) else { return false }
                i = j
            }
        }
        return true
    }
}
