import Foundation
import MayflyCrypto
import Synchronization

/// An append-only JSON-lines file in which every line carries its number (`seq`) and the
/// SHA-256 of the previous line (`prev`), so `mayfly audit verify` finds an edited, deleted
/// or reordered line.
///
/// Group commit: each line is encoded by its caller, which also hashes it for the chain (all
/// but the short tail holding `prev` and `seq`) before taking the lock, and appended with one
/// short `writev` (to the page cache) under the lock; a sync loop on a queue of its own (never
/// an event-loop thread or the cooperative pool) syncs whatever has been written while writing goes on, so one
/// sync covers every line written before it began. The sync is `fdatasync`: the lines and the
/// file's length reach the disk, as with `fsync`, without also writing its modification time
/// (a third less kernel work per sync here). A durable line (a request, recorded before it is handled) is on
/// disk when `record` returns. A line recorded with `durable: false` (a response, recorded
/// before it is sent) is written when `record` returns and on disk with the sync loop's next
/// `fsync`, a moment later: a crash can lose only responses of the last moments, never a
/// request that was handled. If a write fails, the file is cut back to the last complete line,
/// so the chain stays verifiable and no failed line is half there. Lines carry their keys in
/// any order, `prev` and `seq` last (the verifier reads them by name). If an `fsync` fails, what was waiting for it fails and so does every later line (the
/// device fails closed) until the file is reopened.
public final class AuditFile: Sendable {
    /// `prev` of the first line.
    public static let genesis = Hex.encode(KeyedHash.sha256(Array("mayfly-audit-v1".utf8)))

    private struct State {
        var fd: Int32
        var seq: Int
        var prev: String
        /// Bytes written (the end of the last complete line).
        var offset: off_t
        /// Bytes known to be on disk.
        var synced: off_t = 0
        /// Durable lines waiting for the sync loop: the offset that must be on disk, and whom to tell.
        var syncWaiters: [(end: off_t, continuation: CheckedContinuation<Void, any Error>)] = []
        /// The end of the last durable line written: the sync loop runs until it is on disk,
        /// whether or not its writer waits yet (`writeDurable`).
        var promised: off_t = 0
        /// Durable lines written since the sync loop last took its target.
        var durableSinceSync = 0
        var syncing = false
        /// A flush of lines no one waits for (responses) is scheduled on `syncer`.
        var lazyFlushPending = false
        /// Durable lines the last `fsync` covered, and how long it took (ns): the sync loop
        /// waits a moment before the next one only while several lines share each `fsync`.
        var lastBatch = 0
        var lastSyncNanoseconds: UInt64 = 0
        /// Why the device failed closed (an `fsync` failed), if it did.
        var broken: String?
    }

    public let path: String
    private let state: Mutex<State>
    private let syncer = DispatchQueue(label: "mayfly.audit.sync")

