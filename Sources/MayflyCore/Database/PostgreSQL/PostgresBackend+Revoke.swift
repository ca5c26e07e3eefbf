import Foundation
import MayflyPostgres

extension PostgresBackend {
    /// Revocation is complete and always finishes: no new logins, sessions ended, owned
    /// objects handed over and dropped in every database that holds any (and that Mayfly can
    /// connect to), then the roles dropped. Each step is one multi-statement batch for all the
    /// roles; the whole is idempotent (missing roles are skipped), so a failed attempt is
    /// simply run again. Returns the number of sessions terminated.
    func revoke(usernames: [String], revocationStatements: [String: [String]]) async throws -> Int {
        try await run { try await self.dropRoles(usernames, revocationStatements: revocationStatements) }
    }

    private func dropRoles(_ usernames: [String], revocationStatements: [String: [String]]) async throws -> Int {
        guard !usernames.isEmpty else { return 0 }
        let (existing, databaseNames, terminated) = try await pool.withSession { session -> ([String], [String], Int) in
            let wanted = try usernames.map { try session.escapeLiteral($0) }.joined(separator: ", ")
            let existing = try session.query("SELECT rolname FROM pg_roles WHERE rolname IN (\(wanted))").compactMap { $0[0] }
            guard !existing.isEmpty else { return ([], [], 0) }
            let names = try existing.map { try session.escapeIdentifier($0) }
            let literals = try existing.map { try session.escapeLiteral($0) }.joined(separator: ", ")
            // No new logins first, then end the sessions already open.
            try session.execute(names.map { "ALTER ROLE \($0) NOLOGIN" }.joined(separator: ";\n"))
            let terminated = try session.query(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename IN (\(literals))"
            ).first?[0].flatMap { Int($0) } ?? 0
            // Membership lets a CREATEROLE (non-superuser) admin reassign the roles' objects.
            try session.execute("GRANT \(names.joined(separator: ", ")) TO CURRENT_USER")
            // Only the databases where the roles own something or hold a privilege: pg_shdepend
            // (a shared catalog) records both for every database of the cluster, and shared
            // objects (databases, tablespaces) under database 0, which any database can reassign.
            // A login that made nothing costs no visit at all. Should an object appear after
            // this (a commit racing the termination), DROP ROLE fails and the batch is retried.
            let databaseNames = try session.query(
                """
                SELECT DISTINCT CASE WHEN s.dbid = 0 THEN current_database() ELSE d.datname END AS datname
                FROM pg_shdepend s LEFT JOIN pg_database d ON d.oid = s.dbid
                WHERE s.refclassid = 'pg_authid'::regclass
                  AND s.refobjid IN (SELECT oid FROM pg_roles WHERE rolname IN (\(literals)))
                  AND (s.dbid = 0 OR (d.datallowconn AND has_database_privilege(d.datname, 'CONNECT')))
                ORDER BY datname
                """
            ).compactMap { $0[0] }
            return (existing, databaseNames, terminated)
        }
        guard !existing.isEmpty else { return 0 }
        let owner = config.ownerOnRevoke
        for name in databaseNames {
            do {
                try await pool.withConnection(toDatabase: name) { connection in
                    try await connection.withSession { session in
                        let quoted = try existing.map { try session.escapeIdentifier($0) }.joined(separator: ", ")
                        let target = owner.isEmpty ? "CURRENT_USER" : try session.escapeIdentifier(owner)
                        try session.execute("REASSIGN OWNED BY \(quoted) TO \(target);\nDROP OWNED BY \(quoted)")
                    }
                }
            } catch {
                // A database dropped since it was listed holds nothing any more; anything else
                // fails this attempt (and it is retried).
                let stillThere = try await pool.withSession { session in
                    try !session.query("SELECT 1 FROM pg_database WHERE datname = $1 AND datallowconn", [name]).isEmpty
                }
                if stillThere { throw error }
            }
        }
        try await pool.withSession { session in
            var statements: [String] = []
            for username in existing {
                // A role's own revocation statements run before the drop (Vault compatibility).
                if let custom = revocationStatements[username], !custom.isEmpty {
                    statements.append(Self.expand(custom, username: username))
                }
            }
            statements.append("DROP ROLE IF EXISTS " + (try existing.map { try session.escapeIdentifier($0) }).joined(separator: ", "))
            try session.execute(statements.joined(separator: ";\n"))
        }
        return terminated
    }
}
