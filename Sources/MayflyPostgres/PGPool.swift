/// A small bounded pool of connections to one database. At most `maxConnections` are open;
/// further callers wait in FIFO order. Broken connections are discarded, not reused.
public actor PGPool {
    public let config: PGConnectionConfig
    public let maxConnections: Int
    private var idle: [PGConnection] = []
    private var open = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var closed = false

    public init(config: PGConnectionConfig, maxConnections: Int) {
        self.config = config
        self.maxConnections = max(1, maxConnections)
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

    /// Number of connections currently open (idle or in use).
    public var openConnections: Int { open }

    private func checkout() async throws -> PGConnection {
        while true {
            guard !closed else { throw PGError(.closed, message: "pool closed") }
            if let connection = idle.popLast() { return connection }
            if open < maxConnections {
                open += 1
                do {
                    return try await PGConnection.connect(config)
                } catch {
                    open -= 1
                    wakeOne()
                    throw error
                }
            }
            await withCheckedContinuation { waiters.append($0) }
        }
    }

    private func checkin(_ connection: PGConnection) async {
        if !closed, await connection.isHealthy() {
            idle.append(connection)
        } else {
            open -= 1
            await connection.close()
        }
        wakeOne()
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
