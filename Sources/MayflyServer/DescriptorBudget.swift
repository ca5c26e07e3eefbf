public import Logging
public import MayflyCore

#if canImport(Glibc)
import Glibc
#endif

/// Fits the listeners' connection caps into the process's file descriptor limit, so a flood of
/// connections is turned away by `max_connections` before the process runs out of descriptors
/// (and SQLite, the audit log and PostgreSQL with it).
public enum DescriptorBudget {
    /// Descriptors kept for everything but client connections: SQLite, the audit file,
    /// PostgreSQL pools, the event loops, the listening sockets.
    public static let reserve = 256

    /// Raises the soft RLIMIT_NOFILE to the hard limit (as Go does for Vault) and returns the
    /// soft limit now in effect.
    public static func raiseLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return limit.rlim_cur >= rlim_t(Int.max) ? Int.max : Int(limit.rlim_cur)
    }

    /// Lowers every listener's `max_connections` by the same factor when their sum plus
    /// `reserve` exceeds `limit`. Returns what was done, for a warning, or nil when they fit.
    public static func fit(_ config: inout MayflyConfig, limit: Int) -> String? {
        let caps = config.unixListeners.map(\.maxConnections) + config.tcpListeners.map(\.maxConnections)
        let total = caps.reduce(0, +)
        let available = max(limit - reserve, caps.count)
        guard total > available else { return nil }
        func scaled(_ cap: Int) -> Int { max(1, cap * available / total) }
        for index in config.unixListeners.indices {
            config.unixListeners[index].maxConnections = scaled(config.unixListeners[index].maxConnections)
        }
        for index in config.tcpListeners.indices {
            config.tcpListeners[index].maxConnections = scaled(config.tcpListeners[index].maxConnections)
        }
        let lowered = config.unixListeners.map { "\($0.path): \($0.maxConnections)" }
            + config.tcpListeners.map { "\($0.host):\($0.port): \($0.maxConnections)" }
        return "the file descriptor limit (\(limit)) cannot hold the listeners' max_connections (\(total) in all) "
            + "plus \(reserve) for the store, the audit log and PostgreSQL; max_connections lowered to "
            + lowered.joined(separator: ", ") + ". Raise the limit (e.g. LimitNOFILE= in the systemd unit) to keep them."
    }

    /// `raiseLimit()` then `fit(_:limit:)`, logging a warning if the caps had to be lowered.
    public static func apply(to config: inout MayflyConfig, logger: Logger) {
        if let warning = fit(&config, limit: raiseLimit()) {
            logger.warning("\(warning)")
        }
    }
}
