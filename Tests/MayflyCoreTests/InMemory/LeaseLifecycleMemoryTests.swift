import Foundation
@testable import MayflyCore
import Testing

/// The lease life cycle — issue, renew, revoke, revoke-prefix, expiry, retries, reconcile,
/// token cascade, connection budget — against the in-memory credential backend on a manual
/// clock: no PostgreSQL, no sleeps. `DatabaseCredentialTests` proves the same against PostgreSQL.
@Suite struct LeaseLifecycleMemoryTests {
    @Test func issuedCredentialHasItsTTLGroupsAndMarkerAndRenewsUpToMaxTTL() async throws {
        let f = try await MemoryFixture.make()
        let issuedAt = f.now
        let credential = try await f.issue()
        #expect(credential.lease.hasPrefix("database/creds/r1/") && credential.user.hasPrefix("v-r1-"))
        #expect(credential.ttl == 600)
        let login = try #require(f.databases["one"]!.server.logins[credential.user])
        #expect(login.validUntil == issuedAt + 600 + LeaseManager.validUntilSkew)
        #expect(login.groups == ["readers"])
        #expect(login.marker == "mayfly lease \(credential.lease) store \(f.t.broker.leases.storeID)")
        #expect(f.canLogIn(credential))
        #expect(f.databases["two"]!.server.logins.isEmpty, "only its own database")

        f.clock.advance(by: 300)
        guard case .envelope(let renewed, _) = try await f.t.call(.update, "sys/leases/renew", [
            "lease_id": .string(credential.lease), "increment": 7200,
        ]) else { Issue.record("no renewal"); return }
        #expect(renewed.leaseDuration == 3600 - 300, "capped at max_ttl from issuance")
        #expect(renewed.warnings.contains { $0.contains("max_ttl") })
        #expect(f.databases["one"]!.server.logins[credential.user]?.validUntil == issuedAt + 3600 + LeaseManager.validUntilSkew)

        f.clock.advance(by: 3300)
        #expect(f.canLogIn(credential), "VALID UNTIL runs a few seconds past the lease")
        f.clock.advance(by: Double(LeaseManager.validUntilSkew))
        #expect(!f.canLogIn(credential), "the database refuses it once its time is up")
        #expect(await f.t.status(.update, "sys/leases/renew", ["lease_id": .string(credential.lease)]) == 400, "lease expired")
    }

    @Test func revokeEndsTheLoginAndItsSessions() async throws {
        let f = try await MemoryFixture.make()
        let credential = try await f.issue()
        f.databases["one"]!.openSession(credential.user)
        try await f.t.call(.update, "sys/leases/revoke", ["lease_id": .string(credential.lease)])
        #expect(f.databases["one"]!.server.logins[credential.user] == nil)
        #expect(f.databases["one"]!.server.sessions.isEmpty)
        #expect(try await f.leaseState(credential.lease) == "revoked")
        #expect(await f.t.status(.update, "sys/leases/renew", ["lease_id": .string(credential.lease)]) == 400)
    }

