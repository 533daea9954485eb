import Dispatch

/// Computes a SHA-256 on a background queue, one chunk at a time, while the caller keeps
/// working on the same (read-only) memory. The caller must not modify or free a submitted chunk
/// before `waitIdle()` returns (every `submit` waits for the previous chunk first).
///
/// Used to hash `image.tar` as a whole on the second core while the main thread parses it and
/// hashes its layers: both threads read the same buffer, nothing is copied.
public final class BackgroundHasher: @unchecked Sendable {
    // `sha` is touched only on `queue` (and by `finish` after `waitIdle`, which orders it after
    // the last block through the semaphore). `busy` is touched only by the owning thread.
    private var sha = SHA256()
    private let queue = DispatchQueue(label: "caisson.archive.sha256", qos: .userInitiated)
    private let done = DispatchSemaphore(value: 0)
    private var busy = false

    private struct Chunk: @unchecked Sendable { let bytes: UnsafeRawBufferPointer }

    public init() {}

    /// Starts hashing `bytes` (after the previous chunk is done) and returns at once.
    public func submit(_ bytes: UnsafeRawBufferPointer) {
        waitIdle()
        guard bytes.count > 0 else { return }
        busy = true
        let chunk = Chunk(bytes: bytes)
        queue.async {
            self.sha.update(chunk.bytes)
            self.done.signal()
        }
    }

    /// Returns once the last submitted chunk has been hashed.
    public func waitIdle() {
        if busy {
            done.wait()
            busy = false
        }
    }

    /// Waits for the last chunk and returns the digest of everything submitted.
    public func finish() -> SHA256Digest {
        waitIdle()
        return sha.finalizeDigest()
    }

    deinit { waitIdle() }
}

/// A source that passes through `base` and, when given a `BackgroundHasher`, hashes every byte
/// read on the hasher's queue. Contract: the memory given to `read(into:)` must stay untouched
/// until the next call to `read(into:)` or `finish()` (as `TarReader` with
/// `directReads: false` guarantees for its buffer).
final class HashingTeeSource<Base: ByteSource>: ByteSource {
    var base: Base
    private let hasher: BackgroundHasher?

    init(_ base: Base, hasher: BackgroundHasher?) {
        self.base = base
        self.hasher = hasher
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        hasher?.waitIdle()
        let n = try base.read(into: buffer)
        if n > 0 { hasher?.submit(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
        return n
    }

    /// Waits for the background hash and returns the digest, or nil without a hasher.
    func finish() -> SHA256Digest? {
        hasher?.finish()
    }

    /// Waits until no chunk is being hashed (before the memory read last is released).
    func quiesce() {
        hasher?.waitIdle()
    }
}
