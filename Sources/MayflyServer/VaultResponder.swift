import Foundation
public import Hummingbird
public import Logging
public import MayflyCore
import MayflyCrypto
import NIOCore
import NIOPosix
import Metrics

/// Translates HTTP to `LogicalRequest` and `LogicalResponse` back to HTTP with Vault's wire
/// rules: `/v1/` prefix, method mapping including `LIST`, token headers,
/// the envelope and `{"errors":[…]}` bodies, exact `Content-Type: application/json`.
public struct VaultResponder: HTTPResponder {
    public typealias Context = MayflyRequestContext
    let broker: Broker
    let maxBodySize: Int
    let logger: Logger
    /// HA, on a client-facing listener: sends what a standby does not answer itself to the
    /// leader (nil without HA, and on the cluster listener: nothing is forwarded twice).
    let forwarder: ClusterForwarder?

    /// - Parameters:
    ///   - broker: The broker that handles logical requests.
    ///   - maxBodySize: Largest accepted body; larger bodies get 413.
    public init(broker: Broker, maxBodySize: Int, logger: Logger) {
        self.init(broker: broker, maxBodySize: maxBodySize, logger: logger, forwarder: nil)
    }

    init(broker: Broker, maxBodySize: Int, logger: Logger, forwarder: ClusterForwarder?) {
        self.broker = broker
        self.maxBodySize = maxBodySize
        self.logger = logger
        self.forwarder = forwarder
    }

    static let listMethod = HTTPRequest.Method("LIST")!

    public func respond(to request: Request, context: Context) async throws -> Response {
        let started = ContinuousClock.now
        let requestID = Random.uuid()
        var request = request
        let response: Response
        var path = ""
        do {
            var logical = try decode(request, id: requestID, remote: context.remoteDescription)
            let canonical = (try? RequestPath.canonical(logical.path, operation: logical.operation)) ?? logical.path
            // The connection's identity speaks for a request without a token, and to the auth
            // methods (a login, a certificate-bound token's renewal).
            if logical.token == nil || canonical.hasPrefix("auth/") { logical.identity = context.peerIdentity }
            path = canonical
            if let forwarder, forwarder.forwards(canonical) {
                // As with Vault, only the active node can be sealed: sent on, a standby's seal
                // would seal the leader instead of the node the operator named.
                if canonical == "sys/seal" { throw ClusterForwarder.standbySealRefused }
                response = try await forwarder.forward(request, identity: context.peerIdentity, remote: context.remoteDescription)
            } else if context.forwarded, let ha = broker.ha, !ha.isLeaderNow,
                      !ClusterForwarder.answersLocally(canonical, broker.config) {
                // Forwarded here while this node lost the lead: the standby learns the new leader and retries.
                throw APIError(status: 503, ["this node no longer leads; retry"], retryAfter: 1)
            } else if canonical == "sys/metrics" {
                logical.path = canonical
                response = try await metrics(logical)
            } else {
                // Authorized before the body is read: a caller who may not send this request
                // never gets its body parsed, and one with no caller may send only a small one.
                var authorized = try await broker.authorize(logical)
                path = authorized.request.path
                if logical.operation == .update || logical.operation == .patch {
                    authorized.request.data = try await body(
                        &request, limit: authorized.isAuthenticated ? maxBodySize : min(maxBodySize, Self.unauthenticatedBodyLimit))
                }
                let result = try await broker.perform(authorized)
                response = Self.encode(result, requestID: requestID, head: request.method == .head)
            }
        } catch let error as APIError {
            if error.status == 503 {
                // Sealed: the seal itself is logged once; each refused request is not news.
                logger.debug("request refused while sealed", metadata: ["request_id": "\(requestID)", "path": "\(path)"])
            } else if error.status >= 500 {
                logger.error("request failed", metadata: [
                    "request_id": "\(requestID)", "path": "\(path)", "error": "\(String(reflecting: error))",
                ])
            }
            response = Self.error(error, head: request.method == .head)
        } catch {
            // Outside the broker's own handling (forwarding, the cluster certificate): the same translation.
            let translated = broker.apiError(for: error)
            if translated.status >= 500, translated.status != 503 {
                logger.error("request failed", metadata: ["request_id": "\(requestID)", "error": "\(String(reflecting: error))"])
            }
            response = Self.error(translated, head: request.method == .head)
        }
        Counter(label: "mayfly_requests_total", dimensions: [
            ("route", MetricsExporter.route(path, status: Int(response.status.code))), ("status", "\(response.status.code)"),
        ]).increment()
        logger.debug("request", metadata: [
            "request_id": "\(requestID)", "method": "\(request.method)", "path": "\(path)",
            "status": "\(response.status.code)", "duration_ms": "\((ContinuousClock.now - started).milliseconds)",
            "remote": "\(context.remoteDescription)",
        ])
        return response
    }

