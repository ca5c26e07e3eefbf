import Foundation
@testable import MayflyCore
import MayflyCrypto
import MayflyStore
import Testing

@Suite struct BarrierTests {
    @Test func flippedByteIsAnErrorNeverWrongData() async throws {
        let t = try await TestBroker.make()
        try await t.broker.barrier.put("test/secret", Array("hunter2".utf8))
        let entry = try #require(try await t.storage.get("test/secret"))
        for index in [0, 3, 10, entry.value.count - 1] {
            var tampered = entry
            tampered.value[index] ^= 0x01
            try await t.storage.commit([.put(tampered, expectedVersion: nil)])
            await #expect(throws: BarrierError.self) { _ = try await t.broker.barrier.get("test/secret") }
        }
        try await t.storage.commit([.put(entry, expectedVersion: nil)])
        #expect(try await t.broker.barrier.get("test/secret") == Array("hunter2".utf8))
    }

    @Test func ciphertextMovedToAnotherPathOrVersionDoesNotOpen() async throws {
        let t = try await TestBroker.make()
        try await t.broker.barrier.put("kv/a", Array("alpha".utf8))
        try await t.broker.barrier.put("kv/b", Array("beta".utf8))
        let a = try #require(try await t.storage.get("kv/a"))
        // Same bytes under another path.
        try await t.storage.commit([.put(StoredEntry(path: "kv/b", version: a.version, value: a.value), expectedVersion: nil)])
        await #expect(throws: BarrierError.self) { _ = try await t.broker.barrier.get("kv/b") }
        // Same bytes, same path, another version (a rollback to an older write).
        try await t.broker.barrier.put("kv/a", Array("alpha2".utf8))
        try await t.storage.commit([.put(StoredEntry(path: "kv/a", version: a.version + 1, value: a.value), expectedVersion: nil)])
        await #expect(throws: BarrierError.self) { _ = try await t.broker.barrier.get("kv/a") }
    }

