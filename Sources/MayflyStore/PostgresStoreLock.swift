public import MayflyPostgres

/// One server per PostgreSQL store, as `StoreLock` is for a SQLite file: a session advisory
/// lock taken on a connection of its own and held for the life of the server, so a second
/// server on the same store (database and schema) fails at startup instead of sweeping and
/// scheduling beside the first. PostgreSQL drops the lock when the session ends, even after
/// kill -9 (once it notices the connection is gone).
public final class PostgresStoreLock: Sendable {
    private let connection: PGConnection
    public let schema: String

    private init(connection: PGConnection, schema: String) {
        self.connection = connection
        self.schema = schema
    }

    /// Takes the lock of the store in `schema`; throws `StorageError(.unavailable)` naming the
    /// store when another server holds it.
    public static func acquire(config: PGConnectionConfig, schema: String) async throws -> PostgresStoreLock {
        let connection: PGConnection
        do {
            connection = try await PGConnection.connect(config)
        } catch let error as PGError {
            throw StorageError(.unavailable, "cannot reach the PostgreSQL store: \(error.debugDescription)")
        }
        let key = "mayfly-store:" + schema
        let taken: Bool
        do {
            taken = try await connection.query("SELECT pg_try_advisory_lock(hashtext($1))", [key]).first?[0] == "t"
        } catch {
            await connection.close()
            throw StorageError(.unavailable, "cannot lock the PostgreSQL store: \(error)")
        }
        guard taken else {
            await connection.close()
            throw StorageError(.unavailable,
                "the PostgreSQL store (database \(config.database), schema \(schema)) is in use by another server; "
                    + "one server per store")
        }
        return PostgresStoreLock(connection: connection, schema: schema)
    }

    /// Gives the lock back (the server stops).
    public func release() async {
        await connection.close()
    }
}
