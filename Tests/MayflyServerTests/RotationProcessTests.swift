import Foundation
import MayflyClient
import MayflyCore
import MayflyPostgres
import Testing

/// Kill -9 in the middle of a static-role rotation (issue 6, point 3): after the restart the
/// stored password and PostgreSQL's agree and the static credentials log in.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["MAYFLY_TEST_PG_HOST"] != nil
                || ProcessInfo.processInfo.environment["MAYFLY_REQUIRE_INTEGRATION"] == "1",
                "needs the test PostgreSQL from scripts/test"), .serialized)
struct RotationProcessTests {
    static func env(_ name: String) throws -> String { try ReconcileProcessTests.env(name) }

    static func canLogIn(_ user: String, _ password: String) async throws -> Bool {
        await IncidentProcessTests.login(user, password, port: try env("MAYFLY_TEST_PG_PORT"), database: try env("MAYFLY_TEST_PG_DB"),
                                         ca: try env("MAYFLY_TEST_PG_SSLROOTCERT"))
    }

    @Test(arguments: ["after-rotation-intent", "after-rotation-alter"])
    func killDuringRotationLeavesStoreAndPostgreSQLAgreeing(fault: String) async throws {
        let keyFile = NSTemporaryDirectory() + "/mf-\(UUID().uuidString.prefix(6)).key"
        let server = try ServerProcess(extraConfig: #"seal "keyfile" { path = "\#(keyFile)" }"#)
        defer { server.signal(SIGTERM) }
        try await server.start()
        let token = try await IncidentProcessTests.initialise(server)
        #expect(try await server.request("POST", "database/config/main", token: token,
                                         json: try IncidentProcessTests.sharedConfig()).status == 204)
        let user = "mf_static_\(UUID().uuidString.prefix(8).lowercased())"
        let admin = try await ReconcileProcessTests.admin()
        try await admin.execute("CREATE ROLE \(user) LOGIN")
        await admin.close()
        #expect(try await server.request("POST", "database/static-roles/crash", token: token,
                                         json: #"{"db_name":"main","username":"\#(user)","rotation_period":"1h"}"#).status == 204)
        let before = try JSONValue.parse(try await server.request("GET", "database/static-creds/crash", token: token).body)
        let oldPassword = try #require(before["data"]?["password"]?.stringValue)
        #expect(try await Self.canLogIn(user, oldPassword))
        await server.kill(signal: SIGTERM)

        // The server dies in the middle of a rotation.
        try await server.start(environment: ["MAYFLY_FAULT": fault])
        _ = try? await server.request("POST", "database/rotate-role/crash", token: token)
        try await server.waitForExit()
        if fault == "after-rotation-alter" {
            #expect(try await !Self.canLogIn(user, oldPassword), "PostgreSQL already has the new password")
        }

        try await server.start()
        let after = try JSONValue.parse(try await server.request("GET", "database/static-creds/crash", token: token).body)
        let password = try #require(after["data"]?["password"]?.stringValue)
        #expect(password != oldPassword, "the interrupted rotation was finished, not abandoned")
        #expect(try await Self.canLogIn(user, password), "the stored password is PostgreSQL's; log:\n\(server.log())")
        #expect(try await !Self.canLogIn(user, oldPassword))
        #expect(server.log().contains("finished an interrupted rotation"))
        // And rotation goes on normally.
        #expect(try await server.request("POST", "database/rotate-role/crash", token: token).status == 204)
        let again = try JSONValue.parse(try await server.request("GET", "database/static-creds/crash", token: token).body)
        #expect(try await Self.canLogIn(user, try #require(again["data"]?["password"]?.stringValue)))
    }
}
