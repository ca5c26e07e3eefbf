import Foundation
import Logging
import Metrics
import MayflyCrypto
import MayflyStore
import Synchronization

/// Issues dynamic database credentials and carries each lease through its life: pending
/// (written before the login is created), active, revoking (retried with capped backoff until
/// it finishes), revoked. What happens in the database is its `CredentialBackend`'s.
final class LeaseManager: Sendable {
    private let leases: any LeaseStorage
    private let databases: DatabaseEngine
    private let logger: Logger
    let admission: AdmissionControl
    /// Issuances in flight of roles with `coalesce`, by identity and role.
    private let inFlight = Mutex<[String: Task<LogicalResponse, any Error>]>([:])
    /// Leases this process is issuing right now: pending, their role perhaps not created yet.
    /// Reconcile leaves them alone (after an unseal, only the pending leases of a process that
    /// is gone are stale).
    private let issuing = Mutex<Set<String>>([])
    /// The reconcile started by the last unseal, while it runs.
    private let unsealReconcile = Mutex<Task<Void, Never>?>(nil)
    /// One renewal or revocation of a lease at a time: concurrent ones raced each other in
    /// PostgreSQL ("tuple concurrently updated") and answered 500.
    private let leaseLocks = KeyedLock()
    /// This store's id, written into every role's marker so that reconcile only ever touches
    /// roles this store created (several brokers may share one PostgreSQL cluster).
    let storeID: String
    /// Seconds added to `VALID UNTIL` so PostgreSQL never refuses a login the lease still allows.
    static let validUntilSkew: Int64 = 5
    /// Seconds a revocation in progress owns its leases: the sweeper leaves a `revoking` lease
    /// alone until then, so it never races the request (or its own earlier pass) that is
    /// revoking it; if that attempt dies with the process, the sweeper picks the lease up after.
    static let inFlightGrace: Int64 = 60
    /// Leases revoked per batch and per database.
    static let batchSize = 200
    /// Batches of one revoke-prefix in flight at once.
    static let parallelBatches = 2
    private static let lowerAlphanumerics = Array("abcdefghijklmnopqrstuvwxyz0123456789")
    private static let base62 = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

    /// The wall clock of lease times (the broker's).
    let clock: any WallClock

    init(leases: any LeaseStorage, databases: DatabaseEngine, logger: Logger, storeID: String,
         admission: AdmissionControl, clock: any WallClock = SystemClock())
    {
        self.clock = clock
        self.admission = admission
        self.storeID = storeID
        self.leases = leases
        self.databases = databases
        self.logger = logger
    }

    func now() -> Int64 { clock.seconds() }

    // MARK: Issue

    /// Issues a credential of `roleName` to `identity` (recorded on the lease). For a role
    /// with `coalesce`, a request made while the same identity's issuance of the same role is
    /// in flight gets that issuance's answer.
    /// `tokenHash` is the keyed hash of the caller's token, if any: revoking that token revokes
    /// the lease.
    func issue(roleName: String, identity: String = "", tokenHash: String? = nil) async throws -> LogicalResponse {
        try Names.validate(roleName, kind: "role")
        guard let role = try await databases.role(roleName) else {
            if let refusal = databases.declaredRefusal(roleName) { throw APIError.badRequest(refusal) }
            throw APIError.badRequest("unknown role: \(roleName)")
        }
        guard role.coalesce == true else { return try await issue(role, identity: identity, tokenHash: tokenHash ?? "") }
        // Shared only by requests of one identity with one token: a token's leases are its own.
        let key = identity + "\u{0}" + (tokenHash ?? "") + "\u{0}" + roleName
        let task = inFlight.withLock { inFlight -> Task<LogicalResponse, any Error> in
            if let running = inFlight[key] { return running }
            let task = Task { try await self.issue(role, identity: identity, tokenHash: tokenHash ?? "") }
            inFlight[key] = task
            return task
        }
        defer { inFlight.withLock { if $0[key] == task { $0[key] = nil } } }
        return try await task.value
    }

