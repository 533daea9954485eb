#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// The only file that makes socket syscalls. Every call retries on EINTR, the descriptor is
// non-blocking and close-on-exec, every wait goes through poll(2) with a deadline, and writes use
// MSG_NOSIGNAL so a peer that went away gives EPIPE rather than killing the process with SIGPIPE.

/// A point on the monotonic clock, in nanoseconds. Never the wall clock.
struct MonotonicInstant: Comparable, Sendable {
    var nanoseconds: UInt64

    static func now() -> MonotonicInstant {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return MonotonicInstant(nanoseconds: UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec))
    }

    func advanced(by duration: Duration) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: nanoseconds.addingClamped(duration.clampedNanoseconds))
    }

    static func < (lhs: MonotonicInstant, rhs: MonotonicInstant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
}

extension Duration {
    /// Non-negative nanoseconds, saturating.
    var clampedNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return UInt64.max }
        return whole.addingClamped(UInt64(max(0, attoseconds) / 1_000_000_000))
    }

    /// A short human rendering for messages: "30s", "1.5s", "250ms".
    var shortDescription: String {
        let ns = clampedNanoseconds
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns < 1_000_000_000 { return "\(ns / 1_000_000)ms" }
        let tenths = ns / 100_000_000
        return "\(tenths / 10).\(tenths % 10)s"
    }
}

extension UInt64 {
    func addingClamped(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}

/// Which deadline expired.
enum TimeoutKind: Sendable, Equatable {
    case connect, call, idle
}

/// The deadlines that bound one blocking socket operation: an absolute one for the whole call and
/// a sliding one that restarts whenever the operation has to wait (no progress for `idle`).
struct IODeadline: Sendable {
    var call: MonotonicInstant?
    var idle: Duration?
    /// Reported as this kind when `call` expires (`.connect` while connecting).
    var callKind: TimeoutKind = .call

    static let none = IODeadline(call: nil, idle: nil)
}

/// A failed socket operation, before it is given a meaning by the HTTP client.
enum SocketFailure: Error, Sendable, Equatable {
    case system(operation: String, errno: Int32)
    case timedOut(TimeoutKind)
    case pathTooLong(String)
}

/// A connected, non-blocking, close-on-exec `AF_UNIX` stream socket. Not thread-safe; closed on
/// deinit.
final class UnixSocket {
    private(set) var fd: Int32

    /// Adopts an already open descriptor (the test server's accepted connections).
    init(adopting fd: Int32) {
        self.fd = fd
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
        let fdFlags = fcntl(fd, F_GETFD)
        if fdFlags >= 0 { _ = fcntl(fd, F_SETFD, fdFlags | FD_CLOEXEC) }
    }

    deinit { close() }

    func close() {
        if fd >= 0 {
            _ = Glibc.close(fd)  // never retried on EINTR: on Linux the descriptor is gone anyway
            fd = -1
        }
    }

    /// Shuts down the sending side (the peer reads EOF), keeping the receiving side open.
    func shutdownWrite() {
        if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
    }

