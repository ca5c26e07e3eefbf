import ArgumentParser
import Foundation
import MayflyJSON

/// `mayfly kv …`: the KV version 2 store (paths are `mount/path`, e.g. `secret/app/db`).
struct KVCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kv", abstract: "Read and write the versioned KV store (paths like secret/app/db).",
        subcommands: [Get.self, Put.self, List.self, Delete.self, Undelete.self, Destroy.self, Metadata.self])

    /// Splits `secret/app/db` into the API path `secret/<section>/app/db`.
    static func apiPath(_ path: String, _ section: String) throws -> String {
        let trimmed = path.hasPrefix("/") ? String(path.dropFirst()) : path
        guard let slash = trimmed.firstIndex(of: "/") else {
            if section == "metadata" { return trimmed + "/metadata/" }
            throw CLIError(message: "path must be mount/secret, e.g. secret/app/db", code: 1)
        }
        return trimmed[..<slash] + "/" + section + "/" + trimmed[trimmed.index(after: slash)...]
    }

    /// POSTs `{"versions": [...]}` to `mount/<section>/path` (undelete, destroy).
    static func changeVersions(_ options: ClientOptions, section: String, path: String, versions: String) async throws {
        try await runCLI {
            _ = try await options.call("POST", try apiPath(path, section), json: ["versions": try KVCommand.versions(versions)])
            let done = section == "undelete" ? "restored" : "destroyed"
            Output.success(options.format, "Success! Version(s) \(versions) of \(path) \(done)")
        }
    }

    static func versions(_ list: String) throws -> JSONValue {
        let numbers = list.split(separator: ",").map { Int64($0.trimmingCharacters(in: .whitespaces)) }
        guard !numbers.isEmpty, numbers.allSatisfy({ $0 != nil }) else {
            throw CLIError(message: "--versions must be a comma-separated list of numbers", code: 1)
        }
        return .array(numbers.map { .int($0!) })
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Read a secret (latest or --version).")
        @OptionGroup var options: ClientOptions
        @Option(help: "Version to read.") var version: Int?
        @Option(help: "Print only this field.") var field: String?
        @Argument var path: String

        func run() async throws {
            try await runCLI {
                let query = version.map { [("version", String($0))] } ?? []
                let (status, body) = try await options.call("GET", try apiPath(path, "data"), query: query, allow: [404])
                let data = body["data"]
                if status == 404 {
                    guard let metadata = data?["metadata"]?.objectValue else {
                        throw CLIError(message: "No value found at \(path)", code: 1)
                    }
                    let destroyed = metadata["destroyed"]?.boolValue == true
                    throw CLIError(message: "Version \(Output.text(metadata["version"] ?? 0)) of \(path) is \(destroyed ? "destroyed" : "deleted")", code: 1)
                }
                if let field {
                    guard let value = data?["data"]?[field] else { throw CLIError(message: "field \"\(field)\" not present", code: 1) }
                    // --field is for scripts: the value exactly as stored.
                    if case .string(let raw) = value { print(raw) } else { print(Output.text(value)) }
                } else if options.format == .json {
                    Output.json(body)
                } else {
                    print("====== Metadata ======")
                    Output.object(data?["metadata"]?.objectValue ?? [:])
                    print("\n====== Data ======")
                    Output.object(data?["data"]?.objectValue ?? [:])
                }
            }
        }
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write a new version of a secret.")
        @OptionGroup var options: ClientOptions
        @Option(help: "Check-and-set: write only if the current version is this (0 = must not exist).") var cas: Int?
        @Argument var path: String
        @Argument(help: "key=value pairs (key=@file, key=-).") var data: [String]

        func validate() throws {
            guard !data.isEmpty else { throw ValidationError("give at least one key=value") }
        }

        func run() async throws {
            try await runCLI {
                var body: [String: JSONValue] = ["data": .object(try Output.pairs(data))]
                body["options"] = cas.map { ["cas": .int(Int64($0))] } ?? .object([:])
                let (_, response) = try await options.call("POST", try apiPath(path, "data"), json: body)
                if options.format == .json { Output.json(response) } else {
                    Output.object(response["data"]?.objectValue ?? [:])
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the secrets under a path.")
        @OptionGroup var options: ClientOptions
        @Argument var path: String

        func run() async throws {
            try await runCLI {
                let (_, body) = try await options.call("LIST", try apiPath(path, "metadata"))
                printKeys(body, format: options.format)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Soft-delete the latest version (or --versions).")
        @OptionGroup var options: ClientOptions
        @Option(help: "Comma-separated versions to delete.") var versions: String?
        @Argument var path: String

        func run() async throws {
            try await runCLI {
                if let versions {
                    _ = try await options.call("POST", try apiPath(path, "delete"), json: ["versions": try KVCommand.versions(versions)])
                } else {
                    _ = try await options.call("DELETE", try apiPath(path, "data"))
                }
                Output.success(options.format, "Success! Data deleted (if it existed) at: \(path)")
            }
        }
    }

    struct Undelete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Restore soft-deleted versions.")
        @OptionGroup var options: ClientOptions
        @Option(help: "Comma-separated versions to restore.") var versions: String
        @Argument var path: String

        func run() async throws {
            try await changeVersions(options, section: "undelete", path: path, versions: versions)
        }
    }

    struct Destroy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Permanently destroy versions.")
        @OptionGroup var options: ClientOptions
        @Option(help: "Comma-separated versions to destroy.") var versions: String
        @Argument var path: String

        func run() async throws {
            try await changeVersions(options, section: "destroy", path: path, versions: versions)
        }
    }

    struct Metadata: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read, write or delete a secret's metadata (delete removes every version).",
            subcommands: [MetaGet.self, MetaPut.self, MetaDelete.self])
    }

    struct MetaGet: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "get", abstract: "Show metadata and versions.")
        @OptionGroup var options: ClientOptions
        @Argument var path: String

        func run() async throws {
            try await runCLI {
                let (_, body) = try await options.call("GET", try apiPath(path, "metadata"))
                if options.format == .json { return Output.json(body) }
                var fields = body["data"]?.objectValue ?? [:]
                let versions = fields.removeValue(forKey: "versions")?.objectValue ?? [:]
                Output.object(fields)
                print("\n====== Versions ======")
                let numbers = versions.keys.compactMap { Int($0) }.sorted()
                Output.rows(["version", "created", "deleted", "destroyed"], numbers.map { number in
                    let version = versions[String(number)]
                    let deleted = version?["deletion_time"]?.stringValue ?? ""
                    return [String(number), Output.second(version?["created_time"]?.stringValue),
                            deleted.isEmpty ? "-" : Output.second(deleted), version?["destroyed"]?.boolValue == true ? "yes" : "no"]
                })
            }
        }
    }

    struct MetaPut: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "put", abstract: "Change max versions, CAS requirement or deletion delay.")
        @OptionGroup var options: ClientOptions
        @Option(help: "Versions to keep.") var maxVersions: Int?
        @Option(help: "Require check-and-set on writes: true or false.") var casRequired: Bool?
        @Option(help: "Delete versions this long after writing (e.g. 24h).") var deleteVersionAfter: String?
        @Option(help: "Custom metadata key=value (repeatable).") var customMetadata: [String] = []
        @Argument var path: String

        func run() async throws {
            try await runCLI {
                var data: [String: JSONValue] = [:]
                if let maxVersions { data["max_versions"] = .int(Int64(maxVersions)) }
                if let casRequired { data["cas_required"] = .bool(casRequired) }
                if let deleteVersionAfter { data["delete_version_after"] = .string(deleteVersionAfter) }
                if !customMetadata.isEmpty { data["custom_metadata"] = .object(try Output.pairs(customMetadata)) }
                _ = try await options.call("POST", try apiPath(path, "metadata"), json: data)
                Output.success(options.format, "Success! Data written to: \(path)")
            }
        }
    }

    struct MetaDelete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete the secret and all its versions.")
        @OptionGroup var options: ClientOptions
        @Argument var path: String

        func run() async throws {
            try await runCLI {
                _ = try await options.call("DELETE", try apiPath(path, "metadata"))
                Output.success(options.format, "Success! Data deleted (if it existed) at: \(path)")
            }
        }
    }
}