    private func issue(_ role: DatabaseRole, identity: String, tokenHash: String) async throws -> LogicalResponse {
        let roleName = role.name
        guard let database = try await databases.settings(role.database) else {
            throw APIError.internalError("role \(roleName) names database \(role.database), which is not configured")
        }
        guard database.allows(role: roleName) else {
            throw APIError(status: 500, ["\"\(roleName)\" is not an allowed role"])
        }
        let started = DispatchTime.now()
        let now = self.now()
        let ttl = min(role.defaultTTL, role.maxTTL)
        let username = "v-\(roleName.prefix(30))-\(Random.string(count: 20, alphabet: Self.lowerAlphanumerics))"
        let leaseID = "database/creds/\(roleName)/\(Random.string(count: 24, alphabet: Self.base62))"
        let password = Base64.encodeURLSafeNoPadding(Random.bytes(32))
        let lease = LeaseRecord(
            id: leaseID, database: database.name, role: roleName, username: username, state: .pending,
            issuedAt: now, expiresAt: now + ttl, maxExpiresAt: now + role.maxTTL, identity: identity,
            connectionLimit: max(0, role.connectionLimit), tokenHash: tokenHash)
        let backend: any CredentialBackend
        do {
            backend = try await databases.backend(database)
            try await databases.ensureGroupsChecked(role, database: database)
            try await admission.admit(database, backend: backend, connectionLimit: role.connectionLimit, identity: identity)
        } catch where DatabaseEngine.isUnreachable(error) {
            throw DatabaseEngine.unreachable(database.name, error)
        }
        // Intent before action: the lease is durable before the role exists.
        issuing.withLock { _ = $0.insert(leaseID) }
        defer { issuing.withLock { _ = $0.remove(leaseID) } }
        do {
            try await leases.insertLease(lease)
        } catch {
            admission.release(database: database.name, connections: lease.connectionLimit)
            throw error
        }
        FaultInjection.point("after-lease-write")
        do {
            // The intent row went to disk beside the request's audit line; nothing outside
            // Mayfly changes before that line is there too.
            try await AuditGate.current?.wait()
        } catch {
            var closed = lease
            closed.state = .revoking
            closed.nextAttemptAt = now
            closed.lastError = "the request's audit line was not written"
            try? await leases.updateLease(closed)
            throw error
        }
        do {
            try await backend.create(NewLogin(
                username: username, password: password, validUntil: now + ttl + Self.validUntilSkew,
                connectionLimit: role.connectionLimit, leaseID: leaseID, storeID: storeID), role: role)
        } catch {
            logger.error("creating a credential failed", metadata: [
                "lease_id": "\(leaseID)", "error": "\(String(reflecting: error))",
            ])
            // The role may or may not exist; the sweeper drops it if it does and closes the lease.
            var failed = lease
            failed.state = .revoking
            failed.nextAttemptAt = now
            failed.lastError = DatabaseEngine.describe(error)
            try? await leases.updateLease(failed)
            Counter(label: "mayfly_credential_issue_failures_total", dimensions: [("role", roleName)]).increment()
            if DatabaseEngine.isUnreachable(error) { throw DatabaseEngine.unreachable(database.name, error) }
            throw APIError(status: 500, ["cannot create the database credential: \(DatabaseEngine.describe(error))"])
        }
        FaultInjection.point("after-create-role")
        guard try await leases.activateLease(id: leaseID) else {
            // Revoked while the role was being created (its token was revoked, or a leak
            // response reached it): the sweeper drops the role now, and nothing is handed out.
            // A revocation that ran before the role existed found nothing to drop: the role
            // this request created goes now (what fails stays revoking for the sweeper).
            if var revoking = try await leases.lease(id: leaseID), revoking.state != .active {
                revoking.state = .revoking
                revoking.revokedAt = nil
                _ = await revokeBatch(try await markInFlight([revoking], now: self.now()))
            }
            throw APIError(status: 403, ["permission denied: the credential was revoked while it was being issued (its token was revoked?)"])
        }
        logger.info("credential issued", metadata: ["lease_id": "\(leaseID)", "username": "\(username)"])
        Counter(label: "mayfly_credentials_issued_total", dimensions: [("role", roleName)]).increment()
        Timer(label: "mayfly_credential_issue_duration_seconds", preferredDisplayUnit: .seconds)
            .recordInterval(since: started)
        var envelope = Envelope(data: [
            "username": .string(username), "password": .string(password),
            "connection_url": .string(try backend.clientURL(username: username)),
        ])
        envelope.leaseID = leaseID
        envelope.renewable = true
        envelope.leaseDuration = ttl
        return .envelope(envelope)
    }

