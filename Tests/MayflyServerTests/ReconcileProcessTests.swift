import Foundation
import MayflyClient
import MayflyCore
import MayflyPostgres
import Testing

/// Kill -9 between the steps of issuance; after a restart, reconcile leaves no role without a
/// live lease and no live lease without a role (issue 3, rule 4).
@Suite(.enabled(if: ProcessInfo.processInfo.environment["MAYFLY_TEST_PG_HOST"] != nil
                || ProcessInfo.processInfo.environment["MAYFLY_REQUIRE_INTEGRATION"] == "1",
                "needs the test PostgreSQL from scripts/test"), .serialized)
struct ReconcileProcessTests {
    static func env(_ name: String) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name] else {
            throw ServerProcessError(message: "\(name) is not set: run the tests with scripts/test")
        }
        return value
    }

    static func admin() async throws -> PGConnection {
        try await PGConnection.connect(PGConnectionConfig(
            host: "127.0.0.1", port: Int(try env("MAYFLY_TEST_PG_PORT"))!, database: try env("MAYFLY_TEST_PG_DB"),
            user: try env("MAYFLY_TEST_PG_USER"), password: try env("MAYFLY_TEST_PG_PASSWORD"),
            sslRootCert: try env("MAYFLY_TEST_PG_SSLROOTCERT")))
    }

    /// Roles marked for leases of `role`.
    static func markedRoles(_ role: String) async throws -> [String] {
        let admin = try await admin()
        defer { Task { await admin.close() } }
        return try await admin.query(
            "SELECT rolname FROM pg_roles WHERE shobj_description(oid, 'pg_authid') LIKE $1", ["mayfly lease database/creds/\(role)/%"]
        ).compactMap { $0[0] }
    }

    @Test(arguments: ["after-lease-write", "after-create-role"])
    func killDuringIssuanceIsReconciledOnRestart(fault: String) async throws {
        let keyFile = NSTemporaryDirectory() + "/mf-\(UUID().uuidString.prefix(6)).key"
        let server = try ServerProcess(extraConfig: #"seal "keyfile" { path = "\#(keyFile)" }"#)
        try await server.start(environment: ["MAYFLY_FAULT": fault])
        let initBody = try JSONValue.parse(try await server.request("PUT", "sys/init", json: "{}").body)
        let token = try #require(initBody["root_token"]?.stringValue)
        let url = "postgresql://\(try Self.env("MAYFLY_TEST_PG_USER"))@127.0.0.1:\(try Self.env("MAYFLY_TEST_PG_PORT"))/\(try Self.env("MAYFLY_TEST_PG_DB"))?sslmode=verify-full&sslrootcert=\(try Self.env("MAYFLY_TEST_PG_SSLROOTCERT"))"
        let config = JSONValue.object([
            "connection_url": .string(url), "password": .string(try Self.env("MAYFLY_TEST_PG_PASSWORD")), "allowed_roles": "*",
        ])
        #expect(try await server.request("POST", "database/config/db", token: token,
                                         json: String(decoding: config.encoded(), as: UTF8.self)).status == 204)
        let role = "crash-\(fault)"
        #expect(try await server.request("POST", "database/roles/\(role)", token: token,
                                         json: #"{"db_name":"db","default_ttl":"10m"}"#).status == 204)
        // The server dies at the fault point while issuing.
        _ = try? await server.request("GET", "database/creds/\(role)", token: token)
        try await server.waitForExit()
        if fault == "after-create-role" {
            #expect(try await Self.markedRoles(role).count == 1, "the role was created before the crash")
        }
        func reconciles() -> Int { server.log().components(separatedBy: "reconciled after unseal").count - 1 }
        let before = reconciles()
        try await server.start()
        // Reconcile starts right after the key-file unseal, beside serving; it is done within seconds.
        let deadline = ContinuousClock.now + .seconds(30)
        while reconciles() == before, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await Self.markedRoles(role).isEmpty, "no role without a live lease; log:\n\(server.log())")
        let leases = try await server.request("LIST", "sys/leases/lookup/database/creds/\(role)/", token: token)
        #expect(leases.status == 404, "no live lease without a role")
        #expect(reconciles() > before, "the reconcile after the restart finished (not the deadline)")
        // And the broker still issues normally.
        let issued = try await server.request("GET", "database/creds/\(role)", token: token)
        #expect(issued.status == 200)
        #expect(try await Self.markedRoles(role).count == 1)
        _ = try await server.request("PUT", "sys/leases/revoke-prefix/database/creds/\(role)", token: token)
        #expect(try await Self.markedRoles(role).isEmpty)
        await server.kill(signal: SIGTERM)
    }
}
