import Foundation
import MayflyClient
import MayflyRun
import Testing

/// A real `mayfly server` process started from the built binary, for tests that need signals,
/// restarts or the process's own log output.
final class ServerProcess: @unchecked Sendable {
    // Only touched from the test that owns it.
    let directory: String
    let configPath: String
    let socketPath: String
    let logPath: String
    /// The ports of the config's TCP listeners, which `start()` also waits for.
    let tcpPorts: [Int]
    private var process: ChildProcess?

    /// The built `mayfly` binary: $MAYFLY_BIN, or beside the test bundle.
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["MAYFLY_BIN"] { return path }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return bundle.appendingPathComponent("mayfly").path
    }

    /// Writes a config with a Unix listener (and `extra` HCL) into a new temporary directory.
    /// `storage`: the storage stanza (nil: a SQLite file in the directory).
    init(extraConfig: String = "", logLevel: String = "info", unixListenerOptions: String = "", storage: String? = nil) throws {
        let base = "/tmp/mf-\(UUID().uuidString.prefix(6))"
        directory = base
        try FileManager.default.createDirectory(atPath: base + "/run", withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o750])
        socketPath = base + "/run/mayfly.sock"
        configPath = base + "/mayfly.hcl"
        logPath = base + "/server.log"
        tcpPorts = extraConfig.split(separator: "\n").compactMap { line -> Int? in
            let text = line.trimmingCharacters(in: .whitespaces)
            guard text.hasPrefix("address"), let colon = text.lastIndex(of: ":") else { return nil }
            return Int(text[text.index(after: colon)...].filter(\.isNumber))
        }
        try """
            \(storage ?? "storage \"sqlite\" { path = \"\(base)/data/mayfly.db\" }")
            listener "unix"  { path = "\(socketPath)" \(unixListenerOptions) }
            log_level = "\(logLevel)"
            \(extraConfig)
            """.write(toFile: configPath, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
    }

    /// Starts the server and waits until it answers `sys/health`.
    func start(environment: [String: String] = [:]) async throws {
        #expect(FileManager.default.isExecutableFile(atPath: Self.binary), "mayfly binary missing at \(Self.binary)")
        let process = try ChildProcess.spawn(
            [Self.binary, "server", "--config", configPath],
            environment: ProcessInfo.processInfo.environment.merging(environment) { $1 },
            input: "/dev/null", output: logPath, errors: logPath)
        self.process = process
        // Generous: at the start of a full run dozens of servers and clusters start at once on
        // two cores; a server that fails to start exits, which ends the wait at once.
        let deadline = Date().addingTimeInterval(90)
        var lastTry = false
        while !lastTry {
            // One try after the deadline too: this process may not have run for part of it.
            lastTry = Date() >= deadline
            if !process.isRunning { break }
            if FileManager.default.fileExists(atPath: socketPath),
                let response = try? await request("GET", "sys/health"), response.status > 0,
                tcpPorts.allSatisfy(Self.accepts)
            {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ServerProcessError(message: "server did not start; log:\n" + log())
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port` (a listener that is up).
    static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    /// The server's log so far.
    func log() -> String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    /// Sends `signal` and waits for the process to exit (SIGKILL after 60 s), suspended: no
    /// thread is held meanwhile (see `ChildRun`). A `defer`, which cannot wait, uses `signal(_:)`.
    func kill(signal: Int32 = SIGKILL) async {
        guard let process else { return }
        process.signal(signal)
        _ = await process.exitCode(killingAfter: .seconds(60))
        self.process = nil
    }

    var isRunning: Bool { process?.isRunning ?? false }

    /// The server's process id while it runs.
    var pid: pid_t? { process.flatMap { $0.isRunning ? $0.pid : nil } }

    /// Sends `signal` without waiting (e.g. SIGHUP to reload).
    func signal(_ signal: Int32) {
        process?.signal(signal)
    }

    /// Waits for the process to exit by itself (e.g. at a fault-injection point).
    func waitForExit(seconds: Double = 30) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        process = nil
    }

    var terminationStatus: Int32? { process?.exitStatus }

    /// One request over the Unix socket with a fresh client.
    func request(_ method: String, _ path: String, token: String? = nil, json: String? = nil,
                 query: [(String, String)] = []) async throws -> MayflyClient.Response
    {
        let client = try MayflyClient(address: "unix://" + socketPath, token: token)
        defer { Task { try? await client.shutdown() } }
        return try await client.request(method, path, body: json.map { Data($0.utf8) }, query: query)
    }

    deinit {
        process?.signal(SIGKILL)
        try? FileManager.default.removeItem(atPath: directory)
    }
}

struct ServerProcessError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

extension ServerProcess {
    /// Configures database `name` as the test PostgreSQL (every role allowed); the status.
    func configureTestDatabase(_ name: String, token: String, extra: [String: JSONValue] = [:]) async throws -> Int {
        let env = ReconcileProcessTests.env
        let url = "postgresql://\(try env("MAYFLY_TEST_PG_USER"))@127.0.0.1:\(try env("MAYFLY_TEST_PG_PORT"))/\(try env("MAYFLY_TEST_PG_DB"))"
            + "?sslmode=verify-full&sslrootcert=\(try env("MAYFLY_TEST_PG_SSLROOTCERT"))"
        let config = JSONValue.object([
            "connection_url": .string(url), "password": .string(try env("MAYFLY_TEST_PG_PASSWORD")), "allowed_roles": "*",
        ].merging(extra) { $1 })
        return try await request("POST", "database/config/\(name)", token: token, json: String(decoding: config.encoded(), as: UTF8.self)).status
    }
}
