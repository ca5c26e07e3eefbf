import ArgumentParser
import Foundation
import MayflyClient
import MayflyJSON

/// `mayfly revoke`: the leak response — every matching database login dead, its sessions
/// ended, passwords changed and tokens void in one call, with a report.
struct RevokeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Leak response: revoke every matching credential (sessions ended), optionally rotate passwords, revoke tokens and seal.",
        discussion: """
            Give --all or a scope; scopes combine (a credential must match all of
            them). Examples:

              mayfly revoke --all --rotate --tokens --reason "prod laptop stolen"
              mayfly revoke --role orders-ro --reason "orders-ro password in a log"
              mayfly revoke --identity unix:user:billing --tokens \\
                  --reason "billing host compromised"

            The incident is recorded: a restart resumes it and `mayfly incident show
            ID` reports it. Exit status: 0 everything finished, 3 something failed and
            is being retried in the background (the report says what), 1 error, 2
            sealed or unreachable.
            """)

    @OptionGroup var options: ClientOptions
    @Flag(help: "Everything: every credential; with --tokens every token except yours.") var all = false
    @Option(help: "Only credentials of this database (repeatable).") var database: [String] = []
    @Option(help: "Only credentials of this role (repeatable).") var role: [String] = []
    @Option(help: "Only credentials and tokens of this identity: unix:user:NAME, unix:uid:N, cert:URI, approle:ROLE, token:NAME (repeatable).")
    var identity: [String] = []
    @Option(help: "Only credentials issued at or after this time (RFC 3339 or Unix seconds).") var issuedAfter: String?
    @Option(help: "Only credentials issued before this time (RFC 3339 or Unix seconds).") var issuedBefore: String?
    @Option(help: "Only this lease (repeatable).") var lease: [String] = []
    @Flag(help: "Also change every static-role and root password of the databases in scope.") var rotate = false
    @Flag(help: "Also revoke the tokens and AppRole secret IDs of the identities in scope (all but yours with --all).")
    var tokens = false
    @Flag(help: "Seal the server afterwards.") var seal = false
    @Option(help: "Why (required; kept with the incident and in the audit log).") var reason: String?
    @Flag(help: "Show what would be done and change nothing.") var dryRun = false

    func validate() throws {
        guard let reason, !reason.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw ValidationError("--reason is required: say why (it is kept with the incident)")
        }
        let scoped = !database.isEmpty || !role.isEmpty || !identity.isEmpty || issuedAfter != nil || issuedBefore != nil
            || !lease.isEmpty
        if all && scoped { throw ValidationError("--all cannot be combined with a narrower scope") }
        if !all && !scoped { throw ValidationError("give --all or a scope (--database, --role, --identity, --lease, --issued-after, --issued-before)") }
    }

    func run() async throws {
        try await runCLI {
            var body: [String: JSONValue] = [
                "reason": .string(reason ?? ""), "all": .bool(all), "rotate": .bool(rotate), "tokens": .bool(tokens),
                "seal": .bool(seal), "dry_run": .bool(dryRun),
            ]
            if !database.isEmpty { body["databases"] = .strings(database) }
            if !role.isEmpty { body["roles"] = .strings(role) }
            if !identity.isEmpty { body["identities"] = .strings(identity) }
            if !lease.isEmpty { body["lease_ids"] = .strings(lease) }
            if let issuedAfter { body["issued_after"] = .string(issuedAfter) }
            if let issuedBefore { body["issued_before"] = .string(issuedBefore) }
            if !dryRun { FileHandle.standardError.write(Data("revoking… (databases in parallel; this waits for the report)\n".utf8)) }
            let options = options, request = body
            let started = Date()
            var response: JSONValue
            do {
                (_, response) = try await Output.withProgress("revoking…", detail: { await Self.liveCredentials(options) }) {
                    try await options.call("POST", "sys/mayfly/revoke", json: request)
                }
            } catch let error as CLIError where error.code == 2 && !dryRun {
                // The answer was lost (the leader went away mid-way, with HA): the incident was
                // recorded before anything was revoked, and the next leader resumes it.
                FileHandle.standardError.write(Data("the answer was lost (\(error.message)); looking for the incident on the server…\n".utf8))
                guard let followed = await Self.follow(options, reason: reason ?? "", since: started) else { throw error }
                response = followed
            }
            let report = response["data"] ?? .null
            IncidentReport.print(report, format: options.format)
            if !dryRun && report["state"]?.stringValue != "completed" { throw ExitCode(3) }
        }
    }
}