    /// Fills a `sockaddr_un` for `path`, or fails if the path does not fit `sun_path`.
    static func makeAddress(_ path: String) throws(SocketFailure) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity, !bytes.contains(0) else {
            throw .pathTooLong(path)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    static func newSocketDescriptor() throws(SocketFailure) -> Int32 {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let fd = Glibc.socket(AF_UNIX, type, 0)
        guard fd >= 0 else { throw .system(operation: "socket", errno: errno) }
        return fd
    }

    /// Connects to the unix socket at `path`, waiting at most until `deadline.call` (reported as
    /// `.connect` timeouts).
    static func connect(path: String, deadline: IODeadline) throws(SocketFailure) -> UnixSocket {
        var address = try makeAddress(path)
        let socket = UnixSocket(adopting: try newSocketDescriptor())
        var waitDeadline = deadline
        waitDeadline.callKind = .connect
        while true {
            let rc = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.connect(socket.fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            if rc == 0 { return socket }
            let error = errno
            switch error {
            case EINTR:
                continue
            case EISCONN:
                return socket
            case EINPROGRESS, EALREADY:
                try socket.wait(for: Int16(POLLOUT), deadline: waitDeadline)
                var soError: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                if getsockopt(socket.fd, SOL_SOCKET, SO_ERROR, &soError, &length) != 0 {
                    throw .system(operation: "connect", errno: errno)
                }
                if soError == 0 { return socket }
                throw .system(operation: "connect", errno: soError)
            case EAGAIN:
                // The listener's backlog is full: retry shortly, within the connect deadline.
                if let call = waitDeadline.call, call <= MonotonicInstant.now() { throw .timedOut(.connect) }
                _ = poll(nil, 0, 10)
            default:
                throw .system(operation: "connect", errno: error)
            }
        }
    }

    /// Connects over TCP to the numeric IPv4 or IPv6 `address` (no name resolution), waiting at
    /// most until `deadline.call` (reported as `.connect` timeouts). For health probes.
    static func connectTCP(address: String, port: Int, deadline: IODeadline) throws(SocketFailure) -> UnixSocket {
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        let isV6: Bool
        if inet_pton(AF_INET, address, &v4.sin_addr) == 1 {
            isV6 = false
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = in_port_t(UInt16(clamping: port).bigEndian)
        } else if inet_pton(AF_INET6, address, &v6.sin6_addr) == 1 {
            isV6 = true
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = in_port_t(UInt16(clamping: port).bigEndian)
        } else {
            throw .system(operation: "parse address", errno: EINVAL)
        }
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let fd = Glibc.socket(isV6 ? AF_INET6 : AF_INET, type, 0)
        guard fd >= 0 else { throw .system(operation: "socket", errno: errno) }
        let socket = UnixSocket(adopting: fd)
        var waitDeadline = deadline
        waitDeadline.callKind = .connect
        let rc: Int32 = isV6
            ? withUnsafePointer(to: &v6) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
            : withUnsafePointer(to: &v4) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc == 0 { return socket }
        let error = errno
        guard error == EINPROGRESS || error == EINTR else { throw .system(operation: "connect", errno: error) }
        // A non-blocking connect interrupted or in progress completes in the background: wait for it.
        try socket.wait(for: Int16(POLLOUT), deadline: waitDeadline)
        var soError: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length) != 0 { throw .system(operation: "connect", errno: errno) }
        if soError != 0 { throw .system(operation: "connect", errno: soError) }
        return socket
    }

    /// Writes all of `bytes`, waiting for the peer to drain its buffer as needed.
    func write(_ bytes: UnsafeRawBufferPointer, deadline: IODeadline) throws(SocketFailure) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.send(fd, base + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if n > 0 {
                offset += n
                continue
            }
            let error = n < 0 ? errno : EPIPE
            switch error {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: try wait(for: Int16(POLLOUT), deadline: deadline)
            default: throw .system(operation: "write", errno: error)
            }
        }
    }

    func write(_ bytes: [UInt8], deadline: IODeadline) throws(SocketFailure) {
        var failure: SocketFailure?
        bytes.withUnsafeBytes { raw in
            do throws(SocketFailure) { try write(raw, deadline: deadline) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Reads at most `buffer.count` bytes; returns 0 at end of stream.
    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: IODeadline) throws(SocketFailure) -> Int {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return 0 }
        while true {
            let n = Glibc.recv(fd, base, buffer.count, 0)
            if n >= 0 { return n }
            let error = errno
            switch error {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: try wait(for: Int16(POLLIN), deadline: deadline)
            default: throw .system(operation: "read", errno: error)
            }
        }
    }

    /// Blocks until `events` are ready (or the peer hung up / errored, which the next I/O reports).
    func wait(for events: Int16, deadline: IODeadline) throws(SocketFailure) {
        let idleDeadline = deadline.idle.map { MonotonicInstant.now().advanced(by: $0) }
        while true {
            // The nearest deadline and what it means.
            var target: (MonotonicInstant, TimeoutKind)?
            if let call = deadline.call { target = (call, deadline.callKind) }
            if let idle = idleDeadline, target == nil || idle < target!.0 { target = (idle, .idle) }
            var timeoutMs: Int32 = -1
            if let (instant, kind) = target {
                let now = MonotonicInstant.now()
                if instant <= now { throw .timedOut(kind) }
                let remaining = instant.nanoseconds - now.nanoseconds
                timeoutMs = Int32(clamping: (remaining + 999_999) / 1_000_000)
            }
            var descriptor = pollfd(fd: fd, events: events, revents: 0)
            let rc = poll(&descriptor, 1, timeoutMs)
            if rc > 0 { return }
            if rc == 0 { continue }  // re-evaluates the deadlines, throws when expired
            let error = errno
            if error == EINTR { continue }
            throw .system(operation: "poll", errno: error)
        }
    }
}

/// The text of an errno value.
func errnoDescription(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}
