import NIOPosix

/// A small bounded pool of connections to one database. At most `maxConnections` are open;
/// further callers wait in FIFO order. Broken connections are discarded, not reused.
///
/// The pool owns one thread per connection for libpq's blocking calls, so that a slow
/// statement never holds up Swift's cooperative pool or another connection.
public actor PGPool {
    /// What new connections are opened with.
    public private(set) var config: PGConnectionConfig
    public nonisolated let maxConnections: Int
    private let threadPool: NIOThreadPool
    private var idle: [PGConnection] = []
    private var open = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var closed = false
    /// While the login's password is being changed: the one to try when `config`'s fails.
    private var nextPassword: String?

    public init(config: PGConnectionConfig, maxConnections: Int) {
        self.config = config
        self.maxConnections = max(1, maxConnections)
        // One more thread than connections, for the short-lived connections to the cluster's
        // other databases (`withConnection(toDatabase:)`).
        threadPool = NIOThreadPool(numberOfThreads: self.maxConnections + 1)
        threadPool.start()
    }

    deinit {
        threadPool.shutdownGracefully { _ in }
    }

    /// Runs `body` with a pooled connection.
    public func withConnection<T: Sendable>(_ body: @Sendable (PGConnection) async throws -> T) async throws -> T {
        let connection = try await checkout()
        do {
            let result = try await body(connection)
            await checkin(connection)
            return result
        } catch {
            await checkin(connection)
            throw error
        }
    }

    /// Runs `body` in one session of a pooled connection (one thread hop for the whole block).
    public func withSession<T: Sendable>(_ body: @escaping @Sendable (PGSession) throws -> T) async throws -> T {
        try await withConnection { try await $0.withSession(body) }
    }

    /// Runs `body` with a short-lived connection to another database of the same cluster
    /// (same login and TLS settings), closed afterwards; counts against the pool's limit.
    public func withConnection<T: Sendable>(
        toDatabase database: String, _ body: @Sendable (PGConnection) async throws -> T
    ) async throws -> T {
        if database == config.database { return try await withConnection(body) }
        try await reserve()
        var other = config
        other.database = database
        let connection: PGConnection
        do {
            connection = try await connect(other)
        } catch {
            release()
            throw error
        }
        do {
            let result = try await body(connection)
            await connection.close()
            release()
            return result
        } catch {
            await connection.close()
            release()
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

    private func checkout() async throws -> PGConnection {
        while true {
            guard !closed else { throw PGError(.closed, message: "pool closed") }
            if let connection = idle.popLast() { return connection }
            if open < maxConnections {
                open += 1
                do {
                    return try await connect(config)
                } catch {
                    release()
                    throw error
                }
            }
            await withCheckedContinuation { waiters.append($0) }
        }
    }

    /// Waits for room under the limit and takes it (without an idle connection).
    private func reserve() async throws {
        while true {
            guard !closed else { throw PGError(.closed, message: "pool closed") }
            if open < maxConnections {
                open += 1
                return
            }
            if let connection = idle.popLast() {
                // Trade an idle connection for the room it holds.
                await connection.close()
                return
            }
            await withCheckedContinuation { waiters.append($0) }
        }
    }

    private func release() {
        open -= 1
        wakeOne()
    }

    private func checkin(_ connection: PGConnection) async {
        if !closed, connection.isHealthy {
            idle.append(connection)
            wakeOne()
        } else {
            await connection.close()
            release()
        }
    }

    private func wakeOne() {
        if !waiters.isEmpty { waiters.removeFirst().resume() }
    }

    /// Closes idle connections; later checkouts fail.
    public func close() async {
        closed = true
        let connections = idle
        idle = []
        open -= connections.count
        for connection in connections { await connection.close() }
        for waiter in waiters { waiter.resume() }
        waiters = []
    }
}
