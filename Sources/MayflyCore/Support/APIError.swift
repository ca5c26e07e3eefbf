/// An error with the HTTP status and client-safe messages Vault clients expect
/// (`{"errors":[...]}`). `detail` is for logs only; messages never carry secret values.
public struct APIError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// HTTP status code.
    public let status: Int
    /// The `errors` array sent to the client.
    public let messages: [String]
    /// Extra context for the server log (never sent).
    public let detail: String?
    /// Seconds for a `Retry-After` header (429 answers).
    public let retryAfter: Int?

    public init(status: Int, _ messages: [String], detail: String? = nil, retryAfter: Int? = nil) {
        self.status = status
        self.messages = messages
        self.detail = detail
        self.retryAfter = retryAfter
    }

    public var description: String { "API error \(status)" }
    public var debugDescription: String {
        "API error \(status): \(messages.joined(separator: "; "))" + (detail.map { " (\($0))" } ?? "")
    }

    public static func badRequest(_ message: String) -> APIError { APIError(status: 400, [message]) }

    /// Caller input (a path, a name) shortened for an error message.
    static func clip(_ text: String) -> String {
        text.count > 200 ? String(text.prefix(200)) + "…" : text
    }
    /// 404 with an empty `errors` list, Vault's "nothing here".
    public static let notFound = APIError(status: 404, [])
    /// 403 in the multierror form Vault sends for token and ACL failures.
    public static let permissionDenied = APIError(status: 403, ["1 error occurred:\n\t* permission denied\n\n"])
    public static let sealed = APIError(status: 503, ["Vault is sealed"])
    public static let unsupportedOperation = APIError(status: 405, ["unsupported operation"])
    public static func unsupportedPath(_ path: String) -> APIError {
        APIError(status: 404, ["unsupported path"], detail: path)
    }
    public static func internalError(_ detail: String) -> APIError {
        APIError(status: 500, ["internal error"], detail: detail)
    }
}
