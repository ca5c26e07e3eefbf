import Foundation
import MayflyPostgres

extension PostgresStorage: LeaseStorage {
    private static let leaseColumns = """
        id, database_name, role_name, username, state, issued_at, expires_at, max_expires_at, last_renewal,
        attempts, next_attempt_at, last_error, revoked_at, identity, connection_limit, token_hash
        """

    private var leases: String { "\"\(schema)\".leases" }

    private static func lease(_ row: [String?]) -> LeaseRecord {
        func int(_ index: Int) -> Int64? { row[index].flatMap { Int64($0) } }
        var lease = LeaseRecord(
            id: row[0] ?? "", database: row[1] ?? "", role: row[2] ?? "", username: row[3] ?? "",
            state: LeaseState(rawValue: row[4] ?? "") ?? .revoking, issuedAt: int(5) ?? 0, expiresAt: int(6) ?? 0,
            maxExpiresAt: int(7) ?? 0)
        lease.lastRenewal = int(8)
        lease.attempts = Int(int(9) ?? 0)
        lease.nextAttemptAt = int(10)
        lease.lastError = row[11]
        lease.revokedAt = int(12)
        lease.identity = row[13] ?? ""
        lease.connectionLimit = Int(int(14) ?? 0)
        lease.tokenHash = row[15] ?? ""
        return lease
    }

    private static func values(_ lease: LeaseRecord) -> [String?] {
        [lease.id, lease.database, lease.role, lease.username, lease.state.rawValue, String(lease.issuedAt),
         String(lease.expiresAt), String(lease.maxExpiresAt), lease.lastRenewal.map(String.init), String(lease.attempts),
         lease.nextAttemptAt.map(String.init), lease.lastError, lease.revokedAt.map(String.init), lease.identity,
         String(lease.connectionLimit), lease.tokenHash]
    }

    /// `$1, …, $16`: one parameter per lease column.
    private static let parameterList = (1...16).map { "$\($0)" }.joined(separator: ", ")

    public func insertLease(_ lease: LeaseRecord) async throws {
        let table = leases
        try await write { session in
            _ = try session.query("INSERT INTO \(table) (\(Self.leaseColumns)) VALUES (\(Self.parameterList))", Self.values(lease))
        }
    }

    public func updateLeases(_ records: [LeaseRecord]) async throws {
        guard !records.isEmpty else { return }
        let table = leases
        let assignments = Self.leaseColumns.split(separator: ",").dropFirst()
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
        try await write { session in
            for lease in records {
                _ = try session.query("""
                    INSERT INTO \(table) (\(Self.leaseColumns)) VALUES (\(Self.parameterList))
                    ON CONFLICT (id) DO UPDATE SET \(assignments)
                    """, Self.values(lease))
            }
        }
    }

    public func lease(id: String) async throws -> LeaseRecord? {
        let table = leases
        return try await run { session in
            try session.query("SELECT \(Self.leaseColumns) FROM \(table) WHERE id = $1", [id]).first.map(Self.lease)
        }
    }

    public func dueLeases(now: Int64, pendingBefore: Int64, limit: Int) async throws -> [LeaseRecord] {
        let table = leases
        return try await run { session in
            try session.query("""
                (SELECT \(Self.leaseColumns) FROM \(table) WHERE state = 'active' AND expires_at <= $1)
                UNION ALL
                (SELECT \(Self.leaseColumns) FROM \(table) WHERE state = 'pending' AND issued_at <= $2)
                UNION ALL
                (SELECT \(Self.leaseColumns) FROM \(table) WHERE state = 'revoking' AND next_attempt_at <= $1)
                LIMIT $3
                """, [String(now), String(pendingBefore), String(limit)]).map(Self.lease)
        }
    }

    public func liveLeases(prefix start: String, after: String?, limit: Int) async throws -> [LeaseRecord] {
        let table = leases
        return try await run { session in
            try session.query("""
                SELECT \(Self.leaseColumns) FROM \(table)
                WHERE id >= $1 AND id > $2 AND starts_with(id, $1) AND state != 'revoked'
                ORDER BY id LIMIT $3
                """, [start, after ?? "", String(limit)]).map(Self.lease)
        }
    }

