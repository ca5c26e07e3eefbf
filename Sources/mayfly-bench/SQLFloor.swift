import Foundation
import MayflyCore
import MayflyCrypto

/// The SQL floor, sent by one `psql` session over the same TLS connection settings Mayfly
/// uses: Mayfly's own `CREATE ROLE … IN ROLE group` + `COMMENT ON ROLE`, one transaction per
/// credential, with a SCRAM verifier computed here at Mayfly's iteration count.
struct SQLFloor {
    /// libpq conninfo of the admin login, without the password (taken from `PGPASSWORD`).
    var conninfo: String
    var group: String
    var iterations: Int

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Creates the group role when it is missing.
    func prepare() throws {
        _ = try psql("""
            DO $$ BEGIN
              IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '\(group)') THEN CREATE ROLE "\(group)" NOLOGIN; END IF;
            END $$;
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
        try drop(names)
        return seconds
    }

    private func drop(_ names: [String]) throws {
        var sql = ""
        for name in names { sql += "DROP ROLE \"\(name)\";\n" }
        _ = try psql(sql)
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
