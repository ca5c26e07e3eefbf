import Foundation
import MayflyPostgres
import Synchronization

/// Who may write a shared store: every node (no HA), nobody on this node (a standby), or this
/// node as the holder of one term of the leader lock.
public enum StoreFence: Sendable, Equatable {
    /// No HA: writes are not fenced.
    case off
    /// HA, and this node does not hold the lock: every write is refused.
    case standby
    /// HA, and this node held the lock in `term` when it last looked: every write checks, in
    /// its own transaction, that the lock still names `node` and `term` and has not expired.
    case leader(node: String, term: Int64)
}

/// A store several nodes share, with the leader lock they elect their leader by (HA). Every
/// write of the store checks the fence this node set, in the write's own transaction.
public protocol LeaderLockStore: Sendable {
    func acquireLeadership(node: String, address: String, apiAddress: String, ttl: Double) async throws -> Int64?
    func renewLeadership(node: String, term: Int64, ttl: Double) async throws -> Bool
    func releaseLeadership(node: String, term: Int64) async throws
    func leaderLock() async throws -> LeaderLock?
    func setFence(_ fence: StoreFence)
    func reportMember(_ member: ClusterMember) async throws
    func members() async throws -> [ClusterMember]
}

/// One node as it last reported itself (its heartbeat row).
public struct ClusterMember: Sendable, Equatable {
    public var node: String
    /// The lock holder name of its current process (`node/random`).
    public var holder: String
    public var address: String
    public var apiAddress: String
    /// `leader` or `standby`.
    public var role: String
    public var term: Int64
    public var version: String
    /// Seconds since its last report (on PostgreSQL's clock; 0 when reporting).
    public var secondsSinceHeartbeat: Double = 0

    public init(node: String, holder: String, address: String, apiAddress: String, role: String, term: Int64, version: String) {
        self.node = node
        self.holder = holder
        self.address = address
        self.apiAddress = apiAddress
        self.role = role
        self.term = term
        self.version = version
    }
}

/// The leader lock row as PostgreSQL holds it.
public struct LeaderLock: Sendable, Equatable {
    public var node: String
    /// Where the holder takes forwarded requests (its `cluster_addr`).
    public var address: String
    /// What clients reach the holder by (its `api_addr`).
    public var apiAddress: String
    public var term: Int64
    /// Whether the lock is live now (on PostgreSQL's clock).
    public var live: Bool
    /// Seconds since its holder last renewed it.
    public var secondsSinceHeartbeat: Double
    /// Seconds until it expires unless renewed (negative once expired).
    public var secondsToExpiry: Double = 0
}

extension PostgresStorage: LeaderLockStore {
    /// Takes the leader lock for `node` if it is free or expired (a new term), or renews it if
    /// `node` holds it (the same term), for `ttl` seconds on PostgreSQL's clock. The term this
    /// node holds afterwards, or nil when another node holds a live lock.
    public func acquireLeadership(node: String, address: String, apiAddress: String = "", ttl: Double) async throws -> Int64? {
        let table = "\"\(schema)\".leader"
        let seconds = String(ttl)
        return try await run { session in
            var held: Int64?
            try Self.transaction(session) {
                let current = try session.query(
                    "SELECT node, term, expires_at > clock_timestamp() FROM \(table) WHERE id = 1 FOR UPDATE").first
                if let current, current[2] == "t", current[0] != node {
                    held = nil  // another node's live lock
                } else if let current, current[2] == "t" {
                    held = Int64(current[1] ?? "")
                    _ = try session.query("""
                        UPDATE \(table) SET heartbeat_at = clock_timestamp(),
                            expires_at = clock_timestamp() + make_interval(secs => $1::float8), address = $2, api_address = $3
                        WHERE id = 1
                        """, [seconds, address, apiAddress])
                } else {
                    // Free or expired: a new term, whoever held the last one.
                    let term = (current.flatMap { Int64($0[1] ?? "") } ?? 0) + 1
                    _ = try session.query("""
                        INSERT INTO \(table) (id, node, address, api_address, term, acquired_at, heartbeat_at, expires_at)
                        VALUES (1, $1, $2, $5, $3, clock_timestamp(), clock_timestamp(), clock_timestamp() + make_interval(secs => $4::float8))
                        ON CONFLICT (id) DO UPDATE SET node = excluded.node, address = excluded.address,
                            api_address = excluded.api_address, term = excluded.term,
                            acquired_at = excluded.acquired_at, heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at
                        """, [node, address, String(term), seconds, apiAddress])
                    held = term
                }
            }
            return held
        }
    }

