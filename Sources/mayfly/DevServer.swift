import ArgumentParser
import Foundation
import Logging
import MayflyCore
import MayflyCrypto

/// `mayfly server --dev`: an initialised, unsealed server with its store in a temporary
/// directory, its socket in `./.mayfly/`, and a throw-away PostgreSQL. Everything is removed
/// on exit.
struct DevServer {
    let noPostgres: Bool
    let logLevel: String?

    func run() async throws {
        let root = try makeTemporaryDirectory(prefix: "mayfly-dev-")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let socketDir = FileManager.default.currentDirectoryPath + "/.mayfly"
        try FileManager.default.createDirectory(atPath: socketDir, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o750])
        _ = chmod(socketDir, 0o750)
        var socket = socketDir + "/mayfly.sock"
        if socket.utf8.count >= 108 { socket = root + "/mayfly.sock" }

        var config = MayflyConfig(storagePath: root + "/store/mayfly.db")
        config.unixListeners = [UnixListenerConfig(path: socket)]
        config.logLevel = logLevel ?? "info"
        let logger = makeLogger(level: config.logLevel)

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
        try await serve(config: config, logger: logger) { broker in
            do {
                let result = try await broker.seal.initialize(shares: 1, threshold: 1)
                _ = try await broker.seal.submit(share: result.shares[0])
                print("""

                    Mayfly is running in dev mode: in-memory-only use, never for real secrets.
                    Its store lives in \(root) and is deleted on exit (Ctrl-C).

                        export MAYFLY_ADDR='unix://\(socket)'
                        export MAYFLY_TOKEN='\(result.rootToken)'

                    Unseal Key: \(Hex.encode(result.shares[0]))
                    Root Token: \(result.rootToken)
                    """)
                if let database {
                    print("""

                        Throw-away PostgreSQL \(database.version) (superuser "postgres", trust auth on its socket):
                            psql '\(database.url)'
                        """)
                }
                print("")
            } catch {
                logger.critical("dev mode could not initialise its store: \(error)")
            }
        }
    }
}

/// A directory only this user can write, traversable by others (PostgreSQL runs as another
/// user when Mayfly runs as root).
func makeTemporaryDirectory(prefix: String) throws -> String {
    var template = Array((NSTemporaryDirectory() + "/" + prefix + "XXXXXX").utf8CString)
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
        try server.exec("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        try server.exec("pg_ctl", [
            "-D", data, "-l", directory + "/postgresql.log", "-w", "-t", "60", "-o",
            "-c listen_addresses=127.0.0.1 -c port=\(port) -c unix_socket_directories=\(directory) -c fsync=off",
            "start",
        ])
        return server
    }

    func stop() {
        try? exec("pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "stop"])
    }

    private func exec(_ tool: String, _ arguments: [String]) throws {
        let process = Process()
        if let runAs {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", runAs, "--", binDirectory + "/" + tool] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: binDirectory + "/" + tool)
            process.arguments = arguments
        }
        process.currentDirectoryURL = URL(fileURLWithPath: socketDirectory)
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CLIError(message: "\(tool) failed: \(String(decoding: text, as: UTF8.self).suffix(600))", code: 1)
        }
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
