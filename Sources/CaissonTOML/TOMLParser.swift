// A single-pass recursive-descent TOML parser over UTF-8 bytes, for TOML 1.1 (the default) or 1.0.
// The differences are few and local: 1.1 allows newlines, comments and a trailing comma in inline
// tables (`inlineTableSpacing`), the `\xHH` and `\e` escapes (`parseEscape`), and times without
// seconds (`parseDateTime`). Everything else is the same grammar.
//
// The document is built as a tree of mutable `Node`s (tables that may still grow, each with the
// state the redefinition rules need) and converted to immutable `TOMLTable`s at the end. Inline
// tables and arrays are complete when parsed, so they are stored as finished `TOMLValue`s, which
// is what makes them immutable. Every construct that nests (tables, arrays, inline tables,
// arrays of tables) is checked against `TOMLLimits.maxDepth`, which bounds all recursion here,
// in the conversion, and in anything that walks the result.

// MARK: - Document tree under construction

final class Node {
    enum State: Equatable {
        /// Created as an intermediate of a `[a.b.c]` header; may still be defined by a header, and
        /// may be extended by dotted keys.
        case implicit
        /// Defined by a header, an element of an array of tables, the root, or an inline table.
        case explicit
        /// Created by dotted keys in the given section; only that section may add keys to it.
        case dotted(Int)
    }

    enum Item {
        case value(TOMLValue)
        case table(Node)
        case arrayOfTables(TableArray)
    }

    var state: State
    let depth: Int
    /// The key path rendered for messages: `services[1].docker`.
    let path: String
    /// Offset of the header that defined this table explicitly, for "already defined at" messages.
    var definedAt: Int?
    private(set) var order: [(key: String, item: Item)] = []
    private var lookup: [String: Item] = [:]

    init(state: State, depth: Int, path: String) {
        self.state = state
        self.depth = depth
        self.path = path
    }

    subscript(key: String) -> Item? { lookup[key] }

    func add(_ key: String, _ item: Item) {
        lookup[key] = item
        order.append((key: key, item: item))
    }

    func childPath(_ key: String) -> String {
        path.isEmpty ? TOMLKeyPath.render(key) : path + "." + TOMLKeyPath.render(key)
    }

    /// Converts this subtree to immutable tables, with an explicit stack (no recursion).
    func toTable() -> TOMLTable {
        enum Frame {
            case table(Node, next: Int, TOMLTable)
            case tables([Node], next: Int, [TOMLValue])
        }
        var stack: [Frame] = [.table(self, next: 0, TOMLTable())]
        var finished: TOMLValue?  // the value of the frame that completed last
        walk: while let frame = stack.popLast() {
            switch consume frame {  // consume: keeps the payload uniquely referenced (no copy on append)
            case .table(let node, var i, var table):
                if let child = finished {
                    table[node.order[i].key] = child
                    i += 1
                    finished = nil
                }
                while i < node.order.count {
                    let (key, item) = node.order[i]
                    switch item {
                    case .value(let v):
                        table[key] = v
                        i += 1
                    case .table(let n):
                        stack.append(.table(node, next: i, table))
                        stack.append(.table(n, next: 0, TOMLTable()))
                        continue walk
                    case .arrayOfTables(let a):
                        stack.append(.table(node, next: i, table))
                        stack.append(.tables(a.tables, next: 0, []))
                        continue walk
                    }
                }
                finished = .table(table)
            case .tables(let nodes, var j, var values):
                if let child = finished {
                    values.append(child)
                    j += 1
                    finished = nil
                }
                if j < nodes.count {
                    stack.append(.tables(nodes, next: j, values))
                    stack.append(.table(nodes[j], next: 0, TOMLTable()))
                    continue walk
                }
                finished = .array(values)
            }
        }
        return finished?.table ?? TOMLTable()
    }
}

final class TableArray {
    var tables: [Node] = []
}

/// Rendering of key paths for messages: bare keys as they are, others quoted.
enum TOMLKeyPath {
    static func isBare(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.allSatisfy(TOMLParser.isBareKeyByte)
    }

    static func render(_ key: String) -> String {
        if isBare(key) { return key }
        var s = "\""
        for u in key.unicodeScalars {
            switch u {
            case "\"": s += "\\\""
            case "\\": s += "\\\\"
            case "\n": s += "\\n"
            case "\t": s += "\\t"
            case "\r": s += "\\r"
            default:
                if u.value < 0x20 || u.value == 0x7F {
                    s += "\\u" + TOMLParser.hex(u.value, width: 4)
                } else {
                    s.unicodeScalars.append(u)
                }
            }
        }
        return s + "\""
    }
}

// MARK: - Parser

struct TOMLParser {
    private let b: [UInt8]
    private var p = 0
    private let limits: TOMLLimits
    /// TOML 1.1 (true) or 1.0 (false).
    private let v11: Bool
    private var section = 0
    private let bomLength: Int

    init(bytes: [UInt8], spec: TOMLSpec = .latest, limits: TOMLLimits) {
        self.b = bytes
        self.limits = limits
        self.v11 = spec == .v1_1
        self.bomLength = (bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF) ? 3 : 0
    }

    // MARK: Character classes

