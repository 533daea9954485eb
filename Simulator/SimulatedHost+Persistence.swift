import CaissonCore
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `--host sim` keeps the simulated daemon in a JSON file between CLI runs.
extension SimulatedHost {
    /// Larger state files are refused rather than read.
    public static let maxStateFileBytes = 64 << 20

    /// The state as JSON with sorted keys (deterministic bytes).
    public func encodedState() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(snapshot))
        } catch {
            throw CaissonError("sim.state_encode_failed", "Could not encode the simulated host's state.",
                               cause: String(describing: error))
        }
    }

    /// Writes the state atomically: a temporary file in the same folder, fsync, rename, fsync of
    /// the folder. A crash leaves either the old file or the new one, never a torn one.
    public func save(to path: String) throws {
        let bytes = try encodedState()
        let dir: String
        if let slash = path.lastIndex(of: "/") {
            dir = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            dir = "."
        }
        let tmp = path + ".tmp-\(getpid())"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw Self.ioError("sim.state_write_failed", "create", tmp) }
        var written = 0
        let ok: Bool = bytes.withUnsafeBytes { buf in
            while written < buf.count {
                let n = write(fd, buf.baseAddress! + written, buf.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                written += n
            }
            return true
        }
        if !ok || fsync(fd) != 0 {
            let err = Self.ioError("sim.state_write_failed", "write", tmp)
            close(fd)
            unlink(tmp)
            throw err
        }
        guard close(fd) == 0 else {
            let err = Self.ioError("sim.state_write_failed", "close", tmp)
            unlink(tmp)
            throw err
        }
        guard rename(tmp, path) == 0 else {
            let err = Self.ioError("sim.state_write_failed", "rename", path)
            unlink(tmp)
            throw err
        }
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }

    /// Reads a state written by `save(to:)`. Errors: `sim.state_read_failed` (missing, unreadable,
    /// too large) and `sim.state_invalid` (not a state file of a format we know).
    public static func load(from path: String, recordTrace: Bool = true) throws -> SimulatedHost {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw ioError("sim.state_read_failed", "open", path) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw ioError("sim.state_read_failed", "stat", path) }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw CaissonError("sim.state_read_failed", "The simulated host state \(path) is not a regular file.")
        }
        guard st.st_size <= maxStateFileBytes else {
            throw CaissonError("sim.state_read_failed",
                               "The simulated host state \(path) is \(st.st_size) bytes, more than the \(maxStateFileBytes) allowed.")
        }
        var bytes = [UInt8]()
        bytes.reserveCapacity(Int(st.st_size))
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError("sim.state_read_failed", "read", path)
            }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
            if bytes.count > maxStateFileBytes {
                throw CaissonError("sim.state_read_failed", "The simulated host state \(path) grew past \(maxStateFileBytes) bytes while being read.")
            }
        }
        return try SimulatedHost(encodedState: bytes, recordTrace: recordTrace, source: path)
    }

    /// A host from `encodedState()` bytes.
    public convenience init(encodedState bytes: [UInt8], recordTrace: Bool = true, source: String = "state") throws {
        var state: SimState
        do {
            state = try JSONDecoder().decode(SimState.self, from: Data(bytes))
        } catch {
            throw CaissonError("sim.state_invalid", "The simulated host state \(source) is not valid JSON of the expected shape.",
                               cause: String(describing: error))
        }
        guard state.format == SimState.currentFormat else {
            throw CaissonError("sim.state_invalid", "The simulated host state \(source) has format \(state.format); this build reads format \(SimState.currentFormat).")
        }
        // Saved before an operation was added (operations are only ever appended): none of it yet.
        if state.operationCounts.count < SimOperation.allCases.count {
            state.operationCounts += Array(repeating: 0, count: SimOperation.allCases.count - state.operationCounts.count)
        }
        if var swarm = state.swarm, swarm.activeSites.count < SimOperation.allCases.count {
            swarm.activeSites += Array(repeating: [], count: SimOperation.allCases.count - swarm.activeSites.count)
            state.swarm = swarm
        }
        guard state.operationCounts.count == SimOperation.allCases.count, state.nowMillis >= 0,
              state.names.count == state.containers.count,
              state.swarm.map({ $0.activeSites.count == SimOperation.allCases.count }) ?? true
        else {
            throw CaissonError("sim.state_invalid", "The simulated host state \(source) is inconsistent (counters or fault sites).")
        }
        if let swarm = state.swarm {
            for sites in swarm.activeSites where sites.contains(where: { $0 < 0 || $0 >= swarm.config.kinds.count }) {
                throw CaissonError("sim.state_invalid", "The simulated host state \(source) names a fault kind that does not exist.")
            }
        }
        for (id, c) in state.containers where c.id != id || state.names[c.name] != id {
            throw CaissonError("sim.state_invalid", "The simulated host state \(source) has an inconsistent container \(id).")
        }
        self.init(state: state, recordTrace: recordTrace)
    }

    static func ioError(_ code: String, _ what: String, _ path: String) -> CaissonError {
        let e = errno
        let reason = String(cString: strerror(e))
        return CaissonError(code, "Could not \(what) \(path) for the simulated host state.", cause: "\(reason) (errno \(e))")
    }
}
