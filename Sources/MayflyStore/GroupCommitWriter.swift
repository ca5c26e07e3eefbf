import Dispatch
import GRDB
import Synchronization

/// Group commit for SQLite: writes that arrive while a commit is in progress are gathered into
/// the next transaction, so one fsync acknowledges all of them. Each write runs in its own
/// savepoint, so a write that throws is rolled back alone and the others still commit; if the
/// COMMIT itself fails, every write of the group fails. Nothing is acknowledged before its
/// transaction is durable.
final class GroupCommitWriter: Sendable {
    private struct Job: Sendable {
        let body: @Sendable (Database) throws -> any Sendable
        let continuation: CheckedContinuation<any Sendable, any Error>
    }

    private struct State {
        var jobs: [Job] = []
        var draining = false
    }

    private let pool: DatabasePool
    private let queue = DispatchQueue(label: "mayfly.sqlite.group-commit")
    private let state = Mutex(State())

    init(pool: DatabasePool) {
        self.pool = pool
    }

    /// Runs `body` inside the next group transaction; returns once that transaction committed.
    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let value = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<any Sendable, any Error>) in
            let job = Job(body: { try body($0) }, continuation: continuation)
            let startDraining = state.withLock { state -> Bool in
                state.jobs.append(job)
                if state.draining { return false }
                state.draining = true
                return true
            }
            if startDraining { queue.async { self.drain() } }
        }
        guard let typed = value as? T else { preconditionFailure("group commit returned \(type(of: value)), not \(T.self)") }
        return typed
    }

    /// Commits groups until no write is waiting (runs on `queue`, never the cooperative pool).
    private func drain() {
        while true {
            let jobs = state.withLock { state -> [Job] in
                guard !state.jobs.isEmpty else {
                    state.draining = false
                    return []
                }
                defer { state.jobs.removeAll(keepingCapacity: true) }
                return state.jobs
            }
            guard !jobs.isEmpty else { return }
            var results: [Result<any Sendable, any Error>] = []
            results.reserveCapacity(jobs.count)
            do {
                try pool.write { db in
                    results.removeAll(keepingCapacity: true)
                    for job in jobs {
                        do {
                            var value: (any Sendable)?
                            try db.inSavepoint {
                                value = try job.body(db)
                                return .commit
                            }
                            results.append(.success(value!))
                        } catch {
                            results.append(.failure(error))
                        }
                    }
                }
            } catch {
                for job in jobs { job.continuation.resume(throwing: error) }
                continue
            }
            for (job, result) in zip(jobs, results) { job.continuation.resume(with: result) }
        }
    }
}
