import Foundation
import Hummingbird
import HummingbirdTLS
public import Logging
public import MayflyCore
import NIOCore
import NIOSSL
public import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// The HTTP side of the broker: one responder served on every configured listener (Unix
/// sockets and TLS), all in one service group that shuts down gracefully on SIGTERM/SIGINT.
public struct MayflyHTTPServer: Sendable {
    let broker: Broker
    let logger: Logger
    /// The config file, re-read on SIGHUP for its bindings (nil in dev mode).
    let configPath: String?

    public init(broker: Broker, logger: Logger, configPath: String? = nil) {
        self.broker = broker
        self.logger = logger
        self.configPath = configPath
    }

    /// Builds the applications for every listener; throws a `ServerError` naming what is wrong
    /// (unreadable certificate, world-writable socket directory, unknown group).
    public func applications(onRunning: @escaping @Sendable (String) async -> Void = { _ in })
        throws -> [any Service]
    {
        MetricsExporter.bootstrap()
        // HA: what a standby does not answer itself goes to the leader.
        let forwarder = broker.ha.map { _ in ClusterForwarder(broker: broker, maxBodySize: broker.config.maxRequestSize, logger: logger) }
        // Identity is resolved (once per connection) before the responder sees a request.
        let responder = MiddlewareResponder(
            middleware: PeerIdentityMiddleware(),
            next: VaultResponder(broker: broker, maxBodySize: broker.config.maxRequestSize, logger: logger, forwarder: forwarder))
        var services: [any Service] = []
        for listener in broker.config.unixListeners {
            let gid = try Self.prepareSocketDirectory(listener)
            try UnixSocketFile.claim(listener.path)
            let path = listener.path
            let mode = listener.mode
            let logger = self.logger
            let socket = UnixSocketFile(path: path)
            services.append(UnixListenerService(socket: socket, application: Application(
                responder: responder,
                server: .vault(tls: nil, limits: ListenerLimits(listener), logger: logger),
                configuration: .init(address: .unixDomainSocket(path: path), serverName: "mayfly", backlog: Self.backlog),
                onServerRunning: { _ in
                    socket.recordBound()
                    _ = chmod(path, mode_t(mode))
                    if let gid { _ = chown(path, uid_t.max, gid) }
                    logger.notice("listening", metadata: ["socket": "\(path)"])
                    await onRunning("unix://\(path)")
                },
                logger: logger)))
        }
        for listener in broker.config.tcpListeners {
            let tls = try Self.tlsConfiguration(listener)
            let logger = self.logger
            services.append(Application(
                responder: responder,
                server: .vault(tls: tls, limits: ListenerLimits(listener), logger: logger),
                configuration: .init(address: .hostname(listener.host, port: listener.port), serverName: "mayfly",
                                     backlog: Self.backlog),
                onServerRunning: { channel in
                    let port = channel.localAddress?.port ?? listener.port
                    logger.notice("listening", metadata: ["address": "https://\(listener.host):\(port)"])
                    await onRunning("https://\(listener.host):\(port)")
                },
                logger: logger))
        }
        if let ha = broker.ha, let forwarder {
            services.append(ClusterListenerService(broker: broker, config: ha.config, forwarder: forwarder, logger: logger))
        }
        services.append(SweeperService(broker: broker))
        services.append(ReloadService(broker: broker, configPath: configPath, logger: logger))
        // Last, so the first to stop on SIGTERM (a group stops in reverse order): the lock is
        // given up at once, and another node leads while this one finishes its requests.
        if let ha = broker.ha { services.append(ElectionService(ha: ha)) }
        return services
    }

