import Foundation
import Logging
@testable import MayflyCore
import MayflyCrypto
import MayflyStore
import Testing
import MayflyTestSupport

@Suite struct SealTests {
    @Test func shamirInitThenUnsealWithThresholdShares() async throws {
        let t = try await TestBroker.make(shares: 5, threshold: 3)
        #expect(t.shares.count == 5)
        #expect(t.shares.allSatisfy { $0.count == AEAD.keyLength + 1 }, "Vault share format: y-bytes then x")
        await t.broker.seal.seal()
        // Any three distinct shares unseal.
        for share in [t.shares[4], t.shares[1]] {
            let status = try await t.broker.seal.submit(share: share)
            #expect(status.sealed)
        }
        #expect(await t.broker.seal.status.progress == 2)
        let status = try await t.broker.seal.submit(share: t.shares[2])
        #expect(!status.sealed)
        #expect(status.progress == 0)
    }

    @Test func wrongShareIsAClearErrorAndStaysSealed() async throws {
        let t = try await TestBroker.make(shares: 3, threshold: 2)
        await t.broker.seal.seal()
        _ = try await t.broker.seal.submit(share: t.shares[0])
        var wrong = t.shares[1]
        wrong[3] ^= 0xff
        do {
            _ = try await t.broker.seal.submit(share: wrong)
            Issue.record("a wrong share must not unseal")
        } catch let error as APIError {
            #expect(error.status == 400)
            #expect(error.messages == ["unseal failed, invalid key"])
        }
        #expect(await t.broker.seal.isSealed)
        #expect(await t.broker.seal.status.progress == 0, "a failed combination resets progress")
        // The right shares still work afterwards.
        _ = try await t.broker.seal.submit(share: t.shares[0])
        #expect(try await t.broker.seal.submit(share: t.shares[2]).sealed == false)
    }

    @Test func shareFromAnotherStoreDoesNotUnseal() async throws {
        let a = try await TestBroker.make(shares: 1, threshold: 1)
        let b = try await TestBroker.make(shares: 1, threshold: 1)
        await a.broker.seal.seal()
        await #expect(throws: APIError.self) { _ = try await a.broker.seal.submit(share: b.shares[0]) }
        #expect(await a.broker.seal.isSealed)
    }

    @Test func initTwiceIsRejectedAndBadParametersChangeNothing() async throws {
        let t = try await TestBroker.make()
        await #expect(throws: APIError.self) { _ = try await t.broker.seal.initialize(shares: 3, threshold: 2) }
        let directory = TestBroker.temporaryDirectory()
        var config = MayflyConfig(storagePath: directory + "/m.db")
        config.unixListeners = [UnixListenerConfig(path: directory + "/s")]
        let storage = try SQLiteStorage(path: config.storagePath)
        let fresh = try await Broker.open(config: config, storage: storage, logger: Logger.test())
        for (shares, threshold) in [(0, 0), (3, 4), (3, 1), (256, 2), (5, 0)] {
            await #expect(throws: APIError.self) { _ = try await fresh.seal.initialize(shares: shares, threshold: threshold) }
        }
        #expect(await fresh.seal.isInitialized == false)
        #expect(try await storage.systemValue("seal-config") == nil)
    }

    @Test func keyFileSealUnsealsARestartedServer() async throws {
        let directory = TestBroker.temporaryDirectory()
        let keyPath = directory + "/unseal.key"
        let t = try await TestBroker.make(seal: .keyFile(path: keyPath))
        #expect(t.shares.isEmpty)
        #expect(await !t.broker.seal.isSealed, "a key-file seal is unsealed after init")
        let attributes = try FileManager.default.attributesOfItem(atPath: keyPath)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        _ = try await t.call(.update, "secret/data/app", ["data": ["k": "v"]])
        // "Restart": a new broker over the same database.
        let restarted = try await Broker.open(config: t.broker.config, storage: try SQLiteStorage(path: t.broker.config.storagePath),
                                              logger: Logger.test())
        #expect(await !restarted.seal.isSealed)
        let response = try await restarted.handle(LogicalRequest(id: "1", operation: .read, path: "secret/data/app", token: t.rootToken))
        guard case .envelope(let envelope, 200) = response else { Issue.record("expected 200"); return }
        #expect(envelope.data["data"]?["k"] == "v")
    }

    @Test func wrongKeyFileIsAClearError() async throws {
        let directory = TestBroker.temporaryDirectory()
        let keyPath = directory + "/unseal.key"
        let t = try await TestBroker.make(seal: .keyFile(path: keyPath))
        try (Hex.encode(Random.bytes(32)) + "\n").write(toFile: keyPath, atomically: true, encoding: .utf8)
        do {
            _ = try await Broker.open(config: t.broker.config, storage: try SQLiteStorage(path: t.broker.config.storagePath),
                                      logger: Logger.test())
            Issue.record("a wrong key file must not unseal")
        } catch let error as APIError {
            #expect(error.messages.first?.contains("does not unseal this store") == true)
        }
        try "not hex at all\n".write(toFile: keyPath, atomically: true, encoding: .utf8)
        do {
            _ = try await Broker.open(config: t.broker.config, storage: try SQLiteStorage(path: t.broker.config.storagePath),
                                      logger: Logger.test())
            Issue.record("a malformed key file must be rejected")
        } catch let error as APIError {
            #expect(error.messages.first?.contains("64 hex characters") == true)
            #expect(error.messages.first?.contains("not hex") == false, "the file content is never echoed")
        }
    }
}
