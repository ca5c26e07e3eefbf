import ArgumentParser
import Foundation
import Logging
import MayflyCore
import MayflyCrypto
import MayflyPostgres
import MayflyServer
import MayflyRun

/// `mayfly server --dev`: an initialised, unsealed server with its store in a temporary
/// directory, its socket in `./.mayfly/`, and a throw-away PostgreSQL with the databases the
/// README's tour uses. Everything is removed on exit.
struct DevServer {
    let noPostgres: Bool
    let logLevel: String?

    func run() async throws {
        let logger = makeLogger(level: logLevel ?? "info")
        let socketDir = FileManager.default.currentDirectoryPath + "/.mayfly"
        var socket = socketDir + "/mayfly.sock"
        if socket.utf8.count < 108 {
            // Another dev server in this directory keeps its socket: refuse before touching anything.
            do {
                try MayflyHTTPServer.claimSocket(socket)
            } catch {
                FileHandle.standardError.write(Data("Error: cannot start: \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
        Self.removeLeftovers(logger: logger)
        let root = try makeTemporaryDirectory(prefix: Self.prefix)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "\(getpid())\n".write(toFile: root + "/" + Self.ownerFile, atomically: true, encoding: .utf8)
        let madeSocketDir = !FileManager.default.fileExists(atPath: socketDir)
        try FileManager.default.createDirectory(atPath: socketDir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o750])
        // ./.mayfly goes too when this server made it and nothing else is left in it (the server
        // removes its socket itself, if it is still its own).
        defer { if madeSocketDir { _ = rmdir(socketDir) } }
        _ = chmod(socketDir, 0o750)
        if socket.utf8.count >= 108 { socket = root + "/mayfly.sock" }

        var config = MayflyConfig(storagePath: root + "/store/mayfly.db")
        config.unixListeners = [UnixListenerConfig(path: socket)]
        config.auditPath = root + "/audit.log"   // so that `mayfly incident exposure` has reads to show
        config.logLevel = logLevel ?? "info"

        var postgres: DevPostgres?
        if !noPostgres {
            do {
                postgres = try DevPostgres.start(in: root + "/pg")
            } catch {
                logger.warning("no throw-away PostgreSQL: \(error) (use --dev-no-postgres to skip it)")
            }
        }
        defer { postgres?.stop() }

        let database = postgres
        let socketPath = socket
        try await serve(config: config, logger: logger) { broker in
            do {
                let result = try await broker.seal.initialize(shares: 1, threshold: 1)
                _ = try await broker.seal.submit(share: result.shares[0])
                var banner = """

                    Mayfly is running in dev mode: for trying things out, never for real secrets.
                    Its store and audit log live in \(root) and are deleted on exit (Ctrl-C).
                    Paste these lines into another shell to use the `mayfly` CLI:

                        \(Self.pathExport())
                        export MAYFLY_ADDR='unix://\(socketPath)'
                        export MAYFLY_TOKEN='\(result.rootToken)'

                    Unseal Key: \(Hex.encode(result.shares[0]))
                    Root Token: \(result.rootToken)

                    """
                if let database {
                    try await database.configure(broker, rootToken: result.rootToken)
                    banner += """

                        Throw-away PostgreSQL \(database.version) is database "dev"; role "dev-readonly" issues logins
                        that expire in 15 minutes and can read everything. Database "orders" is the README tour's
                        (table orders, group orders_reader, user migrator, group reporting). Fetch a login and use it:

                            mayfly read database/creds/dev-readonly
                            psql 'postgresql://<username>@127.0.0.1:\(database.port)/postgres'   # password from the output

                        Superuser (for you, not for apps): psql -h \(database.socketDirectory) -p \(database.port) -U postgres postgres

                        """
                }
                FileHandle.standardOutput.write(Data((banner + "\n").utf8))
            } catch {
                logger.critical("dev mode could not initialise its store: \(error)")
            }
        }
    }
}

extension DevServer {
    static let prefix = "mayfly-dev-"
    static let ownerFile = "owner.pid"

    /// The banner's line that puts this `mayfly` on `PATH`: its own directory, absolute.
    static func pathExport() -> String {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
        let directory = (executable as NSString).deletingLastPathComponent
        let plain = directory.allSatisfy { $0.isLetter || $0.isNumber || "/._+-@,".contains($0) }
        return plain ? "export PATH=\"\(directory):$PATH\""
            : "export PATH='\(directory.replacingOccurrences(of: "'", with: "'\\''"))':\"$PATH\""
    }

    /// Removes what dev servers that did not exit cleanly (kill -9, a crash) left behind: their
    /// temporary directory and the throw-away PostgreSQL still running in it. A directory is
    /// a leftover when its owner process is gone (or is no longer a mayfly).
    static func removeLeftovers(logger: Logger) {
        let base = NSTemporaryDirectory()
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        for entry in entries where entry.hasPrefix(prefix) {
            let directory = (base as NSString).appendingPathComponent(entry)
            var info = stat()
            guard stat(directory, &info) == 0, info.st_uid == geteuid(),
                let text = try? String(contentsOfFile: directory + "/" + ownerFile, encoding: .utf8),
                let owner = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), !isMayfly(owner)
            else { continue }
            let data = directory + "/pg/data"
            if FileManager.default.fileExists(atPath: data + "/postmaster.pid"), let bin = try? DevPostgres.findBinaries() {
                let postgres = DevPostgres(dataDirectory: data, binDirectory: bin, runAs: geteuid() == 0 ? "nobody" : nil,
                                           port: 0, socketDirectory: directory + "/pg", version: "")
                postgres.stop(mode: "immediate")
            }
            try? FileManager.default.removeItem(atPath: directory)
            logger.notice("removed what a dev server that did not exit cleanly left behind",
                          metadata: ["directory": "\(directory)", "pid": "\(owner)"])
        }
    }

    /// Whether `pid` is a running mayfly process (a reused pid is not).
    private static func isMayfly(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        guard let command = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
        let program = String(decoding: command.prefix { $0 != 0 }, as: UTF8.self)
        return (program as NSString).lastPathComponent == "mayfly"
    }
}

/// A directory only this user can write, traversable by others (PostgreSQL runs as another
/// user when Mayfly runs as root).
func makeTemporaryDirectory(prefix: String) throws -> String {
    let base = NSTemporaryDirectory().hasSuffix("/") ? NSTemporaryDirectory() : NSTemporaryDirectory() + "/"
    var template = Array((base + prefix + "XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { throw CLIError(message: "cannot create a temporary directory", code: 1) }
    let path = String(cString: made)
    _ = chmod(path, 0o711)
    return path
}

/// A throw-away PostgreSQL cluster from the system's binaries, run as an unprivileged user
/// (PostgreSQL refuses to run as root), listening on 127.0.0.1 and a socket in its directory.
struct DevPostgres: Sendable {
    let dataDirectory: String
    let binDirectory: String
    let runAs: String?
    let port: Int
    let socketDirectory: String
    let version: String

    var url: String { "postgresql://postgres@127.0.0.1:\(port)/postgres" }

    static func findBinaries() throws -> String {
        let base = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [])
            .compactMap { Int($0) }.sorted(by: >)
        for version in versions where FileManager.default.isExecutableFile(atPath: "\(base)/\(version)/bin/initdb") {
            return "\(base)/\(version)/bin"
        }
        throw CLIError(message: "PostgreSQL server binaries not found under \(base) (apt-get install postgresql)", code: 1)
    }

    static func start(in directory: String) throws -> DevPostgres {
        let bin = try findBinaries()
        let runAs: String? = geteuid() == 0 ? "nobody" : nil
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        if let runAs, let user = getpwnam(runAs) {
            _ = chown(directory, user.pointee.pw_uid, user.pointee.pw_gid)
        }
        let data = directory + "/data"
        let port = try freePort()
        let server = DevPostgres(
            dataDirectory: data, binDirectory: bin, runAs: runAs, port: port, socketDirectory: directory,
            version: URL(fileURLWithPath: bin).deletingLastPathComponent().lastPathComponent)
        try server.exec("initdb", [
            "-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        ])
        try server.exec("pg_ctl", [
            "-D", data, "-l", directory + "/postgresql.log", "-w", "-t", "60", "-o",
            "-c listen_addresses=127.0.0.1 -c port=\(port) -c unix_socket_directories=\(directory) -c fsync=off",
            "start",
        ])
        return server
    }

    /// Creates the broker's admin login (CREATEROLE, not superuser) and a read-only group, and
    /// declares database "dev" and role "dev-readonly" in the broker. For the README's tour it
    /// also creates PostgreSQL database `orders` (table `orders`, group `orders_reader`, login
    /// `migrator` owning the table, group `reporting` for an alternating static role) and
    /// declares it as database "orders", with the same admin login.
    func configure(_ broker: Broker, rootToken: String) async throws {
        let password = Base64.encodeURLSafeNoPadding(Random.bytes(32))
        func superuser(_ database: String) async throws -> PGConnection {
            try await PGConnection.connect(PGConnectionConfig(
                host: socketDirectory, port: port, database: database, user: "postgres", sslMode: "disable"))
        }
        let postgres = try await superuser("postgres")
        try await postgres.execute("""
            CREATE ROLE mayfly_admin LOGIN CREATEROLE PASSWORD \(try await postgres.escapeLiteral(SCRAMVerifier.make(password: password)));
            GRANT pg_signal_backend TO mayfly_admin;
            CREATE ROLE dev_readers NOLOGIN;
            GRANT pg_read_all_data TO dev_readers
            """)
        try await postgres.execute("CREATE DATABASE orders")   // not in a transaction: a statement of its own
        await postgres.close()
        let orders = try await superuser("orders")
        // The roles are created by the admin login, so that it may manage them on PostgreSQL 16+ too.
        try await orders.execute("""
            SET ROLE mayfly_admin;
            CREATE ROLE orders_reader NOLOGIN;
            CREATE ROLE reporting NOLOGIN IN ROLE orders_reader;
            CREATE ROLE migrator LOGIN;
            RESET ROLE;
            CREATE TABLE orders (id integer PRIMARY KEY, item text NOT NULL, placed_at timestamptz NOT NULL DEFAULT now());
            INSERT INTO orders (id, item) VALUES (1, 'mayfly lure'), (2, 'landing net');
            ALTER TABLE orders OWNER TO migrator;
            GRANT SELECT ON orders TO orders_reader
            """)
        await orders.close()
        func call(_ path: String, _ data: [String: JSONValue]) async throws {
            _ = try await broker.handle(LogicalRequest(id: "dev-setup", operation: .update, path: path, data: data, token: rootToken))
        }
        try await call("database/config/dev", [
            "connection_url": .string("postgresql://mayfly_admin@127.0.0.1:\(port)/postgres?sslmode=disable"),
            "password": .string(password), "allowed_roles": "*",
        ])
        try await call("database/roles/dev-readonly", [
            "db_name": "dev", "member_of": ["dev_readers"], "default_ttl": "15m", "max_ttl": "1h",
        ])
        try await call("database/config/orders", [
            "connection_url": .string("postgresql://mayfly_admin@127.0.0.1:\(port)/orders?sslmode=disable"),
            "password": .string(password), "allowed_roles": "*",
        ])
    }

    func stop(mode: String = "fast") {
        try? exec("pg_ctl", ["-D", dataDirectory, "-m", mode, "-w", "stop"])
    }

    private func exec(_ tool: String, _ arguments: [String]) throws {
        let command = runAs.map { ["/usr/sbin/runuser", "-u", $0, "--"] } ?? []
        // A file, not a pipe: the server that pg_ctl starts would hold a pipe open forever.
        let outputPath = socketDirectory + "/\(tool).out"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        if let runAs, let user = getpwnam(runAs) { _ = chown(outputPath, user.pointee.pw_uid, user.pointee.pw_gid) }
        let status = try spawnAndWait(command + [binDirectory + "/" + tool] + arguments, output: outputPath)
        guard status == 0 else {
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            throw CLIError(message: "\(tool) failed: \(text.suffix(600))", code: 1)
        }
    }

    /// posix_spawn + waitpid. Foundation's Process is not used here: it waits for descriptors
    /// that the daemonised PostgreSQL inherits, so it would never see pg_ctl exit.
    private func spawnAndWait(_ argv: [String], output: String) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_APPEND, 0)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        ChildProcess.closeInheritedDescriptors(&actions)
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid = pid_t()
        let result = posix_spawn(&pid, argv[0], &actions, nil, cArgs, environ)
        guard result == 0 else { throw CLIError(message: "cannot run \(argv[0]): error \(result)", code: 1) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// A free TCP port on 127.0.0.1 (bind to port 0 and read it back).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw CLIError(message: "socket() failed", code: 1) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw CLIError(message: "cannot find a free port", code: 1) }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
