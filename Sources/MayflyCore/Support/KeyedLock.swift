/// Serialises work per key (e.g. per KV secret path) so read-check-write sequences such as
/// check-and-set are atomic within this process. Waiters are resumed in FIFO order.
public actor KeyedLock {
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]

    public init() {}

    /// Runs `body` while holding the lock for `key`.
    public func withLock<T: Sendable>(_ key: String, _ body: @Sendable () async throws -> T) async throws -> T {
        await acquire(key)
        defer { release(key) }
        return try await body()
    }

    private func acquire(_ key: String) async {
        if waiters[key] == nil {
            waiters[key] = []
            return
        }
        await withCheckedContinuation { waiters[key, default: []].append($0) }
    }

    private func release(_ key: String) {
        guard var queue = waiters[key] else { return }
        if queue.isEmpty {
            waiters[key] = nil
        } else {
            let next = queue.removeFirst()
            waiters[key] = queue
            next.resume()
        }
    }
}
