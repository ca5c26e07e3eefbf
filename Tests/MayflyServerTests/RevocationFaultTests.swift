import Foundation
import MayflyClient
import MayflyCore
import MayflyPostgres
import Testing

/// Revocation against a PostgreSQL that goes away (issue 3, rule 5): the failure is recorded
/// on the lease and the server's own sweeper retries until the role is gone.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["MAYFLY_TEST_PG_HOST"] != nil
                || ProcessInfo.processInfo.environment["MAYFLY_REQUIRE_INTEGRATION"] == "1",
                "needs PostgreSQL (scripts/test)"), .serialized)
struct RevocationFaultTests {
    @Test func postgresStoppedDuringRevocationIsRetriedUntilTheRoleIsGone() async throws {
        try await DedicatedCluster.with { cluster in
            let server = try ServerProcess(extraConfig: #"seal "keyfile" { path = "\#(NSTemporaryDirectory())/mf-\#(UUID().uuidString.prefix(6)).key" }"#)
            defer { server.signal(SIGTERM) }
            try await run(cluster, server)
        }
    }

    private func run(_ cluster: DedicatedCluster, _ server: ServerProcess) async throws {
        try await server.start()
        let token = try #require(try JSONValue.parse(try await server.request("PUT", "sys/init", json: "{}").body)["root_token"]?.stringValue)
        let config = JSONValue.object([
            "connection_url": .string(try cluster.connectionURL()),
            "password": .string(try cluster.value("MAYFLY_TEST_PG_PASSWORD")), "allowed_roles": "*",
        ])
        #expect(try await server.request("POST", "database/config/fragile", token: token,
                                         json: String(decoding: config.encoded(), as: UTF8.self)).status == 204)
        #expect(try await server.request("POST", "database/roles/app", token: token,
                                         json: #"{"db_name":"fragile","default_ttl":"10m"}"#).status == 204)
        let creds = try JSONValue.parse(try await server.request("GET", "database/creds/app", token: token).body)
        let leaseID = try #require(creds["lease_id"]?.stringValue)
        let username = try #require(creds["data"]?["username"]?.stringValue)
        let lookupBody = #"{"lease_id":"\#(leaseID)"}"#

        // PostgreSQL goes away; the revocation fails, says it will be retried, and the lease
        // shows why.
        try await cluster.stopServer()
        let revoke = try await server.request("PUT", "sys/leases/revoke", token: token, json: lookupBody)
        #expect(revoke.status == 500)
        #expect(String(decoding: revoke.body, as: UTF8.self).contains("will be retried"))
        let lookup = try JSONValue.parse(try await server.request("PUT", "sys/leases/lookup", token: token, json: lookupBody).body)
        #expect(lookup["data"]?["state"] == "revoking")
        #expect((lookup["data"]?["revocation_attempts"]?.intValue ?? 0) >= 1)
        let lastError = try #require(lookup["data"]?["last_error"]?.stringValue)
        #expect(lastError.contains("connection") || lastError.contains("connect"), "the error says why: \(lastError)")
        #expect(!lastError.contains(try cluster.value("MAYFLY_TEST_PG_PASSWORD")), "no secret in the recorded error")
        // Issue 12, finding 5: a client asking for a credential now is told the database is
        // unreachable (not "internal error"), and when to try again.
        let unreachable = try await server.request("GET", "database/creds/app", token: token)
        #expect(unreachable.status == 502, "\(unreachable.status)")
        #expect(String(decoding: unreachable.body, as: UTF8.self).contains(#"database \"fragile\" is unreachable"#))

        // PostgreSQL comes back; nobody touches Mayfly; the sweeper's retry finishes the job.
        try await cluster.startServer()
        let deadline = Date().addingTimeInterval(60)
        var status = 0
        while Date() < deadline {
            status = try await server.request("PUT", "sys/leases/lookup", token: token, json: lookupBody).status
            if status == 400 { break }  // revoked leases are no longer found
            try await Task.sleep(for: .milliseconds(250))
        }
        #expect(status == 400, "the lease was revoked by the retry")
        let admin = try await PGConnection.connect(PGConnectionConfig(
            host: "127.0.0.1", port: Int(try cluster.value("MAYFLY_TEST_PG_PORT"))!, database: try cluster.value("MAYFLY_TEST_PG_DB"),
            user: try cluster.value("MAYFLY_TEST_PG_USER"), password: try cluster.value("MAYFLY_TEST_PG_PASSWORD"),
            sslRootCert: try cluster.value("MAYFLY_TEST_PG_SSLROOTCERT")))
        #expect(try await admin.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [username]).isEmpty, "the role is gone")
        await admin.close()
        #expect(server.log().contains("revocation failed"), "the failure is logged")
    }
}
