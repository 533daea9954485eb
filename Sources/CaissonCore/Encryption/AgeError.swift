/// Why an age file could not be decrypted (or encrypted). Each kind is one issue code; the
/// message says what exactly was wrong.
public struct AgeError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// No identity (key or passphrase) opens any recipient stanza.
        case noIdentity
        /// The header is malformed (version line, stanza rules, base64, lengths, a bad share, a
        /// file key of the wrong size, a missing or short payload nonce).
        case headerInvalid
        /// The header is well formed but its MAC does not verify under the file key.
        case headerMACInvalid
        /// A payload chunk does not authenticate, the payload is truncated (no final chunk), or
        /// anything follows the final chunk.
        case payloadInvalid
        /// Something valid that Caisson does not offer: armored (PEM) files, post-quantum recipients.
        case unsupported
        /// An scrypt stanza asks for more work than the configured limit.
        case workFactorTooHigh
        /// libcrypto failed (out of memory) or no randomness.
        case internalFailure
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The issue code of this kind.
    public var code: String {
        switch kind {
        case .noIdentity: return "encryption.no_identity"
        case .headerInvalid, .headerMACInvalid: return "encryption.header_invalid"
        case .payloadInvalid: return "encryption.payload_invalid"
        case .unsupported: return "encryption.unsupported"
        case .workFactorTooHigh: return "encryption.work_factor_too_high"
        case .internalFailure: return "encryption.failed"
        }
    }

    public var issue: Issue { Issue(code, message) }
    public var description: String { "[\(code)] \(message)" }
}

/// Plain sentences for the encryption issue codes: what the code means for the person at the
/// device and what to do. The CLI's messages carry the details; these are for a front end (the
/// console) that shows a code with an explanation.
public enum EncryptionIssueGuide {
    public static let explanations: [(code: String, sentence: String)] = [
        ("encryption.no_identity",
         "The package is encrypted, but not to this device: none of the device's keys can open it. Ask for a package encrypted to this device's age recipient (caisson key generate --age prints it)."),
        ("encryption.header_invalid",
         "The encrypted image's header is damaged or was tampered with, so the package cannot be trusted. Copy the package again from its source."),
        ("encryption.payload_invalid",
         "The encrypted image is damaged, cut short or was tampered with: part of it does not authenticate. Nothing was loaded; copy the package again from its source."),
        ("encryption.unsupported",
         "The package uses an encryption feature this Caisson does not offer (an armored file or a post-quantum recipient). Rebuild it with caisson package build --encrypt-to, or with age -r and no armor."),
        ("encryption.required",
         "This device only accepts encrypted packages, and this one is not encrypted. Ask for the package encrypted to this device's age recipient."),
        ("encryption.work_factor_too_high",
         "The package's passphrase protection asks for more computing work than this device allows, so it was not attempted. Re-encrypt it with a lower scrypt work factor, or to the device's key."),
        ("encryption.size_mismatch",
         "The encrypted image is not the size its signed manifest declares. Copy the package again from its source."),
        ("encryption.unbound",
         "The package holds an encrypted image that its manifest does not describe (no [encryption] section with its size and SHA-256), so it cannot be trusted. Rebuild it with caisson package build."),
        ("encryption.failed",
         "The encryption library failed (the device may be out of memory). Try again; if it persists, report it."),
    ]

    /// The sentence for `code`, if it is an encryption code.
    public static func explanation(for code: String) -> String? {
        explanations.first { $0.code == code }?.sentence
    }
}
