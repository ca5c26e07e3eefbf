import ArgumentParser
import Foundation
import MayflyJSON

/// `mayfly lease …`: look up, renew and revoke leases of dynamic credentials.
struct LeaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lease", abstract: "Look up, renew and revoke leases.",
        subcommands: [Lookup.self, Renew.self, Revoke.self, List.self])

    struct Lookup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a lease: expiry, TTL, state and last revocation error.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Lease id, e.g. database/creds/orders-ro/AbC…") var leaseID: String

        func run() async throws {
            try await runCLI {
                let (_, body) = try await options.call("PUT", "sys/leases/lookup", json: ["lease_id": .string(leaseID)])
                Output.envelope(body, format: options.format)
            }
        }
    }

    struct Renew: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Extend a lease (capped by the role's max_ttl).")
        @OptionGroup var options: ClientOptions
        @Option(help: "Requested TTL from now, e.g. 30m (the role's default when absent).") var increment: String?
        @Argument var leaseID: String

        func run() async throws {
            try await runCLI {
                var data: [String: JSONValue] = ["lease_id": .string(leaseID)]
                if let increment { data["increment"] = .string(increment) }
                let (_, body) = try await options.call("PUT", "sys/leases/renew", json: data)
                Output.envelope(body, format: options.format)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a lease, or every lease under a prefix (--prefix); --force forgets what cannot be revoked.")
        @OptionGroup var options: ClientOptions
        @Flag(help: "Treat the argument as a prefix (e.g. database/creds/orders-ro).") var prefix = false
        @Flag(help: "With --prefix: forget leases whose revocation fails (they are logged).") var force = false
        @Argument var leaseID: String

        func validate() throws {
            if force && !prefix { throw ValidationError("--force needs --prefix") }
        }

        func run() async throws {
            try await runCLI {
                if prefix {
                    _ = try await options.call("PUT", "sys/leases/\(force ? "revoke-force" : "revoke-prefix")/\(leaseID)")
                    Output.success(options.format, "Success! Revoked every lease under \(leaseID)")
                } else {
                    _ = try await options.call("PUT", "sys/leases/revoke", json: ["lease_id": .string(leaseID)])
                    Output.success(options.format, "Success! Revoked lease: \(leaseID)")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List live leases under a prefix.")
        @OptionGroup var options: ClientOptions
        @Argument var prefix: String

        func run() async throws {
            try await runCLI {
                let path = prefix.hasSuffix("/") ? prefix : prefix + "/"
                let (_, body) = try await options.call("LIST", "sys/leases/lookup/\(path)")
                guard options.format == .table else { return printKeys(body, format: options.format) }
                Output.warnings(body)
                let info = body["data"]?["key_info"]?.objectValue ?? [:]
                let keys = body["data"]?["keys"]?.arrayValue?.compactMap(\.stringValue) ?? []
                Output.rows(["lease", "username", "expires", "identity", "state"], keys.map { key in
                    guard let item = info[key] else { return [key, "", "", "", key.hasSuffix("/") ? "(folder)" : ""] }
                    return [path + key, item["username"]?.stringValue ?? "", Output.second(item["expire_time"]?.stringValue),
                            item["identity"]?.stringValue ?? "", item["state"]?.stringValue ?? ""]
                })
            }
        }
    }
}

/// `mayfly database …`: connection configs and roles of the database engine.
struct DatabaseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "database", abstract: "Configure databases and the roles credentials are issued for.",
        subcommands: [Config.self, Role.self, Budget.self])

    enum Action: String, ExpressibleByArgument, CaseIterable { case write, read, list, delete }

    static func run(_ options: ClientOptions, section: String, action: Action, name: String?, data: [String]) async throws {
        try await runCLI {
            switch action {
            case .list:
                let (_, body) = try await options.call("LIST", "database/\(section)/")
                printKeys(body, format: options.format)
            case .read, .write, .delete:
                guard let name else { throw CLIError(message: "give a name", code: 1) }
                let path = "database/\(section)/\(name)"
                switch action {
                case .read: Output.envelope(try await options.call("GET", path).body, format: options.format)
                case .delete:
                    _ = try await options.call("DELETE", path)
                    Output.success(options.format, "Success! Deleted \(path)")
                default:
                    var fields = try Output.pairs(data)
                    // Lists are given as comma-separated values.
                    for key in ["member_of", "allowed_roles"] {
                        if let text = fields[key]?.stringValue {
                            fields[key] = .strings(text.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) })
                        }
                    }
                    let (status, body) = try await options.call("POST", path, json: fields)
                    if status == 204 { print("Success! Data written to: \(path)") } else { Output.envelope(body, format: options.format) }
                }
            }
        }
    }

    struct Config: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "write|read|list|delete a database connection (e.g. write orders connection_url=… password=@file allowed_roles='*').")
        @OptionGroup var options: ClientOptions
        @Argument var action: Action
        @Argument var name: String?
        @Argument(help: "key=value fields (key=@file reads a file).") var data: [String] = []

        func run() async throws { try await DatabaseCommand.run(options, section: "config", action: action, name: name, data: data) }
    }

    struct Budget: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a database's connection budget: what live credentials may open, against what, and open now.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The database (as in database/config/NAME).") var name: String

        func run() async throws {
            try await runCLI {
                let (_, body) = try await options.call("GET", "database/config/\(name)")
                let status = body["data"]?["connection_budget_status"] ?? .null
                if options.format == .json { return Output.json(status) }
                print(Self.line(name, status))
            }
        }

        /// One line: `orders: 12 live credentials may open 60 of 76 connections …`.
        static func line(_ name: String, _ status: JSONValue) -> String {
            let live = status["live_credentials"]?.intValue ?? 0
            if let error = status["error"]?.stringValue { return "\(name): \(live) live credential(s); budget unknown: \(error)" }
            let committed = status["committed_connections"]?.intValue ?? 0
            let sessions = status["sessions"]?.intValue ?? 0
            let maximum = status["max_connections"]?.intValue ?? 0
            guard status["enabled"]?.boolValue == true else {
                return "\(name): \(live) live credential(s) may open \(committed) connection(s); no budget (connection_budget = 0); max_connections \(maximum); \(sessions) session(s) open now"
            }
            let share = Int(((status["share"]?.doubleValue ?? 0) * 100).rounded())
            return "\(name): \(live) live credential(s) may open \(committed) of \(status["budget_connections"]?.intValue ?? 0) connection(s) (\(share)% of max_connections \(maximum), less reserved connections and the broker's pool); \(sessions) session(s) open now"
        }
    }

    struct Role: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "write|read|list|delete a role (e.g. write orders-ro db_name=orders member_of=orders_reader default_ttl=15m).")
        @OptionGroup var options: ClientOptions
        @Argument var action: Action
        @Argument var name: String?
        @Argument(help: "key=value fields.") var data: [String] = []

        func run() async throws { try await DatabaseCommand.run(options, section: "roles", action: action, name: name, data: data) }
    }
}
