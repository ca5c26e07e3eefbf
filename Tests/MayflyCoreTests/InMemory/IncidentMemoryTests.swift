import Foundation
@testable import MayflyCore
import Testing

/// Leak response (`sys/mayfly/revoke`) against the in-memory credential backend on a manual
/// clock; `IncidentTests` proves the same against PostgreSQL.
@Suite struct IncidentMemoryTests {
    @Test func revokeAllEndsLoginsSessionsStaticPasswordsAndTokens() async throws {
        let f = try await MemoryFixture.make()
        var credentials: [(MemoryFixture.Credential, String)] = []
        for _ in 0..<3 { credentials.append((try await f.issue("r1"), "one")) }
        for _ in 0..<2 { credentials.append((try await f.issue("r2"), "two")) }
        for (credential, name) in [credentials[0], credentials[1], credentials[3]] {
            f.databases[name]!.openSession(credential.user)
        }
        f.databases["one"]!.set {
            $0.logins["app"] = .init(password: "before-mayfly", validUntil: nil, groups: [], marker: nil, connectionLimit: -1)
        }
        try await f.t.call(.update, "database/static-roles/single", ["db_name": "one", "username": "app", "rotation_period": "1h"])
        let staticBefore = try await f.t.data(.read, "database/static-creds/single")
        #expect(!f.databases["one"]!.canLogIn("app", "before-mayfly", at: f.now), "creating a static role rotates it")
        try await f.t.call(.update, "sys/policies/acl/maker", ["policy": #"path "auth/token/create" { capabilities = ["update"] }"#])
        guard case .envelope(let created, _) = try await f.t.call(.update, "auth/token/create", ["policies": ["maker"]]) else {
            Issue.record("no token"); return
        }
        let token = try #require(created.auth["client_token"]?.stringValue)

        let report = try await f.t.data(.update, "sys/mayfly/revoke", [
            "all": true, "rotate": true, "tokens": true, "reason": "laptop stolen",
        ])

        #expect(report["state"] == "completed")
        #expect(report["totals"]?["credentials_revoked"] == 5)
        #expect(report["totals"]?["sessions_terminated"] == 3)
        // The static role's user, and the admin login of each database.
        #expect(report["totals"]?["passwords_rotated"] == 3)
        #expect(report["databases"]?["one"]?["credentials_revoked"] == 3)
        #expect(report["failures"] == [])
        for (credential, name) in credentials { #expect(!f.canLogIn(credential, name)) }
        for database in f.databases.values {
            #expect(database.server.sessions.isEmpty)
            #expect(database.server.adminPassword != "admin-password", "the admin password changed")
        }
        #expect(!f.databases["one"]!.canLogIn("app", staticBefore["password"]!.stringValue!, at: f.now))
        let staticAfter = try await f.t.data(.read, "database/static-creds/single")
        #expect(f.databases["one"]!.canLogIn("app", staticAfter["password"]!.stringValue!, at: f.now))
        #expect(await f.t.status(.read, "auth/token/lookup-self", token: token) == 403)
        // The broker still works with the password only it knows.
        let fresh = try await f.issue("r2")
        #expect(f.canLogIn(fresh, "two"))
    }

    @Test func aScopeByRoleTouchesNothingElseAndADryRunChangesNothing() async throws {
        let f = try await MemoryFixture.make()
        let r1 = try await f.issue("r1"), r2 = try await f.issue("r2")
        let plan = try await f.t.data(.update, "sys/mayfly/revoke", ["roles": ["r1"], "reason": "check", "dry_run": true])
        #expect(plan["dry_run"] == true)
        #expect(plan["databases"]?["one"]?["credentials_in_scope"] == 1)
        #expect(plan["databases"]?["two"]?["credentials_in_scope"] == 0, "r2 is outside the scope")
        #expect(f.canLogIn(r1, "one") && f.canLogIn(r2, "two"), "a dry run changes nothing")
        let report = try await f.t.data(.update, "sys/mayfly/revoke", ["roles": ["r1"], "reason": "r1 leaked"])
        #expect(report["totals"]?["credentials_revoked"] == 1)
        #expect(!f.canLogIn(r1, "one"))
        #expect(f.canLogIn(r2, "two"), "outside the scope")
        #expect(f.databases["one"]!.server.adminPassword == "admin-password", "no rotation asked for")
    }

    @Test func anUnreachableDatabaseIsReportedAndTheRestIsRevoked() async throws {
        let f = try await MemoryFixture.make()
        let r1 = try await f.issue("r1"), r2 = try await f.issue("r2")
        f.databases["two"]!.set { $0.unreachable = true }
        let report = try await f.t.data(.update, "sys/mayfly/revoke", ["all": true, "reason": "leak"])
        #expect(!f.canLogIn(r1, "one"))
        #expect(report["failures"] != [], "the unreachable database is named")
        f.databases["two"]!.set { $0.unreachable = false }
        #expect(try await f.leaseState(r2.lease) == "revoking", "kept for the sweeper")
        f.clock.advance(by: 300)
        _ = try await f.t.broker.leases.sweep()
        #expect(!f.canLogIn(r2, "two"))
    }
}
