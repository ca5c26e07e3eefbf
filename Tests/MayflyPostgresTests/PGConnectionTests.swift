import Foundation
import Glibc
import MayflyPostgres
import MayflyRun
import MayflyTestSupport
import Testing

/// The throw-away cluster started by scripts/test (scripts/pg-test-cluster), or nil.
enum TestCluster {
    static let environment = ProcessInfo.processInfo.environment
    static var available: Bool { environment["MAYFLY_TEST_PG_HOST"] != nil }
    /// With MAYFLY_REQUIRE_INTEGRATION=1 (CI), a missing cluster fails the tests instead of skipping them.
    static var enabled: Bool { available || environment["MAYFLY_REQUIRE_INTEGRATION"] == "1" }

    static func config(sslMode: String = "verify-full") throws -> PGConnectionConfig {
        guard let host = environment["MAYFLY_TEST_PG_HOST"] else {
            throw PGTestError("MAYFLY_REQUIRE_INTEGRATION=1 but no test PostgreSQL: run the tests with scripts/test")
        }
        return PGConnectionConfig(
            host: host, port: Int(environment["MAYFLY_TEST_PG_PORT"] ?? "") ?? 5432,
            database: environment["MAYFLY_TEST_PG_DB"] ?? "mayfly_test", user: environment["MAYFLY_TEST_PG_USER"] ?? "",
            password: environment["MAYFLY_TEST_PG_PASSWORD"], sslMode: sslMode,
            sslRootCert: environment["MAYFLY_TEST_PG_SSLROOTCERT"])
    }
}

struct PGTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@Suite struct PGConnectionConfigTests {
    @Test func parsesURLsAndRefusesPasswords() throws {
        let config = try PGConnectionConfig.parse(url: "postgresql://admin@db.internal:6543/orders?sslmode=verify-full&sslrootcert=/ca.pem")
        #expect(config.host == "db.internal")
        #expect(config.port == 6543)
        #expect(config.database == "orders")
        #expect(config.user == "admin")
        #expect(config.sslRootCert == "/ca.pem")
        #expect(throws: PGError.self) { _ = try PGConnectionConfig.parse(url: "postgresql://admin:pw@db/orders") }
        #expect(throws: PGError.self) { _ = try PGConnectionConfig.parse(url: "mysql://admin@db/orders") }
        #expect(throws: PGError.self) { _ = try PGConnectionConfig.parse(url: "postgresql://admin@db/orders?sslmode=sometimes") }
    }

    @Test func parsesMultiHostURLsForPostgreSQLsOwnFailover() throws {
        let config = try PGConnectionConfig.parse(
            url: "postgresql://mayfly@pg-1.internal:5432,pg-2.internal:5433,[fd00::3]/mayfly?sslmode=verify-full&target_session_attrs=read-write")
        #expect(config.host == "pg-1.internal" && config.port == 5432)
        #expect(config.moreHosts.map(\.host) == ["pg-2.internal", "fd00::3"] && config.moreHosts.map(\.port) == [5433, 5432])
        #expect(config.targetSessionAttrs == "read-write")
        #expect(config.database == "mayfly" && config.user == "mayfly")
        #expect(config.serverDescription == "pg-1.internal:5432,pg-2.internal:5433,fd00::3:5432")
        #expect(!config.isLocal, "one remote host makes the whole list remote (verify-full applies)")
        #expect(throws: PGError.self) { _ = try PGConnectionConfig.parse(url: "postgresql://mayfly@pg-1,/mayfly") }
        #expect(throws: PGError.self) { _ = try PGConnectionConfig.parse(url: "postgresql://mayfly@pg-1,u@pg-2/mayfly") }
        #expect(throws: PGError.self) { _ = try PGConnectionConfig.parse(url: "postgresql://mayfly@pg-1/m?target_session_attrs=leader") }
    }

    @Test(arguments: ["disable", "prefer", "require", "verify-ca"])
    func nonLocalHostNeedsVerifyFull(mode: String) throws {
        let config = try PGConnectionConfig.parse(url: "postgresql://admin@db.internal/orders?sslmode=\(mode)")
        do {
            try config.checkTLSPolicy(allowInsecure: false)
            Issue.record("sslmode=\(mode) to a remote host must be refused")
        } catch let error as PGError {
            #expect(error.code == .insecureTLS)
            #expect(error.message.contains("verify-full"))
            #expect(error.message.contains("does not authenticate the server"))
        }
        try config.checkTLSPolicy(allowInsecure: true)
        try PGConnectionConfig.parse(url: "postgresql://admin@127.0.0.1/orders?sslmode=\(mode)").checkTLSPolicy(allowInsecure: false)
    }
}

@Suite(.enabled(if: TestCluster.enabled, "needs the test PostgreSQL from scripts/test"))
struct PGConnectionTests {
    @Test func connectsWithVerifyFullOverTLS() async throws {
        let connection = try await PGConnection.connect(try TestCluster.config())
        #expect(try await connection.usesTLS())
        let rows = try await connection.query("SELECT current_user, $1::int + 1", ["41"])
        #expect(rows == [[TestCluster.environment["MAYFLY_TEST_PG_USER"], "42"]])
        await connection.close()
        await #expect(throws: PGError.self) { try await connection.query("SELECT 1") }
    }

