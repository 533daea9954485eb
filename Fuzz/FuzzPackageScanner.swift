// libFuzzer harness: the tar reader and the package scanner over arbitrary bytes (short reads
// exercised through MemoryByteSource's maxReadSize). Built and run by scripts/fuzz.
import CaissonCore

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    var limits = PackageScanLimits()
    limits.readBufferSize = 4096
    limits.maxExtendedHeaderSize = 64 * 1024
    limits.gzip = GzipLimits(maxRatio: 100, allowanceBytes: 1 << 20)  // bombs stop early: fast runs
    // The first byte picks a short-read size, so buffer-boundary paths get exercised too.
    let readSize = bytes.first.map { Int($0) * 7 + 1 } ?? .max
    let scanner = PackageScanner(limits: limits, wantImageDigest: { _ in true })
    _ = scanner.scan(MemoryByteSource(bytes, maxReadSize: readSize))
    // The bare tar reader: walk every entry and read every body.
    let reader = TarReader(MemoryByteSource(bytes, maxReadSize: readSize), options: .init(bufferSize: 1024, maxExtendedHeaderSize: 64 * 1024))
    var entries = 0
    while entries < 10_000 {
        do {
            guard (try reader.next()) != nil else { break }
            entries += 1
            _ = try reader.readWholeBody(limit: 1 << 16)
        } catch {
            break
        }
    }
    return 0
}
