// libFuzzer harness: the image-archive inspector. The input is used as image.tar inside a
// well-formed package, so every byte reaches the docker save / OCI layout parser (JSON documents,
// layer hashing, links, compression magic; a gzip-compressed input is inflated first). Built and
// run by scripts/fuzz.
import CaissonCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let image = Array(UnsafeBufferPointer(start: data, count: size))
    var w = TarArchiveWriter()
    w.addFile("manifest.toml", Array("format_version = 1\n".utf8))
    w.addFile("image.tar", image)
    var limits = PackageScanLimits()
    limits.readBufferSize = 4096
    limits.maxImageEntries = 2_000
    limits.maxJSONFileSize = 256 * 1024
    limits.maxJSONTotalBytes = 512 * 1024
    limits.maxExtendedHeaderSize = 64 * 1024
    limits.gzip = GzipLimits(maxRatio: 100, allowanceBytes: 1 << 20)  // bombs stop early: fast runs
    let scan = PackageScanner(limits: limits, wantImageDigest: { _ in false }).scan(MemoryByteSource(w.finished()))
    if let facts = scan.image {
        _ = PackageValidator.checkImage(facts, manifest: Manifest.parse(Array(FuzzImage.manifest.utf8)).0!)
    }
    return 0
}

enum FuzzImage {
    static let manifest = """
    format_version = 1
    package_type = "service"
    package_version = "1.2.3"
    created_at = "2026-03-16T18:30:00Z"
    [target]
    service = "frontend"
    service_revision = "frontend-v1"
    platform = "linux/amd64"
    [image]
    reference = "example/frontend:1.2.3"
    """
}
