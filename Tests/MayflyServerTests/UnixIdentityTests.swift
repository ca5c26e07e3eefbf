import Foundation
import MayflyClient
import MayflyCore
import Testing

/// Issue 4, point 1: over the Unix socket, an unprivileged process (`runuser -u nobody`) whose
/// user is bound gets its own credentials and KV path with no token and is refused another
/// role's; an unbound user gets 403 everywhere but health. Needs root (to switch users) and
/// the test PostgreSQL; CI has both.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["MAYFLY_REQUIRE_INTEGRATION"] == "1"
                || (getuid() == 0 && ProcessInfo.processInfo.environment["MAYFLY_TEST_PG_HOST"] != nil),
                "needs root and the test PostgreSQL (scripts/test)"))
struct UnixIdentityTests {
    static let unboundUser = "mayfly-unbound"

    /// `curl` over the socket as `user`; returns the HTTP status.
    static func status(as user: String, _ socket: String, _ path: String) async throws -> Int {
        let (status, output) = try await ChildRun.toExit([
            "/usr/sbin/runuser", "-u", user, "--", "/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
            "--unix-socket", socket, "http://mayfly/v1/\(path)",
        ])
        #expect(status == 0, "curl as \(user): \(output)")
        return Int(output) ?? -1
    }

    @Test func boundUserGetsItsOwnPathsAndUnboundUserNothing() async throws {
        #expect(getuid() == 0, "switching users needs root")
        if getpwnam(Self.unboundUser) == nil {
            try await DedicatedCluster.run(["/usr/sbin/useradd", "--system", "--no-create-home", "-g", "nogroup",
                                            "--shell", "/usr/sbin/nologin", Self.unboundUser])
        }
        let policies = NSTemporaryDirectory() + "/mf-pol-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: policies, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: policies) }
        try """
            path "database/creds/orders-ro" { capabilities = ["read"] }
            path "secret/data/orders/*"     { capabilities = ["read"] }
            """.write(toFile: policies + "/orders-app.hcl", atomically: true, encoding: .utf8)
        let server = try ServerProcess(
            extraConfig: """
                seal "keyfile" { path = "\(NSTemporaryDirectory())/mf-\(UUID().uuidString.prefix(6)).key" }
                policies { directory = "\(policies)" }
                bind "unix:user:nobody" { policies = ["orders-app"] }
                """,
            unixListenerOptions: #"group = "nogroup""#)
        // The server makes the socket's directory, reachable by the socket's group.
        let runDirectory = (server.socketPath as NSString).deletingLastPathComponent
        try FileManager.default.removeItem(atPath: runDirectory)
        _ = chmod(server.directory, 0o755)
        try await server.start()
        let made = try FileManager.default.attributesOfItem(atPath: runDirectory)
        #expect((made[.groupOwnerAccountID] as? Int) == 65534 && (made[.posixPermissions] as? Int) == 0o750,
                "the socket directory the server made: group nogroup, mode 0750: \(made)")
        defer { server.signal(SIGTERM) }
        let token = try #require(try JSONValue.parse(try await server.request("PUT", "sys/init", json: "{}").body)["root_token"]?.stringValue)

        #expect(try await server.configureTestDatabase("db", token: token) == 204)
        for role in ["orders-ro", "billing-ro"] {
            #expect(try await server.request("POST", "database/roles/\(role)", token: token,
                                             json: #"{"db_name":"db","default_ttl":"5m"}"#).status == 204)
        }
        for path in ["orders/db", "billing/db"] {
            #expect(try await server.request("POST", "secret/data/\(path)", token: token, json: #"{"data":{"k":"v"}}"#).status == 200)
        }
        let socket = server.socketPath

        // nobody is bound to orders-app: its own paths, without a token.
        #expect(try await Self.status(as: "nobody", socket, "database/creds/orders-ro") == 200)
        #expect(try await Self.status(as: "nobody", socket, "secret/data/orders/db") == 200)
        #expect(try await Self.status(as: "nobody", socket, "database/creds/billing-ro") == 403)
        #expect(try await Self.status(as: "nobody", socket, "secret/data/billing/db") == 403)
        #expect(try await Self.status(as: "nobody", socket, "sys/policies/acl/orders-app") == 403)

        // An unbound user in the socket's group reaches the socket but nothing behind it.
        for path in ["database/creds/orders-ro", "secret/data/orders/db", "sys/leases/lookup/", "auth/token/lookup-self"] {
            #expect(try await Self.status(as: Self.unboundUser, socket, path) == 403, "\(path)")
        }
        #expect(try await Self.status(as: Self.unboundUser, socket, "sys/health") == 200)
        _ = try await server.request("PUT", "sys/leases/revoke-prefix/database/creds/orders-ro", token: token)
    }
}
