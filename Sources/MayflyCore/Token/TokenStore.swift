import Foundation
import MayflyCrypto
import Synchronization

/// What a caller asks for when creating a token.
public struct TokenRequest: Sendable {
    public var policies: [String]
    public var meta: [String: String]?
    public var displayName: String
    public var ttl: Int64?
    public var explicitMaxTTL: Int64
    public var renewable: Bool
    public var numUses: Int64
    public var path: String
    public var parentHash: String?
    /// The identity behind the token (see `TokenEntry.identity`).
    public var identity: String?

    public init(
        policies: [String], meta: [String: String]? = nil, displayName: String = "token", ttl: Int64? = nil,
        explicitMaxTTL: Int64 = 0, renewable: Bool = true, numUses: Int64 = 0, path: String = "auth/token/create",
        parentHash: String? = nil, identity: String? = nil
    ) {
        self.identity = identity
        self.policies = policies
        self.meta = meta
        self.displayName = displayName
        self.ttl = ttl
        self.explicitMaxTTL = explicitMaxTTL
        self.renewable = renewable
        self.numUses = numUses
        self.path = path
        self.parentHash = parentHash
    }
}

/// Tokens, stored encrypted under `token/` and addressed only by a keyed hash of the token,
/// so a copy of the store reveals no usable token. The hash key lives in guarded memory and
/// is wiped on seal.
public final class TokenStore: Sendable {
    static let keyPath = "core/token-hmac-key"
    private let barrier: Barrier
    private let hashKey = Mutex<SecureBytes?>(nil)
    /// TTL for tokens created without one.
    let defaultTTL: Int64
    /// Upper bound on any token TTL.
    let maxTTL: Int64

    init(barrier: Barrier, defaultTTL: Int64, maxTTL: Int64) {
        self.barrier = barrier
        self.defaultTTL = defaultTTL
        self.maxTTL = maxTTL
    }

    /// Creates the hash key (at initialisation).
    func generateKey() async throws {
        let key = SecureBytes.random(count: 32)
        try await barrier.putSecure(Self.keyPath, key)
        hashKey.withLock { $0 = key }
    }

    /// Loads the hash key after unseal.
    func loadKey() async throws {
        guard let key = try await barrier.getSecure(Self.keyPath) else {
            throw BarrierError.corrupt("token hash key missing")
        }
        hashKey.withLock { $0 = key }
    }

    /// The hash key while unsealed (for tests that check it is wiped on seal).
    var loadedKey: SecureBytes? { hashKey.withLock { $0 } }

    /// Wipes the hash key (on seal).
    func unload() {
        hashKey.withLock { key in
            key?.wipe()
            key = nil
        }
    }

    /// Hex HMAC-SHA-256 of `domain:value` under the store's hash key (tokens, AppRole ids).
    func hash(_ value: String, domain: String) throws -> String {
        guard let key = hashKey.withLock({ $0 }) else { throw BarrierError(.sealed, "token key not loaded") }
        return Hex.encode(try KeyedHash.hmacSHA256(key: key, Array((domain + ":" + value).utf8)))
    }

    private static let base62 = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

    /// Creates a token; returns the token (shown once) and its entry.
    public func create(_ request: TokenRequest) async throws -> (token: String, entry: TokenEntry) {
        let token = "hvs." + Random.string(count: 32, alphabet: Self.base62)
        let accessor = Random.string(count: 24, alphabet: Self.base62)
        let now = Int64(Date().timeIntervalSince1970)
        let isRoot = request.policies.contains("root")
        var ttl = request.ttl ?? (isRoot ? 0 : defaultTTL)
        if !isRoot || request.ttl != nil {
            if ttl == 0 { ttl = defaultTTL }
            ttl = min(ttl, maxTTL)
            if request.explicitMaxTTL > 0 { ttl = min(ttl, request.explicitMaxTTL) }
        }
        let entry = TokenEntry(
            idHash: try hash(token, domain: "token"), accessor: accessor, policies: request.policies,
            meta: request.meta, displayName: request.displayName, creationTime: now, creationTTL: ttl,
            expireTime: ttl > 0 ? now + ttl : nil, explicitMaxTTL: request.explicitMaxTTL,
            renewable: ttl > 0 && request.renewable, numUses: request.numUses, path: request.path,
            parentHash: request.parentHash, lastRenewal: nil, identity: request.identity)
        var operations: [BarrierOperation] = [
            .put(path: "token/id/\(entry.idHash)", value: try JSONEncoder().encode(entry).bytes),
            .put(path: "token/accessor/\(try hash(accessor, domain: "accessor"))", value: Array(entry.idHash.utf8)),
        ]
        if let parent = request.parentHash {
            operations.append(.put(path: "token/parent/\(parent)/\(entry.idHash)", value: []))
        }
        try await barrier.commit(operations)
        return (token, entry)
    }

    /// The live entry for `token`, or nil (unknown, revoked or expired).
    public func lookup(token: String) async throws -> TokenEntry? {
        guard token.utf8.count <= 512, !token.isEmpty else { return nil }
        return try await entry(idHash: try hash(token, domain: "token"))
    }

