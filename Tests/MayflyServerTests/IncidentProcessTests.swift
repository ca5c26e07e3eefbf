import Foundation
import MayflyClient
import MayflyCore
import MayflyPostgres
import Testing

/// The leak response against real server processes (issue 5, points 3 and 4): a database
/// that is down while `mayfly revoke` runs, and a server killed in the middle of one.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["MAYFLY_TEST_PG_HOST"] != nil
                || ProcessInfo.processInfo.environment["MAYFLY_REQUIRE_INTEGRATION"] == "1",
                "needs PostgreSQL (scripts/test)"), .serialized)
struct IncidentProcessTests {
    static func env(_ name: String) throws -> String { try ReconcileProcessTests.env(name) }

    /// `database/config` body for the shared test cluster.
    /// `budget`: the connection budget share (0 turns it off, for tests that issue hundreds).
    static func sharedConfig(budget: Double = 0.8) throws -> String {
        let url = "postgresql://\(try env("MAYFLY_TEST_PG_USER"))@127.0.0.1:\(try env("MAYFLY_TEST_PG_PORT"))/\(try env("MAYFLY_TEST_PG_DB"))?sslmode=verify-full&sslrootcert=\(try env("MAYFLY_TEST_PG_SSLROOTCERT"))"
        return String(decoding: JSONValue.object([
            "connection_url": .string(url), "password": .string(try env("MAYFLY_TEST_PG_PASSWORD")), "allowed_roles": "*",
            "connection_budget": .double(budget),
        ]).encoded(), as: UTF8.self)
    }

    static func initialise(_ server: ServerProcess) async throws -> String {
        let body = try JSONValue.parse(try await server.request("PUT", "sys/init", json: "{}").body)
        return try #require(body["root_token"]?.stringValue)
    }

    static func issue(_ server: ServerProcess, _ role: String, token: String) async throws -> (user: String, password: String) {
        let response = try await server.request("GET", "database/creds/\(role)", token: token)
        #expect(response.status == 200)
        let body = try JSONValue.parse(response.body)
        return (body["data"]?["username"]?.stringValue ?? "", body["data"]?["password"]?.stringValue ?? "")
    }

    static func login(_ user: String, _ password: String, port: String, database: String, ca: String) async -> Bool {
        guard let connection = try? await PGConnection.connect(PGConnectionConfig(
            host: "127.0.0.1", port: Int(port)!, database: database, user: user, password: password, sslRootCert: ca))
        else { return false }
        await connection.close()
        return true
    }

    /// Point 3: with one database down, `mayfly revoke` reports it and exits 3; the other is
    /// fully revoked; once the database is back the incident completes by itself.
    @Test func aStoppedDatabaseIsReportedAndTheIncidentCompletesWhenItReturns() async throws {
        try await DedicatedCluster.with { cluster in
            let keyFile = NSTemporaryDirectory() + "/mf-\(UUID().uuidString.prefix(6)).key"
            let server = try ServerProcess(extraConfig: #"seal "keyfile" { path = "\#(keyFile)" }"#)
            defer { server.signal(SIGTERM) }
            try await stoppedDatabase(cluster, server)
        }
    }

    private func stoppedDatabase(_ cluster: DedicatedCluster, _ server: ServerProcess) async throws {
        try await server.start()
        let token = try await Self.initialise(server)
        let fragile = JSONValue.object([
            "connection_url": .string(try cluster.connectionURL()),
            "password": .string(try cluster.value("MAYFLY_TEST_PG_PASSWORD")), "allowed_roles": "*",
        ])
        #expect(try await server.request("POST", "database/config/fragile", token: token,
                                         json: String(decoding: fragile.encoded(), as: UTF8.self)).status == 204)
        #expect(try await server.request("POST", "database/config/main", token: token, json: try Self.sharedConfig()).status == 204)
        for (role, database) in [("frag", "fragile"), ("steady", "main")] {
            #expect(try await server.request("POST", "database/roles/\(role)", token: token,
                                             json: #"{"db_name":"\#(database)","default_ttl":"10m"}"#).status == 204)
        }
        var fragileCreds: [(user: String, password: String)] = []
        var mainCreds: [(user: String, password: String)] = []
        for _ in 0..<3 {
            fragileCreds.append(try await Self.issue(server, "frag", token: token))
            mainCreds.append(try await Self.issue(server, "steady", token: token))
        }
        try await cluster.stopServer()

