import Foundation
import Logging
import MayflyCron
import MayflyCrypto

/// Static roles (`database/static-roles/:name`, `static-creds`, `rotate-role`, as in
/// Vault): long-lived logins whose password only Mayfly knows and changes. A rotation is
/// written as an intent before the password changes, so a crash between the two is finished (rolled
/// forward with the intended password) on the next start and the stored password always ends
/// up agreeing with PostgreSQL's.
final class StaticRoleManager: Sendable {
    private let barrier: Barrier
    private let databases: DatabaseEngine
    private let logger: Logger
    private let storeID: String
    private let locks = KeyedLock()
    /// The time rotations are stamped with (the scheduler's clock).
    let clock: any WallClock
    static let definitions = "database/static-roles/"
    static let states = "database/static-state/"
    /// Vault's lower bound on `rotation_period`.
    static let minimumPeriod: Int64 = 5

    init(barrier: Barrier, databases: DatabaseEngine, logger: Logger, storeID: String,
         clock: any WallClock = SystemClock())
    {
        self.clock = clock
        self.barrier = barrier
        self.databases = databases
        self.logger = logger
        self.storeID = storeID
    }

    func now() -> Int64 { clock.seconds() }

    // MARK: Storage

    func names() async throws -> [String] {
        try await barrier.list(Self.definitions).filter { !$0.hasSuffix("/") }
    }

    func definition(_ name: String) async throws -> StaticRole? {
        guard let bytes = try await barrier.get(Self.definitions + name) else { return nil }
        return try JSONDecoder().decode(StaticRole.self, from: Data(bytes))
    }

    func state(_ name: String) async throws -> StaticRoleState? {
        guard let bytes = try await barrier.get(Self.states + name) else { return nil }
        return try JSONDecoder().decode(StaticRoleState.self, from: Data(bytes))
    }

    private func save(_ name: String, _ state: StaticRoleState) async throws {
        try await barrier.put(Self.states + name, try JSONEncoder().encode(state).bytes)
    }

    /// The static roles of `database`.
    func roles(inDatabase database: String) async throws -> [StaticRole] {
        var roles: [StaticRole] = []
        for name in try await names() {
            if let role = try await definition(name), role.database == database { roles.append(role) }
        }
        return roles
    }

    // MARK: Schedule

    /// When `role` rotates next (Unix seconds), measured from its last rotation.
    static func nextRotation(_ role: StaticRole, lastRotation: Int64) -> Int64? {
        if let expression = role.rotationSchedule {
            guard let schedule = try? CronSchedule(expression, timeZone: role.timeZone),
                let next = schedule.nextFire(after: Date(timeIntervalSince1970: TimeInterval(lastRotation)))
            else { return nil }
            return Int64(next.timeIntervalSince1970.rounded(.up))
        }
        return role.rotationPeriod.map { lastRotation + $0 }
    }

    /// Validates a schedule and zone; the message names what is wrong.
    static func checkSchedule(_ expression: String, timeZone: String?) throws {
        do {
            _ = try CronSchedule(expression, timeZone: timeZone)
        } catch {
            throw APIError.badRequest("invalid rotation_schedule: \(error.description)")
        }
    }

    // MARK: Routing

    func handle(_ request: LogicalRequest, section: String, name: String, caller: Caller) async throws -> LogicalResponse {
        switch (section, request.operation) {
        case ("static-roles", .list) where name.isEmpty:
            let keys = try await names()
            guard !keys.isEmpty else { throw APIError.notFound }
            return .envelope(Envelope(data: ["keys": .strings(keys)]))
        case ("static-roles", .read): return try await read(name)
        case ("static-roles", .update):
            // Custom SQL runs as the broker's admin login: writing it is admin power.
            try CustomStatements.requireSudo(request.data, fields: ["rotation_statements"], caller: caller,
                                             path: request.path)
            return try await write(name, request.data)
        case ("static-roles", .delete): return try await delete(name)
        case ("static-creds", .read): return try await credentials(name)
        case ("rotate-role", .update):
            try Names.validate(name, kind: "static role")
            guard try await definition(name) != nil else { throw APIError.badRequest("unknown static role \"\(name)\"") }
            try await rotate(name)
            return .noContent
        default: throw APIError.unsupportedOperation
        }
    }

