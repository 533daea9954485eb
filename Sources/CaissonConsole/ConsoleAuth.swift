import CaissonApp
import CaissonCore
import COpenSSL
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Who may use the console: a one-time login token printed at start, or the console password
/// (scrypt-hashed in the state directory); sessions as HttpOnly SameSite=Strict cookies with an
/// expiry and a CSRF token each, kept in a 0600 file so that a console restart keeps them.
final class ConsoleAuth: @unchecked Sendable {
    static let cookieName = "caisson_session"
    static let sessionLifetime: Int64 = 8 * 3600
    static let tokenFile = "console-token"
    static let passwordFile = "console-password"
    static let sessionsFile = "console-sessions.json"

    struct Session: Codable, Sendable {
        var csrf: String
        var expires: Int64
        /// `token` or `password`, and from where it logged in.
        var method: String
        var peer: String
        /// A short, non-secret name for the audit log.
        var label: String
    }

    private struct State {
        var loginToken: String?
        /// Keyed by SHA-256 (hex) of the cookie value: the file never holds a usable cookie.
        var sessions: [String: Session] = [:]
        var failures: [String: [Int64]] = [:]
        var allFailures: [Int64] = []
    }

    let stateDir: String
    private let state: Mutex<State>
    let now: @Sendable () -> Int64

