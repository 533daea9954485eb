// libFuzzer harness: the TOML parser, and the manifest and catalog readers on top of it.
// Built and run by scripts/fuzz.
import CaissonCore
import CaissonTOML

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = try? TOML.parse(bytes, limits: TOMLLimits(maxDepth: 64, maxInputBytes: 1 << 20))
    _ = Manifest.parse(bytes)
    _ = try? Catalog.parse(bytes, path: "/fuzz/services.toml")
    return 0
}
