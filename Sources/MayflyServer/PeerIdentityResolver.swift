import CMayflyShims
import Foundation
import MayflyCore
import NIOCore
import NIOSSL
import SwiftASN1
import X509

/// Reads the identity a connection's transport proves: `SO_PEERCRED` on a Unix socket, the
/// verified leaf certificate on an mTLS connection. Nothing from headers is ever trusted.
enum PeerIdentityResolver {
    static func identity(of channel: any Channel) async -> PeerIdentity? {
        if case .unixDomainSocket = channel.localAddress {
            return await unixPeer(channel)
        }
        return await certificatePeer(channel)
    }

    /// Internal and non-inlinable on purpose: NIO warns that `unsafeGetSocketOption` with libc
    /// types must not be inlined into public code (crashes in release mode).
    @inline(never)
    static func unixPeer(_ channel: any Channel) async -> PeerIdentity? {
        // SO_PEERCRED "succeeds" on sockets that have none (uid 4294967295): AF_UNIX checked above.
        guard let provider = channel as? any SocketOptionProvider,
            let credentials: mayfly_ucred = try? await provider.unsafeGetSocketOption(
                level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED)).get(),
            credentials.uid != UInt32.max
        else { return nil }
        return .unix(uid: credentials.uid, gid: credentials.gid, pid: credentials.pid)
    }

    static func certificatePeer(_ channel: any Channel) async -> PeerIdentity? {
        guard let leaf = try? await channel.nioSSL_peerCertificate().get(),
            let certificate = try? Certificate(derEncoded: leaf.toDERBytes())
        else { return nil }
        var uris: [String] = []
        var dnsNames: [String] = []
        if let names = try? certificate.extensions.subjectAlternativeNames {
            for name in names {
                switch name {
                case .uniformResourceIdentifier(let uri): uris.append(uri)
                case .dnsName(let dns): dnsNames.append(dns)
                default: break
                }
            }
        }
        var commonName: String?
        for rdn in certificate.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                commonName = String(describing: attribute.value)
            }
        }
        return .certificate(uris: uris, dnsNames: dnsNames, commonName: commonName)
    }
}
