import Foundation
public import MayflyCrypto
public import Logging
import Synchronization
public import MayflyStore

/// The broker: storage, barrier, seal, tokens and secrets engines, and the dispatch of a
/// logical request to them. The HTTP layer only translates to and from `LogicalRequest`.
public final class Broker: Sendable {
    public let config: MayflyConfig
    public let seal: SealManager
    let storage: any Storage & LeaseStorage
    let barrier: Barrier
    let tokens: TokenStore
    let kv: KVEngine
    let databases: DatabaseEngine
    let leases: LeaseManager
    let staticRoles: StaticRoleManager
    let incidents: IncidentManager
    let rewrapper: KeyRewrapper
    /// Every unattended job: rotations, re-wrap, sweeps, reconcile, incident retries.
    let scheduler: Scheduler
    let scheduledJobs: ScheduledJobs
    let appRoles: AppRoleEngine
    let audit: AuditLog
    /// Built-in, directory and API policies.
    public let policies: PolicyStore
    let loginLimiter: LoginRateLimiter
    let logger: Logger
    /// The one wall clock of the core: every part reads the time from it.
    let clock: any WallClock
    /// Policies of transport identities (`bind` stanzas); swapped whole on reload.
    let bindings: Mutex<BindingTable>
    /// The server version reported by `sys/health` and `sys/seal-status`.
    public static let version = "0.1.0"

    /// HA: this node's part in electing the leader (nil on a single node).
    public let ha: HACoordinator?
    /// Work only the leader does once unsealed — at unseal when it leads, else when it takes
    /// over: apply declared databases and roles, finish interrupted rotations, reconcile.
    let leaderStartup: @Sendable () async throws -> Void

