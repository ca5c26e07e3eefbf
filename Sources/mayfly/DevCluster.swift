import ArgumentParser
import Foundation
import Logging
import MayflyClient
import MayflyCore
import MayflyDevCluster
import MayflyJSON
import MayflyRun
import MayflyServer
import Synchronization
import UnixSignals

/// `mayfly server --dev-ha`: a two-node HA cluster for trying a failover — a throw-away
/// PostgreSQL holding the store, and two `mayfly server` processes on it (sockets
/// `./.mayfly/node-1.sock` and `./.mayfly/node-2.sock`, pid files beside them), initialised
/// with a key-file seal so that a node that is killed and started again unseals itself. The
/// databases of dev mode are declared too. Ctrl-C stops both nodes and removes everything.
struct DevCluster {
    let logLevel: String?
    static let nodes = ["node-1", "node-2"]

    func run() async throws {
        let logger = makeLogger(level: logLevel ?? "info")
        let socketDir = FileManager.default.currentDirectoryPath + "/.mayfly"
        let sockets = Self.nodes.map { socketDir + "/\($0).sock" }
        guard sockets.allSatisfy({ $0.utf8.count < 108 }) else {
            FileHandle.standardError.write(Data("Error: cannot start: the working directory's path is too long for a socket path\n".utf8))
            throw ExitCode(1)
        }
        do {
            for socket in sockets { try MayflyHTTPServer.claimSocket(socket) }
        } catch {
            FileHandle.standardError.write(Data("Error: cannot start: \(error)\n".utf8))
            throw ExitCode(1)
        }
        DevServer.removeLeftovers(logger: logger)
        let root = try makeTemporaryDirectory(prefix: DevServer.prefix)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "\(getpid())\n".write(toFile: root + "/" + DevServer.ownerFile, atomically: true, encoding: .utf8)
        let madeSocketDir = !FileManager.default.fileExists(atPath: socketDir)
        try FileManager.default.createDirectory(atPath: socketDir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o750])
        defer { if madeSocketDir { _ = rmdir(socketDir) } }

        FileHandle.standardError.write(Data("dev-ha: starting a throw-away PostgreSQL for the store…\n".utf8))
        let postgres = try DevPostgres.start(in: root + "/pg")
        defer { postgres.stop() }
        let (url, password) = try await postgres.createStore()
        try password.write(toFile: root + "/store.password", atomically: true, encoding: .utf8)

