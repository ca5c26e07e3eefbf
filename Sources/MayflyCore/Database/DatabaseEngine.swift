import Foundation
import Logging
import Synchronization

/// The database secrets engine at `database/`: connection configs and roles on Vault's
/// `database/config` and `database/roles` paths, and one credential backend per configured
/// database (`CredentialBackend`: the only thing that speaks to it).
final class DatabaseEngine: Sendable {
    private let barrier: Barrier
    let logger: Logger
    /// The backends by database, and how often each was dropped or re-keyed: a backend built
    /// from a config read before that is not kept.
    private let backends = Mutex<(backends: [String: any CredentialBackend], generation: [String: Int])>(([:], [:]))
    /// What every backend is built with.
    let settings: CredentialBackends.Settings
    /// Serialises root rotations per database.
    let rootLocks = KeyedLock()
    /// Roles whose groups passed `checkGroups`: the groups checked and when (Unix seconds).
    private let verifiedGroups = Mutex<[String: (key: String, at: Int64)]>([:])
    /// Roles of the config file refused at the last unseal, and why (with file and line).
    private let refusedDeclared = Mutex<[String: String]>([:])
    /// The check of the config file's roles started by the last unseal.
    private let declaredCheck = Mutex<Task<Void, Never>?>(nil)
    /// The wall clock (the broker's).
    let clock: any WallClock

    init(barrier: Barrier, logger: Logger, settings: CredentialBackends.Settings = .init(), clock: any WallClock = SystemClock()) {
        self.clock = clock
        self.settings = settings
        self.barrier = barrier
        self.logger = logger
    }

    // MARK: Names and fields

    /// A PostgreSQL role name from a request: 1-63 bytes, no control characters (libpq cuts a
    /// string at NUL, so `u\0x` would name role `u`). Quoting happens where it is used.
    static func validateIdentifier(_ name: String, field: String) throws {
        guard !name.isEmpty, name.utf8.count <= 63, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else { throw APIError.badRequest("\(field) \"\(APIError.clip(name))\" is not a valid role name (1-63 bytes, no control characters)") }
    }

