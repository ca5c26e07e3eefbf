import HTTPTypes
import Hummingbird
import MayflyCore
import MayflyJSON

/// On the cluster listener (whose TLS admits only the cluster's own certificate, so every peer
/// is a node of the cluster): the identity the forwarding standby resolved itself — the peer
/// uid of its Unix socket, or the client certificate it verified — and the client's address,
/// from the forwarding headers. Nowhere else are these headers believed: the client-facing
/// listeners resolve identity from their own connections, and a standby drops the headers
/// from what its clients send.
struct ForwardedIdentityMiddleware: RouterMiddleware {
    typealias Context = MayflyRequestContext

    /// The identity the standby resolved (absent: the client proved none).
    static let identityHeader = HTTPField.Name("X-Mayfly-Forwarded-Identity")!
    /// The client's address as the standby saw it (`unix`, or `ip:port`).
    static let remoteHeader = HTTPField.Name("X-Mayfly-Forwarded-For")!

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.forwarded = true
        context.forwardedFor = request.headers[Self.remoteHeader]
        if let header = request.headers[Self.identityHeader] {
            guard let identity = Self.decode(header) else {
                return VaultResponder.error(APIError.badRequest("malformed forwarded identity"), head: request.method == .head)
            }
            context.peerIdentity = identity
        } else {
            context.peerIdentity = nil
        }
        return try await next(request, context)
    }

    /// The header's value for `identity`: JSON, `{"unix":[uid,gid,pid]}` or
    /// `{"cert":{"uris":[…],"dns":[…],"cn":…}}`.
    static func encode(_ identity: PeerIdentity) -> String {
        let value: JSONValue
        switch identity {
        case .unix(let uid, let gid, let pid):
            value = ["unix": .array([.int(Int64(uid)), .int(Int64(gid)), .int(Int64(pid))])]
        case .certificate(let uris, let dnsNames, let commonName):
            value = ["cert": ["uris": .strings(uris), "dns": .strings(dnsNames), "cn": commonName.map { .string($0) } ?? .null]]
        }
        return String(decoding: value.encoded(), as: UTF8.self)
    }

    static func decode(_ header: String) -> PeerIdentity? {
        guard let value = try? JSONValue.parse(Array(header.utf8)) else { return nil }
        if case .array(let ids)? = value["unix"], ids.count == 3,
            let uid = ids[0].intValue, let gid = ids[1].intValue, let pid = ids[2].intValue,
            let u = UInt32(exactly: uid), let g = UInt32(exactly: gid), let p = Int32(exactly: pid)
        {
            return .unix(uid: u, gid: g, pid: p)
        }
        if let cert = value["cert"], case .array(let uris)? = cert["uris"], case .array(let dns)? = cert["dns"] {
            let uriStrings = uris.compactMap(\.stringValue), dnsStrings = dns.compactMap(\.stringValue)
            guard uriStrings.count == uris.count, dnsStrings.count == dns.count else { return nil }
            return .certificate(uris: uriStrings, dnsNames: dnsStrings, commonName: cert["cn"]?.stringValue)
        }
        return nil
    }
}
