import Foundation

/// A token role (`auth/token/roles/:name`, used by `auth/token/create/:name`, as in Vault): which policies tokens created through it may carry, whether they are orphans or
/// renewable, and a cap on their lifetime. Stored in the barrier at `token/roles/<name>`.
struct TokenRole: Codable, Sendable, Equatable {
    var name: String
    /// When not empty, the only policies (besides `default`) a token of this role may carry,
    /// even ones its creator does not hold; when empty, the creator's policies apply.
    var allowedPolicies: [String] = []
    /// Policies a token of this role may never carry.
    var disallowedPolicies: [String] = []
    var orphan = false
    var renewable = true
    /// Seconds; 0 means no cap beyond the server's `max_lease_ttl`.
    var explicitMaxTTL: Int64 = 0
    /// Appended to the token's path (`auth/token/create/<name>/<suffix>`).
    var pathSuffix = ""
    var noDefaultPolicy = false
    var numUses: Int64 = 0

    static let prefix = "token/roles/"

    /// A role from a write body, on top of `existing` (Vault's update semantics). Features
    /// Mayfly does not have are refused rather than silently ignored.
    static func parse(_ name: String, _ data: [String: JSONValue], existing: TokenRole?) throws -> TokenRole {
        try Names.validate(name, kind: "token role")
        for field in ["allowed_policies_glob", "disallowed_policies_glob", "token_bound_cidrs", "allowed_entity_aliases"] {
            if let list = try TokenHandlers.stringList(data[field], field: field), !list.isEmpty {
                throw APIError.badRequest("\(field) is not supported")
            }
        }
        for field in ["period", "token_period"] where (try DurationParser.seconds(data[field], field: field) ?? 0) != 0 {
            throw APIError.badRequest("periodic tokens are not supported")
        }
        if let type = data["token_type"]?.stringValue, !["", "service", "default", "default-service"].contains(type) {
            throw APIError.badRequest("only service tokens are supported")
        }
        var role = existing ?? TokenRole(name: name)
        if let list = try TokenHandlers.stringList(data["allowed_policies"], field: "allowed_policies") {
            role.allowedPolicies = Array(Set(list)).sorted()
        }
        if let list = try TokenHandlers.stringList(data["disallowed_policies"], field: "disallowed_policies") {
            role.disallowedPolicies = Array(Set(list)).sorted()
        }
        if let flag = try JSONValue.flag(data["orphan"], field: "orphan") { role.orphan = flag }
        if let flag = try JSONValue.flag(data["renewable"], field: "renewable") { role.renewable = flag }
        if let flag = try JSONValue.flag(data["token_no_default_policy"], field: "token_no_default_policy") {
            role.noDefaultPolicy = flag
        }
        if let seconds = try DurationParser.seconds(data["token_explicit_max_ttl"] ?? data["explicit_max_ttl"],
                                                    field: "token_explicit_max_ttl") {
            role.explicitMaxTTL = seconds
        }
        if let value = data["token_num_uses"], !value.isNull {
            guard let uses = value.intValue, uses >= 0 else {
                throw APIError.badRequest("token_num_uses must be a non-negative integer")
            }
            role.numUses = uses
        }
        if let suffix = data["path_suffix"]?.stringValue {
            guard !suffix.contains(".."), !suffix.hasPrefix("/"), suffix.utf8.count <= 128 else {
                throw APIError.badRequest("path_suffix must be a relative path without \"..\"")
            }
            role.pathSuffix = suffix
        }
        if let overlap = role.allowedPolicies.first(where: role.disallowedPolicies.contains) {
            throw APIError.badRequest("policy \"\(overlap)\" is both allowed and disallowed")
        }
        return role
    }

    /// Vault's read shape.
    var json: JSONValue {
        [
            "name": .string(name), "allowed_policies": .strings(allowedPolicies),
            "disallowed_policies": .strings(disallowedPolicies), "allowed_policies_glob": [],
            "disallowed_policies_glob": [], "orphan": .bool(orphan), "renewable": .bool(renewable),
            "explicit_max_ttl": .int(explicitMaxTTL), "token_explicit_max_ttl": .int(explicitMaxTTL),
            "path_suffix": .string(pathSuffix), "period": 0, "token_period": 0, "token_type": "default-service",
            "token_no_default_policy": .bool(noDefaultPolicy), "token_num_uses": .int(numUses),
            "token_bound_cidrs": [], "allowed_entity_aliases": .null,
        ]
    }

    /// The policies a token created through this role gets, from those `requested` (nil: none
    /// named) and the creator's; throws when the request goes outside the role.
    func policies(requested: [String]?, creator: [String], creatorIsRoot: Bool) throws -> [String] {
        var policies: [String]
        if allowedPolicies.isEmpty {
            policies = requested ?? creator.filter { $0 != "root" || creatorIsRoot }
            if !creatorIsRoot, let outside = policies.first(where: { !creator.contains($0) && $0 != "default" }) {
                throw APIError.badRequest("child policies must be subset of parent's policies; \"\(outside)\" is not")
            }
        } else {
            policies = requested ?? allowedPolicies
            if let outside = policies.first(where: { !allowedPolicies.contains($0) && $0 != "default" }) {
                throw APIError.badRequest("token policies must be subset of the role's allowed policies; \"\(outside)\" is not")
            }
        }
        if let banned = policies.first(where: disallowedPolicies.contains) {
            throw APIError.badRequest("token policies contain the role's disallowed policy \"\(banned)\"")
        }
        if policies.contains("root") && !creatorIsRoot {
            throw APIError.badRequest("only a root token can create a root token")
        }
        return policies
    }
}
