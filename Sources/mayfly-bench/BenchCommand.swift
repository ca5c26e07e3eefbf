import ArgumentParser
import Foundation

/// `mayfly-bench`: the measurements of `scripts/bench` that need more than `wrk`, `curl` and
/// `psql` (scripts/bench starts PostgreSQL, Mayfly and OpenBao and prints the table). Each
/// subcommand prints `key=value` lines on standard output; never part of the tests.
@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mayfly-bench",
        abstract: "Measurements behind scripts/bench: the raw SQL floor and revoke-everything.",
        discussion: "Run through scripts/bench, which prepares PostgreSQL and the servers.",
        subcommands: [Floor.self, Everything.self])
}

/// The raw SQL floor: Mayfly's `CREATE ROLE … IN ROLE group` + `COMMENT ON ROLE`, one
/// transaction per credential, sent by one `psql` session.
struct Floor: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "floor", abstract: "Time the raw SQL floor; prints floor_count and floor_seconds.")

    @Option(help: "libpq conninfo of the admin login (password in PGPASSWORD).")
    var conninfo: String

    @Option(help: "Group role the credentials are members of (created when missing).")
    var group = "bench_readers"

    @Option(help: "Roles to create.")
    var count = 3000

    @Option(help: "SCRAM iterations of the verifiers (Mayfly's scram_iterations).")
    var iterations = 16

    func run() throws {
        let sql = SQLFloor(conninfo: conninfo, group: group, iterations: iterations)
        try sql.prepare()
        progress("raw SQL floor: \(count) roles from one psql session")
        let seconds = try sql.floor(count: count)
        print("floor_count=\(count)")
        print(String(format: "floor_seconds=%.4f", seconds))
    }
}

/// Revoke everything (target: under 3 s): live credentials in two databases, a share of them with
/// an open session, ended by one `sys/mayfly/revoke` call; then checked in PostgreSQL.
struct Everything: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke-everything",
        abstract: "Issue credentials in two databases, open sessions, revoke everything in one call.")

    @Option(help: "Unix socket of the Mayfly server.")
    var socket: String

    @Option(help: "File holding a root token.")
    var tokenFile: String

    @Option(help: "libpq conninfo of the admin login (password in PGPASSWORD), to check what is left.")
    var conninfo: String

    @Option(help: "Mayfly roles, one per database, comma-separated.")
    var roles = "bench,bench2"

    @Option(help: "Live credentials, split over the roles.")
    var count = 10_000

    @Option(help: "Share of those credentials holding an open session.")
    var sessionShare = 0.05

    func run() throws {
        let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let roleList = roles.split(separator: ",").map(String.init)
        let result = try RevokeEverything(
            socketPath: socket, token: token, roles: roleList, count: count, sessionShare: sessionShare
        ).run(progress: progress)
        let sql = SQLFloor(conninfo: conninfo, group: "", iterations: 0)
        var rolesLeft = 0
        var sessionsLeft = 0
        for role in roleList {
            rolesLeft += try sql.remaining(prefix: "v-\(role)-")
            sessionsLeft += try sql.sessions(prefix: "v-\(role)-")
        }
        print("everything_revoked=\(result.revoked)")
        print(String(format: "everything_seconds=%.4f", result.seconds))
        print("everything_sessions_opened=\(result.sessionsOpened)")
        print("everything_sessions_ended=\(result.sessionsTerminated)")
        print("everything_state=\(result.state)")
        print("everything_roles_left=\(rolesLeft)")
        print("everything_sessions_left=\(sessionsLeft)")
    }
}

func progress(_ line: String) {
    FileHandle.standardError.write(Data("bench: \(line)…\n".utf8))
}
