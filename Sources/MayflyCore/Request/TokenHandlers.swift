import Logging
import Foundation

/// `auth/token/`: lookup-self, lookup, lookup-accessor, create, create/:role, roles/:name,
/// renew-self, renew, revoke-self, revoke, revoke-accessor, with Vault's bodies and answers.
enum TokenHandlers {
    static func handle(_ broker: Broker, _ request: LogicalRequest, _ caller: Caller, _ route: String)
        async throws -> LogicalResponse
    {
        let tokens = broker.tokens
        if route == "roles" || route.hasPrefix("roles/") {
            return try await roles(broker, request, caller, name: String(route.dropFirst("roles".count).drop { $0 == "/" }))
        }
        if route.hasPrefix("create/") {
            guard request.operation == .update else { throw APIError.unsupportedOperation }
            let name = String(route.dropFirst("create/".count))
            guard let role = try await role(broker, name) else {
                throw APIError.badRequest("unknown role \"\(APIError.clip(name))\"")
            }
            return try await create(broker, request, caller, orphan: false, role: role)
        }
        switch (route, request.operation) {
        case ("lookup-self", .read), ("lookup-self", .update):
            let (token, entry) = try caller.requireToken()
            return .envelope(Envelope(data: lookupData(entry, token: token, now: broker.clock.now())))
        case ("lookup", .read), ("lookup", .update):
            guard let token = request.data["token"]?.stringValue, !token.isEmpty else {
                throw APIError.badRequest("missing token to look up")
            }
            // Vault answers 403 "bad token" for a token it does not know (token_store.go handleLookup).
            guard let entry = try await tokens.lookup(token: token) else { throw APIError(status: 403, ["bad token"]) }
            return .envelope(Envelope(data: lookupData(entry, token: token, now: broker.clock.now())))
        case ("lookup-accessor", .update):
            guard let accessor = request.data["accessor"]?.stringValue,
                let entry = try await tokens.lookup(accessor: accessor)
            else { throw APIError.badRequest("invalid accessor") }
            return .envelope(Envelope(data: lookupData(entry, token: nil, now: broker.clock.now())))
        case ("create", .update), ("create-orphan", .update):
            return try await create(broker, request, caller, orphan: route == "create-orphan")
        case ("renew-self", .update):
            let (token, entry) = try caller.requireToken()
            try broker.checkRenewal(of: entry, request)
            let renewed = try await tokens.renew(entry, increment: try increment(request))
            return .envelope(Envelope(auth: auth(renewed, token: token)))
        case ("renew", .update):
            guard let token = request.data["token"]?.stringValue, let entry = try await tokens.lookup(token: token) else {
                throw APIError.badRequest("invalid token")
            }
            try broker.checkRenewal(of: entry, request)
            let renewed = try await tokens.renew(entry, increment: try increment(request))
            return .envelope(Envelope(auth: auth(renewed, token: token)))
        case ("revoke-self", .update):
            try await tokens.revoke(try caller.requireToken().entry)
            return .noContent
        case ("revoke", .update):
            guard let token = request.data["token"]?.stringValue else { throw APIError.badRequest("missing token") }
            if let entry = try await tokens.lookup(token: token) { try await tokens.revoke(entry) }
            return .noContent
        case ("revoke-accessor", .update):
            guard let accessor = request.data["accessor"]?.stringValue else {
                throw APIError.badRequest("missing accessor")
            }
            if let entry = try await tokens.lookup(accessor: accessor) { try await tokens.revoke(entry) }
            return .noContent
        case ("lookup-self", _), ("lookup", _), ("lookup-accessor", _), ("create", _), ("create-orphan", _),
            ("renew-self", _), ("renew", _), ("revoke-self", _), ("revoke", _), ("revoke-accessor", _):
            throw APIError.unsupportedOperation
        default:
            throw APIError.unsupportedPath(route)
        }
    }

    private static func increment(_ request: LogicalRequest) throws -> Int64? {
        try DurationParser.seconds(request.data["increment"], field: "increment")
    }

