import Foundation
@testable import MayflyCore
import MayflyCrypto
import MayflyPostgres
import MayflyStore
import Testing

/// The test PostgreSQL started by scripts/test (TLS, log_statement = all, non-superuser admin).
enum PG {
    static let environment = ProcessInfo.processInfo.environment
    static var enabled: Bool {
        environment["MAYFLY_TEST_PG_HOST"] != nil || environment["MAYFLY_REQUIRE_INTEGRATION"] == "1"
    }

    static func value(_ name: String) throws -> String {
        guard let value = environment[name] else {
            throw APIError.internalError("\(name) is not set: run the tests with scripts/test")
        }
        return value
    }

    /// `database/config` body for the test cluster.
    static func configBody(database: String? = nil) throws -> [String: JSONValue] {
        let user = try value("MAYFLY_TEST_PG_USER"), port = try value("MAYFLY_TEST_PG_PORT")
        let name = try database ?? value("MAYFLY_TEST_PG_DB"), ca = try value("MAYFLY_TEST_PG_SSLROOTCERT")
        let url = "postgresql://\(user)@127.0.0.1:\(port)/\(name)?sslmode=verify-full&sslrootcert=\(ca)"
        return [
            "plugin_name": "postgresql-database-plugin", "connection_url": .string(url),
            "password": .string(try value("MAYFLY_TEST_PG_PASSWORD")), "allowed_roles": "*",
        ]
    }

    /// A connection as the admin (verify-full over TLS).
    static func admin(database: String? = nil) async throws -> PGConnection {
        try await PGConnection.connect(PGConnectionConfig(
            host: "127.0.0.1", port: Int(try value("MAYFLY_TEST_PG_PORT"))!, database: database ?? (try value("MAYFLY_TEST_PG_DB")),
            user: try value("MAYFLY_TEST_PG_USER"), password: try value("MAYFLY_TEST_PG_PASSWORD"),
            sslRootCert: try value("MAYFLY_TEST_PG_SSLROOTCERT")))
    }

    /// A superuser connection over the cluster's Unix socket (test setup only).
    static func superuser(database: String = "postgres") async throws -> PGConnection {
        try await PGConnection.connect(PGConnectionConfig(
            host: try value("MAYFLY_TEST_PG_SOCKET_DIR"), port: Int(try value("MAYFLY_TEST_PG_PORT"))!, database: database,
            user: try value("MAYFLY_TEST_PG_SUPERUSER"), sslMode: "disable"))
    }

    /// A login with an issued credential.
    static func login(_ username: String, _ password: String, database: String? = nil) async throws -> PGConnection {
        try await PGConnection.connect(PGConnectionConfig(
            host: "127.0.0.1", port: Int(try value("MAYFLY_TEST_PG_PORT"))!, database: database ?? (try value("MAYFLY_TEST_PG_DB")),
            user: username, password: password, sslRootCert: try value("MAYFLY_TEST_PG_SSLROOTCERT")))
    }

    static func unique(_ base: String) -> String { "\(base)_\(Random.string(count: 8, alphabet: Array("abcdefghijklmnopqrstuvwxyz")))" }
}

@Suite(.enabled(if: PG.enabled, "needs the test PostgreSQL from scripts/test"), .serialized)
struct DatabaseCredentialTests {
    /// A broker with database `db` configured and a role `ro` in a fresh group.
    static func setUp(ttl: String = "60s", maxTTL: String = "120s", clock: any WallClock = SystemClock()) async throws
        -> (TestBroker, group: String)
    {
        let t = try await TestBroker.make(clock: clock)
        _ = try await t.call(.update, "database/config/db", try PG.configBody())
        let group = PG.unique("mf_readers")
        let admin = try await PG.admin()
        try await admin.execute("CREATE ROLE \(group) NOLOGIN")
        await admin.close()
        _ = try await t.call(.update, "database/roles/ro", [
            "db_name": "db", "member_of": .strings([group]), "default_ttl": .string(ttl), "max_ttl": .string(maxTTL),
            "connection_limit": 3,
        ])
        return (t, group)
    }

    static func issue(_ t: TestBroker, role: String = "ro") async throws -> (lease: String, user: String, password: String, ttl: Int64) {
        guard case .envelope(let envelope, 200) = try await t.call(.read, "database/creds/\(role)") else {
            throw APIError.internalError("no credential")
        }
        return (envelope.leaseID, envelope.data["username"]?.stringValue ?? "", envelope.data["password"]?.stringValue ?? "",
                envelope.leaseDuration)
    }

