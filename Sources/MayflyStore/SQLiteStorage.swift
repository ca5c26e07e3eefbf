import Foundation
import GRDB
import MayflyMigrations

/// The default store: one SQLite file in WAL mode with `synchronous = FULL`, so every
/// committed write is on disk before `commit` returns. Concurrent writes share a transaction
/// (group commit, one fsync for all). GRDB runs all SQLite calls on its own serial queues,
/// off the cooperative thread pool.
public final class SQLiteStorage: Storage {
    private let pool: DatabasePool
    private let writer: GroupCommitWriter

    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    public init(path: String) throws {
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        do {
            let directory = (path as NSString).deletingLastPathComponent
            if !directory.isEmpty {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true,
                    attributes: [.posixPermissions: 0o700])
            }
            pool = try DatabasePool(path: path, configuration: config)
        } catch {
            throw StorageError(.unavailable, "cannot open SQLite database at \(path): \(error)")
        }
        writer = GroupCommitWriter(pool: pool)
        do {
            try Self.migrator.migrate(pool)
        } catch {
            throw StorageError(.migration, "migrating \(path): \(error)")
        }
    }

    /// The migrator built from the SQL files embedded from `migrations/`.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in Migrations.all {
            migrator.registerMigration(migration.name) { db in
                try db.execute(sql: migration.sql)
            }
        }
        return migrator
    }

    /// Names of the migrations applied to this database, oldest first.
    public func appliedMigrations() async throws -> [String] {
        try await run { db in try Self.migrator.appliedMigrations(db) }
    }

    public func get(_ path: String) async throws -> StoredEntry? {
        try await run { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT version, value FROM entries WHERE path = ?"), arguments: [path])
                .map { StoredEntry(path: path, version: $0[0], value: [UInt8]($0[1] as Data)) }
        }
    }

    public func version(of path: String) async throws -> Int64 {
        try await run { db in
            try Int64.fetchOne(db.cachedStatement(sql: "SELECT version FROM entries WHERE path = ?"), arguments: [path]) ?? 0
        }
    }

    public func commit(_ operations: [StorageOperation]) async throws {
        guard !operations.isEmpty else { return }
        let now = Int64(Date().timeIntervalSince1970)
        try await write { db in
            for operation in operations {
                switch operation {
                case .put(let entry, let expected):
                    if let expected {
                        let current = try Int64.fetchOne(
                            db.cachedStatement(sql: "SELECT version FROM entries WHERE path = ?"), arguments: [entry.path]) ?? 0
                        guard current == expected else {
                            throw StorageError(.conflict, "\(entry.path): expected version \(expected), found \(current)")
                        }
                    }
                    try db.cachedStatement(
                        sql: """
                            INSERT INTO entries (path, version, value, updated_at) VALUES (?, ?, ?, ?)
                            ON CONFLICT (path) DO UPDATE SET version = excluded.version,
                                value = excluded.value, updated_at = excluded.updated_at
                            """
                    ).execute(arguments: [entry.path, entry.version, Data(entry.value), now])
                case .delete(let path):
                    try db.cachedStatement(sql: "DELETE FROM entries WHERE path = ?").execute(arguments: [path])
                case .deletePrefix(let prefix):
                    try db.execute(
                        sql: "DELETE FROM entries WHERE path >= ? AND substr(path, 1, ?) = ?",
                        arguments: [prefix, prefix.utf8.count, prefix])
                }
            }
        }
    }

    public func listChildren(of prefix: String) async throws -> [String] {
        try await run { db in
            try childListing(of: prefix) { cursor in
                try String.fetchOne(db, sql: "SELECT path FROM entries WHERE path >= ? ORDER BY path LIMIT 1", arguments: [cursor])
            }
        }
    }

    public func paths(withPrefix prefix: String, after: String?, limit: Int) async throws -> [String] {
        try await run { db in
            try String.fetchAll(
                db,
                sql: """
                    SELECT path FROM entries WHERE path >= ? AND path > ? AND substr(path, 1, ?) = ?
                    ORDER BY path LIMIT ?
                    """,
                arguments: [prefix, after ?? "", prefix.utf8.count, prefix, limit])
        }
    }

    public func systemValue(_ name: String) async throws -> [UInt8]? {
        try await run { db in
            try Data.fetchOne(db, sql: "SELECT value FROM system WHERE name = ?", arguments: [name]).map { [UInt8]($0) }
        }
    }

    public func setSystemValue(_ name: String, _ value: [UInt8]?) async throws {
        try await write { db in
            if let value {
                try db.execute(
                    sql: "INSERT INTO system (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    arguments: [name, Data(value)])
            } else {
                try db.execute(sql: "DELETE FROM system WHERE name = ?", arguments: [name])
            }
        }
    }

    public func systemValueNames() async throws -> [String] {
        try await run { db in try String.fetchAll(db, sql: "SELECT name FROM system ORDER BY name") }
    }

    private func run<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError(.unavailable, "read failed: \(error)")
        }
    }

    private func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        do {
            return try await writer.write(body)
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError(.unavailable, "write failed: \(error)")
        }
    }
}

