#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CaissonCore

enum FileSystem {
    static func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// `mkdir -p` with mode 0700 for every directory it creates. Existing directories are left
    /// as they are.
    static func makeDirectory(_ path: String, code: String = "store.open_failed") throws {
        guard !path.isEmpty else {
            throw CaissonError(code, "the state directory path is empty")
        }
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + component
            if mkdir(prefix, 0o700) == 0 { continue }
            let err = errno
            var st = stat()
            if err == EEXIST, stat(prefix, &st) == 0 {
                if (st.st_mode & S_IFMT) == S_IFDIR { continue }
                throw CaissonError(code, "cannot create the state directory \(path): \(prefix) exists "
                                       + "and is not a directory")
            }
            throw CaissonError(code, "cannot create the state directory \(path): \(errnoText(err))",
                               cause: "mkdir \(prefix)")
        }
    }

    static func joined(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}

/// The state directory is the device's memory: only its owner may write it, and Caisson never
/// follows a symbolic link inside it (a link there could make cleanup delete files elsewhere,
/// or the store write somewhere else).
public enum StateDirectory {
    /// Refuses a state directory that another user owns (`state.foreign_owner`) or that its
    /// group or everyone may write (`state.unsafe_permissions`). The path itself may be a link.
    public static func checkOwnership(_ path: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            let e = errno
            throw CaissonError("store.open_failed", "cannot examine the state directory \(path): \(FileSystem.errnoText(e))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw CaissonError("store.open_failed", "the state directory \(path) is not a directory")
        }
        if st.st_uid != geteuid() {
            throw CaissonError("state.foreign_owner",
                               "the state directory \(path) belongs to user \(st.st_uid), not to the user running Caisson "
                                   + "(\(geteuid())): that user could rewrite this device's history and downgrade floor. Use a "
                                   + "state directory of your own (chown it, or choose another with --state-dir or CAISSON_STATE_DIR).")
        }
        if st.st_mode & 0o022 != 0 {
            throw CaissonError("state.unsafe_permissions",
                               "the state directory \(path) may be written by its group or by everyone (mode "
                                   + String(st.st_mode & 0o7777, radix: 8) + "): anyone could rewrite this device's history and "
                                   + "downgrade floor. Run `chmod go-w \(path)` (Caisson creates it with mode 0700).")
        }
    }

    /// `<stateDir>/<name>`, a real directory: created (0700) when missing, refused when it is a
    /// symbolic link or not a directory (`state.unsafe_entry`).
    @discardableResult
    public static func subdirectory(_ stateDir: String, _ name: String) throws -> String {
        let path = FileSystem.joined(stateDir, name)
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            let e = errno
            throw CaissonError("state.unsafe_entry", "cannot create \(path): \(FileSystem.errnoText(e))")
        }
        var st = stat()
        guard lstat(path, &st) == 0 else {
            let e = errno
            throw CaissonError("state.unsafe_entry", "cannot examine \(path): \(FileSystem.errnoText(e))")
        }
        if (st.st_mode & S_IFMT) == S_IFLNK {
            throw CaissonError("state.unsafe_entry", "\(path) is a symbolic link; Caisson never follows links inside its state directory. Remove the link (the state directory itself may be one).")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            throw CaissonError("state.unsafe_entry", "\(path) is not a directory")
        }
        return path
    }

    /// The names in `dir` (a directory inside the state directory, opened without following a
    /// link), sorted; `state.unsafe_entry` when `dir` is a link.
    public static func entries(_ dir: String) throws -> [String] {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let e = errno
            if e == ENOENT { return [] }
            if e == ELOOP || e == ENOTDIR {
                throw CaissonError("state.unsafe_entry", "\(dir) is a symbolic link or not a directory; Caisson never follows links inside its state directory")
            }
            throw CaissonError("state.unsafe_entry", "cannot open \(dir): \(FileSystem.errnoText(e))")
        }
        guard let d = fdopendir(fd) else {
            close(fd)
            throw CaissonError("state.unsafe_entry", "cannot list \(dir)")
        }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Removes the file `name` of `dir` (never following a link: a link is removed itself).
    /// Returns errno (0: removed or already gone).
    public static func removeFile(_ dir: String, _ name: String) -> Int32 {
        let fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return errno == ENOENT ? 0 : errno }
        defer { close(fd) }
        if unlinkat(fd, name, 0) == 0 || errno == ENOENT { return 0 }
        return errno
    }
}