    @Test func issuedCredentialLogsInWithVerifyFullAndHasExactlyItsRole() async throws {
        let (t, group) = try await Self.setUp()
        let before = Int64(Date().timeIntervalSince1970)
        let credential = try await Self.issue(t)
        #expect(credential.lease.hasPrefix("database/creds/ro/"))
        #expect(credential.user.hasPrefix("v-ro-") && credential.user.utf8.count <= 63)
        #expect(credential.password.utf8.count >= 43)
        #expect(credential.ttl == 60)
        let session = try await PG.login(credential.user, credential.password)
        #expect(try await session.usesTLS())
        #expect(try await session.query("SELECT current_user") == [[credential.user]])
        await session.close()

        let admin = try await PG.admin()
        let rows = try await admin.query(
            "SELECT rolconnlimit::text, extract(epoch FROM rolvaliduntil)::bigint::text, rolcanlogin::text, rolsuper::text FROM pg_roles WHERE rolname = $1",
            [credential.user])
        let validUntil = Int64(rows.first?[1] ?? "") ?? 0
        #expect(rows.first?[0] == "3")
        #expect(abs(validUntil - (before + 60)) <= 5 + LeaseManager.validUntilSkew)
        #expect(rows.first?[2] == "true" && rows.first?[3] == "false")
        let groups = try await admin.query(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1",
            [credential.user])
        #expect(groups == [[group]])
        #expect(try await admin.query("SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1", [credential.user])
                == [["mayfly lease \(credential.lease) store \(t.broker.leases.storeID)"]])
        await admin.close()

