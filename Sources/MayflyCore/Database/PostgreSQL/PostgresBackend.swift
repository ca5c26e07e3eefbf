import Foundation
import MayflyCrypto
import MayflyPostgres

/// PostgreSQL (`postgresql-database-plugin`): logins are roles made with `VALID UNTIL` and a
/// SCRAM verifier Mayfly computes (PostgreSQL is never sent a plaintext password, so no
/// statement log can keep one), marked with `COMMENT ON ROLE`, and privileges come through
/// membership of group roles. All of Mayfly's SQL for dynamic credentials is here.
final class PostgresBackend: CredentialBackend {
    static let pluginName = "postgresql-database-plugin"

    /// The admin connections, opened as the config stored when this backend was made.
    let pool: PGPool
    let config: DatabaseConfig
    let scramIterations: Int
    /// The config's URL parsed (no password in it): every credential's `connection_url`.
    private let server: PGConnectionConfig

    init(config: DatabaseConfig, settings: CredentialBackends.Settings) throws {
        let connection = try Self.connectionConfig(config)
        var server = connection
        server.password = nil
        self.server = server
        self.config = config
        scramIterations = settings.scramIterations
        pool = PGPool(config: connection, maxConnections: config.maxConnections)
    }

    /// The libpq settings of `config`: its URL parsed (a 400 naming what is wrong), its
    /// password added.
    static func connectionConfig(_ config: DatabaseConfig) throws -> PGConnectionConfig {
        do {
            var connection = try PGConnectionConfig.parse(url: config.connectionURL)
            connection.password = config.password
            return connection
        } catch let error as PGError {
            throw APIError.badRequest(error.message)
        }
    }

    /// A URL libpq parses, and a connection encrypted and verified unless `tls_insecure_allow`.
    static func validate(_ config: DatabaseConfig) throws {
        try checkURL(config.connectionURL, tlsInsecureAllow: config.tlsInsecureAllow)
    }

    /// The check of `validate` for any PostgreSQL URL (a database's, the store's): a 400 saying
    /// what is wrong.
    static func checkURL(_ url: String, tlsInsecureAllow: Bool) throws {
        do {
            try PGConnectionConfig.parse(url: url).checkTLSPolicy(allowInsecure: tlsInsecureAllow)
        } catch let error as PGError {
            throw APIError.badRequest(error.message)
        }
    }

    var adminConnections: Int { pool.maxConnections }

    // MARK: Templates

    /// Vault-style statement templates: `{{name}}` and `{{username}}` become the login,
    /// `{{password}}` its SCRAM verifier (never the password), `{{expiration}}` its expiry.
    /// The one expander of every statement Mayfly runs from a config (creation, renew,
    /// revocation, rotation and root rotation statements).
    static func expand(_ statements: [String], username: String, verifier: String? = nil, expiration: String? = nil) -> String {
        statements.map { statement in
            var text = statement.replacingOccurrences(of: "{{name}}", with: username)
                .replacingOccurrences(of: "{{username}}", with: username)
            if let verifier { text = text.replacingOccurrences(of: "{{password}}", with: verifier) }
            if let expiration { text = text.replacingOccurrences(of: "{{expiration}}", with: expiration) }
            return text
        }.joined(separator: ";\n")
    }

    /// The SQL that creates `login`: `CREATE ROLE … VALID UNTIL … CONNECTION LIMIT … IN ROLE …`,
    /// or the role's creation statements, then its marker.
    static func creationSQL(_ session: PGSession, role: DatabaseRole, login: NewLogin, verifier: String) throws -> String {
        let expiration = Timestamp.postgres(login.validUntil)
        let name = try session.escapeIdentifier(login.username)
        let marker = "COMMENT ON ROLE \(name) IS \(try session.escapeLiteral(login.marker))"
        if !role.creationStatements.isEmpty {
            return expand(role.creationStatements, username: login.username, verifier: verifier, expiration: expiration)
                // The template decides everything but the limit: PostgreSQL must enforce the
                // one the connection budget counts.
                + ";\nALTER ROLE \(name) CONNECTION LIMIT \(login.connectionLimit);\n" + marker
        }
        var sql = "CREATE ROLE \(name) WITH LOGIN PASSWORD \(try session.escapeLiteral(verifier)) "
            + "VALID UNTIL \(try session.escapeLiteral(expiration)) CONNECTION LIMIT \(login.connectionLimit)"
        if !role.memberOf.isEmpty {
            sql += " IN ROLE " + (try role.memberOf.map { try session.escapeIdentifier($0) }).joined(separator: ", ")
        }
        return sql + ";\n" + marker
    }

