import Foundation
import MayflyClient
import MayflyCore
import MayflyRun
import Testing

/// `mayfly run` (issue 7, points 1, 2 and 5) against a real server and PostgreSQL: a shell
/// program that only knows `DATABASE_URL`.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["MAYFLY_TEST_PG_HOST"] != nil
                || ProcessInfo.processInfo.environment["MAYFLY_REQUIRE_INTEGRATION"] == "1",
                "needs the test PostgreSQL from scripts/test"), .serialized)
struct RunCommandTests {
    /// A started `mayfly run` with its output files.
    final class Runner: @unchecked Sendable {
        // Only touched from the test that owns it.
        let process: ChildProcess
        let stderrPath: String

        init(_ arguments: [String], env: [String: String], directory: String) throws {
            stderrPath = directory + "/run.stderr"
            _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
            var environment = ProcessInfo.processInfo.environment
            for key in ["MAYFLY_ADDR", "MAYFLY_TOKEN", "VAULT_ADDR", "VAULT_TOKEN"] { environment[key] = nil }
            process = try ChildProcess.spawn([ServerProcess.binary, "run"] + arguments, environment: environment.merging(env) { $1 },
                                             input: "/dev/null", output: "/dev/null", errors: stderrPath)
        }

        var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

        func signal(_ number: Int32) { process.signal(number) }

        /// Waits for the exit; nil on timeout.
        func exitCode(within seconds: Double = 30) async throws -> Int32? {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning, Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
            return process.exitStatus
        }

        deinit { process.signal(SIGKILL) }
    }

    static func lines(_ path: String) -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// Waits until `condition` holds for the lines of `path`.
    static func waitFor(_ path: String, seconds: Double = 20, _ condition: ([String]) -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(lines(path)) { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return condition(lines(path))
    }

    /// A server with database `main` and a role `app` of the given TTLs; returns it and its root token.
    static func server(ttl: String = "6s", maxTTL: String = "1h") async throws -> (ServerProcess, String) {
        let keyFile = NSTemporaryDirectory() + "/mf-\(UUID().uuidString.prefix(6)).key"
        let server = try ServerProcess(extraConfig: #"seal "keyfile" { path = "\#(keyFile)" }"#)
        try await server.start()
        let token = try await IncidentProcessTests.initialise(server)
        #expect(try await server.request("POST", "database/config/main", token: token,
                                         json: try IncidentProcessTests.sharedConfig()).status == 204)
        #expect(try await server.request("POST", "database/roles/app", token: token,
                                         json: #"{"db_name":"main","default_ttl":"\#(ttl)","max_ttl":"\#(maxTTL)"}"#).status == 204)
        return (server, token)
    }

    static func liveLeases(_ server: ServerProcess, _ token: String) async throws -> [String] {
        let response = try await server.request("LIST", "sys/leases/lookup/database/creds/app/", token: token)
        guard response.status == 200 else { return [] }
        return (try JSONValue.parse(response.body)["data"]?["keys"]?.arrayValue ?? []).compactMap(\.stringValue)
    }

