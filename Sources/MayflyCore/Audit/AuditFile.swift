import Foundation
import MayflyCrypto
import Synchronization

/// An append-only JSON-lines file in which every line carries its number (`seq`) and the
/// SHA-256 of the previous line (`prev`), so `mayfly audit verify` finds an edited, deleted
/// or reordered line. Each line is written with one `write(2)` and `fsync`ed before `append`
/// returns. If a write fails, the file is cut back to the last complete line, so the chain
/// stays verifiable and the failed line is not half there.
public final class AuditFile: Sendable {
    /// `prev` of the first line.
    public static let genesis = Hex.encode(KeyedHash.sha256(Array("mayfly-audit-v1".utf8)))

    private struct State {
        var fd: Int32
        var seq: Int
        var prev: String
        var offset: off_t
    }

    public let path: String
    private let state: Mutex<State>

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
    public func append(_ entry: JSONValue) throws {
        try state.withLock { state in
            guard case .object(var members) = entry else { throw AuditError("audit entries are objects") }
            members["seq"] = .int(Int64(state.seq + 1))
            members["prev"] = .string(state.prev)
            let line = JSONValue.object(members).encoded()
            var bytes = line
            bytes.append(10)
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
            guard fsync(state.fd) == 0 || errno == EINVAL else {
                let reason = String(cString: strerror(errno))
                _ = ftruncate(state.fd, state.offset)
                throw AuditError("fsync of \(path) failed: \(reason)")
            }
            state.seq += 1
            state.prev = Hex.encode(KeyedHash.sha256(line))
            state.offset += off_t(bytes.count)
        }
    }
}
