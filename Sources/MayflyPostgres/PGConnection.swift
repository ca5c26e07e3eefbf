import CLibPQ
import Foundation
public import NIOPosix

/// One libpq connection. Every blocking libpq call runs on the `NIOThreadPool` given at
/// connect time, never on Swift's cooperative pool.
///
/// `@unchecked Sendable` because the `PGconn` pointer is only used inside `run`, which holds
/// `lock` for the whole libpq call, and is set to nil (under the lock) on close.
public final class PGConnection: @unchecked Sendable {
    private var handle: OpaquePointer?
    private let lock = NSLock()
    private let threadPool: NIOThreadPool

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
                throw PGError(.connection, message: "cannot connect to \(config.host):\(config.port)", detail: message)
            }
            return PGConnection(handle: connection, threadPool: threadPool)
        }
    }

    private func run<T: Sendable>(_ body: @escaping @Sendable (OpaquePointer) throws -> T) async throws -> T {
        try await threadPool.runIfActive { [self] in
            lock.lock()
            defer { lock.unlock() }
            guard let handle else { throw PGError(.closed, message: "connection closed") }
            return try body(handle)
        }
    }

    /// True when the connection is encrypted with TLS.
    public func usesTLS() async throws -> Bool {
        try await run { PQsslInUse($0) == 1 }
    }

    /// Runs one statement with text parameters (`$1`, `$2`, …); returns rows of text values.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) async throws -> [[String?]] {
        try await run { connection in
            let values = parameters.map { $0.flatMap { strdup($0) } }
            defer { values.forEach { free($0) } }
            let result = values.withUnsafeBufferPointer { buffer in
                buffer.baseAddress.map {
                    $0.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) {
                        PQexecParams(connection, sql, Int32(parameters.count), nil, $0, nil, nil, 0)
                    }
                } ?? PQexecParams(connection, sql, 0, nil, nil, nil, nil, 0)
            }
            defer { PQclear(result) }
            let status = PQresultStatus(result)
            guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
                let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
                let message = String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
                throw PGError(.query, sqlState: state, message: "statement failed", detail: message)
            }
            return (0..<PQntuples(result)).map { row in
                (0..<PQnfields(result)).map { column in
                    PQgetisnull(result, row, column) == 1 ? nil : String(cString: PQgetvalue(result, row, column))
                }
            }
        }
    }

    /// Runs several statements separated by `;` in one round trip (simple query protocol, one
    /// implicit transaction). For statements built with `escapeIdentifier`/`escapeLiteral` only.
    public func execute(_ sql: String) async throws {
        try await run { connection in
            let result = PQexec(connection, sql)
            defer { PQclear(result) }
            let status = PQresultStatus(result)
            guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY else {
                let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
                let message = String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
                throw PGError(.query, sqlState: state, message: "statement failed", detail: message)
            }
        }
    }

    /// False once the server connection is broken (the pool then discards it).
    public func isHealthy() async -> Bool {
        (try? await run { PQstatus($0) == CONNECTION_OK }) ?? false
    }

    /// `identifier` quoted as an identifier by libpq (`"…"`, inner quotes doubled).
    public func escapeIdentifier(_ identifier: String) async throws -> String {
        try await escape(identifier) { PQescapeIdentifier($0, $1, $2) }
    }

    /// `literal` quoted as a string literal by libpq.
    public func escapeLiteral(_ literal: String) async throws -> String {
        try await escape(literal) { PQescapeLiteral($0, $1, $2) }
    }

    private func escape(
        _ text: String,
        _ function: @escaping @Sendable (OpaquePointer, UnsafePointer<CChar>, Int) -> UnsafeMutablePointer<CChar>?
    ) async throws -> String {
        try await run { connection in
            guard let escaped = text.withCString({ function(connection, $0, text.utf8.count) }) else {
                throw PGError(.query, message: "cannot escape text")
            }
            defer { PQfreemem(escaped) }
            return String(cString: escaped)
        }
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
