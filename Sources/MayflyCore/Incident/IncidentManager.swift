import Foundation
import Logging
import MayflyCrypto
import MayflyStore
import Synchronization

/// The leak response (`sys/mayfly/revoke`, `mayfly revoke`, "revoke
/// everything"): revokes the dynamic credentials in scope (sessions ended), rotates static
/// and root passwords, revokes tokens and AppRole secret IDs, and keeps a durable record that
/// a restart resumes. Databases are worked in parallel and leases in batches; every step is
/// idempotent, so resuming or running the same command twice is harmless.
final class IncidentManager: Sendable {
    private let barrier: Barrier
    private let leaseStorage: any LeaseStorage
    private let leases: LeaseManager
    private let databases: DatabaseEngine
    private let staticRoles: StaticRoleManager
    private let tokens: TokenStore
    private let appRoles: AppRoleEngine
    private let logger: Logger
    /// Incidents being worked by this process (so a background resume never runs one twice).
    private let active = Mutex<Set<String>>([])
    static let prefix = "incident/"
    /// Seconds between background passes over an incident that is still retrying.
    static let retryInterval: Int64 = 3

    init(barrier: Barrier, leaseStorage: any LeaseStorage, leases: LeaseManager, databases: DatabaseEngine,
         staticRoles: StaticRoleManager, tokens: TokenStore, appRoles: AppRoleEngine, logger: Logger,
         clock: any WallClock = SystemClock())
    {
        self.clock = clock
        self.barrier = barrier
        self.leaseStorage = leaseStorage
        self.leases = leases
        self.databases = databases
        self.staticRoles = staticRoles
        self.tokens = tokens
        self.appRoles = appRoles
        self.logger = logger
    }

    /// The wall clock of incident times (the broker's).
    let clock: any WallClock

    func now() -> Int64 { clock.seconds() }

    // MARK: Records

    func incident(_ id: String) async throws -> Incident? {
        guard !id.isEmpty, !id.contains("/"), let bytes = try await barrier.get(Self.prefix + id) else { return nil }
        return try JSONDecoder().decode(Incident.self, from: Data(bytes))
    }

    /// Incident ids, oldest first.
    func ids() async throws -> [String] {
        try await barrier.list(Self.prefix).filter { !$0.hasSuffix("/") }.sorted()
    }

    private func save(_ incident: Incident) async throws {
        var incident = incident
        incident.updatedAt = self.now()
        try await barrier.put(Self.prefix + incident.id, try JSONEncoder().encode(incident).bytes)
    }

    // MARK: Start

