import Foundation
import MayflyClient
import MayflyCore
import MayflyPostgres
import MayflyRun
import Testing

/// `mayfly server --dev` as the README's first command runs it: initialised, unsealed, a
/// throw-away PostgreSQL whose credentials work, and nothing left behind — after Ctrl-C, and
/// after a kill -9 once the next dev server starts.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["MAYFLY_REQUIRE_INTEGRATION"] == "1"
                || FileManager.default.fileExists(atPath: "/usr/lib/postgresql"),
                "needs PostgreSQL's server binaries"), .serialized)
struct DevModeTests {
    /// One `mayfly server --dev` in `directory` (its working directory), output in a file.
    final class DevProcess: @unchecked Sendable {
        let directory: String
        let process: ChildProcess
        let outputPath: String

        init(in directory: String, name: String, arguments: [String] = ["server", "--dev"]) throws {
            self.directory = directory
            outputPath = directory + "/\(name).log"
            process = try ChildProcess.spawn([ServerProcess.binary] + arguments, environment: ChildRun.environment,
                                             directory: directory, input: "/dev/null", output: outputPath, errors: outputPath)
        }

        var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

        /// Waits for the banner and returns (token, store directory, PostgreSQL port).
        func banner() async throws -> (token: String, store: String, port: Int) {
            let deadline = ContinuousClock.now + .seconds(120)
            while !output.contains("Superuser (for you"), process.isRunning, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            let text = output
            func after(_ marker: String, upTo end: Character) -> String? {
                guard let range = text.range(of: marker) else { return nil }
                return String(text[range.upperBound...].prefix { $0 != end })
            }
            guard let token = after("Root Token: ", upTo: "\n"), let store = after("Its store and audit log live in ", upTo: " "),
                let port = after("@127.0.0.1:", upTo: "/").flatMap(Int.init)
            else { throw ServerProcessError(message: "no dev banner; output:\n\(text)") }
            return (token, store, port)
        }

        /// Sends `signal` and waits for the dev server to exit (SIGKILL after 120 s); its
        /// exit status.
        @discardableResult
        func stop(_ signal: Int32) async -> Int32 {
            process.signal(signal)
            return await process.exitCode(killingAfter: .seconds(120))
        }

        /// Sends `signal` without waiting (for a `defer`).
        func signal(_ signal: Int32) {
            process.signal(signal)
        }
    }

    /// The pid in the dev PostgreSQL's postmaster.pid under `store`, if it is still running.
    static func postmaster(in store: String) -> pid_t? {
        guard let text = try? String(contentsOfFile: store + "/pg/data/postmaster.pid", encoding: .utf8),
            let pid = text.split(separator: "\n").first.flatMap({ pid_t($0) }) else { return nil }
        return kill(pid, 0) == 0 ? pid : nil
    }

    /// Whether `pid` runs (a zombie waiting for its reaper does not).
    static func alive(_ pid: pid_t) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        return !(stat.split(separator: ")").last?.trimmingCharacters(in: .whitespaces).hasPrefix("Z") ?? false)
    }

    /// Waits up to 30 s for `pid` to stop.
    static func stops(_ pid: pid_t) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(30)
        while alive(pid), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        return !alive(pid)
    }

    @Test func devServerIssuesWorkingCredentialsAndLeavesNothingBehind() async throws {
        let directory = "/tmp/mf-dev-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let first = try DevProcess(in: directory, name: "first")
        let (token, store, port) = try await first.banner()
        #expect(FileManager.default.fileExists(atPath: store + "/store/mayfly.db"), "the store lives in the temporary directory")
        #expect(FileManager.default.fileExists(atPath: store + "/audit.log"), "so does an audit log (for incident exposure)")
        let client = try MayflyClient(address: "unix://\(directory)/.mayfly/mayfly.sock", token: token)
        let status = try JSONValue.parse(try await client.request("GET", "sys/seal-status").body)
        #expect(status["initialized"] == true && status["sealed"] == false)
        let creds = try await client.request("GET", "database/creds/dev-readonly")
        try await client.shutdown()
        #expect(creds.status == 200)
        let data = try JSONValue.parse(creds.body)["data"]
        let user = try #require(data?["username"]?.stringValue), password = try #require(data?["password"]?.stringValue)
        let session = try await PGConnection.connect(PGConnectionConfig(
            host: "127.0.0.1", port: port, database: "postgres", user: user, password: password, sslMode: "disable"))
        #expect(try await session.query("SELECT current_user") == [[user]], "the dev credential logs in")
        await session.close()

        // kill -9: the throw-away PostgreSQL outlives it, until the next dev server starts.
        let postgres = try #require(Self.postmaster(in: store), "the dev PostgreSQL runs")
        await first.stop(SIGKILL)
        #expect(Self.alive(postgres) && FileManager.default.fileExists(atPath: store))
        let second = try DevProcess(in: directory, name: "second")
        let (_, secondStore, _) = try await second.banner()
        #expect(!FileManager.default.fileExists(atPath: store), "the killed server's directory is removed")
        #expect(try await Self.stops(postgres), "the killed server's PostgreSQL is stopped")
        #expect(second.output.contains("did not exit cleanly"), "and the new server says so")

        // Ctrl-C: everything goes with the server.
        let secondPostgres = try #require(Self.postmaster(in: secondStore))
        #expect(await second.stop(SIGINT) == 0, "\(second.output.suffix(2000))")
        #expect(!FileManager.default.fileExists(atPath: secondStore), "its temporary directory is removed on exit")
        #expect(!FileManager.default.fileExists(atPath: directory + "/.mayfly/mayfly.sock"), "and its socket")
        #expect(try await Self.stops(secondPostgres), "its PostgreSQL is stopped on exit")
    }
}