    /// The connection budget of database `name` for `read database/config/NAME` (Mayfly's
    /// addition): live credentials and the connections they may open against the budget, and
    /// the sessions they hold open now. PostgreSQL enforces each credential's limit, so the
    /// sum is a bound on what they can ever open.
    func budgetStatus(_ name: String) async -> JSONValue {
        guard let database = try? await databases.config(name) else { return .null }
        let share = database.connectionBudget ?? 0.8
        var status: [String: JSONValue] = ["share": .double(share), "enabled": .bool(share != 0)]
        let counts = (try? await leases.leaseCounts(matching: LeaseFilter(databases: [name], states: [.pending, .active, .revoking]))) ?? [:]
        status["live_credentials"] = .int(Int64(counts[name]?.values.reduce(0, +) ?? 0))
        do {
            let backend = try await databases.backend(database)
            let (committed, budget, maximum) = try await admission.status(database, backend: backend)
            status["committed_connections"] = .int(Int64(committed))
            status["budget_connections"] = .int(Int64(budget))
            status["max_connections"] = .int(Int64(maximum))
            status["sessions"] = .int(Int64(try await backend.openSessions(storeID: storeID)))
        } catch {
            status["error"] = .string(DatabaseEngine.isUnreachable(error) ? "database unreachable" : DatabaseEngine.describe(error))
        }
        return .object(status)
    }

    /// Marks the leases obtained with the tokens `hashes` for revocation (a token revoked or
    /// expired takes its leases with it, as in Vault). The sweeper revokes them within seconds,
    /// in batches, retrying until done; leases still being issued are given `inFlightGrace`.
    func revokeObtained(byTokens hashes: [String]) async throws {
        let now = self.now()
        for start in stride(from: 0, to: hashes.count, by: 500) {
            let chunk = Array(hashes[start..<min(hashes.count, start + 500)])
            let marked = try await leases.markRevoking(matching: LeaseFilter(tokenHashes: chunk), now: now,
                                                       pendingDue: now + Self.inFlightGrace)
            if marked > 0 { logger.info("revoking the leases of revoked tokens", metadata: ["leases": "\(marked)"]) }
        }
    }

    // MARK: Lookup and renew

