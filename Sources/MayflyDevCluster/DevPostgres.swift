import Foundation
public import MayflyCore
import MayflyCrypto
import MayflyPostgres
import MayflyRun

/// Why the throw-away cluster could not be made or started.
public struct DevClusterError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A directory only this user can write, traversable by others (PostgreSQL runs as another
/// user when Mayfly runs as root).
public func makeTemporaryDirectory(prefix: String) throws -> String {
    let base = NSTemporaryDirectory().hasSuffix("/") ? NSTemporaryDirectory() : NSTemporaryDirectory() + "/"
    var template = Array((base + prefix + "XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { throw DevClusterError("cannot create a temporary directory") }
    let path = String(cString: made)
    _ = chmod(path, 0o711)
    return path
}

/// A throw-away PostgreSQL cluster from the system's binaries, run as an unprivileged user
/// (PostgreSQL refuses to run as root), listening on 127.0.0.1 and a socket in its directory.
public struct DevPostgres: Sendable {
    public let dataDirectory: String
    public let binDirectory: String
    public let runAs: String?
    public let port: Int
    public let socketDirectory: String
    public let version: String

    public init(dataDirectory: String, binDirectory: String, runAs: String?, port: Int, socketDirectory: String,
                version: String)
    {
        self.dataDirectory = dataDirectory
        self.binDirectory = binDirectory
        self.runAs = runAs
        self.port = port
        self.socketDirectory = socketDirectory
        self.version = version
    }

    public var url: String { "postgresql://postgres@127.0.0.1:\(port)/postgres" }

    public static func findBinaries() throws -> String {
        let base = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [])
            .compactMap { Int($0) }.sorted(by: >)
        for version in versions where FileManager.default.isExecutableFile(atPath: "\(base)/\(version)/bin/initdb") {
            return "\(base)/\(version)/bin"
        }
        throw DevClusterError("PostgreSQL server binaries not found under \(base) (apt-get install postgresql)")
    }

    public static func start(in directory: String) throws -> DevPostgres {
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
    /// A login and database of their own for a Mayfly store (dev mode's HA cluster keeps its
    /// store here): the URL (without the password) and the password.
    public func createStore() async throws -> (url: String, password: String) {
        let password = Base64.encodeURLSafeNoPadding(Random.bytes(32))
        let postgres = try await PGConnection.connect(PGConnectionConfig(
            host: socketDirectory, port: port, database: "postgres", user: "postgres", sslMode: "disable"))
        try await postgres.execute(
            "CREATE ROLE mayfly_store LOGIN PASSWORD \(try await postgres.escapeLiteral(SCRAMVerifier.make(password: password)))")
        try await postgres.execute("CREATE DATABASE mayfly_store OWNER mayfly_store")
        await postgres.close()
        return ("postgresql://mayfly_store@127.0.0.1:\(port)/mayfly_store?sslmode=disable", password)
    }

    public func configure(_ broker: Broker, rootToken: String) async throws {
        try await configure { path, data in
            _ = try await broker.handle(LogicalRequest(id: "dev-setup", operation: .update, path: path, data: data, token: rootToken))
        }
    }

    /// The same, declaring the databases through `call` (a write to an API path), e.g. over a
    /// dev cluster's socket.
    public func configure(call: (String, [String: JSONValue]) async throws -> Void) async throws {
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

    public func stop(mode: String = "fast") {
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
            throw DevClusterError("\(tool) failed: \(text.suffix(600))")
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
        guard result == 0 else { throw DevClusterError("cannot run \(argv[0]): error \(result)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// A free TCP port on 127.0.0.1 (bind to port 0 and read it back).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DevClusterError("socket() failed") }
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
        guard bound else { throw DevClusterError("cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
