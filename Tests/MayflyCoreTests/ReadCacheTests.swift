import Foundation
@testable import MayflyCore
import MayflyCrypto
import Synchronization
import Testing

/// The barrier's cache of decrypted token entries and KV records (issue 13, "done when" 5):
/// what it holds never outlives a revocation, a policy change, a write or a seal.
@Suite struct ReadCacheTests {
    static func token(_ t: TestBroker, policy: String) async throws -> String {
        try await AdversarialTests.token(t, policies: [policy: #"path "secret/data/*" { capabilities = ["read", "update"] }"#])
    }

    @Test func aRevokedTokenOrAChangedPolicyIsRefusedOnTheNextRequest() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "secret/data/app", ["data": ["k": "v"]])
        let token = try await Self.token(t, policy: "reader")
        for _ in 0..<3 { #expect(await t.status(.read, "secret/data/app", token: token) == nil) }
        #expect(t.broker.barrier.cache.count > 0, "the reads were cached")
        _ = try await t.call(.update, "auth/token/revoke", ["token": .string(token)])
        #expect(await t.status(.read, "secret/data/app", token: token) == 403)

        let other = try await Self.token(t, policy: "reader")
        #expect(await t.status(.read, "secret/data/app", token: other) == nil)
        _ = try await t.call(.update, "sys/policies/acl/reader", ["policy": #"path "secret/data/*" { capabilities = ["deny"] }"#])
        #expect(await t.status(.read, "secret/data/app", token: other) == 403)
    }

    @Test func aWriteIsVisibleToTheNextReadWhateverReadsRaceIt() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "secret/data/app", ["data": ["n": 0]])
        // Readers hammer the path, trying to put an old value back into the cache. A cached
        // read need not suspend, so each reader yields after every read: without it, readers
        // that never give up their thread can starve the writer on a small cooperative pool.
        let stop = ManagedAtomicFlag()
        let readers = Task {
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        while !stop.isSet {
                            _ = try? await t.call(.read, "secret/data/app")
                            await Task.yield()
                        }
                    }
                }
            }
        }
        for n in 1...50 {
            _ = try await t.call(.update, "secret/data/app", ["data": ["n": .int(Int64(n))]])
            let read = try await t.data(.read, "secret/data/app")
            #expect(read["data"]?["n"] == .int(Int64(n)), "write \(n) not seen by the next read")
        }
        stop.set()
        await readers.value
        _ = try await t.call(.delete, "secret/metadata/app")
        #expect(await t.status(.read, "secret/data/app") == 404, "a deleted secret is gone at once")
    }

    @Test func aSealLeavesNothingDecryptedInTheCache() async throws {
        let t = try await TestBroker.make()
        let token = try await Self.token(t, policy: "reader")
        for index in 0..<20 {
            _ = try await t.call(.update, "secret/data/s\(index)", ["data": ["password": .string("pw-\(index)")]])
            _ = try await t.call(.read, "secret/data/s\(index)", token: token)
        }
        let values = t.broker.barrier.cache.values
        #expect(values.count >= 20 && values.allSatisfy { !$0.isWiped })
        #expect(t.broker.barrier.cache.decodedCount >= 21, "token entry and KV metadata kept decoded")
        await t.broker.sealAll()
        #expect(t.broker.barrier.cache.count == 0)
        #expect(t.broker.barrier.cache.decodedCount == 0, "decoded forms are dropped with their values")
        #expect(values.allSatisfy { $0.isWiped }, "every cached value is wiped, not just forgotten")
    }
}

/// A flag set once, read from many tasks.
final class ManagedAtomicFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
