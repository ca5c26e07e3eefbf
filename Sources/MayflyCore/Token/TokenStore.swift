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
    /// The parent's expiry (Unix seconds; nil when it never expires): a child never outlives it.
    public var parentExpireTime: Int64?
    /// The identity behind the token (see `TokenEntry.identity`).
    public var identity: String?

    public init(
        policies: [String], meta: [String: String]? = nil, displayName: String = "token", ttl: Int64? = nil,
        explicitMaxTTL: Int64 = 0, renewable: Bool = true, numUses: Int64 = 0, path: String = "auth/token/create",
        parentHash: String? = nil, parentExpireTime: Int64? = nil, identity: String? = nil
    ) {
        self.identity = identity
        self.parentExpireTime = parentExpireTime
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
///
/// Tokens form trees, and nothing hands out more than its writer holds: a child's TTL is capped by its parent's remaining
/// TTL, at creation and at every renewal, so it never outlives it; revoking a token revokes
/// every token it created and the leases all of them obtained. Each expiring token has an
/// entry in an expiry index (`token/expiry/<unix seconds>/<id hash>`) that the sweep pages
/// through, so an expired tree is revoked (leases included) even if nobody uses it again.
public final class TokenStore: Sendable {
    static let keyPath = "core/token-hmac-key"
    static let expiryPrefix = "token/expiry/"
    private let barrier: Barrier
    private let hashKey = Mutex<SecureBytes?>(nil)
    /// TTL for tokens created without one.
    let defaultTTL: Int64
    /// Upper bound on any token TTL.
    let maxTTL: Int64
    /// Revokes the leases obtained by the tokens with these id hashes (durably: it returns once
    /// they are marked for revocation).
    private let revokeLeases: @Sendable ([String]) async throws -> Void
    /// The time tokens are stamped with.
    /// The wall clock of token times (the broker's).
    let clock: any WallClock
    /// One use of a limited-use token at a time (the count is read, checked and written).
    private let useLocks = KeyedLock()

    init(barrier: Barrier, defaultTTL: Int64, maxTTL: Int64, clock: any WallClock = SystemClock(),
         revokeLeases: @escaping @Sendable ([String]) async throws -> Void = { _ in })
    {
        self.barrier = barrier
        self.defaultTTL = defaultTTL
        self.maxTTL = maxTTL
        self.clock = clock
        self.revokeLeases = revokeLeases
    }

    /// The index entry of a token expiring at `expireTime`.
    static func expiryPath(_ expireTime: Int64, _ idHash: String) -> String {
        let digits = String(max(0, expireTime))
        return expiryPrefix + String(repeating: "0", count: max(0, 12 - digits.count)) + digits + "/" + idHash
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
        let now = clock.seconds()
        let isRoot = request.policies.contains("root")
        var ttl = request.ttl ?? (isRoot ? 0 : defaultTTL)
        if !isRoot || request.ttl != nil {
            if ttl == 0 { ttl = defaultTTL }
            ttl = min(ttl, maxTTL)
            if request.explicitMaxTTL > 0 { ttl = min(ttl, request.explicitMaxTTL) }
        }
        // A child never outlives its parent (Vault's rule for tokens that are not orphans).
        if request.parentHash != nil, let parentExpiry = request.parentExpireTime {
            let remaining = parentExpiry - now
            guard remaining > 0 else { throw APIError.badRequest("the parent token has expired") }
            ttl = ttl == 0 ? remaining : min(ttl, remaining)
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
        if let expiry = entry.expireTime { operations.append(.put(path: Self.expiryPath(expiry, entry.idHash), value: [])) }
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
        guard let entry = try await barrier.get("token/id/\(idHash)", decodedBy: TokenEntry.decode) else { return nil }
        // The lookup key is the keyed hash; compare in constant time anyway.
        guard ConstantTime.equals(Array(entry.idHash.utf8), Array(idHash.utf8)) else { return nil }
        if entry.isExpired(at: clock.seconds()) {
            try await revoke(entry)
            return nil
        }
        return entry
    }

    /// Counts one use of a limited-use token, revoking it (and what it obtained, as Vault does)
    /// after its last use. Uses are counted one at a time from the stored count, so `num_uses`
    /// concurrent requests of a token get `num_uses` answers, never more; the others get 403.
    func use(_ entry: TokenEntry) async throws {
        guard entry.numUses > 0 else { return }
        try await useLocks.withLock(entry.idHash) {
            guard let current = try await self.rawEntry(idHash: entry.idHash), current.numUses > 0,
                !current.isExpired(at: self.clock.seconds())
            else { throw APIError.permissionDenied }
            if current.numUses == 1 {
                try await self.revoke(current)
            } else {
                var updated = current
                updated.numUses -= 1
                try await self.barrier.put("token/id/\(entry.idHash)", try JSONEncoder().encode(updated).bytes)
            }
        }
    }

    /// Extends a token's TTL by `increment` (or its creation TTL), capped by its explicit max
    /// TTL and the server maximum measured from creation.
    public func renew(_ entry: TokenEntry, increment: Int64?) async throws -> TokenEntry {
        guard entry.renewable, let oldExpiry = entry.expireTime else { throw APIError.badRequest("token is not renewable") }
        let now = clock.seconds()
        var ttl = (increment ?? 0) > 0 ? increment! : entry.creationTTL
        var limit = entry.creationTime + maxTTL
        if entry.explicitMaxTTL > 0 { limit = min(limit, entry.creationTime + entry.explicitMaxTTL) }
        if let parentHash = entry.parentHash {
            // Never past the parent's expiry; a child whose parent is gone is gone too.
            guard let parent = try await rawEntry(idHash: parentHash), !parent.isExpired(at: now) else {
                try await revoke(entry)
                throw APIError.badRequest("the parent token has been revoked or has expired")
            }
            if let parentExpiry = parent.expireTime { limit = min(limit, parentExpiry) }
        }
        ttl = max(0, min(ttl, limit - now))
        var updated = entry
        updated.expireTime = now + ttl
        updated.lastRenewal = now
        var operations: [BarrierOperation] = [
            .put(path: "token/id/\(entry.idHash)", value: try JSONEncoder().encode(updated).bytes),
        ]
        if now + ttl != oldExpiry {
            operations.append(.delete(path: Self.expiryPath(oldExpiry, entry.idHash)))
            operations.append(.put(path: Self.expiryPath(now + ttl, entry.idHash), value: []))
        }
        try await barrier.commit(operations)
        return updated
    }

    /// Revokes a token, every token it created (recursively), and the leases all of them
    /// obtained. The leases are marked for revocation first (the sweeper drops their roles
    /// within seconds, and retries until it has), then the tokens are deleted, children before
    /// their parent: a crash in between leaves the parent in place to be revoked again.
    public func revoke(_ entry: TokenEntry) async throws {
        var tree: [TokenEntry] = [entry]
        var index = 0
        while index < tree.count {
            for child in try await barrier.list("token/parent/\(tree[index].idHash)/") where !child.hasSuffix("/") {
                if let childEntry = try await rawEntry(idHash: child) { tree.append(childEntry) }
            }
            index += 1
        }
        try await revokeLeases(tree.map(\.idHash))
        for member in tree.reversed() { try await barrier.commit(try deletion(of: member)) }
    }

    /// The operations that delete `entry` and its index entries.
    private func deletion(of entry: TokenEntry) throws -> [BarrierOperation] {
        var operations: [BarrierOperation] = [
            .delete(path: "token/id/\(entry.idHash)"),
            .delete(path: "token/accessor/\(try hash(entry.accessor, domain: "accessor"))"),
            .deletePrefix("token/parent/\(entry.idHash)/"),
        ]
        if let parent = entry.parentHash { operations.append(.delete(path: "token/parent/\(parent)/\(entry.idHash)")) }
        if let expiry = entry.expireTime { operations.append(.delete(path: Self.expiryPath(expiry, entry.idHash))) }
        return operations
    }

    /// Revokes (with their trees and leases) up to `limit` tokens whose expiry has passed, in
    /// expiry order; returns how many expired tokens it found. Run by the `token-sweep` job.
    func sweepExpired(limit: Int = 200) async throws -> Int {
        let now = clock.seconds()
        var handled = 0
        for path in try await barrier.paths(withPrefix: Self.expiryPrefix, after: nil, limit: limit) {
            let parts = path.dropFirst(Self.expiryPrefix.count).split(separator: "/")
            guard parts.count == 2, let expiry = Int64(parts[0]) else {
                try await barrier.delete(path)
                continue
            }
            guard expiry <= now else { break }
            handled += 1
            if let entry = try await rawEntry(idHash: String(parts[1])) {
                if entry.expireTime == expiry || entry.isExpired(at: now) {
                    try await revoke(entry)
                    continue
                }
            }
            // A stale index entry (the token was renewed or deleted meanwhile).
            try await barrier.delete(path)
        }
        return handled
    }

    /// Writes the expiry index entries of tokens stored before the index existed (once, after
    /// an unseal).
    func indexExpiriesIfNeeded() async throws {
        let marker = "token/expiry-indexed"
        guard try await barrier.get(marker) == nil else { return }
        var operations: [BarrierOperation] = []
        for entry in try await allEntries() {
            if let expiry = entry.expireTime { operations.append(.put(path: Self.expiryPath(expiry, entry.idHash), value: [])) }
            if operations.count >= 500 {
                try await barrier.commit(operations)
                operations = []
            }
        }
        operations.append(.put(path: marker, value: Array("1".utf8)))
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
        try await revokeLeases(Array(doomed.keys))
        for entry in doomed.values { try await barrier.commit(try deletion(of: entry)) }
        return doomed.count
    }

    func rawEntry(idHash: String) async throws -> TokenEntry? {
        guard let bytes = try await barrier.get("token/id/\(idHash)") else { return nil }
        return try TokenEntry.decode(bytes)
    }
}

extension Data {
    var bytes: [UInt8] { [UInt8](self) }
}
