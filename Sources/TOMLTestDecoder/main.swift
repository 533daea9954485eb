// toml-test-decoder [--spec 1.0.0|1.1.0]: TOML on stdin → toml-test tagged JSON on stdout (exit 0),
// or the error on stderr (exit 1). See https://github.com/toml-lang/toml-test for the interface.
// The document is read as TOML 1.1 unless `--spec 1.0.0` says otherwise.
import CaissonTOML

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func readAllStdin() -> [UInt8]? {
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
        if n > 0 {
            data.append(contentsOf: buffer[0..<n])
        } else if n == 0 {
            return data
        } else if errno != EINTR {
            return nil
        }
    }
}

func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n > 0 {
            offset += n
        } else if n < 0 && errno == EINTR {
            continue
        } else {
            return
        }
    }
}

func jsonString(_ s: String, into out: inout [UInt8]) {
    out.append(0x22)
    for c in s.utf8 {
        switch c {
        case 0x22: out.append(contentsOf: [0x5C, 0x22])
        case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
        case 0x0A: out.append(contentsOf: [0x5C, 0x6E])
        case 0x0D: out.append(contentsOf: [0x5C, 0x72])
        case 0x09: out.append(contentsOf: [0x5C, 0x74])
        case 0x00..<0x20, 0x7F:
            let hex = Array("0123456789abcdef".utf8)
            out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 0xF)]])
        default: out.append(c)
        }
    }
    out.append(0x22)
}

func leaf(_ type: String, _ value: String, into out: inout [UInt8]) {
    out.append(contentsOf: Array("{\"type\":\"\(type)\",\"value\":".utf8))
    jsonString(value, into: &out)
    out.append(0x7D)
}

func floatText(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    return "\(d)"  // Swift prints the shortest text that round-trips
}

func emit(_ value: TOMLValue, into out: inout [UInt8]) {
    switch value {
    case .string(let s): leaf("string", s, into: &out)
    case .integer(let i): leaf("integer", String(i), into: &out)
    case .float(let d): leaf("float", floatText(d), into: &out)
    case .boolean(let b): leaf("bool", b ? "true" : "false", into: &out)
    case .datetime(let dt): leaf(dt.kind.tomlTestType, dt.rfc3339, into: &out)
    case .array(let items):
        out.append(0x5B)
        for (i, item) in items.enumerated() {
            if i > 0 { out.append(0x2C) }
            emit(item, into: &out)
        }
        out.append(0x5D)
    case .table(let t):
        emit(t, into: &out)
    }
}

func emit(_ table: TOMLTable, into out: inout [UInt8]) {
    out.append(0x7B)
    for (i, entry) in table.enumerated() {
        if i > 0 { out.append(0x2C) }
        jsonString(entry.key, into: &out)
        out.append(0x3A)
        emit(entry.value, into: &out)
    }
    out.append(0x7D)
}

var spec = TOMLSpec.latest
let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.count {
case 0: break
case 2 where arguments[0] == "--spec":
    guard let chosen = TOMLSpec(rawValue: arguments[1]) else {
        writeAll(2, Array("error: unknown TOML version '\(arguments[1])' (1.0.0 or 1.1.0)\n".utf8))
        exit(2)
    }
    spec = chosen
default:
    writeAll(2, Array("usage: toml-test-decoder [--spec 1.0.0|1.1.0] < document.toml\n".utf8))
    exit(2)
}

guard let input = readAllStdin() else {
    writeAll(2, Array("error: cannot read standard input\n".utf8))
    exit(2)
}
do {
    let table = try TOML.parse(input, spec: spec)
    var out: [UInt8] = []
    out.reserveCapacity(input.count * 2)
    emit(table, into: &out)
    out.append(0x0A)
    writeAll(1, out)
    exit(0)
} catch {
    writeAll(2, Array("error: \(error)\n".utf8))
    exit(1)
}
