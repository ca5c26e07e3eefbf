import Foundation
import MayflyCrypto

/// One AppRole (`auth/approle/role/:name`).
struct AppRole: Codable, Sendable {
    var name: String
    var roleID: String
    var policies: [String]
    var tokenTTL: Int64
    var tokenMaxTTL: Int64
    var tokenNumUses: Int64
    var secretIDTTL: Int64
    var secretIDNumUses: Int64
    var bindSecretID: Bool
    var secretIDBoundCIDRs: [String]
}

/// One issued secret ID, stored under the keyed hash of the secret ID (never the ID itself).
struct SecretIDEntry: Codable, Sendable {
    var accessor: String
    var creationTime: Int64
    /// Unix seconds; nil means no expiry.
    var expirationTime: Int64?
    /// Uses left; 0 means unlimited.
    var usesRemaining: Int64
    var cidrs: [String]
    var metadata: [String: String]
}

/// AppRole auth (Vault's `auth/approle/`): role ids and secret ids for machines that have neither
/// a Unix identity nor a client certificate. Role ids and secret ids are stored only as keyed
/// hashes; a secret id is checked for expiry, remaining uses and source CIDR at login.
final class AppRoleEngine: Sendable {
    private let barrier: Barrier
    private let tokens: TokenStore
    private let locks = KeyedLock()
    private static let prefix = "auth/approle/"

    init(barrier: Barrier, tokens: TokenStore) {
        self.barrier = barrier
        self.tokens = tokens
    }

    func handle(_ request: LogicalRequest, relativePath path: String, caller: Caller) async throws -> LogicalResponse {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        switch (parts.first ?? "", request.operation) {
        case ("role", .list) where parts.count <= 2 && (parts.count == 1 || parts[1].isEmpty):
            let names = try await barrier.list(Self.prefix + "role/").filter { !$0.hasSuffix("/") }
            guard !names.isEmpty else { throw APIError.notFound }
            return .envelope(Envelope(data: ["keys": .strings(names)]))
        case ("role", _) where parts.count >= 2:
            let name = parts[1]
            try Names.validate(name, kind: "role")
            let rest = Array(parts.dropFirst(2))
            switch (rest.joined(separator: "/"), request.operation) {
            case ("", .read): return try await readRole(name)
            case ("", .update): return try await writeRole(name, request.data, caller: caller, path: request.path)
            case ("", .delete): return try await deleteRole(name)
            case ("role-id", .read):
                return .envelope(Envelope(data: ["role_id": .string(try await role(name).roleID)]))
            case ("role-id", .update): return try await setRoleID(name, request.data)
            case ("secret-id", .update): return try await generateSecretID(name, request.data)
            case ("secret-id/", .list), ("secret-id", .list): return try await listAccessors(name)
            case ("secret-id/lookup", .update): return try await lookupSecretID(name, request.data, destroy: false)
            case ("secret-id/destroy", .update), ("secret-id/destroy", .delete):
                return try await lookupSecretID(name, request.data, destroy: true)
            case ("secret-id-accessor/lookup", .update): return try await byAccessor(name, request.data, destroy: false)
            case ("secret-id-accessor/destroy", .update), ("secret-id-accessor/destroy", .delete):
                return try await byAccessor(name, request.data, destroy: true)
            default: throw APIError.unsupportedPath(path)
            }
        default:
            throw APIError.unsupportedPath(path)
        }
    }

    // MARK: Roles

    private func role(_ name: String) async throws -> AppRole {
        guard let bytes = try await barrier.get(Self.prefix + "role/" + name) else {
            throw APIError.badRequest("role \"\(name)\" does not exist")
        }
        return try JSONDecoder().decode(AppRole.self, from: Data(bytes))
    }

    private func readRole(_ name: String) async throws -> LogicalResponse {
        guard (try await barrier.get(Self.prefix + "role/" + name)) != nil else { throw APIError.notFound }
        let role = try await role(name)
        return .envelope(Envelope(data: [
            "token_policies": .strings(role.policies), "policies": .strings(role.policies),
            "token_ttl": .int(role.tokenTTL), "token_max_ttl": .int(role.tokenMaxTTL), "token_num_uses": .int(role.tokenNumUses),
            "secret_id_ttl": .int(role.secretIDTTL), "secret_id_num_uses": .int(role.secretIDNumUses),
            "bind_secret_id": .bool(role.bindSecretID), "secret_id_bound_cidrs": .strings(role.secretIDBoundCIDRs),
            "token_type": "service",
        ]))
    }

