import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MayflyCore
import MayflyStore
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A standby's way to the leader (HA): every request it does not answer itself is sent on,
/// whole, to the leader's cluster listener over mutual TLS with the cluster's certificate,
/// with the identity this node resolved for it (the peer uid of its own socket, or the client
/// certificate it verified) and the client's address in the forwarding headers; the leader's
/// answer goes back unchanged. So an application uses its own host's socket whoever leads.
final class ClusterForwarder: Sendable {
    let broker: Broker
    let maxBodySize: Int
    let logger: Logger
    private let client = Mutex<HTTPClient?>(nil)

    init(broker: Broker, maxBodySize: Int, logger: Logger) {
        self.broker = broker
        self.maxBodySize = maxBodySize
        self.logger = logger
    }

    /// Paths every node answers itself: its own health, leader view and seal (each node is
    /// unsealed on its own), and its metrics when the telemetry block opens them to anyone.
    /// None of them checks a token: a standby's token entries and policies are the leader's,
    /// and only the leader sees every change to them at once (a token revoked, a policy
    /// changed), so whatever needs a token is answered there — `sys/metrics` with a token
    /// gets the leader's metrics, as with Vault.
    static let localPaths: Set<String> = ["sys/health", "sys/leader", "sys/seal-status", "sys/unseal", "sys/init", "sys/metrics"]

    /// What a standby answers `sys/seal` with: only the active node can be sealed (Vault's rule);
    /// a standby is sealed by stopping it.
    static let standbySealRefused = APIError.badRequest(
        "this node is a standby: only the active node can be sealed; stop a standby instead (sys/leader names the active node)")

    /// Whether a standby answers `path` (canonical) itself rather than the leader.
    static func answersLocally(_ path: String, _ config: MayflyConfig) -> Bool {
        path == "sys/metrics" ? config.unauthenticatedMetrics : localPaths.contains(path)
    }

    /// Whether this node sends the request at `path` (canonical) to the leader now.
    func forwards(_ path: String) -> Bool {
        guard let ha = broker.ha, !ha.isLeaderNow else { return false }
        return !Self.answersLocally(path, broker.config)
    }

    /// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1), and the
    /// forwarding headers themselves, which only this node may set.
    private static let dropped: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host",
        "content-length", "x-mayfly-forwarded-identity", "x-mayfly-forwarded-for",
    ]

    func forward(_ request: Request, identity: PeerIdentity?, remote: String) async throws -> Response {
        guard let lock = broker.ha?.status.lock, lock.live, !lock.address.isEmpty else {
            throw APIError(status: 503, ["no leader is known yet (an election is under way); retry"], retryAfter: 1)
        }
        let client = try await self.client()
        var outbound = HTTPClientRequest(url: lock.address + (request.head.path ?? "/"))
        outbound.method = HTTPMethod(rawValue: request.method.rawValue)
        for field in request.headers where !Self.dropped.contains(field.name.canonicalName) {
            outbound.headers.add(name: field.name.rawName, value: field.value)
        }
        if let identity { outbound.headers.add(name: "X-Mayfly-Forwarded-Identity", value: ForwardedIdentityMiddleware.encode(identity)) }
        outbound.headers.add(name: "X-Mayfly-Forwarded-For", value: remote)
        if request.method != .get, request.method != .head {
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maxBodySize)
            } catch {
                throw APIError(status: 413, ["request body too large (limit \(maxBodySize) bytes)"])
            }
            outbound.body = .bytes(body)
        }
        let answer: HTTPClientResponse
        let bytes: ByteBuffer
        do {
            answer = try await client.execute(outbound, timeout: .seconds(120))
            bytes = try await answer.body.collect(upTo: 1 << 30)
        } catch {
            logger.warning("cannot forward to the leader", metadata: [
                "leader": "\(lock.address)", "error": "\(String(reflecting: error))",
            ])
            throw APIError(status: 503, ["the leader (\(lock.address)) cannot be reached; retry"],
                           detail: String(reflecting: error), retryAfter: 1)
        }
        var headers = HTTPFields()
        for header in answer.headers where !Self.dropped.contains(header.name.lowercased()) {
            if let name = HTTPField.Name(header.name) { headers.append(HTTPField(name: name, value: header.value)) }
        }
        return Response(status: .init(code: Int(answer.status.code)), headers: headers, body: .init(byteBuffer: bytes))
    }

    /// The client towards the leader, made once the cluster's certificate is at hand.
    private func client() async throws -> HTTPClient {
        if let client = client.withLock({ $0 }) { return client }
        // Right after the store is initialised the leader makes the certificate within moments.
        var certificate = try await ClusterCertificate.load(broker)
        for _ in 0..<20 where certificate == nil {
            try await Task.sleep(for: .milliseconds(100))
            certificate = try await ClusterCertificate.load(broker)
        }
        guard let certificate else {
            throw APIError(status: 503, ["this standby cannot forward yet: no leader has made the cluster certificate; retry"],
                           retryAfter: 1)
        }
        defer { certificate.wipe() }  // the TLS configuration holds the key now
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: try certificate.clientConfiguration(),
            timeout: .init(connect: .seconds(5), read: .seconds(120)))
        configuration.connectionPool = .init(idleTimeout: .seconds(60))
        let made = HTTPClient(eventLoopGroupProvider: .shared(MultiThreadedEventLoopGroup.singleton), configuration: configuration)
        let (kept, spare) = client.withLock { client -> (HTTPClient, HTTPClient?) in
            if let client { return (client, made) }
            client = made
            return (made, nil)
        }
        try? await spare?.shutdown()
        return kept
    }

    /// Closes the connections to the leader and drops the client, whose TLS holds the cluster's
    /// key (at shutdown, and when the node seals; a client is made again after an unseal).
    func shutdown() async {
        let client = client.withLock { client -> HTTPClient? in
            defer { client = nil }
            return client
        }
        try? await client?.shutdown()
    }
}
