import Foundation
import Glibc
import MayflyClient
import MayflyRun
import Testing

/// A second server cannot take over a running one (review finding 14): not its Unix socket,
/// not its SQLite store, not its dev-mode directory.
@Suite(.serialized) struct SecondServerTests {
    /// Runs `mayfly` with `arguments` in `directory` until it exits (at most 60 s); returns its
    /// status and output.
    static func runToExit(_ arguments: [String], in directory: String? = nil) async throws -> (status: Int32, output: String) {
        try await ChildRun.toExit([ServerProcess.binary] + arguments, directory: directory) {
            Issue.record("the second server did not exit")
        }
    }

    @Test func aSecondServerOnTheSameConfigIsRefusedAndTheFirstKeepsServing() async throws {
        let first = try ServerProcess()
        try await first.start()
        defer { first.signal(SIGTERM) }

        let second = try await Self.runToExit(["server", "--config", first.configPath])
        #expect(second.status == 1, "\(second.output)")
        #expect(second.output.contains("another server is listening on \(first.socketPath)"), "\(second.output)")
        #expect(first.isRunning)
        #expect(try await first.request("GET", "sys/health").status == 501, "the first server still answers on its socket")
    }

    @Test func aSecondServerOnTheSameStoreIsRefused() async throws {
        let first = try ServerProcess()
        try await first.start()
        defer { first.signal(SIGTERM) }
        let pid = try #require(first.pid)

        let otherSocket = first.directory + "/run/other.sock"
        let otherConfig = first.directory + "/other.hcl"
        try """
            storage "sqlite" { path = "\(first.directory)/data/mayfly.db" }
            listener "unix"  { path = "\(otherSocket)" }
            """.write(toFile: otherConfig, atomically: true, encoding: .utf8)
        let second = try await Self.runToExit(["server", "--config", otherConfig])
        #expect(second.status == 1, "\(second.output)")
        #expect(second.output.contains("the store \(first.directory)/data/mayfly.db is in use by another server (pid \(pid))"),
                "\(second.output)")
        #expect(!FileManager.default.fileExists(atPath: otherSocket), "the refused server never listened")
        #expect(try await first.request("GET", "sys/health").status == 501)
    }

    @Test func aStaleSocketIsReplaced() async throws {
        let server = try ServerProcess()
        // A socket file nobody listens on, as a server killed with -9 leaves behind.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(server.socketPath.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: bytes)
            buffer[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        close(fd)
        #expect(bound == 0 && FileManager.default.fileExists(atPath: server.socketPath))

        try await server.start()
        #expect(try await server.request("GET", "sys/health").status == 501)
        await server.kill(signal: SIGTERM)
        #expect(!FileManager.default.fileExists(atPath: server.socketPath), "its own socket is removed at exit")
    }

    @Test func aSecondDevServerInTheSameDirectoryIsRefused() async throws {
        let directory = "/tmp/mf-dev2-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socket = directory + "/.mayfly/mayfly.sock"

        let log = directory + "/first.log"
        let first = try ChildProcess.spawn([ServerProcess.binary, "server", "--dev", "--dev-no-postgres"],
                                           environment: ChildRun.environment, directory: directory,
                                           input: "/dev/null", output: log, errors: log)
        defer { first.signal(SIGKILL) }
        func firstLog() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        let client = try MayflyClient(address: "unix://" + socket, token: nil)
        defer { Task { try? await client.shutdown() } }
        let deadline = ContinuousClock.now + .seconds(60)
        while !firstLog().contains("Root Token:"), first.isRunning, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await client.request("GET", "sys/health").status == 200, "the first dev server is up; log:\n\(firstLog())")

        let second = try await Self.runToExit(["server", "--dev", "--dev-no-postgres"], in: directory)
        #expect(second.status == 1, "\(second.output)")
        #expect(second.output.contains("another server is listening on \(socket)"), "\(second.output)")
        #expect(FileManager.default.fileExists(atPath: socket), "the first server's socket is left alone")
        #expect(try await client.request("GET", "sys/health").status == 200, "and it still answers")

        first.signal(SIGINT)
        #expect(await first.exitCode(killingAfter: .seconds(60)) == 0, "\(firstLog().suffix(2000))")
        #expect(!FileManager.default.fileExists(atPath: directory + "/.mayfly"), "the first server cleans up after itself")
    }
}