    private init(config: MayflyConfig, storage: any Storage & LeaseStorage, storeID: String, logger: Logger,
                 clock: any WallClock, leadership: any Leadership, ha: HACoordinator?) throws
    {
        self.ha = ha
        self.config = config
        self.storage = storage
        self.logger = logger
        self.clock = clock
        do {
            bindings = Mutex(try BindingTable(config.bindings))
        } catch {
            // The loader validated the bindings; one that stopped resolving grants nothing.
            logger.error("bindings unusable, identities get no access", metadata: ["error": "\(error)"])
            bindings = Mutex(BindingTable())
        }
        barrier = Barrier(storage: storage)
        databases = DatabaseEngine(barrier: barrier, logger: logger,
                                   settings: CredentialBackends.Settings(scramIterations: config.scramIterations), clock: clock)
        let admission = AdmissionControl(storage: storage, leasesPerIdentity: config.leasesPerIdentity,
                                         issuesPerIdentityPerMinute: config.issuesPerIdentityPerMinute, clock: clock)
        let leases = LeaseManager(leases: storage, databases: databases, logger: logger,
                                  storeID: storeID, admission: admission, clock: clock)
        self.leases = leases
        // Revoking a token revokes the leases it obtained: a credential never outlives its token.
        tokens = TokenStore(barrier: barrier, defaultTTL: config.defaultLeaseTTL, maxTTL: config.maxLeaseTTL, clock: clock,
                            revokeLeases: { hashes in try await leases.revokeObtained(byTokens: hashes) })
        kv = KVEngine(mount: "secret", barrier: barrier, clock: clock)
        appRoles = AppRoleEngine(barrier: barrier, tokens: tokens)
        audit = try AuditLog(path: config.auditPath, clock: clock)
        policies = try PolicyStore(directory: config.policyDirectory, barrier: barrier)
        loginLimiter = LoginRateLimiter(limit: config.loginRateLimit, clock: clock)
        staticRoles = StaticRoleManager(barrier: barrier, databases: databases, logger: logger, storeID: storeID, clock: clock)
        rewrapper = KeyRewrapper(barrier: barrier)
        incidents = IncidentManager(barrier: barrier, leaseStorage: storage, leases: leases, databases: databases,
                                    staticRoles: staticRoles, tokens: tokens, appRoles: appRoles, logger: logger,
                                    clock: clock)
        let databases = databases, logger = logger, policies = policies, audit = audit, barrier = barrier
        let staticRoles = staticRoles, tokens = tokens
        let jobs = ScheduledJobs(config: config, databases: databases, leases: leases, staticRoles: staticRoles,
                                 incidents: incidents, rewrapper: rewrapper, tokens: tokens)
        scheduledJobs = jobs
        scheduler = Scheduler(barrier: barrier, clock: clock, leadership: leadership, logger: logger,
                              historyRetention: config.jobHistoryRetention, jobs: { await jobs.all() })
        let leaderStartup: @Sendable () async throws -> Void = {
                try await audit.loadKey(barrier)
                try await policies.loadStored()
                try await tokens.indexExpiriesIfNeeded()
                try await databases.applyDeclared(config.databases, config.roles)
                // Rotations a crash interrupted are finished before anything is handed out.
                for name in try await databases.configuredNames() {
                    do {
                        try await databases.finishInterruptedRootRotation(name)
                    } catch {
                        logger.warning("cannot finish an interrupted root rotation yet; retried in the background",
                                       metadata: ["database": "\(name)", "error": "\(String(reflecting: error))"])
                    }
                }
                await staticRoles.finishInterrupted()
                await staticRoles.applyDeclared(config.staticRoles)
                // Leases pending at unseal were started by a process that is gone: reconcile —
                // in the background, so that a store of a million live leases serves at once.
                leases.reconcileAfterUnseal(databaseNames: try await databases.configuredNames())
        }
        self.leaderStartup = leaderStartup
        seal = SealManager(
            storage: storage, barrier: barrier, tokens: tokens, mode: config.seal, logger: logger,
            afterUnseal: {
                if await leadership.isLeader() {
                    try await leaderStartup()
                } else {
                    // A standby writes nothing: it loads what the leader keeps.
                    try await audit.loadKey(barrier, create: false)
                    try await policies.loadStored()
                }
            })
        jobs.seal.set(seal)
        if let ha {
            let seal = seal
            ha.onTransitions(
                leader: { term in
                    // What another leader wrote meanwhile is read afresh: keyring terms, cached entries.
                    barrier.cache.wipe()
                    guard await !seal.isSealed else { return }
                    do {
                        try await seal.reloadKeyring()
                        try await leaderStartup()
                    } catch {
                        logger.error("leader start-up failed; the scheduled jobs retry its work",
                                     metadata: ["term": "\(term)", "error": "\(String(reflecting: error))"])
                    }
                },
                standby: { barrier.cache.wipe() },
                whileStandby: {
                    do {
                        try await seal.reloadKeyring()
                    } catch {
                        logger.warning("cannot re-read the keyring", metadata: ["error": "\(String(reflecting: error))"])
                    }
                })
        }
    }

    /// Opens the store named in `config` and, with a key-file seal, unseals from the key file.
    public static func open(config: MayflyConfig, logger: Logger) async throws -> Broker {
        let storage = try await openStore(config)
        guard let haConfig = config.ha, let shared = storage as? PostgresStorage else {
            return try await open(config: config, storage: storage, logger: logger)
        }
        // HA: one election round first, so the first node of a new store creates it as leader.
        let ha = HACoordinator(store: shared, config: haConfig, logger: logger)
        await ha.step()
        return try await open(config: config, storage: storage, logger: logger, leadership: ha, ha: ha)
    }

    /// The store `config` names: a SQLite file, or a schema in PostgreSQL (migrated on open).
    static func openStore(_ config: MayflyConfig) async throws -> any Storage & LeaseStorage {
        if let store = config.postgresStorage {
            return try await PostgresStorage(config: try store.connection(), schema: store.schema,
                                             maxConnections: store.maxConnections)
        }
        return try SQLiteStorage(path: config.storagePath)
    }

