import Foundation
import Logging
@testable import MayflyCore
import MayflyCrypto
import MayflyPostgres
import MayflyStore
import Testing
import MayflyTestSupport

/// Unattended rotation (issue 6) driven by a test clock: static roles on cron schedules,
/// catch-up after downtime, root rotation, and key rotation with the background re-wrap.
@Suite(.enabled(if: PG.enabled, "needs the test PostgreSQL from scripts/test"), .serialized)
struct SchedulerTests {
    static let start = CronTestTime.date("2026-01-01T10:02:00Z")

    /// The static-role job runs of a scheduler pass.
    static func rotations(_ runs: [JobRun], _ name: String) -> [JobRun] {
        runs.filter { $0.job == "static-role:\(name)" }
    }

    static func creds(_ f: IncidentFixture, _ name: String) async throws -> (user: String, password: String) {
        let data = try await f.t.data(.read, "database/static-creds/\(name)")
        return (data["username"]!.stringValue!, data["password"]!.stringValue!)
    }

    /// Point 2: `*/5 * * * *` rotates at each boundary; `alternating` keeps the previous
    /// credential alive until the following rotation; `single` kills it at once.
    @Test func staticRolesRotateAtEachBoundaryWithBothStrategies() async throws {
        let clock = ManualClock(Self.start)
        let f = try await IncidentFixture.make(clock: clock) { $0.schedulerJitter = 0 }
        let single = PG.unique("st_cron"), alternating = PG.unique("st_cron_alt")
        try await f.asAdmin("one", "CREATE ROLE \(single) LOGIN; CREATE ROLE \(alternating) NOLOGIN")
        _ = try await f.t.call(.update, "database/static-roles/single", [
            "db_name": "one", "username": .string(single), "rotation_schedule": "*/5 * * * *",
        ])
        _ = try await f.t.call(.update, "database/static-roles/alt", [
            "db_name": "one", "username": .string(alternating), "strategy": "alternating", "rotation_schedule": "*/5 * * * *",
        ])
        #expect(try await f.t.data(.read, "database/static-creds/single")["ttl"] == 180, "next rotation at 10:05")
        #expect(Self.rotations(await f.t.broker.scheduler.runDueJobs(), "single").isEmpty, "nothing due at 10:02")

        let singleBefore = try await Self.creds(f, "single")
        let altBefore = try await Self.creds(f, "alt")
        clock.set(CronTestTime.date("2026-01-01T10:05:00Z"))
        let first = await f.t.broker.scheduler.runDueJobs()
        #expect(Self.rotations(first, "single").map(\.outcome) == ["ok"])
        #expect(Self.rotations(first, "alt").map(\.outcome) == ["ok"])
        let singleAfter = try await Self.creds(f, "single")
        let altAfter = try await Self.creds(f, "alt")
        #expect(singleAfter.password != singleBefore.password)
        #expect(await !f.canLogIn(singleBefore.user, singleBefore.password, "one"), "single: the old password fails at once")
        #expect(await f.canLogIn(singleAfter.user, singleAfter.password, "one"))
        #expect(altAfter.user != altBefore.user, "alternating switched users")
        #expect(await f.canLogIn(altBefore.user, altBefore.password, "one"), "alternating: the previous credential still works")
        #expect(await f.canLogIn(altAfter.user, altAfter.password, "one"))
        #expect(Self.rotations(await f.t.broker.scheduler.runDueJobs(), "single").isEmpty, "once per boundary")

        clock.set(CronTestTime.date("2026-01-01T10:10:00Z"))
        let second = await f.t.broker.scheduler.runDueJobs()
        #expect(Self.rotations(second, "alt").map(\.outcome) == ["ok"])
        #expect(await !f.canLogIn(altBefore.user, altBefore.password, "one"), "…and stops working after the following rotation")
        #expect(await f.canLogIn(altAfter.user, altAfter.password, "one"), "the credential of the last rotation still works")
        let history = try await f.t.broker.scheduler.history("static-role:single")
        #expect(history.map(\.trigger) == ["schedule", "schedule"])
        #expect(history.map { Int64($0.start) } == [CronTestTime.unix("2026-01-01T10:05:00Z"), CronTestTime.unix("2026-01-01T10:10:00Z")])
        let listed = try await f.t.data(.list, "sys/mayfly/schedule")
        #expect(listed["key_info"]?["static-role:single"]?["next_run"] == "2026-01-01T10:15:00.000000000Z")
        #expect(listed["key_info"]?["static-role:single"]?["last_outcome"] == "ok")
        #expect(listed["key_info"]?["static-role:single"]?["last_run"] == "2026-01-01T10:10:00.000000000Z")
        #expect(listed["key_info"]?["history-prune"]?["last_run"] == .null, "a job that never ran has no last run")
        #expect(listed["keys"]?.arrayValue?.contains("lease-sweep") == true, "housekeeping is listed too")
    }

