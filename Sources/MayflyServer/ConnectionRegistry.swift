import Logging
import NIOCore
import Synchronization

/// The open connections of one listener, capped at its `max_connections`.
///
/// A connection is *idle* (nginx: "reusable") while it has no request in flight and no bytes
/// of a request head pending. When a new connection arrives at the cap, the connection idle the
/// longest is closed to make room; when none is idle, the new connection is refused. Each
/// connection's `ConnectionGuard` reports its idle and busy turns here, under one lock shared
/// by the event loops, so an evicted connection never starts a request.
final class ConnectionRegistry: Sendable {
    typealias ID = Int

    private struct Entry {
        let channel: any Channel
        /// Since when the connection has been idle; nil while busy.
        var idleSince: NIODeadline?
    }

    private struct State {
        var entries: [ID: Entry] = [:]
        var nextID: ID = 0
        var lastWarning: NIODeadline?
    }

    let maxConnections: Int
    private let logger: Logger
    private let state = Mutex(State())

    init(maxConnections: Int, logger: Logger) {
        self.maxConnections = maxConnections
        self.logger = logger
    }

    /// Registers a new, idle connection; at the cap, closes the longest-idle one for it. Returns
    /// nil when every connection is busy: the caller closes the new one.
    func admit(_ channel: any Channel, now: NIODeadline) -> ID? {
        let (id, evicted, warn): (ID?, (any Channel)?, Bool) = state.withLock { state in
            var evicted: (any Channel)?
            if state.entries.count >= maxConnections {
                // O(n) at the cap only; n is the listener's max_connections.
                var oldest: (id: ID, since: NIODeadline)?
                for (id, entry) in state.entries {
                    if let since = entry.idleSince, since < oldest?.since ?? .distantFuture { oldest = (id, since) }
                }
                guard let oldest else {
                    let warn = state.lastWarning.map { now - $0 >= .seconds(60) } ?? true
                    if warn { state.lastWarning = now }
                    return (nil, nil, warn)
                }
                evicted = state.entries.removeValue(forKey: oldest.id)?.channel
            }
            let id = state.nextID
            state.nextID += 1
            state.entries[id] = Entry(channel: channel, idleSince: now)
            return (id, evicted, false)
        }
        if let evicted {
            logger.debug("max_connections reached: closing the longest-idle connection for a new one",
                         metadata: ["max_connections": "\(maxConnections)"])
            evicted.close(promise: nil)
        }
        if id == nil {
            logger.log(level: warn ? .warning : .debug,
                       "max_connections reached and no connection is idle: refusing new connections",
                       metadata: ["max_connections": "\(maxConnections)"])
        }
        return id
    }

    /// The connection starts a request. False when it was evicted meanwhile: it must close.
    func markBusy(_ id: ID) -> Bool {
        state.withLock { state in
            guard state.entries[id] != nil else { return false }
            state.entries[id]?.idleSince = nil
            return true
        }
    }

    /// The connection has nothing in flight any more.
    func markIdle(_ id: ID, since: NIODeadline) {
        state.withLock { $0.entries[id]?.idleSince = since }
    }

    /// The connection closed.
    func remove(_ id: ID) {
        _ = state.withLock { $0.entries.removeValue(forKey: id) }
    }

    /// Connections open now (for tests and metrics).
    var count: Int { state.withLock { $0.entries.count } }
}