    init(stateDir: String, now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970) }) {
        self.stateDir = stateDir
        self.now = now
        var initial = State()
        initial.sessions = Self.loadSessions(stateDir: stateDir, now: now())
        self.state = Mutex(initial)
    }

    // MARK: Random and hashing

    /// Bytes from the system's cryptographic generator (getrandom).
    static func randomBytes(_ count: Int) -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    static func randomHex(_ bytes: Int) -> String { hex(randomBytes(bytes)) }

    static func sha256Hex(_ text: String) -> String {
        var h = SHA256()
        h.update(Array(text.utf8))
        return h.hex
    }

    /// Constant-time comparison of two strings' bytes.
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    // MARK: Token

    /// A fresh one-time login token (32 random bytes), also written 0600 to the state directory.
    func issueLoginToken() throws -> String {
        let token = Self.randomHex(32)
        try Self.writePrivate(stateDir + "/" + Self.tokenFile, Array((token + "\n").utf8))
        state.withLock { $0.loginToken = token }
        return token
    }

    /// Uses the login token: true once, then it is gone (file removed).
    func redeemLoginToken(_ token: String) -> Bool {
        let ok = state.withLock { s -> Bool in
            guard let t = s.loginToken, Self.equal(t, token) else { return false }
            s.loginToken = nil
            return true
        }
        if ok { unlink(stateDir + "/" + Self.tokenFile) }
        return ok
    }

    // MARK: Password

    static func passwordPath(_ stateDir: String) -> String { stateDir + "/" + passwordFile }

    static func passwordIsSet(stateDir: String) -> Bool {
        FileManager.default.fileExists(atPath: passwordPath(stateDir))
    }

    /// scrypt(N = 2^15, r = 8, p = 1), 16-byte salt, 32-byte key: `scrypt$15$8$1$salt$key` (hex).
    static func hashPassword(_ password: String, salt: [UInt8]? = nil) -> String? {
        let salt = salt ?? randomBytes(16)
        guard let key = scrypt(password, salt: salt, nLog2: 15, r: 8, p: 1) else { return nil }
        return "scrypt$15$8$1$\(hex(salt))$\(hex(key))"
    }

    static func verifyPassword(_ password: String, against stored: String) -> Bool {
        let parts = stored.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "$").map(String.init)
        guard parts.count == 6, parts[0] == "scrypt", let n = UInt64(parts[1]), let r = UInt64(parts[2]), let p = UInt64(parts[3]),
              n >= 10, n <= 20, r >= 1, r <= 32, p >= 1, p <= 4,
              let salt = unhex(parts[4]), let expected = unhex(parts[5]), expected.count == 32,
              let key = scrypt(password, salt: salt, nLog2: n, r: r, p: p) else { return false }
        var diff: UInt8 = 0
        for i in 0..<32 { diff |= key[i] ^ expected[i] }
        return diff == 0
    }

    static func scrypt(_ password: String, salt: [UInt8], nLog2: UInt64, r: UInt64, p: UInt64) -> [UInt8]? {
        var out = [UInt8](repeating: 0, count: 32)
        let pass = Array(password.utf8).map { CChar(bitPattern: $0) } + [0]
        let count = pass.count - 1
        let rc = out.withUnsafeMutableBufferPointer { o in
            pass.withUnsafeBufferPointer { pw in
                salt.withUnsafeBufferPointer { s in
                    EVP_PBE_scrypt(pw.baseAddress, count, s.baseAddress, s.count, UInt64(1) << nLog2, r, p,
                                   128 * r * (UInt64(1) << nLog2) * p + (8 << 20), o.baseAddress, 32)
                }
            }
        }
        ERR_clear_error()
        return rc == 1 ? out : nil
    }

    static func setPassword(_ password: String, stateDir: String) throws {
        guard password.count >= 8 else {
            throw CaissonError("console.password_too_short", "the console password must have at least 8 characters")
        }
        guard let hash = hashPassword(password) else {
            throw CaissonError("console.password_failed", "could not hash the password (libcrypto scrypt failed)")
        }
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        try writePrivate(passwordPath(stateDir), Array((hash + "\n").utf8))
    }

    /// Too many wrong passwords from this peer (5 in 5 minutes) or from everyone (20 in a minute).
    func isRateLimited(peer: String) -> Bool {
        let t = now()
        return state.withLock { s in
            s.failures[peer] = (s.failures[peer] ?? []).filter { t - $0 < 300 }
            s.allFailures = s.allFailures.filter { t - $0 < 60 }
            return (s.failures[peer]?.count ?? 0) >= 5 || s.allFailures.count >= 20
        }
    }

    func recordFailure(peer: String) {
        let t = now()
        state.withLock { s in
            s.failures[peer, default: []].append(t)
            s.allFailures.append(t)
            if s.failures.count > 1000 { s.failures.removeAll() }
        }
    }

    /// Checks a password login (the caller has checked the rate limit).
    func checkPassword(_ password: String) -> Bool {
        guard let stored = try? String(contentsOfFile: Self.passwordPath(stateDir), encoding: .utf8) else { return false }
        return Self.verifyPassword(password, against: stored)
    }

    // MARK: Sessions

    /// A new session: the cookie value to set and its record.
    func createSession(method: String, peer: String) -> (cookie: String, session: Session) {
        let cookie = Self.randomHex(32)
        let session = Session(csrf: Self.randomHex(32), expires: now() + Self.sessionLifetime, method: method, peer: peer,
                              label: String(Self.sha256Hex(cookie).prefix(8)))
        let snapshot = state.withLock { s -> [String: Session] in
            s.sessions[Self.sha256Hex(cookie)] = session
            return s.sessions
        }
        saveSessions(snapshot)
        return (cookie, session)
    }

    func session(cookie: String?) -> Session? {
        guard let cookie, !cookie.isEmpty, cookie.utf8.count <= 128 else { return nil }
        let key = Self.sha256Hex(cookie)
        let t = now()
        return state.withLock { s in
            guard let session = s.sessions[key] else { return nil }
            guard session.expires > t else {
                s.sessions[key] = nil
                return nil
            }
            return session
        }
    }

    func endSession(cookie: String?) {
        guard let cookie else { return }
        let snapshot = state.withLock { s -> [String: Session] in
            s.sessions[Self.sha256Hex(cookie)] = nil
            return s.sessions
        }
        saveSessions(snapshot)
    }

    private func saveSessions(_ sessions: [String: Session]) {
        let t = now()
        let live = sessions.filter { $0.value.expires > t }
        guard let data = try? JSONEncoder().encode(live) else { return }
        try? Self.writePrivate(stateDir + "/" + Self.sessionsFile, Array(data))
    }

    private static func loadSessions(stateDir: String, now: Int64) -> [String: Session] {
        guard let data = FileManager.default.contents(atPath: stateDir + "/" + sessionsFile),
              let sessions = try? JSONDecoder().decode([String: Session].self, from: data) else { return [:] }
        return sessions.filter { $0.value.expires > now }
    }

    // MARK: Files

    /// Writes a file readable by its owner only, from the first byte, atomically (`SecretFile`,
    /// the one writer of Caisson's secrets).
    static func writePrivate(_ path: String, _ bytes: [UInt8]) throws {
        try SecretFile.write(path, bytes, mode: 0o600, replace: true, failureCode: "console.write_failed")
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func unhex(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0, chars.count <= 256 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < chars.count {
            guard let v = UInt8(String(decoding: chars[i..<i + 2], as: UTF8.self), radix: 16) else { return nil }
            out.append(v)
            i += 2
        }
        return out
    }
}