    public func leaseCounts() async throws -> [LeaseState: Int] {
        let table = leases
        return try await run { session in
            var counts: [LeaseState: Int] = [:]
            for row in try session.query("SELECT state, count(*) FROM \(table) GROUP BY state") {
                if let state = LeaseState(rawValue: row[0] ?? ""), let count = row[1].flatMap({ Int($0) }) { counts[state] = count }
            }
            return counts
        }
    }

    /// The WHERE clause of `filter`, its parameters numbered from `$first`.
    private static func condition(_ filter: LeaseFilter, first: Int = 1) -> (sql: String, values: [String?]) {
        var clauses = ["TRUE"]
        var values: [String?] = []
        func next(_ value: String) -> String {
            values.append(value)
            return "$\(first + values.count - 1)"
        }
        for (column, items) in filter.listConditions {
            clauses.append("\(column) IN (\(items.map(next).joined(separator: ", ")))")
        }
        if let after = filter.issuedAfter { clauses.append("issued_at >= \(next(String(after)))") }
        if let before = filter.issuedBefore { clauses.append("issued_at < \(next(String(before)))") }
        return (clauses.joined(separator: " AND "), values)
    }

    public func leases(matching filter: LeaseFilter, after: String?, limit: Int) async throws -> [LeaseRecord] {
        let table = leases
        let (condition, values) = Self.condition(filter)
        let n = values.count
        return try await run { session in
            try session.query("""
                SELECT \(Self.leaseColumns) FROM \(table) WHERE \(condition) AND id > $\(n + 1) ORDER BY id LIMIT $\(n + 2)
                """, values + [after ?? "", String(limit)]).map(Self.lease)
        }
    }

    public func leaseCounts(matching filter: LeaseFilter) async throws -> [String: [LeaseState: Int]] {
        let table = leases
        let (condition, values) = Self.condition(filter)
        return try await run { session in
            var counts: [String: [LeaseState: Int]] = [:]
            for row in try session.query(
                "SELECT database_name, state, count(*) FROM \(table) WHERE \(condition) GROUP BY database_name, state", values)
            {
                if let database = row[0], let state = LeaseState(rawValue: row[1] ?? ""), let count = row[2].flatMap({ Int($0) }) {
                    counts[database, default: [:]][state] = count
                }
            }
            return counts
        }
    }

    public func connectionLimitSums() async throws -> [String: Int] {
        let table = leases
        return try await run { session in
            var sums: [String: Int] = [:]
            for row in try session.query(
                "SELECT database_name, SUM(connection_limit) FROM \(table) WHERE state != 'revoked' GROUP BY database_name")
            {
                if let database = row[0] { sums[database] = row[1].flatMap { Int($0) } ?? 0 }
            }
            return sums
        }
    }

    public func activateLease(id: String) async throws -> Bool {
        let table = leases
        return try await write { session in
            try !session.query("UPDATE \(table) SET state = 'active' WHERE id = $1 AND state = 'pending' RETURNING 1", [id]).isEmpty
        }
    }

    public func markRevoking(matching filter: LeaseFilter, now: Int64, pendingDue: Int64) async throws -> Int {
        let table = leases
        let (condition, values) = Self.condition(filter, first: 3)
        return try await write { session in
            try session.query("""
                WITH marked AS (
                    UPDATE \(table) SET state = 'revoking',
                        next_attempt_at = CASE state WHEN 'pending' THEN $1::bigint ELSE $2::bigint END
                    WHERE \(condition) AND state IN ('pending', 'active') RETURNING 1)
                SELECT count(*) FROM marked
                """, [String(pendingDue), String(now)] + values).first?[0].flatMap { Int($0) } ?? 0
        }
    }

    public func liveLeaseCount(identity: String) async throws -> Int {
        let table = leases
        return try await run { session in
            try session.query("SELECT count(*) FROM \(table) WHERE identity = $1 AND state != 'revoked'", [identity])
                .first?[0].flatMap { Int($0) } ?? 0
        }
    }
}
