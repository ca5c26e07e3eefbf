import CSodium

/// HMAC-SHA-256, SHA-256 and PBKDF2-HMAC-SHA-256 from libsodium.
public enum KeyedHash {
    /// HMAC-SHA-256 with a key in guarded memory.
    public static func hmacSHA256(key: SecureBytes, _ message: some Collection<UInt8>) throws -> [UInt8] {
        try key.withUnsafeBytes { hmac(key: $0, Array(message)) }
    }

    /// HMAC-SHA-256 with a plain key.
    public static func hmacSHA256(key: some Collection<UInt8>, _ message: some Collection<UInt8>) -> [UInt8] {
        Array(key).withUnsafeBytes { hmac(key: $0, Array(message)) }
    }

    private static func hmac(key: UnsafeRawBufferPointer, _ message: [UInt8]) -> [UInt8] {
        Sodium.ensureInitialized()
        var state = crypto_auth_hmacsha256_state()
        var output = [UInt8](repeating: 0, count: Int(crypto_auth_hmacsha256_BYTES))
        var empty: UInt8 = 0
        crypto_auth_hmacsha256_init(&state, key.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? withUnsafePointer(to: &empty) { $0 }, key.count)
        crypto_auth_hmacsha256_update(&state, message, UInt64(message.count))
        crypto_auth_hmacsha256_final(&state, &output)
        sodium_memzero(&state, MemoryLayout<crypto_auth_hmacsha256_state>.size)
        return output
    }

    /// SHA-256.
    public static func sha256(_ message: some Collection<UInt8>) -> [UInt8] {
        Sodium.ensureInitialized()
        let input = Array(message)
        var output = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
        crypto_hash_sha256(&output, input, UInt64(input.count))
        return output
    }

    /// PBKDF2-HMAC-SHA-256 (RFC 8018), used for SCRAM-SHA-256 verifiers.
    public static func pbkdf2SHA256(password: some Collection<UInt8>, salt: some Collection<UInt8>, iterations: Int,
                                    length: Int) -> [UInt8]
    {
        precondition(iterations > 0 && length > 0)
        let password = Array(password), salt = Array(salt)
        var output: [UInt8] = []
        var block: UInt32 = 1
        while output.count < length {
            var u = hmacSHA256(key: password, salt + withUnsafeBytes(of: block.bigEndian) { Array($0) })
            var t = u
            for _ in 1..<iterations {
                u = hmacSHA256(key: password, u)
                for i in t.indices { t[i] ^= u[i] }
            }
            output += t
            block += 1
        }
        return Array(output.prefix(length))
    }
}