    /// `sys/metrics?format=prometheus`: needs `read` on `sys/metrics` unless the config's
    /// telemetry block opens it.
    private func metrics(_ request: LogicalRequest) async throws -> Response {
        guard request.operation == .read || request.operation == .head else { throw APIError.unsupportedOperation }
        guard request.query["format"] == "prometheus" else {
            throw APIError.badRequest("only format=prometheus is supported")
        }
        if !broker.config.unauthenticatedMetrics { try await broker.authorizeRead(request) }
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers,
                        body: ResponseBody(byteBuffer: ByteBuffer(bytes: await MetricsExporter.render(broker))))
    }

    // MARK: Decoding

    /// `text` with its %XX escapes decoded (nil when one is malformed); without a `%`, itself
    /// (Foundation's decoding costs a CFString round trip, and most paths have none).
    static func percentDecoded(_ text: String) -> String? {
        text.utf8.contains(UInt8(ascii: "%")) ? text.removingPercentEncoding : text
    }

    /// The request head as a logical request (no body yet). The path is only percent-decoded
    /// here; the broker makes it canonical (`RequestPath`), once, for routing, ACL and handler.
    private func decode(_ request: Request, id: String, remote: String) throws -> LogicalRequest {
        let rawPath = request.uri.path
        guard rawPath.hasPrefix("/v1/") else { throw APIError.notFound }
        guard let path = Self.percentDecoded(String(rawPath.dropFirst(4))) else {
            throw APIError.badRequest("invalid path encoding")
        }
        guard path.utf8.count <= RequestPath.maximumLength else { throw APIError.badRequest("path is too long") }

        if let wrap = request.headers[.init("X-Vault-Wrap-TTL")!], !wrap.isEmpty {
            throw APIError.badRequest("response wrapping is not supported")
        }
        if let namespace = request.headers[.init("X-Vault-Namespace")!], !namespace.isEmpty, namespace != "root",
            namespace != "root/"
        {
            throw APIError.badRequest("namespaces are not supported")
        }

        var query: [String: String] = [:]
        for (key, value) in request.uri.queryParameters {
            query[String(key)] = Self.percentDecoded(String(value)) ?? String(value)
        }
        let operation: MayflyCore.Operation
        switch request.method {
        case .get:
            operation = Self.parseBool(query["list"]) ? .list : .read
        case Self.listMethod: operation = .list
        case .post, .put: operation = .update
        case .delete: operation = .delete
        case .head: operation = .head
        case .patch:
            guard request.headers[.contentType]?.lowercased().hasPrefix("application/merge-patch+json") == true else {
                throw APIError(status: 415, ["PATCH requires Content-Type: application/merge-patch+json"])
            }
            operation = .patch
        default:
            throw APIError(status: 405, ["unsupported method \(request.method.rawValue)"])
        }
        var data: [String: JSONValue] = [:]
        if operation != .update && operation != .patch {
            for (key, value) in query where key != "list" { data[key] = .string(value) }
        }
        return LogicalRequest(
            id: id, operation: operation, path: path, data: data, query: query, token: Self.token(request.headers),
            remoteAddress: remote)
    }

    /// `a=1&b=x+y`: each field a string; a repeated field joined with commas (Vault's rule).
    static func form(_ text: String) throws -> [String: JSONValue] {
        var fields: [String: [String]] = [:]
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) throws -> String {
                guard let value = part.replacingOccurrences(of: "+", with: " ").removingPercentEncoding else {
                    throw APIError.badRequest("failed to parse form input: bad percent-encoding")
                }
                return value
            }
            fields[try decode(parts[0]), default: []].append(parts.count > 1 ? try decode(parts[1]) : "")
        }
        return fields.mapValues { .string($0.joined(separator: ",")) }
    }

    /// Largest body accepted from a request without a caller (an unseal key, a login).
    static let unauthenticatedBodyLimit = 64 * 1024

    /// Bodies up to this size are parsed where they arrive; larger ones on `parsePool`.
    static let inlineParseLimit = 64 * 1024

    /// One thread for parsing large bodies: a few huge JSON bodies from authenticated callers
    /// queue there instead of occupying the cooperative pool every other request runs on.
    static let parsePool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        return pool
    }()

    /// Reads and parses the body (at most `limit` bytes; larger is 413).
    private func body(_ request: inout Request, limit: Int) async throws -> [String: JSONValue] {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw APIError(status: 413, ["http: request body too large"])
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: limit)
        } catch {
            throw APIError(status: 413, ["http: request body too large"])
        }
        let isForm = request.headers[.contentType]?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true
        guard buffer.readableBytes > Self.inlineParseLimit else { return try Self.parse(buffer, isForm: isForm) }
        return try await Self.parsePool.runIfActive { try Self.parse(buffer, isForm: isForm) }
    }

    /// A JSON object (or, with the form content type, a form) as request data. As Vault: an
    /// empty body and the JSON `null` (what `vault write -f` sends) are no data.
    static func parse(_ buffer: ByteBuffer, isForm: Bool) throws -> [String: JSONValue] {
        let bytes = buffer.readableBytesView
        guard let first = bytes.first(where: { !($0 == 32 || $0 == 10 || $0 == 13 || $0 == 9) }) else { return [:] }
        // A form body is parsed as one unless it looks like JSON (curl -d sends JSON with the
        // form content type).
        if isForm, first != UInt8(ascii: "{"), first != UInt8(ascii: "[") {
            return try Self.form(String(decoding: bytes, as: UTF8.self))
        }
        let value: JSONValue
        do {
            value = try JSONValue.parse(bytes)
        } catch let error as JSONParseError {
            throw APIError.badRequest(error.message)
        }
        switch value {
        case .object(let object): return object
        case .null: return [:]
        default: throw APIError.badRequest("request body must be a JSON object, got \(value.typeName)")
        }
    }

    static func token(_ headers: HTTPFields) -> String? {
        if let token = headers[.init("X-Vault-Token")!], !token.isEmpty { return token }
        if let auth = headers[.authorization], auth.lowercased().hasPrefix("bearer ") {
            let token = auth.dropFirst(7).trimmingCharacters(in: .whitespaces)
            return token.isEmpty ? nil : token
        }
        return nil
    }

    static func parseBool(_ text: String?) -> Bool {
        guard let text else { return false }
        return ["1", "t", "T", "true", "TRUE", "True"].contains(text)
    }

    // MARK: Encoding

    static func headers() -> HTTPFields {
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[.cacheControl] = "no-store"
        return fields
    }

    static func json(_ value: JSONValue, status: Int, head: Bool) -> Response {
        let body = head ? ResponseBody() : ResponseBody(byteBuffer: ByteBuffer(bytes: value.encoded()))
        return Response(status: .init(code: status), headers: headers(), body: body)
    }

    static func encode(_ result: LogicalResponse, requestID: String, head: Bool) -> Response {
        switch result {
        case .envelope(let envelope, let status):
            return json(envelope.body(requestID: requestID), status: status, head: head)
        case .bare(let value, let status):
            return json(value, status: status, head: head)
        case .noContent:
            return Response(status: .noContent, headers: headers())
        case .accepted:
            return Response(status: .accepted, headers: headers())
        }
    }

    static func error(_ error: APIError, head: Bool) -> Response {
        var response = json(["errors": .strings(error.messages)], status: error.status, head: head)
        if let retryAfter = error.retryAfter { response.headers[.retryAfter] = String(retryAfter) }
        return response
    }
}

extension MayflyRequestContext {
    /// `unix` or the peer's `ip:port`, for logs (a forwarded request's: as the standby saw it).
    var remoteDescription: String {
        if forwarded, let forwardedFor { return forwardedFor }
        guard let address = channel.remoteAddress else { return "unix" }
        switch address {
        case .unixDomainSocket: return "unix"
        default:
            let ip = address.ipAddress ?? "?"
            return ip.contains(":") ? "[\(ip)]:\(address.port ?? 0)" : "\(ip):\(address.port ?? 0)"
        }
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
