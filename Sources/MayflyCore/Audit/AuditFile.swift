import Foundation
import MayflyCrypto
import Synchronization

/// An append-only JSON-lines file in which every line carries its number (`seq`) and the
/// SHA-256 of the previous line (`prev`), so `mayfly audit verify` finds an edited, deleted
/// or reordered line. Lines recorded concurrently are committed together, as the lease rows
/// are: one `write` (and at most one `fsync`) for every line waiting, on a queue of its own
/// (never an event-loop thread or the cooperative pool).
///
/// A durable line (a request, recorded before it is handled) is on disk — written and
/// `fsync`ed — when `record` returns. A line recorded with `durable: false` (a response,
/// recorded before it is sent) is written when `record` returns and on disk within
/// `flushDelay`, with the next durable group, whichever comes first: a crash can lose only
/// responses of the last moments, never a request that was handled. If a write fails, the
/// file is cut back to the last complete line, so the chain stays verifiable and no failed
/// line is half there; every line of that group fails. If a deferred `fsync` fails, every later
/// line fails (the device fails closed) until the file is reopened.
public final class AuditFile: Sendable {
    /// `prev` of the first line.
    public static let genesis = Hex.encode(KeyedHash.sha256(Array("mayfly-audit-v1".utf8)))

    private struct State {
        var fd: Int32
        var seq: Int
        var prev: String
        var offset: off_t
        /// Lines written since the last `fsync`.
        var unsynced = false
        /// Why the device failed closed (a deferred `fsync` failed), if it did.
        var broken: String?
    }

    /// A line waiting for the next group commit.
    private struct Waiting: Sendable {
        let entry: [String: JSONValue]
        let durable: Bool
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct Queue {
        var waiting: [Waiting] = []
        var draining = false
    }

    /// Longest a line recorded with `durable: false` stays written but not yet `fsync`ed.
    static let flushDelay: DispatchTimeInterval = .milliseconds(20)

    public let path: String
    private let state: Mutex<State>
    private let queue = Mutex(Queue())
    private let writer = DispatchQueue(label: "mayfly.audit.group-commit")

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
        state = Mutex(State(fd: fd, seq: seq, prev: prev, offset: offset))
    }

    deinit {
        state.withLock { _ = close($0.fd) }
    }

    /// Appends `entry` (an object) with `seq` and `prev` added; durable when it returns.
    /// Blocks the calling thread for the `fsync`: for tools and tests; the server uses `record`.
    public func append(_ entry: JSONValue) throws {
        guard case .object(let members) = entry else { throw AuditError("audit entries are objects") }
        try state.withLock { state in
            let before = state
            try commit([members], &state)
            do {
                try sync(&state)
            } catch {
                _ = ftruncate(state.fd, before.offset)
                state = before
                throw error
            }
        }
    }

    /// Appends `entry` (an object) with `seq` and `prev` added; returns once it is written —
    /// and with `durable`, on disk — having waited (suspended, no thread blocked) for the group
    /// commit that wrote it.
    public func record(_ entry: JSONValue, durable: Bool = true) async throws {
        guard case .object(let members) = entry else { throw AuditError("audit entries are objects") }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let start = queue.withLock { queue -> Bool in
                queue.waiting.append(Waiting(entry: members, durable: durable, continuation: continuation))
                if queue.draining { return false }
                queue.draining = true
                return true
            }
            if start { writer.async { self.drain() } }
        }
    }

    /// Commits groups until no line is waiting (runs on `writer`).
    private func drain() {
        while true {
            let group = queue.withLock { queue -> [Waiting] in
                guard !queue.waiting.isEmpty else {
                    queue.draining = false
                    return []
                }
                defer { queue.waiting.removeAll(keepingCapacity: true) }
                return queue.waiting
            }
            guard !group.isEmpty else { return }
            let durable = group.contains(where: \.durable)
            do {
                let deferSync = try state.withLock { state -> Bool in
                    if let broken = state.broken { throw AuditError(broken) }
                    let before = state
                    try commit(group.map(\.entry), &state)
                    if durable {
                        do {
                            try sync(&state)
                        } catch {
                            // Not on disk: the group is taken back out, the chain is where it was.
                            _ = ftruncate(state.fd, before.offset)
                            state = before
                            throw error
                        }
                    }
                    return !durable
                }
                for line in group { line.continuation.resume() }
                if deferSync { writer.asyncAfter(deadline: .now() + Self.flushDelay) { self.flushDeferred() } }
            } catch {
                for line in group { line.continuation.resume(throwing: error) }
            }
        }
    }

    /// `fsync`s lines written without it, if no durable group has done so meanwhile.
    private func flushDeferred() {
        state.withLock { state in
            guard state.unsynced, state.broken == nil else { return }
            do {
                try sync(&state)
            } catch {
                state.broken = "audit file \(path) could not be synced; every request fails until it is reopened: \(error)"
            }
        }
    }

    /// `fsync`s what has been written.
    private func sync(_ state: inout State) throws {
        guard fsync(state.fd) == 0 || errno == EINVAL else {
            throw AuditError("fsync of \(path) failed: \(String(cString: strerror(errno)))")
        }
        state.unsynced = false
    }

    /// Writes `entries` as consecutive lines with one `write`; on failure nothing of them stays
    /// in the file and the chain is where it was. (The caller `fsync`s.)
    private func commit(_ entries: [[String: JSONValue]], _ state: inout State) throws {
        var seq = state.seq, prev = state.prev
        var bytes: [UInt8] = []
        for var members in entries {
            seq += 1
            members["seq"] = .int(Int64(seq))
            members["prev"] = .string(prev)
            let line = JSONValue.object(members).encoded()
            prev = Hex.encode(KeyedHash.sha256(line))
            bytes.append(contentsOf: line)
            bytes.append(10)
        }
        var written = 0
        while written < bytes.count {
            let result = bytes[written...].withUnsafeBytes { write(state.fd, $0.baseAddress, $0.count) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else {
                let reason = String(cString: strerror(errno))
                if written > 0 { _ = ftruncate(state.fd, state.offset) }
                throw AuditError("write to \(path) failed: \(reason)")
            }
            written += result
        }
        state.seq = seq
        state.prev = prev
        state.offset += off_t(bytes.count)
        state.unsynced = true
    }
}