    @Test func theSweeperEndsExpiredLeasesOnTheTestClock() async throws {
        let f = try await MemoryFixture.make()
        let credentials = [try await f.issue(), try await f.issue(), try await f.issue("r2")]
        #expect(try await f.t.broker.leases.sweep() == 0, "nothing is due yet")
        f.clock.advance(by: 601)
        #expect(try await f.t.broker.leases.sweep() == 3)
        #expect(f.databases["one"]!.server.logins.isEmpty && f.databases["two"]!.server.logins.isEmpty)
        for credential in credentials { #expect(try await f.leaseState(credential.lease) == "revoked") }
    }

    @Test func revokePrefixTakesAWholePathOnly() async throws {
        let f = try await MemoryFixture.make()
        try await f.role("dev", in: "one")
        try await f.role("dev-readonly", in: "one")
        let dev = [try await f.issue("dev"), try await f.issue("dev")]
        let readonly = try await f.issue("dev-readonly")
        try await f.t.call(.update, "sys/leases/revoke-prefix/database/creds/dev")
        for credential in dev { #expect(!f.canLogIn(credential)) }
        #expect(f.canLogIn(readonly), "database/creds/dev is not database/creds/dev-readonly")
    }

    @Test func anUnreachableDatabaseAnswers502AndRevocationIsRetriedWithBackoff() async throws {
        let f = try await MemoryFixture.make()
        let credential = try await f.issue()
        let one = f.databases["one"]!
        one.set { $0.unreachable = true }
        #expect(await f.t.status(.read, "database/creds/r1") == 502)
        #expect(await f.t.status(.update, "sys/leases/revoke", ["lease_id": .string(credential.lease), "sync": true]) == 500)
        #expect(try await f.leaseState(credential.lease) == "revoking")
        one.set { $0.unreachable = false }
        // The failed issuance's lease is due at once (its login may exist); this one is not.
        #expect(try await f.t.broker.leases.sweep() == 1)
        #expect(one.server.logins[credential.user] != nil, "not before its backoff")
        #expect(try await f.leaseState(credential.lease) == "revoking")
        f.clock.advance(by: Double(LeaseManager.backoff(attempts: 1)))
        #expect(try await f.t.broker.leases.sweep() == 1)
        #expect(one.server.logins[credential.user] == nil)
        #expect(try await f.leaseState(credential.lease) == "revoked")
    }

    @Test func oneLoginThatCannotBeDroppedDoesNotHoldBackTheRest() async throws {
        let f = try await MemoryFixture.make()
        var credentials: [MemoryFixture.Credential] = []
        for _ in 0..<5 { credentials.append(try await f.issue()) }
        let stuck = credentials[2]
        f.databases["one"]!.set { $0.refusesRevocation = [stuck.user] }
        #expect(await f.t.status(.update, "sys/leases/revoke-prefix/database/creds/r1") == 500)
        #expect(Set(f.databases["one"]!.server.logins.keys) == [stuck.user], "every other login is gone")
        #expect(try await f.leaseState(stuck.lease) == "revoking")
        #expect(try await f.leaseState(credentials[0].lease) == "revoked")
    }

    @Test func reconcileDropsOrphanLoginsAndClosesLeasesWhoseLoginIsGone() async throws {
        let f = try await MemoryFixture.make()
        let kept = try await f.issue(), vanished = try await f.issue()
        let storeID = f.t.broker.leases.storeID
        f.databases["one"]!.set { server in
            server.logins["v-orphan"] = .init(password: "x", validUntil: nil, groups: [],
                                              marker: "mayfly lease database/creds/r1/gone store \(storeID)", connectionLimit: 1)
            server.logins["v-other-store"] = .init(password: "x", validUntil: nil, groups: [],
                                                   marker: "mayfly lease database/creds/r1/x store elsewhere", connectionLimit: 1)
            server.logins["operator"] = .init(password: "x", validUntil: nil, groups: [], marker: nil, connectionLimit: 1)
            server.logins[vanished.user] = nil
        }
        let (dropped, closed) = try await f.t.broker.leases.reconcile(databaseNames: ["one", "two"], afterRestart: false)
        #expect(dropped == 1 && closed == 1)
        #expect(Set(f.databases["one"]!.server.logins.keys) == [kept.user, "v-other-store", "operator"],
                "only its own store's orphan goes")
        #expect(try await f.leaseState(vanished.lease) == "revoked")
        #expect(try await f.leaseState(kept.lease) == "active")
    }

    @Test func aRevokedTokenTakesItsLeasesWithIt() async throws {
        let f = try await MemoryFixture.make()
        try await f.t.call(.update, "sys/policies/acl/creds", ["policy": #"path "database/creds/*" { capabilities = ["read"] }"#])
        guard case .envelope(let created, _) = try await f.t.call(.update, "auth/token/create", ["policies": ["creds"]]) else {
            Issue.record("no token"); return
        }
        let token = try #require(created.auth["client_token"]?.stringValue)
        let mine = [try await f.issue(token: token), try await f.issue("r2", token: token)]
        let others = try await f.issue()
        try await f.t.call(.update, "auth/token/revoke", ["token": .string(token)])
        _ = try await f.t.broker.leases.sweep()
        #expect(!f.canLogIn(mine[0], "one") && !f.canLogIn(mine[1], "two"))
        #expect(f.canLogIn(others), "a lease of another token stays")
    }

    @Test func theConnectionBudgetAnswers429WhenItIsCommitted() async throws {
        let f = try await MemoryFixture.make()
        // 10 × 0.8 − 0 reserved − 4 admin connections = 4 connections for credentials.
        f.databases["one"]!.set { $0.maxConnections = 10; $0.reserved = 0 }
        try await f.role("wide", in: "one", ["connection_limit": 2])
        let first = try await f.issue("wide")
        _ = try await f.issue("wide")
        #expect(await f.t.status(.read, "database/creds/wide") == 429)
        try await f.t.call(.update, "sys/leases/revoke", ["lease_id": .string(first.lease)])
        _ = try await f.issue("wide")
    }
}