    @Test func tamperedKVVersionGivesA500WithoutData() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "secret/data/app", ["data": ["password": "s3cr3t-value"]])
        _ = try await t.call(.update, "secret/data/app", ["data": ["password": "second-value"]])
        let v1 = try #require(try await t.storage.get("kv/secret/version/1/app"))
        // Copy version 1's ciphertext into version 2's row.
        let v2 = try #require(try await t.storage.get("kv/secret/version/2/app"))
        try await t.storage.commit([.put(StoredEntry(path: v2.path, version: v2.version, value: v1.value), expectedVersion: nil)])
        do {
            _ = try await t.call(.read, "secret/data/app")
            Issue.record("a moved ciphertext must not read back")
        } catch let error as APIError {
            #expect(error.status == 500)
            #expect(error.messages == ["stored data failed its integrity check"])
        }
    }

    @Test func rotationAddsATermAndOldTermsStillDecrypt() async throws {
        let t = try await TestBroker.make()
        try await t.broker.barrier.put("r/old", Array("before".utf8))
        let before = try await t.broker.seal.keyStatus()
        #expect(before.term == 1)
        let after = try await t.broker.seal.rotate()
        #expect(after.term == 2)
        try await t.broker.barrier.put("r/new", Array("after".utf8))
        let newEntry = try #require(try await t.storage.get("r/new"))
        #expect(Array(newEntry.value[1..<5]) == [0, 0, 0, 2])
        #expect(try await t.broker.barrier.get("r/old") == Array("before".utf8))
        // After seal and unseal the rotated keyring is loaded from storage.
        await t.broker.seal.seal()
        for share in t.shares.prefix(2) { _ = try await t.broker.seal.submit(share: share) }
        #expect(try await t.broker.barrier.get("r/old") == Array("before".utf8))
        #expect(try await t.broker.barrier.get("r/new") == Array("after".utf8))
        #expect(try await t.broker.seal.keyStatus().term == 2)
    }

    /// The re-wrap moves every entry to the new term, empty ones (index entries such as
    /// `token/parent/…`) included, and a moved entry still reads back the same.
    @Test func rewrapMovesEveryEntryEmptyOnesIncluded() async throws {
        let t = try await TestBroker.make()
        try await t.broker.barrier.put("w/full", Array("value".utf8))
        try await t.broker.barrier.put("w/empty", [])
        _ = try await t.call(.update, "auth/token/create", ["policies": ["default"]])  // writes token/parent/…
        _ = try await t.broker.seal.rotate()
        var cursor: String?
        repeat {
            cursor = try await t.broker.barrier.rewrap(after: cursor, limit: 2).last
        } while cursor != nil
        for path in try await t.storage.paths(withPrefix: "", after: nil, limit: 1000) {
            let entry = try #require(try await t.storage.get(path))
            #expect(Barrier.term(of: entry) == 2, "\(path) is still on term \(Barrier.term(of: entry) ?? 0)")
        }
        #expect(try await t.broker.barrier.get("w/full") == Array("value".utf8))
        #expect(try await t.broker.barrier.get("w/empty") == [])
    }

    /// Rotations racing each other and KV writes: every rotation adds exactly one term, none
    /// fails, and every write reads back, also after seal and unseal.
    @Test func concurrentRotationsLoseNothing() async throws {
        let t = try await TestBroker.make()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<90 {
                group.addTask {
                    if i % 3 == 0 {
                        _ = try await t.call(.update, "sys/rotate")
                    } else {
                        _ = try await t.call(.update, "secret/data/r\(i)", ["data": ["v": .string("\(i)")]])
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await t.broker.seal.keyStatus().term == 31)
        await t.broker.seal.seal()
        for share in t.shares.prefix(2) { _ = try await t.broker.seal.submit(share: share) }
        for i in 0..<90 where i % 3 != 0 {
            #expect(try await t.data(.read, "secret/data/r\(i)")["data"]?["v"] == .string("\(i)"))
        }
    }

    /// Fifty writers of one path all succeed (last writer wins), none gets a 500.
    @Test func writersOfOnePathAllSucceed() async throws {
        let t = try await TestBroker.make()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<50 {
                group.addTask {
                    _ = try await t.call(.update, "sys/policies/acl/crowd", ["policy": .string(#"path "secret/data/\#(i)" { capabilities = ["read"] }"#)])
                    _ = try await t.call(.update, "auth/approle/role/crowd", ["token_policies": .string("p\(i)")])
                    _ = try await t.call(.update, "auth/token/roles/crowd", ["allowed_policies": .string("p\(i)")])
                }
            }
            try await group.waitForAll()
        }
        #expect(try await t.data(.read, "auth/token/roles/crowd")["allowed_policies"]?.arrayValue?.count == 1)
    }

    @Test func sealWipesEveryKeyAndDataRoutesAnswer503() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "secret/data/app", ["data": ["k": "v"]])
        let ring = try t.broker.barrier.currentKeyring()
        var keys = ring.terms.values.map(\.key)
        keys.append(try #require(t.broker.tokens.loadedKey))
        keys.append(try #require(await t.broker.seal.loadedRootKey))
        #expect(keys.allSatisfy { !$0.isWiped })
        await t.broker.seal.seal()
        #expect(keys.allSatisfy { $0.isWiped }, "keyring terms, token key and root key must be wiped on seal")
        #expect(t.broker.barrier.isSealed)
        #expect(await t.broker.seal.isSealed)
        for (operation, path) in [
            (MayflyCore.Operation.read, "secret/data/app"), (.update, "secret/data/app"), (.list, "secret/metadata/"),
            (.read, "auth/token/lookup-self"), (.update, "sys/rotate"), (.read, "sys/key-status"),
        ] {
            #expect(await t.status(operation, path, ["data": ["k": "v"]]) == 503, "\(path)")
        }
        await #expect(throws: BarrierError.self) { _ = try t.broker.barrier.currentKeyring() }
    }
}
