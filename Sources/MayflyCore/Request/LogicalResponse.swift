/// Vault's response envelope (`request_id`, `lease_id`, `renewable`, `lease_duration`,
/// `data`, `wrap_info`, `warnings`, `auth`). All eight keys are always emitted.
public struct Envelope: Sendable {
    public var leaseID: String = ""
    public var renewable: Bool = false
    public var leaseDuration: Int64 = 0
    public var data: JSONValue = .null
    public var warnings: [String] = []
    public var auth: JSONValue = .null
    /// Repeat `data` keys at the top level (Vault's "sys injector" routes).
    public var injectData = false

    public init(data: JSONValue = .null, warnings: [String] = [], auth: JSONValue = .null, injectData: Bool = false) {
        self.data = data
        self.warnings = warnings
        self.auth = auth
        self.injectData = injectData
    }

    /// The JSON body for request `requestID`.
    public func body(requestID: String) -> JSONValue {
        var object: [String: JSONValue] = [
            "request_id": .string(requestID),
            "lease_id": .string(leaseID),
            "renewable": .bool(renewable),
            "lease_duration": .int(leaseDuration),
            "data": data,
            "wrap_info": .null,
            "warnings": warnings.isEmpty ? .null : .strings(warnings),
            "auth": auth,
        ]
        if injectData, case .object(let fields) = data {
            for (key, value) in fields where object[key] == nil { object[key] = value }
        }
        return .object(object)
    }
}

/// What a handler returns; the HTTP layer turns it into status, headers and body.
public enum LogicalResponse: Sendable {
    /// The envelope, normally 200 (KV v2 sends a 404 with an envelope for deleted versions).
    case envelope(Envelope, status: Int = 200)
    /// 204 with no body.
    case noContent
    /// 202 with no body (asynchronous revoke).
    case accepted
    /// A bare JSON object without envelope (the unauthenticated `sys/` status routes).
    case bare(JSONValue, status: Int = 200)
}
