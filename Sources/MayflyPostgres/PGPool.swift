import NIOPosix

/// A small bounded pool of connections to one cluster: to its database, and (for revocation's
/// `REASSIGN OWNED`) to the cluster's other databases. At most `maxConnections` are open,
/// whatever database they are to; further callers wait in FIFO order. An idle connection is
/// kept for reuse, and closed to make room when a caller needs a connection to another
/// database and the pool is full. One to another database is closed after `otherDatabaseIdle`
/// unused, so that it serves a run of revocation batches but never holds up a `CREATE
/// DATABASE` from its template or a `DROP DATABASE` (PostgreSQL waits 5 s for other sessions).
/// Broken connections are discarded, not reused.
///
/// The pool owns one thread per connection for libpq's blocking calls, so that a slow
/// statement never holds up Swift's cooperative pool or another connection.
public actor PGPool {
    /// What new connections are opened with.
    public private(set) var config: PGConnectionConfig
    public nonisolated let maxConnections: Int
    private let threadPool: NIOThreadPool
    /// Idle connections and the database each is connected to, oldest first.
    private var idle: [(database: String, connection: PGConnection, since: ContinuousClock.Instant)] = []
    /// How long an idle connection to another database than `config.database` is kept.
    public static let otherDatabaseIdle = Duration.seconds(1)
    private var open = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var closed = false
    /// While the login's password is being changed: the one to try when `config`'s fails.
    private var nextPassword: String?

    public init(config: PGConnectionConfig, maxConnections: Int) {
        self.config = config
        self.maxConnections = max(1, maxConnections)
        // One more thread than connections: a connection being closed to make room for another
        // may still hold one while its successor connects.
        threadPool = NIOThreadPool(numberOfThreads: self.maxConnections + 1)
        threadPool.start()
    }

    deinit {
        threadPool.shutdownGracefully { _ in }
    }

    /// Runs `body` with a pooled connection.
    public func withConnection<T: Sendable>(_ body: @Sendable (PGConnection) async throws -> T) async throws -> T {
        try await withConnection(toDatabase: config.database, body)
    }

    /// Runs `body` in one session of a pooled connection (one thread hop for the whole block).
    public func withSession<T: Sendable>(_ body: @escaping @Sendable (PGSession) throws -> T) async throws -> T {
        try await withConnection { try await $0.withSession(body) }
    }

    /// Runs `body` with a pooled connection to `database` of the same cluster (same login and
    /// TLS settings); it counts against the pool's limit like any other.
    public func withConnection<T: Sendable>(
        toDatabase database: String, _ body: @Sendable (PGConnection) async throws -> T
    ) async throws -> T {
        let connection = try await checkout(database)
        do {
            let result = try await body(connection)
            await checkin(connection, database)
            return result
        } catch {
            await checkin(connection, database)
            throw error
        }
    }

    /// Opens later connections with `password` (after the login's password changed); the
    /// connections already open stay authenticated and in use.
    public func setPassword(_ password: String) {
        config.password = password
        nextPassword = nil
    }

    /// The login's password is about to become `password`: until `setPassword`, a connection
    /// the current password cannot open is tried with it, so no request fails in between.
    public func expectPassword(_ password: String) {
        nextPassword = password
    }

    /// Connects with `config`; when that fails, with the passwords the pool has learnt since
    /// (a change that finished while this attempt ran, or one under way).
    private func connect(_ config: PGConnectionConfig) async throws -> PGConnection {
        var tried = [config.password]
        var attempt = config
        while true {
            do {
                return try await PGConnection.connect(attempt, threadPool: threadPool)
            } catch {
                guard let untried = [self.config.password, nextPassword].compactMap({ $0 }).first(where: { !tried.contains($0) })
                else { throw error }
                tried.append(untried)
                attempt.password = untried
            }
        }
    }

    /// Number of connections currently open (idle or in use).
    public var openConnections: Int { open }

    /// An idle connection to `database`, else a new one: under the limit, or in the room of the
    /// oldest idle connection to another database (closed for it), else after waiting.
    private func checkout(_ database: String) async throws -> PGConnection {
        while true {
            guard !closed else { throw PGError(.closed, message: "pool closed") }
            if let index = idle.lastIndex(where: { $0.database == database }) {
                return idle.remove(at: index).connection
            }
            if open < maxConnections || !idle.isEmpty {
                if open < maxConnections {
                    open += 1
                } else {
                    await idle.removeFirst().connection.close()
                }
                var target = config
                target.database = database
                do {
                    return try await connect(target)
                } catch {
                    release()
                    throw error
                }
            }
            await withCheckedContinuation { waiters.append($0) }
        }
    }

    private func release() {
        open -= 1
        wakeOne()
    }

    private func checkin(_ connection: PGConnection, _ database: String) async {
        if !closed, connection.isHealthy {
            idle.append((database, connection, .now))
            if database != config.database {
                Task {
                    try? await Task.sleep(for: Self.otherDatabaseIdle)
                    await self.closeIdleOtherDatabases()
                }
            }
            wakeOne()
        } else {
            await connection.close()
            release()
        }
    }

    private func wakeOne() {
        if !waiters.isEmpty { waiters.removeFirst().resume() }
    }

    /// Closes the connections to other databases idle for `otherDatabaseIdle` or longer.
    private func closeIdleOtherDatabases() async {
        let now = ContinuousClock.now
        let (stale, kept) = (idle.filter { $0.database != config.database && now - $0.since >= Self.otherDatabaseIdle },
                             idle.filter { $0.database == config.database || now - $0.since < Self.otherDatabaseIdle })
        guard !stale.isEmpty else { return }
        idle = kept
        for entry in stale {
            await entry.connection.close()
            release()
        }
    }

    /// Closes idle connections; later checkouts fail.
    public func close() async {
        closed = true
        let connections = idle
        idle = []
        open -= connections.count
        for (_, connection, _) in connections { await connection.close() }
        for waiter in waiters { waiter.resume() }
        waiters = []
    }
}
