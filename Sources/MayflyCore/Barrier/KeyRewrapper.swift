import Foundation

/// Progress of moving every entry to the newest keyring term.
struct RewrapProgress: Codable, Sendable {
    var targetTerm: UInt32
    /// The last path handled; the next step continues after it.
    var cursor: String?
    var rewrapped: Int
    var startedAt: Int64
    var finishedAt: Int64?
}

/// The background re-wrap after a keyring rotation: a few hundred entries per step (the
/// scheduler runs a step every second, so the rate is bounded), progress stored so a
/// restart continues where it stopped, shown by `sys/key-status`.
final class KeyRewrapper: Sendable {
    private let barrier: Barrier
    static let path = "core/rewrap"

    init(barrier: Barrier) {
        self.barrier = barrier
    }

    func progress() async throws -> RewrapProgress? {
        guard let bytes = try await barrier.get(Self.path) else { return nil }
        return try JSONDecoder().decode(RewrapProgress.self, from: Data(bytes))
    }

    private func save(_ progress: RewrapProgress) async throws {
        try await barrier.put(Self.path, try JSONEncoder().encode(progress).bytes)
    }

    /// Starts (or restarts) a re-wrap to the active term.
    func start(now: Int64) async throws {
        let term = try barrier.currentKeyring().activeTerm
        let previous = try await progress()
        try await save(RewrapProgress(targetTerm: term, cursor: nil, rewrapped: previous?.finishedAt == nil ? previous?.rewrapped ?? 0 : 0,
                                      startedAt: now, finishedAt: nil))
    }

    /// Re-wraps up to `limit` entries; returns a detail line, or nil when there is nothing to do.
    func step(limit: Int, now: Int64) async throws -> String? {
        guard var progress = try await progress(), progress.finishedAt == nil else { return nil }
        let active = try barrier.currentKeyring().activeTerm
        if progress.targetTerm != active {
            // Rotated again meanwhile: start over towards the newest term.
            progress.targetTerm = active
            progress.cursor = nil
        }
        let (last, rewrapped) = try await barrier.rewrap(after: progress.cursor, limit: limit)
        progress.cursor = last
        progress.rewrapped += rewrapped
        if last == nil { progress.finishedAt = now }
        try await save(progress)
        return last == nil ? "re-wrap to term \(active) finished: \(progress.rewrapped) entries moved" : nil
    }
}
