import Foundation
import MayflyTestSupport
import Glibc
import MayflyClient
import MayflyCore
import Testing

/// Both listeners of a real server: the Unix socket (mode, group) and TLS.
@Suite(.serialized) struct ListenerTests {
    /// A CA and a server certificate for 127.0.0.1 made with openssl.
    static func makeCertificates(in directory: String) async throws {
        let script = """
            set -e
            cd '\(directory)'
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=mayfly-test-ca 2>/dev/null
            openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=other-ca 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null
            """
        try await ChildRun.shell(script, what: "openssl")
    }

    @Test func unixSocketHasModeAndServesHTTP() async throws {
        let server = try ServerProcess()
        try await server.start()
        let attributes = try FileManager.default.attributesOfItem(atPath: server.socketPath)
        #expect((attributes[.posixPermissions] as? Int) == 0o660)
        let health = try await server.request("GET", "sys/health")
        #expect(health.status == 501)
        await server.kill(signal: SIGTERM)
    }

    @Test func tlsListenerServesVerifiedClients() async throws {
        let directory = "/tmp/mf-tls-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await Self.makeCertificates(in: directory)
        let port = LoopbackPort.free()
        let server = try ServerProcess(extraConfig: """
            listener "tcp" {
              address = "127.0.0.1:\(port)"
              tls_cert_file = "\(directory)/server.pem"
              tls_key_file = "\(directory)/server.key"
              tls_handshake_timeout = "5m"
            }
            """)
        try await server.start()
        defer { server.signal(SIGTERM) }
        let client = try MayflyClient(address: "https://127.0.0.1:\(port)", token: nil, caFile: directory + "/ca.pem")
        var response: MayflyClient.Response?
        for _ in 0..<50 {
            response = try? await client.request("GET", "sys/health")
            if response != nil { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(response?.status == 501)
        #expect(try JSONValue.parse(response?.body ?? Data())["initialized"] == false)
        try await client.shutdown()
        // A client that does not trust the server's CA is refused by its own verification.
        let untrusting = try MayflyClient(address: "https://127.0.0.1:\(port)", token: nil, caFile: directory + "/other-ca.pem")
        await #expect(throws: (any Error).self) { _ = try await untrusting.request("GET", "sys/health") }
        try await untrusting.shutdown()
    }
}