    /// Deleting a static role: the users Mayfly created for an `alternating` role are dropped
    /// (their sessions ended, their objects handed over); a `single` role's user, which the
    /// operator created, stays, as in Vault.
    @Test func deletingAStaticRoleDropsOnlyTheUsersMayflyCreated() async throws {
        let f = try await IncidentFixture.make()
        let single = PG.unique("st_del"), alternating = PG.unique("st_del_alt")
        try await f.asAdmin("one", """
            CREATE ROLE \(single) LOGIN; CREATE ROLE \(alternating) NOLOGIN; GRANT CREATE ON SCHEMA public TO \(alternating)
            """)
        _ = try await f.t.call(.update, "database/static-roles/single", [
            "db_name": "one", "username": .string(single), "rotation_period": "1h",
        ])
        _ = try await f.t.call(.update, "database/static-roles/alt", [
            "db_name": "one", "username": .string(alternating), "strategy": "alternating", "rotation_period": "1h",
        ])
        let active = try await Self.creds(f, "alt")
        let session = try await PG.login(active.user, active.password, database: f.pgDatabases["one"]!)
        try await session.execute("CREATE TABLE \(alternating)_made (x int)")

        #expect(await f.t.status(.delete, "database/config/one") == 400, "static roles use the database")
        #expect(await f.t.status(.delete, "database/static-roles/alt") == nil)
        #expect(await f.t.status(.delete, "database/static-roles/single") == nil)
        let superuser = try await PG.superuser()
        let left = try await superuser.query(
            "SELECT rolname FROM pg_roles WHERE rolname IN ($1, $2, $3, $4) ORDER BY rolname",
            [single, alternating, alternating + "_a", alternating + "_b"]
        ).compactMap { $0[0] }
        await superuser.close()
        let admin = try await PG.login(f.admin, f.adminPassword, database: f.pgDatabases["one"]!)
        let owner = try await admin.query("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = $1", [alternating + "_made"])
        await admin.close()
        #expect(left == [single, alternating].sorted(), "the _a/_b users are gone; the operator's roles stay")
        #expect(owner.first?[0] == f.admin, "the dropped user's table was handed to the admin")
        #expect(await !f.canLogIn(active.user, active.password, "one"))
        #expect(await f.t.status(.read, "database/static-creds/alt") == 400, "an unknown static role")
        await session.close()
    }

