import Foundation
import MayflyCrypto
import Synchronization

/// An append-only JSON-lines file in which every line carries its number (`seq`) and the
/// SHA-256 of the previous line (`prev`), so `mayfly audit verify` finds an edited, deleted
/// or reordered line.
///
/// Group commit: each line is encoded by its caller and appended with one short `write` (to
/// the page cache) under a lock; a sync loop on a queue of its own (never an event-loop thread
/// or the cooperative pool) `fsync`s whatever has been written while writing goes on, so one
/// `fsync` covers every line written before it began. A durable line (a request, recorded before it is handled) is on
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
        var syncing = false
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
            guard let data = FileManager.default.contents(atPath: path) else {
                close(fd)
                throw AuditError("cannot read \(path)")
            }
            // Continue after the last complete line.
            let bytes = [UInt8](data)
            let end = (bytes.lastIndex(of: 10) ?? -1) + 1
            let lines = bytes[0..<end].split(separator: 10, omittingEmptySubsequences: true)
            if let last = lines.last {
                seq = lines.count
                prev = Hex.encode(KeyedHash.sha256(Array(last)))
            }
            offset = off_t(end)
            if end < bytes.count { _ = ftruncate(fd, offset) }
        }
        state = Mutex(State(fd: fd, seq: seq, prev: prev, offset: offset, synced: offset))
    }

    deinit {
        state.withLock { _ = close($0.fd) }
    }

    /// Appends `entry` (an object) with `seq` and `prev` added; durable when it returns.
    /// Blocks the calling thread for the `fsync`: for tools and tests; the server uses `record`.
    public func append(_ entry: JSONValue) throws {
        let body = try Self.body(entry)
        try state.withLock { state in
            if let broken = state.broken { throw AuditError(broken) }
            let before = state
            try write(body, &state)
            guard fsync(state.fd) == 0 || errno == EINVAL else {
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
        let body = try Self.body(entry)
        guard durable else {
            let start = try state.withLock { state -> Bool in
                if let broken = state.broken { throw AuditError(broken) }
                try write(body, &state)
                return startSyncing(&state)
            }
            if start { syncer.async { self.syncLoop() } }
            return
        }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            do {
                let start = try state.withLock { state -> Bool in
                    if let broken = state.broken { throw AuditError(broken) }
                    try write(body, &state)
                    state.syncWaiters.append((state.offset, continuation))
                    return startSyncing(&state)
                }
                if start { syncer.async { self.syncLoop() } }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// Whether the caller must start the sync loop (it was not running).
    private func startSyncing(_ state: inout State) -> Bool {
        guard !state.syncing else { return false }
        state.syncing = true
        return true
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
    private func syncLoop() {
        while true {
            let target: (fd: Int32, end: off_t)? = state.withLock { state in
                guard state.synced < state.offset, state.broken == nil else {
                    state.syncing = false
                    return nil
                }
                return (state.fd, state.offset)
            }
            guard let target else { return }
            let ok = fsync(target.fd) == 0 || errno == EINVAL
            let reason = ok ? "" : String(cString: strerror(errno))
            let (done, failed) = state.withLock { state -> ([CheckedContinuation<Void, any Error>], [CheckedContinuation<Void, any Error>]) in
                if ok {
                    state.synced = max(state.synced, target.end)
                    let done = state.syncWaiters.filter { $0.end <= target.end }.map(\.continuation)
                    state.syncWaiters.removeAll { $0.end <= target.end }
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

    /// Writes `body` (an encoded object without its closing brace) with `prev` and `seq` added
    /// as the next line; on failure nothing of it stays in the file and the chain is where it
    /// was. (Syncing is the caller's.)
    private func write(_ body: [UInt8], _ state: inout State) throws {
        var line = body
        line.append(contentsOf: #","prev":""#.utf8)
        line.append(contentsOf: state.prev.utf8)
        line.append(contentsOf: #"","seq":"#.utf8)
        line.append(contentsOf: String(state.seq + 1).utf8)
        line.append(UInt8(ascii: "}"))
        let prev = Hex.encode(KeyedHash.sha256(line))
        line.append(10)
        var written = 0
        while written < line.count {
            let result = line[written...].withUnsafeBytes { Glibc.write(state.fd, $0.baseAddress, $0.count) }
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
        state.offset += off_t(line.count)
    }
}
