import AsyncHTTPClient
@_exported import MayflyJSON
public import Foundation
public import NIOCore
import NIOHTTP1
import NIOPosix
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

        /// The body as JSON (nil when it is not JSON).
        public var json: JSONValue? { try? JSONValue.parse(body) }

        public init(status: Int, body: Data, headers: [String: String] = [:]) {
            self.status = status
            self.body = body
            self.headers = headers
        }

        /// The `errors` of an error body, joined for display.
        public var errorMessage: String {
            let errors = json?["errors"]?.arrayValue?.compactMap(\.stringValue) ?? []
            return errors.isEmpty ? "HTTP \(status)" : errors.joined(separator: "; ")
        }
    }

    /// Why a request could not be made at all (as opposed to an HTTP error status).
    public struct ConnectionError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// A mistake in what the client was given (address, token, certificate files, a request
    /// too large to send), found before anything is sent.
    public struct UsageError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// The longest token sent (Mayfly's are ~100 characters).
    static let maximumTokenLength = 4096
    /// The longest request target sent (path and query); the server refuses longer ones anyway.
    static let maximumTargetLength = 16384

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
    ///   - eventLoopGroup: The event loops the client's connections run on; the process-wide
    ///     ones when nil. A client that opens thousands of connections at once (a load test)
    ///     gets loops of its own, so it does not hold up every other client of the process.
    public init(address: String, token: String?, caFile: String? = nil, certFile: String? = nil,
                keyFile: String? = nil, timeoutSeconds: Int64 = 60, maximumConnections: Int = 8,
                eventLoopGroup: (any EventLoopGroup)? = nil) throws
    {
        if let token {
            guard token.utf8.count <= Self.maximumTokenLength else {
                throw UsageError(description: "the token is \(token.utf8.count) bytes long; tokens are at most \(Self.maximumTokenLength)")
            }
            guard !token.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
                throw UsageError(description: "the token contains a control character (a line end read from a file?)")
            }
        }
        guard (certFile == nil) == (keyFile == nil) else {
            throw UsageError(description: "a client certificate needs its key, and a key its certificate: give both")
        }
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
        // Never follow a redirect: it would carry the token (and a secret in the body) to
        // wherever the answer points, even over plain HTTP.
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(min(30, max(1, timeout / 2))), read: .seconds(timeout))
        if address.hasPrefix("unix://") || address.hasPrefix("/") {
            let path = address.hasPrefix("unix://") ? String(address.dropFirst("unix://".count)) : address
            socketPath = path
            baseURL = ""
        } else if address.hasPrefix("https://") {
            socketPath = nil
            baseURL = try Self.httpsBase(address)
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            if let caFile { tls.trustRoots = .certificates(try Self.certificates(caFile, what: "CA certificate")) }
            if let certFile, let keyFile {
                tls.certificateChain = try Self.certificates(certFile, what: "client certificate").map { .certificate($0) }
                do {
                    tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
                } catch {
                    throw UsageError(description: "cannot read the client key \(keyFile): not a readable PEM private key")
                }
            }
            configuration.tlsConfiguration = tls
        } else {
            throw UsageError(description: "address must be unix:///path.sock or https://host:port, got \(Self.redacted(address))")
        }
        http = HTTPClient(eventLoopGroup: eventLoopGroup ?? HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// `https://host[:port]` checked: a host, a port in 1–65535, no credentials, no path.
    static func httpsBase(_ address: String) throws -> String {
        let usage = "address must be https://host:port (port 1–65535, no user or password), got \(redacted(address))"
        guard let components = URLComponents(string: address), components.scheme == "https",
            let host = components.host, !host.isEmpty, components.user == nil, components.password == nil,
            components.query == nil, components.fragment == nil, components.path.isEmpty || components.path == "/"
        else { throw UsageError(description: usage) }
        // URLComponents accepts any digits as a port; a socket address takes 16 bits.
        let afterHost = address.dropFirst("https://".count).split(separator: "/", maxSplits: 1).first ?? ""
        if let colon = afterHost.lastIndex(of: ":"), !afterHost.hasSuffix("]") {
            guard let port = Int(afterHost[afterHost.index(after: colon)...]), (1...65535).contains(port) else {
                throw UsageError(description: usage)
            }
        }
        return address.hasSuffix("/") ? String(address.dropLast()) : address
    }

    /// An address as it may be shown: without any `user:password@`.
    static func redacted(_ address: String) -> String {
        guard let at = address.firstIndex(of: "@"), let scheme = address.range(of: "://"), scheme.upperBound <= at else { return address }
        return String(address[..<scheme.upperBound]) + "…" + address[at...]
    }

    /// The certificates of a PEM file, or a sentence saying why not.
    static func certificates(_ file: String, what: String) throws -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMFile(file)
        } catch {
            throw UsageError(description: "cannot read the \(what) \(file): \(FileManager.default.isReadableFile(atPath: file) ? "no PEM certificate in it" : "no such readable file")")
        }
        guard !certificates.isEmpty else { throw UsageError(description: "cannot read the \(what) \(file): no PEM certificate in it") }
        return certificates
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
        guard uri.utf8.count <= Self.maximumTargetLength else {
            throw UsageError(description: "the request path is \(uri.utf8.count) bytes long; at most \(Self.maximumTargetLength) are sent")
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
        if let error = error as? NIOSSLError {
            if case .handshakeFailed(let reason) = error {
                if case .sslError(let errors) = reason, errors.contains(.eofDuringHandshake) {
                    return "the server closed the connection during the TLS handshake (it refused our certificate, "
                        + "or its tls_handshake_timeout passed)"
                }
                return "TLS handshake failed (the server's certificate is not trusted: --ca-cert; or it refused ours)"
            }
            return "TLS: \(error)"
        }
        if let error = error as? NIOConnectionError {
            if error.dnsAError != nil || error.dnsAAAAError != nil, error.connectionErrors.isEmpty { return "unknown host \(error.host)" }
            return error.connectionErrors.first.map { describe($0.error) } ?? "cannot connect to \(error.host):\(error.port)"
        }
        if error is SocketAddressError { return "unknown host" }
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
