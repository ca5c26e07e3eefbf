import Foundation
import MayflyMigrations
import Synchronization
public import MayflyPostgres

/// The store on PostgreSQL (`storage "postgresql"`), for several Mayfly nodes sharing one
/// store: the same entries (ciphertext and paths only), system values and lease rows as the
/// SQLite store, through the project's libpq wrapper (blocking calls on their own threads).
/// Every `commit` is one transaction, durable when it returns (as PostgreSQL's commit is);
/// a conditional put is a row-level compare-and-set, so concurrent writers conflict instead
/// of overwriting each other. Tables live in `schema` (created if missing), so the store can
/// share a database; the login needs no superuser, only the right to create in it.
public final class PostgresStorage: Storage {
    private let pool: PGPool
    /// `"schema".`, prefixed to every table name.
    private let prefix: String
    public let schema: String
    /// Who may write (`StoreFence`): everyone until HA sets it.
    let fenceState = Mutex<StoreFence>(.off)

    /// Connects, creates `schema` if needed and applies pending migrations (serialised across
    /// nodes by an advisory lock, so several starting at once apply each step once).
    public init(config: PGConnectionConfig, schema: String = "public", maxConnections: Int = 4) async throws {
        guard Self.isValidSchema(schema) else { throw StorageError(.migration, Self.schemaRule) }
        self.schema = schema
        prefix = "\"\(schema)\"."
        pool = PGPool(config: config, maxConnections: maxConnections)
        do {
            try await migrate()
        } catch {
            await pool.close()
            throw error
        }
    }

