/// The logical operation of a request (Vault's method mapping: GET read, LIST or
/// `?list=true` list, POST and PUT update, DELETE delete, PATCH patch).
public enum Operation: String, Sendable {
    case read, list, update, delete, patch, head
}

/// A request after HTTP decoding: what is asked, on which path, with which data and token.
public struct LogicalRequest: Sendable {
    /// Unique id, echoed as `request_id`.
    public var id: String
    public var operation: Operation
    /// The path after `/v1/`, without leading slash; list paths keep their trailing `/`.
    public var path: String
    /// JSON body fields, or query parameters for GET/DELETE/LIST.
    public var data: [String: JSONValue]
    /// The raw query parameters.
    public var query: [String: String]
    public var token: String?
    /// Peer address for logs (`unix` or `ip:port`).
    public var remoteAddress: String
    /// The identity the transport proved, if any (Unix peer credentials, client certificate).
    public var identity: PeerIdentity?

    public init(
        id: String, operation: Operation, path: String, data: [String: JSONValue] = [:],
        query: [String: String] = [:], token: String? = nil, remoteAddress: String = "",
        identity: PeerIdentity? = nil
    ) {
        self.identity = identity
        self.id = id
        self.operation = operation
        self.path = path
        self.data = data
        self.query = query
        self.token = token
        self.remoteAddress = remoteAddress
    }
}
