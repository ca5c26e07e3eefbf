import Foundation
import Glibc

/// A plain client socket (Unix or TCP) for tests that need to hold connections open, send half
/// a request, or see when the server closes one. Waits poll briefly and sleep in between, so
/// they do not hold a cooperative thread.
final class RawConnection: @unchecked Sendable {
    // Only touched from the test that owns it.
    private(set) var fd: Int32

    private init(fd: Int32) { self.fd = fd }

    /// Connects to a Unix socket.
    static func unix(_ path: String) throws -> RawConnection {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ServerProcessError(message: "socket(): errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: bytes)
            buffer[bytes.count] = 0
        }
        return try connecting(fd, to: &address, what: path)
    }

    /// Connects `fd` to `address` (a `sockaddr_un` or `sockaddr_in`); closes it on failure.
    private static func connecting<Address>(_ fd: Int32, to address: inout Address, what: String) throws -> RawConnection {
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<Address>.size)) }
        }
        guard result == 0 else {
            let error = errno
            Glibc.close(fd)
            throw ServerProcessError(message: "connect(\(what)): errno \(error)")
        }
        return RawConnection(fd: fd)
    }

    /// Connects to 127.0.0.1:`port`.
    static func tcp(port: Int) throws -> RawConnection {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ServerProcessError(message: "socket(): errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return try connecting(fd, to: &address, what: "127.0.0.1:\(port)")
    }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw ServerProcessError(message: "send: errno \(errno)") }
            sent += count
        }
    }

    /// What a read would see now without waiting: nil when nothing is there yet, else the
    /// bytes (empty at EOF or after a reset: the server closed the connection).
    private func readNow() -> [UInt8]? {
        var pollfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pollfd, 1, 0) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        if count < 0 && (errno == EAGAIN || errno == EINTR) { return nil }
        return count > 0 ? Array(buffer[..<count]) : []
    }

    /// Whether the server closed the connection within `seconds` (data it sends meanwhile,
    /// such as a response, is read and dropped).
    func closes(within seconds: Double) async throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        // Looks once more after the deadline: a test task starved past it (a busy machine)
        // still sees what arrived in time.
        while true {
            let late = ContinuousClock.now >= deadline
            while let bytes = readNow() {
                if bytes.isEmpty { return true }
            }
            if late { return false }
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Whether the connection is still open (nothing to read, or data but no EOF).
    var isOpen: Bool {
        while let bytes = readNow() {
            if bytes.isEmpty { return false }
        }
        return true
    }

    /// Reads one HTTP response (head and a Content-Length body) within `seconds`; nil if the
    /// connection closed or the time ran out first.
    func readResponse(within seconds: Double) async throws -> String? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var received: [UInt8] = []
        // Looks once more after the deadline (see `closes(within:)`).
        while true {
            let late = ContinuousClock.now >= deadline
            while let bytes = readNow() {
                if bytes.isEmpty { return nil }
                received += bytes
            }
            let text = String(decoding: received, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n") {
                let head = text[..<end.lowerBound].lowercased()
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                if text.utf8.count - text[..<end.upperBound].utf8.count >= length { return text }
            }
            if late { return nil }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Bytes sent that the server has not read yet (Linux `SIOCOUTQ`; on a Unix socket they
    /// stay counted until the peer reads them).
    var unreadByPeer: Int {
        var count: Int32 = 0
        return ioctl(fd, UInt(TIOCOUTQ), &count) == 0 ? Int(count) : -1
    }

    func close() {
        guard fd >= 0 else { return }
        Glibc.close(fd)
        fd = -1
    }

    deinit { close() }
}