    // MARK: CredentialBackend

    func create(_ login: NewLogin, role: DatabaseRole) async throws {
        let verifier = SCRAMVerifier.make(password: login.password, iterations: scramIterations)
        try await run {
            try await self.pool.withSession { session in
                try session.execute(try Self.creationSQL(session, role: role, login: login, verifier: verifier))
            }
        }
    }

    func renew(username: String, validUntil: Int64, role: DatabaseRole?) async throws {
        let statements = role?.renewStatements ?? []
        try await run {
            try await self.pool.withSession { session in
                let until = Timestamp.postgres(validUntil)
                if !statements.isEmpty {
                    try session.execute(Self.expand(statements, username: username, expiration: until))
                } else {
                    try session.execute(
                        "ALTER ROLE \(try session.escapeIdentifier(username)) VALID UNTIL \(try session.escapeLiteral(until))")
                }
            }
        }
    }

    func markedLogins(storeID: String) async throws -> [(username: String, leaseID: String)] {
        try await run {
            try await self.pool.withSession { session in
                try session.query("""
                    SELECT rolname, split_part(shobj_description(oid, 'pg_authid'), ' ', 3) FROM pg_roles
                    WHERE shobj_description(oid, 'pg_authid') LIKE 'mayfly lease % store ' || $1
                    """, [storeID])
            }.compactMap { row in row[0].flatMap { name in row[1].map { (name, $0) } } }
        }
    }

    func existingLogins(_ usernames: [String]) async throws -> Set<String> {
        guard !usernames.isEmpty else { return [] }
        return try await run {
            Set(try await self.pool.withSession { session in
                let wanted = try usernames.map { try session.escapeLiteral($0) }.joined(separator: ", ")
                return try session.query("SELECT rolname FROM pg_roles WHERE rolname IN (\(wanted))").compactMap { $0[0] }
            })
        }
    }

    func openSessions(storeID: String) async throws -> Int {
        let marker = "mayfly lease % store " + storeID
        return try await run {
            let rows = try await self.pool.withSession { session in
                try session.query("""
                    SELECT count(*) FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
                    WHERE shobj_description(r.oid, 'pg_authid') LIKE $1
                    """, [marker])
            }
            return rows.first.flatMap { $0.first ?? nil }.flatMap { Int($0) } ?? 0
        }
    }

    func connectionCapacity() async throws -> (maximum: Int, reserved: Int) {
        try await run {
            let settings = try await self.pool.withSession { session in
                try session.query("""
                    SELECT current_setting('max_connections'), current_setting('superuser_reserved_connections'),
                           coalesce(current_setting('reserved_connections', true), '0')
                    """).first ?? []
            }
            let numbers = settings.map { Int($0 ?? "") ?? 0 }
            guard numbers.count == 3 else { throw CredentialBackendError(.other, "cannot read max_connections") }
            return (numbers[0], numbers[1] + numbers[2])
        }
    }

    /// PostgreSQL's predefined roles with power over the server's operating system or other
    /// sessions (credentials never get OS or cross-session power): a member runs programs or
    /// reads and writes files as the server's OS user, or ends other sessions (the broker's
    /// among them).
    static let predefinedPrivilegedRoles = [
        "pg_execute_server_program", "pg_read_server_files", "pg_write_server_files", "pg_signal_backend",
    ]

    /// One row per role named `$1`: whether it is, or through any chain of memberships can
    /// become, a superuser, a CREATEROLE, REPLICATION or BYPASSRLS role, one of
    /// `predefinedPrivilegedRoles`, or the broker's own admin login (`current_user`).
    static let privilegedRoleQuery = """
        SELECT pg_has_role(g.oid, (SELECT oid FROM pg_roles WHERE rolname = current_user), 'MEMBER')
            OR EXISTS (SELECT 1 FROM pg_roles r
                       WHERE (r.rolsuper OR r.rolcreaterole OR r.rolreplication OR r.rolbypassrls
                              OR r.rolname IN (\(predefinedPrivilegedRoles.map { "'\($0)'" }.joined(separator: ", "))))
                         AND pg_has_role(g.oid, r.oid, 'MEMBER'))
        FROM pg_roles g WHERE g.rolname = $1
        """

