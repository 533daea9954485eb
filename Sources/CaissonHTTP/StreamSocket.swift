#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// The only file that makes socket syscalls. Every call retries on EINTR, the descriptor is
// non-blocking and close-on-exec, every wait goes through poll(2) with a deadline, and writes use
// MSG_NOSIGNAL so a peer that went away gives EPIPE rather than killing the process with SIGPIPE.

/// A point on the monotonic clock, in nanoseconds. Never the wall clock.
package struct MonotonicInstant: Comparable, Sendable {
    package var nanoseconds: UInt64

    package init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    package static func now() -> MonotonicInstant {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return MonotonicInstant(nanoseconds: UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec))
    }

    package func advanced(by duration: Duration) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: nanoseconds.addingClamped(duration.clampedNanoseconds))
    }

    package static func < (lhs: MonotonicInstant, rhs: MonotonicInstant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
}

extension Duration {
    /// Non-negative nanoseconds, saturating.
    package var clampedNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return UInt64.max }
        return whole.addingClamped(UInt64(max(0, attoseconds) / 1_000_000_000))
    }

    /// A short human rendering for messages: "30s", "1.5s", "250ms".
    package var shortDescription: String {
        let ns = clampedNanoseconds
        if ns % 1_000_000_000 == 0 { return "\(ns / 1_000_000_000)s" }
        if ns < 1_000_000_000 { return "\(ns / 1_000_000)ms" }
        let tenths = ns / 100_000_000
        return "\(tenths / 10).\(tenths % 10)s"
    }
}

