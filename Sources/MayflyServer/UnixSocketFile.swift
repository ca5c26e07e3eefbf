import CMayflyShims
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The socket file of a Unix listener. Before binding, a socket that another server still
/// answers on is refused and a stale one (nothing listening) removed; at exit the file is
/// removed only while it is still the one this server bound (same device and inode), never a
/// socket another server put there meanwhile.
final class UnixSocketFile: Sendable {
    let path: String
    /// Device and inode of the socket this server bound.
    private let bound = Mutex<(dev: UInt64, ino: UInt64)?>(nil)

    init(path: String) { self.path = path }

    /// Refuses `path` when a server accepts connections on it; removes it when it is a stale
    /// socket. Nothing to do when it does not exist.
    static func claim(_ path: String) throws(ServerError) {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return }
        guard attributes[.type] as? FileAttributeType == .typeSocket else {
            throw ServerError("cannot listen on \(path): it exists and is not a socket")
        }
        switch probe(path) {
        case 0, EAGAIN, EINPROGRESS:
            throw ServerError("another server is listening on \(path) (stop it first, or use another socket path)")
        case ECONNREFUSED:
            guard unlink(path) == 0 || errno == ENOENT else {
                throw ServerError("cannot remove the stale socket \(path): \(String(cString: strerror(errno)))")
            }
        case ENOENT:
            return
        case let error:
            throw ServerError("cannot check whether another server listens on \(path): \(String(cString: strerror(error)))")
        }
    }

    /// The errno of a non-blocking `connect(2)` to `path` (0 when it connected at once).
    /// Non-blocking, so a live server with a full backlog answers EAGAIN instead of hanging.
    private static func probe(_ path: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        return mayfly_unix_connect(fd, path)
    }

    /// Remembers the socket just bound at `path` as this server's.
    func recordBound() {
        let identity = Self.identity(path)
        bound.withLock { $0 = identity }
    }

    /// Removes the socket file if it is still the one this server bound.
    func removeIfOurs() {
        guard let ours = bound.withLock({ $0 }), let now = Self.identity(path), now == ours else { return }
        _ = unlink(path)
    }

    /// Device and inode of the file at `path` (not following a symlink). FileManager, not
    /// lstat(2): `stat` is ambiguous between Glibc and NIO's C shims in this module.
    private static func identity(_ path: String) -> (dev: UInt64, ino: UInt64)? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
            let device = (attributes[.systemNumber] as? NSNumber)?.uint64Value,
            let inode = (attributes[.systemFileNumber] as? NSNumber)?.uint64Value
        else { return nil }
        return (device, inode)
    }
}
