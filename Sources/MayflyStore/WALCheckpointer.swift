import Foundation
import GRDB
import Synchronization

/// Checkpoints a SQLite database's write-ahead log from a connection of its own, beside the
/// writes. The store's connections never checkpoint (`wal_autocheckpoint = 0`): SQLite's
/// automatic checkpoint runs inside the commit that crosses 1,000 pages, which then copies
/// the log into the database file and syncs it while every write queued behind it waits
/// (the issuance p99's tail). Here, every `interval` the log is looked at and, once it is
/// past `threshold` bytes and has changed since the last look, a PASSIVE checkpoint runs:
/// it blocks neither writers nor readers, and the writer starts the log over once all of it
/// is in the database file.
final class WALCheckpointer: Sendable {
    private let connection: DatabaseQueue
    private let logPath: String
    private let threshold: Int
    private let queue = DispatchQueue(label: "mayfly.sqlite.checkpoint")
    private let interval: DispatchTimeInterval

    private struct State {
        /// The log's size and modification time at the last checkpoint.
        var checkpointed: (size: Int, modified: TimeInterval)?
        var checkpoints = 0
        var lastError: String?
    }
    private let state = Mutex(State())

    /// Starts checkpointing the database at `path` (in WAL mode, opened by its store).
    init(path: String, threshold: Int = 4 << 20, interval: DispatchTimeInterval = .milliseconds(500)) throws {
        var config = Configuration()
        config.label = "mayfly.sqlite.checkpoint"
        config.busyMode = .timeout(1)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
        }
        connection = try DatabaseQueue(path: path, configuration: config)
        logPath = path + "-wal"
        self.threshold = threshold
        self.interval = interval
        scheduleLook()
    }

    /// The next look, `interval` from now; the looks end with this object.
    private func scheduleLook() {
        queue.asyncAfter(deadline: .now() + interval) { [weak self] in
            guard let self else { return }
            self.checkpointIfDue()
            self.scheduleLook()
        }
    }

    /// Checkpoints done so far (tests).
    var checkpointCount: Int { state.withLock { $0.checkpoints } }

    /// Why the last checkpoint failed, if it did (tests; a failed one is tried again later).
    var lastError: String? { state.withLock { $0.lastError } }

    /// Runs a PASSIVE checkpoint if the log is past the threshold and changed since the last.
    private func checkpointIfDue() {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: logPath),
            let size = (attributes[.size] as? NSNumber)?.intValue, size >= threshold
        else { return }
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let due = state.withLock { state in
            guard let last = state.checkpointed else { return true }
            return last.size != size || last.modified != modified
        }
        guard due else { return }
        do {
            try connection.writeWithoutTransaction { db in _ = try db.checkpoint(.passive) }
            state.withLock {
                $0.checkpointed = (size, modified)
                $0.checkpoints += 1
                $0.lastError = nil
            }
        } catch {
            state.withLock { $0.lastError = "\(error)" }
        }
    }
}