    /// `sys/leases/lookup`. The database username is shown only to `showUsername` callers (the
    /// identity that obtained the lease, or one holding sudo there): a lease id is not a right to
    /// learn whose login it is.
    func lookup(_ id: String, showUsername: (LeaseRecord) -> Bool = { _ in true }) async throws -> LogicalResponse {
        guard let lease = try await leases.lease(id: id), lease.state != .revoked else {
            throw APIError.badRequest("invalid lease")
        }
        let now = self.now()
        var data: [String: JSONValue] = [
            "id": .string(lease.id),
            "issue_time": .string(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval(lease.issuedAt)))),
            "expire_time": .string(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval(lease.expiresAt)))),
            "last_renewal": lease.lastRenewal.map { .string(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval($0)))) } ?? .null,
            "ttl": .int(max(0, lease.expiresAt - now)),
            "renewable": .bool(lease.state == .active),
            "state": .string(lease.state.rawValue), "revocation_attempts": .int(Int64(lease.attempts)),
        ]
        if showUsername(lease) { data["username"] = .string(lease.username) }
        if let error = lease.lastError { data["last_error"] = .string(error) }
        return .envelope(Envelope(data: .object(data)))
    }

    func renew(_ id: String, increment: Int64?) async throws -> LogicalResponse {
        try await leaseLocks.withLock(id) { try await self.renewLocked(id, increment: increment) }
    }

    private func renewLocked(_ id: String, increment: Int64?) async throws -> LogicalResponse {
        guard var lease = try await leases.lease(id: id), lease.state != .revoked else {
            throw APIError.badRequest("lease not found")
        }
        let now = self.now()
        guard lease.state == .active, lease.expiresAt > now else { throw APIError.badRequest("lease expired") }
        guard let database = try await databases.config(lease.database) else {
            throw APIError.internalError("database \(lease.database) is no longer configured")
        }
        let role = try await databases.role(lease.role)
        let requested = (increment ?? 0) > 0 ? increment! : (role?.defaultTTL ?? lease.expiresAt - lease.issuedAt)
        let newExpiry = min(now + requested, lease.maxExpiresAt)
        var warnings: [String] = []
        if now + requested > lease.maxExpiresAt {
            warnings.append("TTL of \(requested)s exceeded the effective max_ttl; TTL value is capped accordingly")
        }
        do {
            try await databases.backend(database).renew(
                username: lease.username, validUntil: newExpiry + Self.validUntilSkew, role: role)
        } catch let error as CredentialBackendError where error.kind == .noSuchLogin {
            // Dropped meanwhile by a revocation (the sweeper, a prefix, an incident).
            throw APIError.badRequest("lease is being revoked")
        } catch {
            if DatabaseEngine.isUnreachable(error) { throw DatabaseEngine.unreachable(database.name, error) }
            throw APIError(status: 500, ["cannot renew the database credential: \(DatabaseEngine.describe(error))"])
        }
        lease.expiresAt = newExpiry
        lease.lastRenewal = now
        try await leases.updateLease(lease)
        var envelope = Envelope(warnings: warnings)
        envelope.leaseID = id
        // Stays true at the cap, as in Vault: clients see the shorter lease_duration and the warning.
        envelope.renewable = true
        envelope.leaseDuration = newExpiry - now
        return .envelope(envelope)
    }

    // MARK: Revoke

    /// Revokes one lease; with `sync` waits for the role to be gone.
    func revoke(_ id: String, sync: Bool) async throws -> LogicalResponse {
        try await leaseLocks.withLock(id) { try await self.revokeLocked(id, sync: sync) }
    }

    private func revokeLocked(_ id: String, sync: Bool) async throws -> LogicalResponse {
        // As Vault: a lease that does not exist (any more) is already revoked.
        guard let lease = try await leases.lease(id: id), lease.state != .revoked else { return sync ? .noContent : .accepted }
        var marked = lease
        marked.state = .revoking
        marked.nextAttemptAt = self.now() + (sync ? Self.inFlightGrace : 0)  // async: the sweeper does it now
        try await leases.updateLease(marked)
        guard sync else { return .accepted }
        let failures = await revokeBatch([marked])
        if let failure = failures.first {
            throw APIError(status: 500, ["revocation failed and will be retried: \(failure)"])
        }
        return .noContent
    }

    /// Revokes every lease under `prefix`, in batches per database. With `force`, leases that
    /// cannot be revoked are forgotten (and logged) instead of reported.
    func revokePrefix(_ prefix: String, force: Bool) async throws -> LogicalResponse {
        // As Vault, the prefix is a whole path: `database/creds/dev` is `database/creds/dev/`,
        // never `database/creds/dev-readonly/…`. An empty prefix is refused rather than taken
        // to mean everything (that is `sys/mayfly/revoke`, which records an incident).
        guard !prefix.isEmpty else {
            throw APIError.badRequest("a prefix is required, e.g. database/creds/<role>; to revoke everything use sys/mayfly/revoke")
        }
        let prefix = prefix.hasSuffix("/") ? prefix : prefix + "/"
        var after: String?
        var failures: [String] = []
        // Batches overlap: while PostgreSQL drops one batch's roles the next is read and sent,
        // on another admin connection (the pool bounds how many run at once).
        try await withThrowingTaskGroup(of: [String].self) { group in
            var running = 0
            while true {
                let page = try await leases.liveLeases(prefix: prefix, after: after, limit: Self.batchSize)
                guard let last = page.last else { break }
                after = last.id
                let marked = try await markInFlight(page, now: self.now())
                if running == Self.parallelBatches, let done = try await group.next() {
                    failures += done
                    running -= 1
                }
                group.addTask { await self.revokeBatch(marked, force: force) }
                running += 1
            }
            for try await done in group { failures += done }
        }
        if !failures.isEmpty && !force {
            throw APIError(status: 500, ["failed to revoke \(failures.count) lease(s), retrying: \(failures.prefix(3).joined(separator: "; "))"])
        }
        return .noContent
    }

    /// Lease ids under `prefix` (for `LIST sys/leases/lookup/:prefix`).
    /// `LIST sys/leases/lookup/<prefix>`: the lease ids and folders right under `prefix`. A
    /// folder is listed once and skipped over (one role's many leases never hide the next
    /// role); at most `listLimit` keys, with a warning when there are more.
    func list(_ prefix: String) async throws -> LogicalResponse {
        var keys: [String] = []
        // Mayfly's addition (Vault lists keys only): who holds each lease, until when, in what state.
        var info: [String: JSONValue] = [:]
        var after: String?
        var more = false
        paging: while true {
            let page = try await leases.liveLeases(prefix: prefix, after: after, limit: 1000)
            for lease in page {
                guard keys.count < Self.listLimit else {
                    more = true
                    break paging
                }
                let rest = lease.id.dropFirst(prefix.count)
                if let slash = rest.firstIndex(of: "/") {
                    let folder = String(rest[..<slash]) + "/"
                    keys.append(folder)
                    // Lease ids are ASCII, so every id in the folder sorts before this.
                    after = prefix + folder + "\u{7F}"
                    continue paging
                }
                keys.append(String(rest))
                info[String(rest)] = [
                    "username": .string(lease.username), "identity": .string(lease.identity),
                    "state": .string(lease.state.rawValue),
                    "expire_time": .string(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval(lease.expiresAt)))),
                ]
                after = lease.id
            }
            if page.count < 1000 { break }
        }
        guard !keys.isEmpty else { throw APIError.notFound }
        let warnings = more ? ["more than \(Self.listLimit) keys: the list is cut off; list a longer prefix"] : []
        var data: [String: JSONValue] = ["keys": .strings(keys)]
        if !info.isEmpty { data["key_info"] = .object(info) }
        return .envelope(Envelope(data: .object(data), warnings: warnings))
    }

    static let listLimit = 10_000

    /// What one revocation pass did.
    struct RevocationOutcome: Sendable {
        var revoked = 0
        var sessionsTerminated = 0
        /// One message per lease that failed (`<lease id>: <reason>`).
        var failures: [String] = []
    }

    /// Revokes leases (grouped by database); returns one message per lease that failed.
    func revokeBatch(_ batch: [LeaseRecord], force: Bool = false) async -> [String] {
        await revokeLeases(batch, force: force).failures
    }

    /// Revokes leases (grouped by database). Failed leases stay `revoking` with a capped
    /// exponential backoff, unless `force`.
    func revokeLeases(_ batch: [LeaseRecord], force: Bool = false) async -> RevocationOutcome {
        var outcome = RevocationOutcome()
        for (databaseName, group) in Dictionary(grouping: batch, by: \.database) {
            let started = DispatchTime.now()
            do {
                guard let database = try await databases.config(databaseName) else {
                    throw APIError.badRequest("database \(databaseName) is not configured")
                }
                let roles = try await revocationRoles(group)
                var custom: [String: [String]] = [:]
                for lease in group { custom[lease.username] = roles[lease.role]?.revocationStatements ?? [] }
                let backend = try await databases.backend(database)
                do {
                    outcome.sessionsTerminated += try await backend.revoke(
                        usernames: group.map(\.username), revocationStatements: custom)
                } catch let error as CredentialBackendError where error.kind == .noSuchLogin {
                    // A login vanished between the existence check and the batch (dropped by a
                    // revocation statement or an operator): check again and finish.
                    outcome.sessionsTerminated += try await backend.revoke(
                        usernames: group.map(\.username), revocationStatements: custom)
                }
                outcome.revoked += group.count
                let now = self.now()
                admission.release(database: databaseName, connections: group.reduce(0) { $0 + $1.connectionLimit })
                try await leases.updateLeases(group.map { lease in
                    var lease = lease
                    lease.state = .revoked
                    lease.revokedAt = now
                    lease.lastError = nil
                    lease.nextAttemptAt = nil
                    return lease
                })
                logger.info("leases revoked", metadata: ["database": "\(databaseName)", "count": "\(group.count)"])
                Counter(label: "mayfly_leases_revoked_total", dimensions: [("database", databaseName)]).increment(by: group.count)
                Timer(label: "mayfly_revocation_batch_duration_seconds", preferredDisplayUnit: .seconds)
                    .recordInterval(since: started)
            } catch let error as CredentialBackendError where group.count > 1 && error.kind == .refused {
                // One role that cannot be dropped (a failing revocation statement, a circular
                // grant) must not hold back the rest: retry the halves, down to that role alone.
                let half = group.count / 2
                for part in [Array(group[..<half]), Array(group[half...])] {
                    let partial = await revokeLeases(part, force: force)
                    outcome.revoked += partial.revoked
                    outcome.sessionsTerminated += partial.sessionsTerminated
                    outcome.failures += partial.failures
                }
            } catch {
                let message = DatabaseEngine.describe(error)
                Counter(label: "mayfly_revocation_failures_total", dimensions: [("database", databaseName)]).increment(by: group.count)
                logger.warning("revocation failed", metadata: ["database": "\(databaseName)", "error": "\(String(reflecting: error))"])
                let now = self.now()
                let failed = group.map { lease in
                    var lease = lease
                    outcome.failures.append("\(lease.id): \(message)")
                    lease.attempts += 1
                    lease.lastError = message
                    if force {
                        lease.state = .revoked
                        lease.revokedAt = now
                        logger.error("lease forgotten by revoke-force", metadata: ["lease_id": "\(lease.id)", "username": "\(lease.username)"])
                    } else {
                        lease.state = .revoking
                        lease.nextAttemptAt = now + Self.backoff(attempts: lease.attempts)
                    }
                    return lease
                }
                if force {
                    admission.release(database: databaseName, connections: group.reduce(0) { $0 + $1.connectionLimit })
                }
                do {
                    try await leases.updateLeases(failed)
                } catch {
                    logger.error("cannot record a failed revocation", metadata: ["error": "\(String(reflecting: error))"])
                }
            }
        }
        return outcome
    }

    /// Marks `leases` as `revoking` and owned by the caller for `inFlightGrace` (so the sweeper
    /// and other revocations leave them alone meanwhile), and stores that.
    func markInFlight(_ leases: [LeaseRecord], now: Int64) async throws -> [LeaseRecord] {
        let marked = leases.map { lease in
            var lease = lease
            lease.state = .revoking
            lease.nextAttemptAt = now + Self.inFlightGrace
            return lease
        }
        try await self.leases.updateLeases(marked)
        return marked
    }

    /// Seconds before the next revocation attempt: 2, 4, 8, … capped at 5 minutes.
    static func backoff(attempts: Int) -> Int64 {
        min(300, Int64(1) << min(max(attempts, 1), 9))
    }

    private func revocationRoles(_ leases: [LeaseRecord]) async throws -> [String: DatabaseRole] {
        var roles: [String: DatabaseRole] = [:]
        for name in Set(leases.map(\.role)) where !name.isEmpty {
            if let role = try await databases.role(name) { roles[name] = role }
        }
        return roles
    }

    // MARK: Reconcile

    /// Starts the reconcile after an unseal (pending leases are a gone process's) in the
    /// background: its pages of live leases cost PostgreSQL round trips, and serving does
    /// not wait for them (credentials being issued meanwhile are spared, see `issuing`).
    func reconcileAfterUnseal(databaseNames: [String]) {
        let logger = logger
        unsealReconcile.withLock { running in
            running?.cancel()
            running = Task {
                do {
                    let (dropped, closed) = try await self.reconcile(databaseNames: databaseNames, afterRestart: true)
                    logger.info("reconciled after unseal", metadata: ["dropped": "\(dropped)", "closed": "\(closed)"])
                    await self.releaseMemory()
                } catch {
                    logger.warning("reconcile after unseal failed; it runs again periodically",
                                   metadata: ["error": "\(String(reflecting: error))"])
                }
            }
        }
    }

    /// Gives back what a pass over many lease rows left cached: the store's page caches, then
    /// the heap pages glibc keeps.
    func releaseMemory() async {
        await leases.releaseMemory()
        MemoryTrim.release()
    }

    /// Waits for the reconcile the last unseal started (tests, and callers that need it done).
    func unsealReconcileFinished() async {
        await unsealReconcile.withLock { $0 }?.value
    }

    /// Makes PostgreSQL and the lease table agree (the lease row is written before the role,
    /// so a crash leaves at most a row without a role, which this closes): roles marked by Mayfly
    /// with no live lease are dropped, and live leases whose role is gone are closed. With
    /// `afterRestart`, pending leases are stale (their issuer is gone) and are revoked too.
    @discardableResult
    func reconcile(databaseNames: [String], afterRestart: Bool) async throws -> (dropped: Int, closed: Int) {
        var dropped = 0, closed = 0
        for name in databaseNames {
            guard let database = try await databases.config(name) else { continue }
            let backend = try await databases.backend(database)
            // 1. Marked logins without a live lease.
            var orphans: [LeaseRecord] = []
            for (username, leaseID) in try await backend.markedLogins(storeID: storeID) {
                // Asked before the lease is read: a lease not being issued now that reads
                // `pending` was left so by a process that is gone.
                let beingIssued = issuing.withLock { $0.contains(leaseID) }
                let lease = try await leases.lease(id: leaseID)
                let live = beingIssued || lease.map {
                    $0.username == username && ($0.state == .active || (!afterRestart && $0.state == .pending))
                } ?? false
                if live || lease?.state == .revoking { continue }
                var orphan = lease ?? LeaseRecord(
                    id: leaseID, database: name, role: "", username: username, state: .revoking,
                    issuedAt: self.now(), expiresAt: self.now(), maxExpiresAt: self.now())
                orphan.username = username
                orphan.database = name
                orphan.state = .revoking
                orphans.append(orphan)
            }
            if !orphans.isEmpty {
                let failures = await revokeBatch(orphans)
                dropped += orphans.count - failures.count
                logger.notice("reconcile dropped roles without a live lease", metadata: [
                    "database": "\(name)", "count": "\(orphans.count - failures.count)",
                ])
            }
            // 2. Live leases whose role is gone (and, after a restart, pending leases).
            var after: String?
            while true {
                try Task.checkCancellation()
                let page = try await leases.liveLeases(prefix: "database/creds/", after: after, limit: Self.batchSize)
                guard let last = page.last else { break }
                after = last.id
                let beingIssued = issuing.withLock { $0 }
                let mine = page.filter { $0.database == name && $0.state != .revoking && !beingIssued.contains($0.id) }
                guard !mine.isEmpty else { continue }
                let existing = try await backend.existingLogins(mine.map(\.username))
                let now = self.now()
                let gone = mine.filter { !existing.contains($0.username) }.map { lease in
                    var lease = lease
                    lease.state = .revoked
                    lease.revokedAt = now
                    return lease
                }
                try await leases.updateLeases(gone)
                admission.release(database: name, connections: gone.reduce(0) { $0 + $1.connectionLimit })
                closed += gone.count
                var stalePending: [LeaseRecord] = []
                for lease in mine where afterRestart && lease.state == .pending && existing.contains(lease.username) {
                    // Read again (this page may predate its issuance finishing).
                    if try await leases.lease(id: lease.id)?.state == .pending { stalePending.append(lease) }
                }
                if !stalePending.isEmpty { dropped += stalePending.count - (await revokeBatch(stalePending)).count }
            }
        }
        return (dropped, closed)
    }

    // MARK: Sweeper

    /// Revokes what is due (expired leases, stale pending ones, retries), in pages. Returns the
    /// number of leases handled.
    @discardableResult
    func sweep() async throws -> Int {
        var handled = 0
        let now = self.now()
        while true {
            let due = try await leases.dueLeases(now: now, pendingBefore: now - 60, limit: Self.batchSize)
            let fresh = due.filter { $0.state != .revoking || ($0.nextAttemptAt ?? 0) <= now }
            guard !fresh.isEmpty else { break }
            let marked = try await markInFlight(fresh, now: now)
            let failures = await revokeBatch(marked)
            handled += marked.count
            if failures.count == marked.count { break }  // nothing progressed; wait for the next tick
        }
        return handled
    }
}
