import ArgumentParser
import Foundation
import MayflyClient
import Synchronization
import MayflyRun

/// `mayfly run`: fetches credentials, starts the application with them in its environment,
/// keeps the leases renewed, replaces a credential that can no longer be renewed (and
/// restarts or signals the application), forwards signals, exits with the application's
/// code and revokes its leases on the way out.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a program with short-lived credentials in its environment, renewed and replaced as needed.",
        discussion: """
            The program and its arguments follow `--`. Examples:

              mayfly run --creds database/creds/orders-ro -- ./server
              mayfly run --creds database/creds/orders-rw=ORDERS_URL \\
                  --kv 'secret/orders/api#key=API_KEY' \\
                  --on-change signal:HUP --file /run/orders/db.env -- ./server

            The first --creds goes to --env-name (DATABASE_URL); name the others with
            =ENV. With --pg-env the first credential is also given as PGHOST, PGPORT,
            PGDATABASE, PGUSER, PGPASSWORD, PGSSLMODE and PGSSLROOTCERT. A --kv field
            without =ENV goes to the field's name in upper case.

            Leases are renewed at about two thirds of their TTL; a lease that cannot
            be renewed (max TTL reached, revoked, forgotten) is replaced by a new
            credential and --on-change applied. While the broker is unreachable
            `mayfly run` retries with backoff and says so on stderr; the program never
            starts without its credentials.

            Exit status: the program's (128 + signal when a signal ended it). Its own
            failures happen before the program starts, and every message of its own on
            stderr starts with "mayfly run:": 1 when a credential or secret cannot be
            had, 127 when the program cannot be started, 64 for a bad command line,
            128 + signal when stopped while still fetching.
            """)

    @OptionGroup var options: ClientOptions
    @Option(name: .customLong("creds"), help: "database/creds/ROLE[=ENV] to fetch (repeatable).") var credentials: [String] = []
    @Option(help: "secret/PATH#FIELD[=ENV]: a KV field as an environment variable (repeatable).") var kv: [String] = []
    @Option(help: "Variable of the first credential's connection URL.") var envName = "DATABASE_URL"
    @Flag(help: "Also set PGHOST, PGUSER, PGPASSWORD, … from the first credential.") var pgEnv = false
    @Option(help: "When a credential is replaced: restart (SIGTERM, then SIGKILL after --stop-timeout), signal:NAME, or none.")
    var onChange = "restart"
    @Option(help: "Also write the variables to this file (atomically, mode 0600) and keep it current.") var file: String?
    @Option(help: "Seconds to wait after SIGTERM before SIGKILL when restarting or stopping.") var stopTimeout: Double = 10
    @Flag(help: "Do not revoke the leases on exit.") var keepLeases = false
    @Argument(parsing: .postTerminator, help: "The program and its arguments, after --.") var command: [String] = []

    /// How the program learns about a replaced credential.
    typealias ChangeAction = RunChangeAction

    static let signalNames: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "TERM": SIGTERM, "USR1": SIGUSR1, "USR2": SIGUSR2, "QUIT": SIGQUIT,
    ]

    var changeAction: ChangeAction? {
        switch onChange {
        case "restart": return .restart
        case "none": return ChangeAction.none
        default:
            guard onChange.hasPrefix("signal:") else { return nil }
            var name = String(onChange.dropFirst("signal:".count)).uppercased()
            if name.hasPrefix("SIG") { name = String(name.dropFirst(3)) }
            return Self.signalNames[name].map { .signal($0) }
        }
    }

    /// A `--creds` option: the path and the variable its URL goes to.
    typealias CredentialSpec = RunCredentialSpec

    /// A `--kv` option.
    typealias KVSpec = RunKVSpec

    func credentialSpecs() throws -> [CredentialSpec] {
        try credentials.enumerated().map { index, text in
            let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
            let path = parts[0]
            guard path.hasPrefix("database/creds/"), path.count > "database/creds/".count else {
                throw ValidationError("--creds takes database/creds/ROLE[=ENV], got \(text)")
            }
            if parts.count == 2 { return CredentialSpec(path: path, variable: parts[1]) }
            guard index == 0 else { throw ValidationError("name the variable of every --creds after the first: \(path)=NAME") }
            return CredentialSpec(path: path, variable: envName)
        }
    }

    func kvSpecs() throws -> [KVSpec] {
        try kv.map { text in
            let usage = "--kv takes MOUNT/PATH#FIELD[=ENV] (e.g. secret/orders/api#key=API_KEY), got \(text)"
            guard let hash = text.firstIndex(of: "#") else { throw ValidationError(usage) }
            var path = String(text[..<hash])
            let rest = text[text.index(after: hash)...].split(separator: "=", maxSplits: 1).map(String.init)
            guard !path.isEmpty, let field = rest.first, !field.isEmpty else { throw ValidationError(usage) }
            // `secret/orders/api` as `mayfly kv` takes it; the API form `secret/data/orders/api` too.
            if path.split(separator: "/").dropFirst().first != "data" {
                guard let api = try? KVCommand.apiPath(path, "data") else { throw ValidationError(usage) }
                path = api
            }
            return KVSpec(path: path, field: field, variable: rest.count == 2 ? rest[1] : field.uppercased())
        }
    }

    func validate() throws {
        let program = command.first == "--" ? Array(command.dropFirst()) : command
        guard !program.isEmpty else { throw ValidationError("give the program to run after --, e.g. mayfly run --creds database/creds/app -- ./server") }
        guard !credentials.isEmpty || !kv.isEmpty else { throw ValidationError("give at least one --creds or --kv") }
        guard changeAction != nil else { throw ValidationError("--on-change must be restart, none or signal:NAME (HUP, USR1, …)") }
        guard stopTimeout.isFinite, (0...3600).contains(stopTimeout) else {
            throw ValidationError("--stop-timeout must be between 0 and 3600 seconds")
        }
        _ = try credentialSpecs()
        _ = try kvSpecs()
        for name in try credentialSpecs().map(\.variable) + (try kvSpecs().map(\.variable)) {
            guard let first = name.first, !first.isNumber, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
                throw ValidationError("\(name) is not a valid environment variable name")
            }
        }
    }

    func run() async throws {
        let program = command.first == "--" ? Array(command.dropFirst()) : command
        let supervisor = RunSupervisor(
            client: try options.client(), credentials: try credentialSpecs(), kv: try kvSpecs(), pgEnv: pgEnv,
            onChange: changeAction ?? .restart, file: file, stopTimeout: stopTimeout, keepLeases: keepLeases)
        let code = await supervisor.run(program)
        throw ExitCode(code)
    }
}
