import Foundation
@testable import MayflyCore
import MayflyCrypto
import Testing

/// The audit file (issue 4, point 5): a hash chain that `audit verify` checks, HMAC'd secrets,
/// and fail-closed requests when the file cannot be written.
@Suite struct AuditTests {
    static func temporaryFile() -> String {
        NSTemporaryDirectory() + "mf-audit-\(UUID().uuidString.prefix(8)).log"
    }

    static func writeLines(_ path: String, count: Int) throws {
        let file = try AuditFile(path: path)
        for index in 1...count { try file.append(["type": "request", "n": .int(Int64(index)), "path": "secret/data/x"]) }
    }

    static func lines(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    static func rewrite(_ path: String, _ lines: [String]) throws {
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
    }

    @Test func verifyPassesUntouchedAndFindsEditsDeletionsAndSwaps() throws {
        let path = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Self.writeLines(path, count: 20)
        #expect(try AuditVerifier.verify(path: path) == .intact(lines: 20))
        let original = try Self.lines(path)

        var edited = original
        edited[4] = edited[4].replacingOccurrences(of: "secret/data/x", with: "secret/data/y")
        try Self.rewrite(path, edited)
        guard case .broken(5, _) = try AuditVerifier.verify(path: path) else { Issue.record("edit of line 5 not found"); return }

        var deleted = original
        deleted.remove(at: 6)
        try Self.rewrite(path, deleted)
        guard case .broken(7, _) = try AuditVerifier.verify(path: path) else { Issue.record("deletion of line 7 not found"); return }

        var swapped = original
        swapped.swapAt(2, 3)
        try Self.rewrite(path, swapped)
        guard case .broken(3, _) = try AuditVerifier.verify(path: path) else { Issue.record("swap of lines 3 and 4 not found"); return }

        var garbage = original
        garbage[9] = "not json"
        try Self.rewrite(path, garbage)
        guard case .broken(10, _) = try AuditVerifier.verify(path: path) else { Issue.record("garbage line not found"); return }

        // Reopening continues the chain.
        try Self.rewrite(path, original)
        try Self.writeLines(path, count: 3)
        #expect(try AuditVerifier.verify(path: path) == .intact(lines: 23))
    }

    /// Reopening reads the file from its end: the chain continues across 64 KiB blocks, after
    /// a last line longer than a block, and after a line cut short by a crash (dropped).
    @Test func reopeningALargeFileContinuesItsChainFromTheEnd() throws {
        let path = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let filler = String(repeating: "x", count: 300)
        do {
            let file = try AuditFile(path: path)
            for index in 1...700 { try file.append(["type": "request", "n": .int(Int64(index)), "pad": .string(filler)]) }
        }
        #expect(try AuditFile(path: path).seqForTests == 700)
        try AuditFile(path: path).append(["type": "request", "pad": .string(String(repeating: "y", count: 200_000))])
        let file = try AuditFile(path: path)
        #expect(file.seqForTests == 701)
        try file.append(["type": "response"])
        #expect(try AuditVerifier.verify(path: path) == .intact(lines: 702))

        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(#"{"type":"request","cut":"#.utf8))
        try handle.close()
        try AuditFile(path: path).append(["type": "request"])
        #expect(try AuditVerifier.verify(path: path) == .intact(lines: 703), "the cut line is dropped, the chain goes on")

        // A file whose last line is not an audit line (no seq): numbered by counting its lines.
        let foreign = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: foreign) }
        try "one\ntwo\n".write(toFile: foreign, atomically: true, encoding: .utf8)
        #expect(try AuditFile(path: foreign).seqForTests == 2)
    }

