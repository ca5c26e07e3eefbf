import MayflyCrypto
import Synchronization

/// Decrypted values of the paths every request reads — token entries and their accessor
/// index, KV metadata and versions — so that a read skips the storage round trip and the
/// decryption. Values live in guarded memory (`SecureBytes`) and are wiped on seal with the
/// keys (sealed means no key material, and nothing decrypted, in memory). Every write through the barrier invalidates the paths it touches
/// once it has committed, and a value read while such a write was in flight is not kept, so no
/// reader re-installs a value older than a write that has returned: a revoked token fails on
/// the next request. Bounded: at `capacity` an arbitrary entry makes room.
final class PlaintextCache: Sendable {
    /// Path prefixes whose values are cached.
    static let prefixes = ["token/id/", "token/accessor/", "kv/"]

    private struct State {
        var entries: [String: SecureBytes] = [:]
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
    var values: [SecureBytes] { state.withLock { Array($0.entries.values) } }

    /// A copy of the cached plaintext of `path`.
    func get(_ path: String) -> [UInt8]? {
        state.withLock { state in try? state.entries[path]?.copyBytes() }
    }

    /// Keeps `value` for `path` if nothing was invalidated since `epoch`. Empty values (index
    /// entries) are not kept: guarded memory cannot hold zero bytes.
    func insert(_ path: String, _ value: [UInt8], readIn epoch: UInt64) {
        guard !value.isEmpty, Self.isCacheable(path) else { return }
        let evicted: SecureBytes? = state.withLock { state in
            guard state.epoch == epoch, state.entries[path] == nil else { return nil }
            var evicted: SecureBytes?
            if state.entries.count >= capacity, let victim = state.entries.keys.first {
                evicted = state.entries.removeValue(forKey: victim)
            }
            state.entries[path] = SecureBytes(copying: value)
            return evicted
        }
        evicted?.wipe()
    }

    /// Forgets `paths` and everything under `prefixes` (after a write that touched them).
    func invalidate(paths: [String], prefixes: [String]) {
        let removed: [SecureBytes] = state.withLock { state in
            state.epoch &+= 1
            var removed = paths.compactMap { state.entries.removeValue(forKey: $0) }
            for prefix in prefixes {
                for key in state.entries.keys where key.hasPrefix(prefix) {
                    if let value = state.entries.removeValue(forKey: key) { removed.append(value) }
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
            return Array(state.entries.values)
        }
        for value in all { value.wipe() }
    }
}
