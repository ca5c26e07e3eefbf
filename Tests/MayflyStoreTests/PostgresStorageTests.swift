import Foundation
import MayflyMigrations
import MayflyPostgres
import MayflyStore
import Testing

/// The throw-away cluster of scripts/test; with MAYFLY_REQUIRE_INTEGRATION=1 its absence fails.
enum StoreCluster {
    static let environment = ProcessInfo.processInfo.environment
    static var enabled: Bool { environment["MAYFLY_TEST_PG_HOST"] != nil || environment["MAYFLY_REQUIRE_INTEGRATION"] == "1" }
}

/// `storage "postgresql"` against the test cluster: the same contract as the SQLite store
/// (atomic commits, compare-and-set, sorted listings, lease queries), each test in a schema of
/// its own, plus what only a shared store has to get right: concurrent writers from two
/// stores conflict instead of overwriting.
@Suite(.enabled(if: StoreCluster.enabled, "needs the test PostgreSQL from scripts/test"))
struct PostgresStorageTests {
    static let environment = StoreCluster.environment

    static func config() throws -> PGConnectionConfig {
        guard let host = environment["MAYFLY_TEST_PG_HOST"] else {
            throw StorageError(.unavailable, "MAYFLY_REQUIRE_INTEGRATION=1 but no test PostgreSQL: run the tests with scripts/test")
        }
        return PGConnectionConfig(
            host: host, port: Int(environment["MAYFLY_TEST_PG_PORT"] ?? "") ?? 5432,
            database: environment["MAYFLY_TEST_PG_DB"] ?? "mayfly_test", user: environment["MAYFLY_TEST_PG_USER"] ?? "",
            password: environment["MAYFLY_TEST_PG_PASSWORD"], sslMode: "verify-full",
            sslRootCert: environment["MAYFLY_TEST_PG_SSLROOTCERT"])
    }

    static func schema() -> String { "mf_store_" + UUID().uuidString.prefix(8).lowercased() }

    static func store(_ schema: String = schema()) async throws -> PostgresStorage {
        try await PostgresStorage(config: try config(), schema: schema)
    }

    @Test func migratesOnceAndPersistsAcrossReopen() async throws {
        let schema = Self.schema()
        do {
            let first = try await Self.store(schema)
            #expect(try await first.appliedMigrations() == Migrations.postgresql.map(\.name))
            // Every byte value survives, NUL and 0xFF included.
            try await first.commit([.put(StoredEntry(path: "a/b", version: 1, value: Array(0...255)), expectedVersion: 0)])
            try await first.setSystemValue("seal-config", [0, 9, 255])
            await first.close()
        }
        let reopened = try await Self.store(schema)
        #expect(try await reopened.get("a/b") == StoredEntry(path: "a/b", version: 1, value: Array(0...255)))
        #expect(try await reopened.systemValue("seal-config") == [0, 9, 255])
        #expect(try await reopened.appliedMigrations() == Migrations.postgresql.map(\.name), "applied once")
        try await reopened.setSystemValue("seal-config", nil)
        #expect(try await reopened.systemValue("seal-config") == nil)
        await reopened.close()
    }

    @Test func conditionalPutsConflictAndAFailedCommitLeavesNothing() async throws {
        let storage = try await Self.store()
        try await StoreContract.conditionalPuts(storage)
        await storage.close()
    }

    @Test func twoStoresWritingTheSameVersionOneWins() async throws {
        let schema = Self.schema()
        let a = try await Self.store(schema), b = try await Self.store(schema)
        try await a.commit([.put(StoredEntry(path: "k", version: 1, value: [0]), expectedVersion: 0)])
        for round in 1...20 {
            let version = Int64(round)
            async let first: Bool = (try? await a.commit([.put(StoredEntry(path: "k", version: version + 1, value: [1]), expectedVersion: version)])) != nil
            async let second: Bool = (try? await b.commit([.put(StoredEntry(path: "k", version: version + 1, value: [2]), expectedVersion: version)])) != nil
            let (one, two) = await (first, second)
            #expect(one != two, "round \(round): exactly one writer wins")
            #expect(try await a.version(of: "k") == version + 1)
        }
        await a.close()
        await b.close()
    }

    @Test func listingsAndPrefixDeletesMatchTheSQLiteStore() async throws {
        let storage = try await Self.store()
        try await StoreContract.listings(storage)
        await storage.close()
    }

