import Foundation
import Synchronization
import MayflyClient
import MayflyCore
import Testing

/// Tests against the real `mayfly` binary: crash durability, signals, log hygiene, config errors.
@Suite(.serialized) struct ProcessTests {
    static func json(_ response: MayflyClient.Response) throws -> JSONValue { try JSONValue.parse(response.body) }

    @Test func acknowledgedWritesSurviveSIGKILL() async throws {
        let server = try ServerProcess(extraConfig: #"seal "keyfile" { path = "\#(NSTemporaryDirectory())/mf-\#(UUID().uuidString.prefix(6)).key" }"#)
        try await server.start()
        let initResponse = try await server.request("PUT", "sys/init", json: "{}")
        #expect(initResponse.status == 200)
        let token = try #require(try Self.json(initResponse)["root_token"]?.stringValue)

        let client = try MayflyClient(address: "unix://" + server.socketPath, token: token, timeoutSeconds: 30)
        // Four writers stream KV writes until the kill; each records what the server
        // acknowledged. The kill comes once 200 writes are acknowledged (not after a fixed
        // time, which a loaded machine may not fill); a write that fails before it (a slow
        // moment) is not acknowledged and the stream goes on.
        let progress = AckCounter()
        let killed = AckCounter()
        let acknowledged = await withTaskGroup(of: [Int].self) { group in
            for writer in 0..<4 {
                group.addTask {
                    var acked: [Int] = []
                    for i in 0..<100_000 where killed.value.load(ordering: .acquiring) == 0 {
                        let n = writer * 1_000_000 + i
                        guard let response = try? await client.request(
                            "POST", "secret/data/stream/\(n)", body: Data(#"{"data":{"n":"\#(n)"}}"#.utf8)),
                            response.status == 200
                        else { continue }
                        acked.append(n)
                        progress.value.add(1, ordering: .relaxed)
                    }
                    return acked
                }
            }
            group.addTask {
                let deadline = ContinuousClock.now + .seconds(120)
                while progress.value.load(ordering: .relaxed) < 200 && ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(20))
                }
                await server.kill(signal: SIGKILL)
                killed.value.store(1, ordering: .releasing)
                return []
            }
            return await group.reduce(into: [Int]()) { $0 += $1 }
        }
        try? await client.shutdown()
        #expect(acknowledged.count > 20, "the stream must have been running when the server was killed")

        try await server.start()
        let status = try Self.json(try await server.request("GET", "sys/seal-status"))
        #expect(status["sealed"] == false, "a key-file seal unseals after the restart")
        var missing: [Int] = []
        for n in acknowledged {
            let response = try await server.request("GET", "secret/data/stream/\(n)", token: token)
            let value = try? Self.json(response)["data"]?["data"]?["n"]
            if response.status != 200 || value != .string("\(n)") {
                missing.append(n)
            }
        }
        #expect(missing.isEmpty, "acknowledged writes lost after SIGKILL: \(missing.prefix(10))")
        await server.kill(signal: SIGTERM)
    }

    @Test func noSecretReachesTheLogAtTraceLevel() async throws {
        let server = try ServerProcess(logLevel: "trace")
        try await server.start()
        let initBody = try Self.json(try await server.request(
            "PUT", "sys/init", json: #"{"secret_shares":3,"secret_threshold":2}"#))
        let keys = (initBody["keys"]?.arrayValue ?? []).compactMap(\.stringValue)
        let keysBase64 = (initBody["keys_base64"]?.arrayValue ?? []).compactMap(\.stringValue)
        let root = try #require(initBody["root_token"]?.stringValue)
        #expect(keys.count == 3)
        // A wrong share first (its value must not be logged either), a reset, then two good ones.
        let wrongShare = String(repeating: "ab", count: 33)
        _ = try await server.request("PUT", "sys/unseal", json: #"{"key":"\#(wrongShare)"}"#)
        _ = try await server.request("PUT", "sys/unseal", json: #"{"reset":true}"#)
        for key in keys.prefix(2) { _ = try await server.request("PUT", "sys/unseal", json: #"{"key":"\#(key)"}"#) }
        let secretValue = "kv-secret-\(UUID().uuidString)"
        #expect(try await server.request("POST", "secret/data/app", token: root,
                                         json: #"{"data":{"password":"\#(secretValue)"}}"#).status == 200)
        #expect(try await server.request("GET", "secret/data/app", token: root).status == 200)
        let created = try Self.json(try await server.request("POST", "auth/token/create", token: root, json: "{}"))
        let child = try #require(created["auth"]?["client_token"]?.stringValue)
        #expect(try await server.request("GET", "auth/token/lookup-self", token: child).status == 200)
        _ = try await server.request("GET", "secret/data/app", token: "hvs.wrong-\(secretValue)")
        #expect(try await server.request("PUT", "sys/seal", token: root).status == 204)
        await server.kill(signal: SIGTERM)

        let log = server.log()
        #expect(log.contains("request"), "the trace log must record requests, or this test proves nothing")
        for secret in [secretValue, root, String(root.dropFirst(4)), child, String(child.dropFirst(4))] + keys + keysBase64 + [wrongShare] {
            #expect(!log.contains(secret), "a secret appeared in the server log")
        }
    }

    @Test func sigtermShutsDownGracefullyAndRemovesTheSocket() async throws {
        let server = try ServerProcess()
        try await server.start()
        await server.kill(signal: SIGTERM)
        #expect(server.terminationStatus == nil || server.terminationStatus == 0)
        #expect(!FileManager.default.fileExists(atPath: server.socketPath))
        // The log tells a person what to do next, and that the server stopped.
        let log = server.log()
        #expect(log.contains("not initialised yet: run `mayfly operator init`"), "\(log)")
        #expect(log.contains("mayfly stopped"))
    }

    @Test func badConfigNamesFileAndLineAndDoesNotStart() async throws {
        let path = NSTemporaryDirectory() + "/mf-bad-\(UUID().uuidString.prefix(6)).hcl"
        try "storage \"sqlite\" { path = \"/tmp/x.db\" }\nlistener \"unix\" { path = \"/tmp/x.sock\" }\nfrobnicate = true\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let (status, output) = try await ChildRun.toExit([ServerProcess.binary, "server", "--config", path])
        #expect(status == 1)
        #expect(output.contains("\(path):3: unknown setting \"frobnicate\""), "\(output)")
    }

    /// Issue 12, finding 9: a listener the host cannot provide (an unknown group) stops the
    /// server before the store is opened, so nothing from the config is applied first.
    @Test func anUnknownGroupStopsTheServerBeforeTheStoreIsOpened() async throws {
        let server = try ServerProcess(unixListenerOptions: #"group = "no-such-group-mf""#)
        do {
            try await server.start()
            Issue.record("the server must refuse an unknown group")
        } catch {
            #expect(server.log().contains("group \"no-such-group-mf\" does not exist"), "\(server.log())")
        }
        #expect(!FileManager.default.fileExists(atPath: server.directory + "/data/mayfly.db"), "the store was not opened")
    }

    @Test func worldWritableSocketDirectoryIsRefused() async throws {
        let server = try ServerProcess()
        _ = chmod(server.directory + "/run", 0o777)
        do {
            try await server.start()
            Issue.record("the server must refuse a world-writable socket directory")
        } catch {
            #expect(server.log().contains("world-writable"))
        }
    }
}

/// Acknowledged writes so far, shared by the writers and the killer task.
final class AckCounter: Sendable {
    let value = Atomic<Int>(0)
}
