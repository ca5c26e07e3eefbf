/// The request line of the request being handled, still on its way to disk. A handler that
/// prepares work only Mayfly sees before its first outside effect waits here before that
/// effect, so the line is on disk before anything outside Mayfly changes (a request
/// is on the record before it is acted on).
struct AuditGate: Sendable {
    let line: AuditLog.PendingLine

    /// The gate of the request this task handles; nil when the request line is already on
    /// disk or the request is not audited.
    @TaskLocal static var current: AuditGate?

    /// Returns once the request line is on disk; throws if it could not be written.
    func wait() async throws { try await line.wait() }
}
