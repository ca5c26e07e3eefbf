import ArgumentParser
import Foundation
import MayflyCore

/// `mayfly audit …`: check an audit file's chain, hash a value to look for it in the file.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Verify an audit file's hash chain, or hash a value as the audit file does.",
        subcommands: [Verify.self, Hash.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every line's sequence number and link to the previous line (offline).",
            discussion: "Exit 0 when the chain is intact; 1 with the first bad line otherwise.")
        @Argument(help: "The audit file.") var file: String

        func run() async throws {
            try await runCLI {
                let result: AuditVerifier.Result
                do {
                    result = try AuditVerifier.verify(path: file)
                } catch {
                    throw CLIError(message: "error: cannot read \(file)", code: 1)
                }
                switch result {
                case .intact(let lines):
                    print("\(file): intact, \(lines) line\(lines == 1 ? "" : "s")")
                case .broken(let line, let reason):
                    throw CLIError(message: "\(file):\(line): chain broken: \(reason)", code: 1)
                }
            }
        }
    }

    struct Hash: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The HMAC the audit file holds for VALUE (asks the server: sys/audit-hash/file).")
        @OptionGroup var options: ClientOptions
        @Argument(help: "The plaintext value to look for.") var value: String

        func run() async throws {
            try await runCLI {
                let (_, body) = try await options.call("PUT", "sys/audit-hash/file", json: ["input": .string(value)])
                if options.format == .json { Output.json(body) } else { print(Output.text(body["hash"] ?? body["data"]?["hash"] ?? "")) }
            }
        }
    }
}
