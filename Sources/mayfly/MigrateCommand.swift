import ArgumentParser
import Foundation
import MayflyCore

/// `mayfly operator migrate --from OLD.hcl --to NEW.hcl`: copies the store of one server config
/// into the (empty) store of another, offline.
struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Copy a stopped server's store into a new, empty one (SQLite to PostgreSQL, or back).",
        discussion: """
            Both files are server configs; only their storage stanzas are used. Everything is copied
            as it is (ciphertext, the seal configuration, lease rows), so the copy unseals with the
            same keys. No server may run on either store meanwhile, and a target that holds
            anything is refused. Then start the server with the new config.
            """)

    @Option(help: "The config whose store is copied.") var from: String
    @Option(help: "The config whose (empty) store receives the copy.") var to: String

    func run() async throws {
        do {
            let source = try ConfigLoader.load(path: from)
            let destination = try ConfigLoader.load(path: to)
            let outcome = try await StoreMigration.run(from: source, to: destination) { line in
                FileHandle.standardError.write(Data("migrate: \(line)\n".utf8))
            }
            print("Success! Copied \(outcome.entries) entries, \(outcome.leases) lease rows and \(outcome.systemValues) system values. Start the server with \(to).")
        } catch {
            FileHandle.standardError.write(Data("Error: \(String(reflecting: error))\n".utf8))
            throw ExitCode(1)
        }
    }
}
