#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One decryption for validation and the upload (issue 15): validation decrypts `image.tar.age`
/// and, as it hands each authenticated piece of plaintext to its own inspection and hashing,
/// copies it here; the overlapped image upload reads it from here instead of decrypting the file
/// a second time.
///
/// A bounded ring (`capacity` bytes): memory stays flat whatever the image's size, and validation
/// waits while the upload is a full ring behind. Only authenticated plaintext ever enters it, and
/// its end is reported only once the producer closed it as complete (the final chunk
/// authenticated, nothing after it); what decides whether that end reaches Docker is still the
/// upload's gate, which the updater opens only after validation accepted the package (both
/// digests of the signed manifest matched). A producer that stops early (a damaged file,
/// validation stopping) closes it as failed, and the reader throws; a reader that goes away
/// (the upload failed or was vetoed) lets the producer go on alone (its writes are dropped).
public final class PlaintextFeed: @unchecked Sendable, Equatable {
    public enum FeedError: Error, Sendable, Equatable, CustomStringConvertible {
        case failed(String)
        public var description: String {
            switch self { case .failed(let why): return why }
        }
    }

    private enum State { case open, complete, failed(String) }

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let changed: UnsafeMutablePointer<pthread_cond_t>
    private let ring: UnsafeMutableRawBufferPointer
    // Guarded by `mutex`.
    private var written: Int64 = 0
    private var taken: Int64 = 0
    private var state = State.open
    private var readerGone = false

    public init(capacity: Int = 2 << 20) {
        mutex = .allocate(capacity: 1)
        changed = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(changed, nil)
        ring = .allocate(byteCount: max(capacity, 64 * 1024), alignment: 64)
    }

    deinit {
        pthread_cond_destroy(changed)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        changed.deallocate()
        ring.deallocate()
    }

    public static func == (a: PlaintextFeed, b: PlaintextFeed) -> Bool { a === b }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    // MARK: Producer (validation)

    /// Appends authenticated plaintext; waits while the ring is full. Dropped once the reader
    /// went away or the feed was closed.
    public func write(_ bytes: UnsafeRawBufferPointer) {
        var at = 0
        locked {
            while at < bytes.count {
                guard case .open = state, !readerGone else { return }
                let used = Int(written - taken)
                if used == ring.count {
                    pthread_cond_wait(changed, mutex)
                    continue
                }
                let head = Int(written % Int64(ring.count))
                let n = min(bytes.count - at, ring.count - used, ring.count - head)
                (ring.baseAddress! + head).copyMemory(from: bytes.baseAddress! + at, byteCount: n)
                at += n
                written += Int64(n)
                pthread_cond_broadcast(changed)
            }
        }
    }

    /// The producer's end: `complete` once the final chunk authenticated and nothing followed
    /// it; otherwise the reader fails with `reason`. Only the first close counts.
    public func close(complete: Bool, reason: String = "") {
        locked {
            guard case .open = state else { return }
            state = complete ? .complete : .failed(reason.isEmpty ? "the decryption stopped before the end of the image" : reason)
            pthread_cond_broadcast(changed)
        }
    }

    /// Whether the producer closed it as complete.
    public var isComplete: Bool {
        locked { if case .complete = state { return true } else { return false } }
    }

    /// Bytes the producer wrote (and the reader may read).
    public var writtenCount: Int64 { locked { written } }

    // MARK: Reader (the upload)

    /// Fills `buffer` with the next plaintext; 0 only at a complete end; throws when the producer
    /// closed it as failed (before or after what is left is read: a failed feed never ends cleanly).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(FeedError) -> Int {
        guard buffer.count > 0 else { return 0 }
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while true {
            if case .failed(let why) = state { throw .failed(why) }
            let used = Int(written - taken)
            if used > 0 {
                let tail = Int(taken % Int64(ring.count))
                let n = min(used, buffer.count, ring.count - tail)
                buffer.baseAddress!.copyMemory(from: ring.baseAddress! + tail, byteCount: n)
                taken += Int64(n)
                pthread_cond_broadcast(changed)
                return n
            }
            if case .complete = state { return 0 }
            pthread_cond_wait(changed, mutex)
        }
    }

    /// The reader is done (its upload ended, failed or was stopped): the producer no longer waits.
    public func readerFinished() {
        locked {
            readerGone = true
            pthread_cond_broadcast(changed)
        }
    }
}

/// A source that passes through `base` and copies every byte read into `feed` (validation's
/// authenticated plaintext, for the upload), then lets the reader of this source use it.
final class FeedingSource<Base: ByteSource>: ByteSource {
    var base: Base
    let feed: PlaintextFeed?

    init(_ base: Base, feed: PlaintextFeed?) {
        self.base = base
        self.feed = feed
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try base.read(into: buffer)
        if n > 0 { feed?.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
        return n
    }
}