    /// The live entry for an accessor, or nil.
    public func lookup(accessor: String) async throws -> TokenEntry? {
        guard accessor.utf8.count <= 128, !accessor.isEmpty else { return nil }
        guard let idHash = try await barrier.get("token/accessor/\(try hash(accessor, domain: "accessor"))") else {
            return nil
        }
        return try await entry(idHash: String(decoding: idHash, as: UTF8.self))
    }

    private func entry(idHash: String) async throws -> TokenEntry? {
        guard let bytes = try await barrier.get("token/id/\(idHash)") else { return nil }
        let entry = try JSONDecoder().decode(TokenEntry.self, from: Data(bytes))
        // The lookup key is the keyed hash; compare in constant time anyway.
        guard ConstantTime.equals(Array(entry.idHash.utf8), Array(idHash.utf8)) else { return nil }
        if entry.isExpired() {
            try await revoke(entry)
            return nil
        }
        return entry
    }

    /// Counts one use of a limited-use token, revoking it after its last use.
    func use(_ entry: TokenEntry) async throws {
        guard entry.numUses > 0 else { return }
        if entry.numUses == 1 {
            try await revoke(entry)
        } else {
            var updated = entry
            updated.numUses -= 1
            try await barrier.put("token/id/\(entry.idHash)", try JSONEncoder().encode(updated).bytes)
        }
    }

    /// Extends a token's TTL by `increment` (or its creation TTL), capped by its explicit max
    /// TTL and the server maximum measured from creation.
    public func renew(_ entry: TokenEntry, increment: Int64?) async throws -> TokenEntry {
        guard entry.renewable, entry.expireTime != nil else { throw APIError.badRequest("token is not renewable") }
        let now = Int64(Date().timeIntervalSince1970)
        var ttl = (increment ?? 0) > 0 ? increment! : entry.creationTTL
        var limit = entry.creationTime + maxTTL
        if entry.explicitMaxTTL > 0 { limit = min(limit, entry.creationTime + entry.explicitMaxTTL) }
        ttl = max(0, min(ttl, limit - now))
        var updated = entry
        updated.expireTime = now + ttl
        updated.lastRenewal = now
        try await barrier.put("token/id/\(entry.idHash)", try JSONEncoder().encode(updated).bytes)
        return updated
    }

    /// Revokes a token and, recursively, every token it created.
    public func revoke(_ entry: TokenEntry) async throws {
        for child in try await barrier.list("token/parent/\(entry.idHash)/") where !child.hasSuffix("/") {
            if let childEntry = try await rawEntry(idHash: child) {
                try await revoke(childEntry)
            }
        }
        var operations: [BarrierOperation] = [
            .delete(path: "token/id/\(entry.idHash)"),
            .delete(path: "token/accessor/\(try hash(entry.accessor, domain: "accessor"))"),
            .deletePrefix("token/parent/\(entry.idHash)/"),
        ]
        if let parent = entry.parentHash {
            operations.append(.delete(path: "token/parent/\(parent)/\(entry.idHash)"))
        }
        try await barrier.commit(operations)
    }

    /// Every stored token entry (expired ones included), for a leak response.
    func allEntries() async throws -> [TokenEntry] {
        var entries: [TokenEntry] = []
        for idHash in try await barrier.list("token/id/") where !idHash.hasSuffix("/") {
            if let entry = try await rawEntry(idHash: idHash) { entries.append(entry) }
        }
        return entries
    }

    /// Revokes every token `matches` selects and all tokens they created, except the token
    /// with accessor `spared` (the caller of a leak response keeps working even when a token
    /// it descends from goes). Returns the number revoked.
    func revokeAll(where matches: (TokenEntry) -> Bool, sparing spared: String?) async throws -> Int {
        let entries = try await allEntries()
        var children: [String: [TokenEntry]] = [:]
        for entry in entries { if let parent = entry.parentHash { children[parent, default: []].append(entry) } }
        var queue = entries.filter(matches)
        var doomed: [String: TokenEntry] = [:]
        while let entry = queue.popLast() {
            guard entry.accessor != spared, doomed[entry.idHash] == nil else { continue }
            doomed[entry.idHash] = entry
            queue += children[entry.idHash] ?? []
        }
        for entry in doomed.values {
            var operations: [BarrierOperation] = [
                .delete(path: "token/id/\(entry.idHash)"),
                .delete(path: "token/accessor/\(try hash(entry.accessor, domain: "accessor"))"),
                .deletePrefix("token/parent/\(entry.idHash)/"),
            ]
            if let parent = entry.parentHash { operations.append(.delete(path: "token/parent/\(parent)/\(entry.idHash)")) }
            try await barrier.commit(operations)
        }
        return doomed.count
    }

    private func rawEntry(idHash: String) async throws -> TokenEntry? {
        guard let bytes = try await barrier.get("token/id/\(idHash)") else { return nil }
        return try JSONDecoder().decode(TokenEntry.self, from: Data(bytes))
    }
}

extension Data {
    var bytes: [UInt8] { [UInt8](self) }
}