extension RevokeCommand {
    /// After a lost answer: finds the incident this command started (its reason, started since
    /// `since`) and follows it until it is completed (at most ten minutes), with a progress
    /// line. Nil when no such incident appears within a minute of the server answering again:
    /// nothing was revoked.
    static func follow(_ options: ClientOptions, reason: String, since: Date) async -> JSONValue? {
        let deadline = Date().addingTimeInterval(600)
        var answeringSince: Date?
        var id: String?
        var last: JSONValue?
        while Date() < deadline {
            do {
                if id == nil {
                    let (status, body) = try await options.call("LIST", "sys/mayfly/incidents", allow: [404])
                    answeringSince = answeringSince ?? Date()
                    let info = status == 404 ? [:] : body["data"]?["key_info"]?.objectValue ?? [:]
                    id = info.filter { _, item in
                        item["reason"]?.stringValue == reason
                            && (item["created_at"]?.stringValue).flatMap(Timestamp.parse).map { $0 >= since.timeIntervalSince1970 - 60 } == true
                    }.max { ($0.value["created_at"]?.stringValue ?? "") < ($1.value["created_at"]?.stringValue ?? "") }?.key
                    if id == nil, let answeringSince, Date().timeIntervalSince(answeringSince) > 60 { return nil }
                }
                if let id {
                    let (_, body) = try await options.call("GET", "sys/mayfly/incidents/\(id)")
                    last = body
                    let state = body["data"]?["state"]?.stringValue ?? ""
                    FileHandle.standardError.write(Data("\rincident \(id): \(state)\u{1B}[K".utf8))
                    if state == "completed" {
                        FileHandle.standardError.write(Data("\n".utf8))
                        return body
                    }
                }
            } catch {
                // Still no leader, or not yet: try again.
            }
            try? await Task.sleep(for: .seconds(1))
        }
        FileHandle.standardError.write(Data("\n".utf8))
        return last
    }

    /// "N credentials still live, M being revoked" from the server's metrics (the whole store),
    /// or nil when the caller may not read them.
    static func liveCredentials(_ options: ClientOptions) async -> String? {
        guard let client = try? options.client() else { return nil }
        defer { Task { try? await client.shutdown() } }
        guard let response = try? await client.request("GET", "sys/metrics", body: nil, query: [("format", "prometheus")]),
            response.status == 200
        else { return nil }
        var counts: [String: Int] = [:]
        for line in String(decoding: response.body, as: UTF8.self).split(separator: "\n") where line.hasPrefix("mayfly_leases{") {
            guard let state = line.split(separator: "\"").dropFirst().first, let value = line.split(separator: " ").last,
                let number = Double(value)
            else { continue }
            counts[String(state)] = Int(number)
        }
        guard let active = counts["active"] else { return nil }
        return "\(active) credential(s) still live, \(counts["revoking"] ?? 0) being revoked (whole store)"
    }
}

