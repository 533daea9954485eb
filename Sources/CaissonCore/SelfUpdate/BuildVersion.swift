/// The version this build of Caisson reports (`caisson --version`, `min_updater_version`, the
/// self-update's version floor).
///
/// It lives in a fixed-size slot of the executable's read-only data: the marker
/// `@(#)caisson-version-slot:`, the version, NUL padding, 96 bytes in all. `scripts/stamp-version`
/// rewrites the version inside a built executable without rebuilding it (release engineering: one
/// build, stamped per release; the self-update tests: a second "build" with another version in a
/// second). It is no switch at run time: no environment variable, file or option changes it, a
/// stamped executable has another SHA-256 (an updater package binds it), and a slot that does not
/// hold a SemVer version falls back to the compiled one.
public enum BuildVersion {
    /// The version compiled in.
    public static let compiled = "0.2.0"
    public static let slotLength = 96
    /// The marker's length. The marker itself is spelt only in `slot`: a second copy in the
    /// executable would make the stamp ambiguous.
    static let markerLength = 25

    /// The slot. One literal (so its bytes sit together in the executable), `public var` (so the
    /// optimiser cannot fold its value into the code that reads it).
    nonisolated(unsafe) public static var slot = "@(#)caisson-version-slot:0.2.0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"

    /// The version the slot holds, or the compiled one.
    public static let current: String = {
        let bytes = Array(slot.utf8)
        guard bytes.count == slotLength, bytes.starts(with: Array("@(#)caisson-version".utf8)),
              Array(bytes[19..<markerLength]) == Array("-slot:".utf8) else { return compiled }
        let body = bytes[markerLength...].prefix { $0 != 0 }
        let text = String(decoding: body, as: UTF8.self)
        return SemVer(text) != nil ? text : compiled
    }()
}