    /// Point 3: a server down across three scheduled runs rotates exactly once when it starts.
    @Test func missedRunsAreCaughtUpOnce() async throws {
        let clock = ManualClock(Self.start)
        let keyFile = TestBroker.temporaryDirectory() + "/unseal.key"
        let f = try await IncidentFixture.make(seal: .keyFile(path: keyFile), clock: clock) { $0.schedulerJitter = 0 }
        let user = PG.unique("st_catch")
        try await f.asAdmin("one", "CREATE ROLE \(user) LOGIN")
        _ = try await f.t.call(.update, "database/static-roles/catch", [
            "db_name": "one", "username": .string(user), "rotation_schedule": "*/5 * * * *",
        ])
        let before = try await Self.creds(f, "catch")
        await f.t.broker.sealAll()

        // Down from 10:02 to 10:17: the runs of 10:05, 10:10 and 10:15 were missed.
        clock.set(CronTestTime.date("2026-01-01T10:17:30Z"))
        let restarted = try await Broker.open(config: f.t.broker.config, storage: f.t.storage, logger: Logger.test(),
                                              clock: clock)
        #expect(await !restarted.seal.isSealed, "the key file unsealed it")
        let runs = Self.rotations(await restarted.scheduler.runDueJobs(), "catch")
        #expect(runs.map(\.trigger) == ["catch-up"])
        #expect(Self.rotations(await restarted.scheduler.runDueJobs(), "catch").isEmpty, "once, not once per missed run")
        #expect(try await restarted.scheduler.history("static-role:catch").count == 1)
        guard case .envelope(let envelope, _) = try await restarted.handle(LogicalRequest(
            id: "x", operation: .read, path: "database/static-creds/catch", token: f.t.rootToken))
        else { Issue.record("no creds"); return }
        let after = envelope.data["password"]!.stringValue!
        #expect(after != before.password)
        #expect(await f.canLogIn(user, after, "one"))
        #expect(envelope.data["ttl"] == 150, "next run at 10:20, counted from the catch-up")
        clock.set(CronTestTime.date("2026-01-01T10:20:00Z"))
        #expect(Self.rotations(await restarted.scheduler.runDueJobs(), "catch").map(\.trigger) == ["schedule"])
    }