/// `mayfly incident …`: past leak responses and the exposure report.
struct IncidentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "incident", abstract: "Past leak responses (list, show) and who could have read what (exposure).",
        subcommands: [List.self, Show.self, Exposure.self])

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List incidents, oldest first.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await runCLI {
                let (status, body) = try await options.call("LIST", "sys/mayfly/incidents", allow: [404])
                if options.format == .json {
                    return Output.json(status == 404 ? .object(["data": .object(["keys": .array([])])]) : body)
                }
                if status == 404 { return print("No incidents.") }
                let info = body["data"]?["key_info"]?.objectValue ?? [:]
                let ids = body["data"]?["keys"]?.arrayValue?.compactMap(\.stringValue) ?? []
                Output.rows(["incident", "state", "started", "requested by", "reason"], ids.map { id in
                    let item = info[id]
                    return [id, item?["state"]?.stringValue ?? "", Output.second(item?["created_at"]?.stringValue),
                            item?["requested_by"]?.stringValue ?? "", item?["reason"]?.stringValue ?? ""]
                })
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an incident's report (exit 3 while it is not completed).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Incident id (from `mayfly incident list` or `mayfly revoke`).") var id: String

        func validate() throws { guard !id.isEmpty else { throw ValidationError("give an incident id (mayfly incident list)") } }

        func run() async throws {
            try await runCLI {
                let (_, body) = try await options.call("GET", "sys/mayfly/incidents/\(id)")
                let report = body["data"] ?? .null
                IncidentReport.print(report, format: options.format)
                if report["state"]?.stringValue != "completed" { throw ExitCode(3) }
            }
        }
    }

    struct Exposure: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Which identities read which KV paths and obtained which credentials since a time (from the audit log and the lease table).")
        @OptionGroup var options: ClientOptions
        @Option(help: "Start of the window (RFC 3339 or Unix seconds).") var since: String
        @Option(help: "End of the window (default: now).") var until: String?
        @Option(help: "Only this identity (unix:user:NAME, unix:uid:N, cert:URI, approle:ROLE, token:NAME).") var identity: String?
        @Option(help: "Only paths under this prefix (a KV path may leave out secret/data/).") var path: String?

        func run() async throws {
            try await runCLI {
                var body: [String: JSONValue] = ["since": .string(since)]
                if let until { body["until"] = .string(until) }
                if let identity { body["identity"] = .string(identity) }
                if let path { body["path"] = .string(path) }
                let (_, response) = try await options.call("POST", "sys/mayfly/exposure", json: body)
                let report = response["data"] ?? .null
                if options.format == .json { return Output.json(report) }
                print("Exposure since \(report["since"]?.stringValue ?? since)"
                      + (report["path_prefix"]?.stringValue.map { " under \($0)" } ?? ""))
                for warning in response["warnings"]?.arrayValue ?? [] {
                    FileHandle.standardError.write(Data("Warning: \(warning.stringValue ?? "")\n".utf8))
                }
                print("\nKV secrets read (change these by hand):")
                let kv = report["kv_reads"]?.arrayValue ?? []
                if kv.isEmpty { print("  none") }
                for item in kv {
                    print("  \(item["identity"]?.stringValue ?? "")  \(item["path"]?.stringValue ?? "")  reads=\(item["reads"]?.intValue ?? 0)  last=\(item["last_read"]?.stringValue ?? "")")
                }
                let statics = report["static_credential_reads"]?.arrayValue ?? []
                if !statics.isEmpty {
                    print("\nStatic credentials read (rotate with `mayfly revoke --rotate` or rotate-role):")
                    for item in statics { print("  \(item["identity"]?.stringValue ?? "")  \(item["path"]?.stringValue ?? "")") }
                }
                print("\nDatabase credentials obtained:")
                let credentials = report["credentials"]?.arrayValue ?? []
                if credentials.isEmpty { print("  none") }
                for item in credentials {
                    let live = item["live"]?.boolValue == true ? "LIVE" : item["state"]?.stringValue ?? ""
                    print("  \(item["identity"]?.stringValue ?? "")  \(item["lease_id"]?.stringValue ?? "")  \(item["username"]?.stringValue ?? "")  \(live)")
                }
                print("\n\(report["note"]?.stringValue ?? "")")
            }
        }
    }
}

/// Prints an incident report: a header, a per-database table and the failures.
enum IncidentReport {
    static func print(_ report: JSONValue, format: OutputFormat) {
        if format == .json { return Output.json(report) }
        let out = { (line: String) in Swift.print(line) }
        let dry = report["dry_run"]?.boolValue == true
        out("\(dry ? "Dry run (nothing changed)" : "Incident \(report["id"]?.stringValue ?? "")"): \(report["reason"]?.stringValue ?? "")")
        if !dry { out("state: \(report["state"]?.stringValue ?? "")  started: \(report["created_at"]?.stringValue ?? "")  by: \(report["requested_by"]?.stringValue ?? "")") }
        if let plan = report["plan"]?.arrayValue {
            out("\nWould:")
            for line in plan { out("  - \(line.stringValue ?? "")") }
        }
        let databases = report["databases"]?.objectValue ?? [:]
        if !databases.isEmpty && !dry {
            let header = ["database", "in scope", "revoked", "pending", "sessions ended", "passwords rotated"]
            var rows = [header]
            for name in databases.keys.sorted() {
                let d = databases[name]!
                rows.append([name] + ["credentials_in_scope", "credentials_revoked", "credentials_pending", "sessions_terminated",
                                      "passwords_rotated"].map { String(d[$0]?.intValue ?? 0) })
            }
            let widths = header.indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
            out("")
            for row in rows {
                out(row.indices.map { $0 == 0 ? row[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[$0] - row[$0].count) + row[$0] }.joined(separator: "  "))
            }
        }
        if report["actions"]?["tokens"]?.boolValue == true {
            out("\ntokens \(dry ? "to revoke" : "revoked"): \(report["tokens_revoked"]?.intValue ?? 0)  AppRole secret IDs \(dry ? "to destroy" : "destroyed"): \(report["secret_ids_destroyed"]?.intValue ?? 0)")
        }
        if report["sealed"]?.boolValue == true { out("the server was sealed") }
        let failures = report["failures"]?.arrayValue ?? []
        if !failures.isEmpty {
            out("\nNot finished (retried in the background until it succeeds):")
            for failure in failures {
                let database = failure["database"]?.stringValue ?? ""
                out("  - \(failure["what"]?.stringValue ?? "")\(database.isEmpty ? "" : " in \(database)"): \(failure["reason"]?.stringValue ?? "")")
            }
            out("Follow it with: mayfly incident show \(report["id"]?.stringValue ?? "")")
        }
    }
}
