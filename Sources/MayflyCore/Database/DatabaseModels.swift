/// A database Mayfly manages roles in (`database/config/:name`). Stored in the barrier; the
/// admin password is never returned by the API.
struct DatabaseConfig: Codable, Sendable {
    var name: String
    /// Where the database is, without a password (PostgreSQL: `postgresql://user@host:port/db?sslmode=…`).
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
    /// for the backend's own password change.
    var rootRotationStatements: [String]? = nil
    /// Vault's `plugin_name`: the credential backend (`CredentialBackends`); nil for PostgreSQL.
    var plugin: String? = nil

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

extension DatabaseRole {
    /// The role a `role` stanza of the config file declares.
    init(declared: DeclaredRole) {
        self.init(
            name: declared.name, database: declared.database, memberOf: declared.memberOf,
            defaultTTL: declared.defaultTTL, maxTTL: declared.maxTTL, connectionLimit: declared.connectionLimit,
            creationStatements: declared.creationStatements, revocationStatements: declared.revocationStatements,
            renewStatements: declared.renewStatements, rollbackStatements: [], coalesce: declared.coalesce)
    }

    /// The checks every role passes, written through the API or declared in the config file
    /// (which adds its file and line): its name, TTLs, connection limit and group names.
    /// `connectionBudget` is its database's (`nil`: the default budget).
    func validate(connectionBudget: Double?) throws {
        try Names.validate(name, kind: "role")
        guard defaultTTL > 0, maxTTL > 0 else { throw APIError.badRequest("default_ttl and max_ttl must be positive") }
        guard defaultTTL <= maxTTL else { throw APIError.badRequest("default_ttl must not be longer than max_ttl") }
        guard (-1...10000).contains(connectionLimit) else {
            throw APIError.badRequest("connection_limit must be between -1 and 10000")
        }
        if connectionLimit < 0 && connectionBudget != 0 { throw AdmissionControl.unlimited(database) }
        for group in memberOf { try DatabaseEngine.validateIdentifier(group, field: "member_of") }
    }
}
