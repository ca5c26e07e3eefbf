import CLibPQ
import Foundation

/// A connection lent to one synchronous block on its libpq thread (see
/// `PGConnection.withSession`). Every call blocks that thread, never the cooperative pool.
/// Valid only inside the block; not `Sendable` on purpose.
public struct PGSession {
    private let handle: OpaquePointer

    init(handle: OpaquePointer) {
        self.handle = handle
    }

    /// `identifier` quoted as an identifier by libpq (`"…"`, inner quotes doubled).
    public func escapeIdentifier(_ identifier: String) throws -> String {
        try escape(identifier) { PQescapeIdentifier($0, $1, $2) }
    }

    /// `literal` quoted as a string literal by libpq.
    public func escapeLiteral(_ literal: String) throws -> String {
        try escape(literal) { PQescapeLiteral($0, $1, $2) }
    }

    private func escape(
        _ text: String, _ function: (OpaquePointer, UnsafePointer<CChar>, Int) -> UnsafeMutablePointer<CChar>?
    ) throws -> String {
        guard let escaped = text.withCString({ function(handle, $0, text.utf8.count) }) else {
            throw PGError(.query, message: "cannot escape text")
        }
        defer { PQfreemem(escaped) }
        return String(cString: escaped)
    }

    /// Runs one statement with text parameters (`$1`, `$2`, …); returns rows of text values.
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?] = []) throws -> [[String?]] {
        let values = parameters.map { $0.flatMap { strdup($0) } }
        defer { values.forEach { free($0) } }
        let result = values.withUnsafeBufferPointer { buffer in
            buffer.baseAddress.map {
                $0.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buffer.count) {
                    PQexecParams(handle, sql, Int32(parameters.count), nil, $0, nil, nil, 0)
                }
            } ?? PQexecParams(handle, sql, 0, nil, nil, nil, nil, 0)
        }
        defer { PQclear(result) }
        try check(result)
        return (0..<PQntuples(result)).map { row in
            (0..<PQnfields(result)).map { column in
                PQgetisnull(result, row, column) == 1 ? nil : String(cString: PQgetvalue(result, row, column))
            }
        }
    }

    /// Runs several statements separated by `;` in one round trip (simple query protocol, one
    /// implicit transaction). For statements built with `escapeIdentifier`/`escapeLiteral` only.
    public func execute(_ sql: String) throws {
        let result = PQexec(handle, sql)
        defer { PQclear(result) }
        try check(result)
    }

    private func check(_ result: OpaquePointer?) throws {
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY else {
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
            // The primary message only: libpq's full message quotes the statement around the
            // error position ("LINE 1: …"), and role statements carry password verifiers.
            let primary = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) }
                ?? String(cString: PQerrorMessage(handle))
            throw PGError(.query, sqlState: state, message: "statement failed",
                          detail: Self.redactingVerifiers(primary.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
    }
}

extension PGSession {
    /// `text` with every SCRAM verifier (`SCRAM-SHA-256$…`, as PostgreSQL may quote the token
    /// near a syntax error) cut to its prefix.
    static func redactingVerifiers(_ text: String) -> String {
        var result = ""
        var rest = Substring(text)
        while let range = rest.range(of: "SCRAM-SHA-256$") {
            result += rest[..<range.upperBound] + "<redacted>"
            rest = rest[range.upperBound...].drop { !($0.isWhitespace || $0 == "'" || $0 == "\"") }
        }
        return result + rest
    }
}

@available(*, unavailable)
extension PGSession: Sendable {}