    /// Point 1: a program connecting with DATABASE_URL in a loop keeps working across renewals,
    /// a forced revoke of its lease and a broker restart.
    @Test func programKeepsWorkingAcrossRenewalsRevokeAndBrokerRestart() async throws {
        // 12 s leases: long enough to outlive a broker restart on a loaded machine.
        let (server, token) = try await Self.server(ttl: "12s")
        defer { server.signal(SIGTERM) }
        let out = server.directory + "/out.txt"
        let script = """
            while true; do
              if user=$(psql "$DATABASE_URL" -Atqc 'select current_user' 2>/dev/null); then echo "ok $user" >> \(out); \
            else echo fail >> \(out); fi
              sleep 0.3
            done
            """
        let runner = try Runner(["--creds", "database/creds/app", "--stop-timeout", "2", "--", "/bin/sh", "-c", script],
                                env: ["MAYFLY_ADDR": "unix://" + server.socketPath, "MAYFLY_TOKEN": token],
                                directory: server.directory)
        #expect(try await Self.waitFor(out) { $0.contains { $0.hasPrefix("ok ") } }, "the program connected; \(runner.stderr)")
        let firstUser = try #require(Self.lines(out).first { $0.hasPrefix("ok ") })

        // Renewals: 12 s leases renewed at ~8 s; after 14 s the same login still works.
        try await Task.sleep(for: .seconds(14))
        let afterRenewals = Self.lines(out).suffix(10)
        #expect(afterRenewals.allSatisfy { $0 == firstUser }, "still the first login after renewals: \(afterRenewals)")

        // A forced revoke: the program is restarted with a new login within the renew interval.
        #expect(try await server.request("PUT", "sys/leases/revoke-prefix/database/creds/app", token: token).status == 204)
        let replaced = try await Self.waitFor(out, seconds: 15) { lines in
            lines.last.map { $0.hasPrefix("ok ") && $0 != firstUser } ?? false
        }
        #expect(replaced, "a new credential after the revoke; stderr:\n\(runner.stderr)")
        #expect(runner.stderr.contains("cannot be renewed") && runner.stderr.contains("restarting"))

        // The broker restarts; the lease survives and the program keeps working.
        await server.kill(signal: SIGTERM)
        try await Task.sleep(for: .seconds(3))
        try await server.start()
        let mark = Self.lines(out).count
        // Ten connections in a row succeed after the restart: counted, not timed (a loaded
        // machine runs the program's psql loop slower). When the restart outlasts the lease (a
        // loaded machine: 12 s leases renewed at ~8 s), the broker's sweeper ends it and
        // `mayfly run` fetches a new login and restarts the program, so one connection may
        // fail in between; the program still works after.
        let working = try await Self.waitFor(out, seconds: 60) { lines in
            let after = lines.dropFirst(mark)
            return after.count >= 10 && after.suffix(10).allSatisfy { $0.hasPrefix("ok ") }
        }
        let afterRestart = Self.lines(out).dropFirst(mark)
        #expect(working, "working after the broker restart: \(afterRestart.suffix(10)); stderr:\n\(runner.stderr)")
        if afterRestart.contains("fail") {
            // The revoke above ended one lease; only a second that ran out explains a failure.
            #expect(runner.stderr.components(separatedBy: "lease not found").count - 1 >= 2,
                    "a connection failed after the restart though the lease was not lost: \(runner.stderr)")
        }