extension SQLiteStorage: LeaseStorage {
    private static let leaseColumns = """
        id, database_name, role_name, username, state, issued_at, expires_at, max_expires_at, last_renewal,
        attempts, next_attempt_at, last_error, revoked_at, identity, connection_limit, token_hash
        """

    private static func lease(_ row: Row) -> LeaseRecord {
        var lease = LeaseRecord(
            id: row[0], database: row[1], role: row[2], username: row[3],
            state: LeaseState(rawValue: row[4]) ?? .revoking, issuedAt: row[5], expiresAt: row[6], maxExpiresAt: row[7])
        lease.lastRenewal = row[8]
        lease.attempts = row[9]
        lease.nextAttemptAt = row[10]
        lease.lastError = row[11]
        lease.revokedAt = row[12]
        lease.identity = row[13]
        lease.connectionLimit = row[14]
        lease.tokenHash = row[15]
        return lease
    }

    private static func arguments(_ lease: LeaseRecord) -> StatementArguments {
        [lease.id, lease.database, lease.role, lease.username, lease.state.rawValue, lease.issuedAt, lease.expiresAt,
         lease.maxExpiresAt, lease.lastRenewal, lease.attempts, lease.nextAttemptAt, lease.lastError, lease.revokedAt,
         lease.identity, lease.connectionLimit, lease.tokenHash]
    }

