import MayflyCrypto

/// SCRAM-SHA-256 verifiers in PostgreSQL's format
/// (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`), computed in the broker so
/// that no plaintext password is ever sent to PostgreSQL (where a statement log
/// would keep it).
///
/// The iteration count is Mayfly's choice: broker passwords are 32 random bytes, so key
/// stretching adds no security, while PostgreSQL recomputes nothing but does store what we
/// send, and clients pay the iterations on every login. The default is low on purpose.
public enum SCRAMVerifier {
    public static let defaultIterations = 16

    public static func make(password: String, iterations: Int = defaultIterations, salt: [UInt8]? = nil) -> String {
        let salt = salt ?? Random.bytes(16)
        let salted = KeyedHash.pbkdf2SHA256(password: Array(password.utf8), salt: salt, iterations: iterations, length: 32)
        let clientKey = KeyedHash.hmacSHA256(key: salted, Array("Client Key".utf8))
        let storedKey = KeyedHash.sha256(clientKey)
        let serverKey = KeyedHash.hmacSHA256(key: salted, Array("Server Key".utf8))
        return "SCRAM-SHA-256$\(iterations):\(Base64.encode(salt))$\(Base64.encode(storedKey)):\(Base64.encode(serverKey))"
    }
}
