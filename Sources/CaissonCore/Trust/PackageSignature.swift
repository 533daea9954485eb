/// The signature check of a package (`manifest.toml.minisig` at the package root, a minisign
/// signature of the exact bytes of `manifest.toml`). The image is bound through the manifest's
/// `[image] sha256` and `[image] size`, which the validator checks against image.tar.
public enum PackageSignature {
    /// The root entry holding the signature.
    public static let entryName = "manifest.toml.minisig"

    /// What a verified signature established.
    public struct Verified: Equatable, Sendable {
        public var keyID: String
        public var trustedComment: String
        public var algorithm: MinisignSignature.Algorithm
    }

    /// Issues for the signature of `manifestBytes`:
    /// - `signature.missing`: `require_signature` and no signature entry;
    /// - `signature.malformed`: the entry is not a minisign signature (or too large to be one);
    /// - `signature.untrusted_key`: signed by a key the catalog does not trust;
    /// - `signature.invalid`: the signature or the global signature does not verify;
    /// - `signature.unbound_payload`: a valid signature over a manifest without both
    ///   `[image] sha256` and `[image] size` (it would not bind the image).
    /// `signaturePresent` says whether the package has the entry at all (its bytes may be nil
    /// when it was too large to keep). With no trusted keys and no requirement, a signature is
    /// not checked (older catalogs keep accepting signed packages, FORMATS §1).
    public static func check(manifestBytes: [UInt8], manifest: Manifest?, signaturePresent: Bool,
                             signatureBytes: [UInt8]?, trust: Catalog.Trust) -> (Verified?, [Issue]) {
        guard signaturePresent else {
            if trust.requireSignature {
                return (nil, [Issue("signature.missing",
                    "the catalog requires signed packages but the package has no \(entryName)")])
            }
            return (nil, [])
        }
        if trust.publicKeys.isEmpty && !trust.requireSignature { return (nil, []) }
        guard let signatureBytes else {
            return (nil, [Issue("signature.malformed", "\(entryName) is too large to be a minisign signature")])
        }
        var keys: [MinisignPublicKey] = []
        var issues: [Issue] = []
        for (i, text) in trust.publicKeys.enumerated() {
            do {
                keys.append(try MinisignPublicKey(parsing: text))
            } catch {
                issues.append(Issue("signature.untrusted_key", "trust.public_keys[\(i)] of the catalog is not a usable minisign public key: \(error.message)"))
            }
        }
        do {
            let sig = try Minisign.verify(manifestBytes, signatureFile: signatureBytes, trustedKeys: keys)
            // Only a good signature makes the remaining issues about unusable keys irrelevant.
            issues = []
            let verified = Verified(keyID: sig.keyID.description, trustedComment: sig.trustedComment, algorithm: sig.algorithm)
            if let manifest, manifest.image.sha256 == nil || manifest.image.size == nil {
                issues.append(Issue("signature.unbound_payload",
                    "manifest.toml is signed but does not declare both [image] sha256 and [image] size, so the signature does not cover image.tar"))
            }
            return (verified, issues)
        } catch {
            issues.append(error.issue)
            return (nil, issues)
        }
    }
}
