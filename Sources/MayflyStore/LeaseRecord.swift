/// Where a lease is in its life.
public enum LeaseState: String, Sendable, Codable {
    /// Written before the login is created (intent before action); becomes active or is cleaned up.
    case pending
    /// The role exists and may log in until `expiresAt`.
    case active
    /// Revocation started and has not finished; retried with backoff until it does.
    case revoking
    /// The role is gone.
    case revoked
}

/// One lease row.
public struct LeaseRecord: Sendable, Equatable {
    public var id: String
    public var database: String
    public var role: String
    public var username: String
    public var state: LeaseState
    /// Unix seconds.
    public var issuedAt: Int64
    public var expiresAt: Int64
    public var maxExpiresAt: Int64
    public var lastRenewal: Int64?
    public var attempts: Int
    public var nextAttemptAt: Int64?
    /// Last revocation error (no secrets: SQLSTATE and message).
    public var lastError: String?
    public var revokedAt: Int64?
    /// Who obtained the credential (`unix:uid:1000`, `cert:spiffe://…`, `approle:<role>`, …).
    public var identity: String
    /// The role's `CONNECTION LIMIT` (0 for none counted).
    public var connectionLimit: Int
    /// The keyed hash of the token the credential was obtained with ("" for none): revoking
    /// that token revokes the lease.
    public var tokenHash: String

    public init(id: String, database: String, role: String, username: String, state: LeaseState, issuedAt: Int64,
                expiresAt: Int64, maxExpiresAt: Int64, identity: String = "", connectionLimit: Int = 0,
                tokenHash: String = "")
    {
        self.tokenHash = tokenHash
        self.connectionLimit = connectionLimit
        self.identity = identity
        self.id = id
        self.database = database
        self.role = role
        self.username = username
        self.state = state
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.maxExpiresAt = maxExpiresAt
        attempts = 0
    }
}

/// Lease rows, indexed by expiry so that the sweeper pages through what is due.
public protocol LeaseStorage: Sendable {
    /// Inserts a new lease (durable before it returns).
    func insertLease(_ lease: LeaseRecord) async throws
    /// Replaces lease rows, all in one transaction.
    func updateLeases(_ leases: [LeaseRecord]) async throws
    func lease(id: String) async throws -> LeaseRecord?
    /// Up to `limit` leases that need work at `now`: live leases past expiry, pending leases
    /// older than `pendingBefore`, and revocations whose retry time has come.
    func dueLeases(now: Int64, pendingBefore: Int64, limit: Int) async throws -> [LeaseRecord]
    /// Up to `limit` unrevoked leases whose id starts with `prefix`, sorted, after `after`.
    func liveLeases(prefix: String, after: String?, limit: Int) async throws -> [LeaseRecord]
    /// Number of leases in each state.
    func leaseCounts() async throws -> [LeaseState: Int]
    /// Up to `limit` leases that match `filter`, sorted by id, strictly after `after`.
    func leases(matching filter: LeaseFilter, after: String?, limit: Int) async throws -> [LeaseRecord]
    /// Number of leases matching `filter`, per database and state.
    func leaseCounts(matching filter: LeaseFilter) async throws -> [String: [LeaseState: Int]]
    /// Sum of `connectionLimit` over the unrevoked leases of each database.
    func connectionLimitSums() async throws -> [String: Int]
    /// Number of unrevoked leases of `identity`.
    func liveLeaseCount(identity: String) async throws -> Int
    /// Marks lease `id` active if it is still pending; false when something else (a revocation)
    /// changed it meanwhile.
    func activateLease(id: String) async throws -> Bool
    /// Marks the active and pending leases matching `filter` as revoking, due at `now` (pending
    /// ones at `pendingDue`: their issuer may still be creating the role); returns how many.
    func markRevoking(matching filter: LeaseFilter, now: Int64, pendingDue: Int64) async throws -> Int
    /// Gives back the memory the store's connections cache (after a pass over many rows).
    func releaseMemory() async
}

extension LeaseStorage {
    /// Replaces one lease row.
    public func updateLease(_ lease: LeaseRecord) async throws {
        try await updateLeases([lease])
    }

    public func releaseMemory() async {}
}
