import CoreMetrics
import MayflyCore
import Prometheus
import Synchronization

/// The Prometheus side of Mayfly's metrics: swift-metrics is bootstrapped once per process
/// with a Prometheus registry, and `sys/metrics?format=prometheus` renders it, after
/// refreshing the gauges that are read on demand (sealed state, leases by state).
enum MetricsExporter {
    static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped = Mutex(false)

    /// Installs the Prometheus factory as the process's metrics backend (idempotent).
    static func bootstrap() {
        bootstrapped.withLock { done in
            guard !done else { return }
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
            done = true
        }
    }

    /// The text exposition format.
    static func render(_ broker: Broker) async -> [UInt8] {
        let snapshot = await broker.metricsSnapshot()
        registry.makeGauge(name: "mayfly_sealed", labels: []).set(Double(snapshot.sealed ? 1 : 0))
        for (state, count) in snapshot.leases {
            registry.makeGauge(name: "mayfly_leases", labels: [("state", state)]).set(Double(count))
        }
        return registry.emitToBuffer()
    }

    /// A bounded label for a request path: the mount and its first segment for known mounts
    /// (`database/creds`, `secret/data`, `sys/leases`, `auth/approle`), never user-chosen names.
    static func route(_ path: String, status: Int) -> String {
        guard status != 404, status != 405, !path.isEmpty else { return "unknown" }
        let parts = path.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: true)
        guard let mount = parts.first, ["sys", "secret", "database", "auth"].contains(mount) else { return "unknown" }
        guard parts.count > 1 else { return String(mount) }
        let second = parts[1]
        guard second.utf8.count <= 32, second.allSatisfy({ $0.isLetter || $0 == "-" || $0 == "_" }) else { return String(mount) }
        return "\(mount)/\(second)"
    }
}
