/// The audit log cannot be written. Requests fail closed: nothing is served without its record.
public struct AuditError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    let detail: String

    init(_ detail: String) {
        self.detail = detail
    }

    public var description: String { "audit log unavailable" }
    public var debugDescription: String { "audit log unavailable: \(detail)" }
}
