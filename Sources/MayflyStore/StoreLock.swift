import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock on a SQLite store, held for the life of the server, so that a second
/// server on the same file fails at startup instead of unsealing and scheduling beside the first.
///
/// `flock(LOCK_EX|LOCK_NB)` on `<store>.lock` (mode 0600) next to the database; the file holds
/// the owner's pid for the error message. The kernel drops the lock when the process exits,
/// even after kill -9; the file itself stays (removing it would race with the next server).
public final class StoreLock: Sendable {
    /// The lock file.
    public let path: String
    private let descriptor: Int32

    /// Takes the lock on the store at `storePath`, creating the lock file (and the store's
    /// directory, 0700) if needed. Throws `StorageError(.unavailable)` naming the store and the
    /// pid holding it when another process has it.
    public init(storePath: String) throws(StorageError) {
        path = storePath + ".lock"
        let directory = (storePath as NSString).deletingLastPathComponent
        if !directory.isEmpty && !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(
                    atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw StorageError(.unavailable, "cannot create the store's directory \(directory): \(error)")
            }
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StorageError(.unavailable, "cannot open the store lock \(path): \(String(cString: strerror(errno)))")
        }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let error = errno
            if error == EINTR { continue }
            let holder = Self.readPID(fd)
            close(fd)
            guard error == EWOULDBLOCK else {
                throw StorageError(.unavailable, "cannot lock the store \(storePath): \(String(cString: strerror(error)))")
            }
            throw StorageError(.unavailable,
                "the store \(storePath) is in use by another server (pid \(holder.map(String.init) ?? "unknown")); "
                    + "only one server may use a SQLite store at a time")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        descriptor = fd
    }

    /// The pid written in the lock file, if any.
    private static func readPID(_ fd: Int32) -> pid_t? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return pid_t(String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    deinit {
        close(descriptor)  // releases the lock
    }
}