        // The plaintext password never reached PostgreSQL's statement log, nor Mayfly's store.
        let log = try String(contentsOfFile: try PG.value("MAYFLY_TEST_PG_LOG"), encoding: .utf8)
        #expect(log.contains(credential.user), "log_statement = all must be logging, or this check proves nothing")
        #expect(!log.contains(credential.password))
        for path in try await t.storage.paths(withPrefix: "", after: nil, limit: 10_000) {
            let raw = try #require(try await t.storage.get(path)).value
            #expect(!String(decoding: raw, as: UTF8.self).contains(credential.password))
        }
        _ = try await t.broker.leases.revokePrefix("database/creds/ro/", force: false)
    }

    /// Issuance reads its role and database config from the barrier's cache (issue 13): a
    /// change to either is what the very next credential gets, and a seal wipes both.
    @Test func aChangedRoleOrConfigGovernsTheNextCredentialThoughBothAreCached() async throws {
        let (t, group) = try await Self.setUp()
        _ = try await Self.issue(t)
        _ = try await Self.issue(t)
        let cache = t.broker.barrier.cache
        #expect(cache.get("database/roles/ro") != nil && cache.get("database/config/db") != nil, "issuance cached both")
        // What stays decoded is the config without its password; a connection still gets it.
        let password = try PG.value("MAYFLY_TEST_PG_PASSWORD")
        #expect(try await t.broker.databases.settings("db")?.password == "")
        #expect(try await t.broker.databases.config("db")?.password == password)

        _ = try await t.call(.update, "database/roles/ro", [
            "db_name": "db", "member_of": .strings([group]), "default_ttl": "45s", "max_ttl": "120s", "connection_limit": 2,
        ])
        let changed = try await Self.issue(t)
        #expect(changed.ttl == 45)
        let admin = try await PG.admin()
        #expect(try await admin.query("SELECT rolconnlimit::text FROM pg_roles WHERE rolname = $1", [changed.user]) == [["2"]])
        await admin.close()

        var narrowed = try PG.configBody()
        narrowed["allowed_roles"] = "other"
        _ = try await t.call(.update, "database/config/db", narrowed)
        #expect(await t.status(.read, "database/creds/ro") == 500, "the role is no longer allowed on the database (500, as Vault answers)")
        _ = try await t.call(.update, "database/config/db", try PG.configBody())
        #expect(try await Self.issue(t).ttl == 45)

        _ = try await t.broker.leases.revokePrefix("database/creds/ro/", force: false)
        let cached = cache.values
        #expect(!cached.isEmpty)
        _ = try await t.call(.update, "sys/seal")
        #expect(cache.count == 0 && cached.allSatisfy { $0.isWiped }, "nothing decrypted outlives the seal")
    }

    @Test func renewExtendsValidUntilAndStopsAtMaxTTL() async throws {
        let (t, _) = try await Self.setUp(ttl: "30s", maxTTL: "90s")
        let credential = try await Self.issue(t)
        guard case .envelope(let renewed, _) = try await t.call(.update, "sys/leases/renew", [
            "lease_id": .string(credential.lease), "increment": "60",
        ]) else { Issue.record("envelope expected"); return }
        #expect(renewed.leaseDuration == 60)
        #expect(renewed.leaseID == credential.lease)
        guard case .envelope(let capped, _) = try await t.call(.update, "sys/leases/renew/\(credential.lease)", [
            "increment": "1h",
        ]) else { Issue.record("envelope expected"); return }
        #expect(capped.leaseDuration <= 90 && capped.leaseDuration >= 85)
        #expect(!capped.warnings.isEmpty)
        #expect(capped.renewable, "renewable stays true at the cap, as in Vault")
        #expect(await t.status(.update, "sys/leases/renew", ["lease_id": .string(credential.lease), "increment": .int(Int64.max)]) == 400,
                "an increment near Int64.max is refused, not added to now")
        let admin = try await PG.admin()
        let until = Int64(try await admin.query(
            "SELECT extract(epoch FROM rolvaliduntil)::bigint::text FROM pg_roles WHERE rolname = $1", [credential.user])
            .first?[0] ?? "") ?? 0
        let lookup = try await t.data(.update, "sys/leases/lookup", ["lease_id": .string(credential.lease)])
        #expect(lookup["renewable"] == true)
        #expect(lookup["state"] == "active")
        #expect(abs(until - (Int64(Date().timeIntervalSince1970) + capped.leaseDuration)) <= 2 + LeaseManager.validUntilSkew)
        await admin.close()
        _ = try await t.call(.update, "sys/leases/revoke", ["lease_id": .string(credential.lease)])
    }

    @Test func revokeEndsSessionsAndHandsOverObjectsInEveryDatabase() async throws {
        let (t, group) = try await Self.setUp()
        // A second database the credential can create objects in.
        let other = PG.unique("mf_other")
        let superuser = try await PG.superuser()
        try await superuser.execute("CREATE DATABASE \(other)")
        await superuser.close()
        let admin = try await PG.admin()
        try await admin.execute("GRANT CREATE ON SCHEMA public TO \(group)")
        await admin.close()
        let otherSuper = try await PG.superuser(database: other)
        try await otherSuper.execute("GRANT CREATE, USAGE ON SCHEMA public TO \(group); GRANT CONNECT ON DATABASE \(other) TO \(group)")
        await otherSuper.close()

        let credential = try await Self.issue(t)
        let session = try await PG.login(credential.user, credential.password)
        try await session.execute("CREATE TABLE \(PG.unique("t_main")) (id int)")
        let otherSession = try await PG.login(credential.user, credential.password, database: other)
        try await otherSession.execute("CREATE TABLE \(PG.unique("t_other")) (id int)")
        await otherSession.close()

        #expect(await t.status(.update, "sys/leases/revoke", ["lease_id": .string(credential.lease)]) == nil)
        #expect(await t.status(.update, "sys/leases/revoke", ["lease_id": .string(credential.lease)]) == nil, "again: already gone")
        #expect(await t.status(.update, "sys/leases/revoke", ["lease_id": "database/creds/none/x"]) == nil, "unknown: nothing to revoke")
        await #expect(throws: PGError.self) { _ = try await session.query("SELECT 1") }
        await #expect(throws: PGError.self) { _ = try await PG.login(credential.user, credential.password) }
        let check = try await PG.superuser()
        #expect(try await check.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [credential.user]).isEmpty)
        // Nothing in pg_shdepend still points at a role that no longer exists.
        #expect(try await check.query("""
            SELECT count(*)::text FROM pg_shdepend
            WHERE refclassid = 'pg_authid'::regclass AND refobjid NOT IN (SELECT oid FROM pg_authid)
            """) == [["0"]])
        await check.close()
        let owner = try PG.value("MAYFLY_TEST_PG_USER")
        for database in [try PG.value("MAYFLY_TEST_PG_DB"), other] {
            let connection = try await PG.superuser(database: database)
            let owners = try await connection.query(
                "SELECT DISTINCT tableowner FROM pg_tables WHERE tablename LIKE 't\\_%' ESCAPE '\\'")
            #expect(owners == [[owner]], "tables created by the credential now belong to owner_on_revoke")
            await connection.close()
        }
        let lookup = await t.status(.update, "sys/leases/lookup", ["lease_id": .string(credential.lease)])
        #expect(lookup == 400, "a revoked lease is gone")
    }

    /// Revocation visits only the databases where a role owns something or holds a privilege
    /// (pg_shdepend says which): a login that made nothing is dropped without any REASSIGN
    /// OWNED, one that made a table in one database is reassigned there and nowhere else.
    @Test func revocationVisitsOnlyTheDatabasesWhereTheRolesOwnSomething() async throws {
        let (t, group) = try await Self.setUp()
        let admin = try await PG.admin()
        try await admin.execute("GRANT CREATE ON SCHEMA public TO \(group)")
        await admin.close()
        let idle = try await Self.issue(t)
        let maker = try await Self.issue(t)
        let session = try await PG.login(maker.user, maker.password)
        try await session.execute("CREATE TABLE \(PG.unique("t_made")) (id int)")
        await session.close()
        for credential in [idle, maker] {
            #expect(await t.status(.update, "sys/leases/revoke", ["lease_id": .string(credential.lease)]) == nil)
        }
        let log = try String(contentsOfFile: try PG.value("MAYFLY_TEST_PG_LOG"), encoding: .utf8)
        let reassigns = log.split(separator: "\n").filter { $0.contains("REASSIGN OWNED BY") }
        #expect(log.contains("DROP ROLE IF EXISTS \"\(idle.user)\""), "log_statement = all must be logging")
        #expect(!reassigns.contains { $0.contains(idle.user) }, "nothing to hand over, no database visited")
        #expect(reassigns.filter { $0.contains(maker.user) }.count == 1, "only the database with its table")
        let check = try await PG.admin()
        #expect(try await check.query("SELECT 1 FROM pg_roles WHERE rolname IN ($1, $2)", [idle.user, maker.user]).isEmpty)
        await check.close()
    }

    @Test func sweeperRevokesExpiredLeases() async throws {
        let clock = ManualClock(Date())
        let (t, _) = try await Self.setUp(ttl: "1s", maxTTL: "1s", clock: clock)
        let credential = try await Self.issue(t)
        clock.advance(by: 2)
        #expect(try await t.broker.leases.sweep() >= 1)
        let admin = try await PG.admin()
        #expect(try await admin.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [credential.user]).isEmpty)
        await admin.close()
        #expect(try await t.storage.lease(id: credential.lease)?.state == .revoked)
    }

    /// Renewals and revocations of one lease racing each other: revocations all succeed,
    /// renewals succeed or say the lease is gone; none is a 500.
    @Test func racingRenewalsAndRevocationsOfOneLeaseNeverFail() async throws {
        let (t, _) = try await Self.setUp()
        for _ in 0..<3 {
            let credential = try await Self.issue(t)
            let statuses = await withTaskGroup(of: (String, Int?).self) { group in
                for i in 0..<16 {
                    group.addTask {
                        let revoke = i % 2 == 0
                        let status = await t.status(.update, revoke ? "sys/leases/revoke" : "sys/leases/renew",
                                                    ["lease_id": .string(credential.lease)])
                        return (revoke ? "revoke" : "renew", status)
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0.0 == "revoke" }.allSatisfy { $0.1 == nil }, "\(statuses)")
            #expect(statuses.filter { $0.0 == "renew" }.allSatisfy { $0.1 == nil || $0.1 == 400 }, "\(statuses)")
            #expect(try await t.storage.lease(id: credential.lease)?.state == .revoked)
            await #expect(throws: PGError.self) { _ = try await PG.login(credential.user, credential.password) }
        }
    }

    /// The reconcile that follows an unseal treats pending leases as left behind by a dead
    /// process; credentials this process issues meanwhile are not (they were revoked once
    /// right after their 200).
    @Test func reconcileAfterUnsealSparesCredentialsBeingIssued() async throws {
        let (t, _) = try await Self.setUp()
        _ = try await t.call(.update, "database/config/db", ["connection_budget": 0, "verify_connection": false])
        let issued = try await withThrowingTaskGroup(of: [(lease: String, user: String, password: String, ttl: Int64)].self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var mine: [(lease: String, user: String, password: String, ttl: Int64)] = []
                    for _ in 0..<10 { mine.append(try await Self.issue(t)) }
                    return mine
                }
            }
            group.addTask {
                for _ in 0..<15 { _ = try await t.broker.leases.reconcile(databaseNames: ["db"], afterRestart: true) }
                return []
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(issued.count == 40)
        for credential in issued {
            #expect(try await t.storage.lease(id: credential.lease)?.state == .active, "\(credential.lease)")
        }
        let session = try await PG.login(issued[0].user, issued[0].password)
        await session.close()
        _ = try await t.call(.update, "sys/leases/revoke-prefix/database/creds/ro")
    }

    /// A seal landing while requests run: one is inside PostgreSQL, one waits for the pool's
    /// only connection. The waiting one is answered 503 "Vault is sealed" (it found the pool
    /// closed, which was a 500); the one inside PostgreSQL either finishes (200, as Vault lets
    /// a request admitted before the seal finish) or is 503 — and after the unseal exactly the
    /// roles of the 200s exist.
    @Test func requestsCaughtBySealAnswer503() async throws {
        let (t, _) = try await Self.setUp()
        _ = try await t.call(.update, "database/config/db", ["max_open_connections": 1, "verify_connection": false])
        let role = PG.unique("slow")
        _ = try await t.call(.update, "database/roles/\(role)", [
            "db_name": "db",
            "creation_statements": .strings([
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'",
                "SELECT pg_sleep(1.5)",
            ]),
        ])
        async let first = Self.outcome { try await t.call(.read, "database/creds/\(role)") }
        async let second = Self.outcome { try await t.call(.read, "database/creds/\(role)") }
        try await Task.sleep(for: .milliseconds(500))
        _ = try await t.call(.update, "sys/seal")
        let outcomes = await [first, second]
        let statuses = outcomes.map(\.status).sorted()
        #expect(statuses == [200, 503] || statuses == [503, 503], "the request waiting for the pool is 503, none is 500: \(statuses)")

        for share in t.shares.prefix(2) { _ = try await t.broker.seal.submit(share: share) }
        await t.broker.leases.unsealReconcileFinished()
        let admin = try await PG.admin()
        let left = try await admin.query("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", ["v-\(role)-"]).compactMap { $0[0] }
        await admin.close()
        #expect(Set(left) == Set(outcomes.compactMap(\.username)),
                "after the unseal's reconcile only the issued credentials' roles exist: \(left)")
        _ = try await t.call(.update, "sys/leases/revoke-prefix/database/creds/\(role)")
    }

    static func outcome(_ call: () async throws -> LogicalResponse) async -> (status: Int, username: String?) {
        do {
            guard case .envelope(let envelope, let status) = try await call() else { return (-1, nil) }
            return (status, envelope.data["username"]?.stringValue)
        } catch let error as APIError {
            return (error.status, nil)
        } catch {
            return (-1, nil)
        }
    }

    /// A role whose revocation fails (here its own revocation statement) is retried on its own;
    /// the credentials revoked in the same batch are not held back by it.
    @Test func oneUnrevocableRoleDoesNotHoldBackTheOthers() async throws {
        let (t, group) = try await Self.setUp()
        _ = try await t.call(.update, "database/roles/broken", [
            "db_name": "db", "member_of": .strings([group]), "revocation_statements": "SELECT 1/0",
        ])
        let broken = try await Self.issue(t, role: "broken")
        var good: [(lease: String, user: String, password: String, ttl: Int64)] = []
        for _ in 0..<4 { good.append(try await Self.issue(t)) }
        #expect(await t.status(.update, "sys/leases/revoke-prefix/database/creds") == 500, "the broken one is reported")
        for credential in good {
            #expect(try await t.storage.lease(id: credential.lease)?.state == .revoked)
            await #expect(throws: PGError.self) { _ = try await PG.login(credential.user, credential.password) }
        }
        let stuck = try #require(try await t.storage.lease(id: broken.lease))
        #expect(stuck.state == .revoking && stuck.lastError?.contains("22012") == true)
        _ = try await t.call(.update, "database/roles/broken", ["revocation_statements": .strings([])])
        _ = try await t.call(.update, "sys/leases/revoke-prefix/database/creds/broken")
        #expect(try await t.storage.lease(id: broken.lease)?.state == .revoked)
    }

    @Test func revokePrefixAndListLeases() async throws {
        let (t, group) = try await Self.setUp()
        // A role whose name starts like `ro`: the prefix is a whole path, so it is not touched.
        _ = try await t.call(.update, "database/roles/ro-other", ["db_name": "db", "member_of": .strings([group])])
        let other = try await Self.issue(t, role: "ro-other")
        var users: [String] = []
        for _ in 0..<3 { users.append(try await Self.issue(t).user) }
        let listed = try await t.data(.list, "sys/leases/lookup/database/creds/ro/")
        #expect(listed["keys"]?.arrayValue?.count == 3)
        // Mayfly's addition for `mayfly lease list`: who holds each, until when, in what state.
        let info = listed["key_info"]?.objectValue ?? [:]
        #expect(Set(info.values.compactMap { $0["username"]?.stringValue }) == Set(users))
        #expect(info.values.allSatisfy { $0["state"] == "active" && $0["expire_time"]?.stringValue != nil })
        #expect(await t.status(.update, "sys/leases/revoke-prefix/") == 400, "an empty prefix is not everything")
        #expect(await t.status(.delete, "database/config/db") == 400, "live credentials depend on the database")
        _ = try await t.call(.update, "sys/leases/revoke-prefix/database/creds/ro")
        #expect(try await t.storage.lease(id: other.lease)?.state == .active)
        _ = try await t.call(.update, "sys/leases/revoke", ["lease_id": .string(other.lease)])
        let admin = try await PG.admin()
        for user in users {
            #expect(try await admin.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [user]).isEmpty)
        }
        await admin.close()
        #expect(await t.status(.list, "sys/leases/lookup/database/creds/ro/") == 404)
        #expect(await t.status(.delete, "database/config/db") == nil, "nothing depends on it any more")
    }

    @Test func badDatabaseAndRoleInputsAreRefused() async throws {
        let t = try await TestBroker.make()
        var remote = try PG.configBody()
        remote["connection_url"] = "postgresql://admin@db.example.internal:5432/app?sslmode=require"
        do {
            _ = try await t.call(.update, "database/config/remote", remote)
            Issue.record("sslmode=require to a remote host must be refused")
        } catch let error as APIError {
            #expect(error.status == 400)
            #expect(error.messages.first?.contains("does not authenticate the server") == true)
        }
        #expect(await t.status(.read, "database/config/remote") == 404)
        _ = try await t.call(.update, "database/config/db", try PG.configBody())
        // A hostile group name stays an identifier: it simply does not exist.
        #expect(await t.status(.update, "database/roles/evil", [
            "db_name": "db", "member_of": .strings(["x\"; DROP ROLE mayfly_admin; --"]),
        ]) == 400)
        #expect(await t.status(.read, "database/roles/evil") == 404)
        #expect(await t.status(.update, "database/roles/bad name", ["db_name": "db"]) == 400)
        #expect(await t.status(.update, "database/roles/r", ["db_name": "nope"]) == 400)
        #expect(await t.status(.update, "database/roles/r", ["db_name": "db", "default_ttl": "2h", "max_ttl": "1h"]) == 400)
        #expect(await t.status(.read, "database/creds/missing") == 400)
        // Groups a credential could take over the database or the broker's login with.
        let adminLogin = try PG.value("MAYFLY_TEST_PG_USER"), superuser = try PG.value("MAYFLY_TEST_PG_SUPERUSER")
        for group in [adminLogin, superuser, "pg_read_all_data\u{0}x"] {
            #expect(await t.status(.update, "database/roles/escalate", ["db_name": "db", "member_of": .strings([group])]) == 400,
                    "member_of \(group)")
        }
        #expect(await t.status(.read, "database/roles/escalate") == 404)
        // Static roles: not the admin login (rotate-root is for that), not a superuser, no NUL.
        for user in [adminLogin, superuser, "someone\u{0}else"] {
            #expect(await t.status(.update, "database/static-roles/st", [
                "db_name": "db", "username": .string(user), "rotation_period": "1h",
            ]) == 400, "static role user \(user)")
        }
        // A rotation statement PostgreSQL refuses is the role's fault: 400, and nothing stored.
        let plain = PG.unique("st_plain")
        let adminSession = try await PG.admin()
        try await adminSession.execute("CREATE ROLE \(plain) LOGIN")
        await adminSession.close()
        #expect(await t.status(.update, "database/static-roles/broken", [
            "db_name": "db", "username": .string(plain), "rotation_period": "1h", "rotation_statements": "SELECT 1/0",
        ]) == 400)
        #expect(await t.status(.read, "database/static-roles/broken") == 404)
        // An owner_on_revoke that does not exist would fail every revocation.
        var owned = try PG.configBody()
        owned["owner_on_revoke"] = "no_such_owner_role"
        #expect(await t.status(.update, "database/config/owned", owned) == 400)
        owned["owner_on_revoke"] = "owner\u{0}x"
        #expect(await t.status(.update, "database/config/owned", owned) == 400)
        #expect(await t.status(.read, "database/config/owned") == 404)
        let admin = try await PG.admin()
        #expect(try await admin.query("SELECT 1 FROM pg_roles WHERE rolname = 'mayfly_admin'") == [["1"]])
        await admin.close()
        // The admin password is never returned.
        let read = try await t.data(.read, "database/config/db")
        #expect(!"\(read)".contains(try PG.value("MAYFLY_TEST_PG_PASSWORD")))
    }

    @Test func databasesAndRolesDeclaredInTheConfigFileIssueCredentials() async throws {
        let passwordFile = TestBroker.temporaryDirectory() + "/admin.password"
        try (try PG.value("MAYFLY_TEST_PG_PASSWORD") + "\n").write(toFile: passwordFile, atomically: true, encoding: .utf8)
        let group = PG.unique("mf_declared")
        let admin = try await PG.admin()
        try await admin.execute("CREATE ROLE \(group) NOLOGIN")
        await admin.close()
        let text = """
            storage "sqlite" { path = "/unused" }
            listener "unix" { path = "/unused.sock" }
            database "orders" {
              connection_url = "\(try PG.configBody()["connection_url"]!.stringValue!)"
              password_file  = "\(passwordFile)"
              max_connections = 2
            }
            role "orders-ro" {
              database = "orders"  member_of = ["\(group)"]
              default_ttl = "15m"  max_ttl = "2h"  connection_limit = 4
            }
            """
        let declared = try ConfigLoader.parse(text, file: "mayfly.hcl")
        let t = try await TestBroker.make { config in
            config.databases = declared.databases
            config.roles = declared.roles
        }
        let credential = try await Self.issue(t, role: "orders-ro")
        #expect(credential.ttl == 900)
        let session = try await PG.login(credential.user, credential.password)
        #expect(try await session.query("SELECT pg_has_role(current_user, $1, 'member')::text", [group]) == [["true"]])
        await session.close()
        let read = try await t.data(.read, "database/config/orders")
        #expect(read["connection_details"]?["max_open_connections"] == 2)
        _ = try await t.call(.update, "sys/leases/revoke-prefix/database/creds/orders-ro")
    }

    @Test func grantToUserTemplateGetsAWarning() async throws {
        let (t, _) = try await Self.setUp()
        let grant = "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\""
        guard case .envelope(let envelope, _) = try await t.call(.update, "database/roles/granty", [
            "db_name": "db",
            "creation_statements": .strings([
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'",
                Data(grant.utf8).base64EncodedString(),  // Vault accepts statements base64-encoded
            ]),
        ]) else { Issue.record("expected a warning envelope"); return }
        #expect(envelope.warnings.first?.contains("member_of") == true)
        #expect(try await t.data(.read, "database/roles/granty")["creation_statements"]?.arrayValue?.last == .string(grant))
        // The template path works too, with the verifier in place of {{password}}.
        let credential = try await Self.issue(t, role: "granty")
        let session = try await PG.login(credential.user, credential.password)
        #expect(try await session.query("SELECT current_user") == [[credential.user]])
        await session.close()
        _ = try await t.call(.update, "sys/leases/revoke", ["lease_id": .string(credential.lease)])
    }

    /// 3,000 credentials of one role: privileges live on the group role, so the table's ACL
    /// never grows (no "row is too big" at ~2,400 users, unlike per-user GRANTs), and
    /// revoke-prefix removes every role and membership.
    @Test func threeThousandCredentialsLeaveTheACLUnchanged() async throws {
        let (t, group) = try await Self.setUp(ttl: "10m", maxTTL: "20m")
        // 3,000 live credentials of 3 connections each are far over any connection budget.
        _ = try await t.call(.update, "database/config/db", ["connection_budget": 0, "verify_connection": false])
        let table = PG.unique("mf_orders")
        let admin = try await PG.admin()
        try await admin.execute("CREATE TABLE \(table) (id bigint PRIMARY KEY); GRANT SELECT ON \(table) TO \(group)")
        let aclQuery = "SELECT relacl::text, pg_column_size(relacl)::text FROM pg_class WHERE oid = '\(table)'::regclass"
        let aclBefore = try await admin.query(aclQuery)
        let membersQuery = "SELECT count(*)::text FROM pg_auth_members WHERE roleid = (SELECT oid FROM pg_roles WHERE rolname = '\(group)')"

        let count = 3000
        let usernames = try await withThrowingTaskGroup(of: String.self) { group in
            var issued: [String] = []
            var started = 0
            while started < 16 {
                group.addTask { try await Self.issue(t).user }
                started += 1
            }
            while let user = try await group.next() {
                issued.append(user)
                if started < count {
                    group.addTask { try await Self.issue(t).user }
                    started += 1
                }
            }
            return issued
        }
        #expect(Set(usernames).count == count)
        #expect(try await admin.query(membersQuery) == [["\(count)"]])
        #expect(try await admin.query(aclQuery) == aclBefore, "issuing grants nothing on the table")
        // Privileges come through the group.
        let last = try await Self.issue(t)
        let session = try await PG.login(last.user, last.password)
        #expect(try await session.query("SELECT count(*)::text FROM \(table)") == [["0"]])
        await session.close()

        _ = try await t.call(.update, "sys/leases/revoke-prefix/database/creds/ro/")
        let names = "{" + (usernames + [last.user]).joined(separator: ",") + "}"
        #expect(try await admin.query("SELECT count(*)::text FROM pg_roles WHERE rolname = ANY($1::text[])", [names]) == [["0"]])
        #expect(try await admin.query(membersQuery) == [["0"]])
        #expect(try await admin.query(aclQuery) == aclBefore)
        #expect(await t.status(.list, "sys/leases/lookup/database/creds/ro/") == 404, "no live lease left")
        let log = try String(contentsOfFile: try PG.value("MAYFLY_TEST_PG_LOG"), encoding: .utf8)
        #expect(!log.contains("row is too big"))
        try await admin.execute("DROP TABLE \(table)")
        await admin.close()
    }

    /// Two brokers (two stores) on one PostgreSQL cluster: each reconcile touches only the
    /// roles its own store marked.
    @Test func reconcileLeavesAnotherStoresRolesAlone() async throws {
        let (first, _) = try await Self.setUp(ttl: "10m", maxTTL: "20m")
        let (second, _) = try await Self.setUp(ttl: "10m", maxTTL: "20m")
        #expect(first.broker.leases.storeID != second.broker.leases.storeID)
        let credential = try await Self.issue(first)
        let result = try await second.broker.leases.reconcile(databaseNames: ["db"], afterRestart: true)
        #expect(result.dropped == 0)
        let admin = try await PG.admin()
        #expect(try await !admin.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [credential.user]).isEmpty)
        await admin.close()
        _ = try await first.call(.update, "sys/leases/revoke", ["lease_id": .string(credential.lease)])
    }

    /// A credential request's lease intent is written while its audit line goes to disk, but
    /// the role is created only once the line is there: when it cannot be written, the request
    /// fails, no role exists in PostgreSQL and the intent is closed, not left live.
    @Test func noRoleIsCreatedForARequestWhoseAuditLineFails() async throws {
        let path = AuditTests.temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let t = try await TestBroker.make { $0.auditPath = path }
        _ = try await t.call(.update, "database/config/db", try PG.configBody())
        let role = PG.unique("aud")
        _ = try await t.call(.update, "database/roles/\(role)", ["db_name": "db", "default_ttl": "60s"])
        // Audited and working: the credential is issued.
        let issued = try await Self.issue(t, role: role)
        let admin = try await PG.admin()
        defer { Task { await admin.close() } }
        let prefix = "v-\(role)-"
        let roles = { try await admin.query("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", [prefix]).compactMap { $0[0] } }
        #expect(try await roles() == [issued.user])

        try t.broker.audit.reopen(path: "/dev/full")
        #expect(await t.status(.read, "database/creds/\(role)") == 500)
        #expect(try await roles() == [issued.user], "no role was created for the unaudited request")
        let live = try await t.storage.leases(matching: LeaseFilter(roles: [role], states: [.pending, .active]),
                                              after: nil, limit: 100)
        #expect(live.map(\.id) == [issued.lease], "the failed request's intent is closed")
        try t.broker.audit.reopen(path: path)
        _ = try await t.broker.leases.revokePrefix("database/creds/\(role)/", force: false)
    }
}