    /// libpq gets every host of a multi-host URL: the first (nothing listens there) fails and
    /// the next one, the real server, is used.
    @Test func aMultiHostURLReachesTheServerThatAnswers() async throws {
        let real = try TestCluster.config()
        let dead = LoopbackPort.free()  // nothing listens there
        var config = try PGConnectionConfig.parse(
            url: "postgresql://\(real.user)@127.0.0.1:\(dead),\(real.host):\(real.port)/\(real.database)?target_session_attrs=read-write")
        config.password = real.password
        config.sslRootCert = real.sslRootCert
        let connection = try await PGConnection.connect(config)
        #expect(try await connection.query("SELECT inet_server_port()") == [[String(real.port)]])
        await connection.close()
    }

    @Test func wrongCAFailsVerification() async throws {
        var config = try TestCluster.config()
        let bogus = NSTemporaryDirectory() + "/mf-bogus-ca-\(UUID().uuidString.prefix(6)).pem"
        // A self-signed CA unrelated to the server's.
        let openssl = try ChildProcess.spawn(
            ["/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", bogus + ".key", "-out", bogus,
             "-days", "1", "-subj", "/CN=bogus"],
            environment: ProcessInfo.processInfo.environment, input: "/dev/null", output: "/dev/null", errors: "/dev/null")
        #expect(await openssl.exitCode(killingAfter: .seconds(60)) == 0)
        config.sslRootCert = bogus
        await #expect(throws: PGError.self) { _ = try await PGConnection.connect(config) }
    }

    @Test func wrongPasswordIsAGenericError() async throws {
        var config = try TestCluster.config()
        config.password = "definitely-wrong-password"
        do {
            _ = try await PGConnection.connect(config)
            Issue.record("a wrong password must fail")
        } catch let error as PGError {
            #expect(error.code == .connection)
            #expect(!error.description.contains("definitely-wrong-password"))
            #expect(!String(reflecting: error).contains("definitely-wrong-password"))
        }
    }

    @Test(arguments: [#"a"b"#, #"x"; DROP ROLE mayfly_admin; --"#, "ünïcode", "with space", #"\"#])
    func hostileIdentifiersStayIdentifiers(name: String) async throws {
        let connection = try await PGConnection.connect(try TestCluster.config())
        let identifier = try await connection.escapeIdentifier(name)
        let literal = try await connection.escapeLiteral(name)
        let rows = try await connection.query("SELECT \(literal) AS \(identifier)")
        #expect(rows == [[name]])
        let named = try await connection.query("SELECT x FROM (SELECT 1) AS t(\(identifier)) CROSS JOIN LATERAL (SELECT \(literal) AS x) s")
        #expect(named == [[name]])
        await connection.close()
    }

    /// A failing statement's error quotes neither the statement (libpq's "LINE 1: …") nor a
    /// password verifier near the error.
    @Test func statementErrorsCarryNoVerifier() async throws {
        let connection = try await PGConnection.connect(try TestCluster.config())
        let verifier = "SCRAM-SHA-256$16:c2FsdHNhbHQ=$c3RvcmVka2V5:c2VydmVya2V5"
        for sql in ["SELECT 1 BOGUS '\(verifier)'", "SELECT '\(verifier)' FROM WHERE", "ALTER ROLE nobody_here_x PASSWORD '\(verifier)'"] {
            let error = await #expect(throws: PGError.self) { try await connection.execute(sql) }
            let text = String(reflecting: try #require(error))
            #expect(!text.contains("c3RvcmVka2V5") && !text.contains("LINE 1"), "\(text)")
        }
        await connection.close()
    }

    /// Revocation visits every database of the cluster for each batch: a connection to another
    /// database is pooled and reused like the rest, and the pool's limit holds across databases
    /// (an idle connection to one is closed to make room for another), and one to another
    /// database is closed soon after its last use.
    @Test func connectionsToOtherDatabasesAreReusedWithinTheLimit() async throws {
        let pool = PGPool(config: try TestCluster.config(), maxConnections: 1)
        let pid = { @Sendable (connection: PGConnection) in try await connection.query("SELECT pg_backend_pid()::text").first?[0] ?? "" }
        let first = try await pool.withConnection(toDatabase: "postgres", pid)
        #expect(try await pool.withConnection(toDatabase: "postgres", pid) == first, "the same backend serves the next batch")
        #expect(try await pool.withConnection(toDatabase: "postgres") { try await $0.query("SELECT current_database()") } == [["postgres"]])
        // One connection at most: the main database takes the room of the idle one.
        let main = try await pool.withConnection(pid)
        #expect(main != first)
        #expect(await pool.openConnections == 1)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<8 {
                group.addTask {
                    let database = index % 2 == 0 ? "postgres" : (TestCluster.environment["MAYFLY_TEST_PG_DB"] ?? "mayfly_test")
                    let rows = try await pool.withConnection(toDatabase: database) { try await $0.query("SELECT current_database()") }
                    #expect(rows == [[database]])
                    #expect(await pool.openConnections <= 1)
                }
            }
            try await group.waitForAll()
        }
        // Left idle, a connection to another database goes (it would hold up CREATE DATABASE).
        _ = try await pool.withConnection(toDatabase: "postgres", pid)
        #expect(await pool.openConnections == 1)
        try await Task.sleep(for: PGPool.otherDatabaseIdle + .milliseconds(500))
        #expect(await pool.openConnections == 0)
        await pool.close()
    }
}
