import ArgumentParser
import Foundation

/// `mayfly-bench`: the measurements behind `scripts/bench` (which starts the PostgreSQL and
/// the server). Prints one table and the ratios against DESIGN.md §6; never part of the tests.
@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mayfly-bench",
        abstract: "Measure credential issuance and revocation against the raw SQL floor.",
        discussion: "Run through scripts/bench, which prepares a PostgreSQL and a Mayfly server.")

    @Option(help: "Unix socket of a fresh (uninitialised) Mayfly server with a keyfile seal.")
    var socket: String

    @Option(help: "libpq conninfo of the admin login (password in PGPASSWORD).")
    var conninfo: String

    @Option(help: "Mayfly role to issue from; its database must be the one in --conninfo.")
    var role = "bench"

    @Option(help: "Group role the Mayfly role is a member of.")
    var group = "bench_readers"

    @Option(help: "Credentials per measured run.")
    var count = 3000

    @Option(help: "Credentials for the single-client run.")
    var singleCount = 500

    @Option(help: "Credentials for the Vault-default SQL path (slow: PostgreSQL hashes each password).")
    var vaultCount = 200

    @Option(help: "SCRAM iterations Mayfly is configured with (the floor uses the same).")
    var iterations = 16

    @Option(help: "A Mayfly role in a second database, for the revoke-everything case (empty: skip that case).")
    var secondRole = ""

    @Option(help: "Live credentials for the revoke-everything case, split over the two databases.")
    var revokeCount = 10_000

    @Option(help: "Share of those credentials holding an open session.")
    var sessionShare = 0.05

    @Option(help: "Credentials revoked the Vault-default way, one at a time (timed, then extrapolated).")
    var vaultRevokeCount = 200

    @Option(help: "Requests for each of the KV-read and empty-route runs (16 clients).")
    var kvCount = 20_000

    @Option(help: "Write the root token to this file (mode 0600) for later steps of scripts/bench.")
    var tokenFile: String?

    func run() throws {
        let admin = try UnixHTTPClient(socketPath: socket)
        let initialised = try admin.request("PUT", "sys/init", token: nil, body: #"{"secret_shares":1,"secret_threshold":1}"#)
        guard initialised.status == 200,
            let object = try JSONSerialization.jsonObject(with: initialised.body) as? [String: Any],
            let token = object["root_token"] as? String
        else { throw UnixHTTPClient.Failure(description: "sys/init answered \(initialised.status)") }
        if let tokenFile {
            FileManager.default.createFile(atPath: tokenFile, contents: Data(token.utf8), attributes: [.posixPermissions: 0o600])
        }

        let sql = SQLFloor(conninfo: conninfo, group: group, iterations: iterations)
        try sql.prepare()
        var rows: [Row] = []
        progress("raw SQL floor: \(count) roles from one psql session")
        let floorSeconds = try sql.floor(count: count)
        rows.append(Row(what: "raw SQL floor (one psql session)", count: count, seconds: floorSeconds))
        progress("Vault-default SQL path: \(vaultCount) roles")
        let vaultSeconds = try sql.vaultDefault(count: vaultCount)
        rows.append(Row(what: "Vault-default SQL (plaintext, 4096 iter.)", count: vaultCount, seconds: vaultSeconds))

        let load = RequestLoad(socketPath: socket, token: token, path: "database/creds/\(role)")
        progress("Mayfly issuance, 1 client: \(singleCount) credentials")
        let single = try load.run(count: singleCount, clients: 1)
        rows.append(Row(what: "Mayfly issuance, 1 client", count: single.count, seconds: single.seconds,
                        p50: single.percentile(50), p99: single.percentile(99)))
        _ = try revokeAll(admin, token: token)
        progress("Mayfly issuance, 16 clients: \(count) credentials")
        let sixteen = try load.run(count: count, clients: 16)
        rows.append(Row(what: "Mayfly issuance, 16 clients", count: sixteen.count, seconds: sixteen.seconds,
                        p50: sixteen.percentile(50), p99: sixteen.percentile(99)))
        progress("Mayfly revoke-prefix of \(sixteen.count) leases")
        let revokeSeconds = try revokeAll(admin, token: token)
        rows.append(Row(what: "Mayfly revoke-prefix (one call)", count: sixteen.count, seconds: revokeSeconds))
        let left = try sql.remaining(prefix: "v-\(role)-")

        // KV reads against the same server's cheapest route (sys/health: no token, no storage).
        let written = try admin.request("POST", "secret/data/bench/app", token: token,
                                        body: #"{"data":{"username":"app","password":"correct horse battery staple"}}"#)
        guard written.status == 200 else { throw UnixHTTPClient.Failure(description: "KV write answered \(written.status)") }
        progress("empty route (sys/health), 16 clients: \(kvCount) requests")
        let empty = try RequestLoad(socketPath: socket, token: token, path: "sys/health").run(count: kvCount, clients: 16)
        rows.append(Row(what: "empty route (sys/health), 16 clients", count: empty.count, seconds: empty.seconds,
                        p50: empty.percentile(50), p99: empty.percentile(99)))
        progress("KV read, 16 clients: \(kvCount) requests")
        let kvRead = try RequestLoad(socketPath: socket, token: token, path: "secret/data/bench/app").run(count: kvCount, clients: 16)
        rows.append(Row(what: "KV read, 16 clients", count: kvRead.count, seconds: kvRead.seconds,
                        p50: kvRead.percentile(50), p99: kvRead.percentile(99)))

        var everything: RevokeEverything.Result?
        var vaultRevokeSeconds = 0.0
        if !secondRole.isEmpty {
            let run = RevokeEverything(socketPath: socket, token: token, roles: [role, secondRole], count: revokeCount,
                                       sessionShare: sessionShare)
            everything = try run.run(progress: progress)
            rows.append(Row(what: "Mayfly revoke everything (2 databases)", count: everything!.revoked, seconds: everything!.seconds))
            progress("Vault-default revocation, one lease at a time: \(vaultRevokeCount) roles")
            vaultRevokeSeconds = try sql.vaultRevoke(count: vaultRevokeCount)
            rows.append(Row(what: "Vault-default revocation (per lease)", count: vaultRevokeCount, seconds: vaultRevokeSeconds))
        }

        print("")
        print(Row.header)
        for row in rows { print(row.line) }
        print("")
        let ofFloor = sixteen.perSecond / (Double(count) / floorSeconds)
        let ofVault = sixteen.perSecond / (Double(vaultCount) / vaultSeconds)
        print(String(format: "issuance at 16 clients: %.0f credentials/s (target ≥ 1000)", sixteen.perSecond))
        print(String(format: "  ÷ raw SQL floor:      %.2f (target ≥ 0.50)", ofFloor))
        print(String(format: "  ÷ Vault-default SQL:  %.1f× (target ≥ 20×)", ofVault))
        print(String(format: "  p99 latency:          %.1f ms (target < 25 ms)", sixteen.percentile(99)))
        print("roles left after revoke-prefix: \(left)")
        print(String(format: "KV read: %.0f requests/s, %.2f of the empty route's %.0f (target ≥ 0.60)",
                     kvRead.perSecond, kvRead.perSecond / empty.perSecond, empty.perSecond))
        if let everything {
            let vaultExtrapolated = vaultRevokeSeconds / Double(vaultRevokeCount) * Double(everything.revoked)
            let rolesLeft = try sql.remaining(prefix: "v-")
            let sessionsLeft = try sql.sessions(prefix: "v-")
            print(String(format: "revoke everything: %d credentials in 2 databases, %d with an open session: %.2f s (target < 3 s), state %@",
                         everything.revoked, everything.sessionsOpened, everything.seconds, everything.state))
            print("  sessions ended: \(everything.sessionsTerminated); roles left: \(rolesLeft); sessions left: \(sessionsLeft)")
            print(String(format: "  Vault-default, one lease at a time: %.1f s extrapolated from %d → Mayfly is %.0f× faster",
                         vaultExtrapolated, vaultRevokeCount, vaultExtrapolated / everything.seconds))
        }
    }

    private func revokeAll(_ client: UnixHTTPClient, token: String) throws -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        let response = try client.request("PUT", "sys/leases/revoke-prefix/database/creds/\(role)", token: token, body: "{}")
        guard response.status == 204 else {
            throw UnixHTTPClient.Failure(
                description: "revoke-prefix answered \(response.status): \(String(decoding: response.body.prefix(300), as: UTF8.self))")
        }
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    private func progress(_ line: String) {
        FileHandle.standardError.write(Data("bench: \(line)…\n".utf8))
    }
}

/// One line of the result table.
struct Row {
    var what: String
    var count: Int
    var seconds: Double
    var p50: Double?
    var p99: Double?

    static let header = "what                                          count   seconds   per second   p50 ms   p99 ms"

    var line: String {
        let latency = p50.map { String(format: "%8.2f %8.2f", $0, p99 ?? 0) } ?? String(repeating: " ", count: 17)
        return what.padding(toLength: 44, withPad: " ", startingAt: 0)
            + String(format: " %6d %9.2f %12.0f ", count, seconds, Double(count) / seconds) + latency
    }
}
