import Foundation
import MayflyCore
import MayflyRun
import Testing

/// The `mayfly` CLI against a real server: output, JSON format and exit codes
/// (0 ok, 1 error, 2 sealed or unreachable).
@Suite(.serialized) struct CLITests {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// Runs `mayfly` with `arguments` (and `stdin` as its input) and waits for its exit.
    static func mayfly(_ arguments: [String], env: [String: String], stdin: String? = nil) async throws -> Result {
        var environment = ProcessInfo.processInfo.environment
        for key in ["MAYFLY_ADDR", "MAYFLY_TOKEN", "VAULT_ADDR", "VAULT_TOKEN"] { environment[key] = nil }
        environment.merge(env) { $1 }
        let base = "/tmp/mf-cli-\(UUID().uuidString.prefix(8))"
        defer { for suffix in [".in", ".out", ".err"] { try? FileManager.default.removeItem(atPath: base + suffix) } }
        try (stdin ?? "").write(toFile: base + ".in", atomically: false, encoding: .utf8)
        let child = try ChildProcess.spawn([ServerProcess.binary] + arguments, environment: environment,
                                           input: base + ".in", output: base + ".out", errors: base + ".err")
        let status = await child.exitCode(killingAfter: .seconds(120))
        func read(_ suffix: String) -> String { (try? String(contentsOfFile: base + suffix, encoding: .utf8)) ?? "" }
        return Result(status: status, stdout: read(".out"), stderr: read(".err"))
    }

