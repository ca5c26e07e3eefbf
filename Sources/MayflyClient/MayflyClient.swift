import AsyncHTTPClient
public import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// A client of Mayfly's HTTP API over a Unix socket (`unix:///run/mayfly/mayfly.sock`) or
/// HTTPS (`https://host:8200`, optionally with a client certificate for mTLS).
///
/// ```swift
/// let client = try MayflyClient(address: "unix:///run/mayfly/mayfly.sock", token: nil)
/// let response = try await client.request("GET", "secret/data/app")
/// try await client.shutdown()
/// ```
///
/// A client released without `shutdown()` (say, on an error path) closes its connections
/// by itself in the background.
public final class MayflyClient: Sendable {
    /// One HTTP response: status and raw body.
    public struct Response: Sendable {
        public let status: Int
        public let body: Data
        /// Response headers (lowercased names), e.g. `retry-after`.
        public let headers: [String: String]

        public init(status: Int, body: Data, headers: [String: String] = [:]) {
            self.status = status
            self.body = body
            self.headers = headers
        }

        /// The body parsed as a JSON object (nil for an empty or non-object body).
        public var json: [String: Any]? {
            guard !body.isEmpty else { return nil }
            return (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        }

        /// The `errors` of an error body, joined for display.
        public var errorMessage: String {
            let errors = (json?["errors"] as? [String]) ?? []
            return errors.isEmpty ? "HTTP \(status)" : errors.joined(separator: "; ")
        }
    }

    /// Why a request could not be made at all (as opposed to an HTTP error status).
    public struct ConnectionError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    private let http: HTTPClient
    private let isShutDown = Atomic<Bool>(false)
    private let timeout: Int64
    private let socketPath: String?
    private let baseURL: String
    /// The token sent as `X-Vault-Token`, if any.
    public let token: String?

    /// - Parameters:
    ///   - address: `unix:///path/to.sock`, `/path/to.sock`, or `https://host:port`.
    ///   - token: Sent as `X-Vault-Token` when set.
    ///   - caFile: PEM CA to verify the server (HTTPS); the system roots otherwise.
    ///   - certFile: Client certificate (PEM) for mTLS.
    ///   - keyFile: Its private key (PEM).
    ///   - timeoutSeconds: How long one request may take in all.
    ///   - maximumConnections: Connections kept to the server at once (requests beyond wait).
    public init(address: String, token: String?, caFile: String? = nil, certFile: String? = nil,
                keyFile: String? = nil, timeoutSeconds: Int64 = 60, maximumConnections: Int = 8) throws
    {
        self.token = token
        let timeout = max(1, timeoutSeconds)
        self.timeout = timeout
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60),
                                             concurrentHTTP1ConnectionsPerHostSoftLimit: maximumConnections)
        // A refused connection (broker down) fails at once, so the caller decides whether and
        // when to retry and can say so; a connection that hangs (TCP or TLS handshake) may take
        // half the request's time, at most 30 s, so a loaded server still gets its chance.
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .seconds(min(30, max(1, timeout / 2))), read: .seconds(timeout))
        if address.hasPrefix("unix://") || address.hasPrefix("/") {
            let path = address.hasPrefix("unix://") ? String(address.dropFirst("unix://".count)) : address
            socketPath = path
            baseURL = ""
        } else if address.hasPrefix("https://") {
            socketPath = nil
            baseURL = address.hasSuffix("/") ? String(address.dropLast()) : address
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if let caFile { tls.trustRoots = .file(caFile) }
            if let certFile, let keyFile {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            }
            configuration.tlsConfiguration = tls
        } else {
            throw ConnectionError(description: "address must be unix:///path.sock or https://host:port, got \(address)")
        }
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Sends `method` to `/v1/<path>` with an optional JSON body and query items.
    public func request(_ method: String, _ path: String, body: Data? = nil, query: [(String, String)] = [],
                        headers extra: [(String, String)] = []) async throws -> Response
    {
        var uri = "/v1/" + path.split(separator: "/").map {
            String($0).addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? String($0)
        }.joined(separator: "/")
        if path.hasSuffix("/") { uri += "/" }
        if !query.isEmpty {
            var components = URLComponents()
            components.queryItems = query.map { URLQueryItem(name: $0.0, value: $0.1) }
            uri += "?" + (components.percentEncodedQuery ?? "")
        }
        let url: String
        if let socketPath {
            guard let built = URL(httpURLWithSocketPath: socketPath, uri: uri) else {
                throw ConnectionError(description: "invalid socket path \(socketPath)")
            }
            url = built.absoluteString
        } else {
            url = baseURL + uri
        }
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        if let token { request.headers.add(name: "X-Vault-Token", value: token) }
        request.headers.add(name: "X-Vault-Request", value: "true")
        for (name, value) in extra { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .seconds(timeout))
        } catch {
            throw ConnectionError(description: "cannot reach Mayfly at \(socketPath.map { "unix://\($0)" } ?? baseURL): "
                                  + Self.describe(error))
        }
        let buffer = try await response.body.collect(upTo: 64 << 20)
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        return Response(status: Int(response.status.code), body: Data(buffer.readableBytesView), headers: headers)
    }

    /// A sentence for a connection failure: the system's words for an errno ("Connection
    /// refused"), else the error's own description.
    static func describe(_ error: any Error) -> String {
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)) }
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return "connection timed out"
            case .deadlineExceeded, .readTimeout: return "no answer in time"
            case .remoteConnectionClosed: return "the server closed the connection"
            default: return "\(error)"
            }
        }
        if let error = error as? NIOSSLError { return "TLS: \(error)" }
        return "\(error)"
    }

    /// Closes connections; call once when done.
    public func shutdown() async throws {
        guard !isShutDown.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try await http.shutdown()
    }

    deinit {
        // AsyncHTTPClient traps (in debug builds) when a running client is released; a caller
        // that left on an error path must not crash its process for it. The shutdown keeps
        // the HTTP client alive until its connections are closed.
        if !isShutDown.load(ordering: .acquiring) {
            http.shutdown { _ in }
        }
    }
}