    private func read(_ name: String) async throws -> LogicalResponse {
        try Names.validate(name, kind: "static role")
        guard let role = try await definition(name) else { throw APIError.notFound }
        let state = try await state(name)
        var data: [String: JSONValue] = [
            "db_name": .string(role.database), "username": .string(role.username),
            "rotation_statements": .strings(role.rotationStatements), "credential_type": "password",
            "custom_statements": .bool(!role.rotationStatements.isEmpty),
            "strategy": .string(role.strategy.rawValue), "member_of": .strings(role.memberOf),
        ]
        if let period = role.rotationPeriod { data["rotation_period"] = .int(period) }
        if let schedule = role.rotationSchedule { data["rotation_schedule"] = .string(schedule) }
        if let zone = role.timeZone { data["time_zone"] = .string(zone) }
        if let state {
            data["last_vault_rotation"] = .string(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval(state.lastRotation))))
            data["active_username"] = .string(state.activeUsername)
        }
        return .envelope(Envelope(data: .object(data)))
    }

    private func credentials(_ name: String) async throws -> LogicalResponse {
        try Names.validate(name, kind: "static role")
        guard let role = try await definition(name), let state = try await state(name) else {
            throw APIError.badRequest("unknown static role \"\(APIError.clip(name))\"")
        }
        let now = self.now()
        var data: [String: JSONValue] = [
            "username": .string(state.activeUsername), "password": .string(state.password),
            "last_vault_rotation": .string(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval(state.lastRotation)))),
        ]
        if let next = Self.nextRotation(role, lastRotation: state.lastRotation) { data["ttl"] = .int(max(0, next - now)) }
        if let period = role.rotationPeriod { data["rotation_period"] = .int(period) }
        if let schedule = role.rotationSchedule { data["rotation_schedule"] = .string(schedule) }
        if let database = try await databases.config(role.database) {
            data["connection_url"] = .string(try await databases.backend(database).clientURL(username: state.activeUsername))
        }
        return .envelope(Envelope(data: .object(data)))
    }

    /// Forgets the role. A `single` role's user was the operator's and stays (as in Vault); the
    /// `<username>_a` and `_b` users Mayfly created for an `alternating` role are revoked like
    /// dynamic credentials (sessions ended, objects handed over, dropped) before the definition
    /// goes, so a failure leaves the role in place to delete again.
    private func delete(_ name: String) async throws -> LogicalResponse {
        try Names.validate(name, kind: "static role")
        try await locks.withLock(name) {
            if let role = try await self.definition(name), role.strategy == .alternating,
               let database = try await self.databases.config(role.database)
            {
                try await self.dropCreatedUsers(role, database: database)
            }
            try await self.barrier.commit([.delete(path: Self.definitions + name), .delete(path: Self.states + name)])
        }
        return .noContent
    }

    /// Drops the users of `role` that carry the marker `prepareUsers` gave them (never a user
    /// Mayfly did not create).
    private func dropCreatedUsers(_ role: StaticRole, database: DatabaseConfig) async throws {
        let marker = Self.marker(role.name, storeID: storeID)
        do {
            let backend = try await databases.backend(database)
            let created = try await backend.loginsMarked(role.usernames, marker: marker)
            _ = try await backend.revoke(usernames: created, revocationStatements: [:])
        } catch {
            throw APIError.badRequest(
                "cannot drop the users of static role \"\(role.name)\" in database \"\(role.database)\": \(DatabaseEngine.describe(error))"
            )
        }
    }

    /// The comment on the users Mayfly creates for an `alternating` role.
    private static func marker(_ name: String, storeID: String) -> String { "mayfly static \(name) store \(storeID)" }

    // MARK: Create

    private func write(_ name: String, _ data: [String: JSONValue]) async throws -> LogicalResponse {
        try Names.validate(name, kind: "static role")
        let existing = try await definition(name)
        let known: Set<String> = [
            "db_name", "username", "rotation_statements", "rotation_period", "rotation_schedule", "rotation_window",
            "strategy", "member_of", "time_zone", "credential_type", "self_managed_password", "skip_import_rotation",
        ]
        if let unknown = data.keys.sorted().first(where: { !known.contains($0) }) {
            throw APIError.badRequest("unknown field \"\(APIError.clip(unknown))\"")
        }
        guard let databaseName = data["db_name"]?.stringValue ?? existing?.database else {
            throw APIError.badRequest("db_name is required")
        }
        guard let username = data["username"]?.stringValue ?? existing?.username, !username.isEmpty else {
            throw APIError.badRequest("username is required")
        }
        if let existing, existing.username != username || existing.database != databaseName {
            throw APIError.badRequest("cannot change the username or db_name of an existing static role")
        }
        let strategyName = data["strategy"]?.stringValue ?? existing?.strategy.rawValue ?? RotationStrategy.single.rawValue
        guard let strategy = RotationStrategy(rawValue: strategyName) else {
            throw APIError.badRequest("strategy must be \"single\" or \"alternating\"")
        }
        var role = StaticRole(
            name: name, database: databaseName, username: username, strategy: strategy,
            memberOf: try DatabaseEngine.strings(data["member_of"], field: "member_of") ?? existing?.memberOf ?? [],
            rotationPeriod: try DurationParser.seconds(data["rotation_period"], field: "rotation_period"),
            rotationSchedule: data["rotation_schedule"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 },
            timeZone: data["time_zone"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 } ?? existing?.timeZone,
            rotationStatements: try DatabaseEngine.statements(data["rotation_statements"], field: "rotation_statements")
                ?? existing?.rotationStatements ?? [])
        if role.rotationPeriod == nil && role.rotationSchedule == nil {
            role.rotationPeriod = existing?.rotationPeriod
            role.rotationSchedule = existing?.rotationSchedule
        }
        try await create(role)
        return .noContent
    }

    /// Validates `role`, prepares its users in PostgreSQL and stores it with a first rotation
    /// (as Vault does, so no password from before Mayfly stays valid). If the rotation fails
    /// nothing is stored.
    func create(_ role: StaticRole) async throws {
        try Self.validate(role)
        guard let database = try await databases.config(role.database) else {
            throw APIError.badRequest("database \"\(APIError.clip(role.database))\" is not configured")
        }
        let isNew = try await definition(role.name) == nil
        try await prepareUsers(role, database: database)
        try await barrier.put(Self.definitions + role.name, try JSONEncoder().encode(role).bytes)
        let hasState = try await state(role.name) != nil
        guard isNew || !hasState else { return }
        do {
            try await rotateAll(role.name)
        } catch {
            try? await barrier.commit([.delete(path: Self.definitions + role.name), .delete(path: Self.states + role.name)])
            throw error
        }
    }

    static func validate(_ role: StaticRole) throws {
        guard role.username.utf8.count <= (role.strategy == .single ? 63 : 61) else {
            throw APIError.badRequest("username is too long for PostgreSQL")
        }
        switch (role.rotationPeriod, role.rotationSchedule) {
        case (nil, nil): throw APIError.badRequest("rotation_period or rotation_schedule is required")
        case (.some, .some): throw APIError.badRequest("set rotation_period or rotation_schedule, not both")
        case (let period?, nil):
            guard period >= minimumPeriod else { throw APIError.badRequest("rotation_period must be at least 5 seconds") }
        case (nil, let schedule?): try checkSchedule(schedule, timeZone: role.timeZone)
        }
        try DatabaseEngine.validateIdentifier(role.username, field: "username")
        for group in role.memberOf { try DatabaseEngine.validateIdentifier(group, field: "member_of") }
    }

    /// `single`: the user must exist. `alternating`: `<username>_a` and `_b` are created if
    /// missing, members of `member_of` (or of `username`), with passwords nobody knows.
    private func prepareUsers(_ role: StaticRole, database: DatabaseConfig) async throws {
        let marker = Self.marker(role.name, storeID: storeID)
        let groups = role.memberOf.isEmpty ? [role.username] : role.memberOf
        // Handing out this user's password must not hand out any database's admin login: its
        // revocations would fail (credentials left live) and its holder could act as the broker.
        for other in try await databases.configuredNames() {
            guard let config = try await databases.config(other),
                (try? CredentialBackends.type(of: config.plugin))?.adminLogin(config) == role.username
            else { continue }
            throw APIError.badRequest(
                "user \"\(role.username)\" is the admin login of database \"\(other)\": a static role cannot hand out the broker's own login (rotate it with database/rotate-root/\(other))")
        }
        if role.strategy == .alternating { try await databases.checkGroups(groups, database: database) }
        do {
            let backend = try await databases.backend(database)
            switch role.strategy {
            case .single: try await backend.checkStaticLogin(role.username)
            case .alternating: try await backend.createStaticLogins(role.usernames, groups: groups, marker: marker)
            }
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.badRequest("cannot prepare static role \"\(role.name)\" in database \"\(role.database)\": \(DatabaseEngine.describe(error))")
        }
    }

    /// Stores the static roles declared in the config file (at every unseal); a new one is
    /// rotated at once. A role whose database is unreachable is logged and tried again at the
    /// next unseal.
    func applyDeclared(_ declared: [DeclaredStaticRole]) async {
        for item in declared {
            let role = StaticRole(
                name: item.name, database: item.database, username: item.username,
                strategy: RotationStrategy(rawValue: item.strategy) ?? .single, memberOf: item.memberOf,
                rotationPeriod: item.rotationPeriod, rotationSchedule: item.rotationSchedule, timeZone: item.timeZone,
                rotationStatements: item.rotationStatements)
            do {
                let stored = try await definition(role.name)
                if stored == role, try await state(role.name) != nil { continue }
                try await create(role)
                logger.info("declared static role applied", metadata: ["static_role": "\(role.name)"])
            } catch {
                logger.error("cannot apply declared static role", metadata: [
                    "static_role": "\(role.name)", "error": "\(String(reflecting: error))",
                ])
            }
        }
    }

    // MARK: Rotate

    /// Rotates `name` now: `single` changes the user's password; `alternating` changes the
    /// inactive user's password and makes it the active one.
    func rotate(_ name: String, now: Int64? = nil) async throws {
        let now = now ?? self.now()
        try await locks.withLock(name) {
            guard let role = try await self.definition(name) else { return }
            let state = try await self.state(name)
            if let intent = state?.intent { try await self.finish(role, state!, intent) }
            let current = try await self.state(name)
            let target: String
            switch role.strategy {
            case .single: target = role.username
            case .alternating: target = current?.activeUsername == role.usernames[0] ? role.usernames[1] : role.usernames[0]
            }
            try await self.rotate(role, current, target: target, now: now)
        }
    }

    /// Changes every password the role has (both users of an `alternating` role), for a leak
    /// response; returns the number of passwords changed.
    @discardableResult
    func rotateAll(_ name: String, now: Int64? = nil) async throws -> Int {
        guard let role = try await definition(name) else { return 0 }
        for _ in role.usernames { try await rotate(name, now: now) }
        return role.usernames.count
    }

    private func rotate(_ role: StaticRole, _ current: StaticRoleState?, target: String, now: Int64) async throws {
        let password = Base64.encodeURLSafeNoPadding(Random.bytes(32))
        let intent = RotationIntent(username: target, password: password, startedAt: now)
        var state = current ?? StaticRoleState(activeUsername: target, password: "", lastRotation: now)
        state.intent = intent
        // Intent before action: a crash from here on is finished with this password.
        try await save(role.name, state)
        FaultInjection.point("after-rotation-intent")
        try await finish(role, state, intent, now: now)
    }

    /// Sets `intent`'s password in PostgreSQL (idempotent) and records it as current.
    private func finish(_ role: StaticRole, _ state: StaticRoleState, _ intent: RotationIntent,
                        now: Int64? = nil) async throws
    {
        let now = now ?? self.now()
        guard let database = try await databases.config(role.database) else {
            throw APIError.internalError("static role \(role.name) names database \(role.database), which is not configured")
        }
        do {
            try await databases.backend(database).setPassword(
                username: intent.username, password: intent.password, statements: role.rotationStatements)
        } catch {
            logger.warning("static role rotation failed", metadata: [
                "static_role": "\(role.name)", "error": "\(String(reflecting: error))",
            ])
            // A statement the database refused (a bad rotation statement, no privilege) is the
            // role's fault; a database that cannot be reached is the server's.
            let refused = (error as? CredentialBackendError)?.kind == .refused
            throw APIError(status: refused ? 400 : 500, ["cannot rotate static role \"\(role.name)\": \(DatabaseEngine.describe(error))"])
        }
        FaultInjection.point("after-rotation-alter")
        var done = state
        done.activeUsername = intent.username
        done.password = intent.password
        done.lastRotation = max(now, intent.startedAt)
        done.intent = nil
        try await save(role.name, done)
        logger.info("static role rotated", metadata: ["static_role": "\(role.name)", "username": "\(intent.username)"])
    }

    /// Finishes rotations a crash interrupted (at unseal, and on every scheduler pass).
    func finishInterrupted() async {
        guard let names = try? await names() else { return }
        for name in names {
            do {
                try await locks.withLock(name) {
                    guard let role = try await self.definition(name), let state = try await self.state(name),
                        let intent = state.intent
                    else { return }
                    try await self.finish(role, state, intent, now: intent.startedAt)
                    self.logger.notice("finished an interrupted rotation", metadata: ["static_role": "\(name)"])
                }
            } catch {
                logger.warning("cannot finish an interrupted rotation yet", metadata: [
                    "static_role": "\(name)", "error": "\(String(reflecting: error))",
                ])
            }
        }
    }
}
