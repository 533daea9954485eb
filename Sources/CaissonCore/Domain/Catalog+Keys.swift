import CaissonTOML

/// Every key a catalog may hold, table by table: THE place to add a catalog key.
///
/// The catalog is the device's security policy, so a key that is not listed here is an error
/// (`catalog.unknown_key`, exit 1) naming the key, with a "did you mean" suggestion: a misspelt
/// `require_signature` must never silently switch a check off. (Manifests keep ignoring unknown
/// keys, FORMATS §2.) Adding a key: list it here, then read it in `Catalog.parse`.
extension Catalog {
    /// Table paths (`services` is each `[[services]]` table) and their keys, in the order of
    /// FORMATS §3. A key whose own path is listed here is a sub-table, checked in turn.
    public static let knownKeys: [(table: String, keys: [String])] = [
        ("", ["catalog_version", "services", "trust"]),
        ("services", ["name", "service_revision", "platform", "runtime_mode", "docker", "compose", "health_check", "rollback"]),
        ("services.docker", ["container_name", "image_reference"]),
        ("services.compose", ["project", "file", "service"]),
        ("services.health_check", ["kind", "timeout_secs", "poll_interval_secs", "stable_secs"] + healthProbeKeys),
        ("services.rollback", ["automatic"]),
        ("trust", ["public_keys", "require_signature"] + encryptionTrustKeys),
    ]

    /// The health probe keys of issue 12 (kinds `http`, `tcp`, `exec`).
    public static let healthProbeKeys = ["port", "path", "expect_status", "command", "probe_timeout_secs"]

    static func knownKeys(of table: String) -> [String]? {
        knownKeys.first { $0.table == table }?.keys
    }

    /// Refuses the first key that is not in `knownKeys`, in document order.
    static func checkKeys(_ root: TOMLTable, path: String) throws(CaissonError) {
        // (table, its schema path, the key prefix shown, the service it belongs to)
        var work: [(TOMLTable, String, String, String?)] = [(root, "", "", nil)]
        while !work.isEmpty {
            let (table, schema, shown, service) = work.removeFirst()
            guard let known = knownKeys(of: schema) else { continue }
            var nested: [(TOMLTable, String, String, String?)] = []
            for (key, value) in table {
                guard known.contains(key) else {
                    throw unknownKey(key, shownAs: shown + TOMLKeyPathText.render(key), known: known, service: service, path: path)
                }
                let sub = schema.isEmpty ? key : schema + "." + key
                guard knownKeys(of: sub) != nil else { continue }
                switch value {
                case .table(let t):
                    nested.append((t, sub, shown + key + ".", service))
                case .array(let items) where sub == "services":
                    for (i, item) in items.enumerated() {
                        guard case .table(let t) = item else { continue }  // reported by the parser
                        let name: String
                        if case .string(let n)? = t["name"], !n.isEmpty { name = "service \"\(n)\"" } else { name = "services[\(i)]" }
                        nested.append((t, "services", "", name))
                    }
                default:
                    continue  // the wrong type is reported by the parser
                }
            }
            work.insert(contentsOf: nested, at: 0)
        }
    }

    static func unknownKey(_ key: String, shownAs shown: String, known: [String], service: String?,
                           path: String) -> CaissonError {
        let whereText = service.map { "\($0): " } ?? ""
        let hint: String
        if let guess = KeySuggestion.closest(to: key, among: known) {
            hint = "did you mean `\(guess)`?"
        } else {
            hint = "the keys here are \(known.map { "`\($0)`" }.joined(separator: ", "))"
        }
        return CaissonError("catalog.unknown_key",
                            "catalog \(path): \(whereText)unknown key `\(shown)` (\(hint)); a misspelt key would silently change the device's policy, so it is refused")
    }
}

/// Key paths as the catalog's messages show them (bare keys as they are, others quoted).
enum TOMLKeyPathText {
    static func render(_ key: String) -> String {
        let bare = !key.isEmpty && key.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D
        }
        if bare { return key }
        var s = "\""
        for u in key.unicodeScalars {
            switch u {
            case "\"": s += "\\\""
            case "\\": s += "\\\\"
            default:
                if u.value < 0x20 || u.value == 0x7F { s += "\\u{\(String(u.value, radix: 16))}" } else { s.unicodeScalars.append(u) }
            }
        }
        return s + "\""
    }
}

/// "Did you mean": the known key closest to a misspelt one.
enum KeySuggestion {
    /// The closest candidate by edit distance (case, `_` and `-` ignored first), when it is close
    /// enough to be a misspelling: at most a third of the longer key, and at least 1 allowed. A
    /// key that is the start of a candidate, or the other way round (`timeout`, `timeout_secs`),
    /// counts as one edit away when the shorter has 4 characters or more.
    static func closest(to key: String, among candidates: [String]) -> String? {
        func norm(_ s: String) -> [Character] { Array(s.lowercased().filter { $0 != "_" && $0 != "-" }) }
        let k = norm(key)
        var best: (String, Int)?
        for c in candidates {
            let n = norm(c)
            var d = distance(k, n)
            let (short, long) = k.count <= n.count ? (k, n) : (n, k)
            if short.count >= 4 && long.starts(with: short) { d = min(d, 1) }
            if best == nil || d < best!.1 { best = (c, d) }
        }
        guard let (candidate, d) = best else { return nil }
        let allowed = max(1, max(k.count, norm(candidate).count) / 3)
        return d <= allowed ? candidate : nil
    }

    /// Optimal string alignment distance (Levenshtein with adjacent transpositions).
    static func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev2 = [Int](repeating: 0, count: b.count + 1)
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    cur[j] = min(cur[j], prev2[j - 2] + 1)
                }
            }
            (prev2, prev, cur) = (prev, cur, prev2)
        }
        return prev[b.count]
    }
}