    /// A schema name the store accepts: 1-63 ASCII letters, digits or underscores (it is
    /// quoted into every statement, so nothing else is allowed).
    public static func isValidSchema(_ schema: String) -> Bool {
        !schema.isEmpty && schema.utf8.count <= 63
            && schema.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || $0 == "_" || ("0"..."9").contains($0)) }
    }

    public static let schemaRule = "schema must be 1-63 letters, digits or underscores"

    /// Closes the connections.
    public func close() async {
        await pool.close()
    }

    private func migrate() async throws {
        let prefix = prefix, schema = schema
        do {
            try await pool.withSession { session in
                try Self.transaction(session) {
                    // One lock per schema: nodes starting together migrate one at a time.
                    _ = try session.query("SELECT pg_advisory_xact_lock(hashtext($1))", ["mayfly-migrate:" + schema])
                    try session.execute("""
                        CREATE SCHEMA IF NOT EXISTS "\(schema)";
                        CREATE TABLE IF NOT EXISTS \(prefix)migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)
                        """)
                    let applied = Set(try session.query("SELECT name FROM \(prefix)migrations").compactMap { $0[0] })
                    for migration in Migrations.postgresql where !applied.contains(migration.name) {
                        try session.execute("SET LOCAL search_path TO \"\(schema)\";\n" + migration.sql)
                        _ = try session.query("INSERT INTO \(prefix)migrations (name, applied_at) VALUES ($1, $2)",
                                              [migration.name, String(Int64(Date().timeIntervalSince1970))])
                    }
                }
            }
        } catch let error as PGError {
            throw StorageError(.migration, "migrating schema \(schema): \(error.debugDescription)")
        }
    }

    /// Names of the migrations applied, oldest first.
    public func appliedMigrations() async throws -> [String] {
        let prefix = prefix
        return try await run { session in
            try session.query("SELECT name FROM \(prefix)migrations ORDER BY name").compactMap { $0[0] }
        }
    }

    // MARK: Storage

    public func get(_ path: String) async throws -> StoredEntry? {
        let prefix = prefix
        return try await run { session in
            try session.query("SELECT version, value FROM \(prefix)entries WHERE path = $1", [path]).first.map {
                StoredEntry(path: path, version: Int64($0[0] ?? "") ?? 0, value: try Self.bytes($0[1]))
            }
        }
    }

    public func version(of path: String) async throws -> Int64 {
        let prefix = prefix
        return try await run { session in
            try session.query("SELECT version FROM \(prefix)entries WHERE path = $1", [path]).first.flatMap { Int64($0[0] ?? "") } ?? 0
        }
    }

    public func commit(_ operations: [StorageOperation]) async throws {
        guard !operations.isEmpty else { return }
        let prefix = prefix
        let now = String(Int64(Date().timeIntervalSince1970))
        try await write { session in
                for operation in operations {
                    switch operation {
                    case .put(let entry, let expected):
                        let values = [entry.path, String(entry.version), Self.hex(entry.value), now]
                        switch expected {
                        case nil:
                            _ = try session.query("""
                                INSERT INTO \(prefix)entries (path, version, value, updated_at) VALUES ($1, $2, $3::bytea, $4)
                                ON CONFLICT (path) DO UPDATE SET version = excluded.version, value = excluded.value,
                                    updated_at = excluded.updated_at
                                """, values)
                        case 0?:
                            let inserted = try session.query("""
                                INSERT INTO \(prefix)entries (path, version, value, updated_at) VALUES ($1, $2, $3::bytea, $4)
                                ON CONFLICT (path) DO NOTHING RETURNING 1
                                """, values)
                            guard !inserted.isEmpty else { throw StorageError(.conflict, "\(entry.path): expected no entry, found one") }
                        case let expected?:
                            let updated = try session.query("""
                                UPDATE \(prefix)entries SET version = $2, value = $3::bytea, updated_at = $4
                                WHERE path = $1 AND version = $5 RETURNING 1
                                """, values + [String(expected)])
                            guard !updated.isEmpty else {
                                throw StorageError(.conflict, "\(entry.path): expected version \(expected), found another")
                            }
                        }
                    case .delete(let path):
                        _ = try session.query("DELETE FROM \(prefix)entries WHERE path = $1", [path])
                    case .deletePrefix(let start):
                        _ = try session.query("DELETE FROM \(prefix)entries WHERE path >= $1 AND starts_with(path, $1)", [start])
                    }
                }
        }
    }

    public func listChildren(of start: String) async throws -> [String] {
        let prefix = prefix
        return try await run { session in
            try childListing(of: start) { cursor in
                try session.query("SELECT path FROM \(prefix)entries WHERE path >= $1 ORDER BY path LIMIT 1", [cursor]).first?[0] ?? nil
            }
        }
    }

    public func paths(withPrefix start: String, after: String?, limit: Int) async throws -> [String] {
        let prefix = prefix
        return try await run { session in
            try session.query("""
                SELECT path FROM \(prefix)entries WHERE path >= $1 AND path > $2 AND starts_with(path, $1)
                ORDER BY path LIMIT $3
                """, [start, after ?? "", String(limit)]).compactMap { $0[0] }
        }
    }

    public func systemValue(_ name: String) async throws -> [UInt8]? {
        let prefix = prefix
        return try await run { session in
            try session.query("SELECT value FROM \(prefix)system WHERE name = $1", [name]).first.map { try Self.bytes($0[0]) }
        }
    }

    public func setSystemValue(_ name: String, _ value: [UInt8]?) async throws {
        let prefix = prefix
        try await write { session in
            if let value {
                _ = try session.query("""
                    INSERT INTO \(prefix)system (name, value) VALUES ($1, $2::bytea)
                    ON CONFLICT (name) DO UPDATE SET value = excluded.value
                    """, [name, Self.hex(value)])
            } else {
                _ = try session.query("DELETE FROM \(prefix)system WHERE name = $1", [name])
            }
        }
    }

    public func systemValueNames() async throws -> [String] {
        let prefix = prefix
        return try await run { session in try session.query("SELECT name FROM \(prefix)system ORDER BY name").compactMap { $0[0] } }
    }

    // MARK: Plumbing

    /// Runs `body` on a pooled connection; libpq's failures become `StorageError`s.
    func run<T: Sendable>(_ body: @escaping @Sendable (PGSession) throws -> T) async throws -> T {
        do {
            return try await pool.withSession(body)
        } catch let error as StorageError {
            throw error
        } catch let error as PGError {
            throw StorageError(.unavailable, "PostgreSQL store: \(error.debugDescription)")
        }
    }

    /// `body` as one write transaction, behind the fence: on a standby, or on a former leader
    /// whose term has passed, nothing of it happens.
    func write<T: Sendable>(_ body: @escaping @Sendable (PGSession) throws -> T) async throws -> T {
        let fence = fence, schema = schema
        return try await run { session in
            var result: T?
            try Self.transaction(session) {
                try Self.checkFence(fence, session, schema: schema)
                result = try body(session)
            }
            return result!
        }
    }

    /// `body` in a transaction: committed if it returns, rolled back if it throws.
    static func transaction(_ session: PGSession, _ body: () throws -> Void) throws {
        try session.execute("BEGIN")
        do {
            try body()
            try session.execute("COMMIT")
        } catch {
            try? session.execute("ROLLBACK")
            throw error
        }
    }

    /// A `bytea` literal in hex form (`\x…`), for a `$n::bytea` parameter.
    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = [UInt8(ascii: "\\"), UInt8(ascii: "x")]
        text.reserveCapacity(2 + bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The bytes of a `bytea` column in PostgreSQL's hex output (`\x…`).
    static func bytes(_ text: String?) throws -> [UInt8] {
        guard let text, text.hasPrefix("\\x") else { throw StorageError(.corrupt, "a bytea value is not in hex form") }
        let digits = Array(text.utf8.dropFirst(2))
        guard digits.count % 2 == 0 else { throw StorageError(.corrupt, "a bytea value has an odd length") }
        func value(_ c: UInt8) throws -> UInt8 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            default: throw StorageError(.corrupt, "a bytea value is not hex")
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            bytes.append(try value(digits[index]) << 4 | value(digits[index + 1]))
            index += 2
        }
        return bytes
    }
}
