import Hummingbird
import HummingbirdTLS
import Logging
import MayflyCore
import ServiceLifecycle

/// HA: the listener at `cluster_addr` that takes requests standbys forward. Its TLS needs the
/// cluster's certificate, which lives in the barrier: it opens once this node is unsealed (and
/// a leader has made the certificate), and admits only clients that present that certificate.
/// At shutdown it also closes the forwarder's connections.
struct ClusterListenerService: Service {
    let broker: Broker
    let config: HAConfig
    let forwarder: ClusterForwarder
    let logger: Logger

    func run() async throws {
        defer { Task { [forwarder] in await forwarder.shutdown() } }
        let certificate: ClusterCertificate? = await cancelWhenGracefulShutdown { await waitForCertificate() }
        guard let certificate else { return }
        let responder = MiddlewareResponder(
            middleware: ForwardedIdentityMiddleware(),
            next: VaultResponder(broker: broker, maxBodySize: broker.config.maxRequestSize, logger: logger, forwarder: nil))
        let logger = logger, config = config
        let application = Application(
            responder: responder,
            server: .vault(tls: try certificate.serverConfiguration(),
                           limits: ListenerLimits(readHeaderTimeout: .seconds(10), idleTimeout: .seconds(300),
                                                  tlsHandshakeTimeout: .seconds(10), maxConnections: 4096),
                           logger: logger),
            configuration: .init(address: .hostname(config.clusterHost, port: config.clusterPort), serverName: "mayfly",
                                 backlog: MayflyHTTPServer.backlog),
            onServerRunning: { _ in logger.notice("cluster listener up", metadata: ["address": "\(config.clusterAddress)"]) },
            logger: logger)
        try await application.run()
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