    /// Validates the request, records the incident and carries out a first pass. With
    /// `dryRun`, only counts what would be done; nothing is changed or stored.
    func start(scope: IncidentScope, actions: IncidentActions, reason: String, dryRun: Bool, caller: Caller)
        async throws -> Incident
    {
        let reason = reason.trimmingWhitespace()
        guard !reason.isEmpty else { throw APIError.badRequest("reason is required: say why (it is kept with the incident)") }
        guard reason.utf8.count <= 1000 else { throw APIError.badRequest("reason is longer than 1000 bytes") }
        var scope = scope
        if scope.all && !scope.isUnrestricted {
            throw APIError.badRequest("all cannot be combined with a narrower scope (database, role, identity, lease, issued_after/before)")
        }
        if !scope.all && scope.isUnrestricted {
            throw APIError.badRequest("give a scope (database, role, identity, lease, issued_after, issued_before) or all = true")
        }
        if let after = scope.issuedAfter, let before = scope.issuedBefore, after >= before {
            throw APIError.badRequest("issued_after must be before issued_before")
        }
        scope.identities = try scope.identities.map(IdentityName.canonical)
        let configured = Set(try await databases.configuredNames())
        for name in scope.databases where !configured.contains(name) {
            throw APIError.badRequest("database \"\(APIError.clip(name))\" is not configured")
        }
        // A role named by mistake would revoke nothing and report success: a role must exist,
        // or have credentials on record (a deleted role's leases can still be revoked).
        for name in scope.roles {
            if try await databases.role(name) != nil { continue }
            if try await staticRoles.definition(name) != nil { continue }
            let counts = try await leaseStorage.leaseCounts(matching: LeaseFilter(roles: [name]))
            if counts.values.contains(where: { $0.values.reduce(0, +) > 0 }) { continue }
            throw APIError.badRequest("role \"\(APIError.clip(name))\" does not exist and no credential of it is on record")
        }
        let now = self.now()
        let stamp = Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval(now)))
            .filter { $0.isNumber }.prefix(14)
        var incident = Incident(
            id: "inc-\(stamp)-\(Random.string(count: 6, alphabet: Array("abcdefghijklmnopqrstuvwxyz0123456789")))",
            reason: reason, requestedBy: caller.identityName, callerAccessor: caller.entry?.accessor, createdAt: now,
            updatedAt: now, completedAt: nil, scope: scope, actions: actions, state: .running, dryRun: dryRun, passes: 0,
            databases: [:], tokensRevoked: 0, secretIDsDestroyed: 0, tokensDone: false, rotated: [], failures: [],
            sealed: false, plan: nil)
        if dryRun { return try await plan(incident) }
        logger.notice("incident started", metadata: [
            "incident": "\(incident.id)", "requested_by": "\(incident.requestedBy)", "all": "\(scope.all)",
            "rotate": "\(actions.rotate)", "tokens": "\(actions.tokens)", "seal": "\(actions.seal)",
        ])
        // The record is durable before anything is revoked: a crash from here on is resumed.
        let counts = try await leaseStorage.leaseCounts(matching: scope.leaseFilter(startedAt: now))
        for name in try await databasesInScope(incident) {
            incident.databases[name] = IncidentDatabaseReport(
                credentialsInScope: counts[name]?.values.reduce(0, +) ?? 0)
        }
        guard claim(incident.id) else { return incident }
        defer { release(incident.id) }
        return try await pass(incident)
    }

    private func claim(_ id: String) -> Bool { active.withLock { $0.insert(id).inserted } }
    private func release(_ id: String) { _ = active.withLock { $0.remove(id) } }

    /// The databases an incident covers: those it names, or every configured one.
    private func databasesInScope(_ incident: Incident) async throws -> [String] {
        if !incident.scope.databases.isEmpty { return incident.scope.databases.sorted() }
        var names = Set(try await databases.configuredNames())
        // Leases of a database whose config was deleted are still in scope.
        names.formUnion(try await leaseStorage.leaseCounts(matching: incident.scope.leaseFilter(startedAt: incident.createdAt)).keys)
        return names.sorted()
    }

    // MARK: Passes

    /// One pass: every database in parallel, then tokens, then the numbers and the state.
    private func pass(_ start: Incident) async throws -> Incident {
        var incident = start
        incident.passes += 1
        incident.failures = []
        // Counted before the work, so a pass a crash interrupted shows in the record.
        try await save(incident)
        let names = try await databasesInScope(incident)
        let filter = incident.scope.leaseFilter(startedAt: incident.createdAt)
        let snapshot = incident
        let results = await withTaskGroup(of: DatabasePass.self) { group in
            for name in names {
                group.addTask { await self.work(database: name, filter: filter, incident: snapshot) }
            }
            var results: [DatabasePass] = []
            for await result in group { results.append(result) }
            return results
        }
        for result in results {
            var report = incident.databases[result.database] ?? IncidentDatabaseReport()
            report.sessionsTerminated += result.sessionsTerminated
            report.credentialsRevoked += result.revoked
            report.passwordsRotated += result.passwordsRotated
            report.rotationsPending = result.rotationsPending
            incident.databases[result.database] = report
            incident.rotated += result.rotated
            incident.failures += result.failures
        }
        if incident.actions.rotate { await rotateRoots(&incident, names) }
        if incident.actions.tokens && !incident.tokensDone {
            do {
                let (revoked, destroyed) = try await revokeTokens(incident)
                incident.tokensRevoked += revoked
                incident.secretIDsDestroyed += destroyed
                incident.tokensDone = true
            } catch {
                incident.failures.append(IncidentFailure(
                    what: "tokens", database: "", reason: (error as? APIError)?.messages.first ?? "storage error", retrying: true))
            }
        }
        // The numbers come from the lease table, so they are right however many passes (and
        // restarts) it took.
        let counts = try await leaseStorage.leaseCounts(matching: filter)
        for name in names {
            var report = incident.databases[name] ?? IncidentDatabaseReport()
            report.credentialsPending = counts[name]?.values.reduce(0, +) ?? 0
            // Revoked: what this incident revoked, or, if more, what is no longer live (others,
            // such as the sweeper, may have revoked some). In scope: never fewer than those two
            // together (credentials issued in the second the incident started count too).
            report.credentialsRevoked = max(report.credentialsRevoked, report.credentialsInScope - report.credentialsPending)
            report.credentialsInScope = max(report.credentialsInScope, report.credentialsRevoked + report.credentialsPending)
            if report.credentialsPending > 0 && !incident.failures.contains(where: { $0.database == name && $0.what == "credentials" }) {
                incident.failures.append(IncidentFailure(
                    what: "credentials", database: name,
                    reason: "\(report.credentialsPending) revocation(s) in progress or waiting for a retry", retrying: true))
            }
            incident.databases[name] = report
        }
        let finished = incident.failures.isEmpty
        incident.state = finished ? .completed : .retrying
        if finished { incident.completedAt = self.now() }
        try await save(incident)
        logger.notice(finished ? "incident completed" : "incident has work still being retried", metadata: [
            "incident": "\(incident.id)", "pass": "\(incident.passes)", "failures": "\(incident.failures.count)",
        ])
        return incident
    }

    /// What one database's part of a pass did.
    private struct DatabasePass: Sendable {
        var database: String
        var revoked = 0
        var sessionsTerminated = 0
        var passwordsRotated = 0
        var rotationsPending = 0
        var rotated: [String] = []
        var failures: [IncidentFailure] = []
    }

    private func work(database name: String, filter: LeaseFilter, incident: Incident) async -> DatabasePass {
        var result = DatabasePass(database: name)
        var filter = filter
        filter.databases = [name]
        // 1. Dynamic credentials, in batches. Credentials issued in the second the incident
        // started are in scope too, and may arrive behind the cursor: while that second may
        // still have been running when a sweep began, sweep again.
        var done = 0
        var sweepStarted: Int64
        repeat {
            sweepStarted = self.now()
            let before = done
            var after: String?
            // Takes in one batch's outcome; false when the database is failing (the rest waits
            // for the next pass).
            func absorb(_ outcome: LeaseManager.RevocationOutcome) -> Bool {
                result.sessionsTerminated += outcome.sessionsTerminated
                done += outcome.revoked
                result.revoked += outcome.revoked
                FaultInjection.point("after-incident-batch")
                if let failure = outcome.failures.first {
                    let reason = failure.split(separator: ":", maxSplits: 1).dropFirst().first
                        .map { String($0).trimmingWhitespace() } ?? failure
                    result.failures.append(IncidentFailure(what: "credentials", database: name, reason: reason, retrying: true))
                    if outcome.revoked == 0 { return false }
                }
                if done > 0 && done % 1000 < LeaseManager.batchSize {
                    logger.info("incident progress", metadata: ["incident": "\(incident.id)", "database": "\(name)", "revoked": "\(done)"])
                }
                return true
            }
            // Batches overlap, as in revoke-prefix: the next is read and sent while PostgreSQL
            // drops the previous one.
            await withTaskGroup(of: LeaseManager.RevocationOutcome.self) { group in
                var running = 0
                paging: while true {
                    let page: [LeaseRecord]
                    do {
                        page = try await leaseStorage.leases(matching: filter, after: after, limit: LeaseManager.batchSize)
                    } catch {
                        result.failures.append(IncidentFailure(what: "credentials", database: name, reason: "storage error", retrying: true))
                        break
                    }
                    guard let last = page.last else { break }
                    after = last.id
                    let now = self.now()
                    // A revocation already in flight (a request or the sweeper) owns its leases.
                    let due = page.filter { $0.state != .revoking || ($0.nextAttemptAt ?? 0) <= now }
                    guard !due.isEmpty else { continue }
                    let marked: [LeaseRecord]
                    do {
                        marked = try await leases.markInFlight(due, now: now)
                    } catch {
                        result.failures.append(IncidentFailure(what: "credentials", database: name, reason: "storage error", retrying: true))
                        break
                    }
                    if running == LeaseManager.parallelBatches, let outcome = await group.next() {
                        running -= 1
                        if !absorb(outcome) { break paging }
                    }
                    let leases = leases
                    group.addTask { await leases.revokeLeases(marked) }
                    running += 1
                }
                for await outcome in group { _ = absorb(outcome) }
            }
            if done == before && sweepStarted <= incident.createdAt { await clock.sleep(seconds: 0.05) }
        } while sweepStarted <= incident.createdAt && result.failures.isEmpty
        // 2. Long-lived passwords.
        guard incident.actions.rotate else { return result }
        let statics: [StaticRole]
        do {
            statics = try await staticRoles.roles(inDatabase: name)
        } catch {
            result.failures.append(IncidentFailure(what: "static roles", database: name, reason: "storage error", retrying: true))
            return result
        }
        for role in statics where !incident.rotated.contains("static:\(role.name)") {
            do {
                result.passwordsRotated += try await staticRoles.rotateAll(role.name)
                result.rotated.append("static:\(role.name)")
            } catch {
                result.rotationsPending += 1
                result.failures.append(IncidentFailure(
                    what: "static role \(role.name)", database: name, reason: Self.reason(error), retrying: true))
            }
        }
        return result
    }

    /// The admin logins of the databases in scope, each once (databases may share a login),
    /// after the dynamic credentials: a rotation drops the pools the revocations use.
    private func rotateRoots(_ incident: inout Incident, _ names: [String]) async {
        for name in names {
            guard let config = try? await databases.config(name) else { continue }
            let key = "root:" + DatabaseEngine.loginKey(config)
            guard !incident.rotated.contains(key) else { continue }
            do {
                try await databases.rotateRoot(name)
                incident.databases[name, default: IncidentDatabaseReport()].passwordsRotated += 1
                incident.rotated.append(key)
            } catch {
                incident.databases[name, default: IncidentDatabaseReport()].rotationsPending += 1
                incident.failures.append(IncidentFailure(
                    what: "root credentials", database: name, reason: Self.reason(error), retrying: true))
            }
        }
    }

    static func reason(_ error: any Error) -> String {
        (error as? APIError)?.messages.first ?? DatabaseEngine.describe(error)
    }

    /// Tokens and AppRole secret IDs of the identities in scope (everything but the caller's
    /// token with `all`).
    private func revokeTokens(_ incident: Incident) async throws -> (tokens: Int, secretIDs: Int) {
        let identities = Set(incident.scope.identities)
        let all = incident.scope.all
        guard all || !identities.isEmpty else { return (0, 0) }
        let revoked = try await tokens.revokeAll(
            where: { all || ($0.identity.map(identities.contains) ?? false) }, sparing: incident.callerAccessor)
        var destroyed = 0
        let roles = all ? try await appRoles.rolesWithSecretIDs()
            : identities.filter { $0.hasPrefix("approle:") }.map { String($0.dropFirst("approle:".count)) }
        for role in roles { destroyed += try await appRoles.destroyAllSecretIDs(role: role) }
        logger.notice("incident revoked tokens", metadata: [
            "incident": "\(incident.id)", "tokens": "\(revoked)", "secret_ids": "\(destroyed)",
        ])
        return (revoked, destroyed)
    }

    /// `--dry-run`: what would be done, counted without changing anything.
    private func plan(_ start: Incident) async throws -> Incident {
        var incident = start
        var plan: [String] = []
        var logins = Set<String>()
        let filter = incident.scope.leaseFilter(startedAt: incident.createdAt)
        let counts = try await leaseStorage.leaseCounts(matching: filter)
        for name in try await databasesInScope(incident) {
            var report = IncidentDatabaseReport(credentialsInScope: counts[name]?.values.reduce(0, +) ?? 0)
            report.credentialsPending = report.credentialsInScope
            // A database reached only because no --database narrowed the scope, with nothing of
            // the scope in it, is no news.
            if report.credentialsInScope > 0 || incident.scope.databases.contains(name) || incident.scope.all {
                plan.append("revoke \(report.credentialsInScope) credential(s) in database \(name) and end their sessions")
            }
            if incident.actions.rotate {
                for role in try await staticRoles.roles(inDatabase: name) {
                    report.rotationsPending += role.usernames.count
                    plan.append("rotate static role \(role.name) (\(role.usernames.joined(separator: ", "))) in database \(name)")
                }
                if let config = try await databases.config(name), !logins.contains(DatabaseEngine.loginKey(config)) {
                    logins.insert(DatabaseEngine.loginKey(config))
                    report.rotationsPending += 1
                    plan.append("rotate the root credentials of database \(name) (login \(DatabaseEngine.loginKey(config)))")
                }
            }
            incident.databases[name] = report
        }
        if incident.actions.tokens {
            let identities = Set(incident.scope.identities)
            let all = incident.scope.all
            incident.tokensRevoked = try await tokens.allEntries().filter {
                $0.accessor != incident.callerAccessor && (all || ($0.identity.map(identities.contains) ?? false))
            }.count
            let roles = all ? try await appRoles.rolesWithSecretIDs()
                : identities.filter { $0.hasPrefix("approle:") }.map { String($0.dropFirst("approle:".count)) }
            for role in roles { incident.secretIDsDestroyed += try await appRoles.secretIDCount(role: role) }
            plan.append("revoke \(incident.tokensRevoked) token(s) and \(incident.secretIDsDestroyed) AppRole secret ID(s)")
        }
        if incident.actions.seal { plan.append("seal the broker") }
        if plan.isEmpty { plan.append("nothing: no credential, static role or token is in the scope") }
        incident.plan = plan
        incident.state = .completed
        incident.completedAt = incident.createdAt
        return incident
    }

    /// Records that the broker is about to seal for `incident` (the record must be written
    /// while the keys are still there).
    func markSealed(_ incident: Incident) async throws -> Incident {
        var incident = incident
        incident.sealed = true
        try await save(incident)
        return incident
    }

    // MARK: Resume

    /// Continues every incident that has not completed: after a restart (state `running`) at
    /// once, and those waiting for retries every few seconds. Called by the background loop.
    func resumeUnfinished() async {
        guard let ids = try? await ids() else { return }
        for id in ids {
            guard let incident = try? await incident(id), incident.state != .completed else { continue }
            if incident.state == .retrying && self.now() - incident.updatedAt < Self.retryInterval { continue }
            guard claim(id) else { continue }
            defer { release(id) }
            do {
                let resumed = try await pass(incident)
                if incident.state == .running {
                    logger.notice("incident resumed after a restart", metadata: ["incident": "\(id)", "state": "\(resumed.state.rawValue)"])
                }
            } catch {
                logger.warning("incident pass failed", metadata: ["incident": "\(id)", "error": "\(String(reflecting: error))"])
            }
        }
    }
}