        runner.signal(SIGTERM)
        let code = try await runner.exitCode()
        #expect(code == 143, "the program's exit code (killed by SIGTERM): \(String(describing: code))")
        #expect(try await Self.liveLeases(server, token).isEmpty, "leases revoked on exit")
    }

    /// Point 2: signals reach the program, its exit code is `mayfly run`'s, and its leases are
    /// revoked on exit — or kept with --keep-leases.
    @Test(arguments: [false, true])
    func signalsExitCodeAndLeases(keepLeases: Bool) async throws {
        let (server, token) = try await Self.server(ttl: "1h")
        defer { server.signal(SIGTERM) }
        let out = server.directory + "/signals.txt"
        let script = """
            trap 'echo hup >> \(out)' HUP
            trap 'exit 7' USR1
            ls -l /proc/self/fd > \(out).fds
            echo "started $PGUSER" >> \(out)
            while true; do sleep 0.1; done
            """
        let runner = try Runner((keepLeases ? ["--keep-leases"] : []) + ["--creds", "database/creds/app", "--pg-env", "--",
                                                                          "/bin/sh", "-c", script],
                                env: ["MAYFLY_ADDR": "unix://" + server.socketPath, "MAYFLY_TOKEN": token],
                                directory: server.directory)
        #expect(try await Self.waitFor(out) { $0.contains { $0.hasPrefix("started v-app-") } }, "\(runner.stderr)")
        #expect(try await Self.liveLeases(server, token).count == 1)
        let descriptors = (try? String(contentsOfFile: out + ".fds", encoding: .utf8)) ?? ""
        #expect(descriptors.contains("/proc/") && !descriptors.contains("socket:"),
                "the program inherits no socket of mayfly run's (its connections to the broker): \(descriptors)")
        runner.signal(SIGHUP)
        #expect(try await Self.waitFor(out, seconds: 10) { $0.contains("hup") }, "SIGHUP forwarded")
        runner.signal(SIGUSR1)
        #expect(try await runner.exitCode() == 7, "the program's exit code")
        #expect(try await Self.liveLeases(server, token).count == (keepLeases ? 1 : 0))
    }

    /// SIGTERM to `mayfly run` reaches the program; one that ignores it is killed after
    /// --stop-timeout, and `mayfly run` exits with its status (137).
    @Test func stopTimeoutEndsAProgramThatIgnoresSIGTERM() async throws {
        let (server, token) = try await Self.server(ttl: "1h")
        defer { server.signal(SIGTERM) }
        let out = server.directory + "/stubborn.txt"
        let runner = try Runner(["--creds", "database/creds/app", "--stop-timeout", "1", "--", "/bin/sh", "-c",
                                 "trap 'echo term >> \(out)' TERM; echo started >> \(out); while true; do sleep 0.1; done"],
                                env: ["MAYFLY_ADDR": "unix://" + server.socketPath, "MAYFLY_TOKEN": token],
                                directory: server.directory)
        #expect(try await Self.waitFor(out) { $0.contains("started") }, "\(runner.stderr)")
        runner.signal(SIGTERM)
        #expect(try await runner.exitCode(within: 20) == 137, "killed after --stop-timeout: \(runner.stderr)")
        #expect(Self.lines(out).contains("term"), "the program got SIGTERM first")
        #expect(try await Self.liveLeases(server, token).isEmpty, "leases revoked on exit")
    }

    /// Point 5: with the broker down `mayfly run` waits and retries; with a wrong role it exits
    /// non-zero with a clear message and never starts the program.
    @Test func brokerDownIsWaitedForAndAWrongRoleIsRefused() async throws {
        let (server, token) = try await Self.server(ttl: "1h")
        defer { server.signal(SIGTERM) }
        let env = ["MAYFLY_ADDR": "unix://" + server.socketPath, "MAYFLY_TOKEN": token]
        let marker = server.directory + "/started"

        let wrong = try Runner(["--creds", "database/creds/nope", "--", "/bin/sh", "-c", "touch \(marker)"], env: env,
                               directory: server.directory)
        #expect(try await wrong.exitCode() == 1)
        #expect(wrong.stderr.contains("unknown role"), "\(wrong.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker), "the program never started")

        await server.kill(signal: SIGTERM)
        let waiting = try Runner(["--creds", "database/creds/app", "--", "/bin/sh", "-c", "touch \(marker); sleep 30"],
                                 env: env, directory: server.directory)
        // A refused connection fails at once and `mayfly run` says it is retrying.
        let deadline0 = Date().addingTimeInterval(15)
        while !waiting.stderr.contains("retrying"), Date() < deadline0 { try await Task.sleep(for: .milliseconds(200)) }
        #expect(waiting.stderr.contains("retrying"), "it says it is retrying: \(waiting.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker), "no program without credentials")
        try await server.start()
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: marker), Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(FileManager.default.fileExists(atPath: marker), "started once the broker was back: \(waiting.stderr)")
        waiting.signal(SIGTERM)
        #expect(try await waiting.exitCode() == 143)

        // Ctrl-C or SIGTERM while still waiting for the broker ends `mayfly run` at once.
        await server.kill(signal: SIGTERM)
        let interrupted = try Runner(["--creds", "database/creds/app", "--", "/bin/sh", "-c", "touch \(marker).2"],
                                     env: env, directory: server.directory)
        let deadline1 = Date().addingTimeInterval(15)
        while !interrupted.stderr.contains("retrying"), Date() < deadline1 { try await Task.sleep(for: .milliseconds(100)) }
        interrupted.signal(SIGTERM)
        #expect(try await interrupted.exitCode() == 143, "\(interrupted.stderr)")
        #expect(interrupted.stderr.contains("interrupted before"))
        #expect(!FileManager.default.fileExists(atPath: marker + ".2"))
    }
}