    @Test func operatorLifecycleKVAndExitCodes() async throws {
        let server = try ServerProcess()
        try await server.start()
        defer { server.signal(SIGTERM) }
        let address = ["MAYFLY_ADDR": "unix://" + server.socketPath]

        #expect(try await Self.mayfly(["status"], env: address).status == 2, "uninitialised counts as sealed")
        let initialised = try await Self.mayfly(["operator", "init", "--key-shares", "3", "--key-threshold", "2", "--format", "json"], env: address)
        #expect(initialised.status == 0, "\(initialised.stderr)")
        let body = try JSONValue.parse(Array(initialised.stdout.utf8))
        let keys = (body["keys"]?.arrayValue ?? []).compactMap(\.stringValue)
        let root = try #require(body["root_token"]?.stringValue)
        #expect(keys.count == 3)
        #expect(try await Self.mayfly(["status"], env: address).status == 2)
        #expect(try await Self.mayfly(["operator", "unseal", keys[0]], env: address).status == 0)
        // The second share from stdin, as an operator would type it.
        #expect(try await Self.mayfly(["operator", "unseal"], env: address, stdin: keys[2] + "\n").status == 0)
        let status = try await Self.mayfly(["status"], env: address)
        #expect(status.status == 0)
        #expect(status.stdout.contains("Sealed             false"))

        let auth = address.merging(["MAYFLY_TOKEN": root]) { $1 }
        #expect(try await Self.mayfly(["kv", "put", "secret/app/db", "user=orders", "password=pw-123"], env: auth).status == 0)
        let field = try await Self.mayfly(["kv", "get", "--field", "password", "secret/app/db"], env: auth)
        #expect(field.status == 0 && field.stdout == "pw-123\n")
        // key=@file drops the file's line end (LF or CRLF), nothing more.
        let passwordFile = server.directory + "/pw.txt"
        try "pw-456\r\n".write(toFile: passwordFile, atomically: true, encoding: .utf8)
        #expect(try await Self.mayfly(["kv", "put", "secret/app/file", "password=@" + passwordFile], env: auth).status == 0)
        #expect(try await Self.mayfly(["kv", "get", "--field", "password", "secret/app/file"], env: auth).stdout == "pw-456\n")
        // Stored terminal escapes are shown, not obeyed, in tables; --field gives the raw value.
        #expect(try await Self.mayfly(["kv", "put", "secret/app/esc", "title=\u{1B}]0;pwned\u{07}x"], env: auth).status == 0)
        let table = try await Self.mayfly(["kv", "get", "secret/app/esc"], env: auth)
        #expect(table.stdout.contains("\\u{1B}]0;pwned\\u{7}x") && !table.stdout.contains("\u{1B}"), "\(table.stdout)")
        #expect(try await Self.mayfly(["kv", "get", "--field", "title", "secret/app/esc"], env: auth).stdout == "\u{1B}]0;pwned\u{07}x\n")
        let json = try await Self.mayfly(["kv", "get", "--format", "json", "secret/app/db"], env: auth)
        #expect(try JSONValue.parse(Array(json.stdout.utf8))["data"]?["metadata"]?["version"] == 1)
        #expect(try await Self.mayfly(["kv", "put", "--cas", "0", "secret/app/db", "user=x"], env: auth).status == 1)
        #expect(try await Self.mayfly(["kv", "list", "secret/"], env: auth).stdout.contains("app/"))
        #expect(try await Self.mayfly(["kv", "get", "secret/missing"], env: auth).status == 1)
        #expect(try await Self.mayfly(["kv", "get", "secret/app/db"], env: address.merging(["MAYFLY_TOKEN": "hvs.bad"]) { $1 }).status == 1)
        // VAULT_* are honoured when MAYFLY_* are unset.
        let vaultEnv = ["VAULT_ADDR": "unix://" + server.socketPath, "VAULT_TOKEN": root]
        #expect(try await Self.mayfly(["read", "secret/data/app/db"], env: vaultEnv).status == 0)
        let rotated = try await Self.mayfly(["operator", "rotate", "--format", "json"], env: auth)
        #expect(try JSONValue.parse(Array(rotated.stdout.utf8))["data"]?["term"] == 2)
        let created = try await Self.mayfly(["token", "create", "--policy", "default", "--ttl", "10m", "--format", "json"], env: auth)
        let child = try #require(try JSONValue.parse(Array(created.stdout.utf8))["auth"]?["client_token"]?.stringValue)
        #expect(try await Self.mayfly(["token", "lookup"], env: address.merging(["MAYFLY_TOKEN": child]) { $1 }).status == 0)
        #expect(try await Self.mayfly(["token", "revoke", child], env: auth).status == 0)
        #expect(try await Self.mayfly(["token", "lookup"], env: address.merging(["MAYFLY_TOKEN": child]) { $1 }).status == 1)

        // Scheduled jobs and the leak response from the CLI.
        let schedule = try await Self.mayfly(["schedule", "list"], env: auth)
        #expect(schedule.status == 0 && schedule.stdout.contains("lease-sweep") && schedule.stdout.contains("keyring-rewrap"))
        let ran = try await Self.mayfly(["schedule", "run", "reconcile"], env: auth)
        #expect(ran.status == 0 && ran.stdout.contains("reconcile: ok"), "\(ran)")
        let history = try await Self.mayfly(["schedule", "history", "reconcile"], env: auth)
        #expect(history.status == 0 && history.stdout.contains("manual"), "\(history)")
        #expect(try await Self.mayfly(["schedule", "run", "no-such-job"], env: auth).status == 1)
        let dry = try await Self.mayfly(["revoke", "--all", "--tokens", "--dry-run", "--reason", "rehearsal"], env: auth)
        #expect(dry.status == 0 && dry.stdout.contains("Dry run") && dry.stdout.contains("token(s)"), "\(dry)")
        #expect(try await Self.mayfly(["revoke", "--all"], env: auth).status != 0, "a reason is required")

        // Issue 12, finding 7: the rough edges.
        let version = try await Self.mayfly(["--version"], env: [:])
        #expect(version.status == 0 && version.stdout == Broker.version + "\n")
        let readField = try await Self.mayfly(["read", "--field", "data", "secret/data/app/db"], env: auth)
        #expect(readField.status == 0 && readField.stdout.contains("password:pw-123"), "\(readField)")
        #expect(try await Self.mayfly(["read", "--field", "nope", "secret/data/app/db"], env: auth).status == 1)
        let jsonError = try await Self.mayfly(["kv", "get", "--format", "json", "secret/missing"], env: auth)
        let errorObject = try JSONValue.parse(Array(jsonError.stderr.utf8))
        #expect(jsonError.status == 1 && errorObject["exit_status"] == 1 && errorObject["error"]?.stringValue != nil, "\(jsonError)")
        #expect(try await Self.mayfly(["kv", "put", "secret/app/db", "user=v2"], env: auth).status == 0)
        _ = try await Self.mayfly(["kv", "delete", "--versions", "1", "secret/app/db"], env: auth)
        let undeleted = try await Self.mayfly(["kv", "undelete", "--versions", "1", "secret/app/db"], env: auth)
        #expect(undeleted.stdout.contains("Version(s) 1 of secret/app/db restored"), "\(undeleted)")
        let metadata = try await Self.mayfly(["kv", "metadata", "get", "secret/app/db"], env: auth)
        #expect(metadata.stdout.contains("version  created") && metadata.stdout.contains("\n2 "), "\(metadata.stdout)")
        #expect(history.stdout.hasPrefix("start"), "a header row")
        let incidents = try await Self.mayfly(["incident", "list"], env: auth)
        #expect(incidents.status == 0)

        #expect(try await Self.mayfly(["operator", "seal"], env: auth).status == 0)
        #expect(try await Self.mayfly(["kv", "get", "secret/app/db"], env: auth).status == 2, "sealed is exit 2")
        #expect(try await Self.mayfly(["status"], env: address).status == 2)
    }

