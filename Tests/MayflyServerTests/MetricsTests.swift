import Foundation
import MayflyClient
import MayflyCore
import Testing

/// `sys/metrics?format=prometheus` (issue 4): requests by route and status, issuance and
/// revocation counts and latencies, leases by state, sealed state; token required unless
/// the config opens it.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["MAYFLY_TEST_PG_HOST"] != nil
                || ProcessInfo.processInfo.environment["MAYFLY_REQUIRE_INTEGRATION"] == "1",
                "needs the test PostgreSQL from scripts/test"))
struct MetricsTests {
    @Test func prometheusMetricsCountRequestsCredentialsAndLeases() async throws {
        let server = try ServerProcess(extraConfig: #"seal "keyfile" { path = "\#(NSTemporaryDirectory())/mf-\#(UUID().uuidString.prefix(6)).key" }"#)
        try await server.start()
        defer { server.signal(SIGTERM) }
        let token = try #require(try JSONValue.parse(try await server.request("PUT", "sys/init", json: "{}").body)["root_token"]?.stringValue)
        #expect(try await server.request("GET", "sys/metrics", query: [("format", "prometheus")]).status == 403, "a token is needed by default")
        #expect(try await server.request("GET", "sys/metrics", token: token).status == 400, "format is required")

        #expect(try await server.configureTestDatabase("db", token: token) == 204)
        #expect(try await server.request("POST", "database/roles/metered", token: token,
                                         json: #"{"db_name":"db","default_ttl":"10m"}"#).status == 204)
        for _ in 0..<2 { #expect(try await server.request("GET", "database/creds/metered", token: token).status == 200) }
        let revoked = try await server.request("PUT", "sys/leases/revoke-prefix/database/creds/metered", token: token)
        #expect(revoked.status == 204, "\(String(decoding: revoked.body, as: UTF8.self))\n\(server.log())")
        #expect(try await server.request("GET", "database/creds/\(String(repeating: "z", count: 10))", token: token).status == 400)
        _ = try await server.request("GET", "no/such/\(UUID().uuidString)", token: token)

        let response = try await server.request("GET", "sys/metrics", token: token, query: [("format", "prometheus")])
        #expect(response.status == 200)
        let text = String(decoding: response.body, as: UTF8.self)
        #expect(text.contains("mayfly_sealed 0"))
        #expect(text.contains(#"mayfly_credentials_issued_total{role="metered"} 2"#))
        #expect(text.contains(#"mayfly_leases_revoked_total{database="db"} 2"#))
        #expect(text.contains(#"mayfly_leases{state="revoked"} 2"#))
        #expect(text.contains(#"mayfly_leases{state="active"} 0"#))
        #expect(text.contains("mayfly_credential_issue_duration_seconds_count 2"))
        #expect(text.contains(#"mayfly_requests_total{route="database/creds",status="200"} 2"#))
        #expect(text.contains(#"mayfly_requests_total{route="database/creds",status="400"} 1"#))
        #expect(text.contains(#"route="unknown",status="404""#), "unknown paths share one label")
        #expect(!text.contains("no/such"), "no user-chosen path in labels")
    }

    @Test func metricsCanBeOpenedByConfig() async throws {
        let server = try ServerProcess(extraConfig: "telemetry { unauthenticated_metrics_access = true }")
        try await server.start()
        defer { server.signal(SIGTERM) }
        let response = try await server.request("GET", "sys/metrics", query: [("format", "prometheus")])
        #expect(response.status == 200)
        #expect(String(decoding: response.body, as: UTF8.self).contains("mayfly_sealed 1"), "uninitialised counts as sealed")
    }
}
