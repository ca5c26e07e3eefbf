import Crypto
import Foundation
import MayflyCore
import MayflyCrypto
import MayflyJSON
import NIOSSL
import SwiftASN1
import X509

/// The cluster's own TLS identity (HA): one self-signed P-256 certificate and its key, made by
/// the first leader and kept in the barrier, so every unsealed node of the cluster holds it
/// and nothing outside the cluster does. A standby presents it when it forwards a request; the
/// leader's cluster listener accepts no other client, and the standby trusts no other server.
/// The key (PEM) is kept in guarded memory and wiped with `wipe()` when the node seals.
final class ClusterCertificate: Sendable {
    let certificatePEM: String
    let key: SecureBytes

    /// The name in the certificate (there is no host name to verify: the certificate itself is pinned).
    static let name = "mayfly-cluster"

    /// A new certificate (valid ten years) and key.
    static func generate() throws -> ClusterCertificate {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName(Self.name) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 10 * 365 * 86400,
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                KeyUsage(digitalSignature: true, keyCertSign: true)
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames([.dnsName(Self.name)])
            },
            issuerPrivateKey: .init(key))
        return ClusterCertificate(certificatePEM: try certificate.serializeAsPEM().pemString,
                                  key: SecureBytes(copying: Array(key.pemRepresentation.utf8)))
    }

    /// The stored form (JSON in guarded memory).
    func secureBytes() throws -> SecureBytes {
        try key.withPlainCopy { key in
            var bytes = JSONValue.object(["certificate": .string(certificatePEM), "key": .string(String(decoding: key, as: UTF8.self))])
                .encoded()
            defer { SecureBytes.zero(&bytes) }
            return SecureBytes(copying: bytes)
        }
    }

    init(certificatePEM: String, key: SecureBytes) {
        self.certificatePEM = certificatePEM
        self.key = key
    }

    convenience init(stored: SecureBytes) throws {
        var plain = try stored.copyBytes()
        defer { SecureBytes.zero(&plain) }
        let value = try JSONValue.parse(plain)
        guard let certificate = value["certificate"]?.stringValue, let key = value["key"]?.stringValue else {
            throw ServerError("the stored cluster certificate is malformed")
        }
        self.init(certificatePEM: certificate, key: SecureBytes(copying: Array(key.utf8)))
    }

    /// Wipes the key (on seal); the TLS configurations made from it must be dropped too.
    func wipe() { key.wipe() }

    /// The cluster's certificate: read from the barrier, made there first by a leader when
    /// none exists. Nil while sealed, or on a standby before any leader made it.
    static func load(_ broker: Broker) async throws -> ClusterCertificate? {
        guard let stored = try await broker.clusterTLS(make: {
            let made = try generate()
            defer { made.wipe() }
            return try made.secureBytes()
        }) else { return nil }
        defer { stored.wipe() }
        return try ClusterCertificate(stored: stored)
    }

    private func parts() throws -> (NIOSSLCertificate, NIOSSLPrivateKey) {
        (try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem),
         try key.withPlainCopy { try NIOSSLPrivateKey(bytes: $0, format: .pem) })
    }

    /// The cluster listener's TLS: this certificate, and a client must present it too.
    func serverConfiguration() throws -> TLSConfiguration {
        let (certificate, key) = try parts()
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(key))
        tls.trustRoots = .certificates([certificate])
        tls.certificateVerification = .noHostnameVerification
        tls.minimumTLSVersion = .tlsv13
        return tls
    }

    /// A standby's TLS towards the leader: presents this certificate and trusts only it.
    func clientConfiguration() throws -> TLSConfiguration {
        let (certificate, key) = try parts()
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateChain = [.certificate(certificate)]
        tls.privateKey = .privateKey(key)
        tls.trustRoots = .certificates([certificate])
        tls.certificateVerification = .noHostnameVerification
        tls.minimumTLSVersion = .tlsv13
        return tls
    }
}
