import Foundation
@testable import MayflyCore
import MayflyPostgres
import MayflyStore
import Testing

/// Admission control on issuance (issue 7, point 4 and the budget of point 3): per-identity
/// limits answer the noisy identity with 429 while others are served; the connection budget
/// caps the sum of live connection limits; `coalesce` shares one issuance.
@Suite(.enabled(if: PG.enabled, "needs the test PostgreSQL from scripts/test"), .serialized)
struct AdmissionTests {
    static let noisy: PeerIdentity = .unix(uid: 1001, gid: 1001, pid: 1)
    static let quiet: PeerIdentity = .unix(uid: 1002, gid: 1002, pid: 1)

    static func broker(_ configure: @escaping (inout MayflyConfig) -> Void) async throws -> TestBroker {
        let t = try await TestBroker.make { config in
            config.bindings = [Binding(identity: "unix:uid:1001", policies: ["creds"]),
                               Binding(identity: "unix:uid:1002", policies: ["creds"])]
            configure(&config)
        }
        _ = try await t.call(.update, "sys/policies/acl/creds", ["policy": #"path "database/creds/*" { capabilities = ["read"] }"#])
        _ = try await t.call(.update, "database/config/db", try PG.configBody())
        let group = PG.unique("mf_adm_readers")
        let admin = try await PG.admin()
        try await admin.execute("CREATE ROLE \(group) NOLOGIN")
        await admin.close()
        _ = try await t.call(.update, "database/roles/app", [
            "db_name": "db", "member_of": .strings([group]), "default_ttl": "10m", "connection_limit": 1,
        ])
        return t
    }

    /// The status (and error) of one issuance by `identity`.
    static func issue(_ t: TestBroker, as identity: PeerIdentity, role: String = "app") async -> (status: Int, error: APIError?, user: String?) {
        do {
            let response = try await t.broker.handle(LogicalRequest(
                id: UUID().uuidString, operation: .read, path: "database/creds/\(role)", identity: identity))
            guard case .envelope(let envelope, _) = response else { return (0, nil, nil) }
            return (200, nil, envelope.data["username"]?.stringValue)
        } catch let error as APIError {
            return (error.status, error, nil)
        } catch {
            return (-1, nil, nil)
        }
    }

    @Test func liveLeaseLimitRefusesTheNoisyIdentityOnly() async throws {
        let t = try await Self.broker { $0.leasesPerIdentity = 2 }
        #expect(await Self.issue(t, as: Self.noisy).status == 200)
        #expect(await Self.issue(t, as: Self.noisy).status == 200)
        let refused = await Self.issue(t, as: Self.noisy)
        #expect(refused.status == 429)
        #expect(refused.error?.retryAfter != nil)
        #expect(refused.error?.messages.first?.contains("live credential limit") == true, "\(String(describing: refused.error))")
        #expect(await Self.issue(t, as: Self.quiet).status == 200, "another identity is still served")
        _ = try await t.broker.leases.revokePrefix("database/creds/app/", force: false)
        #expect(await Self.issue(t, as: Self.noisy).status == 200, "served again once its credentials are gone")
        _ = try await t.broker.leases.revokePrefix("database/creds/app/", force: false)
    }

    @Test func issuanceRateLimitRefusesTheNoisyIdentityOnly() async throws {
        let t = try await Self.broker { $0.issuesPerIdentityPerMinute = 3 }
        for _ in 0..<3 { #expect(await Self.issue(t, as: Self.noisy).status == 200) }
        let refused = await Self.issue(t, as: Self.noisy)
        #expect(refused.status == 429)
        #expect(refused.error?.messages.first?.contains("issuance rate limit") == true)
        #expect((1...60).contains(refused.error?.retryAfter ?? 0))
        #expect(await Self.issue(t, as: Self.quiet).status == 200)
        _ = try await t.broker.leases.revokePrefix("database/creds/app/", force: false)
    }

    @Test func connectionBudgetCapsLiveConnectionLimits() async throws {
        let t = try await Self.broker { _ in }
        // 10% of max_connections 100 = 10, less 3 reserved and the broker's pool of 4: 3 connections.
        _ = try await t.call(.update, "database/config/db", ["connection_budget": .double(0.1), "verify_connection": false])
        for _ in 0..<3 { #expect(await Self.issue(t, as: Self.quiet).status == 200) }
        let refused = await Self.issue(t, as: Self.quiet)
        #expect(refused.status == 429 && refused.error?.retryAfter != nil)
        #expect(refused.error?.messages.first?.contains("connection budget of database db") == true, "\(String(describing: refused.error))")
        #expect(refused.error?.messages.first?.contains("connection_limit") == true
                && refused.error?.messages.first?.contains("connection_budget") == true, "the 429 names both ways out")
        let page = try await t.storage.liveLeases(prefix: "database/creds/app/", after: nil, limit: 10)
        _ = try await t.call(.update, "sys/leases/revoke", ["lease_id": .string(page[0].id)])
        #expect(await Self.issue(t, as: Self.quiet).status == 200, "a revoked credential gives its connections back")
        #expect(try await t.storage.connectionLimitSums()["db"] == 3)
        _ = try await t.broker.leases.revokePrefix("database/creds/app/", force: false)
        // An unlimited role could take every connection: refused under a budget, allowed without.
        #expect(await t.status(.update, "database/roles/app", ["connection_limit": -1]) == 400)
        _ = try await t.call(.update, "database/config/db", ["connection_budget": 0, "verify_connection": false])
        _ = try await t.call(.update, "database/roles/app", ["connection_limit": -1])
        #expect(await Self.issue(t, as: Self.quiet).status == 200)
        _ = try await t.call(.update, "database/config/db", ["connection_budget": .double(0.5), "verify_connection": false])
        let unlimited = await Self.issue(t, as: Self.quiet)
        #expect(unlimited.status == 400 && unlimited.error?.messages.first?.contains("connection_limit -1") == true,
                "a budget set later refuses the unlimited role at issuance")
        _ = try await t.broker.leases.revokePrefix("database/creds/app/", force: false)
    }

    /// Issue 12, finding 4: a role with Vault-style creation statements is counted at the
    /// limit PostgreSQL enforces (the template's role gets the role's `connection_limit`), and
    /// `read database/config/NAME` shows the budget: live credentials, what they may open, the
    /// budget and the sessions open now.
    @Test func templatedRolesAreCountedAtTheLimitPostgreSQLEnforces() async throws {
        let t = try await Self.broker { _ in }
        _ = try await t.call(.update, "database/roles/templated", [
            "db_name": "db", "connection_limit": 3, "default_ttl": "10m",
            "creation_statements": [#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'"#],
        ])
        guard case .envelope(let issued, _) = try await t.call(.read, "database/creds/templated") else {
            Issue.record("no credential"); return
        }
        let user = try #require(issued.data["username"]?.stringValue), password = try #require(issued.data["password"]?.stringValue)
        let admin = try await PG.admin()
        #expect(try await admin.query("SELECT rolconnlimit::text FROM pg_roles WHERE rolname = $1", [user]) == [["3"]])
        await admin.close()
        let session = try await PG.login(user, password)
        let status = try #require(try await t.data(.read, "database/config/db")["connection_budget_status"])
        #expect(status["live_credentials"] == 1 && status["committed_connections"] == 3, "\(status)")
        #expect((status["budget_connections"]?.intValue ?? 0) > 0 && (status["max_connections"]?.intValue ?? 0) > 0)
        #expect(status["sessions"] == 1)
        await session.close()
        _ = try await t.broker.leases.revokePrefix("database/creds/templated/", force: false)
        #expect(try await t.data(.read, "database/config/db")["connection_budget_status"]?["committed_connections"] == 0)
    }

    @Test func coalescedRolesShareOneIssuanceOthersDoNot() async throws {
        let t = try await Self.broker { _ in }
        for coalesce in [true, false] {
            _ = try await t.call(.update, "database/roles/app", ["coalesce": .bool(coalesce)])
            let users = await withTaskGroup(of: String?.self) { group in
                for _ in 0..<8 { group.addTask { await Self.issue(t, as: Self.noisy).user } }
                var users: [String?] = []
                for await user in group { users.append(user) }
                return users
            }
            #expect(users.allSatisfy { $0 != nil })
            if coalesce {
                #expect(Set(users).count < 8, "concurrent identical requests shared an issuance")
            } else {
                #expect(Set(users).count == 8, "each caller gets its own login by default")
            }
            _ = try await t.broker.leases.revokePrefix("database/creds/app/", force: false)
        }
    }
}
