/// A PostgreSQL failure. `description` is generic so that SQL, server messages or connection
/// details never reach a client by accident; `debugDescription` has the detail for logs.
public struct PGError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable { case connection, query, insecureTLS, invalidURL, closed }
        private let base: Base
        private init(_ base: Base) { self.base = base }
        /// Could not connect or authenticate.
        public static let connection = Code(.connection)
        /// The server rejected a statement.
        public static let query = Code(.query)
        /// The TLS settings are weaker than policy allows (a non-local server needs
        /// `verify-full`).
        public static let insecureTLS = Code(.insecureTLS)
        /// The connection URL is malformed.
        public static let invalidURL = Code(.invalidURL)
        /// The connection was closed.
        public static let closed = Code(.closed)
        public var description: String { base.rawValue }
    }

    public let code: Code
    /// SQLSTATE for query errors.
    public let sqlState: String?
    /// A message safe to show an operator (no password); for `insecureTLS` and `invalidURL`
    /// it explains what to change.
    public let message: String
    let detail: String

    init(_ code: Code, sqlState: String? = nil, message: String, detail: String = "") {
        self.code = code
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
    }

    /// The server refused one statement (a SQLSTATE outside connection exceptions, class 08,
    /// and operator intervention, class 57), as opposed to a server that cannot be reached.
    public var isStatementFailure: Bool {
        guard let sqlState else { return false }
        return !sqlState.hasPrefix("08") && !sqlState.hasPrefix("57")
    }

    public var description: String { "PostgreSQL error: \(code)" }
    public var debugDescription: String {
        "PostgreSQL error \(code)\(sqlState.map { " [\($0)]" } ?? ""): \(message)\(detail.isEmpty ? "" : " — \(detail)")"
    }
}
