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
struct ClusterCertificate: Sendable {
    let certificatePEM: String
    let keyPEM: String

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
        return ClusterCertificate(certificatePEM: try certificate.serializeAsPEM().pemString, keyPEM: key.pemRepresentation)
    }

    /// The stored form (JSON in guarded memory).
    func secureBytes() -> SecureBytes {
        let bytes = JSONValue.object(["certificate": .string(certificatePEM), "key": .string(keyPEM)]).encoded()
        let secure = SecureBytes(count: bytes.count)
        try? secure.withUnsafeMutableBytes { $0.copyBytes(from: bytes) }
        return secure
    }

    init(certificatePEM: String, keyPEM: String) {
        self.certificatePEM = certificatePEM
        self.keyPEM = keyPEM
    }

    init(stored: SecureBytes) throws {
        let value = try JSONValue.parse(try stored.copyBytes())
        guard let certificate = value["certificate"]?.stringValue, let key = value["key"]?.stringValue else {
            throw ServerError("the stored cluster certificate is malformed")
        }
        self.init(certificatePEM: certificate, keyPEM: key)
    }

    /// The cluster's certificate: read from the barrier, made there first by a leader when
    /// none exists. Nil while sealed, or on a standby before any leader made it.
    static func load(_ broker: Broker) async throws -> ClusterCertificate? {
        guard let stored = try await broker.clusterTLS(make: { try generate().secureBytes() }) else { return nil }
        defer { stored.wipe() }
        return try ClusterCertificate(stored: stored)
    }

    private func parts() throws -> (NIOSSLCertificate, NIOSSLPrivateKey) {
        (try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem),
         try NIOSSLPrivateKey(bytes: Array(keyPEM.utf8), format: .pem))
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
