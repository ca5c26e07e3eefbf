import CLibPQ
import Foundation
public import NIOPosix
import Synchronization

/// One libpq connection. Every blocking libpq call runs on the `NIOThreadPool` given at
/// connect time, never on Swift's cooperative pool.
///
/// `@unchecked Sendable` because the `PGconn` pointer is only used inside `run`, which holds
/// `lock` for the whole libpq call, and is set to nil (under the lock) on close.
public final class PGConnection: @unchecked Sendable {
    private var handle: OpaquePointer?
    private let lock = NSLock()
    private let threadPool: NIOThreadPool
    private let healthy = Atomic<Bool>(true)

    private init(handle: OpaquePointer, threadPool: NIOThreadPool) {
        self.handle = handle
        self.threadPool = threadPool
    }

    /// Connects (blocking work on `threadPool`).
    public static func connect(_ config: PGConnectionConfig, threadPool: NIOThreadPool = .singleton) async throws
        -> PGConnection
    {
        try await threadPool.runIfActive {
            let parameters = config.parameters
            var keywords = parameters.map { strdup($0.0) }
            var values = parameters.map { strdup($0.1) }
            defer {
                // Wipe the password copy before freeing it.
                for (index, parameter) in parameters.enumerated() where parameter.0 == "password" {
                    if let value = values[index] { memset(value, 0, strlen(value)) }
                }
                keywords.forEach { free($0) }
                values.forEach { free($0) }
            }
            keywords.append(nil)
            values.append(nil)
            let connection = keywords.withUnsafeBufferPointer { k in
                values.withUnsafeBufferPointer { v in
                    k.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: k.count) { kp in
                        v.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: v.count) { vp in
                            PQconnectdbParams(kp, vp, 0)
                        }
                    }
                }
            }
            guard let connection else { throw PGError(.connection, message: "out of memory") }
            guard PQstatus(connection) == CONNECTION_OK else {
                let message = String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
                PQfinish(connection)
                throw PGError(.connection, message: "cannot connect to \(config.serverDescription)", detail: message)
            }
            return PGConnection(handle: connection, threadPool: threadPool)
        }
    }

    private func run<T: Sendable>(_ body: @escaping @Sendable (OpaquePointer) throws -> T) async throws -> T {
        try await threadPool.runIfActive { [self] in
            lock.lock()
            defer { lock.unlock() }
            guard let handle else { throw PGError(.closed, message: "connection closed") }
            defer { healthy.store(PQstatus(handle) == CONNECTION_OK, ordering: .relaxed) }
            return try body(handle)
        }
    }

    /// Runs `body` on the connection's thread, in one hop off the cooperative pool: escape,
    /// build and execute statements with no further thread switches.
    public func withSession<T: Sendable>(_ body: @escaping @Sendable (PGSession) throws -> T) async throws -> T {
        try await run { try body(PGSession(handle: $0)) }
    }

    /// True when the connection is encrypted with TLS.
    public func usesTLS() async throws -> Bool {
        try await run { PQsslInUse($0) == 1 }
    }

    /// Runs one statement with text parameters (`$1`, `$2`, …); returns rows of text values.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) async throws -> [[String?]] {
        try await withSession { try $0.query(sql, parameters) }
    }

    /// Runs several statements separated by `;` in one round trip (simple query protocol, one
    /// implicit transaction). For statements built with `escapeIdentifier`/`escapeLiteral` only.
    public func execute(_ sql: String) async throws {
        try await withSession { try $0.execute(sql) }
    }

    /// False once the server connection is broken (the pool then discards it). Reflects the
    /// last call; costs no round trip.
    public var isHealthy: Bool { healthy.load(ordering: .relaxed) }

    /// `identifier` quoted as an identifier by libpq (`"…"`, inner quotes doubled).
    public func escapeIdentifier(_ identifier: String) async throws -> String {
        try await withSession { try $0.escapeIdentifier(identifier) }
    }

    /// `literal` quoted as a string literal by libpq.
    public func escapeLiteral(_ literal: String) async throws -> String {
        try await withSession { try $0.escapeLiteral(literal) }
    }

    /// Closes the connection; later calls fail with `PGError.closed`.
    public func close() async {
        _ = try? await threadPool.runIfActive { [self] in
            lock.lock()
            defer { lock.unlock() }
            if let handle { PQfinish(handle) }
            handle = nil
        }
    }

    deinit {
        if let handle { PQfinish(handle) }
    }
}
