import MayflyCrypto
import Synchronization

/// Decrypted values of the paths every request reads — token entries and their accessor
/// index, KV metadata and versions, the database configs and roles every credential reads —
/// so that a read skips the storage round trip and the decryption. Values live in guarded
/// memory (`SecureBytes`) and are wiped on seal with the keys (sealed means no key material,
/// and nothing decrypted, in memory). Every write through the barrier invalidates the paths
/// it touches once it has committed, and a value read while such a write was in flight is not kept, so no
/// reader re-installs a value older than a write that has returned: a revoked token fails on
/// the next request. Bounded: at `capacity` an arbitrary entry makes room.
final class PlaintextCache: Sendable {
    /// Path prefixes whose values are cached.
    static let prefixes = ["token/id/", "token/accessor/", "kv/", "database/config/", "database/roles/"]

    /// A value and, once a reader has decoded it, the decoded form, so hot reads skip the
    /// decoding too; dropped with the value. Only records that hold no secret are kept decoded
    /// (a token entry holds the token's keyed hash, KV metadata versions and times, a database
    /// role its statements; a database config only with its passwords blanked, see
    /// `DatabaseEngine.settings`): a secret's value stays in guarded memory only, and is
    /// decoded per read.
    private struct Entry {
        var bytes: SecureBytes
        var decoded: (any Sendable)?
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// Bumped by every invalidation: a read that began before it is not kept.
        var epoch: UInt64 = 0
    }

    private let state = Mutex(State())
    let capacity: Int

    init(capacity: Int = 20_000) {
        self.capacity = capacity
    }

    static func isCacheable(_ path: String) -> Bool {
        prefixes.contains { path.hasPrefix($0) }
    }

    /// The epoch a read begins in (pass it to `insert`).
    var epoch: UInt64 { state.withLock { $0.epoch } }

    /// Number of cached values (tests).
    var count: Int { state.withLock { $0.entries.count } }

    /// The cached values themselves (tests check they are wiped on seal).
    var values: [SecureBytes] { state.withLock { $0.entries.values.map(\.bytes) } }

    /// Number of cached values that also hold their decoded form (tests).
    var decodedCount: Int { state.withLock { $0.entries.values.count { $0.decoded != nil } } }

    /// A copy of the cached plaintext of `path`.
    func get(_ path: String) -> [UInt8]? {
        state.withLock { state in try? state.entries[path]?.bytes.copyBytes() }
    }

    /// The decoded form of `path`'s cached value: kept from an earlier call, or made now by
    /// `decode` (outside the lock) and kept if the value was not replaced meanwhile. Nil when
    /// `path` is not cached.
    func decoded<T: Sendable>(_ path: String, _ decode: ([UInt8]) throws -> T) throws -> T? {
        let found: (bytes: SecureBytes, decoded: (any Sendable)?)? = state.withLock { state in
            state.entries[path].map { ($0.bytes, $0.decoded) }
        }
        guard let found else { return nil }
        if let kept = found.decoded as? T { return kept }
        let value = try decode(try found.bytes.copyBytes())
        state.withLock { state in
            if state.entries[path]?.bytes === found.bytes { state.entries[path]?.decoded = value }
        }
        return value
    }

    /// Keeps `value` for `path` if nothing was invalidated since `epoch`. Empty values (index
    /// entries) are not kept: guarded memory cannot hold zero bytes.
    func insert(_ path: String, _ value: [UInt8], decoded: (any Sendable)? = nil, readIn epoch: UInt64) {
        guard !value.isEmpty, Self.isCacheable(path) else { return }
        let evicted: SecureBytes? = state.withLock { state in
            guard state.epoch == epoch, state.entries[path] == nil else { return nil }
            var evicted: SecureBytes?
            if state.entries.count >= capacity, let victim = state.entries.keys.first {
                evicted = state.entries.removeValue(forKey: victim)?.bytes
            }
            state.entries[path] = Entry(bytes: SecureBytes(copying: value), decoded: decoded)
            return evicted
        }
        evicted?.wipe()
    }

    /// Forgets `paths` and everything under `prefixes` (after a write that touched them).
    func invalidate(paths: [String], prefixes: [String]) {
        let removed: [SecureBytes] = state.withLock { state in
            state.epoch &+= 1
            var removed = paths.compactMap { state.entries.removeValue(forKey: $0)?.bytes }
            for prefix in prefixes {
                for key in state.entries.keys where key.hasPrefix(prefix) {
                    if let value = state.entries.removeValue(forKey: key) { removed.append(value.bytes) }
                }
            }
            return removed
        }
        for value in removed { value.wipe() }
    }

    /// Wipes every value (on seal).
    func wipe() {
        let all: [SecureBytes] = state.withLock { state in
            state.epoch &+= 1
            defer { state.entries = [:] }
            return state.entries.values.map(\.bytes)
        }
        for value in all { value.wipe() }
    }
}
