import CaissonCore
import CaissonHTTP

/// Splits Docker's attached-stream format (logs, exec output) into stdout/stderr lines, bounded.
///
/// Without a TTY the daemon multiplexes: each frame is an 8-byte header `[stream, 0, 0, 0, size
/// (big-endian UInt32)]` then `size` bytes; stream 1 is stdout, 2 stderr (0 stdin and 3, the
/// daemon's own error, are taken as stderr). With a TTY the bytes are raw (all stdout). Lines
/// are cut at `\n` per stream (a trailing `\r` dropped); only the last `limit` lines and bytes
/// are kept, so memory stays bounded whatever the container printed.
public struct DockerStreamDemuxer: Sendable {
    public let multiplexed: Bool
    public let limit: LogLimit
    private var header: [UInt8] = []
    private var frameStream: LogStream = .stdout
    private var frameRemaining = 0
    private var partial: [LogStream: [UInt8]] = [:]
    private var lines: [LogLine] = []
    private var keptBytes = 0
    /// Earlier output was dropped to stay within `limit`.
    public private(set) var truncated = false

    public init(multiplexed: Bool, limit: LogLimit) {
        self.multiplexed = multiplexed
        self.limit = limit
    }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        let n = bytes.count
        while i < n {
            if !multiplexed {
                take(.stdout, bytes, i, n - i)
                return
            }
            if frameRemaining == 0 {
                while header.count < 8 && i < n {
                    header.append(bytes[i])
                    i += 1
                }
                guard header.count == 8 else { return }
                frameStream = header[0] == 1 ? .stdout : .stderr
                frameRemaining = Int(header[4]) << 24 | Int(header[5]) << 16 | Int(header[6]) << 8 | Int(header[7])
                header.removeAll(keepingCapacity: true)
                continue
            }
            let m = min(frameRemaining, n - i)
            take(frameStream, bytes, i, m)
            frameRemaining -= m
            i += m
        }
    }

    public mutating func feed(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { feed($0) }
    }

    private mutating func take(_ stream: LogStream, _ bytes: UnsafeRawBufferPointer, _ from: Int, _ count: Int) {
        var start = from
        let end = from + count
        var p = partial[stream] ?? []
        for j in from..<end where bytes[j] == 0x0A {
            p.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<j]))
            emit(stream, &p)
            start = j + 1
        }
        p.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
        if p.count > limit.maxBytes {
            // A line longer than the whole budget keeps only its end.
            p.removeFirst(p.count - limit.maxBytes)
            truncated = true
        }
        partial[stream] = p
    }

    private mutating func emit(_ stream: LogStream, _ p: inout [UInt8]) {
        if p.last == 0x0D { p.removeLast() }
        let text = String(decoding: p, as: UTF8.self)
        p.removeAll(keepingCapacity: true)
        lines.append(LogLine(stream, text))
        keptBytes += text.utf8.count + 1
        // Keep at most twice the budget while reading; `finish` cuts to the limit.
        while lines.count > max(1, limit.maxLines) * 2 || keptBytes > max(1, limit.maxBytes) * 2 {
            keptBytes -= lines[0].text.utf8.count + 1
            lines.removeFirst()
            truncated = true
        }
    }

    /// The kept lines (partial last lines of each stream included, stdout first), within `limit`.
    public mutating func finish() -> LogTail {
        for stream in [LogStream.stdout, .stderr] {
            if var p = partial[stream], !p.isEmpty { emit(stream, &p) }
        }
        partial = [:]
        return LogTail.bounded(lines, limit: limit, truncated: truncated)
    }
}