    @Test func auditVerifyReportsTheFirstBadLine() async throws {
        let path = NSTemporaryDirectory() + "mf-cli-audit-\(UUID().uuidString.prefix(8)).log"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try AuditFile(path: path)
        for index in 1...5 { try file.append(["type": "request", "n": .int(Int64(index))]) }
        let intact = try await Self.mayfly(["audit", "verify", path], env: [:])
        #expect(intact.status == 0 && intact.stdout.contains("intact, 5 lines"), "\(intact)")
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        lines[1] = lines[1].replacingOccurrences(of: "\"n\":2", with: "\"n\":20")
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let broken = try await Self.mayfly(["audit", "verify", path], env: [:])
        #expect(broken.status == 1 && broken.stderr.contains("\(path):2: chain broken"), "\(broken)")
    }

    @Test func unreachableServerIsExit2() async throws {
        let result = try await Self.mayfly(["status"], env: ["MAYFLY_ADDR": "unix:///tmp/mf-no-such-dir/mayfly.sock"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("cannot reach Mayfly") && result.stderr.contains("No such file or directory"))
        #expect(!result.stderr.contains("errno") && !result.stderr.contains("descriptor"), "plain words: \(result.stderr)")
    }

    /// Inputs that once crashed the client (debug builds trap) or leaked: each is a clear exit 1
    /// (64 for a bad command line), before anything is sent.
    @Test(arguments: [
        (["status"], ["MAYFLY_ADDR": "https://127.0.0.1:99999"], Int32(1), "port 1–65535"),
        (["status"], ["MAYFLY_ADDR": "https://user:hunter2@127.0.0.1:8200"], 1, "no user or password"),
        (["kv", "get", "secret/app"], ["MAYFLY_TOKEN": "hvs.abc\ndef"], 1, "control character"),
        (["kv", "put", "secret/" + String(repeating: "a", count: 70_000), "v=1"], [:], 1, "at most 16384"),
        (["status", "--ca-cert", "/nonexistent/ca.pem"], ["MAYFLY_ADDR": "https://127.0.0.1:8200"], 1, "no such readable file"),
        (["run", "--creds", "", "--", "true"], [:], 64, "--creds takes"),
        (["run", "--creds", "database/creds/a", "--stop-timeout", "nan", "--", "true"], [:], 64, "--stop-timeout"),
        (["run", "--creds", "database/creds/a=1BAD", "--", "true"], [:], 64, "not a valid environment variable"),
        (["token", "revoke", ""], [:], 64, "empty"),
        (["schedule", "run", ""], [:], 64, "give a job name"),
        (["incident", "show", ""], [:], 64, "give an incident id"),
    ] as [([String], [String: String], Int32, String)])
    func badInputsAreClearErrors(arguments: [String], env: [String: String], status: Int32, message: String) async throws {
        var environment = ["MAYFLY_ADDR": "unix:///tmp/mf-no-such-dir/mayfly.sock", "MAYFLY_TOKEN": "hvs.x"]
        environment.merge(env) { $1 }
        let result = try await Self.mayfly(arguments, env: environment)
        #expect(result.status == status, "\(arguments.prefix(3)): \(result.stderr.prefix(300))")
        #expect(result.stderr.contains(message), "\(result.stderr.prefix(300))")
        #expect(!result.stderr.contains("hunter2") && !result.stderr.contains("Fatal error"))
    }
}
