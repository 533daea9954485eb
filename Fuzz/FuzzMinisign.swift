// libFuzzer harness: the minisign parsers (signature, public key, secret key files) and
// verification of whatever parses against a fixed key. Built and run by scripts/fuzz.
import CaissonCore

let fuzzKey = try! MinisignPublicKey(parsing: "RWR8m2J+bhjCBaAAFs4/5pPD/5dgHu3i7ZrkHFT318um3r8U3oDoFnps")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let sig = try? MinisignSignature(parsing: bytes) {
        _ = sig.fileContents
        _ = try? sig.verify(Array("hello\n".utf8), with: fuzzKey)
        _ = try? sig.verify(Array("hello\n".utf8), with: MinisignPublicKey(keyID: sig.keyID, key: fuzzKey.key))
    }
    let text = String(decoding: bytes, as: UTF8.self)
    if let key = try? MinisignPublicKey(parsing: text) {
        _ = key.fileContents
    }
    if let secret = try? MinisignSecretKey(parsing: text) {
        _ = secret.fileContents()
    }
    _ = try? Minisign.verify(bytes, signatureFile: bytes, trustedKeys: [fuzzKey])
    return 0
}
