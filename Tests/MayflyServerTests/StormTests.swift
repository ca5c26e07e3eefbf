import Foundation
import NIOCore
import NIOPosix
import MayflyClient
import MayflyCore
import MayflyPostgres
import Synchronization
import Testing

/// A storm of cold starts (issue 7, point 3; the storm target): 2,000 concurrent first fetches
/// against a PostgreSQL with `max_connections = 100`.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["MAYFLY_TEST_PG_HOST"] != nil
                || ProcessInfo.processInfo.environment["MAYFLY_REQUIRE_INTEGRATION"] == "1",
                "needs PostgreSQL (scripts/test)"), .serialized)
struct StormTests {
    @Test func twoThousandConcurrentFirstFetchesStayWithinTheBudget() async throws {
        try await DedicatedCluster.with { cluster in
            let keyFile = NSTemporaryDirectory() + "/mf-\(UUID().uuidString.prefix(6)).key"
            let server = try ServerProcess(extraConfig: #"seal "keyfile" { path = "\#(keyFile)" }"#, logLevel: "warning")
            defer { server.signal(SIGTERM) }
            try await storm(cluster, server)
        }
    }

    private func storm(_ cluster: DedicatedCluster, _ server: ServerProcess) async throws {
        try await server.start()
        let token = try await IncidentProcessTests.initialise(server)
        let pool = 4
        let config = JSONValue.object([
            "connection_url": .string(try cluster.connectionURL()), "password": .string(try cluster.value("MAYFLY_TEST_PG_PASSWORD")),
            "allowed_roles": "*", "max_open_connections": .int(Int64(pool)),
        ])
        #expect(try await server.request("POST", "database/config/storm", token: token,
                                         json: String(decoding: config.encoded(), as: UTF8.self)).status == 204)
        #expect(try await server.request("POST", "database/roles/app", token: token,
                                         json: #"{"db_name":"storm","default_ttl":"10m","connection_limit":5}"#).status == 204)
        let superuser = try await PGConnection.connect(PGConnectionConfig(
            host: try cluster.value("MAYFLY_TEST_PG_SOCKET_DIR"), port: Int(try cluster.value("MAYFLY_TEST_PG_PORT"))!,
            database: "postgres", user: try cluster.value("MAYFLY_TEST_PG_SUPERUSER"), sslMode: "disable"))
        let settings = try await superuser.query("SELECT current_setting('max_connections'), current_setting('superuser_reserved_connections')")
        #expect(settings == [["100", "3"]])
        let budget = 80 - 3 - pool

        // Watch the broker's admin connections while the storm runs.
        let admin = try cluster.value("MAYFLY_TEST_PG_USER")
        let most = Atomic<Int>(0)
        let watching = Atomic<Bool>(true)
        let watcher = Task {
            while watching.load(ordering: .relaxed) {
                let count = Int(try await superuser.query("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", [admin])
                    .first?[0] ?? "0") ?? 0
                _ = most.max(count, ordering: .relaxed)
                try await Task.sleep(for: .milliseconds(20))
            }
        }

        // Loops of its own: 2,000 connections on the process-wide loops would hold up the other
        // suites' clients (a TLS handshake waited past the server's deadline behind them).
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let client = try MayflyClient(address: "unix://" + server.socketPath, token: token, timeoutSeconds: 90,
                                      maximumConnections: 2000, eventLoopGroup: loops)
        let started = Date()
        let answers = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
            for _ in 0..<2000 {
                group.addTask {
                    let response = try await client.request("GET", "database/creds/app")
                    return (response.status, response.headers["retry-after"])
                }
            }
            var answers: [(Int, String?)] = []
            for try await answer in group { answers.append(answer) }
            return answers
        }
        let seconds = Date().timeIntervalSince(started)
        watching.store(false, ordering: .relaxed)
        _ = try? await watcher.value
        try await client.shutdown()
        try await loops.shutdownGracefully()

        #expect(answers.count == 2000, "every request was answered (in \(seconds) s)")
        let issued = answers.filter { $0.0 == 200 }.count
        let limited = answers.filter { $0.0 == 429 }
        #expect(issued + limited.count == 2000, "only credentials and 429s: \(Set(answers.map(\.0)))")
        #expect(limited.allSatisfy { $0.1.flatMap(Int.init).map { $0 > 0 } ?? false }, "every 429 says when to retry")
        #expect(issued == budget / 5, "the budget admits \(budget / 5) credentials of 5 connections; issued \(issued)")
        #expect(most.load(ordering: .relaxed) > 0, "the watcher saw the broker's connections (or this check proves nothing)")
        #expect(most.load(ordering: .relaxed) <= pool, "admin connections peaked at \(most.load(ordering: .relaxed)) (pool \(pool))")
        let live = Int(try await superuser.query(
            "SELECT coalesce(sum(rolconnlimit), 0) FROM pg_roles WHERE rolname LIKE 'v-app-%'").first?[0] ?? "") ?? -1
        #expect(live <= budget, "live connection limits \(live) within the budget \(budget)")
        await superuser.close()
        let pgLog = try String(contentsOfFile: try cluster.value("MAYFLY_TEST_PG_LOG"), encoding: .utf8)
        #expect(!pgLog.contains("too many clients") && !pgLog.contains("remaining connection slots"),
                "PostgreSQL never ran out of connections")
        #expect(!server.log().contains("too many clients"))
    }
}
