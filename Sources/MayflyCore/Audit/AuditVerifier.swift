import Foundation
import MayflyCrypto

/// Checks an audit file's chain (`mayfly audit verify`).
public enum AuditVerifier {
    public enum Result: Sendable, Equatable {
        case intact(lines: Int)
        /// The first line that is not what the chain says it should be (1-based).
        case broken(line: Int, reason: String)
    }

    /// Each line must be a JSON object whose `seq` is its line number and whose `prev` is the
    /// SHA-256 of the line before (a fixed value for line 1). An edited line breaks the `prev`
    /// of the next one and is reported; a deleted line breaks `seq`; swapped lines break both.
    /// Cutting lines off the end leaves a shorter valid chain: compare the line count with
    /// what the server reports if that matters.
    public static func verify(path: String) throws -> Result {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AuditError("cannot read \(path)")
        }
        let lines = [UInt8](data).split(separator: 10, omittingEmptySubsequences: false)
        var previous = AuditFile.genesis
        var count = 0
        for (index, line) in lines.enumerated() {
            if line.isEmpty && index == lines.count - 1 { break }
            let number = index + 1
            guard case .object(let members)? = try? JSONValue.parse(Array(line)) else {
                return .broken(line: number, reason: "not a JSON object")
            }
            guard members["prev"]?.stringValue == previous else {
                // Line N's prev names line N-1's hash: if it does not match, line N-1 was
                // edited (or lines were removed or moved before N).
                let seqOK = members["seq"]?.intValue == Int64(number)
                return number > 1 && seqOK
                    ? .broken(line: number - 1, reason: "edited: its hash does not match the next line's prev")
                    : .broken(line: number, reason: "prev does not match the previous line")
            }
            guard members["seq"]?.intValue == Int64(number) else {
                return .broken(line: number, reason: "seq is \(members["seq"]?.intValue.map(String.init) ?? "missing"), expected \(number)")
            }
            previous = Hex.encode(KeyedHash.sha256(Array(line)))
            count = number
        }
        return .intact(lines: count)
    }
}