    @Test func leaseRowsAreFoundByExpiryPrefixFilterAndToken() async throws {
        let storage = try await Self.store()
        func lease(_ id: String, _ state: LeaseState, expires: Int64, database: String = "one", token: String = "") -> LeaseRecord {
            var lease = LeaseRecord(id: id, database: database, role: "r", username: "v-" + id.suffix(3), state: state,
                                    issuedAt: 100, expiresAt: expires, maxExpiresAt: expires + 100, identity: "unix:uid:1000",
                                    connectionLimit: 2, tokenHash: token)
            lease.lastError = state == .revoking ? "it's \"quoted\"; DROP TABLE leases" : nil
            return lease
        }
        try await storage.insertLease(lease("database/creds/r/aaa", .active, expires: 150, token: "t1"))
        try await storage.insertLease(lease("database/creds/r/bbb", .pending, expires: 500))
        try await storage.insertLease(lease("database/creds/r/ccc", .active, expires: 500, database: "two", token: "t1"))
        try await storage.insertLease(lease("database/creds/rr/ddd", .active, expires: 500))
        var failed = lease("database/creds/r/eee", .revoking, expires: 500)
        failed.nextAttemptAt = 180
        try await storage.updateLeases([failed])
        #expect(try await storage.lease(id: "database/creds/r/eee") == failed, "every column round-trips")

        let due = try await storage.dueLeases(now: 200, pendingBefore: 120, limit: 10).map(\.id).sorted()
        #expect(due == ["database/creds/r/aaa", "database/creds/r/bbb", "database/creds/r/eee"])
        #expect(try await storage.liveLeases(prefix: "database/creds/r/", after: nil, limit: 10).map(\.id)
                == ["database/creds/r/aaa", "database/creds/r/bbb", "database/creds/r/ccc", "database/creds/r/eee"])
        #expect(try await storage.liveLeases(prefix: "database/creds/r/", after: "database/creds/r/bbb", limit: 1).map(\.id)
                == ["database/creds/r/ccc"])
        #expect(try await storage.leases(matching: LeaseFilter(databases: ["two"]), after: nil, limit: 10).map(\.id)
                == ["database/creds/r/ccc"])
        #expect(try await storage.leaseCounts(matching: LeaseFilter(tokenHashes: ["t1"])) == ["one": [.active: 1], "two": [.active: 1]])
        #expect(try await storage.connectionLimitSums() == ["one": 8, "two": 2])
        #expect(try await storage.liveLeaseCount(identity: "unix:uid:1000") == 5)
        #expect(try await storage.activateLease(id: "database/creds/r/bbb"))
        #expect(try await !storage.activateLease(id: "database/creds/r/bbb"), "only a pending lease activates")
        #expect(try await storage.markRevoking(matching: LeaseFilter(tokenHashes: ["t1"]), now: 300, pendingDue: 360) == 2)
        #expect(try await storage.lease(id: "database/creds/r/ccc")?.nextAttemptAt == 300)
        #expect(try await storage.leaseCounts() == [.active: 2, .revoking: 3])
        await storage.close()
    }

    /// Makes the lock expire now, as a leader paused (SIGSTOP) or cut off past its TTL leaves it.
    static func expireLock(_ schema: String) async throws {
        let connection = try await PGConnection.connect(try config())
        try await connection.execute("UPDATE \"\(schema)\".leader SET expires_at = clock_timestamp() - interval '1 second'")
        await connection.close()
    }

    @Test func theLeaderLockIsHeldRenewedAndTakenOverWithAGrowingTerm() async throws {
        let schema = Self.schema()
        let a = try await Self.store(schema), b = try await Self.store(schema)
        #expect(try await a.leaderLock() == nil)
        #expect(try await a.acquireLeadership(node: "a", address: "https://a:8200", ttl: 30) == 1)
        #expect(try await b.acquireLeadership(node: "b", address: "https://b:8200", ttl: 30) == nil, "a live lock is not taken")
        #expect(try await a.acquireLeadership(node: "a", address: "https://a:8200", ttl: 30) == 1, "its holder renews the same term")
        #expect(try await a.renewLeadership(node: "a", term: 1, ttl: 30))
        let lock = try #require(try await b.leaderLock())
        #expect(lock.node == "a" && lock.address == "https://a:8200" && lock.term == 1 && lock.live)

        try await Self.expireLock(schema)
        #expect(try await b.acquireLeadership(node: "b", address: "https://b:8200", ttl: 30) == 2, "an expired lock is taken, term 2")
        #expect(try await !a.renewLeadership(node: "a", term: 1, ttl: 30), "the former holder learns it lost the lock")
        try await b.releaseLeadership(node: "b", term: 2)
        #expect(try await a.acquireLeadership(node: "a", address: "https://a:8200", ttl: 30) == 3, "released: taken at once")
        await a.close()
        await b.close()
    }

    /// Issue 15, point 4, in the store: a leader paused past its TTL writes nothing once
    /// another node holds the lock, and a standby writes nothing at all.
    @Test func aFormerLeadersWritesAreRefusedAfterATakeover() async throws {
        let schema = Self.schema()
        let a = try await Self.store(schema), b = try await Self.store(schema)
        let termA = try #require(try await a.acquireLeadership(node: "a", address: "", ttl: 30))
        a.setFence(.leader(node: "a", term: termA))
        b.setFence(.standby)
        try await a.commit([.put(StoredEntry(path: "k", version: 1, value: [1]), expectedVersion: 0)])
        await #expect(throws: StorageError.self, "a standby writes nothing") {
            try await b.commit([.put(StoredEntry(path: "standby", version: 1, value: [9]), expectedVersion: nil)])
        }

        try await Self.expireLock(schema)  // a is paused past its TTL
        let termB = try #require(try await b.acquireLeadership(node: "b", address: "", ttl: 30))
        b.setFence(.leader(node: "b", term: termB))
        try await b.commit([.put(StoredEntry(path: "k", version: 2, value: [2]), expectedVersion: 1)])

        // a wakes up still believing it leads: every kind of write is refused.
        await #expect(throws: StorageError.self) {
            try await a.commit([.put(StoredEntry(path: "k", version: 3, value: [3]), expectedVersion: nil)])
        }
        await #expect(throws: StorageError.self) { try await a.setSystemValue("keyring", [7]) }
        await #expect(throws: StorageError.self) {
            try await a.insertLease(LeaseRecord(id: "database/creds/r/x", database: "d", role: "r", username: "u", state: .pending,
                                                issuedAt: 1, expiresAt: 2, maxExpiresAt: 3))
        }
        await #expect(throws: StorageError.self) {
            _ = try await a.markRevoking(matching: LeaseFilter(), now: 1, pendingDue: 1)
        }
        #expect(try await b.get("k") == StoredEntry(path: "k", version: 2, value: [2]), "none of a's writes landed")
        #expect(try await b.systemValue("keyring") == nil)
        #expect(try await b.lease(id: "database/creds/r/x") == nil)
        #expect(try await b.get("standby") == nil)
        await a.close()
        await b.close()
    }
}