    /// Takes the store's lock for the life of the server, so a second server on the same
    /// store fails at startup: a file lock beside a SQLite store, an advisory lock in a
    /// PostgreSQL one. Keep the result until the server stops.
    public static func lockStore(_ config: MayflyConfig) async throws -> any Sendable {
        // With HA several nodes share the store: the leader lock (with its fence) decides who writes.
        if config.ha != nil { return () }
        if let store = config.postgresStorage {
            return try await PostgresStoreLock.acquire(config: try store.connection(), schema: store.schema)
        }
        return try StoreLock(storePath: config.storagePath)
    }

    /// Opens a broker over an existing storage (tests use this with their own files).
    public static func open(config: MayflyConfig, storage: any Storage & LeaseStorage, logger: Logger,
                            clock: any WallClock = SystemClock(), leadership: any Leadership = SingleNodeLeadership(),
                            ha: HACoordinator? = nil)
        async throws -> Broker
    {
        let broker = try Broker(config: config, storage: storage, storeID: try await storeID(storage, logger: logger),
                                logger: logger, clock: clock, leadership: leadership, ha: ha)
        try await broker.seal.load()
        try await broker.seal.unsealFromKeyFile()
        return broker
    }

    /// Swaps in the bindings of a re-read config file (SIGHUP), resolving user and group names
    /// again; if one does not resolve, the previous bindings stay and the error is logged.
    public func replaceBindings(_ bindings: [Binding]) {
        do {
            let table = try BindingTable(bindings)
            self.bindings.withLock { $0 = table }
            logger.notice("bindings reloaded", metadata: ["count": "\(bindings.count)"])
        } catch {
            logger.error("binding reload failed; the previous bindings stay active", metadata: ["error": "\(error.description)"])
        }
    }

    /// Re-reads the policies directory (SIGHUP). On error the previous set stays and the
    /// error, with file and line, is logged and returned.
    @discardableResult
    public func reloadPolicies() -> PolicyFileError? {
        do {
            try policies.reload()
            logger.notice("policies reloaded", metadata: ["count": "\(policies.names().count)"])
            return nil
        } catch {
            logger.error("policy reload failed; the previous policies stay active", metadata: ["error": "\(error.description)"])
            return error
        }
    }

