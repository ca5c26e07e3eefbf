import Foundation
import MayflyClient
import Synchronization
import Testing

/// The client library's own lifecycle, against a bare HTTP peer on a Unix socket.
struct MayflyClientTests {
    /// A one-connection HTTP peer: answers one request with `{}` and records when the
    /// client closes the connection.
    final class Peer: Sendable {
        let path = "/tmp/mf-peer-\(UUID().uuidString.prefix(6)).sock"
        final class Flag: Sendable { let value = Atomic<Bool>(false) }
        let closedByClient = Flag()
        private let listener: Int32

        init() throws {
            listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0, listen(listener, 4) == 0 else { throw POSIXError(.EADDRINUSE) }
            let socket = listener, closed = closedByClient
            Thread.detachNewThread {
                let connection = accept(socket, nil, nil)
                guard connection >= 0 else { return }
                defer { close(connection) }
                var buffer = [UInt8](repeating: 0, count: 4096)
                var request: [UInt8] = []
                while !request.ends(with: Array("\r\n\r\n".utf8)) {
                    let count = read(connection, &buffer, buffer.count)
                    guard count > 0 else { return }
                    request += buffer[..<count]
                }
                let response = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                _ = response.withCString { write(connection, $0, strlen($0)) }
                // Keep-alive: the connection stays open until the client closes it.
                while read(connection, &buffer, buffer.count) > 0 {}
                closed.value.store(true, ordering: .releasing)
            }
        }

        deinit {
            close(listener)
            unlink(path)
        }
    }

    @Test func aClientReleasedWithoutShutdownClosesItsConnections() async throws {
        let peer = try Peer()
        do {
            let client = try MayflyClient(address: "unix://" + peer.path, token: nil)
            #expect(try await client.request("GET", "sys/health").status == 200)
            // No shutdown(): the way out of a scope on an error path. AsyncHTTPClient traps
            // (debug builds) when a running client is released; this one must not.
        }
        let deadline = ContinuousClock.now + .seconds(20)
        while !peer.closedByClient.value.load(ordering: .acquiring) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let closed = peer.closedByClient.value.load(ordering: .acquiring)
        #expect(closed, "the released client closed its keep-alive connection")
    }
}

private extension Array where Element == UInt8 {
    func ends(with suffix: [UInt8]) -> Bool { count >= suffix.count && Array(self[(count - suffix.count)...]) == suffix }
}
