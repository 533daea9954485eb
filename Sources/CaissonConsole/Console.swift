import CaissonApp
import CaissonCore
import CaissonHTTP
import CaissonStore
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How the console is started.
public struct ConsoleConfig: Sendable {
    public var options: AppOptions
    /// A numeric IPv4/IPv6 address (default loopback).
    public var listenHost = "127.0.0.1"
    /// 0: any free port.
    public var port: UInt16 = 8484
    public var mediaRoots: [String] = MediaLibrary.defaultRoots
    /// Host names (without port) accepted besides IP literals and, on loopback, `localhost`.
    public var allowedHosts: [String] = []
    package var limits = HTTPServerLimits()
    /// Small request bodies (forms).
    public var maxFormBytes: UInt64 = 16 * 1024
    /// Uploads (packages): bounded by free disk first, and by this.
    public var maxUploadBytes: Int64 = 64 << 30
    /// On the simulator: real seconds per simulated second of waiting (the health check's
    /// countdown runs as on a device). `CAISSON_SIM_PACE` sets it; 0: no waiting.
    public var simPace: Double = 1

    public init(options: AppOptions) { self.options = options }

    public var isLoopback: Bool { Self.isLoopback(listenHost) }

    static func isLoopback(_ host: String) -> Bool { host.hasPrefix("127.") || host == "::1" }

    /// `ADDR:PORT`, `[V6]:PORT` or `PORT`.
    public static func parseListen(_ text: String) -> (host: String, port: UInt16)? {
        var host = "127.0.0.1"
        var portText = text
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = String(text[text.index(close, offsetBy: 2)...])
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
        }
        guard let port = UInt16(portText), !host.isEmpty, (try? StreamSocket.makeAddress(host: host, port: port)) != nil else { return nil }
        return (host, port)
    }
}

/// The Caisson console: a local web page over `CaissonApp`, served by `CaissonHTTP`'s server.
public final class Console: @unchecked Sendable {
    public let config: ConsoleConfig
    let auth: ConsoleAuth
    let media: MediaLibrary
    private var server: HTTPServer?
    private let stopped = Atomic<Bool>(false)
    private let current = Mutex<ConsoleOperation?>(nil)
    let clock = SystemClock()
    public private(set) var port: UInt16 = 0
    public private(set) var loginToken = ""
    /// Issue 14 item 5: a self-update replaced Caisson but this console cannot restart itself on
    /// it (the sentence every page shows).
    let handOverNotice = Mutex<String?>(nil)
    /// Set in a console that restarted after a self-update: that self-update's id (`restart`: a
    /// restart asked by SIGHUP). Its pages say so.
    public let handedOver = Mutex<String?>(nil)

    public init(config: ConsoleConfig) throws {
        var config = config
        if config.options.host == .sim { config.options.simPace = max(0, min(config.simPace, 10)) }
        self.config = config
        let app = Application(options: config.options)
        self.auth = ConsoleAuth(stateDir: app.stateDir)
        self.media = MediaLibrary(roots: config.mediaRoots, uploadDir: app.uploadDir)
    }

    /// Binds, prepares the state directory, and serves. Returns the URL to open (with the
    /// one-time login token).
    @discardableResult
    public func start() throws -> String {
        let app = Application(options: config.options)
        if !config.isLoopback && !ConsoleAuth.passwordIsSet(stateDir: app.stateDir) {
            throw CaissonError("console.password_required",
                               "listening on \(config.listenHost) (not loopback) needs a console password: set one with 'caisson console password' first")
        }
        _ = try app.catalog()
        try FileManager.default.createDirectory(atPath: app.stateDir, withIntermediateDirectories: true)
        _ = try app.store()
        // Finish what a crash left, when nobody else is working (never under someone's feet):
        // the recovery gate takes the state directory's lock itself (taking it here first made the
        // gate find it busy, by this very process, and recover nothing).
        _ = try? app.recoverIfNeeded()
        app.removePartialUploads()
        app.finish()
        let server: HTTPServer
        do {
            server = try HTTPServer(address: .tcp(host: config.listenHost, port: config.port), limits: config.limits) { [weak self] request in
                guard let self else { return .text(503, "stopping") }
                return self.handle(request)
            }
        } catch {
            throw CaissonError("console.listen_failed", "cannot listen on \(SocketAddress.tcp(host: config.listenHost, port: config.port)): \(error)")
        }
        if case .tcp(_, let p) = server.address { port = p }
        loginToken = try auth.issueLoginToken()
        self.server = server
        server.start()
        return "http://\(urlHost):\(port)/?token=\(loginToken)"
    }

    var urlHost: String {
        if config.listenHost == "0.0.0.0" { return "127.0.0.1" }
        if config.listenHost == "::" { return "[::1]" }
        return config.listenHost.contains(":") ? "[\(config.listenHost)]" : config.listenHost
    }

    var isStopping: Bool { stopped.load(ordering: .relaxed) }

    /// Stops serving. An operation waiting for its go-ahead is cancelled (nothing changes); one
    /// already going ahead is waited for up to `grace`, then left to the journal's recovery.
    public func stop(grace: Duration = .seconds(600)) {
        stopped.store(true, ordering: .relaxed)
        server?.stop(grace: .seconds(3))
        let deadline = Date().addingTimeInterval(Double(grace.components.seconds))
        while let op = current.withLock({ $0 }), !op.isFinished, Date() < deadline { usleep(50_000) }
    }

    /// Whether a console operation is still running (for a caller deciding how to stop).
    public var operationInProgress: Bool { current.withLock { $0.map { !$0.isFinished } ?? false } }

    var operation: ConsoleOperation? { current.withLock { $0 } }

    /// Starts `kind` unless one is already running (in this console). The store's lock refuses
    /// one running in another process when the operation begins.
    func begin(_ kind: ConsoleOperation.Kind, session: ConsoleAuth.Session, peer: String) -> ConsoleOperation? {
        let actor = Self.actor(session, peer: peer)
        let op = ConsoleOperation(kind: kind, options: config.options, actor: actor, sessionLabel: session.label,
                                  startedAt: clock.timestamp(), stopping: { [weak self] in self?.isStopping ?? true })
        let started = current.withLock { c -> Bool in
            if let running = c, !running.isFinished { return false }
            c = op
            return true
        }
        guard started else { return nil }
        op.onFinish = { [weak self] snap in self?.finished(snap) }
        let app = Application(options: config.options)
        switch kind {
        case .update(let name, let path, _):
            try? app.auditFrontEndAction("\(actor) asked to update from package \(name) (\(path))")
        case .rollback(let service):
            try? app.auditFrontEndAction("\(actor) asked to roll \(service) back to its previous version", service: service)
        }
        op.start()
        return op
    }

    private func finished(_ snap: ConsoleOperation.Snapshot) {
        let app = Application(options: config.options)
        let outcome = snap.result?.outcome ?? "unknown"
        try? app.auditFrontEndAction("\(snap.actor): operation ended (\(outcome))", service: snap.result?.attempt?.serviceName,
                                     updateID: snap.result?.attempt?.updateID)
        // An uploaded package is removed once an update has used it (kept if only cancelled or refused).
        if case .update(_, let path, true) = snap.kind, ["updated", "rolled_back", "needs_help", "failed"].contains(outcome) {
            unlink(path)
        }
    }

    static func actor(_ session: ConsoleAuth.Session, peer: String) -> String {
        "console session \(session.label) from \(peer)"
    }
}
