import ArgumentParser
import Foundation
import MayflyJSON

/// `mayfly operator …`: init, unseal, seal, keyring rotation.
struct OperatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "operator", abstract: "Initialise, unseal, seal, rotate the keyring, list the cluster's nodes, migrate the store.",
        subcommands: [Init.self, Unseal.self, Seal.self, Rotate.self, KeyStatus.self, Members.self, MigrateCommand.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Initialise a new server; prints the unseal key shares and the root token once.")
        @OptionGroup var options: ClientOptions
        @Option(help: "Number of unseal key shares.") var keyShares = 5
        @Option(help: "Shares needed to unseal.") var keyThreshold = 3

        func run() async throws {
            try await runCLI {
                let (_, body) = try await options.call(
                    "PUT", "sys/init",
                    json: ["secret_shares": .int(Int64(keyShares)), "secret_threshold": .int(Int64(keyThreshold))],
                    token: false)
                if options.format == .json {
                    Output.json(body)
                    return
                }
                for (index, key) in (body["keys"]?.arrayValue ?? []).enumerated() {
                    print("Unseal Key \(index + 1): \(Output.text(key))")
                }
                print("\nInitial Root Token: \(Output.text(body["root_token"] ?? ""))\n")
                if (body["keys"]?.arrayValue ?? []).isEmpty {
                    print("""
                        The server uses a key-file seal: it is unsealed already and unseals itself
                        after every restart. Store the root token somewhere safe: it is shown only
                        once.
                        """)
                } else {
                    print("""
                        Store the unseal keys and the root token somewhere safe: they are shown
                        only once. Unseal with `mayfly operator unseal` (\(keyThreshold) of \(keyShares) keys).
                        """)
                }
            }
        }
    }

    struct Unseal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Submit one unseal key share (read from stdin when not given).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The share (hex or base64). Omit it to type it without echo.") var key: String?
        @Flag(help: "Discard the shares submitted so far.") var reset = false

        func run() async throws {
            try await runCLI {
                var data: [String: JSONValue] = [:]
                if reset {
                    data["reset"] = true
                } else {
                    data["key"] = .string(try key ?? readSecret(prompt: "Unseal Key (will be hidden): "))
                }
                let (_, body) = try await options.call("PUT", "sys/unseal", json: data, token: false)
                if options.format == .json {
                    Output.json(body)
                } else {
                    Output.table([
                        ("Sealed", body["sealed"] ?? .null), ("Threshold", body["t"] ?? .null),
                        ("Total Shares", body["n"] ?? .null), ("Unseal Progress", body["progress"] ?? .null),
                    ])
                }
            }
        }
    }

    struct Seal: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Seal the server: every key is wiped from its memory.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await runCLI {
                _ = try await options.call("PUT", "sys/seal")
                Output.success(options.format, "Success! Mayfly is sealed.")
            }
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a keyring term; new writes use it, old data still decrypts.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await runCLI {
                let (_, body) = try await options.call("PUT", "sys/rotate")
                if options.format == .json { return Output.json(body) }
                print("Success! Rotated key\n")
                Output.object(body["data"]?.objectValue ?? [:])
                // On a terminal, follow the re-wrap of old entries to the new term (Ctrl-C stops
                // watching; the re-wrap goes on in the server).
                guard isatty(1) == 1 else { return }
                while true {
                    let status = try await options.call("GET", "sys/key-status").body["data"]?["rewrap"]
                    let moved = status?["entries_moved"]?.intValue ?? 0
                    let state = status?["state"]?.stringValue ?? "idle"
                    FileHandle.standardOutput.write(Data("\rre-wrap: \(moved) entries moved to the new term (\(state))\u{1B}[K".utf8))
                    if state != "running" { break }
                    try await Task.sleep(for: .milliseconds(500))
                }
                print()
            }
        }
    }

    /// `mayfly operator members`: the nodes of an HA cluster (`sys/ha-status`).
    struct Members: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "members",
            abstract: "List the nodes of an HA cluster: leader or standby, term, last heartbeat, addresses.",
            discussion: "Any node answers (a standby asks the leader). A node silent for longer than the lock TTL is shown as gone.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await runCLI {
                let (_, body) = try await options.call("GET", "sys/ha-status")
                if options.format == .json { return Output.json(body) }
                let nodes = (body["data"]?["nodes"] ?? body["nodes"])?.arrayValue ?? []
                Output.rows(["Node", "Mode", "Term", "Last Heartbeat", "API Address", "Cluster Address"], nodes.map { node in
                    let live = node["live"]?.boolValue ?? true
                    let mode = !live ? "gone" : (node["active_node"]?.boolValue == true ? "leader" : "standby")
                    return [
                        node["hostname"]?.stringValue ?? "", mode, node["term"].map(Output.text) ?? "",
                        node["heartbeat_age_seconds"].map { Output.text($0) + "s ago" } ?? "",
                        node["api_address"]?.stringValue ?? "", node["cluster_address"]?.stringValue ?? "",
                    ]
                })
            }
        }
    }

    struct KeyStatus: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "key-status", abstract: "Show the active keyring term.")
        @OptionGroup var options: ClientOptions

        func run() async throws {
            try await runCLI {
                let (_, body) = try await options.call("GET", "sys/key-status")
                if options.format == .json { Output.json(body) } else { Output.object(body["data"]?.objectValue ?? [:]) }
            }
        }
    }
}

/// Reads a line from the terminal without echo (or plain stdin when not a terminal).
func readSecret(prompt: String) throws -> String {
    if isatty(STDIN_FILENO) == 1 {
        FileHandle.standardError.write(Data(prompt.utf8))
        var old = termios()
        tcgetattr(STDIN_FILENO, &old)
        var silent = old
        silent.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(STDIN_FILENO, TCSANOW, &silent)
        defer {
            tcsetattr(STDIN_FILENO, TCSANOW, &old)
            FileHandle.standardError.write(Data("\n".utf8))
        }
        guard let line = readLine() else { throw CLIError(message: "no key given", code: 1) }
        return line.trimmingCharacters(in: .whitespaces)
    }
    guard let line = readLine() else { throw CLIError(message: "no key given on stdin", code: 1) }
    return line.trimmingCharacters(in: .whitespaces)
}