extension UInt64 {
    package func addingClamped(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}

/// Which deadline expired.
package enum TimeoutKind: Sendable, Equatable {
    case connect, call, idle
}

/// The deadlines that bound one blocking socket operation: an absolute one for the whole call and
/// a sliding one that restarts whenever the operation has to wait (no progress for `idle`).
package struct IODeadline: Sendable {
    package var call: MonotonicInstant?
    package var idle: Duration?
    /// Reported as this kind when `call` expires (`.connect` while connecting).
    package var callKind: TimeoutKind = .call

    package init(call: MonotonicInstant?, idle: Duration?, callKind: TimeoutKind = .call) {
        self.call = call
        self.idle = idle
        self.callKind = callKind
    }

    package static let none = IODeadline(call: nil, idle: nil)
}

/// A failed socket operation, before it is given a meaning by the HTTP client.
package enum SocketFailure: Error, Sendable, Equatable {
    case system(operation: String, errno: Int32)
    case timedOut(TimeoutKind)
    case pathTooLong(String)
}

/// An address a stream socket connects to or listens on: a unix socket path, or an IPv4/IPv6
/// address and port.
package enum SocketAddress: Sendable, Equatable, CustomStringConvertible {
    case unix(String)
    case tcp(host: String, port: UInt16)

    package var description: String {
        switch self {
        case .unix(let path): return "unix://\(path)"
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

/// A connected (or listening), non-blocking, close-on-exec stream socket: `AF_UNIX`, `AF_INET` or
/// `AF_INET6`. Not thread-safe, except `shutdown()` (used to wake a thread blocked on it); closed
/// on deinit.
package final class StreamSocket {
    package private(set) var fd: Int32

    /// Adopts an already open descriptor (accepted connections).
    package init(adopting fd: Int32) {
        self.fd = fd
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
        let fdFlags = fcntl(fd, F_GETFD)
        if fdFlags >= 0 { _ = fcntl(fd, F_SETFD, fdFlags | FD_CLOEXEC) }
    }

    deinit { close() }

    package func close() {
        if fd >= 0 {
            _ = Glibc.close(fd)  // never retried on EINTR: on Linux the descriptor is gone anyway
            fd = -1
        }
    }

    /// Shuts down the sending side (the peer reads EOF), keeping the receiving side open.
    package func shutdownWrite() {
        if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
    }

    /// Shuts down both directions: a thread blocked in `poll` on this socket wakes up and its next
    /// read sees the end of the stream.
    package func shutdown() {
        if fd >= 0 { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }
    }

    /// Fills a `sockaddr_un` for `path`, or fails if the path does not fit `sun_path`.
    package static func makeAddress(_ path: String) throws(SocketFailure) -> sockaddr_un {
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

    package static func newSocketDescriptor(family: Int32 = AF_UNIX) throws(SocketFailure) -> Int32 {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let fd = Glibc.socket(family, type, 0)
        guard fd >= 0 else { throw .system(operation: "socket", errno: errno) }
        return fd
    }

    /// A numeric IPv4 or IPv6 address (no name lookup: a console or client names an address).
    package static func makeAddress(host: String, port: UInt16) throws(SocketFailure) -> SocketStorage {
        var storage = SocketStorage()
        if host.contains(":") {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &a.sin6_addr) == 1 else { throw .system(operation: "address \(host)", errno: EINVAL) }
            storage.set(a)
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &a.sin_addr) == 1 else { throw .system(operation: "address \(host)", errno: EINVAL) }
            storage.set(a)
        }
        return storage
    }

    /// Connects to the unix socket at `path`, waiting at most until `deadline.call` (reported as
    /// `.connect` timeouts).
    package static func connect(path: String, deadline: IODeadline) throws(SocketFailure) -> StreamSocket {
        var address = try makeAddress(path)
        let storage = withUnsafeBytes(of: &address) { SocketStorage(bytes: $0) }
        return try connect(storage, family: AF_UNIX, deadline: deadline)
    }

    /// Connects to `address`.
    package static func connect(_ address: SocketAddress, deadline: IODeadline) throws(SocketFailure) -> StreamSocket {
        switch address {
        case .unix(let path): return try connect(path: path, deadline: deadline)
        case .tcp(let host, let port):
            let storage = try makeAddress(host: host, port: port)
            return try connect(storage, family: storage.family, deadline: deadline)
        }
    }

    private static func connect(_ storage: SocketStorage, family: Int32, deadline: IODeadline) throws(SocketFailure) -> StreamSocket {
        let socket = StreamSocket(adopting: try newSocketDescriptor(family: family))
        var waitDeadline = deadline
        waitDeadline.callKind = .connect
        while true {
            let rc = storage.withSockaddr { Glibc.connect(socket.fd, $0, $1) }
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

    /// A listening socket bound to `address` (a unix path must not exist yet). TCP listeners set
    /// `SO_REUSEADDR`; port 0 binds any free port (see `localAddress`).
    package static func listen(_ address: SocketAddress, backlog: Int32 = 64) throws(SocketFailure) -> StreamSocket {
        let storage: SocketStorage
        switch address {
        case .unix(let path):
            var a = try makeAddress(path)
            storage = withUnsafeBytes(of: &a) { SocketStorage(bytes: $0) }
        case .tcp(let host, let port):
            storage = try makeAddress(host: host, port: port)
        }
        let socket = StreamSocket(adopting: try newSocketDescriptor(family: storage.family))
        if storage.family != AF_UNIX {
            var one: Int32 = 1
            _ = setsockopt(socket.fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        }
        guard storage.withSockaddr({ Glibc.bind(socket.fd, $0, $1) }) == 0 else {
            throw .system(operation: "bind \(address)", errno: errno)
        }
        guard Glibc.listen(socket.fd, backlog) == 0 else { throw .system(operation: "listen", errno: errno) }
        return socket
    }

    /// Waits (up to `timeoutMs`, -1 for ever) for a connection and accepts it with its peer
    /// address. `nil`: none arrived in time, or the listener was shut down.
    package func accept(timeoutMs: Int32) throws(SocketFailure) -> (StreamSocket, SocketAddress?)? {
        while true {
            var storage = SocketStorage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = storage.withMutableSockaddr { pointer in
                Glibc.accept(fd, pointer, &length)
            }
            if client >= 0 {
                storage.length = length
                return (StreamSocket(adopting: client), storage.address)
            }
            let error = errno
            switch error {
            case EINTR, ECONNABORTED:
                continue
            case EAGAIN, EWOULDBLOCK:
                var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let rc = poll(&descriptor, 1, timeoutMs)
                if rc == 0 { return nil }
                if rc < 0 {
                    if errno == EINTR { continue }
                    throw .system(operation: "poll", errno: errno)
                }
                if descriptor.revents & Int16(POLLIN) == 0 { return nil }  // shut down
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // Out of descriptors: wait a little rather than spin; the caller retries.
                _ = poll(nil, 0, 50)
                return nil
            default:
                throw .system(operation: "accept", errno: error)
            }
        }
    }

    /// The address this socket is bound to (the port actually chosen for port 0).
    package var localAddress: SocketAddress? {
        var storage = SocketStorage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        guard storage.withMutableSockaddr({ getsockname(fd, $0, &length) }) == 0 else { return nil }
        storage.length = length
        return storage.address
    }

    /// Writes all of `bytes`, waiting for the peer to drain its buffer as needed.
    package func write(_ bytes: UnsafeRawBufferPointer, deadline: IODeadline) throws(SocketFailure) {
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

    package func write(_ bytes: [UInt8], deadline: IODeadline) throws(SocketFailure) {
        var failure: SocketFailure?
        bytes.withUnsafeBytes { raw in
            do throws(SocketFailure) { try write(raw, deadline: deadline) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Reads at most `buffer.count` bytes; returns 0 at end of stream.
    package func read(into buffer: UnsafeMutableRawBufferPointer, deadline: IODeadline) throws(SocketFailure) -> Int {
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
    package func wait(for events: Int16, deadline: IODeadline) throws(SocketFailure) {
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

/// A `sockaddr_storage` with its length, for the address families above.
package struct SocketStorage {
    var storage = sockaddr_storage()
    var length = socklen_t(0)

    init() {}

    init(bytes: UnsafeRawBufferPointer) {
        withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes.prefix($0.count))) }
        length = socklen_t(bytes.count)
    }

    mutating func set<T>(_ address: T) {
        var a = address
        withUnsafeBytes(of: &a) { raw in
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: raw) }
        }
        length = socklen_t(MemoryLayout<T>.size)
    }

    var family: Int32 { Int32(storage.ss_family) }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafePointer(to: storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    mutating func withMutableSockaddr<R>(_ body: (UnsafeMutablePointer<sockaddr>) -> R) -> R {
        withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0) }
        }
    }

    /// The address as a value (unix path, or numeric host and port).
    var address: SocketAddress? {
        switch family {
        case AF_INET:
            return withUnsafeBytes(of: storage) { raw -> SocketAddress? in
                var a = raw.load(as: sockaddr_in.self)
                var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
                guard inet_ntop(AF_INET, &a.sin_addr, &text, socklen_t(text.count)) != nil else { return nil }
                return .tcp(host: String(cString: text), port: UInt16(bigEndian: a.sin_port))
            }
        case AF_INET6:
            return withUnsafeBytes(of: storage) { raw -> SocketAddress? in
                var a = raw.load(as: sockaddr_in6.self)
                var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
                guard inet_ntop(AF_INET6, &a.sin6_addr, &text, socklen_t(text.count)) != nil else { return nil }
                return .tcp(host: String(cString: text), port: UInt16(bigEndian: a.sin6_port))
            }
        case AF_UNIX:
            return withUnsafeBytes(of: storage) { raw -> SocketAddress? in
                let offset = MemoryLayout<sa_family_t>.size
                let pathBytes = raw[offset..<min(raw.count, Int(max(length, socklen_t(offset))))]
                let path = String(decoding: pathBytes.prefix { $0 != 0 }, as: UTF8.self)
                return .unix(path)
            }
        default:
            return nil
        }
    }
}

/// The text of an errno value.
package func errnoDescription(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}