    static func integer(_ value: JSONValue?, field: String) throws -> Int64? {
        guard let value, !value.isNull else { return nil }
        if let number = value.intValue, number >= 0 { return number }
        if let text = value.stringValue, let number = Int64(text), number >= 0 { return number }
        throw APIError.badRequest("\(field) must be a non-negative integer")
    }

    static func cidrs(_ value: JSONValue?, field: String) throws -> [String]? {
        guard let list = try TokenHandlers.stringList(value, field: field) else { return nil }
        for item in list where CIDR(item) == nil { throw APIError.badRequest("\(field): invalid CIDR \"\(item.prefix(64))\"") }
        return list
    }

    /// A role hands its policies to every login: `PolicyGrant` decides whether `caller` may
    /// attach them (never root; a policy the caller lacks only with sudo on `path`).
    private func writeRole(_ name: String, _ data: [String: JSONValue], caller: Caller, path writePath: String)
        async throws -> LogicalResponse
    {
        let path = Self.prefix + "role/" + name
        let existing: AppRole? = try await barrier.get(path) != nil ? try await role(name) : nil
        // A restriction Mayfly would not enforce is refused, never stored and ignored.
        for field in ["token_bound_cidrs", "bound_cidr_list"] {
            if let list = try TokenHandlers.stringList(data[field], field: field), !list.isEmpty {
                throw APIError.badRequest("\(field) is not supported (use secret_id_bound_cidrs)")
            }
        }
        for field in ["token_period", "period", "token_explicit_max_ttl"]
        where (try DurationParser.seconds(data[field], field: field) ?? 0) != 0 {
            throw APIError.badRequest("\(field) is not supported (use token_max_ttl)")
        }
        if let type = data["token_type"]?.stringValue, !["", "service", "default", "default-service"].contains(type) {
            throw APIError.badRequest("only service tokens are supported")
        }
        let policies = try TokenHandlers.stringList(data["token_policies"] ?? data["policies"], field: "token_policies")
        if let policies {
            try PolicyGrant.check(policies, writer: caller, path: writePath, target: .storedRole, field: "token_policies")
        }
        var role = existing ?? AppRole(
            name: name, roleID: Random.uuid(), policies: [], tokenTTL: 0, tokenMaxTTL: 0,
            tokenNumUses: 0, secretIDTTL: 0, secretIDNumUses: 0, bindSecretID: true, secretIDBoundCIDRs: [])
        if let policies { role.policies = Array(Set(policies)).sorted() }
        if let ttl = try DurationParser.seconds(data["token_ttl"], field: "token_ttl") { role.tokenTTL = ttl }
        if let ttl = try DurationParser.seconds(data["token_max_ttl"], field: "token_max_ttl") { role.tokenMaxTTL = ttl }
        if let uses = try Self.integer(data["token_num_uses"], field: "token_num_uses") { role.tokenNumUses = uses }
        if let ttl = try DurationParser.seconds(data["secret_id_ttl"], field: "secret_id_ttl") { role.secretIDTTL = ttl }
        if let uses = try Self.integer(data["secret_id_num_uses"], field: "secret_id_num_uses") { role.secretIDNumUses = uses }
        if let bind = try JSONValue.flag(data["bind_secret_id"], field: "bind_secret_id") { role.bindSecretID = bind }
        if let cidrs = try Self.cidrs(data["secret_id_bound_cidrs"], field: "secret_id_bound_cidrs") {
            role.secretIDBoundCIDRs = cidrs
        }
        guard role.bindSecretID || !role.secretIDBoundCIDRs.isEmpty else {
            throw APIError.badRequest("at least one constraint should be enabled on the role (bind_secret_id or secret_id_bound_cidrs)")
        }
        var operations: [BarrierOperation] = [.put(path: path, value: Array(try JSONEncoder().encode(role)))]
        if existing == nil {
            operations.append(.put(path: try roleIDPath(role.roleID), value: Array(name.utf8)))
        }
        try await barrier.commit(operations)
        return .noContent
    }

    private func roleIDPath(_ roleID: String) throws -> String {
        Self.prefix + "role-id/" + (try tokens.hash(roleID, domain: "approle-role-id"))
    }

    private func secretPath(_ name: String, _ secretID: String) throws -> String {
        Self.prefix + "secret-id/\(name)/" + (try tokens.hash(secretID, domain: "approle-secret-id"))
    }

    private func setRoleID(_ name: String, _ data: [String: JSONValue]) async throws -> LogicalResponse {
        guard let roleID = data["role_id"]?.stringValue, !roleID.isEmpty, roleID.utf8.count <= 256 else {
            throw APIError.badRequest("missing role_id")
        }
        var role = try await role(name)
        guard try await barrier.get(try roleIDPath(roleID)) == nil else { throw APIError.badRequest("role_id already in use") }
        let old = try roleIDPath(role.roleID)
        role.roleID = roleID
        try await barrier.commit([
            .delete(path: old), .put(path: try roleIDPath(roleID), value: Array(name.utf8)),
            .put(path: Self.prefix + "role/" + name, value: Array(try JSONEncoder().encode(role))),
        ])
        return .noContent
    }