        var children: [ChildProcess] = []
        defer {
            for child in children { child.signal(SIGTERM) }
            for child in children { Self.wait(child, seconds: 15) }
            for node in Self.nodes { try? FileManager.default.removeItem(atPath: socketDir + "/\(node).pid") }
            // A node killed in a drill left its socket file: every node has exited by now.
            for socket in sockets { try? FileManager.default.removeItem(atPath: socket) }
        }
        for (index, node) in Self.nodes.enumerated() {
            let config = root + "/\(node).hcl"
            try """
                storage "postgresql" {
                  connection_url = "\(url)"
                  password_file  = "\(root)/store.password"
                  ha_enabled     = true
                  lock_ttl       = "5s"
                  node_id        = "\(node)"
                }
                cluster_addr = "https://127.0.0.1:\(try DevPostgres.freePort())"
                api_addr     = "unix://\(sockets[index])"
                seal "keyfile" { path = "\(root)/unseal.key" }
                listener "unix" { path = "\(sockets[index])" }
                audit "file" { path = "\(root)/\(node)-audit.log" }
                log_level = "\(logLevel ?? "info")"
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let child = try Self.spawn(config: config, log: root + "/\(node).log")
            children.append(child)
            try "\(child.pid)\n".write(toFile: socketDir + "/\(node).pid", atomically: true, encoding: .utf8)
            let client = try MayflyClient(address: "unix://" + sockets[index], token: nil)
            defer { Task { try? await client.shutdown() } }
            guard try await Self.waitUntilAnswering(client, child) else {
                let log = (try? String(contentsOfFile: root + "/\(node).log", encoding: .utf8)) ?? ""
                FileHandle.standardError.write(Data("Error: \(node) did not start:\n\(log.suffix(3000))\n".utf8))
                throw ExitCode(1)
            }
            guard index == 0 else { continue }
            // The first node initialises the store (and, with the key file, unseals) and declares the databases.
            let initialized = try await client.request("PUT", "sys/init", body: Data("{}".utf8))
            guard initialized.status == 200, let token = initialized.json?["root_token"]?.stringValue else {
                FileHandle.standardError.write(Data("Error: cannot initialise the store: HTTP \(initialized.status)\n".utf8))
                throw ExitCode(1)
            }
            let admin = try MayflyClient(address: "unix://" + sockets[0], token: token)
            try await postgres.configure { path, data in
                let answer = try await admin.request("POST", path, body: Data(JSONValue.object(data).encoded()))
                guard (200..<300).contains(answer.status) else { throw ServerError("dev setup of \(path): HTTP \(answer.status)") }
            }
            try? await admin.shutdown()
            try token.write(toFile: root + "/root-token", atomically: true, encoding: .utf8)
        }
        let token = (try? String(contentsOfFile: root + "/root-token", encoding: .utf8)) ?? ""
        FileHandle.standardOutput.write(Data("""

            Mayfly is running in dev mode as a two-node HA cluster: for trying things out, never for real secrets.
            Its store is in a throw-away PostgreSQL \(postgres.version) (127.0.0.1:\(postgres.port)); everything
            lives in \(root) and is deleted on exit (Ctrl-C).

                node-1  unix://\(sockets[0])  pid \(children[0].pid)  (leads now)   log \(root)/node-1.log
                node-2  unix://\(sockets[1])  pid \(children[1].pid)  (standby)     log \(root)/node-2.log

            Paste these lines into another shell to use the `mayfly` CLI through the standby:

                \(DevServer.pathExport())
                export MAYFLY_ADDR='unix://\(sockets[1])'
                export MAYFLY_TOKEN='\(token)'

            Then try a failover (node-2 leads within lock_ttl, 5 s):

                mayfly operator members
                kill -9 $(cat .mayfly/node-1.pid)
                sleep 7; mayfly status

            Root Token: \(token)


            """.utf8))
        // Until Ctrl-C (or SIGTERM); a node that exits is reported, the other keeps serving.
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        for await _ in signals { break }
        Self.stopping.withLock { $0 = true }
        FileHandle.standardError.write(Data("dev-ha: stopping the nodes and PostgreSQL…\n".utf8))
    }

    /// Set once the cluster is being stopped: nodes exiting then are expected.
    static let stopping = Mutex(false)

    /// This executable, as `mayfly server --config CONFIG`, its output into `log`; its exit
    /// (a kill -9 in a failover drill) is reported unless the cluster is stopping.
    static func spawn(config: String, log: String) throws -> ChildProcess {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        _ = FileManager.default.createFile(atPath: log, contents: nil, attributes: [.posixPermissions: 0o600])
        let child = try ChildProcess.spawn([executable, "server", "--config", config],
                                           environment: ProcessInfo.processInfo.environment,
                                           input: "/dev/null", output: log, errors: log)
        let node = ((config as NSString).lastPathComponent as NSString).deletingPathExtension
        Task {
            _ = await child.exitCode()
            guard !stopping.withLock({ $0 }) else { return }
            FileHandle.standardError.write(Data("dev-ha: \(node) (pid \(child.pid)) exited; the other node serves on\n".utf8))
        }
        return child
    }

    /// Whether the node answers `sys/health` within 30 seconds (false when it exits first).
    static func waitUntilAnswering(_ client: MayflyClient, _ child: ChildProcess) async throws -> Bool {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, child.isRunning {
            if let answer = try? await client.request("GET", "sys/health"), answer.status > 0 { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// Waits up to `seconds` for `child` to exit, then kills it (the cluster is stopping: the
    /// calling thread has nothing else to do).
    static func wait(_ child: ChildProcess, seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while child.isRunning, Date() < deadline { usleep(50_000) }
        child.signal(SIGKILL)
    }
}
