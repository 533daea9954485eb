// libFuzzer harness: the TOML parser (1.0 and 1.1), and the manifest and catalog readers on top of it.
// Built and run by scripts/fuzz.
import CaissonCore
import CaissonTOML

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    for spec in TOMLSpec.allCases {
        _ = try? TOML.parse(bytes, spec: spec, limits: TOMLLimits(maxDepth: 64, maxInputBytes: 1 << 20))
    }
    _ = Manifest.parse(bytes)
    _ = try? Catalog.parse(bytes, path: "/fuzz/services.toml")
    return 0
}
