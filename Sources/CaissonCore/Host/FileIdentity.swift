#if canImport(Glibc)
import Glibc
#endif

/// What a file is right now, cheaply: device, inode, size and the modification and status-change
/// times. Any write to the file changes its `mtime` and `ctime` (and `ctime` cannot be set back by
/// an unprivileged process); replacing it under the same name changes the inode. So two equal
/// identities taken before validation and at the end of an image load mean the bytes Docker
/// received are the bytes that were validated.
public struct FileIdentity: Sendable, Equatable, Codable, CustomStringConvertible {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var modifiedNanos: Int64
    public var changedNanos: Int64

    public init(device: UInt64, inode: UInt64, size: Int64, modifiedNanos: Int64, changedNanos: Int64) {
        self.device = device
        self.inode = inode
        self.size = size
        self.modifiedNanos = modifiedNanos
        self.changedNanos = changedNanos
    }

    init(_ st: stat) {
        self.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                  modifiedNanos: Int64(st.st_mtim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_mtim.tv_nsec),
                  changedNanos: Int64(st.st_ctim.tv_sec) &* 1_000_000_000 &+ Int64(st.st_ctim.tv_nsec))
    }

    /// The identity of the file at `path` (following symlinks); nil when it cannot be stat'ed.
    public init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        self.init(st)
    }

    /// The identity of the open file `fd`; nil when it cannot be stat'ed.
    public init?(fileDescriptor fd: Int32) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        self.init(st)
    }

    /// The device of the filesystem holding `path` (a file or a directory).
    public static func device(of path: String) -> UInt64? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt64(st.st_dev)
    }

    public var description: String {
        "dev \(device) ino \(inode) size \(size) mtime \(modifiedNanos) ctime \(changedNanos)"
    }
}
