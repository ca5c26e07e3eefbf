import Hummingbird
import HummingbirdTLS
import Logging
import MayflyCore
import NIOSSL
import ServiceLifecycle

/// HA: the listener at `cluster_addr` that takes requests standbys forward. Its TLS needs the
/// cluster's certificate, which lives in the barrier: it opens once this node is unsealed (and
/// a leader has made the certificate), and admits only clients that present that certificate.
/// When the node seals it closes, with the forwarder's connections (both hold the cluster's
/// key), and it opens again once the node is unsealed. At shutdown it also closes the
/// forwarder's connections.
struct ClusterListenerService: Service {
    let broker: Broker
    let config: HAConfig
    let forwarder: ClusterForwarder
    let logger: Logger

    func run() async throws {
        defer { Task { [forwarder] in await forwarder.shutdown() } }
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            let certificate: ClusterCertificate? = await cancelWhenGracefulShutdown { await waitForCertificate() }
            guard let certificate else { return }
            let tls: TLSConfiguration
            do {
                defer { certificate.wipe() }  // the TLS configuration holds the key now
                tls = try certificate.serverConfiguration()
            }
            try await serveUntilSealed(tls)
            // Sealed: the listener's TLS and the forwarder's client held the key; both are gone.
            await forwarder.shutdown()
            if await broker.seal.isSealed { logger.notice("cluster listener closed: this node is sealed") }
        }
    }

    /// Serves forwarded requests until this node seals (polled ten times a second) or shuts down.
    private func serveUntilSealed(_ tls: TLSConfiguration) async throws {
        let responder = MiddlewareResponder(
            middleware: ForwardedIdentityMiddleware(),
            next: VaultResponder(broker: broker, maxBodySize: broker.config.maxRequestSize, logger: logger, forwarder: nil))
        let logger = logger, config = config, broker = broker
        let application = Application(
            responder: responder,
            server: .vault(tls: tls,
                           limits: ListenerLimits(readHeaderTimeout: .seconds(10), idleTimeout: .seconds(300),
                                                  tlsHandshakeTimeout: .seconds(10), maxConnections: 4096),
                           logger: logger),
            configuration: .init(address: .hostname(config.clusterHost, port: config.clusterPort), serverName: "mayfly",
                                 backlog: MayflyHTTPServer.backlog),
            onServerRunning: { _ in logger.notice("cluster listener up", metadata: ["address": "\(config.clusterAddress)"]) },
            logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await application.run() }
            group.addTask {
                while await !broker.seal.isSealed { try await Task.sleep(for: .milliseconds(100)) }
            }
            _ = try await group.next()
            group.cancelAll()
        }
    }

    /// The cluster certificate, once this node is unsealed and a leader has made it (checked
    /// ten times a second: standbys can forward to this node only once its listener is up).
    private func waitForCertificate() async -> ClusterCertificate? {
        var reported = false
        while !Task.isCancelled {
            do {
                if let certificate = try await ClusterCertificate.load(broker) { return certificate }
            } catch {
                if !reported { logger.warning("cannot load the cluster certificate yet", metadata: ["error": "\(String(reflecting: error))"]) }
                reported = true
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }
}