    /// Renews the lock `node` holds in `term` for `ttl` seconds; false when it is lost (expired
    /// and taken, or another term).
    public func renewLeadership(node: String, term: Int64, ttl: Double) async throws -> Bool {
        let table = "\"\(schema)\".leader"
        return try await run { session in
            try !session.query("""
                UPDATE \(table) SET heartbeat_at = clock_timestamp(),
                    expires_at = clock_timestamp() + make_interval(secs => $3::float8)
                WHERE id = 1 AND node = $1 AND term = $2 AND expires_at > clock_timestamp() RETURNING 1
                """, [node, String(term), String(ttl)]).isEmpty
        }
    }

    /// Gives the lock up at once (a graceful stop), so another node need not wait for it to expire.
    public func releaseLeadership(node: String, term: Int64) async throws {
        let table = "\"\(schema)\".leader"
        try await run { session in
            _ = try session.query("UPDATE \(table) SET expires_at = clock_timestamp() WHERE id = 1 AND node = $1 AND term = $2",
                                  [node, String(term)])
        }
    }

    /// The lock as it stands, or nil when no node ever took it.
    public func leaderLock() async throws -> LeaderLock? {
        let table = "\"\(schema)\".leader"
        return try await run { session in
            try session.query("""
                SELECT node, address, term, expires_at > clock_timestamp(),
                       extract(epoch FROM clock_timestamp() - heartbeat_at), api_address,
                       extract(epoch FROM expires_at - clock_timestamp())
                FROM \(table) WHERE id = 1
                """).first.map {
                LeaderLock(node: $0[0] ?? "", address: $0[1] ?? "", apiAddress: $0[5] ?? "", term: Int64($0[2] ?? "") ?? 0,
                           live: $0[3] == "t", secondsSinceHeartbeat: Double($0[4] ?? "") ?? 0,
                           secondsToExpiry: Double($0[6] ?? "") ?? 0)
            }
        }
    }

    /// Records this node's heartbeat row (not fenced: every node reports itself).
    public func reportMember(_ member: ClusterMember) async throws {
        let table = "\"\(schema)\".members"
        try await run { session in
            _ = try session.query("""
                INSERT INTO \(table) (node, holder, address, api_address, role, term, version, started_at, heartbeat_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, clock_timestamp(), clock_timestamp())
                ON CONFLICT (node) DO UPDATE SET holder = excluded.holder, address = excluded.address,
                    api_address = excluded.api_address, role = excluded.role, term = excluded.term, version = excluded.version,
                    started_at = CASE WHEN \(table).holder = excluded.holder THEN \(table).started_at ELSE excluded.started_at END,
                    heartbeat_at = excluded.heartbeat_at
                """, [member.node, member.holder, member.address, member.apiAddress, member.role, String(member.term), member.version])
        }
    }

    /// Every node that ever reported, most recent first.
    public func members() async throws -> [ClusterMember] {
        let table = "\"\(schema)\".members"
        return try await run { session in
            try session.query("""
                SELECT node, holder, address, api_address, role, term, version, extract(epoch FROM clock_timestamp() - heartbeat_at)
                FROM \(table) ORDER BY heartbeat_at DESC, node
                """).map {
                var member = ClusterMember(node: $0[0] ?? "", holder: $0[1] ?? "", address: $0[2] ?? "", apiAddress: $0[3] ?? "",
                                           role: $0[4] ?? "", term: Int64($0[5] ?? "") ?? 0, version: $0[6] ?? "")
                member.secondsSinceHeartbeat = Double($0[7] ?? "") ?? 0
                return member
            }
        }
    }

    /// Sets who may write (the HA loop, as it takes, holds or loses the lock).
    public func setFence(_ fence: StoreFence) {
        fenceState.withLock { $0 = fence }
    }

    public var fence: StoreFence { fenceState.withLock { $0 } }

    /// Checks the fence inside a write transaction: the lock row is read `FOR SHARE`, so a
    /// takeover waits for this transaction, and a transaction after a takeover sees it.
    static func checkFence(_ fence: StoreFence, _ session: PGSession, schema: String) throws {
        switch fence {
        case .off:
            return
        case .standby:
            throw StorageError(.fenced, "this node is a standby: only the leader writes to the store")
        case .leader(let node, let term):
            let held = try session.query("""
                SELECT 1 FROM "\(schema)".leader
                WHERE id = 1 AND node = $1 AND term = $2 AND expires_at > clock_timestamp() FOR SHARE
                """, [node, String(term)])
            guard !held.isEmpty else {
                throw StorageError(.fenced, "this node no longer holds the leader lock (term \(term)): its write is refused")
            }
        }
    }
}
