import Foundation
@testable import MayflyCore
import Testing

/// Static roles — the operator's login rotated (`single`), or two logins Mayfly makes and
/// alternates (`alternating`), on a schedule — against the in-memory credential backend on a
/// manual clock; `SchedulerTests` and `IncidentTests` prove the same against PostgreSQL.
@Suite struct StaticRoleMemoryTests {
    static func addLogin(_ f: MemoryFixture, _ name: String, password: String = "operator-set") {
        f.databases["one"]!.set {
            $0.logins[name] = .init(password: password, validUntil: nil, groups: [], marker: nil, connectionLimit: -1)
        }
    }

    @Test func aSingleRoleIsRotatedAtOnceAndThenOnItsPeriod() async throws {
        let f = try await MemoryFixture.make()
        Self.addLogin(f, "app")
        try await f.t.call(.update, "database/static-roles/app", ["db_name": "one", "username": "app", "rotation_period": "1h"])
        let first = try await f.t.data(.read, "database/static-creds/app")
        let one = f.databases["one"]!
        #expect(!one.canLogIn("app", "operator-set", at: f.now), "no password from before Mayfly stays valid")
        #expect(one.canLogIn("app", first["password"]!.stringValue!, at: f.now))
        #expect(first["ttl"] == 3600)

        f.clock.advance(by: 1800)
        #expect(try await f.t.data(.read, "database/static-creds/app")["password"] == first["password"], "not due yet")
        f.clock.advance(by: 1801)
        _ = await f.t.broker.scheduler.runDueJobs()
        let second = try await f.t.data(.read, "database/static-creds/app")
        #expect(second["password"] != first["password"], "rotated when due, on the test clock")
        #expect(one.canLogIn("app", second["password"]!.stringValue!, at: f.now))
        #expect(!one.canLogIn("app", first["password"]!.stringValue!, at: f.now))
    }

    @Test func anAlternatingRoleMakesTwoLoginsAlternatesAndDropsThemOnDelete() async throws {
        let f = try await MemoryFixture.make()
        try await f.t.call(.update, "database/static-roles/alt", [
            "db_name": "one", "username": "svc", "strategy": "alternating", "member_of": ["readers"], "rotation_period": "1h",
        ])
        let one = f.databases["one"]!
        #expect(one.server.logins["svc_a"]?.groups == ["readers"] && one.server.logins["svc_b"] != nil)
        let first = try await f.t.data(.read, "database/static-creds/alt")
        try await f.t.call(.update, "database/rotate-role/alt")
        let second = try await f.t.data(.read, "database/static-creds/alt")
        #expect(first["username"] != second["username"], "the other login takes over")
        #expect(one.canLogIn(first["username"]!.stringValue!, first["password"]!.stringValue!, at: f.now),
                "the previous login still works until its turn comes again")
        #expect(one.canLogIn(second["username"]!.stringValue!, second["password"]!.stringValue!, at: f.now))
        try await f.t.call(.delete, "database/static-roles/alt")
        #expect(one.server.logins["svc_a"] == nil && one.server.logins["svc_b"] == nil, "the logins Mayfly made are gone")
    }

    @Test func theAdminLoginAPrivilegedUserOrAMissingOneIsRefused() async throws {
        let f = try await MemoryFixture.make()
        Self.addLogin(f, "boss")
        f.databases["one"]!.set { $0.privileged = ["boss", "superusers"] }
        for (username, strategy) in [("admin", "single"), ("boss", "single"), ("nobody", "single")] {
            #expect(await f.t.status(.update, "database/static-roles/x", [
                "db_name": "one", "username": .string(username), "strategy": .string(strategy), "rotation_period": "1h",
            ]) == 400, "\(username)")
        }
        #expect(await f.t.status(.update, "database/static-roles/x", [
            "db_name": "one", "username": "svc", "strategy": "alternating", "member_of": ["superusers"], "rotation_period": "1h",
        ]) == 400, "a privileged group")
        #expect(await f.t.status(.list, "database/static-roles") == 404, "nothing stored")
        #expect(f.databases["one"]!.server.logins["svc_a"] == nil, "nothing made")
    }
}
