import Logging
import Foundation

/// `auth/token/`: lookup-self, lookup, lookup-accessor, create, renew-self, renew,
/// revoke-self, revoke, revoke-accessor (vault-api.md §2.11).
enum TokenHandlers {
    static func handle(_ broker: Broker, _ request: LogicalRequest, _ caller: Caller, _ route: String)
        async throws -> LogicalResponse
    {
        let tokens = broker.tokens
        switch (route, request.operation) {
        case ("lookup-self", .read), ("lookup-self", .update):
            let (token, entry) = try caller.requireToken()
            return .envelope(Envelope(data: lookupData(entry, token: token)))
        case ("lookup", .read), ("lookup", .update):
            guard let token = request.data["token"]?.stringValue, !token.isEmpty else {
                throw APIError.badRequest("missing token to look up")
            }
            guard let entry = try await tokens.lookup(token: token) else { throw APIError.badRequest("bad token") }
            return .envelope(Envelope(data: lookupData(entry, token: token)))
        case ("lookup-accessor", .update):
            guard let accessor = request.data["accessor"]?.stringValue,
                let entry = try await tokens.lookup(accessor: accessor)
            else { throw APIError.badRequest("invalid accessor") }
            return .envelope(Envelope(data: lookupData(entry, token: nil)))
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

    private static func create(_ broker: Broker, _ request: LogicalRequest, _ caller: Caller, orphan: Bool)
        async throws -> LogicalResponse
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
        // A token carries the policies of whoever created it, never more.
        let parentPolicies = caller.policies
        var policies = try stringList(data["policies"], field: "policies") ?? parentPolicies.filter { $0 != "root" || caller.acl.isRoot }
        if !caller.acl.isRoot {
            let allowed = Set(parentPolicies)
            if let outside = policies.first(where: { !allowed.contains($0) && $0 != "default" }) {
                throw APIError.badRequest("child policies must be subset of parent's policies; \"\(outside)\" is not")
            }
        }
        let noDefault = data["no_default_policy"]?.boolValue ?? false
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
        let noParent = orphan || (data["no_parent"]?.boolValue ?? false)
        if noParent && !caller.acl.isRoot && !orphan {
            throw APIError.badRequest("root or sudo privileges required to create orphan token")
        }
        var numUses: Int64 = 0
        if let raw = data["num_uses"], !raw.isNull {
            guard let n = raw.intValue, n >= 0 else { throw APIError.badRequest("num_uses must be a non-negative integer") }
            numUses = n
        }
        let ttl = try DurationParser.seconds(data["ttl"] ?? data["lease"], field: "ttl")
        let explicitMax = try DurationParser.seconds(data["explicit_max_ttl"], field: "explicit_max_ttl") ?? 0
        var displayName = data["display_name"]?.stringValue ?? ""
        displayName = "token" + (displayName.isEmpty ? "" : "-" + String(displayName.prefix(64)))
        let warnings = policies.filter { !broker.policies.exists($0) }.map { "Policy \"\($0)\" does not exist" }
        let (token, entry) = try await broker.tokens.create(TokenRequest(
            policies: policies, meta: meta, displayName: displayName, ttl: ttl, explicitMaxTTL: explicitMax,
            renewable: data["renewable"]?.boolValue ?? true, numUses: numUses, path: request.path,
            parentHash: noParent ? nil : caller.entry?.idHash, identity: caller.identityName))
        broker.logger.info("token created", metadata: ["accessor": "\(entry.accessor)", "policies": "\(policies)"])
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

    static func lookupData(_ entry: TokenEntry, token: String?) -> JSONValue {
        [
            "accessor": .string(entry.accessor), "creation_time": .int(entry.creationTime),
            "creation_ttl": .int(entry.creationTTL), "display_name": .string(entry.displayName), "entity_id": "",
            "expire_time": entry.expireTime.map { .string(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval($0)))) } ?? .null,
            "explicit_max_ttl": .int(entry.explicitMaxTTL), "id": .string(token ?? ""),
            "issue_time": .string(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval(entry.creationTime)))),
            "meta": entry.meta.map { .object($0.mapValues { .string($0) }) } ?? .null, "num_uses": .int(entry.numUses),
            "orphan": .bool(entry.isOrphan), "path": .string(entry.path), "policies": .strings(entry.policies),
            "renewable": .bool(entry.renewable), "ttl": .int(entry.ttl()), "type": "service",
            "last_renewal_time": entry.lastRenewal.map { .int($0) } ?? .null,
        ]
    }
}
