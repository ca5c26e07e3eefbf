import Foundation
import MayflyPostgres
import Testing

/// The README's tour, run as written against a real `mayfly server --dev` (in DevModeTests'
/// serialized suite, so that two dev servers never clean up after each other). The commands
/// come from README.md; `ReadmeTour` documents how placeholders and skipped lines work.
extension DevModeTests {
    /// What a command must have done besides exiting 0, keyed by the start of its text.
    typealias Check = @Sendable (TourRun, String) async throws -> Void

    /// What the tour has shown so far.
    final class TourRun: @unchecked Sendable {
        // Only touched by the test that owns it, one command at a time.
        let port: Int
        let socketDirectory: String
        var values: [String: String] = [:]
        /// The dynamic users issued so far, of role dev-readonly and of any role.
        var devUsers: [String] = [], issuedUsers: [String] = []
        var migratorPassword: String?

        init(port: Int, socketDirectory: String) {
            self.port = port
            self.socketDirectory = socketDirectory
        }

        /// Logs in as `user` to PostgreSQL database `database` and returns what `query` answers.
        func login(_ user: String, _ password: String, database: String, query: String = "SELECT current_user") async throws -> [[String?]] {
            let session = try await PGConnection.connect(PGConnectionConfig(
                host: "127.0.0.1", port: port, database: database, user: user, password: password, sslMode: "disable"))
            do {
                let rows = try await session.query(query)
                await session.close()
                return rows
            } catch {
                await session.close()
                throw error
            }
        }

        /// The roles among `names` that exist in the cluster (asked as the superuser).
        func existingRoles(_ names: [String]) async throws -> [String] {
            let superuser = try await PGConnection.connect(PGConnectionConfig(
                host: socketDirectory, port: port, database: "postgres", user: "postgres", sslMode: "disable"))
            var found: [String] = []
            do {
                for name in names where try await !superuser.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [name]).isEmpty {
                    found.append(name)
                }
            } catch {
                await superuser.close()
                throw error
            }
            await superuser.close()
            return found
        }
    }

    /// The outputs the tour promises, checked after the command that starts with the key.
    static let tourChecks: [(String, Check)] = [
        ("mayfly read database/creds/dev-readonly", { run, _ in
            let user = try #require(run.values["username"]), password = try #require(run.values["password"])
            let current = try await run.login(user, password, database: "postgres")
            #expect(current == [[user]], "the dev credential logs in")
            run.devUsers.append(user)
            run.issuedUsers.append(user)
        }),
        ("mayfly lease revoke --prefix database/creds/dev-readonly", { run, _ in
            #expect(!run.devUsers.isEmpty)
            let left = try await run.existingRoles(run.devUsers)
            #expect(left == [], "revoke-prefix leaves no role behind")
        }),
        ("mayfly read database/creds/orders-ro", { run, _ in
            let user = try #require(run.values["username"]), password = try #require(run.values["password"])
            let count = try await run.login(user, password, database: "orders", query: "SELECT count(*) FROM orders")
            #expect(count == [["2"]], "an orders-ro credential reads the orders table")
            run.issuedUsers.append(user)
        }),
        ("mayfly revoke --all", { run, output in
            #expect(output.contains("state: completed"), "\(output)")
            let left = try await run.existingRoles(run.issuedUsers)
            #expect(left == [], "revoke --all leaves no dynamic role behind")
        }),
        ("mayfly read database/static-creds/orders-migrator", { run, _ in
            #expect(run.values["username"] == "migrator")
            let password = try #require(run.values["password"])
            let current = try await run.login("migrator", password, database: "orders")
            #expect(current == [["migrator"]], "the static credential logs in")
            run.migratorPassword = password
        }),
        ("mayfly write database/rotate-role/orders-migrator", { run, _ in
            let old = try #require(run.migratorPassword)
            await #expect(throws: (any Error).self, "the rotated-away password no longer logs in") {
                try await run.login("migrator", old, database: "orders")
            }
        }),
        ("mayfly operator unseal", { run, _ in
            #expect(run.values["sealed"] == "false", "one share unseals the dev server")
        }),
    ]

    @Test
    func theReadmeTourRunsAsWritten() async throws {
        let commands = try ReadmeTour.commands()
        for command in commands where command.skipReason != nil {
            // Listed, not silently dropped: the README says why a person runs it and the test does not.
            print("README tour: not run: \(command) — \(command.skipReason!)")
        }
        let directory = "/tmp/mf-tour-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let server = try DevProcess(in: directory, name: "dev")
        defer { server.signal(SIGINT) }
        let (_, store, port) = try await server.banner()
        let banner = ReadmeTour.bannerValues(in: server.output)
        let run = TourRun(port: port, socketDirectory: store + "/pg")
        run.values = banner.values

        // The commands run with a PATH on which no `mayfly` is found: the banner's line must put it there.
        let environment = Self.environmentWithoutMayfly()
        var checked: Set<String> = []
        for command in commands where command.skipReason == nil {
            if let name = command.exportedName {
                #expect(banner.exports[name] != nil, "\(command): the dev banner prints no `export \(name)=` line")
                continue
            }
            let text = try ReadmeTour.substitute(command.text, values: run.values)
            let script = banner.exports.values.sorted().joined(separator: "\n") + "\n" + text
            var env = environment
            env["PGPASSWORD"] = run.values["password"]
            let (status, output) = try await Self.shell(script, in: directory, environment: env)
            try #require(status == 0, "\(command) exited \(status):\n\(output)\n--- dev server:\n\(server.output.suffix(3000))")
            run.values.merge(ReadmeTour.tableValues(in: output)) { $1 }
            for (prefix, check) in Self.tourChecks where text.hasPrefix(prefix) {
                try await check(run, output)
                checked.insert(prefix)
            }
        }
        for (prefix, _) in Self.tourChecks where !checked.contains(prefix) {
            Issue.record("the README tour no longer runs `\(prefix)`: change DevModeTests.tourChecks with it")
        }
    }

    /// This process's environment without the CLI's variables and without a `PATH` entry that
    /// holds a `mayfly`.
    static func environmentWithoutMayfly() -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for name in ["MAYFLY_ADDR", "MAYFLY_TOKEN", "MAYFLY_FORMAT", "PGPASSWORD", "PGUSER", "PGHOST", "PGPORT", "PGDATABASE"] {
            environment[name] = nil
        }
        let path = (environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":")
            .filter { !FileManager.default.isExecutableFile(atPath: "\($0)/mayfly") }
        environment["PATH"] = path.joined(separator: ":")
        return environment
    }

    /// Runs `script` with bash in `directory`, stdin empty, for at most 60 s; returns its exit
    /// status and its output (stdout and stderr).
    static func shell(_ script: String, in directory: String, environment: [String: String]) async throws -> (Int32, String) {
        try await ChildRun.toExit(["/bin/bash", "-c", script], directory: directory, environment: environment)
    }
}