    private func deleteRole(_ name: String) async throws -> LogicalResponse {
        guard try await barrier.get(Self.prefix + "role/" + name) != nil else { return .noContent }
        let role = try await role(name)
        try await barrier.commit([
            .delete(path: Self.prefix + "role/" + name), .delete(path: try roleIDPath(role.roleID)),
            .deletePrefix(Self.prefix + "secret-id/\(name)/"), .deletePrefix(Self.prefix + "accessor/\(name)/"),
        ])
        return .noContent
    }

    // MARK: Secret IDs

    private func generateSecretID(_ name: String, _ data: [String: JSONValue]) async throws -> LogicalResponse {
        let role = try await role(name)
        let secretID = Random.uuid() + "-" + Random.string(count: 12, alphabet: Array("abcdefghijklmnopqrstuvwxyz0123456789"))
        let accessor = Random.uuid()
        let now = tokens.clock.seconds()
        let ttl = try DurationParser.seconds(data["ttl"], field: "ttl") ?? role.secretIDTTL
        let uses = try Self.integer(data["num_uses"], field: "num_uses") ?? role.secretIDNumUses
        var metadata: [String: String] = [:]
        if let raw = data["metadata"], !raw.isNull {
            if let text = raw.stringValue, !text.isEmpty, case .object(let object)? = try? JSONValue.parse(Array(text.utf8)) {
                metadata = object.compactMapValues(\.stringValue)
            } else if let object = raw.objectValue {
                metadata = object.compactMapValues(\.stringValue)
            }
        }
        let entry = SecretIDEntry(
            accessor: accessor, creationTime: now, expirationTime: ttl > 0 ? now + ttl : nil, usesRemaining: uses,
            cidrs: try Self.cidrs(data["cidr_list"], field: "cidr_list") ?? [], metadata: metadata)
        let path = try secretPath(name, secretID)
        try await barrier.commit([
            .put(path: path, value: Array(try JSONEncoder().encode(entry))),
            .put(path: Self.prefix + "accessor/\(name)/\(accessor)", value: Array(path.utf8)),
        ])
        return .envelope(Envelope(data: [
            "secret_id": .string(secretID), "secret_id_accessor": .string(accessor),
            "secret_id_ttl": .int(ttl), "secret_id_num_uses": .int(uses),
        ]))
    }

    private func listAccessors(_ name: String) async throws -> LogicalResponse {
        _ = try await role(name)
        let keys = try await barrier.list(Self.prefix + "accessor/\(name)/").filter { !$0.hasSuffix("/") }
        guard !keys.isEmpty else { throw APIError.notFound }
        return .envelope(Envelope(data: ["keys": .strings(keys)]))
    }