        let address = ["MAYFLY_ADDR": "unix://" + server.socketPath, "MAYFLY_TOKEN": token]
        let result = try await CLITests.mayfly(["revoke", "--all", "--reason", "test: fragile database down", "--format", "json"], env: address)
        #expect(result.status == 3, "something is still being retried: exit 3; stderr: \(result.stderr)")
        let report = try JSONValue.parse(Array(result.stdout.utf8))
        #expect(report["state"] == "retrying")
        #expect(report["databases"]?["main"]?["credentials_revoked"] == 3)
        #expect(report["databases"]?["fragile"]?["credentials_pending"] == 3)
        let failure = report["failures"]?.arrayValue?.first { $0["database"] == "fragile" }
        #expect(failure?["retrying"] == true)
        #expect(failure?["reason"]?.stringValue?.contains("connect") == true, "the reason is given: \(String(describing: failure))")
        for credential in mainCreds {
            #expect(await !Self.login(credential.user, credential.password, port: try Self.env("MAYFLY_TEST_PG_PORT"),
                                      database: try Self.env("MAYFLY_TEST_PG_DB"), ca: try Self.env("MAYFLY_TEST_PG_SSLROOTCERT")))
        }
        let table = try await CLITests.mayfly(["incident", "show", try #require(report["id"]?.stringValue)], env: address)
        #expect(table.status == 3 && table.stdout.contains("fragile") && table.stdout.contains("retried"))

        // The database comes back; nobody touches Mayfly; the incident completes by itself.
        try await cluster.startServer()
        let id = try #require(report["id"]?.stringValue)
        let deadline = Date().addingTimeInterval(90)
        var shown = CLITests.Result(status: -1, stdout: "", stderr: "")
        while Date() < deadline {
            shown = try await CLITests.mayfly(["incident", "show", id, "--format", "json"], env: address)
            if shown.status == 0 { break }
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(shown.status == 0, "the incident completed: \(shown.stdout)")
        let final = try JSONValue.parse(Array(shown.stdout.utf8))
        #expect(final["state"] == "completed" && final["failures"] == [])
        #expect(final["databases"]?["fragile"]?["credentials_revoked"] == 3)
        for credential in fragileCreds {
            #expect(await !Self.login(credential.user, credential.password, port: try cluster.value("MAYFLY_TEST_PG_PORT"),
                                      database: try cluster.value("MAYFLY_TEST_PG_DB"), ca: try cluster.value("MAYFLY_TEST_PG_SSLROOTCERT")))
        }
        let list = try await CLITests.mayfly(["incident", "list"], env: address)
        #expect(list.status == 0 && list.stdout.contains(id) && list.stdout.contains("completed"))
    }

    /// Point 4: kill -9 in the middle of a large revoke; after the restart the incident
    /// resumes by itself and completes, and nothing fails for being revoked twice.
    @Test func killDuringALargeRevokeResumesAfterRestart() async throws {
        let keyFile = NSTemporaryDirectory() + "/mf-\(UUID().uuidString.prefix(6)).key"
        let server = try ServerProcess(extraConfig: #"seal "keyfile" { path = "\#(keyFile)" }"#)
        defer { server.signal(SIGTERM) }
        try await server.start(environment: ["MAYFLY_FAULT": "after-incident-batch"])
        let token = try await Self.initialise(server)
        #expect(try await server.request("POST", "database/config/main", token: token,
                                         json: try Self.sharedConfig(budget: 0)).status == 204)
        let role = "bulk-\(UUID().uuidString.prefix(4).lowercased())"
        #expect(try await server.request("POST", "database/roles/\(role)", token: token,
                                         json: #"{"db_name":"main","default_ttl":"10m"}"#).status == 204)
        let count = 600
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for _ in stride(from: worker, to: count, by: 8) { _ = try await Self.issue(server, role, token: token) }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await ReconcileProcessTests.markedRoles(role).count == count)

        // The server dies after the first batch of the revocation.
        _ = try? await server.request("POST", "sys/mayfly/revoke", token: token, json: #"{"all":true,"reason":"kill test"}"#)
        try await server.waitForExit()
        let left = try await ReconcileProcessTests.markedRoles(role).count
        #expect(left > 0 && left < count, "the crash came mid-way (\(left) of \(count) left)")

        try await server.start()
        let deadline = Date().addingTimeInterval(90)
        var incident: JSONValue = .null
        while Date() < deadline {
            let listed = try JSONValue.parse(try await server.request("LIST", "sys/mayfly/incidents", token: token).body)
            if let id = listed["data"]?["keys"]?.arrayValue?.first?.stringValue {
                incident = try JSONValue.parse(try await server.request("GET", "sys/mayfly/incidents/\(id)", token: token).body)["data"] ?? .null
                if incident["state"] == "completed" { break }
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        #expect(incident["state"] == "completed", "resumed and completed: \(incident)\n\(server.log())")
        #expect(incident["failures"] == [])
        #expect((incident["passes"]?.intValue ?? 0) >= 2, "the restart resumed it")
        #expect(incident["databases"]?["main"]?["credentials_revoked"] == .int(Int64(count)))
        #expect(try await ReconcileProcessTests.markedRoles(role).isEmpty)
        #expect(server.log().contains("incident resumed after a restart"))
        #expect(!server.log().contains("revocation failed"), "nothing failed for being revoked twice")
    }
}
