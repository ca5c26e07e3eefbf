import Foundation
import Glibc
import MayflyClient
import MayflyPostgres
import Testing

/// `storage "postgresql"` end to end (issue 15, first step): a server on a PostgreSQL store
/// initialises, serves, restarts and unseals from it; PostgreSQL holds ciphertext only; a
/// second server on the same store is refused while Mayfly runs without HA.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["MAYFLY_TEST_PG_HOST"] != nil
    || ProcessInfo.processInfo.environment["MAYFLY_REQUIRE_INTEGRATION"] == "1", "needs the test PostgreSQL from scripts/test"),
    .serialized)
struct PostgresStoreProcessTests {
    static func storage(schema: String, directory: String, extra: String = "") throws -> String {
        let env = ReconcileProcessTests.env
        let passwordFile = directory + "/store.password"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try env("MAYFLY_TEST_PG_PASSWORD").write(toFile: passwordFile, atomically: true, encoding: .utf8)
        return """
            storage "postgresql" {
              connection_url = "postgresql://\(try env("MAYFLY_TEST_PG_USER"))@127.0.0.1:\(try env("MAYFLY_TEST_PG_PORT"))/\(try env("MAYFLY_TEST_PG_DB"))?sslmode=verify-full&sslrootcert=\(try env("MAYFLY_TEST_PG_SSLROOTCERT"))"
              password_file  = "\(passwordFile)"
              schema         = "\(schema)"
              \(extra)
            }
            """
    }

