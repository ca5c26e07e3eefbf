import Foundation
import MayflyRun
import Testing

/// `mayfly server --dev-ha`: two nodes on a throw-away PostgreSQL store, a failover drill as
/// the README writes it (kill -9 the leader, the standby leads), nothing left after Ctrl-C.
/// In `DevModeTests`, whose tests run one at a time: each starts a PostgreSQL of its own.
extension DevModeTests {
    @Test func theReadmeFailoverRunsAsWrittenAndLeavesNothingBehind() async throws {
        let directory = "/tmp/mf-devha-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let dev = try DevProcess(in: directory, name: "dev-ha", arguments: ["server", "--dev-ha"])
        let deadline = ContinuousClock.now + .seconds(120)
        while !dev.output.contains("Root Token: "), dev.process.isRunning, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let text = dev.output
        func after(_ marker: String, upTo end: Character) -> String? {
            guard let range = text.range(of: marker) else { return nil }
            return String(text[range.upperBound...].prefix { $0 != end })
        }
        let token = try #require(after("Root Token: ", upTo: "\n"), "no banner:\n\(text)")
        let root = try #require(after("lives in ", upTo: " "), "\(text)")
        // The banner's export lines: the CLI on PATH, pointed at the standby with the root token.
        var env: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("export MAYFLY_"), let equals = trimmed.firstIndex(of: "=") else { continue }
            env[String(trimmed[trimmed.index(trimmed.startIndex, offsetBy: 7)..<equals])] =
                String(trimmed[trimmed.index(after: equals)...]).trimmingCharacters(in: CharacterSet(charactersIn: "'"))
        }
        #expect(env["MAYFLY_ADDR"] == "unix://\(directory)/.mayfly/node-2.sock" && env["MAYFLY_TOKEN"] == token, "\(env)")
        #expect(try await CLITests.mayfly(["read", "database/creds/dev-readonly"], env: env).status == 0,
                "dev mode's databases are declared on the cluster")
        let pid = try #require(pid_t(try String(contentsOfFile: directory + "/.mayfly/node-1.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))

        // The README's drill, as written.
        let commands = try ReadmeTour.commands(sections: ["A failover in a minute"])
        #expect(commands.count == 6)
        var outputs: [String] = []
        var environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        environment["PATH"] = (ServerProcess.binary as NSString).deletingLastPathComponent + ":" + (environment["PATH"] ?? "")
        for command in commands {
            let (status, output) = try await Self.shell(command.text, in: directory, environment: environment)
            #expect(status == 0, "\(command): \(output)")
            outputs.append(output)
        }
        let members = outputs[0].split(separator: "\n")
        #expect(members.contains { $0.hasPrefix("node-1") && $0.contains("leader") }, "\(outputs[0])")
        #expect(members.contains { $0.hasPrefix("node-2") && $0.contains("standby") }, "\(outputs[0])")
        #expect(outputs[4].contains("active") && outputs[4].contains("node-2"), "\(outputs[4])")
        #expect(outputs[5].contains("failover"), "\(outputs[5])")
        #expect(dev.output.contains("node-1 (pid \(pid)) exited"))

        // Ctrl-C: the other node, PostgreSQL and every file go.
        let survivor = pid_t(try String(contentsOfFile: directory + "/.mayfly/node-2.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines))
        let postmaster = Self.postmaster(in: root)
        #expect(await dev.stop(SIGINT) == 0, "\(dev.output)")
        if let survivor { #expect(try await Self.stops(survivor)) }
        if let postmaster { #expect(try await Self.stops(postmaster)) }
        #expect(!FileManager.default.fileExists(atPath: root))
        #expect(!FileManager.default.fileExists(atPath: directory + "/.mayfly"), "the socket directory is removed")
    }
}
