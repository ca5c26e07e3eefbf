import ArgumentParser
import Foundation
import Logging
import MayflyCore
import MayflyCrypto
import MayflyServer
import MayflyDevCluster
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
            guard let uid = (try? FileManager.default.attributesOfItem(atPath: directory))?[.ownerAccountID] as? NSNumber,
                uid.uint32Value == geteuid(),
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
