import ArgumentParser
import Foundation
import MayflyClient
import MayflyJSON
import Synchronization

/// Output format of client commands.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

/// Options shared by every command that talks to a server.
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: "Server address: unix:///path.sock or https://host:port (env MAYFLY_ADDR, VAULT_ADDR).")
    var address: String?

    @Option(name: .long, help: "CA certificate (PEM) to verify an HTTPS server (env MAYFLY_CACERT, VAULT_CACERT).")
    var caCert: String?

    @Option(name: .long, help: "Client certificate (PEM) for mTLS (env MAYFLY_CLIENT_CERT).")
    var clientCert: String?

    @Option(name: .long, help: "Client key (PEM) for mTLS (env MAYFLY_CLIENT_KEY).")
    var clientKey: String?

    @Option(name: .long, help: "Output format: table or json.")
    var format: OutputFormat = .table

    static let defaultAddress = "unix://./.mayfly/mayfly.sock"

    /// Remembers the output format, so that errors follow it too (`runCLI`).
    func validate() throws {
        CLIOutput.format.withLock { $0 = format }
    }

    private static func env(_ names: String...) -> String? {
        for name in names {
            if let value = ProcessInfo.processInfo.environment[name], !value.isEmpty { return value }
        }
        return nil
    }

    var resolvedAddress: String {
        var address = address ?? Self.env("MAYFLY_ADDR", "VAULT_ADDR") ?? Self.defaultAddress
        // A relative socket path is relative to the working directory.
        if address.hasPrefix("unix://"), !address.hasPrefix("unix:///") {
            let relative = String(address.dropFirst("unix://".count))
            address = "unix://" + FileManager.default.currentDirectoryPath + "/" + relative.replacingOccurrences(of: "./", with: "")
        }
        return address
    }

    /// A client for the resolved address, with the token from the environment.
    func client(token: Bool = true) throws -> MayflyClient {
        do {
            return try MayflyClient(
                address: resolvedAddress, token: token ? Self.env("MAYFLY_TOKEN", "VAULT_TOKEN") : nil,
                caFile: caCert ?? Self.env("MAYFLY_CACERT", "VAULT_CACERT"),
                certFile: clientCert ?? Self.env("MAYFLY_CLIENT_CERT", "VAULT_CLIENT_CERT"),
                keyFile: clientKey ?? Self.env("MAYFLY_CLIENT_KEY", "VAULT_CLIENT_KEY"))
        } catch {
            throw CLIError(message: "\(error)", code: 1)
        }
    }
}

/// A failure with the exit status it maps to (1 error, 2 sealed or unreachable).
struct CLIError: Error, CustomStringConvertible {
    let message: String
    let code: Int32
    var description: String { message }
}

extension ClientOptions {
    /// Runs one request, maps transport failures and 503 to exit 2 and other errors to exit 1.
    func call(_ method: String, _ path: String, json: [String: JSONValue]? = nil, query: [(String, String)] = [],
              token: Bool = true, allow: Set<Int> = []) async throws -> (status: Int, body: JSONValue)
    {
        let client = try client(token: token)
        let response: MayflyClient.Response
        do {
            response = try await client.request(
                method, path, body: json.map { Data(JSONValue.object($0).encoded()) }, query: query)
        } catch let error as MayflyClient.UsageError {
            try? await client.shutdown()
            throw CLIError(message: "\(error)", code: 1)
        } catch {
            try? await client.shutdown()
            throw CLIError(message: "\(error)", code: 2)
        }
        try? await client.shutdown()
        let body = response.json ?? .null
        if response.status == 200, body.objectValue == nil {
            throw CLIError(message: "invalid answer from \(path): HTTP 200 without a JSON object (is MAYFLY_ADDR a Mayfly?)", code: 1)
        }
        if allow.contains(response.status) || (200..<300).contains(response.status) { return (response.status, body) }
        if response.status == 503 {
            throw CLIError(message: "Error: \(response.errorMessage) (HTTP 503)", code: 2)
        }
        if response.status == 404 && response.errorMessage == "HTTP 404" {
            throw CLIError(message: "No value found at \(path)", code: 1)
        }
        throw CLIError(message: "Error making API request to \(path): HTTP \(response.status): \(response.errorMessage)", code: 1)
    }
}

/// The output format of the command being run (set when its options are validated).
enum CLIOutput {
    static let format = Mutex(OutputFormat.table)
}

/// Runs a command body, printing errors (as `{"error": …, "exit_status": …}` with
/// `--format json`) and exiting with their status.
func runCLI(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as CLIError {
        if CLIOutput.format.withLock({ $0 }) == .json {
            let object: JSONValue = ["error": .string(error.message), "exit_status": .int(Int64(error.code))]
            FileHandle.standardError.write(Data(object.encoded() + [10]))
        } else {
            FileHandle.standardError.write(Data((Output.visible(error.message) + "\n").utf8))
        }
        throw ExitCode(error.code)
    }
}
