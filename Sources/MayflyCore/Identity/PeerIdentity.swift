/// Who is at the other end of a connection, as proven by the transport itself: the peer
/// credentials of a Unix-socket client (`SO_PEERCRED`, captured by the kernel at connect
/// time), or the verified leaf certificate of an mTLS client.
public enum PeerIdentity: Sendable, Equatable {
    case unix(uid: UInt32, gid: UInt32, pid: Int32)
    case certificate(uris: [String], dnsNames: [String], commonName: String?)

    /// A short form for logs and audit lines (`unix:uid:1000`, `cert:spiffe://prod/billing`).
    public var summary: String {
        switch self {
        case .unix(let uid, _, _): "unix:uid:\(uid)"
        case .certificate(let uris, let dnsNames, let commonName):
            if let uri = uris.first { "cert:\(uri)" }
            else if let dns = dnsNames.first { "cert:dns:\(dns)" }
            else { "cert:cn:\(commonName ?? "")" }
        }
    }
}