    @Test func noSecretInTheFileAndAuditHashFindsIt() async throws {
        let path = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let t = try await TestBroker.make { $0.auditPath = path }
        let secret = "s3cr3t-" + UUID().uuidString
        _ = try await t.call(.update, "secret/data/orders/db", ["data": ["password": .string(secret), "port": 5432]])
        let read = try await t.data(.read, "secret/data/orders/db")
        #expect(read["data"]?["password"]?.stringValue == secret)
        guard case .envelope(let created, _) = try await t.call(.update, "auth/token/create", ["ttl": "1h"]) else {
            Issue.record("envelope expected"); return
        }
        let child = try #require(created.auth["client_token"]?.stringValue)
        let accessor = try #require(created.auth["accessor"]?.stringValue)
        _ = try await t.call(.read, "auth/token/lookup-self", token: child)

        let text = try String(contentsOfFile: path, encoding: .utf8)
        for plaintext in [secret, t.rootToken, child, accessor] {
            #expect(!text.contains(plaintext), "plaintext secret in the audit file")
        }
        let hashed = try #require(try await t.data(.update, "sys/audit-hash/file", ["input": .string(secret)])["hash"]?.stringValue)
        #expect(hashed.hasPrefix("hmac-sha256:") && text.contains(hashed), "the secret's HMAC is there to compare")
        #expect(text.contains("\"port\":5432"), "numbers are logged as numbers")
        #expect(text.contains("\"type\":\"request\"") && text.contains("\"type\":\"response\""))
        #expect(text.contains("\"path\":\"secret/data/orders/db\""))
        guard case .intact(let lines) = try AuditVerifier.verify(path: path) else { Issue.record("chain broken"); return }
        #expect(lines >= 10, "a request and a response line per audited request")
        #expect(!text.contains("sys/seal-status"), "status paths are not audited")
    }

