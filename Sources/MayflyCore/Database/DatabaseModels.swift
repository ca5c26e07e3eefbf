/// A database Mayfly manages roles in (`database/config/:name`). Stored in the barrier; the
/// admin password is never returned by the API.
struct DatabaseConfig: Codable, Sendable {
    var name: String
    /// `postgresql://user@host:port/db?sslmode=…` without a password.
    var connectionURL: String
    var password: String
    var allowedRoles: [String]
    var maxConnections: Int
    /// Role that receives the objects of revoked users; the admin login when empty.
    var ownerOnRevoke: String
    var tlsInsecureAllow: Bool
    var verifyConnection: Bool
    /// Cron expression for rotating the admin password (`root_rotation_schedule`).
    var rootRotationSchedule: String? = nil
    /// Unix seconds of the last admin password rotation; once set, the stored password is the
    /// only valid one and a `password_file` is no longer read.
    var lastRootRotation: Int64? = nil
    /// Written before the admin password changes: finished with this password after a crash.
    var pendingPassword: String? = nil
    /// Share of the server's `max_connections` live credentials may use (0.8 when nil).
    var connectionBudget: Double? = nil
    /// Vault's `root_rotation_statements`: custom SQL that changes the admin password
    /// (`{{name}}`/`{{username}}` the login, `{{password}}` its new SCRAM verifier); nil or empty
    /// for `ALTER ROLE CURRENT_USER`.
    var rootRotationStatements: [String]? = nil

    func allows(role: String) -> Bool {
        allowedRoles.contains { pattern in
            pattern == "*" || pattern == role || (pattern.hasSuffix("*") && role.hasPrefix(pattern.dropLast()))
        }
    }
}

/// A dynamic role (`database/roles/:name`): what each issued credential gets.
struct DatabaseRole: Codable, Sendable {
    var name: String
    var database: String
    /// Group roles the credential is a member of (privileges come through membership).
    var memberOf: [String]
    var defaultTTL: Int64
    var maxTTL: Int64
    var connectionLimit: Int
    var creationStatements: [String]
    var revocationStatements: [String]
    var renewStatements: [String]
    var rollbackStatements: [String]
    /// Concurrent identical requests (same identity and role) share one issuance.
    var coalesce: Bool? = nil

    /// Whether the role runs Vault-style custom SQL (`CustomStatements`).
    var hasCustomStatements: Bool {
        !(creationStatements.isEmpty && revocationStatements.isEmpty && renewStatements.isEmpty && rollbackStatements.isEmpty)
    }
}