    private static func describe(_ entry: SecretIDEntry) -> JSONValue {
        [
            "secret_id_accessor": .string(entry.accessor),
            "creation_time": .string(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval(entry.creationTime)))),
            "expiration_time": .string(entry.expirationTime.map { Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval($0))) } ?? "0001-01-01T00:00:00Z"),
            "secret_id_num_uses": .int(entry.usesRemaining), "cidr_list": .strings(entry.cidrs),
            "metadata": .object(entry.metadata.mapValues { .string($0) }),
        ]
    }

    private func lookupSecretID(_ name: String, _ data: [String: JSONValue], destroy: Bool) async throws -> LogicalResponse {
        guard let secretID = data["secret_id"]?.stringValue, !secretID.isEmpty else { throw APIError.badRequest("missing secret_id") }
        return try await entryAt(name, path: try secretPath(name, secretID), destroy: destroy)
    }

    private func byAccessor(_ name: String, _ data: [String: JSONValue], destroy: Bool) async throws -> LogicalResponse {
        guard let accessor = data["secret_id_accessor"]?.stringValue, !accessor.isEmpty else {
            throw APIError.badRequest("missing secret_id_accessor")
        }
        guard !accessor.contains("/"), let bytes = try await barrier.get(Self.prefix + "accessor/\(name)/\(accessor)") else {
            if destroy { return .noContent }
            throw APIError.notFound
        }
        return try await entryAt(name, path: String(decoding: bytes, as: UTF8.self), destroy: destroy)
    }

    private func entryAt(_ name: String, path: String, destroy: Bool) async throws -> LogicalResponse {
        guard let bytes = try await barrier.get(path) else {
            if destroy { return .noContent }
            throw APIError.notFound
        }
        let entry = try JSONDecoder().decode(SecretIDEntry.self, from: Data(bytes))
        if destroy {
            try await barrier.commit([.delete(path: path), .delete(path: Self.prefix + "accessor/\(name)/\(entry.accessor)")])
            return .noContent
        }
        return .envelope(Envelope(data: Self.describe(entry)))
    }

    /// Role names with at least one secret ID.
    func rolesWithSecretIDs() async throws -> [String] {
        try await barrier.list(Self.prefix + "secret-id/").filter { $0.hasSuffix("/") }.map { String($0.dropLast()) }
    }

    /// Number of secret IDs of role `name`.
    func secretIDCount(role name: String) async throws -> Int {
        try await barrier.list(Self.prefix + "accessor/\(name)/").filter { !$0.hasSuffix("/") }.count
    }

    /// Destroys every secret ID of role `name` (a leak response); returns how many there were.
    @discardableResult
    func destroyAllSecretIDs(role name: String) async throws -> Int {
        let count = try await secretIDCount(role: name)
        try await barrier.commit([
            .deletePrefix(Self.prefix + "secret-id/\(name)/"), .deletePrefix(Self.prefix + "accessor/\(name)/"),
        ])
        return count
    }

    // MARK: Login

    /// `auth/approle/login`: checks the role id and secret id (expiry, uses, CIDR), consumes
    /// one use, and returns a token with the role's policies. Every failure has the same message.
    func login(_ request: LogicalRequest) async throws -> LogicalResponse {
        let invalid = APIError.badRequest("invalid role or secret ID")
        guard let roleID = request.data["role_id"]?.stringValue, !roleID.isEmpty else { throw APIError.badRequest("missing role_id") }
        guard let nameBytes = try await barrier.get(try roleIDPath(roleID)) else { throw invalid }
        let name = String(decoding: nameBytes, as: UTF8.self)
        let role = try await role(name)
        let address = Self.address(request.remoteAddress)
        if !role.secretIDBoundCIDRs.isEmpty, !role.secretIDBoundCIDRs.contains(where: { CIDR($0)?.contains(address) ?? false }) {
            throw invalid
        }
        var metadata: [String: String] = ["role_name": name]
        if role.bindSecretID {
            guard let secretID = request.data["secret_id"]?.stringValue, !secretID.isEmpty else {
                throw APIError.badRequest("missing secret_id")
            }
            let path = try secretPath(name, secretID)
            let entry = try await locks.withLock(path) { [barrier] () -> SecretIDEntry? in
                guard let bytes = try await barrier.get(path) else { return nil }
                var entry = try JSONDecoder().decode(SecretIDEntry.self, from: Data(bytes))
                let accessorPath = Self.prefix + "accessor/\(name)/\(entry.accessor)"
                if let expiry = entry.expirationTime, expiry <= tokens.clock.seconds() {
                    try await barrier.commit([.delete(path: path), .delete(path: accessorPath)])
                    return nil
                }
                if !entry.cidrs.isEmpty, !entry.cidrs.contains(where: { CIDR($0)?.contains(address) ?? false }) { return nil }
                if entry.usesRemaining > 0 {
                    entry.usesRemaining -= 1
                    if entry.usesRemaining == 0 {
                        try await barrier.commit([.delete(path: path), .delete(path: accessorPath)])
                    } else {
                        try await barrier.put(path, Array(try JSONEncoder().encode(entry)))
                    }
                }
                return entry
            }
            guard let entry else { throw invalid }
            metadata.merge(entry.metadata) { current, _ in current }
        }
        // A role stored before the policy-grant rule may still name root: it never gets it.
        var policies = role.policies.filter { $0 != "root" }
        if !policies.contains("default") { policies.append("default") }
        let (token, tokenEntry) = try await tokens.create(TokenRequest(
            policies: policies.sorted(), meta: metadata, displayName: "approle", ttl: role.tokenTTL > 0 ? role.tokenTTL : nil,
            explicitMaxTTL: role.tokenMaxTTL, numUses: role.tokenNumUses, path: "auth/approle/login",
            identity: "approle:\(role.name)"))
        return .envelope(Envelope(auth: TokenHandlers.auth(tokenEntry, token: token)))
    }

    /// The IP of `ip:port` / `[v6]:port` (or `unix`).
    static func address(_ remote: String) -> String {
        if remote.hasPrefix("[") , let end = remote.firstIndex(of: "]") {
            return String(remote[remote.index(after: remote.startIndex)..<end])
        }
        if remote.filter({ $0 == ":" }).count == 1, let colon = remote.lastIndex(of: ":") { return String(remote[..<colon]) }
        return remote
    }
}