    /// The lines are put together from bytes (no `JSONValue` tree per line): each is still one
    /// JSON object with the members Vault's file device writes, every string of request and
    /// response data and every token and accessor HMAC'd, keys in sorted order.
    @Test func everyLineIsOneObjectWithItsMembersHMACdInSortedOrder() async throws {
        let path = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let t = try await TestBroker.make { $0.auditPath = path }
        guard case .envelope(let created, _) = try await t.call(.update, "auth/token/create", ["ttl": "1h", "policies": ["default"]]) else {
            Issue.record("envelope expected"); return
        }
        let child = try #require(created.auth["client_token"]?.stringValue)
        let accessor = try #require(created.auth["accessor"]?.stringValue)
        _ = try await t.call(.update, "secret/data/app", ["data": ["password": "pw \"quoted\"\n", "port": 5432, "on": true]])
        _ = try await t.call(.read, "secret/data/app")
        _ = await t.status(.read, "secret/data/app", token: child)  // refused: default policy

        func hash(_ value: String) async throws -> JSONValue {
            .string(try #require(try await t.data(.update, "sys/audit-hash/file", ["input": .string(value)])["hash"]?.stringValue))
        }
        let root = try await hash(t.rootToken), childHash = try await hash(child), accessorHash = try await hash(accessor)
        let ttl = try await hash("1h"), policy = try await hash("default"), password = try await hash("pw \"quoted\"\n")
        var lines: [JSONValue] = []
        for text in try Self.lines(path) {
            let line = try JSONValue.parse(Array(text.utf8))
            lines.append(line)
            // Keys in sorted order in every object; at the top, `prev` and `seq` (the file's) last.
            var objects = Self.memberOrders(text)
            let top = objects.removeLast()
            #expect(Array(top.dropLast(2)) == top.dropLast(2).sorted() && top.suffix(2) == ["prev", "seq"], "\(top)")
            #expect(objects.allSatisfy { $0 == $0.sorted() }, "\(objects)")
        }
        // The token creation: the new token and its accessor HMAC'd in the response's auth.
        let create = try #require(lines.first { $0["type"] == "response" && $0["request"]?["path"] == "auth/token/create" })
        #expect(create["auth"]?["client_token"] == root && create["request"]?["client_token"] == root)
        #expect(create["auth"]?["policies"] == ["root"] && create["auth"]?["token_type"] == "service")
        #expect(create["auth"]?["accessor"]?.stringValue?.hasPrefix("hmac-sha256:") == true)
        #expect(create["response"]?["auth"]?["client_token"] == childHash)
        #expect(create["response"]?["auth"]?["accessor"] == accessorHash)
        #expect(create["request"]?["data"]?["ttl"] == ttl)
        #expect(create["request"]?["data"]?["policies"] == .array([policy]))
        // The write: data HMAC'd (numbers and booleans as they are), a string with quotes and a
        // newline hashed as itself.
        let write = try #require(lines.first { $0["type"] == "request" && $0["request"]?["operation"] == "update" && $0["request"]?["path"] == "secret/data/app" })
        #expect(write["request"]?["data"]?["data"]?["password"] == password)
        #expect(write["request"]?["data"]?["data"]?["port"] == 5432 && write["request"]?["data"]?["data"]?["on"] == true)
        #expect(write["request"]?["mount_type"] == "secret" && write["request"]?["id"]?.stringValue?.isEmpty == false)
        #expect(write["request"]?["identity"] == .null && write["request"]?["remote_address"]?.stringValue != nil)
        // The read: the answer's data HMAC'd, its metadata's version a number, no lease, no warnings.
        let read = try #require(lines.first { $0["type"] == "response" && $0["request"]?["operation"] == "read" && $0["auth"]?["client_token"] == root })
        #expect(read["response"]?["status"] == 200 && read["response"]?["secret"] == .null && read["response"]?["warnings"] == [])
        #expect(read["response"]?["data"]?["data"]?["password"] == password)
        #expect(read["response"]?["data"]?["metadata"]?["version"] == 1)
        // The refusal: an error member and the status, the child's token HMAC'd.
        let refused = try #require(lines.first { $0["type"] == "response" && $0["error"] != nil })
        #expect(refused["response"]?["status"] == 403 && refused["auth"]?["client_token"] == childHash)
        guard case .intact = try AuditVerifier.verify(path: path) else { Issue.record("chain broken"); return }
    }

    /// The member names of each object in a JSON line, in the order they are written; objects
    /// in the order they close (the outermost last).
    static func memberOrders(_ line: String) -> [[String]] {
        var done: [[String]] = [], open: [[String]?] = []  // nil: an array
        var inString = false, escaped = false, current = ""
        var characters = Array(line)[...]
        while let character = characters.popFirst() {
            if inString {
                if escaped { escaped = false; current.append(character) } else if character == "\\" { escaped = true } else if character == "\"" {
                    inString = false
                    if characters.first == ":", let last = open.indices.last, open[last] != nil { open[last]!.append(current) }
                } else { current.append(character) }
            } else if character == "\"" {
                inString = true
                current = ""
            } else if character == "{" {
                open.append([])
            } else if character == "[" {
                open.append(nil)
            } else if character == "}" || character == "]" {
                if let object = open.removeLast() { done.append(object) }
            }
        }
        return done
    }

    /// The device's HMAC key is key material: a seal wipes it (the seal's own lines are
    /// written first), and an unseal loads it again to hash as before.
    @Test func theAuditKeyIsWipedOnSealAndHashesAsBeforeAfterUnseal() async throws {
        let path = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let t = try await TestBroker.make { $0.auditPath = path }
        let before = try #require(try await t.data(.update, "sys/audit-hash/file", ["input": "x"])["hash"])
        let key = try #require(t.broker.audit.keyForTests)
        #expect(!key.isWiped)
        _ = try await t.call(.update, "sys/seal")
        #expect(key.isWiped && t.broker.audit.keyForTests == nil)
        #expect(try Self.lines(path).last?.contains("\"path\":\"sys/seal\"") == true, "the seal is on the record")
        for share in t.shares.prefix(2) { _ = try await t.broker.seal.submit(share: share) }
        #expect(try await t.data(.update, "sys/audit-hash/file", ["input": "x"])["hash"] == before)
    }

    @Test func anUnwritableAuditFileFailsRequestsAndServesNoSecret() async throws {
        let path = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let t = try await TestBroker.make { $0.auditPath = path }
        let secret = "s3cr3t-" + UUID().uuidString
        _ = try await t.call(.update, "secret/data/app", ["data": ["password": .string(secret)]])
        // The disk fills up: /dev/full refuses every write with ENOSPC (root cannot override it).
        try t.broker.audit.reopen(path: "/dev/full")
        do {
            let response = try await t.call(.read, "secret/data/app")
            Issue.record("a request was served without its audit record: \(response)")
        } catch let error as APIError {
            #expect(error.status == 500)
            #expect(!error.messages.joined().contains(secret))
        }
        #expect(await t.status(.update, "secret/data/other", ["data": ["k": "v"]]) == 500)
        // Nothing happened behind the refused request.
        try t.broker.audit.reopen(path: path)
        #expect(await t.status(.read, "secret/data/other") == 404)
        #expect(try AuditVerifier.verify(path: path) != .intact(lines: 0))
        guard case .intact = try AuditVerifier.verify(path: path) else { Issue.record("chain broken"); return }
    }

    /// Issue 13: lines recorded concurrently are committed in groups; each is on disk when its
    /// `record` returns, the chain stays whole and in order, and a failed group leaves nothing.
    @Test func concurrentLinesAreGroupCommittedIntoOneChain() async throws {
        let path = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try AuditFile(path: path)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 1...300 {
                group.addTask {
                    try await file.record(["type": "request", "n": .int(Int64(index))])
                    // Durable when it returns: the line is in the file already.
                    let text = try String(contentsOfFile: path, encoding: .utf8)
                    #expect(text.contains("\"n\":\(index),") || text.contains("\"n\":\(index)}"))
                }
            }
            try await group.waitForAll()
        }
        #expect(try AuditVerifier.verify(path: path) == .intact(lines: 300))
        let numbers = try Self.lines(path).compactMap { try JSONValue.parse(Array($0.utf8))["n"]?.intValue }
        #expect(Set(numbers) == Set(1...300))
        // A response line (durable: false) is written when record returns and on disk soon
        // after; the chain goes on through it.
        try await file.record(["type": "response", "n": 1000], durable: false)
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains("\"n\":1000"))
        try await Task.sleep(for: .milliseconds(100))
        try await file.record(["type": "request", "n": 1001])
        #expect(try AuditVerifier.verify(path: path) == .intact(lines: 302))
        // A group that cannot be written fails every line in it and leaves the file as it was.
        let full = try AuditFile(path: "/dev/full")
        await #expect(throws: AuditError.self) { try await full.record(["type": "request"]) }
        try await file.record(["type": "request", "n": 301])
        #expect(try AuditVerifier.verify(path: path) == .intact(lines: 303))
    }

    /// A request line written ahead of its wait (a read runs while its line goes to disk):
    /// the sync starts at the write, whether or not anyone waits yet, and a wait that comes
    /// after the sync returns at once; lines written side by side share syncs.
    @Test func aDurableLineIsSyncedFromItsWriteAndItsWaitReturnsOnceOnDisk() async throws {
        let path = Self.temporaryFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try AuditFile(path: path)
        let end = try file.writeDurable(body: Array(#"{"type":"request","n":1"#.utf8))
        let deadline = ContinuousClock.now + .seconds(10)
        while file.syncedForTests < end, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(file.syncedForTests >= end, "synced with no one waiting")
        try await file.waitUntilDurable(end)
        let ends = try await withThrowingTaskGroup(of: off_t.self) { group in
            for index in 2...101 {
                group.addTask {
                    let end = try file.writeDurable(body: Array(#"{"type":"request","n":\#(index)"#.utf8))
                    try await file.waitUntilDurable(end)
                    #expect(file.syncedForTests >= end)
                    return end
                }
            }
            return try await group.reduce(into: [off_t]()) { $0.append($1) }
        }
        #expect(Set(ends).count == 100)
        #expect(try AuditVerifier.verify(path: path) == .intact(lines: 101))
        // Not a JSON object: refused before anything is written.
        #expect(throws: AuditError.self) { try file.writeDurable(body: Array("[1".utf8)) }
        #expect(try AuditVerifier.verify(path: path) == .intact(lines: 101))
    }

    @Test func anAuditFileThatCannotBeOpenedStopsTheServer() async throws {
        await #expect(throws: (any Error).self) {
            _ = try await TestBroker.make { $0.auditPath = "/proc/self/no-such-dir/audit.log" }
        }
        let text = "storage \"sqlite\" { path = \"/tmp/x.db\" }\naudit \"syslog\" { path = \"x\" }\n"
        #expect(throws: ConfigError.self) { _ = try ConfigLoader.parse(text, file: "m.hcl") }
    }
}
