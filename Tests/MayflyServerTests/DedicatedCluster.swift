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

    /// Runs a command to completion on a dispatch thread (not a cooperative one). posix_spawn
    /// and waitpid rather than Foundation's Process, which on Linux waits until every process
    /// that inherited its descriptors exits, and the PostgreSQL that pg_ctl starts never does.
    /// With `output`, stdout and stderr are left in that file for the caller.
    static func run(_ command: [String], output: String? = nil) async throws {
        let outputPath = output ?? NSTemporaryDirectory() + "/mf-run-\(UUID().uuidString.prefix(8)).out"
        defer { if output == nil { try? FileManager.default.removeItem(atPath: outputPath) } }
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                var actions = posix_spawn_file_actions_t()
                posix_spawn_file_actions_init(&actions)
                defer { posix_spawn_file_actions_destroy(&actions) }
                posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
                posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
                posix_spawn_file_actions_adddup2(&actions, 1, 2)
                // Nothing else of the test process reaches the child (the PostgreSQL that pg_ctl
                // starts would hold the tests' sockets open for its whole life).
                typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
                if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
                    _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
                }
                let arguments = command.map { strdup($0) } + [nil]
                defer { arguments.forEach { free($0) } }
                var pid = pid_t()
                let spawned = posix_spawn(&pid, command[0], &actions, nil, arguments, environ)
                guard spawned == 0 else {
                    continuation.resume(throwing: ServerProcessError(message: "cannot run \(command[0]): error \(spawned)"))
                    return
                }
                var status: Int32 = 0
                while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
                continuation.resume(returning: (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f))
            }
        }
        guard status == 0 else {
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            throw ServerProcessError(message: "\(command.joined(separator: " ")) exited \(status): \(text.suffix(2000))")
        }
    }
}
