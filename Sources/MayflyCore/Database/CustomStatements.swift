/// Vault-style custom SQL — a role's creation, revocation, renew and rollback statements, a
/// static role's rotation statements, a database's root rotation statements — runs as the
/// broker's admin login. Whoever writes it can run any SQL as that login (grant a credential
/// `pg_execute_server_program`, alter the admin itself), so writing it through the API is admin
/// power and needs `sudo` on the path being written, as a policy write does. Roles declared in
/// the config file keep their statements: the file is trusted.
enum CustomStatements {
    /// The role fields that hold custom SQL.
    static let roleFields = ["creation_statements", "revocation_statements", "renew_statements", "rollback_statements"]

    /// Throws 403, naming the field, when `data` sets non-empty statements in one of `fields`
    /// and `caller` lacks `sudo` on `path`.
    static func requireSudo(_ data: [String: JSONValue], fields: [String], caller: Caller, path: String) throws {
        guard !caller.acl.hasSudo(on: path) else { return }
        for field in fields {
            guard let value = data[field], let statements = try DatabaseEngine.statements(value, field: field),
                !statements.isEmpty
            else { continue }
            throw denied(field: field, path: path)
        }
    }

    /// The 403 for `field` written without sudo on `path`.
    static func denied(field: String, path: String) -> APIError {
        APIError(status: 403, [
            "permission denied: \(field) is custom SQL run as the broker's admin login; writing it needs sudo on \(APIError.clip(path))"
        ])
    }
}
