import Foundation
@testable import MayflyCore
import MayflyStore
import Testing

@Suite struct KVEngineTests {
    @Test func versionsReadLatestAndSpecific() async throws {
        let t = try await TestBroker.make()
        let first = try await t.data(.update, "secret/data/app/db", ["data": ["user": "app", "n": 1]])
        #expect(first["version"] == 1)
        #expect(first["destroyed"] == false)
        _ = try await t.data(.update, "secret/data/app/db", ["data": ["user": "app2"]])
        let latest = try await t.data(.read, "secret/data/app/db")
        #expect(latest["data"] == ["user": "app2"])
        #expect(latest["metadata"]?["version"] == 2)
        let v1 = try await t.data(.read, "secret/data/app/db", ["version": "1"])
        #expect(v1["data"] == ["user": "app", "n": 1])
        #expect(await t.status(.read, "secret/data/app/db", ["version": "7"]) == 404)
        #expect(await t.status(.read, "secret/data/missing") == 404)
        #expect(await t.status(.read, "secret/data/app/db", ["version": "x"]) == 400)
    }

    @Test func checkAndSet() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "secret/data/c", ["data": ["a": "1"], "options": ["cas": 0]])
        #expect(await t.status(.update, "secret/data/c", ["data": ["a": "2"], "options": ["cas": 0]]) == 400)
        #expect(await t.status(.update, "secret/data/c", ["data": ["a": "2"], "options": ["cas": 5]]) == 400)
        _ = try await t.call(.update, "secret/data/c", ["data": ["a": "2"], "options": ["cas": 1]])
        #expect(try await t.data(.read, "secret/data/c")["metadata"]?["version"] == 2)
        // cas_required on the key.
        _ = try await t.call(.update, "secret/metadata/c", ["cas_required": true])
        #expect(await t.status(.update, "secret/data/c", ["data": ["a": "3"]]) == 400)
        _ = try await t.call(.update, "secret/data/c", ["data": ["a": "3"], "options": ["cas": 2]])
    }

    @Test func concurrentCASWritesLetExactlyOneWin() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "secret/data/race", ["data": ["a": "0"]])
        let results = await withTaskGroup(of: Int?.self) { group in
            for i in 0..<8 {
                group.addTask { await t.status(.update, "secret/data/race", ["data": ["a": .string("\(i)")], "options": ["cas": 1]]) }
            }
            return await group.reduce(into: [Int?]()) { $0.append($1) }
        }
        #expect(results.filter { $0 == nil }.count == 1)
        #expect(results.filter { $0 == 400 }.count == 7)
    }

    @Test func softDeleteUndeleteAndDestroy() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "secret/data/d", ["data": ["v": "1"]])
        _ = try await t.call(.update, "secret/data/d", ["data": ["v": "2"]])
        guard case .noContent = try await t.call(.delete, "secret/data/d") else { Issue.record("204 expected"); return }
        // A deleted version answers 404 with the envelope and its metadata.
        let deleted = try await t.call(.read, "secret/data/d")
        guard case .envelope(let envelope, let status) = deleted else { Issue.record("envelope expected"); return }
        #expect(status == 404)
        #expect(envelope.data["data"] == .null)
        #expect(envelope.data["metadata"]?["deletion_time"]?.stringValue?.isEmpty == false)
        _ = try await t.call(.update, "secret/undelete/d", ["versions": [2]])
        #expect(try await t.data(.read, "secret/data/d")["data"] == ["v": "2"])
        _ = try await t.call(.update, "secret/destroy/d", ["versions": [1]])
        let meta = try await t.data(.read, "secret/metadata/d")
        #expect(meta["versions"]?["1"]?["destroyed"] == true)
        #expect(meta["current_version"] == 2)
        guard case .envelope(let gone, 404) = try await t.call(.read, "secret/data/d", ["version": "1"]) else {
            Issue.record("destroyed version must be 404 with envelope"); return
        }
        #expect(gone.data["metadata"]?["destroyed"] == true)
        // The destroyed version's ciphertext is gone from storage.
        #expect(try await t.storage.get("kv/secret/version/1/d") == nil)
        _ = try await t.call(.update, "secret/delete/d", ["versions": [2]])
        #expect(await t.status(.read, "secret/data/d") == nil)  // 404 envelope is a response, not an error
    }

    @Test func listAndDeleteAll() async throws {
        let t = try await TestBroker.make()
        for path in ["a", "b/c", "b/d/e"] { _ = try await t.call(.update, "secret/data/\(path)", ["data": ["x": "y"]]) }
        #expect(try await t.data(.list, "secret/metadata/")["keys"] == ["a", "b/"])
        #expect(try await t.data(.list, "secret/metadata/b/")["keys"] == ["c", "d/"])
        #expect(await t.status(.list, "secret/metadata/nothing/") == 404)
        _ = try await t.call(.delete, "secret/metadata/b/c")
        #expect(await t.status(.read, "secret/data/b/c") == 404)
        #expect(try await t.storage.paths(withPrefix: "kv/secret/", after: nil, limit: 100).filter { $0.hasSuffix("/b/c") } == [])
        #expect(try await t.data(.list, "secret/metadata/b/")["keys"] == ["d/"])
    }

    @Test func maxVersionsPrunesOldest() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "secret/metadata/m", ["max_versions": 2])
        for i in 1...4 { _ = try await t.call(.update, "secret/data/m", ["data": ["i": .int(Int64(i))]]) }
        let meta = try await t.data(.read, "secret/metadata/m")
        #expect(meta["oldest_version"] == 3)
        #expect(meta["versions"]?.objectValue?.keys.sorted() == ["3", "4"])
        #expect(try await t.storage.get("kv/secret/version/1/m") == nil)
    }

    @Test(arguments: [
        ([:], "no data provided"),
        (["data": "not an object"], "data must be a JSON object, got string"),
        (["data": ["a": "b"], "options": "x"], "options must be a JSON object"),
        (["data": ["a": "b"], "options": ["cas": -1]], "cas must be a non-negative integer"),
        (["data": ["a": "b"], "options": ["cas": "abc"]], "cas must be a non-negative integer"),
    ] as [([String: JSONValue], String)])
    func badWritesAre400AndStoreNothing(body: [String: JSONValue], message: String) async throws {
        let t = try await TestBroker.make()
        do {
            _ = try await t.call(.update, "secret/data/bad", body)
            Issue.record("expected 400")
        } catch let error as APIError {
            #expect(error.status == 400)
            #expect(error.messages == [message])
        }
        #expect(try await t.storage.paths(withPrefix: "kv/", after: nil, limit: 10) == [])
    }

    // (`secret/data/a//b` is the canonical `secret/data/a/b`: see AdversarialTests.)
    @Test(arguments: ["secret/data/", "secret/data/../x", "secret/data/a/./b", "secret/data/a/\u{1}b"])
    func badPathsAre400(path: String) async throws {
        let t = try await TestBroker.make()
        #expect(await t.status(.update, path, ["data": ["a": "b"]]) == 400)
        #expect(try await t.storage.paths(withPrefix: "kv/", after: nil, limit: 10) == [])
    }

    @Test func unknownRoutesAndMethods() async throws {
        let t = try await TestBroker.make()
        #expect(await t.status(.read, "nothing/here") == 404)
        #expect(await t.status(.read, "secret/bogus/x") == 404)
        #expect(await t.status(.list, "secret/data/") == 405)
        #expect(await t.status(.read, "secret/data/x", token: "hvs.not-a-token") == 403)
        #expect(await t.status(.read, "nothing/here", token: "") == 403, "ACL runs before routing")
    }

    @Test func configAndMetadataWrites() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "secret/config", ["max_versions": 5, "delete_version_after": "1h"])
        let config = try await t.data(.read, "secret/config")
        #expect(config["max_versions"] == 5)
        #expect(config["delete_version_after"] == "1h0m0s")
        _ = try await t.call(.update, "secret/metadata/w", ["custom_metadata": ["owner": "team-a"]])
        let meta = try await t.data(.read, "secret/metadata/w")
        #expect(meta["custom_metadata"] == ["owner": "team-a"])
        #expect(await t.status(.update, "secret/metadata/w", ["custom_metadata": ["n": 1]]) == 400)
        #expect(await t.status(.update, "secret/config", ["max_versions": "many"]) == 400)
    }
}
