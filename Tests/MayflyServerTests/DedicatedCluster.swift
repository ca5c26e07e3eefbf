import Foundation

/// A PostgreSQL cluster of the test's own (started with `scripts/pg-test-cluster`, like the
/// shared one: TLS from a generated CA, unprivileged user), for tests that stop and restart
/// PostgreSQL and so must not disturb the others.
final class DedicatedCluster: Sendable {
    let directory: String
    let environment: [String: String]

    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    private init(directory: String, environment: [String: String]) {
        self.directory = directory
        self.environment = environment
    }

    /// Creates and starts a cluster in a new temporary directory.
    static func start() async throws -> DedicatedCluster {
        let directory = "/tmp/mf-pgd-\(UUID().uuidString.prefix(8))"
        try await run([repositoryRoot + "/scripts/pg-test-cluster", "start", directory])
        return DedicatedCluster(directory: directory, environment: try readEnvironment(directory))
    }

    private static func readEnvironment(_ directory: String) throws -> [String: String] {
        let text = try String(contentsOfFile: directory + "/env", encoding: .utf8)
        var environment: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("export ") {
            let pair = line.dropFirst("export ".count).split(separator: "=", maxSplits: 1)
            if pair.count == 2 { environment[String(pair[0])] = String(pair[1]) }
            else if pair.count == 1 { environment[String(pair[0])] = "" }
        }
        return environment
    }

    /// A synchronous streaming replica of this cluster, started in a new directory (the
    /// primary acknowledges a commit once the replica has it).
    func startReplica() async throws -> DedicatedCluster {
        let replica = "/tmp/mf-pgr-\(UUID().uuidString.prefix(8))"
        try await Self.run([Self.repositoryRoot + "/scripts/pg-test-cluster", "replica", directory, replica])
        return DedicatedCluster(directory: replica, environment: try Self.readEnvironment(replica))
    }

    /// Stops the server as a crash would (no shutdown checkpoint, sessions cut).
    func crash() async throws {
        try await Self.run([Self.repositoryRoot + "/scripts/pg-test-cluster", "crash", directory])
    }

    /// Promotes this replica to primary.
    func promote() async throws {
        try await Self.run([Self.repositoryRoot + "/scripts/pg-test-cluster", "promote", directory])
    }

    /// Runs `body` with a fresh cluster, destroyed afterwards whatever happens.
    static func with(_ body: (DedicatedCluster) async throws -> Void) async throws {
        let cluster = try await start()
        do {
            try await body(cluster)
        } catch {
            await cluster.destroy()
            throw error
        }
        await cluster.destroy()
    }

    func value(_ name: String) throws -> String {
        guard let value = environment[name] else { throw ServerProcessError(message: "\(name) missing from \(directory)/env") }
        return value
    }

    /// The admin URL Mayfly is configured with (verify-full against the cluster's CA).
    func connectionURL() throws -> String {
        "postgresql://\(try value("MAYFLY_TEST_PG_USER"))@127.0.0.1:\(try value("MAYFLY_TEST_PG_PORT"))/"
            + "\(try value("MAYFLY_TEST_PG_DB"))?sslmode=verify-full&sslrootcert=\(try value("MAYFLY_TEST_PG_SSLROOTCERT"))"
    }

    /// Stops PostgreSQL (fast shutdown: sessions are cut), keeping its data.
    func stopServer() async throws {
        try await pgCtl(["-D", directory + "/data", "-m", "fast", "-w", "stop"])
    }

    /// Starts PostgreSQL again on the same port and data.
    func startServer() async throws {
        try await pgCtl(["-D", directory + "/data", "-l", directory + "/postgresql.log", "-w", "-t", "60", "start"])
    }

    /// Stops the cluster and removes its directory.
    func destroy() async {
        try? await Self.run([Self.repositoryRoot + "/scripts/pg-test-cluster", "stop", directory])
    }

    private func pgCtl(_ arguments: [String]) async throws {
        let pgCtl = try value("MAYFLY_TEST_PG_BIN") + "/pg_ctl"
        let runAs = environment["MAYFLY_TEST_PG_RUNAS"] ?? ""
        try await Self.run(runAs.isEmpty ? [pgCtl] + arguments : ["/usr/sbin/runuser", "-u", runAs, "--", pgCtl] + arguments)
    }

    /// Runs a command to completion (see `ChildRun`: nothing of the test process's descriptors
    /// reaches it, so the PostgreSQL that pg_ctl starts holds none of the tests' sockets);
    /// throws with its output when it fails.
    static func run(_ command: [String]) async throws {
        let (status, output) = try await ChildRun.toExit(command, timeout: .seconds(600))
        guard status == 0 else {
            throw ServerProcessError(message: "\(command.joined(separator: " ")) exited \(status): \(output.suffix(2000))")
        }
    }
}
