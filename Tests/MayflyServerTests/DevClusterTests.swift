import Foundation
import Testing

/// `mayfly server --dev-ha`: two nodes on a throw-away PostgreSQL store, a failover drill as
/// its banner suggests (kill -9 the leader, the standby leads), nothing left after Ctrl-C.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["MAYFLY_REQUIRE_INTEGRATION"] == "1"
                || FileManager.default.fileExists(atPath: "/usr/lib/postgresql"),
                "needs PostgreSQL's server binaries"))
struct DevClusterTests {
    @Test func devHAFailsOverAsItsBannerSaysAndLeavesNothingBehind() async throws {
        let directory = "/tmp/mf-devha-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let dev = try DevModeTests.DevProcess(in: directory, name: "dev-ha", arguments: ["server", "--dev-ha"])
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
        let env = ["MAYFLY_ADDR": "unix://\(directory)/.mayfly/node-2.sock", "MAYFLY_TOKEN": token]

        let members = try await CLITests.mayfly(["operator", "members"], env: env)
        let lines = members.stdout.split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("node-1") && $0.contains("leader") }, "\(members.stdout)\(members.stderr)")
        #expect(lines.contains { $0.hasPrefix("node-2") && $0.contains("standby") }, "\(members.stdout)")
        #expect(try await CLITests.mayfly(["kv", "put", "secret/drill", "before=failover"], env: env).status == 0)
        #expect(try await CLITests.mayfly(["read", "database/creds/dev-readonly"], env: env).status == 0,
                "dev mode's databases are declared on the cluster")

        // The drill: kill -9 the leader; the standby leads within lock_ttl (5 s).
        let pid = try #require(pid_t(try String(contentsOfFile: directory + "/.mayfly/node-1.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)))
        kill(pid, SIGKILL)
        var status = ""
        let failover = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < failover {
            status = try await CLITests.mayfly(["status"], env: env).stdout
            if status.contains("active") { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(status.contains("HA Mode") && status.contains("active") && status.contains("node-2"), "\(status)")
        let read = try await CLITests.mayfly(["kv", "get", "--field", "before", "secret/drill"], env: env)
        #expect(read.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "failover", "\(read.stdout)\(read.stderr)")
        #expect(dev.output.contains("node-1 (pid \(pid)) exited"))

        // Ctrl-C: the other node, PostgreSQL and every file go.
        let survivor = pid_t(try String(contentsOfFile: directory + "/.mayfly/node-2.pid", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines))
        let postmaster = DevModeTests.postmaster(in: root)
        dev.stop(SIGINT)
        #expect(dev.process.terminationStatus == 0, "\(dev.output)")
        if let survivor { #expect(try await DevModeTests.stops(survivor)) }
        if let postmaster { #expect(try await DevModeTests.stops(postmaster)) }
        #expect(!FileManager.default.fileExists(atPath: root))
        #expect(!FileManager.default.fileExists(atPath: directory + "/.mayfly"), "the socket directory is removed")
    }
}
