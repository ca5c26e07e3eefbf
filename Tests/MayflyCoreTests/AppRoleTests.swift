import Foundation
@testable import MayflyCore
import MayflyStore
import Testing

/// AppRole login (issue 4): secret ids are checked for uses, expiry and source CIDR, and
/// login attempts per source are rate limited.
@Suite struct AppRoleTests {
    static func login(_ t: TestBroker, roleID: String, secretID: String?, from remote: String = "10.1.2.3:40000")
        async -> (status: Int, token: String?)
    {
        var data: [String: JSONValue] = ["role_id": .string(roleID)]
        data["secret_id"] = secretID.map { .string($0) } ?? .null
        do {
            let response = try await t.broker.handle(LogicalRequest(
                id: "t", operation: .update, path: "auth/approle/login", data: data, remoteAddress: remote))
            guard case .envelope(let envelope, _) = response else { return (-1, nil) }
            return (200, envelope.auth["client_token"]?.stringValue)
        } catch let error as APIError {
            return (error.status, nil)
        } catch {
            return (-1, nil)
        }
    }

    static func setUp(_ role: [String: JSONValue], limit: Int = 100, clock: any WallClock = SystemClock()) async throws
        -> (TestBroker, roleID: String)
    {
        let t = try await TestBroker.make(clock: clock) { $0.loginRateLimit = limit }
        _ = try await t.call(.update, "auth/approle/role/app", role)
        let roleID = try #require(try await t.data(.read, "auth/approle/role/app/role-id")["role_id"]?.stringValue)
        return (t, roleID)
    }

    static func secretID(_ t: TestBroker, _ body: [String: JSONValue] = [:]) async throws -> String {
        try #require(try await t.data(.update, "auth/approle/role/app/secret-id", body)["secret_id"]?.stringValue)
    }

    @Test func loginGivesTheRolesPoliciesAndUsedUpSecretIDsAreRefused() async throws {
        let (t, roleID) = try await Self.setUp(["token_policies": "orders-app", "token_ttl": "10m", "secret_id_num_uses": 2])
        let secret = try await Self.secretID(t)
        let first = await Self.login(t, roleID: roleID, secretID: secret)
        #expect(first.status == 200)
        let me = try await t.data(.read, "auth/token/lookup-self", token: try #require(first.token))
        #expect(me["policies"] == ["default", "orders-app"])
        #expect(me["meta"]?["role_name"] == "app")
        #expect(me["ttl"]?.intValue.map { $0 > 590 && $0 <= 600 } == true)
        #expect(await Self.login(t, roleID: roleID, secretID: secret).status == 200)
        #expect(await Self.login(t, roleID: roleID, secretID: secret).status == 400, "two uses, then refused")
        #expect(await Self.login(t, roleID: roleID, secretID: "wrong").status == 400)
        #expect(await Self.login(t, roleID: "wrong-role-id", secretID: try await Self.secretID(t)).status == 400)
        #expect(await Self.login(t, roleID: roleID, secretID: nil).status == 400, "bind_secret_id is on")
        // Secret ids are stored only as keyed hashes.
        let fresh = try await Self.secretID(t)
        let dump = try await t.storage.paths(withPrefix: "", after: nil, limit: 10_000).joined(separator: "\n")
        #expect(!dump.contains(fresh) && !dump.contains(roleID))
    }

    @Test func expiredSecretIDIsRefused() async throws {
        let clock = ManualClock(Date())
        let (t, roleID) = try await Self.setUp(["token_policies": "a"], clock: clock)
        let secret = try await Self.secretID(t, ["ttl": "1s"])
        let other = try await Self.secretID(t, ["ttl": "1s"])
        clock.advance(by: 2)
        #expect(await Self.login(t, roleID: roleID, secretID: secret).status == 400)
        clock.set(Date(timeIntervalSince1970: clock.now().timeIntervalSince1970 - 2))
        #expect(await Self.login(t, roleID: roleID, secretID: other).status == 200, "a live one logs in: the clock decides")
    }

    @Test func disallowedCIDRIsRefused() async throws {
        let (t, roleID) = try await Self.setUp(["token_policies": "a", "secret_id_bound_cidrs": ["10.1.0.0/16"]])
        let secret = try await Self.secretID(t, ["cidr_list": "10.1.2.0/24"])
        #expect(await Self.login(t, roleID: roleID, secretID: secret, from: "10.9.9.9:1234").status == 400, "outside the role's CIDR")
        #expect(await Self.login(t, roleID: roleID, secretID: secret, from: "10.1.7.1:1234").status == 400, "outside the secret id's CIDR")
        #expect(await Self.login(t, roleID: roleID, secretID: secret, from: "unix").status == 400)
        #expect(await Self.login(t, roleID: roleID, secretID: secret, from: "10.1.2.77:1234").status == 200)
        #expect(await t.status(.update, "auth/approle/role/app", ["secret_id_bound_cidrs": "10.1.0.0/33"]) == 400)
        // Restrictions Mayfly does not enforce are refused, never stored and silently ignored.
        for body: [String: JSONValue] in [["token_bound_cidrs": "10.0.0.0/8"], ["token_period": "1h"], ["token_type": "batch"]] {
            #expect(await t.status(.update, "auth/approle/role/app", body) == 400, "\(body)")
        }
    }

    @Test func bruteForceHits429AfterTheLimit() async throws {
        let (t, roleID) = try await Self.setUp(["token_policies": "a"], limit: 5)
        for _ in 0..<5 {
            #expect(await Self.login(t, roleID: roleID, secretID: "guess").status == 400)
        }
        #expect(await Self.login(t, roleID: roleID, secretID: "guess").status == 429)
        #expect(await Self.login(t, roleID: roleID, secretID: try await Self.secretID(t)).status == 429, "even a right guess waits")
        #expect(await Self.login(t, roleID: roleID, secretID: "guess", from: "10.1.2.4:1").status == 400, "other sources are not affected")
        do {
            try LoginRateLimiter(limit: 1).attempt(source: "x", now: 100)
            try LoginRateLimiter(limit: 1).attempt(source: "x", now: 100)
            let limiter = LoginRateLimiter(limit: 1)
            try limiter.attempt(source: "x", now: 100)
            try limiter.attempt(source: "x", now: 130)
            Issue.record("expected 429")
        } catch let error as APIError {
            #expect(error.status == 429 && error.retryAfter == 30)
        }
    }
}