    /// Opens (creating with mode 0600) and continues the chain of an existing file.
    public init(path: String) throws {
        self.path = path
        // Its directory is made (mode 0700) when missing, as storage and socket directories are.
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty, !FileManager.default.fileExists(atPath: directory) {
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                     attributes: [.posixPermissions: 0o700])
        }
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AuditError("cannot open \(path): \(String(cString: strerror(errno)))") }
        var info = stat()
        fstat(fd, &info)
        var seq = 0, prev = Self.genesis
        var offset: off_t = 0
        if (info.st_mode & S_IFMT) == S_IFREG, info.st_size > 0 {
            do {
                (seq, prev, offset) = try Self.chainEnd(path: path, size: info.st_size)
            } catch {
                close(fd)
                throw error
            }
            // A line cut short (a crash mid-write) is dropped: the chain continues after the last complete one.
            if offset < info.st_size { _ = ftruncate(fd, offset) }
        }
        state = Mutex(State(fd: fd, seq: seq, prev: prev, offset: offset, synced: offset))
    }

    /// Where the chain of an existing file ends: the last complete line's `seq` and hash, and
    /// the offset after it. Reads the file from its end, a block at a time, so opening a large
    /// file costs no memory; counts the lines only when the last one carries no `seq`.
    static func chainEnd(path: String, size: off_t) throws -> (seq: Int, prev: String, offset: off_t) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw AuditError("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        func read(at position: off_t, count: Int) throws -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let result = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, position + off_t(done)) }
                if result < 0 && errno == EINTR { continue }
                guard result > 0 else { throw AuditError("cannot read \(path): \(result == 0 ? "it shrank" : String(cString: strerror(errno)))") }
                done += result
            }
            return bytes
        }
        // The tail (the bytes from `start` to the end), grown a block at a time until it holds
        // the last complete line whole.
        let block: off_t = 64 << 10
        var start = size
        var tail: [UInt8] = []
        var line: (from: Int, end: Int)?
        while line == nil {
            if let last = tail.lastIndex(of: 10) {
                if let before = tail[..<last].lastIndex(of: 10) {
                    line = (before + 1, last)
                } else if start == 0 {
                    line = (0, last)
                }
            } else if start == 0 {
                return (0, genesis, 0)  // no complete line
            }
            if line == nil {
                let from = max(0, start - block)
                tail = try read(at: from, count: Int(start - from)) + tail
                start = from
            }
        }
        let (from, last) = line!
        let text = Array(tail[from..<last])
        let offset = start + off_t(last + 1)
        if !text.isEmpty, let seq = (try? JSONValue.parse(text))?["seq"]?.intValue, seq > 0 {
            return (Int(seq), Hex.encode(KeyedHash.sha256(text)), offset)
        }
        // Not a line of ours: number the non-empty lines and hash the last, reading it all.
        let all = try read(at: 0, count: Int(offset))
        let lines = all.split(separator: 10, omittingEmptySubsequences: true)
        return (lines.count, lines.last.map { Hex.encode(KeyedHash.sha256(Array($0))) } ?? genesis, offset)
    }

    /// The last line's `seq` (tests).
    var seqForTests: Int { state.withLock { $0.seq } }

    /// How far the file is known to be on disk (tests).
    var syncedForTests: off_t { state.withLock { $0.synced } }

    deinit {
        state.withLock { _ = close($0.fd) }
    }

    /// Appends `entry` (an object) with `seq` and `prev` added; durable when it returns.
    /// Blocks the calling thread for the `fsync`: for tools and tests; the server uses `record`.
    public func append(_ entry: JSONValue) throws {
        let body = Body(try Self.body(entry))
        try state.withLock { state in
            if let broken = state.broken { throw AuditError(broken) }
            let before = state
            try write(body, &state)
            guard fdatasync(state.fd) == 0 || errno == EINVAL else {
                let reason = String(cString: strerror(errno))
                _ = ftruncate(state.fd, before.offset)
                state.offset = before.offset
                state.seq = before.seq
                state.prev = before.prev
                throw AuditError("fsync of \(path) failed: \(reason)")
            }
            state.synced = max(state.synced, state.offset)
        }
    }

    /// Appends `entry` (an object) with `seq` and `prev` added; returns once it is written —
    /// and with `durable`, on disk, having waited (suspended, no thread blocked) for the `fsync`
    /// that covered it.
    public func record(_ entry: JSONValue, durable: Bool = true) async throws {
        try await record(body: try Self.body(entry), durable: durable)
    }

    /// `record` of a line already encoded: `body` is a JSON object without its closing brace
    /// (`{"a":1,"b":2`), to which `,"prev":…,"seq":…}` is added.
    public func record(body: [UInt8], durable: Bool = true) async throws {
        guard durable else {
            try Self.check(body)
            let body = Body(body)
            let flush = try state.withLock { state -> Bool in
                if let broken = state.broken { throw AuditError(broken) }
                try write(body, &state)
                return scheduleLazyFlush(&state)
            }
            if flush { scheduleFlush() }
            return
        }
        try await waitUntilDurable(try writeDurable(body: body))
    }

    /// Writes a durable line (see `record(body:)`) and starts the sync that covers it, without
    /// waiting for it: what the caller does next overlaps the sync, and `waitUntilDurable` with
    /// the returned end says when the line is on disk. One hand-off fewer than a task that
    /// records the line.
    func writeDurable(body: [UInt8]) throws -> off_t {
        try Self.check(body)
        let body = Body(body)
        let (end, start) = try state.withLock { state -> (off_t, Bool) in
            if let broken = state.broken { throw AuditError(broken) }
            try write(body, &state)
            state.promised = state.offset
            state.durableSinceSync += 1
            return (state.offset, startSyncing(&state))
        }
        if start { syncer.async { self.syncLoop() } }
        return end
    }

    /// Returns once the file is on disk up to `end` (a `writeDurable` answer), suspended
    /// meanwhile; throws if the sync failed.
    func waitUntilDurable(_ end: off_t) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let ready = state.withLock { state -> Result<Void, any Error>? in
                if state.synced >= end { return .success(()) }
                if let broken = state.broken { return .failure(AuditError(broken)) }
                // The sync loop runs: `promised` (at least `end`) is not on disk yet.
                state.syncWaiters.append((end, continuation))
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }

    private static func check(_ body: [UInt8]) throws {
        guard body.first == UInt8(ascii: "{"), body.count > 1 else { throw AuditError("audit entries are non-empty objects") }
    }

    /// Whether the caller must start the sync loop (it was not running).
    private func startSyncing(_ state: inout State) -> Bool {
        guard !state.syncing else { return false }
        state.syncing = true
        return true
    }

    /// How long lines no one waits for may stay unsynced when no durable line comes to carry
    /// them: a durable line's `fsync` covers them too, so under load they never cost one.
    static let lazyFlushDelay = DispatchTimeInterval.milliseconds(20)

    /// Whether the caller must schedule a flush (none is scheduled or running).
    private func scheduleLazyFlush(_ state: inout State) -> Bool {
        guard !state.syncing, !state.lazyFlushPending else { return false }
        state.lazyFlushPending = true
        return true
    }

    private func scheduleFlush() {
        syncer.asyncAfter(deadline: .now() + Self.lazyFlushDelay) {
            let flush = self.state.withLock { state -> Bool in
                state.lazyFlushPending = false
                return self.startSyncing(&state)
            }
            if flush { self.syncLoop(flushAll: true) }
        }
    }

    /// `entry` encoded without its closing brace, ready for `,"prev":…,"seq":…}`.
    private static func body(_ entry: JSONValue) throws -> [UInt8] {
        guard case .object(let members) = entry, !members.isEmpty else {
            throw AuditError("audit entries are non-empty objects")
        }
        var bytes = JSONValue.object(members).encoded()
        bytes.removeLast()
        return bytes
    }

    /// `fsync`s until everything written is on disk, telling each durable line's waiter once its
    /// line is (runs on `syncer`, beside the writes).
    /// `flushAll`: sync lines no one waits for too (the lazy flush); otherwise the loop stops
    /// when no durable line waits, and what is left unsynced gets a lazy flush.
    private func syncLoop(flushAll: Bool = false) {
        var flushAll = flushAll
        while true {
            let next: (target: (fd: Int32, end: off_t)?, pause: UInt64, lazy: Bool) = state.withLock { state in
                guard state.synced < state.offset, state.broken == nil,
                    flushAll || !state.syncWaiters.isEmpty || state.promised > state.synced
                else {
                    state.syncing = false
                    return (nil, 0, state.synced < state.offset && state.broken == nil && scheduleLazyFlush(&state))
                }
                // Group commit: while several lines share each fsync, wait a little (at most
                // a tenth of a millisecond, never longer than an fsync) so more lines join.
                let pause = state.lastBatch > 1 ? min(state.lastSyncNanoseconds, 100_000) : 0
                if pause == 0 { state.lastBatch = state.durableSinceSync; state.durableSinceSync = 0 }
                return ((state.fd, state.offset), pause, false)
            }
            guard var target = next.target else {
                if next.lazy { scheduleFlush() }
                return
            }
            flushAll = false
            if next.pause > 0 {
                var pause = timespec(tv_sec: 0, tv_nsec: Int(next.pause))
                nanosleep(&pause, nil)
                target = state.withLock { state in
                    state.lastBatch = state.durableSinceSync
                    state.durableSinceSync = 0
                    return (state.fd, state.offset)
                }
            }
            let started = DispatchTime.now().uptimeNanoseconds
            let ok = fdatasync(target.fd) == 0 || errno == EINVAL
            let took = DispatchTime.now().uptimeNanoseconds - started
            let reason = ok ? "" : String(cString: strerror(errno))
            let (done, failed) = state.withLock { state -> ([CheckedContinuation<Void, any Error>], [CheckedContinuation<Void, any Error>]) in
                if ok {
                    state.synced = max(state.synced, target.end)
                    let done = state.syncWaiters.filter { $0.end <= target.end }.map(\.continuation)
                    state.syncWaiters.removeAll { $0.end <= target.end }
                    state.lastSyncNanoseconds = took
                    return (done, [])
                }
                state.broken = "fsync of \(path) failed (\(reason)); every request fails until the audit file is reopened"
                let failed = state.syncWaiters.map(\.continuation)
                state.syncWaiters = []
                state.syncing = false
                return ([], failed)
            }
            for continuation in done { continuation.resume() }
            if !failed.isEmpty || !ok {
                for continuation in failed { continuation.resume(throwing: AuditError("fsync of \(path) failed: \(reason)")) }
                return
            }
        }
    }

    /// A line's body (an encoded object without its closing brace) with its SHA-256 begun:
    /// the bulk of the chain's hashing is done before the lock is taken.
    private struct Body {
        let bytes: [UInt8]
        let hash: SHA256Stream

        init(_ bytes: [UInt8]) {
            self.bytes = bytes
            var hash = SHA256Stream()
            hash.update(bytes)
            self.hash = hash
        }
    }

    /// Writes `body` with `prev` and `seq` added as the next line (one `writev` of the body and
    /// that tail); on failure nothing of it stays in the file and the chain is where it was.
    /// (Syncing is the caller's.)
    private func write(_ body: Body, _ state: inout State) throws {
        var tail: [UInt8] = []
        tail.reserveCapacity(96)
        tail.append(contentsOf: #","prev":""#.utf8)
        tail.append(contentsOf: state.prev.utf8)
        tail.append(contentsOf: #"","seq":"#.utf8)
        tail.append(contentsOf: String(state.seq + 1).utf8)
        tail.append(UInt8(ascii: "}"))
        var hash = body.hash
        hash.update(tail)
        let prev = Hex.encode(hash.digest())
        tail.append(10)
        let total = body.bytes.count + tail.count
        var written = 0
        while written < total {
            let result = body.bytes.withUnsafeBytes { head in
                tail.withUnsafeBytes { tail in
                    withUnsafeTemporaryAllocation(of: iovec.self, capacity: 2) { parts in
                        var count: Int32 = 0
                        if written < head.count {
                            parts[0] = iovec(iov_base: UnsafeMutableRawPointer(mutating: head.baseAddress! + written),
                                             iov_len: head.count - written)
                            count = 1
                        }
                        let from = max(0, written - head.count)
                        parts[Int(count)] = iovec(iov_base: UnsafeMutableRawPointer(mutating: tail.baseAddress! + from),
                                                  iov_len: tail.count - from)
                        return writev(state.fd, parts.baseAddress, count + 1)
                    }
                }
            }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else {
                let reason = String(cString: strerror(errno))
                if written > 0 { _ = ftruncate(state.fd, state.offset) }
                throw AuditError("write to \(path) failed: \(reason)")
            }
            written += result
        }
        state.seq += 1
        state.prev = prev
        state.offset += off_t(total)
    }
}