    /// Point 4: after rotate-root the broker still issues and revokes, and the previous admin
    /// password no longer logs in.
    /// Root rotations racing issuance and revocation: every request succeeds (open admin
    /// connections stay valid, new ones use the new password) and the broker is never left
    /// with a pool holding a stale password.
    @Test func rootRotationUnderLoadNeverLocksTheBrokerOut() async throws {
        let f = try await IncidentFixture.make()
        try await f.dynamicRole("r", in: "one")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    for _ in 0..<10 {
                        let credential = try await DatabaseCredentialTests.issue(f.t, role: "r")
                        _ = try await f.t.call(.update, "sys/leases/revoke", ["lease_id": .string(credential.lease)])
                    }
                }
            }
            group.addTask {
                for _ in 0..<8 {
                    _ = try await f.t.call(.update, "database/rotate-root/one")
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
            do {
                try await group.waitForAll()
            } catch let error as APIError {
                Issue.record("a request failed during root rotations: \(error.status) \(error.messages)")
            }
        }
        // New connections only: the pools are dropped, as after a seal.
        await f.t.broker.databases.closeAll()
        let credential = try await DatabaseCredentialTests.issue(f.t, role: "r")
        #expect(await f.canLogIn(credential.user, credential.password, "one"))
        _ = try await f.t.call(.update, "sys/leases/revoke", ["lease_id": .string(credential.lease)])
        #expect(await !f.canLogIn(f.admin, f.adminPassword, "one"))
    }

    @Test func rootRotationKeepsTheBrokerWorking() async throws {
        let f = try await IncidentFixture.make()
        try await f.dynamicRole("r", in: "two")
        #expect(await f.t.status(.update, "database/rotate-root/one") == nil)
        #expect(await !f.canLogIn(f.admin, f.adminPassword, "one"), "the previous admin password is dead")
        for name in ["one", "two"] {
            let config = try #require(try await f.t.broker.databases.config(name))
            #expect(config.password != f.adminPassword && config.lastRootRotation != nil,
                    "databases sharing the login have the new password")
        }
        let credential = try await DatabaseCredentialTests.issue(f.t, role: "r")
        #expect(await f.canLogIn(credential.user, credential.password, "two"))
        _ = try await f.t.call(.update, "sys/leases/revoke", ["lease_id": .string(credential.lease)])
        #expect(await !f.canLogIn(credential.user, credential.password, "two"))
        let read = try await f.t.data(.read, "database/config/one")
        #expect(!"\(read)".contains(try #require(try await f.t.broker.databases.config("one")).password), "never shown")
        #expect(await f.t.status(.update, "database/rotate-root/nope") == 400)
    }

    /// Point 5: 10,000 KV versions read back during and after the re-wrap; none is left on the
    /// old term when key-status says it finished.
    @Test func keyRotationRewrapsEveryEntry() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "secret/config", ["max_versions": 100])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for secret in 0..<100 {
                group.addTask {
                    for version in 1...100 {
                        _ = try await t.call(.update, "secret/data/k\(secret)", ["data": ["v": .string("\(secret)-\(version)")]])
                    }
                }
            }
            try await group.waitForAll()
        }
        func readAll() async throws {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for secret in 0..<100 {
                    group.addTask {
                        for version in 1...100 {
                            let data = try await t.data(.read, "secret/data/k\(secret)", ["version": .int(Int64(version))])
                            #expect(data["data"]?["v"] == .string("\(secret)-\(version)"))
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        for _ in 0..<3 { _ = try await t.call(.update, "auth/token/create", ["policies": ["default"]]) }  // token/parent/… entries are empty
        let status = try await t.data(.update, "sys/rotate")
        #expect(status["term"] == 2 && status["rewrap"]?["state"] == "running")
        #expect(try await t.broker.rewrapper.step(limit: 3000, now: 0) == nil, "not finished after one step")
        try await readAll()  // during the re-wrap: some entries on term 1, some on term 2
        var detail: String?
        var steps = 1
        while detail == nil, steps < 100 {
            detail = try await t.broker.rewrapper.step(limit: 3000, now: 0)
            steps += 1
        }
        #expect(detail?.contains("finished") == true)
        let finished = try await t.data(.read, "sys/key-status")
        #expect(finished["rewrap"]?["state"] == "finished")
        #expect((finished["rewrap"]?["entries_moved"]?.intValue ?? 0) >= 10_000)
        var onOldTerm = 0, total = 0
        var after: String?
        while true {
            let paths = try await t.storage.paths(withPrefix: "", after: after, limit: 1000)
            guard let last = paths.last else { break }
            after = last
            for path in paths {
                total += 1
                if let entry = try await t.storage.get(path), Barrier.term(of: entry) != 2 { onOldTerm += 1 }
            }
        }
        #expect(total > 10_000 && onOldTerm == 0)
        try await readAll()
    }
}

/// Times for the scheduler tests.
enum CronTestTime {
    static func date(_ text: String) -> Date { Date(timeIntervalSince1970: Timestamp.parse(text)!) }
    static func unix(_ text: String) -> Int64 { Int64(Timestamp.parse(text)!) }
}

/// The job list follows what is written through the API at once (it was cached for 5 s, so a
/// static role or a root-rotation schedule just written could not be run or listed yet).
@Suite struct ScheduledJobListTests {
    @Test func aScheduleWrittenThroughTheAPIIsAJobAtOnce() async throws {
        let t = try await TestBroker.make()
        func jobs() async throws -> [String] {
            try await t.data(.list, "sys/mayfly/schedule")["keys"]?.arrayValue?.compactMap(\.stringValue) ?? []
        }
        #expect(try await !jobs().contains("root-rotation:orders"))
        _ = try await t.call(.update, "database/config/orders", [
            "plugin_name": "postgresql-database-plugin", "verify_connection": false, "allowed_roles": "*",
            "connection_url": "postgresql://admin@127.0.0.1:5432/orders?sslmode=verify-full",
            "root_rotation_schedule": "0 4 * * 0",
        ])
        #expect(try await jobs().contains("root-rotation:orders"))
        _ = try await t.call(.delete, "database/config/orders")
        #expect(try await !jobs().contains("root-rotation:orders"))
    }
}