    static func isBareKeyByte(_ c: UInt8) -> Bool {
        (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x5F || c == 0x2D
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    private static func isHexDigit(_ c: UInt8) -> Bool {
        isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
    }

    private static func hexValue(_ c: UInt8) -> UInt32 {
        if c >= 0x30 && c <= 0x39 { return UInt32(c - 0x30) }
        if c >= 0x61 && c <= 0x66 { return UInt32(c - 0x61 + 10) }
        return UInt32(c &- 0x41 &+ 10)
    }

    /// Control characters that may not appear raw in comments or strings (tab is allowed).
    private static func isForbiddenControl(_ c: UInt8) -> Bool { (c < 0x20 && c != 0x09) || c == 0x7F }

    static func hex(_ v: UInt32, width: Int) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    // MARK: Errors

    private func error(_ message: String, at offset: Int) -> TOMLError {
        let (line, column) = position(of: offset)
        return TOMLError(line: line, column: column, message: message)
    }

    /// 1-based line and column (in Unicode scalars) of a byte offset. Only computed on error.
    private func position(of offset: Int) -> (Int, Int) {
        var line = 1
        var column = 1
        var i = bomLength
        let end = min(max(offset, 0), b.count)
        while i < end {
            let c = b[i]
            if c == 0x0A {
                line += 1
                column = 1
            } else if c & 0xC0 != 0x80 {
                column += 1
            }
            i += 1
        }
        return (line, column)
    }

    private func positionText(_ offset: Int) -> String {
        let (line, column) = position(of: offset)
        return "line \(line), column \(column)"
    }

    /// A short description of the character at `i` for messages.
    private func describe(_ i: Int) -> String {
        guard i < b.count else { return "end of input" }
        let c = b[i]
        switch c {
        case 0x0A: return "a newline"
        case 0x0D: return "a carriage return"
        case 0x09: return "a tab"
        case 0x20: return "a space"
        case 0x21...0x7E: return "'\(Character(Unicode.Scalar(c)))'"
        case 0x00...0x1F, 0x7F: return "control character U+\(TOMLParser.hex(UInt32(c), width: 4))"
        default:
            var end = i + 1
            while end < b.count && b[end] & 0xC0 == 0x80 && end - i < 4 { end += 1 }
            let s = String(decoding: b[i..<end], as: UTF8.self)
            let v = s.unicodeScalars.first?.value ?? 0xFFFD
            return "'\(s)' (U+\(TOMLParser.hex(v, width: 4)))"
        }
    }

    // MARK: UTF-8

    /// The offset of the first byte that is not part of well-formed UTF-8, or nil.
    static func firstInvalidUTF8(_ b: [UInt8]) -> Int? {
        var i = 0
        let n = b.count
        while i < n {
            let c = b[i]
            if c < 0x80 { i += 1; continue }
            let need: Int
            var lo: UInt8 = 0x80
            var hi: UInt8 = 0xBF
            switch c {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lo = 0xA0
            case 0xE1...0xEC, 0xEE, 0xEF: need = 2
            case 0xED: need = 2; hi = 0x9F
            case 0xF0: need = 3; lo = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; hi = 0x8F
            default: return i
            }
            var k = 1
            while k <= need {
                guard i + k < n else { return i }
                let d = b[i + k]
                if k == 1 {
                    guard d >= lo && d <= hi else { return i }
                } else {
                    guard d >= 0x80 && d <= 0xBF else { return i }
                }
                k += 1
            }
            i += need + 1
        }
        return nil
    }

    // MARK: Document

    mutating func parseDocument() throws(TOMLError) -> TOMLTable {
        guard b.count <= limits.maxInputBytes else {
            throw TOMLError(line: 1, column: 1,
                            message: "input is \(b.count) bytes, more than the limit of \(limits.maxInputBytes) bytes")
        }
        if let bad = TOMLParser.firstInvalidUTF8(b) {
            throw error("invalid UTF-8 (byte 0x\(TOMLParser.hex(UInt32(b[bad]), width: 2)))", at: bad)
        }
        p = bomLength
        let root = Node(state: .explicit, depth: 0, path: "")
        var current = root
        while true {
            skipWhitespace()
            guard p < b.count else { break }
            switch b[p] {
            case 0x0A:
                p += 1
                continue
            case 0x0D:
                try expectNewline()
                continue
            case 0x23: // #
                try skipComment()
                continue
            case 0x5B: // [
                current = try parseHeader(root: root)
            default:
                try parseKeyValue(into: current)
            }
            // After a header or key/value: optional whitespace and comment, then a newline or the end.
            skipWhitespace()
            if p < b.count && b[p] == 0x23 { try skipComment() }
            guard p < b.count else { break }
            if b[p] == 0x0A || b[p] == 0x0D {
                try expectNewline()
            } else {
                throw error("expected a newline or a comment, found \(describe(p))", at: p)
            }
        }
        return root.toTable()
    }

    // MARK: Whitespace, newlines, comments

    private mutating func skipWhitespace() {
        while p < b.count && (b[p] == 0x20 || b[p] == 0x09) { p += 1 }
    }

    /// Consumes `\n` or `\r\n` at `p`.
    private mutating func expectNewline() throws(TOMLError) {
        if p < b.count && b[p] == 0x0A { p += 1; return }
        if p + 1 < b.count && b[p] == 0x0D && b[p + 1] == 0x0A { p += 2; return }
        if p < b.count && b[p] == 0x0D {
            throw error("a carriage return must be followed by a newline", at: p)
        }
        throw error("expected a newline, found \(describe(p))", at: p)
    }

    /// At '#': skips the comment up to (not including) the end of the line.
    private mutating func skipComment() throws(TOMLError) {
        p += 1
        while p < b.count {
            let c = b[p]
            if c == 0x0A { return }
            if c == 0x0D {
                if p + 1 < b.count && b[p + 1] == 0x0A { return }
                throw error("a carriage return must be followed by a newline", at: p)
            }
            if TOMLParser.isForbiddenControl(c) {
                throw error("\(describe(p)) is not allowed in a comment", at: p)
            }
            p += 1
        }
    }

    /// Whitespace, newlines and comments, as allowed inside arrays.
    private mutating func skipWhitespaceCommentsNewlines() throws(TOMLError) {
        while p < b.count {
            switch b[p] {
            case 0x20, 0x09, 0x0A: p += 1
            case 0x0D: try expectNewline()
            case 0x23: try skipComment()
            default: return
            }
        }
    }

    // MARK: Keys

    private struct KeyPart {
        var name: String
        var offset: Int
    }

    private mutating func parseKey() throws(TOMLError) -> [KeyPart] {
        var parts: [KeyPart] = []
        while true {
            skipWhitespace()
            let start = p
            guard p < b.count else { throw error("expected a key, found end of input", at: p) }
            let c = b[p]
            let name: String
            if c == 0x22 { // "
                if p + 2 < b.count && b[p + 1] == 0x22 && b[p + 2] == 0x22 {
                    throw error("a multi-line string cannot be used as a key", at: p)
                }
                name = try parseBasicString()
            } else if c == 0x27 { // '
                if p + 2 < b.count && b[p + 1] == 0x27 && b[p + 2] == 0x27 {
                    throw error("a multi-line string cannot be used as a key", at: p)
                }
                name = try parseLiteralString()
            } else if TOMLParser.isBareKeyByte(c) {
                while p < b.count && TOMLParser.isBareKeyByte(b[p]) { p += 1 }
                name = String(decoding: b[start..<p], as: UTF8.self)
            } else {
                throw error("expected a key, found \(describe(p))", at: p)
            }
            parts.append(KeyPart(name: name, offset: start))
            skipWhitespace()
            if p < b.count && b[p] == 0x2E { // .
                p += 1
                continue
            }
            return parts
        }
    }

    private func render(_ prefix: String, _ parts: ArraySlice<KeyPart>) -> String {
        var s = prefix
        for part in parts {
            if !s.isEmpty { s += "." }
            s += TOMLKeyPath.render(part.name)
        }
        return s
    }

    // MARK: Tables

    /// At '[': parses `[key]` or `[[key]]` and returns the table that following keys go into.
    private mutating func parseHeader(root: Node) throws(TOMLError) -> Node {
        let start = p
        let isArray = p + 1 < b.count && b[p + 1] == 0x5B
        p += isArray ? 2 : 1
        let key = try parseKey()
        guard p < b.count && b[p] == 0x5D else {
            let what = isArray ? "']]' to close the array-of-tables header" : "']' to close the table header"
            throw error("expected \(what), found \(describe(p))", at: p)
        }
        p += 1
        if isArray {
            guard p < b.count && b[p] == 0x5D else {
                throw error("expected ']]' to close the array-of-tables header, found \(describe(p))", at: p)
            }
            p += 1
        }
        section += 1
        let fullName = render("", key[...])
        let shown = isArray ? "[[\(fullName)]]" : "[\(fullName)]"

        var node = root
        for (i, part) in key.dropLast().enumerated() {
            let here = render("", key[...i])
            switch node[part.name] {
            case nil:
                let child = try makeNode(parent: node, key: part.name, state: .implicit, at: part.offset)
                node.add(part.name, .table(child))
                node = child
            case .table(let child):
                node = child
            case .arrayOfTables(let array):
                guard let last = array.tables.last else {
                    throw error("internal error: empty array of tables '\(here)'", at: part.offset)
                }
                node = last
            case .value(let v):
                throw error(cannotExtend(here, v, by: shown), at: part.offset)
            }
        }

        guard let last = key.last else { throw error("expected a key", at: start) }
        let here = fullName
        if isArray {
            switch node[last.name] {
            case nil:
                let array = TableArray()
                guard node.depth + 2 <= limits.maxDepth else { throw depthError(at: last.offset) }
                node.add(last.name, .arrayOfTables(array))
                return try appendTable(to: array, path: node.childPath(last.name), depth: node.depth + 2, at: start)
            case .arrayOfTables(let array):
                return try appendTable(to: array, path: node.childPath(last.name), depth: node.depth + 2, at: start)
            case .table(let t):
                let where_ = t.definedAt.map { " (at \(positionText($0)))" } ?? ""
                throw error("cannot define array of tables \(shown): '\(here)' is already a table\(where_)", at: last.offset)
            case .value(let v):
                if case .array = v {
                    throw error("cannot append to '\(here)' with \(shown): it is a static array, not an array of tables", at: last.offset)
                }
                throw error(cannotExtend(here, v, by: shown), at: last.offset)
            }
        } else {
            switch node[last.name] {
            case nil:
                let child = try makeNode(parent: node, key: last.name, state: .explicit, at: last.offset)
                child.definedAt = start
                node.add(last.name, .table(child))
                return child
            case .table(let child):
                switch child.state {
                case .implicit:
                    child.state = .explicit
                    child.definedAt = start
                    return child
                case .explicit:
                    let where_ = child.definedAt.map { " at \(positionText($0))" } ?? ""
                    throw error("table \(shown) is defined more than once (first defined\(where_))", at: last.offset)
                case .dotted:
                    throw error("table \(shown) was already defined with dotted keys", at: last.offset)
                }
            case .arrayOfTables:
                throw error("table \(shown) conflicts with the array of tables [[\(here)]]", at: last.offset)
            case .value(let v):
                throw error(cannotExtend(here, v, by: shown), at: last.offset)
            }
        }
    }

    private func appendTable(to array: TableArray, path: String, depth: Int, at offset: Int) throws(TOMLError) -> Node {
        let element = Node(state: .explicit, depth: depth, path: path + "[\(array.tables.count)]")
        element.definedAt = offset
        array.tables.append(element)
        return element
    }

    private func makeNode(parent: Node, key: String, state: Node.State, at offset: Int) throws(TOMLError) -> Node {
        guard parent.depth + 1 <= limits.maxDepth else { throw depthError(at: offset) }
        return Node(state: state, depth: parent.depth + 1, path: parent.childPath(key))
    }

    private func depthError(at offset: Int) -> TOMLError {
        error("nesting is deeper than the limit of \(limits.maxDepth) levels", at: offset)
    }

    private func cannotExtend(_ key: String, _ value: TOMLValue, by what: String) -> String {
        if case .table = value {
            return "cannot extend '\(key)' with \(what): inline tables are immutable"
        }
        return "cannot use '\(key)' as a table in \(what): it is already \(value.typeDescription)"
    }

    // MARK: Key/value pairs

    /// A key/value line in a table section.
    private mutating func parseKeyValue(into table: Node) throws(TOMLError) {
        let key = try parseKeyAndEquals()
        let value = try parseValue(depth: table.depth + key.count, path: .key(table.path, key))
        try insert(key, value, into: table)
    }

    /// Parses `key =` and the whitespace after it; `p` is left at the value.
    private mutating func parseKeyAndEquals() throws(TOMLError) -> [KeyPart] {
        let key = try parseKey()
        guard p < b.count && b[p] == 0x3D else { // =
            throw error("expected '=' after the key '\(render("", key[...]))', found \(describe(p))", at: p)
        }
        p += 1
        skipWhitespace()
        guard p < b.count && b[p] != 0x0A && b[p] != 0x0D && b[p] != 0x23 else {
            throw error("expected a value after '=', found \(describe(p))", at: p)
        }
        return key
    }

    /// Stores `value` under a (possibly dotted) key, applying the redefinition rules.
    private mutating func insert(_ key: [KeyPart], _ value: TOMLValue, into table: Node) throws(TOMLError) {
        var node = table
        for (i, part) in key.dropLast().enumerated() {
            switch node[part.name] {
            case nil:
                let child = try makeNode(parent: node, key: part.name, state: .dotted(section), at: part.offset)
                node.add(part.name, .table(child))
                node = child
            case .table(let child):
                switch child.state {
                case .implicit:
                    child.state = .dotted(section)
                case .dotted(let s) where s == section:
                    break
                case .dotted, .explicit:
                    throw error("cannot add keys to table '\(render(table.path, key[...i]))' with dotted keys: it is defined elsewhere",
                                at: part.offset)
                }
                node = child
            case .arrayOfTables:
                throw error("cannot add keys to the array of tables '\(render(table.path, key[...i]))' with dotted keys",
                            at: part.offset)
            case .value(let v):
                throw error(cannotExtend(render(table.path, key[...i]), v, by: "a dotted key"), at: part.offset)
            }
        }
        guard let last = key.last else { return }
        if let existing = node[last.name] {
            let here = render(table.path, key[...])
            switch existing {
            case .table, .arrayOfTables:
                throw error("duplicate key '\(here)': it is already defined as a table", at: last.offset)
            case .value:
                throw error("duplicate key '\(here)'", at: last.offset)
            }
        }
        node.add(last.name, .value(value))
    }

    // MARK: Values

    /// Where a value sits, rendered only when a container needs it (keeps scalars cheap).
    private enum ValuePath {
        case key(String, [KeyPart])
        case element(String, Int)
    }

    private func text(_ path: ValuePath) -> String {
        switch path {
        case .key(let prefix, let parts): return render(prefix, parts[...])
        case .element(let prefix, let index): return prefix + "[\(index)]"
        }
    }

    /// An array or inline table whose contents are still being parsed.
    private enum OpenContainer {
        case array(items: [TOMLValue], open: Int, depth: Int, path: String)
        /// `key` is the key whose value is being parsed.
        case inlineTable(node: Node, open: Int, key: [KeyPart])
    }

    /// Parses the value at `p`. `depth` is the level the value would occupy if it nests.
    ///
    /// Arrays and inline tables are parsed with an explicit stack rather than recursion, so the
    /// call stack stays flat whatever the nesting (the depth limit still applies to the result).
    private mutating func parseValue(depth startDepth: Int, path startPath: ValuePath) throws(TOMLError) -> TOMLValue {
        var stack: [OpenContainer] = []
        var depth = startDepth
        var path = startPath
        parsing: while true {
            // Parse one value, or open a container and go on with its first element.
            var value: TOMLValue
            guard p < b.count else { throw error("expected a value, found end of input", at: p) }
            switch b[p] {
            case 0x5B: // [
                let open = p
                guard depth <= limits.maxDepth else { throw depthError(at: open) }
                p += 1
                try skipWhitespaceCommentsNewlines()
                guard p < b.count else { throw unterminatedArray(open) }
                if b[p] == 0x5D {
                    p += 1
                    value = .array([])
                } else {
                    let here = text(path)
                    stack.append(.array(items: [], open: open, depth: depth, path: here))
                    depth += 1
                    path = .element(here, 0)
                    continue parsing
                }
            case 0x7B: // {
                let open = p
                guard depth <= limits.maxDepth else { throw depthError(at: open) }
                p += 1
                try inlineTableSpacing()
                if p < b.count && b[p] == 0x7D {
                    p += 1
                    value = .table(TOMLTable())
                } else {
                    let node = Node(state: .explicit, depth: depth, path: text(path))
                    let key = try parseInlineKey(open: open)
                    stack.append(.inlineTable(node: node, open: open, key: key))
                    depth = node.depth + key.count
                    path = .key(node.path, key)
                    continue parsing
                }
            default:
                value = try parseScalar()
            }

            // Hand the finished value to the innermost open container; close containers that end.
            while let top = stack.popLast() {
                switch consume top {  // consume: keeps `items` uniquely referenced (no copy on append)
                case .array(var items, let open, let d, let pth):
                    items.append(value)
                    try skipWhitespaceCommentsNewlines()
                    guard p < b.count else { throw unterminatedArray(open) }
                    if b[p] == 0x2C { // ,
                        p += 1
                        try skipWhitespaceCommentsNewlines()
                        guard p < b.count else { throw unterminatedArray(open) }
                        if b[p] != 0x5D {
                            path = .element(pth, items.count)
                            stack.append(.array(items: items, open: open, depth: d, path: pth))
                            depth = d + 1
                            continue parsing
                        }
                    }
                    guard b[p] == 0x5D else {
                        throw error("expected ',' or ']' in the array, found \(describe(p))", at: p)
                    }
                    p += 1
                    value = .array(items)
                case .inlineTable(let node, let open, let key):
                    try insert(key, value, into: node)
                    try inlineTableSpacing()
                    guard p < b.count else { throw unterminatedInlineTable(open) }
                    switch b[p] {
                    case 0x2C: // ,
                        p += 1
                        try inlineTableSpacing()
                        if v11 && p < b.count && b[p] == 0x7D { // a trailing comma (1.1)
                            p += 1
                            value = .table(node.toTable())
                            continue
                        }
                        let next = try parseInlineKey(open: open)
                        stack.append(.inlineTable(node: node, open: open, key: next))
                        depth = node.depth + next.count
                        path = .key(node.path, next)
                        continue parsing
                    case 0x7D: // }
                        p += 1
                        value = .table(node.toTable())
                    case 0x0A, 0x0D:
                        throw error("an inline table must be on a single line (expected ',' or '}')", at: p)
                    default:
                        throw error("expected ',' or '}' in the inline table, found \(describe(p))", at: p)
                    }
                }
            }
            return value
        }
    }

    /// Between the parts of an inline table: spaces and tabs in 1.0; also newlines and comments
    /// in 1.1.
    private mutating func inlineTableSpacing() throws(TOMLError) {
        if v11 {
            try skipWhitespaceCommentsNewlines()
        } else {
            skipWhitespace()
        }
    }

    /// Inside an inline table, before a key: the key, '=' and the whitespace after it.
    private mutating func parseInlineKey(open: Int) throws(TOMLError) -> [KeyPart] {
        try inlineTableSpacing()
        guard p < b.count else { throw unterminatedInlineTable(open) }
        if b[p] == 0x7D {
            throw error("a trailing comma is not allowed in an inline table", at: p)
        }
        if b[p] == 0x0A || b[p] == 0x0D {
            throw error("an inline table must be on a single line", at: p)
        }
        return try parseKeyAndEquals()
    }

    private func unterminatedArray(_ open: Int) -> TOMLError {
        error("unterminated array (opened at \(positionText(open)))", at: b.count)
    }

    private func unterminatedInlineTable(_ open: Int) -> TOMLError {
        error("unterminated inline table (opened at \(positionText(open)))", at: b.count)
    }

    /// A string, boolean, number or date/time at `p`.
    private mutating func parseScalar() throws(TOMLError) -> TOMLValue {
        switch b[p] {
        case 0x22: // "
            if p + 2 < b.count && b[p + 1] == 0x22 && b[p + 2] == 0x22 {
                return .string(try parseMultilineBasicString())
            }
            return .string(try parseBasicString())
        case 0x27: // '
            if p + 2 < b.count && b[p + 1] == 0x27 && b[p + 2] == 0x27 {
                return .string(try parseMultilineLiteralString())
            }
            return .string(try parseLiteralString())
        case 0x74: // t
            if matches("true") { p += 4; return .boolean(true) }
        case 0x66: // f
            if matches("false") { p += 5; return .boolean(false) }
        case 0x30...0x39, 0x2B, 0x2D, 0x69, 0x6E: // digit + - i n
            return try parseNumberOrDateTime()
        default:
            break
        }
        throw error("expected a value, found \(describe(p))", at: p)
    }

    private func matches(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard p + n <= b.count else { return false }
        return word.withUTF8Buffer { w in
            for i in 0..<n where b[p + i] != w[i] { return false }
            return true
        }
    }

    // MARK: Strings

    /// At '"': a single-line basic string.
    private mutating func parseBasicString() throws(TOMLError) -> String {
        let open = p
        p += 1
        var out: [UInt8] = []
        while true {
            guard p < b.count else { throw error("unterminated string (opened at \(positionText(open)))", at: p) }
            let c = b[p]
            switch c {
            case 0x22:
                p += 1
                return String(decoding: out, as: UTF8.self)
            case 0x5C:
                try parseEscape(into: &out, multiline: false)
            case 0x0A, 0x0D:
                throw error("unterminated string: a newline before the closing '\"'", at: p)
            default:
                if TOMLParser.isForbiddenControl(c) {
                    throw error("\(describe(p)) must be escaped in a string", at: p)
                }
                out.append(c)
                p += 1
            }
        }
    }

    /// At '"""': a multi-line basic string. CRLF inside the string becomes LF.
    private mutating func parseMultilineBasicString() throws(TOMLError) -> String {
        let open = p
        p += 3
        skipInitialNewline()
        var out: [UInt8] = []
        while true {
            guard p < b.count else {
                throw error("unterminated multi-line string (opened at \(positionText(open)))", at: p)
            }
            let c = b[p]
            switch c {
            case 0x22:
                if try closeQuotes(0x22, into: &out) {
                    return String(decoding: out, as: UTF8.self)
                }
            case 0x5C:
                try parseEscape(into: &out, multiline: true)
            case 0x0A:
                out.append(0x0A)
                p += 1
            case 0x0D:
                try expectNewline()
                out.append(0x0A)
            default:
                if TOMLParser.isForbiddenControl(c) {
                    throw error("\(describe(p)) must be escaped in a string", at: p)
                }
                out.append(c)
                p += 1
            }
        }
    }

    /// At "'": a literal string.
    private mutating func parseLiteralString() throws(TOMLError) -> String {
        let open = p
        p += 1
        let start = p
        while true {
            guard p < b.count else { throw error("unterminated string (opened at \(positionText(open)))", at: p) }
            let c = b[p]
            if c == 0x27 {
                let s = String(decoding: b[start..<p], as: UTF8.self)
                p += 1
                return s
            }
            if c == 0x0A || c == 0x0D {
                throw error("unterminated string: a newline before the closing \"'\"", at: p)
            }
            if TOMLParser.isForbiddenControl(c) {
                throw error("\(describe(p)) is not allowed in a literal string", at: p)
            }
            p += 1
        }
    }

    /// At "'''": a multi-line literal string. CRLF inside the string becomes LF.
    private mutating func parseMultilineLiteralString() throws(TOMLError) -> String {
        let open = p
        p += 3
        skipInitialNewline()
        var out: [UInt8] = []
        while true {
            guard p < b.count else {
                throw error("unterminated multi-line string (opened at \(positionText(open)))", at: p)
            }
            let c = b[p]
            switch c {
            case 0x27:
                if try closeQuotes(0x27, into: &out) {
                    return String(decoding: out, as: UTF8.self)
                }
            case 0x0A:
                out.append(0x0A)
                p += 1
            case 0x0D:
                try expectNewline()
                out.append(0x0A)
            default:
                if TOMLParser.isForbiddenControl(c) {
                    throw error("\(describe(p)) is not allowed in a literal string", at: p)
                }
                out.append(c)
                p += 1
            }
        }
    }

    private mutating func skipInitialNewline() {
        if p < b.count && b[p] == 0x0A {
            p += 1
        } else if p + 1 < b.count && b[p] == 0x0D && b[p + 1] == 0x0A {
            p += 2
        }
    }

    /// At a quote inside a multi-line string: a run of 1–2 quotes is content; 3–5 close the
    /// string (the extra 1–2 are content); more is an error. Returns true if the string closed.
    private mutating func closeQuotes(_ q: UInt8, into out: inout [UInt8]) throws(TOMLError) -> Bool {
        var n = 0
        while p + n < b.count && b[p + n] == q { n += 1 }
        if n < 3 {
            out.append(contentsOf: repeatElement(q, count: n))
            p += n
            return false
        }
        if n > 5 {
            throw error("too many quotes at the end of a multi-line string", at: p + 5)
        }
        out.append(contentsOf: repeatElement(q, count: n - 3))
        p += n
        return true
    }

    /// At '\' in a basic string.
    private mutating func parseEscape(into out: inout [UInt8], multiline: Bool) throws(TOMLError) {
        let start = p
        p += 1
        guard p < b.count else { throw error("unterminated escape sequence", at: start) }
        let c = b[p]
        switch c {
        case 0x62: out.append(0x08); p += 1 // b
        case 0x74: out.append(0x09); p += 1 // t
        case 0x6E: out.append(0x0A); p += 1 // n
        case 0x66: out.append(0x0C); p += 1 // f
        case 0x72: out.append(0x0D); p += 1 // r
        case 0x22: out.append(0x22); p += 1 // "
        case 0x5C: out.append(0x5C); p += 1 // \
        case 0x65 where v11: out.append(0x1B); p += 1 // e: escape (1.1)
        case 0x78 where v11: // xHH: the code point U+00HH (1.1)
            guard p + 2 < b.count, TOMLParser.isHexDigit(b[p + 1]), TOMLParser.isHexDigit(b[p + 2]) else {
                throw error("the escape '\\x' needs 2 hexadecimal digits", at: start)
            }
            let v = TOMLParser.hexValue(b[p + 1]) << 4 | TOMLParser.hexValue(b[p + 2])
            out.append(contentsOf: String(Character(Unicode.Scalar(UInt8(v)))).utf8)
            p += 3
        case 0x75, 0x55: // u, U
            let width = c == 0x75 ? 4 : 8
            p += 1
            var v: UInt32 = 0
            for k in 0..<width {
                guard p + k < b.count, TOMLParser.isHexDigit(b[p + k]) else {
                    throw error("the escape '\\\(c == 0x75 ? "u" : "U")' needs \(width) hexadecimal digits", at: start)
                }
                v = v << 4 | TOMLParser.hexValue(b[p + k])
            }
            guard let scalar = Unicode.Scalar(v) else {
                throw error("the escape \(String(decoding: b[start..<(p + width)], as: UTF8.self)) is not a Unicode scalar value (surrogate or beyond U+10FFFF)", at: start)
            }
            out.append(contentsOf: String(Character(scalar)).utf8)
            p += width
        case 0x20, 0x09, 0x0A, 0x0D:
            guard multiline else {
                throw error("invalid escape sequence: a backslash followed by \(describe(p))", at: start)
            }
            // Line-ending backslash: only whitespace may follow it on the line; then all
            // whitespace and newlines up to the next non-whitespace character are trimmed.
            var j = p
            while j < b.count && (b[j] == 0x20 || b[j] == 0x09) { j += 1 }
            guard j < b.count && (b[j] == 0x0A || (b[j] == 0x0D && j + 1 < b.count && b[j + 1] == 0x0A)) else {
                throw error("invalid escape: a backslash followed by whitespace must end the line", at: start)
            }
            p = j
            while p < b.count {
                let d = b[p]
                if d == 0x20 || d == 0x09 || d == 0x0A {
                    p += 1
                } else if d == 0x0D {
                    try expectNewline()
                } else {
                    break
                }
            }
        default:
            let valid = v11 ? "\\b \\t \\n \\f \\r \\e \\\" \\\\ \\xHH \\uXXXX \\UXXXXXXXX" : "\\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX"
            throw error("invalid escape sequence '\\\(describeBare(p))' (valid: \(valid))", at: start)
        }
    }

    private func describeBare(_ i: Int) -> String {
        guard i < b.count else { return "" }
        let c = b[i]
        if c >= 0x21 && c <= 0x7E { return String(Character(Unicode.Scalar(c))) }
        return describe(i)
    }

    // MARK: Numbers and dates

    private func digitAt(_ i: Int) -> Bool { i < b.count && TOMLParser.isDigit(b[i]) }

    private mutating func parseNumberOrDateTime() throws(TOMLError) -> TOMLValue {
        if digitAt(p) && digitAt(p + 1) && digitAt(p + 2) && digitAt(p + 3) && p + 4 < b.count && b[p + 4] == 0x2D {
            return .datetime(try parseDateTime())
        }
        if digitAt(p) && digitAt(p + 1) && p + 2 < b.count && b[p + 2] == 0x3A {
            return .datetime(try parseDateTime())
        }
        return try parseNumber()
    }

    /// Parses exactly one date/time literal from `bytes` (used by `TOMLDateTime(parsing:)`).
    /// Read as 1.0: these are RFC 3339 texts (in strings), where seconds are required.
    static func parseStandaloneDateTime(_ bytes: [UInt8]) throws(TOMLError) -> TOMLDateTime {
        var parser = TOMLParser(bytes: bytes, spec: .v1_0, limits: .default)
        let dt = try parser.parseDateTime()
        guard parser.p == bytes.count else { throw parser.error("unexpected text after the date/time", at: parser.p) }
        return dt
    }

    /// Reads exactly `count` digits as an integer.
    private mutating func fixedDigits(_ count: Int, _ what: String) throws(TOMLError) -> Int {
        var v = 0
        for k in 0..<count {
            guard digitAt(p + k) else {
                throw error("invalid date/time: expected \(count) digits for the \(what), found \(describe(p + k))", at: p + k)
            }
            v = v * 10 + Int(b[p + k] - 0x30)
        }
        p += count
        return v
    }

    private mutating func expectByte(_ c: UInt8, _ what: String) throws(TOMLError) {
        guard p < b.count && b[p] == c else {
            throw error("invalid date/time: expected \(what), found \(describe(p))", at: p)
        }
        p += 1
    }

    private mutating func parseDateTime() throws(TOMLError) -> TOMLDateTime {
        let start = p
        var dt = TOMLDateTime(kind: .localTime)
        var hasDate = false
        if digitAt(p + 2) { // YYYY-
            hasDate = true
            dt.year = try fixedDigits(4, "year")
            try expectByte(0x2D, "'-' after the year")
            dt.month = try fixedDigits(2, "month")
            try expectByte(0x2D, "'-' after the month")
            dt.day = try fixedDigits(2, "day")
            guard (1...12).contains(dt.month) else {
                throw error("invalid date: month \(dt.month) is not in 1...12", at: start)
            }
            let dim = TOMLDateTime.daysInMonth(year: dt.year, month: dt.month)
            guard dt.day >= 1 && dt.day <= dim else {
                throw error("invalid date: day \(dt.day) is not in 1...\(dim) for \(TOMLDateTime(kind: .localDate, year: dt.year, month: dt.month, day: 1).rfc3339.prefix(7))", at: start)
            }
            dt.kind = .localDate
            // A time follows after 'T', 't', or a single space followed by "HH:".
            if p < b.count && (b[p] == 0x54 || b[p] == 0x74) {
                p += 1
            } else if p < b.count && b[p] == 0x20 && digitAt(p + 1) && digitAt(p + 2) && p + 3 < b.count && b[p + 3] == 0x3A {
                p += 1
            } else {
                return dt
            }
        }
        let timeStart = p
        dt.hour = try fixedDigits(2, "hour")
        try expectByte(0x3A, "':' after the hour")
        dt.minute = try fixedDigits(2, "minute")
        let hasSeconds = !v11 || (p < b.count && b[p] == 0x3A)
        if hasSeconds {
            try expectByte(0x3A, "':' after the minute (seconds are required)")
            dt.second = try fixedDigits(2, "second")
        } else {
            dt.second = 0 // seconds are optional in 1.1 (and then no fraction may follow)
        }
        if hasSeconds && p < b.count && b[p] == 0x2E {
            p += 1
            let fracStart = p
            while digitAt(p) { p += 1 }
            guard p > fracStart else {
                throw error("invalid time: expected digits after the decimal point, found \(describe(p))", at: p)
            }
            dt.fraction = String(decoding: b[fracStart..<p], as: UTF8.self)
        }
        guard dt.hour <= 23 else { throw error("invalid time: hour \(dt.hour) is not in 0...23", at: timeStart) }
        guard dt.minute <= 59 else { throw error("invalid time: minute \(dt.minute) is not in 0...59", at: timeStart) }
        guard dt.second <= 60 else { throw error("invalid time: second \(dt.second) is not in 0...60", at: timeStart) }
        guard hasDate else { return dt }
        dt.kind = .localDateTime
        guard p < b.count else { return dt }
        switch b[p] {
        case 0x5A, 0x7A: // Z z
            p += 1
            dt.kind = .offsetDateTime
            dt.offsetMinutes = 0
        case 0x2B, 0x2D: // + -
            let offStart = p
            let sign = b[p] == 0x2D ? -1 : 1
            p += 1
            let h = try fixedDigits(2, "offset hour")
            try expectByte(0x3A, "':' in the offset")
            let m = try fixedDigits(2, "offset minute")
            guard h <= 23 && m <= 59 else {
                throw error("invalid offset: \(String(decoding: b[offStart..<p], as: UTF8.self)) is out of range", at: offStart)
            }
            dt.kind = .offsetDateTime
            dt.offsetMinutes = sign * (h * 60 + m)
        default:
            break
        }
        return dt
    }

    private mutating func parseNumber() throws(TOMLError) -> TOMLValue {
        let start = p
        var end = p
        while end < b.count {
            let c = b[end]
            let isTokenByte = TOMLParser.isDigit(c) || (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A)
                || c == 0x5F || c == 0x2E || c == 0x2B || c == 0x2D
            guard isTokenByte else { break }
            end += 1
        }
        let t = b[start..<end]
        p = end
        let token = String(decoding: t, as: UTF8.self)
        func bad(_ why: String) -> TOMLError { error("invalid number '\(token)': \(why)", at: start) }

        var i = start
        var negative = false
        var signed = false
        if i < end && (b[i] == 0x2B || b[i] == 0x2D) {
            negative = b[i] == 0x2D
            signed = true
            i += 1
        }
        let rest = String(decoding: b[i..<end], as: UTF8.self)
        if rest == "inf" { return .float(negative ? -.infinity : .infinity) }
        if rest == "nan" { return .float(negative ? -.nan : .nan) }
        guard i < end else { throw bad("expected digits") }

        // Hexadecimal, octal, binary.
        if b[i] == 0x30 && i + 1 < end && (b[i + 1] == 0x78 || b[i + 1] == 0x6F || b[i + 1] == 0x62) {
            if signed { throw bad("a sign is not allowed on hexadecimal, octal or binary integers") }
            let radix: UInt64 = b[i + 1] == 0x78 ? 16 : (b[i + 1] == 0x6F ? 8 : 2)
            var j = i + 2
            var value: UInt64 = 0
            var lastWasDigit = false
            guard j < end else { throw bad("expected digits after the prefix") }
            while j < end {
                let c = b[j]
                if c == 0x5F {
                    guard lastWasDigit && j + 1 < end else { throw bad("an underscore must be between two digits") }
                    lastWasDigit = false
                    j += 1
                    continue
                }
                let d: UInt64
                if TOMLParser.isHexDigit(c) {
                    d = UInt64(TOMLParser.hexValue(c))
                } else {
                    throw bad("\(describe(j)) is not a digit")
                }
                guard d < radix else { throw bad("\(describe(j)) is not a base-\(radix) digit") }
                let (m, o1) = value.multipliedReportingOverflow(by: radix)
                let (s, o2) = m.addingReportingOverflow(d)
                guard !o1 && !o2 && s <= UInt64(Int64.max) else { throw bad("out of range for a 64-bit integer") }
                value = s
                lastWasDigit = true
                j += 1
            }
            return .integer(Int64(value))
        }

        // Decimal integer or float.
        var j = i
        var mantissa: [UInt8] = negative ? [0x2D] : []
        func scanDigits(_ what: String) throws(TOMLError) -> Int {
            var count = 0
            var lastWasDigit = false
            while j < end {
                let c = b[j]
                if TOMLParser.isDigit(c) {
                    mantissa.append(c)
                    count += 1
                    lastWasDigit = true
                } else if c == 0x5F {
                    guard lastWasDigit && j + 1 < end && TOMLParser.isDigit(b[j + 1]) else {
                        throw bad("an underscore must be between two digits")
                    }
                    lastWasDigit = false
                } else {
                    break
                }
                j += 1
            }
            guard count > 0 else {
                throw bad("expected digits in the \(what), found \(describe(j))")
            }
            return count
        }
        let intDigits = try scanDigits("integer part")
        if intDigits > 1 && b[i] == 0x30 { throw bad("leading zeros are not allowed") }
        var isFloat = false
        if j < end && b[j] == 0x2E {
            isFloat = true
            mantissa.append(0x2E)
            j += 1
            _ = try scanDigits("fraction")
        }
        if j < end && (b[j] == 0x65 || b[j] == 0x45) {
            isFloat = true
            mantissa.append(0x65)
            j += 1
            if j < end && (b[j] == 0x2B || b[j] == 0x2D) {
                mantissa.append(b[j])
                j += 1
            }
            _ = try scanDigits("exponent")
        }
        guard j == end else { throw bad("unexpected \(describe(j))") }
        if isFloat {
            guard let d = Double(String(decoding: mantissa, as: UTF8.self)) else { throw bad("not a valid float") }
            return .float(d)
        }
        // Integer with range check (magnitude up to 2^63 for negatives).
        var magnitude: UInt64 = 0
        for c in mantissa where c != 0x2D {
            let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(c - 0x30))
            guard !o1 && !o2 else { throw bad("out of range for a 64-bit integer") }
            magnitude = s
        }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { throw bad("out of range for a 64-bit integer") }
            return .integer(magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude))
        }
        guard magnitude <= UInt64(Int64.max) else { throw bad("out of range for a 64-bit integer") }
        return .integer(Int64(magnitude))
    }
}
