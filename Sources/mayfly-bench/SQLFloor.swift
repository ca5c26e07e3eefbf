import Foundation
import MayflyCore
import MayflyCrypto

/// The SQL baselines, sent by one `psql` session over the same TLS connection settings Mayfly
/// uses: the raw floor (Mayfly's own `CREATE ROLE` + `COMMENT ON ROLE`, one transaction per
/// credential) and the Vault-default path (plaintext password hashed by PostgreSQL at its
/// default 4,096 SCRAM iterations, plus the per-user `GRANT` of Vault's documented example).
struct SQLFloor {
    /// libpq conninfo of the admin login, without the password (taken from `PGPASSWORD`).
    var conninfo: String
    var group: String
    var iterations: Int

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Creates the group role and a few tables the Vault-default path grants on.
    func prepare() throws {
        _ = try psql("""
            DO $$ BEGIN
              IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '\(group)') THEN CREATE ROLE "\(group)" NOLOGIN; END IF;
            END $$;
            CREATE TABLE IF NOT EXISTS bench_orders (id bigint PRIMARY KEY, note text);
            CREATE TABLE IF NOT EXISTS bench_customers (id bigint PRIMARY KEY, name text);
            CREATE TABLE IF NOT EXISTS bench_invoices (id bigint PRIMARY KEY, total numeric);
            GRANT SELECT ON bench_orders, bench_customers, bench_invoices TO "\(group)";
            """)
    }

    /// Seconds for `count` credentials the way Mayfly creates them.
    func floor(count: Int) throws -> Double {
        let expiration = Timestamp.postgres(Int64(Date().timeIntervalSince1970) + 3600)
        var names: [String] = []
        var sql = ""
        for index in 0..<count {
            let name = "v-floor-" + Random.string(count: 20, alphabet: Array("abcdefghijklmnopqrstuvwxyz0123456789"))
            names.append(name)
            let verifier = SCRAMVerifier.make(password: Base64.encodeURLSafeNoPadding(Random.bytes(32)), iterations: iterations)
            sql += """
                BEGIN;
                CREATE ROLE "\(name)" WITH LOGIN PASSWORD '\(verifier)' VALID UNTIL '\(expiration)' CONNECTION LIMIT 5 IN ROLE "\(group)";
                COMMENT ON ROLE "\(name)" IS 'bench floor \(index) 0123456789abcdefghijklmnopqrstuvw';
                COMMIT;

                """
        }
        let seconds = try psql(sql)
        try drop(names, revoke: false)
        return seconds
    }

    /// Seconds for `count` credentials created the Vault-default way.
    func vaultDefault(count: Int) throws -> Double {
        let expiration = Timestamp.postgres(Int64(Date().timeIntervalSince1970) + 3600)
        var names: [String] = []
        var sql = ""
        for _ in 0..<count {
            let name = "v-vault-" + Random.string(count: 20, alphabet: Array("abcdefghijklmnopqrstuvwxyz0123456789"))
            names.append(name)
            let password = Base64.encodeURLSafeNoPadding(Random.bytes(32))
            sql += """
                CREATE ROLE "\(name)" WITH LOGIN PASSWORD '\(password)' VALID UNTIL '\(expiration)';
                GRANT SELECT ON ALL TABLES IN SCHEMA public TO "\(name)";

                """
        }
        let seconds = try psql(sql)
        try drop(names, revoke: true)
        return seconds
    }

    private func drop(_ names: [String], revoke: Bool) throws {
        var sql = ""
        for name in names {
            if revoke { sql += "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM \"\(name)\";\n" }
            sql += "DROP ROLE \"\(name)\";\n"
        }
        _ = try psql(sql)
    }

    /// Seconds to revoke `count` credentials the way Vault's PostgreSQL plugin does by default
    /// (`defaultDeleteUser`): one lease at a time, each statement a round trip — look the role
    /// up, find its schema grants, REVOKE per schema, on `public` and CONNECT, then DROP ROLE.
    /// The roles are created first (untimed) with Mayfly's shape. Vault ends no sessions.
    func vaultRevoke(count: Int) throws -> Double {
        let expiration = Timestamp.postgres(Int64(Date().timeIntervalSince1970) + 3600)
        var names: [String] = []
        var setup = ""
        for _ in 0..<count {
            let name = "v-vrev-" + Random.string(count: 20, alphabet: Array("abcdefghijklmnopqrstuvwxyz0123456789"))
            names.append(name)
            let verifier = SCRAMVerifier.make(password: Base64.encodeURLSafeNoPadding(Random.bytes(32)), iterations: iterations)
            setup += "CREATE ROLE \"\(name)\" WITH LOGIN PASSWORD '\(verifier)' VALID UNTIL '\(expiration)' IN ROLE \"\(group)\";\n"
        }
        try psql(setup)
        var sql = ""
        for name in names {
            sql += """
                SELECT exists (SELECT rolname FROM pg_roles WHERE rolname = '\(name)');
                SELECT DISTINCT table_schema FROM information_schema.role_column_grants WHERE grantee = '\(name)';
                REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM "\(name)";
                REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public FROM "\(name)";
                REVOKE USAGE ON SCHEMA public FROM "\(name)";
                SELECT current_database();
                REVOKE CONNECT ON DATABASE current_database_placeholder FROM "\(name)";
                DROP ROLE IF EXISTS "\(name)";

                """
        }
        let database = try psqlOutput("SELECT current_database()").trimmingCharacters(in: .whitespacesAndNewlines)
        return try psql(sql.replacingOccurrences(of: "current_database_placeholder", with: "\"\(database)\""))
    }

    /// Number of sessions of roles whose name starts with `prefix`.
    func sessions(prefix: String) throws -> Int {
        let output = try psqlOutput("SELECT count(*) FROM pg_stat_activity WHERE starts_with(usename, '\(prefix)')")
        return Int(output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    /// Number of roles whose name starts with `prefix` (none should survive a revocation).
    func remaining(prefix: String) throws -> Int {
        let output = try psqlOutput("SELECT count(*) FROM pg_roles WHERE starts_with(rolname, '\(prefix)')")
        return Int(output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
    }

    private func psqlOutput(_ query: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", "-Atq", "-X", "-d", conninfo, "-c", query]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw Failure(description: "psql failed on: \(query)") }
        return String(decoding: data, as: UTF8.self)
    }

    /// Runs `sql` in one psql session; returns the wall-clock seconds it took.
    @discardableResult
    func psql(_ sql: String) throws -> Double {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("mayfly-bench-\(UUID().uuidString).sql")
        try Data(sql.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-f", file.path]
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        let start = DispatchTime.now().uptimeNanoseconds
        try process.run()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        guard process.terminationStatus == 0 else {
            throw Failure(description: "psql failed: \(String(decoding: stderr.prefix(500), as: UTF8.self))")
        }
        return seconds
    }
}