    public func insertLease(_ lease: LeaseRecord) async throws {
        try await write { db in
            try db.cachedStatement(
                sql: "INSERT INTO leases (\(Self.leaseColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ).execute(arguments: Self.arguments(lease))
        }
    }

    public func updateLeases(_ leases: [LeaseRecord]) async throws {
        guard !leases.isEmpty else { return }
        try await write { db in
            let statement = try db.cachedStatement(
                sql: "REPLACE INTO leases (\(Self.leaseColumns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            for lease in leases { try statement.execute(arguments: Self.arguments(lease)) }
        }
    }

    public func lease(id: String) async throws -> LeaseRecord? {
        try await run { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT \(Self.leaseColumns) FROM leases WHERE id = ?"), arguments: [id])
                .map(Self.lease)
        }
    }

    public func dueLeases(now: Int64, pendingBefore: Int64, limit: Int) async throws -> [LeaseRecord] {
        try await run { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT \(Self.leaseColumns) FROM leases WHERE state = 'active' AND expires_at <= ?1
                    UNION ALL
                    SELECT \(Self.leaseColumns) FROM leases WHERE state = 'pending' AND issued_at <= ?2
                    UNION ALL
                    SELECT \(Self.leaseColumns) FROM leases WHERE state = 'revoking' AND next_attempt_at <= ?1
                    LIMIT ?3
                    """,
                arguments: [now, pendingBefore, limit]
            ).map(Self.lease)
        }
    }

    public func liveLeases(prefix: String, after: String?, limit: Int) async throws -> [LeaseRecord] {
        try await run { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT \(Self.leaseColumns) FROM leases
                    WHERE id >= ?1 AND id > ?2 AND substr(id, 1, ?3) = ?1 AND state != 'revoked'
                    ORDER BY id LIMIT ?4
                    """,
                arguments: [prefix, after ?? "", prefix.utf8.count, limit]
            ).map(Self.lease)
        }
    }

    public func leaseCounts() async throws -> [LeaseState: Int] {
        try await run { db in
            var counts: [LeaseState: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, count(*) FROM leases GROUP BY state") {
                if let state = LeaseState(rawValue: row[0]) { counts[state] = row[1] }
            }
            return counts
        }
    }

    /// The WHERE clause and arguments of `filter`.
    private static func condition(_ filter: LeaseFilter) -> (sql: String, arguments: StatementArguments) {
        var clauses = ["1"]
        var arguments = StatementArguments()
        for (column, values) in filter.listConditions {
            clauses.append("\(column) IN (\(Array(repeating: "?", count: values.count).joined(separator: ", ")))")
            arguments += StatementArguments(values)
        }
        if let after = filter.issuedAfter {
            clauses.append("issued_at >= ?")
            arguments += [after]
        }
        if let before = filter.issuedBefore {
            clauses.append("issued_at < ?")
            arguments += [before]
        }
        return (clauses.joined(separator: " AND "), arguments)
    }

    public func leases(matching filter: LeaseFilter, after: String?, limit: Int) async throws -> [LeaseRecord] {
        let (condition, arguments) = Self.condition(filter)
        return try await run { db in
            try Row.fetchAll(
                db, sql: "SELECT \(Self.leaseColumns) FROM leases WHERE \(condition) AND id > ? ORDER BY id LIMIT ?",
                arguments: arguments + [after ?? "", limit]
            ).map(Self.lease)
        }
    }

    public func leaseCounts(matching filter: LeaseFilter) async throws -> [String: [LeaseState: Int]] {
        let (condition, arguments) = Self.condition(filter)
        return try await run { db in
            var counts: [String: [LeaseState: Int]] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT database_name, state, count(*) FROM leases WHERE \(condition) GROUP BY database_name, state",
                arguments: arguments)
            {
                if let state = LeaseState(rawValue: row[1]) { counts[row[0], default: [:]][state] = row[2] }
            }
            return counts
        }
    }

    public func connectionLimitSums() async throws -> [String: Int] {
        try await run { db in
            var sums: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: """
                SELECT database_name, SUM(connection_limit) FROM leases WHERE state != 'revoked' GROUP BY database_name
                """)
            {
                sums[row[0]] = row[1]
            }
            return sums
        }
    }

    public func activateLease(id: String) async throws -> Bool {
        try await write { db in
            try db.cachedStatement(sql: "UPDATE leases SET state = 'active' WHERE id = ? AND state = 'pending'").execute(arguments: [id])
            return db.changesCount > 0
        }
    }

    public func markRevoking(matching filter: LeaseFilter, now: Int64, pendingDue: Int64) async throws -> Int {
        let (condition, arguments) = Self.condition(filter)
        return try await write { db in
            try db.execute(
                sql: """
                    UPDATE leases SET state = 'revoking',
                        next_attempt_at = CASE state WHEN 'pending' THEN ? ELSE ? END
                    WHERE \(condition) AND state IN ('pending', 'active')
                    """,
                arguments: [pendingDue, now] + arguments)
            return db.changesCount
        }
    }

    /// Empties every connection's page cache (SQLite keeps up to 2 MiB per connection).
    public func releaseMemory() async {
        let pool = pool
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                pool.releaseMemory()
                done.resume()
            }
        }
    }

    public func liveLeaseCount(identity: String) async throws -> Int {
        try await run { db in
            try Int.fetchOne(db.cachedStatement(sql: "SELECT count(*) FROM leases WHERE identity = ? AND state != 'revoked'"),
                             arguments: [identity]) ?? 0
        }
    }
}
