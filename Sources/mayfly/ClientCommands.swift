import ArgumentParser
import Foundation
import MayflyJSON

/// `mayfly status`: seal status of the server.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show whether the server is initialised and sealed (exit 2 when sealed).")
    @OptionGroup var options: ClientOptions

    func run() async throws {
        try await runCLI {
            let (_, body) = try await options.call("GET", "sys/seal-status", token: false)
            // The node's place in an HA cluster (sys/leader answers once initialised).
            var leader: JSONValue?
            if body["initialized"]?.boolValue == true { leader = try? await options.call("GET", "sys/leader", token: false).body }
            if options.format == .json {
                var combined = body.objectValue ?? [:]
                if let leader { combined["ha"] = leader }
                Output.json(.object(combined))
            } else {
                let keys = ["type", "initialized", "sealed", "t", "n", "progress", "version", "storage_type"]
                let names = ["Seal Type", "Initialized", "Sealed", "Threshold", "Total Shares", "Unseal Progress", "Version", "Storage Type"]
                var rows = zip(names, keys).map { ($0.0, body[$0.1] ?? .null) }
                if let leader {
                    let enabled = leader["ha_enabled"]?.boolValue == true
                    rows.append(("HA Enabled", .bool(enabled)))
                    if enabled {
                        rows.append(("HA Mode", .string(leader["is_self"]?.boolValue == true ? "active" : "standby")))
                        rows.append(("Active Node", leader["leader_node"] ?? .null))
                        rows.append(("Active Node Address", leader["leader_address"] ?? .null))
                        rows.append(("Active Node Cluster Address", leader["leader_cluster_address"] ?? .null))
                        rows.append(("Leader Term", leader["leader_term"] ?? .null))
                    }
                }
                Output.table(rows)
            }
            if body["sealed"]?.boolValue != false { throw ExitCode(2) }
        }
    }
}

/// `mayfly read PATH`.
struct ReadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "read", abstract: "Read any API path (GET).")
    @OptionGroup var options: ClientOptions
    @Option(help: "Print only this field of the data (raw, for scripts), as Vault's -field.") var field: String?
    @Argument(help: "Path after /v1/, e.g. secret/data/app.") var path: String
    @Argument(help: "Query parameters as key=value.") var query: [String] = []

    func run() async throws {
        try await runCLI {
            let params = try Output.pairs(query).map { ($0.key, $0.value.stringValue ?? "") }
            let (_, body) = try await options.call("GET", path, query: params)
            if let field {
                // Vault's order: the data, then the envelope (lease_id, lease_duration, …).
                guard let value = body["data"]?[field] ?? body[field] ?? body["data"]?["data"]?[field] else {
                    throw CLIError(message: "field \"\(field)\" not present in \(path)", code: 1)
                }
                if case .string(let raw) = value { print(raw) } else { print(Output.text(value)) }
                return
            }
            Output.envelope(body, format: options.format)
        }
    }
}

/// `mayfly write PATH k=v…`.
struct WriteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "write", abstract: "Write to any API path (POST).")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Path after /v1/.") var path: String
    @Argument(help: "Data as key=value (key=@file reads a file, key=- reads stdin; a final newline is dropped).") var data: [String] = []

    func run() async throws {
        try await runCLI {
            let (status, body) = try await options.call("POST", path, json: try Output.pairs(data))
            if status == 204 { Output.success(options.format, "Success! Data written to: \(path)") } else { Output.envelope(body, format: options.format) }
        }
    }
}

/// `mayfly list PATH`.
struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the keys under an API path (LIST).")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Path after /v1/, e.g. secret/metadata/.") var path: String

    func run() async throws {
        try await runCLI {
            let (_, body) = try await options.call("LIST", path)
            printKeys(body, format: options.format)
        }
    }
}

func printKeys(_ body: JSONValue, format: OutputFormat) {
    let keys = body["data"]?["keys"]?.arrayValue ?? []
    if format == .json {
        Output.json(.array(keys))
    } else {
        print("Keys\n----")
        for key in keys { print(Output.text(key)) }
    }
}

/// `mayfly delete PATH`.
struct DeleteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete an API path (DELETE).")
    @OptionGroup var options: ClientOptions
    @Argument(help: "Path after /v1/.") var path: String

    func run() async throws {
        try await runCLI {
            _ = try await options.call("DELETE", path)
            Output.success(options.format, "Success! Data deleted (if it existed) at: \(path)")
        }
    }
}

/// `mayfly token …`.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Create, look up and revoke tokens.",
        subcommands: [Lookup.self, Create.self, Revoke.self])

    struct Lookup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a token (the caller's own without an argument).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Token to look up; the caller's own when absent.") var token: String?
        @Flag(name: .long, help: "Treat the argument as an accessor.") var accessor = false

        func run() async throws {
            try await runCLI {
                let body: JSONValue
                if let token, accessor {
                    body = try await options.call("POST", "auth/token/lookup-accessor", json: ["accessor": .string(token)]).body
                } else if let token {
                    body = try await options.call("POST", "auth/token/lookup", json: ["token": .string(token)]).body
                } else {
                    body = try await options.call("GET", "auth/token/lookup-self").body
                }
                Output.envelope(body, format: options.format)
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a child token of the caller's token.")
        @OptionGroup var options: ClientOptions
        @Option(name: .customLong("policy"), help: "A policy for the token (repeatable).") var policies: [String] = []
        @Option(help: "TTL, e.g. 1h.") var ttl: String?
        @Option(help: "Explicit maximum TTL.") var explicitMaxTTL: String?
        @Option(help: "Display name.") var displayName: String?
        @Option(help: "Number of uses (0 = unlimited).") var useLimit: Int?
        @Flag(help: "Create an orphan token.") var orphan = false
        @Flag(help: "Do not attach the default policy.") var noDefaultPolicy = false

        func run() async throws {
            try await runCLI {
                var data: [String: JSONValue] = [:]
                if !policies.isEmpty { data["policies"] = .strings(policies) }
                if let ttl { data["ttl"] = .string(ttl) }
                if let explicitMaxTTL { data["explicit_max_ttl"] = .string(explicitMaxTTL) }
                if let displayName { data["display_name"] = .string(displayName) }
                if let useLimit { data["num_uses"] = .int(Int64(useLimit)) }
                if noDefaultPolicy { data["no_default_policy"] = true }
                let (_, body) = try await options.call("POST", orphan ? "auth/token/create-orphan" : "auth/token/create", json: data)
                Output.envelope(body, format: options.format)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token and its children.")
        @OptionGroup var options: ClientOptions
        @Argument(help: "Token (or accessor with --accessor) to revoke.") var token: String?
        @Flag(name: .customLong("self"), help: "Revoke the caller's own token.") var revokeSelf = false
        @Flag(name: .long, help: "Treat the argument as an accessor.") var accessor = false

        func validate() throws {
            guard (token == nil) == revokeSelf else { throw ValidationError("give a token, or --self") }
            guard !(revokeSelf && accessor) else { throw ValidationError("--accessor needs an accessor, not --self") }
            guard token.map({ !$0.isEmpty }) ?? true else { throw ValidationError("the token (or accessor) is empty") }
        }

        func run() async throws {
            try await runCLI {
                if revokeSelf {
                    _ = try await options.call("POST", "auth/token/revoke-self")
                } else if accessor {
                    _ = try await options.call("POST", "auth/token/revoke-accessor", json: ["accessor": .string(token!)])
                } else {
                    _ = try await options.call("POST", "auth/token/revoke", json: ["token": .string(token!)])
                }
                Output.success(options.format, "Success! Revoked token (if it existed)")
            }
        }
    }
}