    func groupStatus(_ groups: [String]) async throws -> (missing: [String], privileged: [String]) {
        try await run {
            try await self.pool.withSession { session in
                var missing: [String] = [], privileged: [String] = []
                for group in groups {
                    let row = try session.query(Self.privilegedRoleQuery, [group]).first
                    if row == nil { missing.append(group) } else if row?[0] == "t" { privileged.append(group) }
                }
                return (missing, privileged)
            }
        }
    }

    func clientURL(username: String) throws -> String {
        Self.clientURL(server, username: username)
    }

    /// `postgresql://user@host:port/db?sslmode=…` for the client (no password).
    static func clientURL(_ server: PGConnectionConfig, username: String) -> String {
        var components = URLComponents()
        components.scheme = "postgresql"
        components.user = username
        components.host = server.host
        components.port = server.port
        components.path = "/" + server.database
        var query = [URLQueryItem(name: "sslmode", value: server.sslMode)]
        if let root = server.sslRootCert { query.append(URLQueryItem(name: "sslrootcert", value: root)) }
        components.queryItems = query
        return components.string ?? ""
    }

    func verify() async throws {
        let owner = config.ownerOnRevoke
        let ownerExists: Bool
        do {
            let test = try await PGConnection.connect(try Self.connectionConfig(config))
            var exists = true
            do {
                if !owner.isEmpty { exists = try await !test.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [owner]).isEmpty }
            } catch {
                await test.close()
                throw error
            }
            await test.close()
            ownerExists = exists
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.badRequest("error verifying connection: \(Self.classify(error).message)")
        }
        // Every revocation hands objects to this role: a missing one would fail them all.
        guard ownerExists else {
            throw APIError.badRequest("owner_on_revoke \"\(APIError.clip(owner))\" does not exist in the database")
        }
    }

    // MARK: Static roles

    func checkStaticLogin(_ username: String) async throws {
        let database = config.name
        try await run {
            try await self.pool.withSession { session in
                // The admin login has its own rotation (rotate-root); a superuser's password
                // is beyond a CREATEROLE admin.
                let found = try session.query(
                    "SELECT rolname = current_user, rolsuper FROM pg_roles WHERE rolname = $1", [username]).first
                guard let found else {
                    throw APIError.badRequest("user \"\(username)\" does not exist in database \"\(database)\"")
                }
                guard found[0] == "f", found[1] == "f" else {
                    throw APIError.badRequest(found[0] == "t"
                        ? "user \"\(username)\" is the broker's own admin login: rotate it with database/rotate-root"
                        : "user \"\(username)\" is a superuser: the broker's admin cannot change its password")
                }
                // Its password is handed out: the user must not be able to take over the
                // database, the server's OS user or the broker's login.
                if try session.query(Self.privilegedRoleQuery, [username]).first?[0] == "t" {
                    throw APIError.badRequest(
                        "user \"\(username)\" is, or can become, a superuser, a role with CREATEROLE, REPLICATION or BYPASSRLS, a member of \(Self.predefinedPrivilegedRoles.joined(separator: ", ")), or the broker's admin login: a static role cannot hand out its password")
                }
            }
        }
    }

    func createStaticLogins(_ usernames: [String], groups: [String], marker: String) async throws {
        let iterations = scramIterations
        try await run {
            try await self.pool.withSession { session in
                for user in usernames where try session.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [user]).isEmpty {
                    let verifier = SCRAMVerifier.make(password: Base64.encodeURLSafeNoPadding(Random.bytes(32)), iterations: iterations)
                    let name = try session.escapeIdentifier(user)
                    try session.execute("""
                        CREATE ROLE \(name) LOGIN PASSWORD \(try session.escapeLiteral(verifier)) IN ROLE \
                        \(try groups.map { try session.escapeIdentifier($0) }.joined(separator: ", "));
                        COMMENT ON ROLE \(name) IS \(try session.escapeLiteral(marker))
                        """)
                }
            }
        }
    }

    func loginsMarked(_ usernames: [String], marker: String) async throws -> [String] {
        try await run {
            try await self.pool.withSession { session in
                try usernames.filter { user in
                    try !session.query(
                        "SELECT 1 FROM pg_roles WHERE rolname = $1 AND shobj_description(oid, 'pg_authid') = $2", [user, marker]
                    ).isEmpty
                }
            }
        }
    }

    func setPassword(username: String, password: String, statements: [String]) async throws {
        let verifier = SCRAMVerifier.make(password: password, iterations: scramIterations)
        try await run {
            try await self.pool.withSession { session in
                if statements.isEmpty {
                    let name = try session.escapeIdentifier(username)
                    try session.execute("ALTER ROLE \(name) WITH PASSWORD \(try session.escapeLiteral(verifier))")
                } else {
                    try session.execute(Self.expand(statements, username: username, verifier: verifier))
                }
            }
        }
    }

    static func adminLogin(_ config: DatabaseConfig) -> String? {
        try? PGConnectionConfig.parse(url: config.connectionURL).user
    }

    // MARK: Root rotation

    func adminPasswordChanging(to password: String) async {
        await pool.expectPassword(password)
    }

    func adminPasswordChanged(to password: String) async {
        await pool.setPassword(password)
    }

    static func loginKey(_ config: DatabaseConfig) -> String {
        guard let parsed = try? PGConnectionConfig.parse(url: config.connectionURL) else { return "database:" + config.name }
        return "\(parsed.user)@\(parsed.host):\(parsed.port)"
    }

    func rotateAdminPassword(_ config: DatabaseConfig, to newPassword: String) async throws {
        // Root passwords are read by Mayfly alone, so the default iteration count is enough.
        let verifier = SCRAMVerifier.make(password: newPassword, iterations: SCRAMVerifier.defaultIterations)
        var connection = try Self.connectionConfig(config)
        let statements = config.rootRotationStatements ?? []
        let user = connection.user
        try await run {
            // With the current password; if that fails the change may already have happened,
            // so the new password is tried (and set again, which is harmless).
            let admin: PGConnection
            do {
                admin = try await PGConnection.connect(connection)
            } catch {
                connection.password = newPassword
                admin = try await PGConnection.connect(connection)
            }
            do {
                try await admin.withSession { session in
                    if statements.isEmpty {
                        try session.execute("ALTER ROLE CURRENT_USER WITH PASSWORD \(try session.escapeLiteral(verifier))")
                    } else {
                        // Vault's root_rotation_statements; {{password}} is the verifier, never the password.
                        try session.execute(Self.expand(statements, username: user, verifier: verifier))
                    }
                }
            } catch {
                await admin.close()
                throw error
            }
            await admin.close()
        }
    }

    func close() async {
        await pool.close()
    }

    // MARK: Errors

    /// Runs `body`, turning libpq's errors into `CredentialBackendError`s.
    func run<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as PGError {
            throw Self.classify(error)
        }
    }

    /// Whether `error` is libpq's (a failure this backend classifies).
    static func isOwnError(_ error: any Error) -> Bool { error is PGError }

    /// What a libpq failure means to the caller: unreachable (no connection, or it dropped),
    /// no such role (SQLSTATE 42704), a refused statement, with a client-safe message (libpq's
    /// own words for connection failures; server messages for statements stay out, they may
    /// quote SQL).
    static func classify(_ error: any Error) -> CredentialBackendError {
        guard let error = error as? PGError else {
            return error as? CredentialBackendError ?? CredentialBackendError(.other, "\(error)", detail: String(reflecting: error))
        }
        let libpq = error.code == .connection || error.sqlState == nil
        let detail = error.debugDescription.split(separator: "—", maxSplits: 1).dropFirst().first
            .map { String($0.split(separator: "\n").first ?? "").trimmingWhitespace() } ?? ""
        let message = [error.message, error.sqlState.map { "SQLSTATE \($0)" }].compactMap { $0 }.joined(separator: ", ")
            + (libpq && !detail.isEmpty ? ": " + detail : "")
        let kind: CredentialBackendError.Kind =
            error.code == .connection || error.code == .closed ? .unreachable
            : error.sqlState == "42704" ? .noSuchLogin
            : error.isStatementFailure ? .refused : .other
        return CredentialBackendError(kind, message, detail: String(reflecting: error))
    }
}