    /// Checks on the database that `roles` exist and that none of them is privileged
    /// (`CredentialBackend.groupStatus`): a credential is a member of its groups, and a static role hands
    /// out its user's password, so any of those would let its holder take over the database,
    /// the server's OS user or the broker's login. `field` names them in the error.
    func checkGroups(_ groups: [String], database: DatabaseConfig, field: String = "member_of") async throws {
        let found = try await groupStatus(groups, database: database, field: field)
        guard found.missing.isEmpty else {
            throw APIError.badRequest("role(s) \(found.missing.map { "\"\($0)\"" }.joined(separator: ", ")) do not exist in database \"\(database.name)\"")
        }
        guard found.privileged.isEmpty else { throw Self.privileged(found.privileged, field: field) }
    }

    /// The 400 for `groups` that carry power over the server or the cluster.
    static func privileged(_ groups: [String], field: String) -> APIError {
        APIError.badRequest(
            "\(field) \(groups.map { "\"\($0)\"" }.joined(separator: ", ")) is, or can become, a superuser, a role with CREATEROLE, REPLICATION or BYPASSRLS, a member of \(PostgresBackend.predefinedPrivilegedRoles.joined(separator: ", ")), or the broker's admin login: grant privileges to a plain group role instead")
    }

    /// Which of `groups` do not exist in `database`, and which carry power (see `checkGroups`).
    func groupStatus(_ groups: [String], database: DatabaseConfig, field: String = "member_of") async throws
        -> (missing: [String], privileged: [String])
    {
        for group in groups { try Self.validateIdentifier(group, field: field) }
        guard !groups.isEmpty else { return ([], []) }
        let found: (missing: [String], privileged: [String])
        do {
            found = try await backend(database).groupStatus(groups)
        } catch {
            if Self.isUnreachable(error) { throw Self.unreachable(database.name, error) }
            throw APIError.badRequest("cannot check \(field) in database \"\(database.name)\": \(Self.describe(error))")
        }
        return found
    }

    /// Seconds a role's passed group check stays valid before issuance checks it again.
    static let groupCheckInterval: Int64 = 300

    /// The key under which a role's group check is remembered: its database and groups.
    private static func groupKey(_ role: DatabaseRole) -> String {
        role.database + "\u{0}" + role.memberOf.joined(separator: "\u{0}")
    }

    /// Remembers that `role`'s groups just passed `checkGroups`.
    func groupsVerified(_ role: DatabaseRole) {
        let now = clock.seconds()
        verifiedGroups.withLock { $0[role.name] = (Self.groupKey(role), now) }
    }

    /// Checks `role`'s groups before a credential of it is issued, unless they passed within
    /// `groupCheckInterval`: a role from the config file (never checked when written), or one
    /// whose group a DBA has since made privileged, issues nothing with OS or cross-session power.
    func ensureGroupsChecked(_ role: DatabaseRole, database: DatabaseConfig) async throws {
        guard !role.memberOf.isEmpty else { return }
        let key = Self.groupKey(role), now = clock.seconds()
        if let checked = verifiedGroups.withLock({ $0[role.name] }), checked.key == key,
            now - checked.at < Self.groupCheckInterval
        {
            return
        }
        try await checkGroups(role.memberOf, database: database)
        verifiedGroups.withLock { $0[role.name] = (key, now) }
    }


    static func strings(_ value: JSONValue?, field: String) throws -> [String]? {
        guard let value, !value.isNull else { return nil }
        if let text = value.stringValue {
            // Vault accepts a comma-separated string (allowed_roles) or a JSON array as text.
            if text.hasPrefix("["), case .array(let items)? = try? JSONValue.parse(Array(text.utf8)) {
                return try strings(.array(items), field: field)
            }
            return text.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
        }
        guard let items = value.arrayValue else { throw APIError.badRequest("\(field) must be a list of strings") }
        return try items.map {
            guard let s = $0.stringValue else { throw APIError.badRequest("\(field) must be a list of strings") }
            return s
        }
    }

    /// Statements: a list, or one string holding several `;`-separated statements.
    static func statements(_ value: JSONValue?, field: String) throws -> [String]? {
        guard let value, !value.isNull else { return nil }
        // Blank statements are dropped: `""` would be a statement PostgreSQL refuses at issuance.
        if let text = value.stringValue, !text.hasPrefix("[") {
            return [decodingBase64(text)].filter { !$0.trimmingWhitespace().isEmpty }
        }
        return try strings(value, field: field)?.map(decodingBase64).filter { !$0.trimmingWhitespace().isEmpty }
    }

    /// Vault accepts statements base64-encoded: a string with no whitespace that decodes to
    /// UTF-8 is taken as that (SQL always has a space, so no statement is mistaken for one).
    private static func decodingBase64(_ text: String) -> String {
        guard !text.isEmpty, !text.contains(where: \.isWhitespace), let data = Data(base64Encoded: text),
            let decoded = String(data: data, encoding: .utf8), !decoded.isEmpty
        else { return text }
        return decoded
    }

    /// A share between 0 and 1 (`connection_budget`; 0 turns the budget off).
    static func share(_ value: JSONValue?) throws -> Double? {
        guard let value, !value.isNull else { return nil }
        let number: Double? = switch value {
        case .double(let d): d
        case .int(let i): Double(i)
        case .string(let s): Double(s)
        default: nil
        }
        guard let number, number >= 0, number <= 1 else {
            throw APIError.badRequest("connection_budget must be a share of max_connections between 0 and 1, e.g. 0.8 (0 turns it off)")
        }
        return number
    }

    static func integer(_ value: JSONValue?, field: String, range: ClosedRange<Int64>) throws -> Int64? {
        guard let value, !value.isNull else { return nil }
        guard let int = value.intValue ?? value.stringValue.flatMap({ Int64($0) }), range.contains(int) else {
            throw APIError.badRequest("\(field) must be an integer between \(range.lowerBound) and \(range.upperBound)")
        }
        return int
    }

    // MARK: Storage

    /// Names of the configured databases.
    func configuredNames() async throws -> [String] {
        try await barrier.list("database/config/").filter { !$0.hasSuffix("/") }
    }

    /// The stored config (its plaintext cached by the barrier; decoded on every call, as it
    /// holds the admin password).
    func config(_ name: String) async throws -> DatabaseConfig? {
        guard let bytes = try await barrier.get("database/config/\(name)") else { return nil }
        return try JSONDecoder().decode(DatabaseConfig.self, from: Data(bytes))
    }

    /// The stored config's settings: the config with its secrets (the admin password, a
    /// pending one) blanked, so that it can stay decoded in the barrier's cache. For the hot
    /// paths that only read settings (issuance); whatever connects gets the password through
    /// `backend(_:)`, which reads `config(_:)`.
    func settings(_ name: String) async throws -> DatabaseConfig? {
        try await barrier.get("database/config/\(name)") { bytes in
            var config = try JSONDecoder().decode(DatabaseConfig.self, from: Data(bytes))
            config.password = ""
            config.pendingPassword = nil
            return config
        }
    }

    /// The stored role (cached by the barrier, decoded once: it holds no secret).
    func role(_ name: String) async throws -> DatabaseRole? {
        try await barrier.get("database/roles/\(name)") { try JSONDecoder().decode(DatabaseRole.self, from: Data($0)) }
    }

    /// The backend of `config`'s database. A new one is built from the config as stored now,
    /// not from the caller's copy: that copy may predate a root rotation or a config write, and
    /// admin connections with a stale password would lock the broker out.
    func backend(_ config: DatabaseConfig) async throws -> any CredentialBackend {
        while true {
            let (cached, generation) = backends.withLock { ($0.backends[config.name], $0.generation[config.name, default: 0]) }
            if let cached { return cached }
            guard let current = try await self.config(config.name) else {
                throw APIError.badRequest("database \"\(APIError.clip(config.name))\" is not configured")
            }
            let candidate = try CredentialBackends.make(current, settings: settings)
            let kept: (any CredentialBackend)? = backends.withLock { state in
                guard state.generation[config.name, default: 0] == generation else { return nil }  // changed meanwhile
                if let existing = state.backends[config.name] { return existing }
                state.backends[config.name] = candidate
                return candidate
            }
            if kept !== candidate { await candidate.close() }
            if let kept { return kept }
        }
    }

    /// Before the login's password changes: the backend of `name` falls back to `password`
    /// when the current one no longer opens a connection.
    func passwordChanging(_ name: String, to password: String) async {
        await backends.withLock { $0.backends[name] }?.adminPasswordChanging(to: password)
    }

    /// After the login's password changed: the backend of `name` (if any) opens later
    /// connections with `password`, and a backend being built from an older config is discarded.
    func passwordChanged(_ name: String, to password: String) async {
        let backend = backends.withLock { state in
            state.generation[name, default: 0] += 1
            return state.backends[name]
        }
        await backend?.adminPasswordChanged(to: password)
    }

    /// Stores `config` (encrypted).
    func store(_ config: DatabaseConfig) async throws {
        try await barrier.put("database/config/\(config.name)", try JSONEncoder().encode(config).bytes)
    }

    func dropPool(_ name: String) async {
        let backend = backends.withLock { state in
            state.generation[name, default: 0] += 1
            return state.backends.removeValue(forKey: name)
        }
        await backend?.close()
    }

    /// Closes every backend's connections (on seal and shutdown).
    func closeAll() async {
        let all = backends.withLock { state -> [any CredentialBackend] in
            defer {
                for name in state.backends.keys { state.generation[name, default: 0] += 1 }
                state.backends = [:]
            }
            return Array(state.backends.values)
        }
        for backend in all { await backend.close() }
    }

    /// Whether `error` means the database could not be reached (no connection, or it dropped),
    /// as opposed to a statement it refused.
    static func isUnreachable(_ error: any Error) -> Bool {
        PostgresBackend.classify(error).kind == .unreachable
    }

    /// The answer when database `name` cannot be reached: 502 with a message that says so (no
    /// connection details), and a hint to retry.
    static func unreachable(_ name: String, _ error: any Error) -> APIError {
        APIError(status: 502, ["database \"\(APIError.clip(name))\" is unreachable; try again later"],
                 detail: String(reflecting: error), retryAfter: 5)
    }

    /// A client-safe message for a backend's failure (for PostgreSQL: SQLSTATE and message).
    static func describe(_ error: any Error) -> String {
        if let error = error as? CredentialBackendError { return error.message }
        if PostgresBackend.isOwnError(error) { return PostgresBackend.classify(error).message }
        return "\(error)"
    }

    /// Why the config file's role `declared` is refused, naming its file and line: its
    /// `member_of` holds a group with power over the server (the check the API makes when a
    /// role is written). Nil when it passes, or when its database cannot be asked now:
    /// issuance checks every role again before it creates anything. A role refused after it
    /// was stored is deleted again.
    private func refusal(of declared: DeclaredRole) async throws -> String? {
        guard !declared.memberOf.isEmpty, let database = try await config(declared.database) else { return nil }
        let privileged: [String]
        do {
            privileged = try await groupStatus(declared.memberOf, database: database).privileged
        } catch {
            logger.warning("cannot check a declared role's member_of now; checked again at issuance",
                           metadata: ["role": "\(declared.name)", "error": "\(String(reflecting: error))"])
            return nil
        }
        guard !privileged.isEmpty else { return nil }
        let place = declared.source.isEmpty ? "the config file" : declared.source
        return "\(place): role \"\(declared.name)\" refused: " + Self.privileged(privileged, field: "member_of").messages.joined()
    }

    /// Waits for the check of the config file's roles that the last unseal started (tests).
    func declaredRolesChecked() async {
        await declaredCheck.withLock { $0 }?.value
    }

    /// Why a role of the config file was refused at the last unseal, if it was.
    func declaredRefusal(_ name: String) -> String? {
        refusedDeclared.withLock { $0[name] }
    }

    /// Stores the databases and roles declared in the config file (at every unseal), so the
    /// file stays the source of truth for what it declares.
    func applyDeclared(_ databases: [DeclaredDatabase], _ roles: [DeclaredRole]) async throws {
        for declared in databases {
            let stored = try await config(declared.name)
            var password = ""
            if let stored, stored.lastRootRotation != nil {
                // The admin password was rotated: only the stored one is valid now.
                password = stored.password
            } else if let file = declared.passwordFile {
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw APIError.internalError("cannot read password_file \(file) of database \(declared.name)")
                }
                password = String(decoding: data, as: UTF8.self).trimmingWhitespace()
            }
            let config = DatabaseConfig(
                name: declared.name, connectionURL: declared.connectionURL, password: password,
                allowedRoles: declared.allowedRoles, maxConnections: declared.maxConnections,
                ownerOnRevoke: declared.ownerOnRevoke, tlsInsecureAllow: declared.tlsInsecureAllow, verifyConnection: false,
                rootRotationSchedule: declared.rootRotationSchedule, lastRootRotation: stored?.lastRootRotation,
                pendingPassword: stored?.pendingPassword, connectionBudget: declared.connectionBudget)
            try await barrier.put("database/config/\(declared.name)", try JSONEncoder().encode(config).bytes)
            await dropPool(declared.name)
        }
        for declared in roles {
            refusedDeclared.withLock { $0[declared.name] = nil }
            let role = DatabaseRole(declared: declared)
            try await barrier.put("database/roles/\(declared.name)", try JSONEncoder().encode(role).bytes)
        }
        if !databases.isEmpty || !roles.isEmpty {
            logger.info("applied declared databases and roles", metadata: ["databases": "\(databases.count)", "roles": "\(roles.count)"])
        }
        // The groups are checked in PostgreSQL beside serving, not before it: an unseal never
        // waits for a database (issuance checks every role again before it creates anything).
        let checking = roles.filter { !$0.memberOf.isEmpty }
        let check = Task {
            for declared in checking {
                guard let refusal = try? await self.refusal(of: declared) else { continue }
                self.logger.error("a role declared in the config file was refused", metadata: ["error": "\(refusal)"])
                self.refusedDeclared.withLock { $0[declared.name] = refusal }
                try? await self.barrier.delete("database/roles/\(declared.name)")
            }
        }
        declaredCheck.withLock { $0 = check }
    }

    // MARK: Routing

    /// `database/config`, `database/roles`, `database/reset`: `relativePath` is the canonical
    /// path below `database/` (a list ends in `/`; nothing else does).
    func handle(_ request: LogicalRequest, relativePath: String, caller: Caller) async throws -> LogicalResponse {
        let (section, name) = RequestPath.splitFirst(relativePath)
        switch (section, request.operation) {
        case ("config", .list) where name.isEmpty: return try await list("database/config/")
        case ("roles", .list) where name.isEmpty: return try await list("database/roles/")
        case ("config", .read): return try await readConfig(name)
        case ("config", .update):
            try CustomStatements.requireSudo(request.data, fields: ["root_rotation_statements"], caller: caller,
                                             path: request.path)
            return try await writeConfig(name, request.data)
        case ("config", .delete): return try await deleteConfig(name)
        case ("roles", .read): return try await readRole(name)
        case ("roles", .update):
            try CustomStatements.requireSudo(request.data, fields: CustomStatements.roleFields, caller: caller,
                                             path: request.path)
            return try await writeRole(name, request.data, sudo: caller.acl.hasSudo(on: request.path))
        case ("roles", .delete): return try await deleteRole(name)
        case ("reset", .update):
            try Names.validate(name, kind: "database")
            await dropPool(name)
            return .noContent
        case ("config", _), ("roles", _), ("reset", _): throw APIError.unsupportedOperation
        default: throw APIError.unsupportedPath(relativePath)
        }
    }

    private func list(_ prefix: String) async throws -> LogicalResponse {
        let keys = try await barrier.list(prefix).filter { !$0.hasSuffix("/") }
        guard !keys.isEmpty else { throw APIError.notFound }
        return .envelope(Envelope(data: ["keys": .strings(keys)]))
    }

    private func readConfig(_ name: String) async throws -> LogicalResponse {
        try Names.validate(name, kind: "database")
        guard let config = try await config(name) else { throw APIError.notFound }
        let user = (try? CredentialBackends.type(of: config.plugin))?.adminLogin(config) ?? ""
        return .envelope(Envelope(data: [
            "plugin_name": .string(config.plugin ?? CredentialBackends.defaultPlugin), "plugin_version": "",
            "connection_details": [
                "connection_url": .string(config.connectionURL), "username": .string(user),
                "max_open_connections": .int(Int64(config.maxConnections)),
                "owner_on_revoke": .string(config.ownerOnRevoke), "tls_insecure_allow": .bool(config.tlsInsecureAllow),
                "connection_budget": .double(config.connectionBudget ?? 0.8),
            ],
            "allowed_roles": .strings(config.allowedRoles),
            "root_credentials_rotate_statements": .strings(config.rootRotationStatements ?? []),
            "custom_statements": .bool(!(config.rootRotationStatements ?? []).isEmpty),
            "root_rotation_schedule": config.rootRotationSchedule.map { .string($0) } ?? "",
            "password_policy": "", "verify_connection": .bool(config.verifyConnection),
        ]))
    }

    private func writeConfig(_ name: String, _ data: [String: JSONValue]) async throws -> LogicalResponse {
        try Names.validate(name, kind: "database")
        let existing = try await config(name)
        if let plugin = data["plugin_name"], plugin.stringValue == nil, !plugin.isNull {
            throw APIError.badRequest("plugin_name must be a string")
        }
        let plugin = data["plugin_name"]?.stringValue ?? existing?.plugin
        let backendType = try CredentialBackends.type(of: plugin)
        guard var url = data["connection_url"]?.stringValue ?? existing?.connectionURL else {
            throw APIError.badRequest("connection_url is required")
        }
        // Vault-style templates: {{username}} is filled in, {{password}} is dropped (the password
        // is passed to libpq separately and never formatted into a URL).
        if let username = data["username"]?.stringValue {
            url = url.replacingOccurrences(of: "{{username}}", with: username)
        }
        url = url.replacingOccurrences(of: ":{{password}}", with: "")
        guard !url.contains("{{") else { throw APIError.badRequest("connection_url has an unfilled template; set username") }
        let password = data["password"]?.stringValue ?? existing?.password ?? ""
        let config = DatabaseConfig(
            name: name, connectionURL: url, password: password,
            allowedRoles: try Self.strings(data["allowed_roles"], field: "allowed_roles") ?? existing?.allowedRoles ?? [],
            maxConnections: Int(try Self.integer(data["max_open_connections"] ?? data["max_connections"],
                                                 field: "max_open_connections", range: 1...64) ?? Int64(existing?.maxConnections ?? 4)),
            ownerOnRevoke: data["owner_on_revoke"]?.stringValue ?? existing?.ownerOnRevoke ?? "",
            tlsInsecureAllow: try JSONValue.flag(data["tls_insecure_allow"], field: "tls_insecure_allow") ?? existing?.tlsInsecureAllow ?? false,
            verifyConnection: try JSONValue.flag(data["verify_connection"], field: "verify_connection") ?? true,
            rootRotationSchedule: data["root_rotation_schedule"].flatMap { $0.isNull ? nil : $0.stringValue }
                .flatMap { $0.isEmpty ? nil : $0 } ?? existing?.rootRotationSchedule,
            lastRootRotation: data["password"] == nil ? existing?.lastRootRotation : nil,
            pendingPassword: data["password"] == nil ? existing?.pendingPassword : nil,
            connectionBudget: try Self.share(data["connection_budget"]) ?? existing?.connectionBudget,
            rootRotationStatements: try Self.statements(data["root_rotation_statements"], field: "root_rotation_statements")
                ?? existing?.rootRotationStatements,
            plugin: plugin)
        if let schedule = config.rootRotationSchedule { try StaticRoleManager.checkSchedule(schedule, timeZone: nil) }
        if let owner = data["owner_on_revoke"], !owner.isNull, owner.stringValue == nil {
            throw APIError.badRequest("owner_on_revoke must be a role name")
        }
        if !config.ownerOnRevoke.isEmpty { try Self.validateIdentifier(config.ownerOnRevoke, field: "owner_on_revoke") }
        try backendType.validate(config)
        if config.verifyConnection {
            let backend = try backendType.init(config: config, settings: settings)
            do {
                try await backend.verify()
            } catch {
                await backend.close()
                throw error
            }
            await backend.close()
        }
        try await barrier.put("database/config/\(name)", try JSONEncoder().encode(config).bytes)
        await dropPool(name)
        logger.info("database configured", metadata: ["database": "\(name)"])
        return .noContent
    }

    private func deleteConfig(_ name: String) async throws -> LogicalResponse {
        try Names.validate(name, kind: "database")
        try await barrier.delete("database/config/\(name)")
        await dropPool(name)
        return .noContent
    }

    private func readRole(_ name: String) async throws -> LogicalResponse {
        try Names.validate(name, kind: "role")
        guard let role = try await role(name) else { throw APIError.notFound }
        return .envelope(Envelope(data: [
            "db_name": .string(role.database), "creation_statements": .strings(role.creationStatements),
            "revocation_statements": .strings(role.revocationStatements),
            "rollback_statements": .strings(role.rollbackStatements), "renew_statements": .strings(role.renewStatements),
            "default_ttl": .int(role.defaultTTL), "max_ttl": .int(role.maxTTL), "credential_type": "password",
            "member_of": .strings(role.memberOf), "connection_limit": .int(Int64(role.connectionLimit)),
            "coalesce": .bool(role.coalesce ?? false), "custom_statements": .bool(role.hasCustomStatements),
        ]))
    }

    /// `sudo`: whether the writer holds sudo on the role's path (custom SQL needs it; see
    /// `CustomStatements`).
    private func writeRole(_ name: String, _ data: [String: JSONValue], sudo: Bool) async throws -> LogicalResponse {
        try Names.validate(name, kind: "role")
        let existing = try await role(name)
        guard let databaseName = data["db_name"]?.stringValue ?? existing?.database else {
            throw APIError.badRequest("db_name is required")
        }
        // Moving a role's custom SQL to another database runs it there: that is writing it anew.
        if let existing, existing.hasCustomStatements, existing.database != databaseName, !sudo {
            throw CustomStatements.denied(field: "db_name of a role with custom statements", path: "database/roles/\(name)")
        }
        guard let database = try await config(databaseName) else {
            throw APIError.badRequest("database \"\(APIError.clip(databaseName))\" is not configured")
        }
        let defaultTTL = try DurationParser.seconds(data["default_ttl"], field: "default_ttl") ?? existing?.defaultTTL ?? 3600
        let maxTTL = try DurationParser.seconds(data["max_ttl"], field: "max_ttl") ?? existing?.maxTTL ?? 86400
        let role = DatabaseRole(
            name: name, database: databaseName,
            memberOf: try Self.strings(data["member_of"], field: "member_of") ?? existing?.memberOf ?? [],
            defaultTTL: defaultTTL, maxTTL: maxTTL,
            connectionLimit: Int(try Self.integer(data["connection_limit"], field: "connection_limit", range: -1...10000)
                ?? Int64(existing?.connectionLimit ?? 5)),
            creationStatements: try Self.statements(data["creation_statements"], field: "creation_statements")
                ?? existing?.creationStatements ?? [],
            revocationStatements: try Self.statements(data["revocation_statements"], field: "revocation_statements")
                ?? existing?.revocationStatements ?? [],
            renewStatements: try Self.statements(data["renew_statements"], field: "renew_statements")
                ?? existing?.renewStatements ?? [],
            rollbackStatements: try Self.statements(data["rollback_statements"], field: "rollback_statements")
                ?? existing?.rollbackStatements ?? [],
            coalesce: try JSONValue.flag(data["coalesce"], field: "coalesce") ?? existing?.coalesce)
        try role.validate(connectionBudget: database.connectionBudget)
        try await checkGroups(role.memberOf, database: database)
        groupsVerified(role)
        var warnings: [String] = []
        if role.creationStatements.contains(where: Self.grantsObjectsToUser) {
            let warning = "a creation statement grants object privileges to {{name}}: grant them to a group role and use member_of instead (per-user grants grow the ACL until GRANT fails)"
            warnings.append(warning)
            logger.warning("role \(name): \(warning)")
        }
        try await barrier.put("database/roles/\(name)", try JSONEncoder().encode(role).bytes)
        return warnings.isEmpty ? .noContent : .envelope(Envelope(warnings: warnings))
    }

    /// `GRANT <privileges> ON … TO "{{name}}"` (but not `GRANT <group> TO …`, which is membership).
    static func grantsObjectsToUser(_ statement: String) -> Bool {
        let text = statement.lowercased()
        guard let grant = text.range(of: "grant "), let on = text.range(of: " on ", range: grant.upperBound..<text.endIndex)
        else { return false }
        return text[on.upperBound...].contains("{{name}}")
    }

    private func deleteRole(_ name: String) async throws -> LogicalResponse {
        try Names.validate(name, kind: "role")
        try await barrier.delete("database/roles/\(name)")
        return .noContent
    }
}