    /// Serves `services` (from `applications()`) until SIGTERM or SIGINT; `onStarted` runs
    /// once beside them (dev mode uses it to initialise the store).
    public static func run(services: [any Service], logger: Logger,
                           onStarted: @escaping @Sendable () async -> Void = {}) async throws
    {
        let group = ServiceGroup(configuration: .init(
            services: services + [StartupTask(body: onStarted)], gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
    }
}

/// Serves one Unix listener; at exit removes its socket file if it is still this server's.
struct UnixListenerService: Service {
    let socket: UnixSocketFile
    let application: any Service

    func run() async throws {
        defer { socket.removeIfOurs() }
        try await application.run()
    }
}

/// HA: takes part in electing the leader until shutdown, then gives the lock up if it holds it.
struct ElectionService: Service {
    let ha: HACoordinator
    func run() async throws {
        await cancelWhenGracefulShutdown { await ha.run() }
    }
}

/// Revokes expired leases in the background until shutdown.
struct SweeperService: Service {
    let broker: Broker
    func run() async throws {
        await cancelWhenGracefulShutdown { await broker.runScheduler() }
    }
}

/// On SIGHUP: reloads the policies directory and the config file's bindings (anything
/// broken keeps the previous set and is logged with its file and line).
struct ReloadService: Service {
    let broker: Broker
    let configPath: String?
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await cancelWhenGracefulShutdown {
            for await _ in signals {
                broker.reloadPolicies()
                guard let configPath else { continue }
                do {
                    broker.replaceBindings(try ConfigLoader.load(path: configPath).bindings)
                } catch {
                    logger.error("config reload failed; bindings unchanged", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

/// Runs a closure once and then waits for shutdown, so a service group keeps running.
struct StartupTask: Service {
    let body: @Sendable () async -> Void
    func run() async throws {
        await body()
        try? await gracefulShutdown()
    }
}

extension MayflyHTTPServer {

    /// Refuses a Unix socket path that another server answers on; removes a stale socket there.
    /// `applications()` checks again just before binding; this lets startup fail before
    /// anything else is opened.
    public static func claimSocket(_ path: String) throws {
        try UnixSocketFile.claim(path)
    }

    /// Checks the socket's directory (created 0750 if missing; refused if world-writable)
    /// and resolves the owning group. Returns the gid to chown the socket to, if any.
    /// Checks what the listeners need from the host — socket directories and groups, TLS
    /// certificates and keys — so a mistake there stops the server before the store is opened
    /// and anything (databases, static roles) is applied.
    public static func checkListeners(_ config: MayflyConfig) throws {
        for listener in config.unixListeners { _ = try prepareSocketDirectory(listener) }
        for listener in config.tcpListeners { _ = try tlsConfiguration(listener) }
    }

    static func prepareSocketDirectory(_ listener: UnixListenerConfig) throws -> gid_t? {
        let directory = (listener.path as NSString).deletingLastPathComponent
        let dir = directory.isEmpty ? "." : directory
        let gid: gid_t?
        if let group = listener.group {
            guard let entry = getgrnam(group) else {
                throw ServerError("listener \"unix\": group \"\(group)\" does not exist")
            }
            gid = entry.pointee.gr_gid
        } else {
            gid = nil
        }
        if !FileManager.default.fileExists(atPath: dir) {
            defer {
                // A directory the server makes belongs to the clients' group too, or they
                // could not reach the socket inside it.
                if let gid { _ = chown(dir, uid_t.max, gid) }
            }
            do {
                try FileManager.default.createDirectory(
                    atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
            } catch {
                throw ServerError("cannot create the socket directory \(dir): \(error.localizedDescription)")
            }
        }
        // FileManager, not stat(2): `stat` is ambiguous between Glibc and NIO's C shims here.
        let resolved = URL(fileURLWithPath: dir).resolvingSymlinksInPath().path
        guard let mode = (try? FileManager.default.attributesOfItem(atPath: resolved))?[.posixPermissions] as? Int else {
            throw ServerError("cannot stat the socket directory \(dir)")
        }
        if mode & 0o002 != 0 {
            throw ServerError(
                "refusing to listen on \(listener.path): its directory \(dir) is world-writable; use a directory only the server and its clients' group can write (e.g. mode 0750)")
        }
        return gid
    }

    /// Pending connections the listeners queue: a storm of cold starts connects at once.
    static let backlog = 4096

    static func tlsConfiguration(_ listener: TCPListenerConfig) throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        let key: NIOSSLPrivateKey
        do {
            chain = try NIOSSLCertificate.fromPEMFile(listener.certFile)
        } catch {
            throw ServerError("cannot load tls_cert_file \(listener.certFile): \(error)")
        }
        do {
            key = try NIOSSLPrivateKey(file: listener.keyFile, format: .pem)
        } catch {
            throw ServerError("cannot load tls_key_file \(listener.keyFile): \(error)")
        }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = listener.minimumTLSVersion == "tls13" ? .tlsv13 : .tlsv12
        if let ca = listener.clientCAFile {
            guard FileManager.default.isReadableFile(atPath: ca) else {
                throw ServerError("cannot read tls_client_ca_file \(ca)")
            }
            tls.trustRoots = .file(ca)
            tls.certificateVerification = listener.requireClientCert ? .noHostnameVerification : .optionalVerification
        }
        return tls
    }
}
