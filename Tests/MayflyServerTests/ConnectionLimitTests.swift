import Foundation
import MayflyTestSupport
import Glibc
import MayflyClient
import MayflyCore
import MayflyServer
import Testing

/// Idle and slow connections cannot exhaust the server (review finding 5): per-listener
/// `http_read_header_timeout`, `http_idle_timeout`, `tls_handshake_timeout` and
/// `max_connections`, on a real server process.
@Suite(.serialized) struct ConnectionLimitTests {
    static let request = "GET /v1/sys/health HTTP/1.1\r\nHost: mayfly\r\n\r\n"

    /// Raises this process's soft descriptor limit to the hard one (thousands of test sockets).
    static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// Descriptors `pid` has open.
    static func openDescriptors(_ pid: pid_t) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
    }

    /// A TLS listener stanza with certificates made in `directory`.
    static func tlsListener(port: Int, directory: String, options: String) async throws -> String {
        try await ListenerTests.makeCertificates(in: directory)
        return """
            listener "tcp" {
              address = "127.0.0.1:\(port)"
              tls_cert_file = "\(directory)/server.pem"
              tls_key_file = "\(directory)/server.key"
              \(options)
            }
            """
    }

    @Test func idleConnectionsToEveryListenerDoNotStarveTheUnixSocket() async throws {
        Self.raiseDescriptorLimit()
        let certificates = "/tmp/mf-cl-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: certificates, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: certificates) }
        let port = LoopbackPort.free()
        // Long timeouts: the idle connections must still be open while the request is timed.
        let patient = "http_read_header_timeout = \"5m\"  http_idle_timeout = \"5m\""
        let server = try ServerProcess(
            extraConfig: try await Self.tlsListener(port: port, directory: certificates,
                                              options: patient + "  tls_handshake_timeout = \"5m\""),
            unixListenerOptions: patient)
        try await server.start()
        defer { server.signal(SIGTERM) }
        let pid = try #require(server.pid)
        // Less a few: a connection of start()'s health check may still be open here.
        let before = Self.openDescriptors(pid) - 5

        var idle: [RawConnection] = []
        defer { idle.forEach { $0.close() } }
        for _ in 0..<2000 {
            idle.append(try RawConnection.unix(server.socketPath))
            idle.append(try RawConnection.tcp(port: port))
        }
        // Wait until the server has accepted them all (each holds a descriptor there).
        let deadline = ContinuousClock.now + .seconds(60)
        while Self.openDescriptors(pid) < before + 4000, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(Self.openDescriptors(pid) >= before + 4000, "the server holds the 4,000 idle connections")

        // Starved means never answered: the bound is generous, as other tests share the machine.
        for attempt in 1...3 {
            let connection = try RawConnection.unix(server.socketPath)
            try connection.send(Self.request)
            let response = try await connection.readResponse(within: 20)
            connection.close()
            #expect(response?.hasPrefix("HTTP/1.1 501") == true, "attempt \(attempt): no answer")
        }
        let stillOpen = idle.filter(\.isOpen).count
        #expect(stillOpen == 4000, "no idle connection was cut while under the cap and timeouts")
        #expect(server.isRunning)
    }

    @Test func idleAndSlowConnectionsAreClosedButRequestsInFlightAreNot() async throws {
        // Timeouts of a few seconds: a server starved of CPU by the tests beside it must still
        // read a request sent at once before its header timeout fires. The body's limit is long:
        // on a loaded machine the waits below can outlast the default 30 s.
        let server = try ServerProcess(
            unixListenerOptions: "http_read_header_timeout = \"3s\"  http_idle_timeout = \"5s\"  http_read_timeout = \"10m\"")
        try await server.start()
        defer { server.signal(SIGTERM) }

        let fresh = try RawConnection.unix(server.socketPath)
        let keepAlive = try RawConnection.unix(server.socketPath)
        try keepAlive.send(Self.request)
        #expect(try await keepAlive.readResponse(within: 10)?.hasPrefix("HTTP/1.1 501") == true)
        let halfHead = try RawConnection.unix(server.socketPath)
        try halfHead.send("GET /v1/sys/health HTTP/1.1\r\nHost: may")
        // A request whose body is still coming is in flight.
        let inFlight = try RawConnection.unix(server.socketPath)
        try inFlight.send("POST /v1/sys/health HTTP/1.1\r\nHost: mayfly\r\nContent-Length: 10\r\n\r\n{\"a\":")

        #expect(try await fresh.closes(within: 20), "a connection that sends nothing is closed")
        #expect(try await keepAlive.closes(within: 20), "an idle keep-alive connection is closed")
        #expect(try await halfHead.closes(within: 20), "a connection that stops mid-head is closed")

        // Well past both timeouts: the request in flight is still there; finish it, then reuse the connection.
        try await Task.sleep(for: .seconds(6))
        #expect(inFlight.isOpen, "a request in flight is not cut")
        try inFlight.send("\"b\"} ")
        #expect(try await inFlight.readResponse(within: 10)?.hasPrefix("HTTP/1.1 ") == true)
        try inFlight.send(Self.request)
        #expect(try await inFlight.readResponse(within: 10)?.hasPrefix("HTTP/1.1 501") == true)
        #expect(server.isRunning)
    }

    /// A client that sends a head and then trickles its body is closed after `http_read_timeout`
    /// (it would otherwise hold its connection for as long as it likes), authenticated or not.
    @Test func aBodyThatTricklesPastTheReadTimeoutIsClosed() async throws {
        let server = try ServerProcess(unixListenerOptions: "http_read_timeout = \"2s\"  http_idle_timeout = \"5m\"")
        try await server.start()
        defer { server.signal(SIGTERM) }
        let trickle = try RawConnection.unix(server.socketPath)
        try trickle.send("PUT /v1/sys/unseal HTTP/1.1\r\nHost: mayfly\r\nContent-Length: 100\r\n\r\n{\"key\":")
        for _ in 0..<3 {
            try await Task.sleep(for: .milliseconds(500))
            if trickle.isOpen { try? trickle.send(" ") }
        }
        #expect(try await trickle.closes(within: 20), "a body still arriving after http_read_timeout is cut")
        // A body sent at once is served as always.
        let prompt = try RawConnection.unix(server.socketPath)
        try prompt.send("PUT /v1/sys/unseal HTTP/1.1\r\nHost: mayfly\r\nContent-Length: 2\r\n\r\n{}")
        #expect(try await prompt.readResponse(within: 10)?.hasPrefix("HTTP/1.1 ") == true)
        prompt.close()
    }

    /// A started server with a TLS listener with `options` (and its certificates' directory).
    static func tlsServer(_ options: String) async throws -> (ServerProcess, Int, String) {
        let certificates = "/tmp/mf-cl-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: certificates, withIntermediateDirectories: true)
        let port = LoopbackPort.free()
        let server = try ServerProcess(extraConfig: try await tlsListener(port: port, directory: certificates, options: options))
        try await server.start()
        return (server, port, certificates)
    }

    /// `sys/health`'s status through a client that completes its handshake.
    static func healthOverTLS(port: Int, certificates: String) async throws -> Int {
        let client = try MayflyClient(address: "https://127.0.0.1:\(port)", token: nil, caFile: certificates + "/ca.pem")
        let status = try await client.request("GET", "sys/health").status
        try await client.shutdown()
        return status
    }

    @Test func aTLSHandshakeThatNeverCompletesIsClosed() async throws {
        let (server, port, certificates) = try await Self.tlsServer(
            "tls_handshake_timeout = \"1s\"  http_read_header_timeout = \"5m\"  http_idle_timeout = \"5m\"")
        defer {
            server.signal(SIGTERM)
            try? FileManager.default.removeItem(atPath: certificates)
        }

        let silent = try RawConnection.tcp(port: port)
        // The start of a ClientHello record, and then nothing.
        let stalled = try RawConnection.tcp(port: port)
        try stalled.send("\u{16}\u{03}\u{01}\u{00}\u{7f}\u{01}\u{00}")
        #expect(try await silent.closes(within: 20), "a connection that never starts its handshake is closed")
        #expect(try await stalled.closes(within: 20), "a handshake that stalls is closed")

        // A client that completes its handshake is served as before.
        #expect(try await Self.healthOverTLS(port: port, certificates: certificates) == 501)
    }

    /// A handshake has `tls_handshake_timeout`, even when the HTTP limits are shorter: a slow
    /// client (a loaded machine) is not cut off by `http_read_header_timeout` mid-handshake.
    /// Then the first request has the HTTP limit from the handshake's end.
    @Test func aHandshakeHasItsOwnLimitNotTheRequestHeadsOne() async throws {
        let (server, port, certificates) = try await Self.tlsServer(
            "tls_handshake_timeout = \"5m\"  http_read_header_timeout = \"1s\"  http_idle_timeout = \"5m\"")
        defer {
            server.signal(SIGTERM)
            try? FileManager.default.removeItem(atPath: certificates)
        }

        let slow = try RawConnection.tcp(port: port)
        #expect(try await !slow.closes(within: 3), "still open 3 s into a handshake with 5 minutes")
        slow.close()
        #expect(try await Self.healthOverTLS(port: port, certificates: certificates) == 501)
    }

    @Test func atMaxConnectionsTheLongestIdleConnectionMakesRoom() async throws {
        let server = try ServerProcess(
            unixListenerOptions: "max_connections = 50  http_read_header_timeout = \"5m\"  http_idle_timeout = \"5m\"")
        try await server.start()
        defer { server.signal(SIGTERM) }

        // 50 keep-alive connections, each idle after one request, oldest first. (Any connection
        // left from start() is older still and makes room for these.)
        var open: [RawConnection] = []
        for _ in 0..<50 {
            let connection = try RawConnection.unix(server.socketPath)
            try connection.send(Self.request)
            #expect(try await connection.readResponse(within: 10)?.hasPrefix("HTTP/1.1 501") == true)
            open.append(connection)
        }
        let newcomer = try RawConnection.unix(server.socketPath)
        try newcomer.send(Self.request)
        #expect(try await newcomer.readResponse(within: 10)?.hasPrefix("HTTP/1.1 501") == true,
                "a new connection at the cap is served")
        #expect(try await open[0].closes(within: 10), "the longest-idle connection was closed for it")
        let stillOpen = open[1...].filter(\.isOpen).count
        #expect(stillOpen == 49, "and only that one")

        // Now no connection is idle: 50 requests have begun (half a head each).
        let busy = Array(open[1...]) + [newcomer]
        for connection in busy { try connection.send("GET /v1/sys/health HTTP/1.1\r\n") }
        // Once the server has read those bytes, each of these connections is busy.
        let read = ContinuousClock.now + .seconds(20)
        while busy.contains(where: { $0.unreadByPeer != 0 }), ContinuousClock.now < read {
            try await Task.sleep(for: .milliseconds(20))
        }
        try await Task.sleep(for: .milliseconds(200))
        let refused = try RawConnection.unix(server.socketPath)
        #expect(try await refused.closes(within: 10), "with none idle, the new connection is closed at once")
        for connection in busy { try connection.send("Host: mayfly\r\n\r\n") }
        for connection in busy {
            #expect(try await connection.readResponse(within: 10)?.hasPrefix("HTTP/1.1 501") == true,
                    "begun requests were not cut")
        }
    }

    @Test func connectionCapsAreFittedIntoTheDescriptorLimit() {
        var config = MayflyConfig(storagePath: "/x")
        config.unixListeners = [UnixListenerConfig(path: "/s", maxConnections: 4096)]
        config.tcpListeners = [TCPListenerConfig(host: "127.0.0.1", port: 1, certFile: "c", keyFile: "k", maxConnections: 2048)]
        #expect(DescriptorBudget.fit(&config, limit: 20000) == nil, "caps that fit are kept")
        #expect(config.unixListeners[0].maxConnections == 4096)

        let warning = DescriptorBudget.fit(&config, limit: 1024 + DescriptorBudget.reserve)
        #expect(warning?.contains("max_connections lowered") == true)
        #expect(config.unixListeners[0].maxConnections == 682 && config.tcpListeners[0].maxConnections == 341,
                "both lowered by the same factor, within the limit less the reserve")
    }
}