    /// The random id of this store (created on first open; not secret), which marks the roles
    /// it creates in PostgreSQL.
    /// With HA, a standby on a new store waits for the leader to create it.
    static func storeID(_ storage: any Storage, logger: Logger) async throws -> String {
        var waiting = false
        while true {
            if let existing = try await storage.systemValue("store-id") { return String(decoding: existing, as: UTF8.self) }
            let id = Hex.encode(Random.bytes(8))
            do {
                try await storage.setSystemValue("store-id", Array(id.utf8))
                return id
            } catch let error as StorageError where error.code == .fenced {
                if !waiting { logger.notice("new store: waiting for the leader to create it") }
                waiting = true
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// Where the cluster's TLS certificate and key live (barrier-encrypted, like every key).
    static let clusterTLSPath = "core/cluster/tls"

    /// HA: the cluster's own TLS certificate and key (standbys present it when they forward,
    /// the leader's cluster listener accepts only it), kept in the barrier. The leader makes
    /// it with `make` when none exists yet. Nil while sealed, and on a standby until a leader
    /// made it.
    public func clusterTLS(make: @Sendable () throws -> SecureBytes) async throws -> SecureBytes? {
        guard await !seal.isSealed else { return nil }
        if let stored = try await barrier.getSecure(Self.clusterTLSPath) { return stored }
        guard await ha?.isLeader() ?? true else { return nil }
        let made = try make()
        do {
            try await barrier.putSecure(Self.clusterTLSPath, made)
        } catch let error as StorageError where error.code == .conflict {
            made.wipe()  // another leader's was written first: that one is the cluster's
            return try await barrier.getSecure(Self.clusterTLSPath)
        }
        return made
    }

    /// Seals: wipes every key and closes the admin connections (which hold database passwords).
    public func sealAll() async {
        await seal.seal()
        policies.unloadStored()
        audit.unload()
        await databases.closeAll()
    }

    /// Starts the scheduled jobs that are due, every `interval`, until cancelled (nothing runs
    /// while sealed).
    public func runScheduler(interval: Duration = .seconds(1)) async {
        while !Task.isCancelled {
            if await !seal.isSealed { await scheduler.startDueJobs() }
            try? await Task.sleep(for: interval)
        }
    }

    // MARK: - Dispatch

    /// Paths that are never audited (as in Vault): health, status and the unseal dance.
    static let unauditedPaths: Set<String> = ["sys/health", "sys/seal-status", "sys/leader", "sys/init", "sys/unseal"]

    /// Handles one request whose body is already in `request.data`: `authorize`, then `perform`.
    /// Throws `APIError` for every client-visible failure.
    public func handle(_ request: LogicalRequest) async throws -> LogicalResponse {
        try await perform(try await authorize(request))
    }

    /// The first half of a request, decided before its body is read: the path is made
    /// canonical (`RequestPath`), the route found on whole segments (`RouteTable`), the caller
    /// authenticated and the ACL checked on that same path, with `sudo` where the route needs
    /// it. Changes nothing; a refusal is audited (when the device is on) and thrown.
    public func authorize(_ request: LogicalRequest) async throws -> AuthorizedRequest {
        var request = request
        var caller: Caller?
        do {
            request.path = try RequestPath.canonical(request.path, operation: request.operation)
            let route = RouteTable.route(request.path, request.operation)
            if let route, route.isPublic { return AuthorizedRequest(request: request, route: route, caller: nil) }
            // The barrier's flag, read without a hop to the seal manager's actor (hot path).
            guard !barrier.isSealed else { throw APIError.sealed }
            let authenticated = try await authenticate(request)
            caller = authenticated
            guard let route else {
                // No handler: say so to a caller whose policies reach the path, deny the rest.
                let granted = authenticated.acl.capabilities(request.path)
                if granted.isEmpty || granted.contains(.deny) { throw APIError.permissionDenied }
                throw APIError(status: 404, ["no handler for route \"\(APIError.clip(request.path))\". route entry not found."])
            }
            // The mount preflight (`sys/internal/ui/mounts/…`) answers from the caller's own policies.
            if route.handler != .mountPreflight {
                guard authenticated.acl.allows(request.path, Self.capability(for: request.operation), needsSudo: route.needsSudo)
                else { throw APIError.permissionDenied }
            }
            return AuthorizedRequest(request: request, route: route, caller: authenticated)
        } catch let error as APIError {
            try await auditRefusal(request, caller: caller, error: error)
            throw error
        } catch {
            // The store failed while authenticating (unavailable, fenced): the client's answer.
            let translated = translate(error)
            try await auditRefusal(request, caller: caller, error: translated)
            throw translated
        }
    }

    /// The second half: audits the request, runs its handler and audits the response. If an
    /// audit line cannot be written the request fails and nothing is served.
    ///
    /// The request line is on disk before the request is handled. A pure read (`isPureRead`:
    /// it changes nothing) is read while its line goes to disk, and nothing of it is returned
    /// until the line is there: what a client can observe is the same, and the read does not
    /// wait for the `fsync` twice in a row.
    public func perform(_ authorized: AuthorizedRequest) async throws -> LogicalResponse {
        let request = authorized.request
        var prepared: AuditLog.Prepared?
        if audit.isEnabled, !Self.unauditedPaths.contains(request.path), !barrier.isSealed {
            // Both lines share who asked and what, HMAC'd and encoded once.
            prepared = audit.prepare(request, caller: auditCaller(authorized.caller, request))
        }
        var requestLine: AuditLog.PendingLine?
        if let prepared {
            if Self.isPureRead(authorized) || Self.isIssuance(authorized) {
                requestLine = try recordAudit { try audit.writeRequest(prepared) }
            } else {
                try await recordAudit { try await audit.logRequest(prepared) }
            }
        }
        let result: LogicalResponse
        do {
            if let requestLine, Self.isIssuance(authorized) {
                // Only issuance waits at the gate (before it creates the role); reads need none.
                result = try await AuditGate.$current.withValue(AuditGate(line: requestLine)) {
                    try await dispatchTranslated(authorized)
                }
            } else {
                result = try await dispatchTranslated(authorized)
            }
        } catch let error as APIError {
            if let requestLine { try await recordAudit { try await requestLine.wait() } }
            if let prepared { try await recordAudit { try await audit.logResponse(prepared, result: nil, error: error) } }
            throw error
        }
        if let requestLine { try await recordAudit { try await requestLine.wait() } }
        if let prepared { try await recordAudit { try await audit.logResponse(prepared, result: result, error: nil) } }
        // Sealing wipes the audit key, so it happens once the response line is written: a seal
        // is on the record, and refused like any request when the record cannot be written.
        if authorized.route.handler == .system, request.path == "sys/seal" { await sealAll() }
        return result
    }

    /// Requests that change nothing, whatever their answer: KV reads and lists, a token's own
    /// lookup — not a limited-use token (a use is a write), and not `database/creds` (a read
    /// that creates a login).
    static func isPureRead(_ authorized: AuthorizedRequest) -> Bool {
        guard [.read, .list, .head].contains(authorized.request.operation), (authorized.caller?.entry?.numUses ?? 0) == 0
        else { return false }
        switch authorized.route.handler {
        case .kv: return true
        case .token: return authorized.request.path == "auth/token/lookup-self"
        case .database: return authorized.request.path.hasPrefix("database/static-creds/")
        default: return false
        }
    }

    /// A credential request: its lease intent (a row only Mayfly sees, closed by reconcile if
    /// nothing follows) is written while the request line goes to disk; the role is created in
    /// PostgreSQL only once the line is there (`AuditGate`).
    static func isIssuance(_ authorized: AuthorizedRequest) -> Bool {
        authorized.request.operation == .read && authorized.route.handler == .database
            && authorized.request.path.hasPrefix("database/creds/")
    }

    /// Audits a request refused before it was performed (both lines), when the device is on.
    private func auditRefusal(_ request: LogicalRequest, caller: Caller?, error: APIError) async throws {
        guard audit.isEnabled, !Self.unauditedPaths.contains(request.path), !barrier.isSealed else { return }
        guard let prepared = audit.prepare(request, caller: auditCaller(caller, request)) else { return }
        try await recordAudit { try await audit.logRequest(prepared) }
        try await recordAudit { try await audit.logResponse(prepared, result: nil, error: error) }
    }

    private func recordAudit(_ write: () async throws -> Void) async throws {
        do {
            try await write()
        } catch {
            throw auditFailure(error)
        }
    }

    private func recordAudit<T>(_ write: () throws -> T) throws -> T {
        do {
            return try write()
        } catch {
            throw auditFailure(error)
        }
    }

    private func auditFailure(_ error: any Error) -> APIError {
        logger.critical("audit record not written; request refused", metadata: ["error": "\(String(reflecting: error))"])
        return APIError(status: 500, ["audit log unavailable; request not served"], detail: String(reflecting: error))
    }

    /// The caller as the audit line shows it.
    private func auditCaller(_ caller: Caller?, _ request: LogicalRequest) -> AuditLog.Caller? {
        if let caller, let entry = caller.entry {
            return AuditLog.Caller(token: caller.token, accessor: entry.accessor, policies: entry.policies,
                                   displayName: entry.displayName, identity: caller.identityName)
        }
        if let caller, let identity = caller.identity {
            return AuditLog.Caller(token: nil, accessor: nil, policies: caller.policies, displayName: identity.summary,
                                   identity: identity.summary)
        }
        if let token = request.token {
            return AuditLog.Caller(token: token, accessor: nil, policies: [], displayName: "", identity: "")
        }
        if let identity = request.identity {
            return AuditLog.Caller(token: nil, accessor: nil, policies: [], displayName: identity.summary, identity: identity.summary)
        }
        return nil
    }

    private func dispatchTranslated(_ authorized: AuthorizedRequest) async throws -> LogicalResponse {
        do {
            return try await dispatch(authorized)
        } catch let error as APIError where error.status < 500 {
            throw error
        } catch {
            // A seal that lands while a request runs closes its database pools and wipes its
            // keys under it: the request is answered as sealed, not as an internal error.
            if !authorized.route.isPublic, barrier.isSealed { throw APIError.sealed }
            throw translate(error)
        }
    }

    /// The client-visible form of a failure inside a request.
    /// What a client is told of `error` (a failure outside the broker's own request handling,
    /// e.g. in forwarding): the same answer `handle` would give.
    public func apiError(for error: any Error) -> APIError { translate(error) }

    private func translate(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as JSONParseError:
            return APIError.badRequest(error.message)
        case let error as BarrierError where error.code == .sealed:
            return APIError.sealed
        case let error as BarrierError:
            logger.error("stored data failed its integrity check", metadata: ["error": "\(String(reflecting: error))"])
            return APIError(status: 500, ["stored data failed its integrity check"], detail: String(reflecting: error))
        case let error as StorageError where error.code == .fenced:
            // Leadership moved while this request ran: nothing of it was written.
            logger.warning("write refused: this node does not lead", metadata: ["error": "\(String(reflecting: error))"])
            return APIError(status: 503, ["this node is no longer the leader; retry the request"], detail: String(reflecting: error))
        case let error as StorageError where error.code == .unavailable:
            // Nothing was acknowledged: the client may retry once the store answers again.
            logger.error("store unavailable", metadata: ["error": "\(String(reflecting: error))"])
            return APIError(status: 503, ["the store is unavailable; retry"], detail: String(reflecting: error), retryAfter: 1)
        case let error as StorageError:
            logger.error("storage failure", metadata: ["error": "\(String(reflecting: error))"])
            return APIError(status: 500, ["storage unavailable"], detail: String(reflecting: error))
        default:
            return APIError.internalError(String(reflecting: error))
        }
    }

    /// Runs the handler of the route. Handlers get the canonical path and never rewrite it.
    private func dispatch(_ authorized: AuthorizedRequest) async throws -> LogicalResponse {
        let request = authorized.request
        let path = request.path
        switch authorized.route.handler {
        case .health: return try await SysHandlers.health(self, request)
        case .sealStatus: return try await SysHandlers.sealStatus(self, request)
        case .leader: return try await SysHandlers.leader(self, request)
        case .initialize: return try await SysHandlers.initialize(self, request)
        case .unseal: return try await SysHandlers.unseal(self, request)
        case .appRoleLogin, .certLogin:
            guard await !seal.isSealed else { throw APIError.sealed }
            guard request.operation == .update else { throw APIError.unsupportedOperation }
            try loginLimiter.attempt(source: LoginRateLimiter.source(of: request))
            return authorized.route.handler == .certLogin ? try await certLogin(request) : try await appRoles.login(request)
        default:
            break
        }
        guard let caller = authorized.caller else { throw APIError.permissionDenied }
        // As in Vault, the mount preflight is not a use of the token.
        if let entry = caller.entry, authorized.route.handler != .mountPreflight { try await tokens.use(entry) }
        switch authorized.route.handler {
        case .mountPreflight:
            return try SysHandlers.mountInfo(self, request, caller)
        case .resultantACL:
            guard request.operation == .read else { throw APIError.unsupportedOperation }
            return .envelope(Envelope(data: caller.acl.resultant()))
        case .kv:
            return try await kv.handle(request, relativePath: Self.relative(path, to: "secret"))
        case .appRole:
            return try await appRoles.handle(request, relativePath: Self.relative(path, to: "auth/approle"), caller: caller)
        case .token:
            return try await TokenHandlers.handle(self, request, caller, Self.relative(path, to: "auth/token"))
        case .database:
            return try await database(request, caller, relative: Self.relative(path, to: "database"))
        case .lease:
            guard let route = LeaseHandlers.route(path) else { throw APIError.unsupportedPath(path) }
            return try await LeaseHandlers.handle(self, request, route, caller)
        case .schedule:
            return try await ScheduleHandlers.handle(self, request)
        case .incident:
            return try await IncidentHandlers.handle(self, request, caller)
        case .policy:
            return try await PolicyHandlers.handle(self, request)
        case .system:
            return try await SysHandlers.handle(self, request, caller)
        case .metrics, .health, .sealStatus, .leader, .initialize, .unseal, .appRoleLogin, .certLogin:
            throw APIError.unsupportedPath(path)
        }
    }

    /// `path` below the mount `prefix` (whole segments; the route table matched them).
    static func relative(_ path: String, to prefix: String) -> String {
        String(path.dropFirst(prefix.count + 1))
    }

    /// `database/`: configs and roles, static roles, credentials and root rotation.
    private func database(_ request: LogicalRequest, _ caller: Caller, relative: String) async throws -> LogicalResponse {
        let (section, name) = RequestPath.splitFirst(relative)
        // Static roles and database configs carry schedules: the job list changes with them.
        let changesJobs = ["static-roles", "config"].contains(section) && [.update, .delete].contains(request.operation)
        defer { if changesJobs { scheduledJobs.invalidate() } }
        switch section {
        case "static-roles", "static-creds", "rotate-role":
            return try await staticRoles.handle(request, section: section, name: name, caller: caller)
        case "rotate-root":
            guard request.operation == .update else { throw APIError.unsupportedOperation }
            try await databases.rotateRoot(name)
            return .noContent
        case "creds":
            guard request.operation == .read else { throw APIError.unsupportedOperation }
            return try await leases.issue(roleName: name, identity: caller.identityName, tokenHash: caller.entry?.idHash)
        default:
            if section == "config", request.operation == .delete { try await checkUnused(database: name) }
            let result = try await databases.handle(request, relativePath: relative, caller: caller)
            // A config read also shows its connection budget (Mayfly's addition).
            if section == "config", request.operation == .read, !name.isEmpty, case .envelope(var envelope, let status) = result,
                case .object(var data) = envelope.data
            {
                data["connection_budget_status"] = await leases.budgetStatus(name)
                envelope.data = .object(data)
                return .envelope(envelope, status: status)
            }
            return result
        }
    }

    /// The caller of a request: its token when it sends one; otherwise the identity the
    /// transport proved (Unix peer credentials, client certificate) if a `bind` stanza names
    /// it. Anything else is denied.
    func authenticate(_ request: LogicalRequest) async throws -> Caller {
        if let token = request.token {
            guard let entry = try await tokens.lookup(token: token) else { throw APIError.permissionDenied }
            return Caller(token: token, entry: entry, policies: entry.policies, identity: request.identity,
                          acl: policies.acl(for: entry.policies))
        }
        if let identity = request.identity, let bound = bindings.withLock({ $0.policies(for: identity) }) {
            let names = Array(Set(bound + ["default"])).sorted()
            return Caller(token: nil, entry: nil, policies: names, identity: identity, acl: policies.acl(for: names))
        }
        throw APIError.permissionDenied
    }

    /// `auth/cert/login`: a token for the verified client certificate of the mTLS connection,
    /// with the policies its `bind` stanzas give (Vault clients that want a token).
    func certLogin(_ request: LogicalRequest) async throws -> LogicalResponse {
        guard case .certificate(let uris, let dnsNames, let commonName)? = request.identity,
            let bound = bindings.withLock({ $0.policies(for: request.identity!) })
        else { throw APIError.badRequest("invalid certificate or no client certificate supplied") }
        var meta: [String: String] = [:]
        if let commonName { meta["common_name"] = commonName }
        if let uri = uris.first { meta["uri_san"] = uri }
        if let dns = dnsNames.first { meta["dns_san"] = dns }
        let (token, entry) = try await tokens.create(TokenRequest(
            policies: Array(Set(bound + ["default"])).sorted(), meta: meta, displayName: "cert-" + (commonName ?? "client"),
            path: "auth/cert/login", identity: request.identity!.summary))
        logger.info("certificate login", metadata: ["identity": "\(request.identity!.summary)"])
        return .envelope(Envelope(auth: TokenHandlers.auth(entry, token: token)))
    }

    /// A database config is deleted only when nothing depends on it: without its connection,
    /// live credentials could no longer be renewed or revoked (their logins would stay usable
    /// until VALID UNTIL) and static roles could not rotate.
    private func checkUnused(database name: String) async throws {
        let counts = try await storage.leaseCounts(matching: LeaseFilter(databases: [name], states: [.pending, .active, .revoking]))
        let live = counts.values.reduce(0) { $0 + $1.values.reduce(0, +) }
        if live > 0 {
            throw APIError.badRequest(
                "database \"\(APIError.clip(name))\" still has \(live) live credential(s): revoke them first (mayfly revoke --database \(APIError.clip(name)) --reason …)")
        }
        let users = try await staticRoles.roles(inDatabase: name).map(\.name)
        if !users.isEmpty {
            throw APIError.badRequest("database \"\(APIError.clip(name))\" is used by static role(s) \(users.sorted().joined(separator: ", ")): delete them first")
        }
    }

    /// A token from `auth/cert/login` is renewed only over a connection that presents the same
    /// certificate identity, while its bindings still give the same policies (as Vault's cert
    /// method re-checks the certificate on renewal): a stolen token does not outlive its TTL.
    func checkRenewal(of entry: TokenEntry, _ request: LogicalRequest) throws {
        guard entry.path == "auth/cert/login" else { return }
        guard case .certificate? = request.identity, request.identity?.summary == entry.identity else {
            throw APIError(status: 403, ["permission denied: renewing this token needs the client certificate it was issued to"])
        }
        let bound = bindings.withLock { $0.policies(for: request.identity!) } ?? []
        guard Set(bound + ["default"]) == Set(entry.policies) else {
            throw APIError.badRequest("policies have changed, not renewing")
        }
    }

    /// Whether the sealed state and the number of leases in each state, for metrics.
    public func metricsSnapshot() async -> (sealed: Bool, leases: [String: Int]) {
        let sealed = await seal.isSealed
        let counts = (try? await storage.leaseCounts()) ?? [:]
        var leases: [String: Int] = [:]
        for state in [LeaseState.pending, .active, .revoking, .revoked] { leases[state.rawValue] = counts[state] ?? 0 }
        return (sealed, leases)
    }

    /// Checks that `request` (token or bound identity) may read `path` (for routes served
    /// outside the broker, such as metrics).
    public func authorizeRead(_ request: LogicalRequest) async throws {
        guard await !seal.isSealed else { throw APIError.sealed }
        let caller = try await authenticate(request)
        guard caller.acl.allows(request.path, .read) else { throw APIError.permissionDenied }
    }

    /// The capability an operation needs (POST/PUT are "update"; create vs update existence
    /// checks arrive with configurable policies).
    static func capability(for operation: Operation) -> Capability {
        switch operation {
        case .read, .head: .read
        case .list: .list
        case .update: .update
        case .delete: .delete
        case .patch: .patch
        }
    }

}

/// The authenticated caller of a request: a token holder, or a bound transport identity.
struct Caller: Sendable {
    let token: String?
    let entry: TokenEntry?
    let policies: [String]
    let identity: PeerIdentity?
    let acl: ACL

    init(token: String?, entry: TokenEntry?, policies: [String], identity: PeerIdentity?, acl: ACL) {
        self.token = token
        self.entry = entry
        self.policies = policies
        self.identity = identity
        self.acl = acl
    }

    /// The identity requests are attributed to: the token's identity, else the transport's,
    /// else `token:<display name>` (root and other tokens with no identity behind them).
    var identityName: String {
        if let identity = entry?.identity { return identity }
        if entry == nil, let identity { return identity.summary }
        if let entry { return "token:" + entry.displayName }
        return identity?.summary ?? ""
    }

    /// The caller's token, for the paths that act on it (lookup-self, renew-self, …).
    func requireToken() throws -> (token: String, entry: TokenEntry) {
        guard let token, let entry else { throw APIError(status: 403, ["permission denied: this request needs a token (X-Vault-Token)"]) }
        return (token, entry)
    }
}