    static func stringList(_ value: JSONValue?, field: String) throws -> [String]? {
        guard let value, !value.isNull else { return nil }
        if let text = value.stringValue {
            return text.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }
        }
        guard let items = value.arrayValue else { throw APIError.badRequest("\(field) must be a list of strings") }
        return try items.map {
            guard let s = $0.stringValue else { throw APIError.badRequest("\(field) must be a list of strings") }
            return s
        }
    }

    // MARK: Roles

    private static func role(_ broker: Broker, _ name: String) async throws -> TokenRole? {
        guard !name.isEmpty, let bytes = try await broker.barrier.get(TokenRole.prefix + name) else { return nil }
        return try JSONDecoder().decode(TokenRole.self, from: Data(bytes))
    }

    /// `auth/token/roles` (list) and `auth/token/roles/:name` (read, write, delete).
    private static func roles(_ broker: Broker, _ request: LogicalRequest, _ caller: Caller, name: String) async throws
        -> LogicalResponse
    {
        switch (name.isEmpty, request.operation) {
        case (true, .list), (true, .read):
            let names = try await broker.barrier.list(TokenRole.prefix).filter { !$0.hasSuffix("/") }
            guard !names.isEmpty else { throw APIError.notFound }
            return .envelope(Envelope(data: ["keys": .strings(names.sorted())]))
        case (false, .read):
            guard let role = try await role(broker, name) else { throw APIError.notFound }
            return .envelope(Envelope(data: role.json))
        case (false, .update):
            let role = try TokenRole.parse(name, request.data, existing: try await role(broker, name))
            try PolicyGrant.check(role.allowedPolicies, writer: caller, path: request.path, target: .storedRole,
                                  field: "allowed_policies")
            try await broker.barrier.put(TokenRole.prefix + name, try JSONEncoder().encode(role).bytes)
            broker.logger.info("token role written", metadata: ["role": "\(name)"])
            return .noContent
        case (false, .delete):
            try Names.validate(name, kind: "token role")
            try await broker.barrier.delete(TokenRole.prefix + name)
            return .noContent
        default:
            throw APIError.unsupportedOperation
        }
    }

    // MARK: Create

    private static func create(_ broker: Broker, _ request: LogicalRequest, _ caller: Caller, orphan: Bool,
                               role: TokenRole? = nil) async throws -> LogicalResponse
    {
        let data = request.data
        if let type = data["type"]?.stringValue, !type.isEmpty, type != "service", type != "default" {
            throw APIError.badRequest("only service tokens are supported")
        }
        if let period = data["period"], !period.isNull, (try DurationParser.seconds(period, field: "period")) != 0 {
            throw APIError.badRequest("periodic tokens are not supported")
        }
        if let id = data["id"]?.stringValue, !id.isEmpty {
            throw APIError.badRequest("custom token ids are not supported")
        }
        // A token carries the policies of whoever created it, never more (PolicyGrant), unless a
        // role allows others: its writer answered to PolicyGrant when it wrote the role.
        let requested = try stringList(data["policies"], field: "policies")
        let sudo = caller.acl.hasSudo(on: request.path)
        var policies: [String]
        if let role {
            policies = try role.policies(requested: requested, creator: caller.policies, creatorIsRoot: caller.acl.isRoot)
            if policies.contains("root") {
                throw APIError(status: 403, ["permission denied: a token role never creates root tokens"])
            }
        } else {
            policies = requested ?? caller.policies
            try PolicyGrant.check(policies, writer: caller, path: request.path, target: .token, field: "policies")
        }
        let noDefault = (try JSONValue.flag(data["no_default_policy"], field: "no_default_policy") ?? false) || role?.noDefaultPolicy == true
        if !noDefault && !policies.contains("default") && !policies.contains("root") { policies.append("default") }
        policies = Array(Set(policies)).sorted()
        var meta: [String: String]?
        if let raw = data["meta"], !raw.isNull {
            guard let object = raw.objectValue else { throw APIError.badRequest("meta must be an object of strings") }
            meta = try object.mapValues {
                guard let s = $0.stringValue else { throw APIError.badRequest("meta values must be strings") }
                return s
            }
        }
        let requestedOrphan = try JSONValue.flag(data["no_parent"], field: "no_parent") ?? false
        if requestedOrphan && !sudo && !orphan {
            throw APIError.badRequest("root or sudo privileges required to create orphan token")
        }
        let noParent = orphan || requestedOrphan || role?.orphan == true
        var numUses: Int64 = 0
        if let raw = data["num_uses"], !raw.isNull {
            guard let n = raw.intValue, n >= 0 else { throw APIError.badRequest("num_uses must be a non-negative integer") }
            numUses = n
        }
        let ttl = try DurationParser.seconds(data["ttl"] ?? data["lease"], field: "ttl")
        var explicitMax = try DurationParser.seconds(data["explicit_max_ttl"], field: "explicit_max_ttl") ?? 0
        var renewable = try JSONValue.flag(data["renewable"], field: "renewable") ?? true
        var path = request.path
        if let role {
            // The role's limits bound whatever the request asks for.
            if role.explicitMaxTTL > 0 { explicitMax = explicitMax == 0 ? role.explicitMaxTTL : min(explicitMax, role.explicitMaxTTL) }
            if role.numUses > 0 { numUses = numUses == 0 ? role.numUses : min(numUses, role.numUses) }
            renewable = renewable && role.renewable
            path = "auth/token/create/\(role.name)" + (role.pathSuffix.isEmpty ? "" : "/" + role.pathSuffix)
        }
        var displayName = data["display_name"]?.stringValue ?? ""
        displayName = "token" + (displayName.isEmpty ? "" : "-" + String(displayName.prefix(64)))
        let warnings = policies.filter { !broker.policies.exists($0) }.map { "Policy \"\($0)\" does not exist" }
        let (token, entry) = try await broker.tokens.create(TokenRequest(
            policies: policies, meta: meta, displayName: displayName, ttl: ttl, explicitMaxTTL: explicitMax,
            renewable: renewable, numUses: numUses, path: path,
            parentHash: noParent ? nil : caller.entry?.idHash,
            parentExpireTime: noParent ? nil : caller.entry?.expireTime, identity: caller.identityName))
        // No accessor in the log: it is a handle that can look up and revoke the token.
        broker.logger.info("token created", metadata: ["policies": "\(policies)"])
        return .envelope(Envelope(warnings: warnings, auth: auth(entry, token: token)))
    }

    static func auth(_ entry: TokenEntry, token: String) -> JSONValue {
        [
            "client_token": .string(token), "accessor": .string(entry.accessor),
            "policies": .strings(entry.policies), "token_policies": .strings(entry.policies),
            "metadata": entry.meta.map { .object($0.mapValues { .string($0) }) } ?? .null,
            "lease_duration": .int(entry.grantedTTL), "renewable": .bool(entry.renewable), "entity_id": "",
            "token_type": "service", "orphan": .bool(entry.isOrphan), "mfa_requirement": .null,
            "num_uses": .int(entry.numUses),
        ]
    }

    static func lookupData(_ entry: TokenEntry, token: String?, now: Date) -> JSONValue {
        [
            "accessor": .string(entry.accessor), "creation_time": .int(entry.creationTime),
            "creation_ttl": .int(entry.creationTTL), "display_name": .string(entry.displayName), "entity_id": "",
            "expire_time": entry.expireTime.map { .string(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval($0)))) } ?? .null,
            "explicit_max_ttl": .int(entry.explicitMaxTTL), "id": .string(token ?? ""),
            "issue_time": .string(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval(entry.creationTime)))),
            "meta": entry.meta.map { .object($0.mapValues { .string($0) }) } ?? .null, "num_uses": .int(entry.numUses),
            "orphan": .bool(entry.isOrphan), "path": .string(entry.path), "policies": .strings(entry.policies),
            "renewable": .bool(entry.renewable), "ttl": .int(entry.ttl(now: now)), "type": "service",
            "last_renewal_time": entry.lastRenewal.map { .int($0) } ?? .null,
            "role": .string(entry.path.hasPrefix("auth/token/create/")
                ? String(entry.path.dropFirst("auth/token/create/".count).prefix { $0 != "/" }) : ""),
        ]
    }
}
