// The storage schema, embedded into the binary from the SQL files beside this one.
// SwiftPM's `embedInCode` turns each `sql/NNNN_name.sql` into `PackageResources._NNN_name_sql`.

/// One schema step: a name (the file name without `.sql`) and its SQL.
public struct Migration: Sendable {
    /// `NNNN_description`, the SQL file's name without extension.
    public let name: String
    /// The statements, run in one transaction.
    public let sql: String
}

/// Every schema step, in the order they must run.
public enum Migrations {
    /// All migrations, oldest first. Add each new `sql/` file here.
    public static let all: [Migration] = [
        Migration(name: "0001_initial", sql: String(decoding: PackageResources._001_initial_sql, as: UTF8.self)),
        Migration(name: "0002_leases", sql: String(decoding: PackageResources._002_leases_sql, as: UTF8.self)),
        Migration(name: "0003_lease_identity", sql: String(decoding: PackageResources._003_lease_identity_sql, as: UTF8.self)),
        Migration(name: "0004_lease_limits", sql: String(decoding: PackageResources._004_lease_limits_sql, as: UTF8.self)),
        Migration(name: "0005_lease_token", sql: String(decoding: PackageResources._005_lease_token_sql, as: UTF8.self)),
    ]

    /// The PostgreSQL store's steps (`postgresql/`), oldest first: the same schema in
    /// PostgreSQL's dialect. Add each new file here.
    public static let postgresql: [Migration] = [
        Migration(name: "0001_initial", sql: String(decoding: PackageResources._001_initial_postgresql_sql, as: UTF8.self)),
        Migration(name: "0002_leader", sql: String(decoding: PackageResources._002_leader_postgresql_sql, as: UTF8.self)),
    ]
}
