import Foundation
import MayflyStore
import Synchronization

/// Admission control on issuance, so that a storm of cold starts cannot make the broker the
/// thing that exhausts PostgreSQL:
/// - a per-database connection budget: the sum of `CONNECTION LIMIT` over live leases stays
///   within a share (default 80%) of the server's `max_connections`, minus its reserved
///   connections and the broker's own pool;
/// - per identity, a limit on live leases and on issuances per minute.
/// Over a limit the answer is 429 with `Retry-After` and a message naming the limit. The
/// budget is kept in memory (loaded from the lease table, re-synced by reconcile) so an
/// issuance costs no extra query.
final class AdmissionControl: Sendable {
    private let storage: any LeaseStorage
    private let leasesPerIdentity: Int
    private let issueRate: LoginRateLimiter
    private let issuesPerMinute: Int
    /// Connections live leases may open, per database (nil until loaded).
    private let used = Mutex<[String: Int]?>(nil)
    /// `max_connections` less reserved connections, per database, and when it was read.
    private let servers = Mutex<[String: (usable: Int, maximum: Int, read: ContinuousClock.Instant)]>([:])
    /// Seconds a 429 asks the caller to wait.
    static let retryAfter = 5

    init(storage: any LeaseStorage, leasesPerIdentity: Int, issuesPerIdentityPerMinute: Int,
         clock: any WallClock = SystemClock())
    {
        self.storage = storage
        self.leasesPerIdentity = leasesPerIdentity
        issuesPerMinute = issuesPerIdentityPerMinute
        issueRate = LoginRateLimiter(limit: issuesPerIdentityPerMinute, clock: clock)
    }

    /// The budget of `database`: share × max_connections − reserved − the broker's pool.
    func budget(_ database: DatabaseConfig, backend: any CredentialBackend) async throws -> Int {
        let share = database.connectionBudget ?? 0.8
        func budget(maximum: Int, reserved: Int) -> Int {
            max(0, Int((Double(maximum) * share).rounded(.down)) - reserved - backend.adminConnections)
        }
        if let cached = servers.withLock({ $0[database.name] }), ContinuousClock.now - cached.read < .seconds(60) {
            return budget(maximum: cached.maximum, reserved: cached.maximum - cached.usable)
        }
        let (maximum, reserved) = try await backend.connectionCapacity()
        servers.withLock { $0[database.name] = (maximum - reserved, maximum, ContinuousClock.now) }
        return budget(maximum: maximum, reserved: reserved)
    }

    private func loaded() async throws {
        guard used.withLock({ $0 == nil }) else { return }
        let sums = try await storage.connectionLimitSums()
        used.withLock { if $0 == nil { $0 = sums } }
    }

    /// Admits one credential of `connectionLimit` connections for `identity`, or throws 429.
    /// The caller releases the reservation if the credential is not created.
    func admit(_ database: DatabaseConfig, backend: any CredentialBackend, connectionLimit: Int, identity: String) async throws {
        if issuesPerMinute > 0 {
            do {
                try issueRate.attempt(source: identity)
            } catch let error as APIError {
                throw APIError(status: 429, [
                    "issuance rate limit reached: \(identity) may obtain \(issuesPerMinute) credentials per minute",
                ], retryAfter: error.retryAfter)
            }
        }
        if leasesPerIdentity > 0 {
            let live = try await storage.liveLeaseCount(identity: identity)
            guard live < leasesPerIdentity else {
                throw APIError(status: 429, [
                    "live credential limit reached: \(identity) holds \(live) of at most \(leasesPerIdentity); revoke some or wait for them to expire",
                ], retryAfter: Self.retryAfter)
            }
        }
        // A share of 0 turns the budget off; under a budget every credential needs a limit.
        guard database.connectionBudget != 0 else { return }
        if connectionLimit < 0 { throw Self.unlimited(database.name) }
        let cost = connectionLimit
        guard cost > 0 else { return }
        let budget = try await budget(database, backend: backend)
        try await loaded()
        let inUse: Int? = used.withLock { used in
            let current = used?[database.name] ?? 0
            guard current + cost <= budget else { return current }
            used?[database.name] = current + cost
            return nil
        }
        if let inUse {
            throw APIError(status: 429, [
                "connection budget of database \(database.name) is used up: live credentials may already open \(inUse) of \(budget) connections (\(Int(((database.connectionBudget ?? 0.8) * 100).rounded()))% of max_connections, less reserved connections and the broker's pool). Wait for credentials to expire, lower the role's connection_limit (now \(connectionLimit)), or raise the database's connection_budget (now \(database.connectionBudget ?? 0.8))",
            ], retryAfter: Self.retryAfter)
        }
    }

    /// A role with `connection_limit = -1` (unlimited) under a connection budget: it could
    /// take every connection, so it is refused rather than left out of the sum.
    static func unlimited(_ database: String) -> APIError {
        APIError.badRequest(
            "connection_limit -1 (unlimited) needs connection_budget = 0 on database \"\(database)\": under a connection budget every credential needs a limit")
    }

    /// What the budget of `database` looks like now: the connections live credentials may open
    /// (the sum of their `CONNECTION LIMIT`s) against the budget, and `max_connections`.
    func status(_ database: DatabaseConfig, backend: any CredentialBackend) async throws -> (committed: Int, budget: Int, maximum: Int) {
        try await loaded()
        let budget = try await budget(database, backend: backend)
        let maximum = servers.withLock { $0[database.name]?.maximum } ?? 0
        return (used.withLock { $0?[database.name] ?? 0 }, budget, maximum)
    }

    /// Gives back the connections of credentials that are gone.
    func release(database: String, connections: Int) {
        guard connections > 0 else { return }
        used.withLock { used in
            if let current = used?[database] { used?[database] = max(0, current - connections) }
        }
    }

    /// Re-reads the sums from the lease table (reconcile), correcting any drift.
    func resync() async throws {
        let sums = try await storage.connectionLimitSums()
        used.withLock { $0 = sums }
    }
}
