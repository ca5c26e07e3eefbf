import Foundation
import Logging
@testable import MayflyCore
import MayflyStore
import MayflyTestSupport

/// A broker over a fresh SQLite file, initialised and unsealed, with its root token.
struct TestBroker {
    let broker: Broker
    let storage: SQLiteStorage
    let rootToken: String
    let shares: [[UInt8]]
    let directory: String

    static func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "/mayfly-core-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func make(seal: SealMode = .shamir, shares: Int = 3, threshold: Int = 2, logger: Logger? = nil,
                     clock: any WallClock = SystemClock(),
                     configure: (inout MayflyConfig) -> Void = { _ in }) async throws -> TestBroker
    {
        let directory = temporaryDirectory()
        var config = MayflyConfig(storagePath: directory + "/mayfly.db")
        config.unixListeners = [UnixListenerConfig(path: directory + "/s.sock")]
        config.seal = seal
        configure(&config)
        let storage = try SQLiteStorage(path: config.storagePath)
        let broker = try await Broker.open(config: config, storage: storage, logger: logger ?? Logger.test(), clock: clock)
        let result = try await broker.seal.initialize(shares: shares, threshold: threshold)
        if case .shamir = seal {
            for share in result.shares.prefix(threshold) { _ = try await broker.seal.submit(share: share) }
        }
        return TestBroker(broker: broker, storage: storage, rootToken: result.rootToken, shares: result.shares,
                          directory: directory)
    }

    /// Sends a logical request with the root token (or `token`).
    @discardableResult
    func call(_ operation: MayflyCore.Operation, _ path: String, _ data: [String: JSONValue] = [:], token: String? = nil)
        async throws -> LogicalResponse
    {
        try await broker.handle(LogicalRequest(
            id: UUID().uuidString, operation: operation, path: path, data: data, token: token ?? rootToken))
    }

    /// The `data` of an envelope response.
    func data(_ operation: MayflyCore.Operation, _ path: String, _ body: [String: JSONValue] = [:], token: String? = nil)
        async throws -> JSONValue
    {
        guard case .envelope(let envelope, _) = try await call(operation, path, body, token: token) else {
            throw APIError.internalError("expected an envelope")
        }
        return envelope.data
    }

    /// The status of an `APIError` thrown by the request, or nil when it succeeded.
    func status(_ operation: MayflyCore.Operation, _ path: String, _ data: [String: JSONValue] = [:],
                token: String? = nil) async -> Int?
    {
        do {
            _ = try await call(operation, path, data, token: token)
            return nil
        } catch let error as APIError {
            return error.status
        } catch {
            return -1
        }
    }
}
