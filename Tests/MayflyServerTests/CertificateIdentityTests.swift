import Foundation
import MayflyTestSupport
import MayflyClient
import MayflyCore
import Testing

/// Issue 4, point 2: over mTLS, a client certificate from the configured CA whose URI SAN is
/// bound gets its policies with no token, and `auth/cert/login` turns it into a token; no
/// certificate gets 403; an expired certificate or one from another CA fails the handshake.
@Suite(.serialized) struct CertificateIdentityTests {
    /// Client certificates: `billing` (URI SAN spiffe://prod/billing), `other` (spiffe://prod/other,
    /// same CA, bound to nothing), `expired` (same SAN as billing,
    /// valid only in 2020, made with `openssl ca` to set the dates) and `foreign` (another CA).
    static func makeClientCertificates(in directory: String) async throws {
        let script = """
            set -e
            cd '\(directory)'
            printf 'subjectAltName=URI:spiffe://prod/billing\\n' > client.ext
            openssl req -newkey rsa:2048 -nodes -keyout billing.key -out billing.csr -subj /CN=billing 2>/dev/null
            openssl x509 -req -in billing.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out billing.pem -days 2 -extfile client.ext 2>/dev/null
            printf 'subjectAltName=URI:spiffe://prod/other\\n' > other.ext
            openssl req -newkey rsa:2048 -nodes -keyout other.key -out other.csr -subj /CN=other 2>/dev/null
            openssl x509 -req -in other.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out other.pem -days 2 -extfile other.ext 2>/dev/null
            openssl req -newkey rsa:2048 -nodes -keyout foreign.key -out foreign.csr -subj /CN=billing 2>/dev/null
            openssl x509 -req -in foreign.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial -out foreign.pem -days 2 -extfile client.ext 2>/dev/null
            mkdir -p ca-db && : > ca-db/index.txt && echo 1000 > ca-db/serial
            cat > ca.cnf <<CNF
            [ ca ]
            default_ca = test
            [ test ]
            database = ca-db/index.txt
            new_certs_dir = ca-db
            serial = ca-db/serial
            default_md = sha256
            policy = anything
            unique_subject = no
            [ anything ]
            commonName = supplied
            CNF
            openssl req -newkey rsa:2048 -nodes -keyout expired.key -out expired.csr -subj /CN=billing 2>/dev/null
            openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr -out expired.pem \\
              -startdate 20200101000000Z -enddate 20200102000000Z -extfile client.ext 2>/dev/null
            """
        try await ChildRun.shell(script, what: "openssl")
    }

    @Test func boundCertificateGetsItsPoliciesAndOthersDoNot() async throws {
        let directory = "/tmp/mf-mtls-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: directory + "/policies", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await ListenerTests.makeCertificates(in: directory)
        try await Self.makeClientCertificates(in: directory)
        try #"path "secret/data/billing/*" { capabilities = ["read"] }"#
            .write(toFile: directory + "/policies/billing-app.hcl", atomically: true, encoding: .utf8)
        let port = LoopbackPort.free()
        let server = try ServerProcess(extraConfig: """
            seal "keyfile" { path = "\(directory)/unseal.key" }
            policies { directory = "\(directory)/policies" }
            bind "cert:spiffe://prod/billing" { policies = ["billing-app"] }
            listener "tcp" {
              address = "127.0.0.1:\(port)"
              tls_cert_file = "\(directory)/server.pem"
              tls_key_file = "\(directory)/server.key"
              tls_client_ca_file = "\(directory)/ca.pem"
              # Not a test of the handshake limit: a loaded 2-core machine may take seconds.
              tls_handshake_timeout = "5m"
            }
            """)
        try await server.start()
        defer { server.signal(SIGTERM) }
        let token = try #require(try JSONValue.parse(try await server.request("PUT", "sys/init", json: "{}").body)["root_token"]?.stringValue)
        for path in ["billing/db", "orders/db"] {
            #expect(try await server.request("POST", "secret/data/\(path)", token: token, json: #"{"data":{"k":"v"}}"#).status == 200)
        }
        let address = "https://127.0.0.1:\(port)"
        func client(_ name: String?) throws -> MayflyClient {
            try MayflyClient(address: address, token: nil, caFile: directory + "/ca.pem",
                             certFile: name.map { "\(directory)/\($0).pem" }, keyFile: name.map { "\(directory)/\($0).key" })
        }

        let billing = try client("billing")
        #expect(try await billing.request("GET", "secret/data/billing/db").status == 200, "bound certificate, no token")
        #expect(try await billing.request("GET", "secret/data/orders/db").status == 403)
        #expect(try await billing.request("GET", "auth/token/lookup-self").status == 403, "bound, but there is no token to look up")
        let login = try await billing.request("POST", "auth/cert/login", body: Data("{}".utf8))
        #expect(login.status == 200)
        let auth = try JSONValue.parse(login.body)["auth"]
        #expect(auth?["policies"] == ["billing-app", "default"])
        #expect(auth?["metadata"]?["uri_san"] == "spiffe://prod/billing")
        try await billing.shutdown()

        // The token renews only over a connection with the certificate it was issued to.
        let certToken = try #require(auth?["client_token"]?.stringValue)
        func renewal(_ name: String?) async throws -> Int {
            let client = try MayflyClient(address: address, token: certToken, caFile: directory + "/ca.pem",
                                          certFile: name.map { "\(directory)/\($0).pem" }, keyFile: name.map { "\(directory)/\($0).key" })
            let status = try await client.request("POST", "auth/token/renew-self", body: Data("{}".utf8)).status
            try await client.shutdown()
            return status
        }
        #expect(try await renewal("billing") == 200)
        #expect(try await renewal(nil) == 403, "no client certificate")
        #expect(try await renewal("other") == 403, "another certificate of the same CA")
        #expect(try await server.request("POST", "auth/token/renew", token: token,
                                         json: #"{"token":"\#(certToken)"}"#).status == 403, "root over the socket, no certificate")

        let anonymous = try client(nil)
        #expect(try await anonymous.request("GET", "secret/data/billing/db").status == 403, "no certificate")
        #expect(try await anonymous.request("POST", "auth/cert/login", body: Data("{}".utf8)).status == 400)
        try await anonymous.shutdown()

        for name in ["expired", "foreign"] {
            let refused = try client(name)
            await #expect(throws: (any Error).self, "\(name) certificate must fail the handshake") {
                _ = try await refused.request("GET", "secret/data/billing/db")
            }
            try await refused.shutdown()
        }
    }
}
