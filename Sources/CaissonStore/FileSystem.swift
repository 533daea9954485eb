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