    @Test func aServerOnAPostgreSQLStoreServesRestartsAndHoldsOnlyCiphertext() async throws {
        let schema = "mf_node_" + UUID().uuidString.prefix(8).lowercased()
        let shared = "/tmp/mf-pgstore-\(UUID().uuidString.prefix(6))"
        let storage = try Self.storage(schema: schema, directory: shared)
        let server = try ServerProcess(extraConfig: #"seal "keyfile" { path = "\#(shared)/unseal.key" }"#, storage: storage)
        try await server.start()
        let initialized = try await server.request("PUT", "sys/init", json: "{}")
        let token = try #require(try JSONValue.parse(initialized.body)["root_token"]?.stringValue)
        let secret = "correct-horse-\(UUID().uuidString)"
        #expect(try await server.request("POST", "secret/data/app", token: token, json: #"{"data":{"pw":"\#(secret)"}}"#).status == 200)
        await server.kill(signal: SIGTERM)
        try await server.waitForExit()

        // Another node's files, the same store: it unseals from the key file and reads the secret.
        let again = try ServerProcess(extraConfig: #"seal "keyfile" { path = "\#(shared)/unseal.key" }"#, storage: storage)
        try await again.start()
        defer { again.signal(SIGTERM) }
        let read = try await again.request("GET", "secret/data/app", token: token)
        #expect(read.status == 200)
        #expect(try JSONValue.parse(read.body)["data"]?["data"]?["pw"]?.stringValue == secret)

        // PostgreSQL holds ciphertext and paths: the secret is nowhere in the store's tables.
        let admin = try await ReconcileProcessTests.admin()
        let rows = try await admin.query(
            "SELECT count(*), count(*) FILTER (WHERE position(convert_to($1, 'UTF8') IN value) > 0) FROM \"\(schema)\".entries", [secret])
        await admin.close()
        #expect(Int(rows.first?[0] ?? "") ?? 0 > 5, "the barrier's entries are in PostgreSQL")
        #expect(rows.first?[1] == "0", "no plaintext secret in the store")

        // While it runs, a second server on the same store is refused.
        let second = try ServerProcess(storage: storage)
        let refused = try await SecondServerTests.runToExit(["server", "--config", second.configPath])
        #expect(refused.status == 1, "\(refused.output)")
        #expect(refused.output.contains("is in use by another server"), "\(refused.output)")
        #expect(try await again.request("GET", "sys/health").status == 200)
    }

    @Test func operatorMigrateCopiesASQLiteStoreIntoPostgreSQLThatThenUnsealsWithTheSameKeys() async throws {
        let shared = "/tmp/mf-migrate-\(UUID().uuidString.prefix(6))"
        let seal = #"seal "keyfile" { path = "\#(shared)/unseal.key" }"#
        let old = try ServerProcess(extraConfig: seal)
        try await old.start()
        let token = try #require(try JSONValue.parse(try await old.request("PUT", "sys/init", json: "{}").body)["root_token"]?.stringValue)
        for index in 0..<30 {
            #expect(try await old.request("POST", "secret/data/app/\(index)", token: token, json: #"{"data":{"n":"\#(index)"}}"#).status == 200)
        }
        // Everything a store holds: KV versions, a policy, a token, a lease, a static role.
        #expect(try await old.request("POST", "secret/data/app/0", token: token, json: #"{"data":{"n":"0, second version"}}"#).status == 200)
        #expect(try await old.request("PUT", "sys/policies/acl/migrated", token: token,
                                      json: #"{"policy":"path \"secret/data/app/*\" { capabilities = [\"read\"] }"}"#).status == 204)
        let child = try #require(try JSONValue.parse(try await old.request("POST", "auth/token/create", token: token,
                                                                           json: #"{"policies":["migrated"]}"#).body)["auth"]?["client_token"]?.stringValue)
        #expect(try await old.configureTestDatabase("db", token: token) == 204)
        #expect(try await old.request("POST", "database/roles/migrated", token: token, json: #"{"db_name":"db","default_ttl":"1h"}"#).status == 204)
        let lease = try #require(try JSONValue.parse(try await old.request("GET", "database/creds/migrated", token: token).body)["lease_id"]?.stringValue)
        let user = "mf_migrated_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = try await ReconcileProcessTests.admin()
        try await admin.execute("CREATE ROLE \(user) LOGIN")
        await admin.close()
        #expect(try await old.request("POST", "database/static-roles/migrated", token: token,
                                      json: #"{"db_name":"db","username":"\#(user)","rotation_period":"1h"}"#).status == 204)
        let staticPassword = try #require(try JSONValue.parse(try await old.request("GET", "database/static-creds/migrated", token: token).body)["data"]?["password"]?.stringValue)
        await old.kill(signal: SIGTERM)
        try await old.waitForExit()

        let schema = "mf_migrated_" + UUID().uuidString.prefix(8).lowercased()
        let new = try ServerProcess(extraConfig: seal, storage: try Self.storage(schema: schema, directory: shared))
        let migrated = try await SecondServerTests.runToExit(["operator", "migrate", "--from", old.configPath, "--to", new.configPath])
        #expect(migrated.status == 0, "\(migrated.output)")
        #expect(migrated.output.contains("migrate: done:"), "a progress line: \(migrated.output)")
        #expect(migrated.output.contains("Success! Copied"), "\(migrated.output)")

        try await new.start()
        defer { new.signal(SIGTERM) }
        #expect(try await new.request("GET", "sys/health").status == 200, "unsealed from the same key file")
        let read = try await new.request("GET", "secret/data/app/29", token: token)
        #expect(try JSONValue.parse(read.body)["data"]?["data"]?["n"] == "29", "the root token and the secrets came along")
        let first = try await new.request("GET", "secret/data/app/0", token: token, query: [("version", "1")])
        #expect(try JSONValue.parse(first.body)["data"]?["data"]?["n"] == "0", "KV versions came along")
        #expect(try JSONValue.parse(try await new.request("GET", "secret/data/app/0", token: child).body)["data"]?["data"]?["n"]
                == "0, second version", "the child token and its policy came along")
        #expect(try await new.request("GET", "secret/data/other", token: child).status == 403)
        let looked = try await new.request("PUT", "sys/leases/lookup", token: token, json: #"{"lease_id":"\#(lease)"}"#)
        #expect(looked.status == 200, "the lease came along: \(String(decoding: looked.body, as: UTF8.self))")
        let statics = try JSONValue.parse(try await new.request("GET", "database/static-creds/migrated", token: token).body)
        #expect(statics["data"]?["password"]?.stringValue == staticPassword, "the static role came along")
        #expect(try await RotationProcessTests.canLogIn(user, staticPassword))

        // Never into a store that holds anything (the new server holds its lock, too).
        await new.kill(signal: SIGTERM)
        try await new.waitForExit()
        let again = try await SecondServerTests.runToExit(["operator", "migrate", "--from", old.configPath, "--to", new.configPath])
        #expect(again.status == 1)
        #expect(again.output.contains("not empty"), "\(again.output)")
    }
}
