import CSodium

/// XChaCha20-Poly1305-IETF with associated data. Sealed form: 24-byte random nonce followed
/// by ciphertext and 16-byte tag.
public enum AEAD {
    /// Key length in bytes (32).
    public static let keyLength = Int(crypto_aead_xchacha20poly1305_ietf_KEYBYTES)
    static let nonceLength = Int(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    static let tagLength = Int(crypto_aead_xchacha20poly1305_ietf_ABYTES)
    /// Bytes a sealed message has beyond its plaintext (nonce and tag).
    public static let overhead = nonceLength + tagLength

    /// Encrypts `plaintext`, authenticating `associatedData` too.
    public static func seal(_ plaintext: some Collection<UInt8>, key: SecureBytes,
                            associatedData: some Collection<UInt8>) throws -> [UInt8]
    {
        let message = Array(plaintext)
        return try message.withUnsafeBufferPointer { try seal(raw: UnsafeRawBufferPointer($0), key: key, associatedData: associatedData) }
    }

    /// Encrypts key material straight from guarded memory.
    public static func seal(secure plaintext: SecureBytes, key: SecureBytes,
                            associatedData: some Collection<UInt8>) throws -> [UInt8]
    {
        try plaintext.withUnsafeBytes { try seal(raw: $0, key: key, associatedData: associatedData) }
    }

    private static func seal(raw message: UnsafeRawBufferPointer, key: SecureBytes,
                             associatedData: some Collection<UInt8>) throws -> [UInt8]
    {
        Sodium.ensureInitialized()
        guard key.count == keyLength else { throw CryptoError(.invalidKeyLength) }
        let aad = Array(associatedData)
        var output = [UInt8](repeating: 0, count: nonceLength + message.count + tagLength)
        try key.withUnsafeBytes { keyBytes in
            try output.withUnsafeMutableBufferPointer { out in
                let nonce = out.baseAddress!
                randombytes_buf(nonce, nonceLength)
                var written: UInt64 = 0
                let result = crypto_aead_xchacha20poly1305_ietf_encrypt(
                    nonce + nonceLength, &written,
                    message.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(message.count),
                    aad, UInt64(aad.count), nil, nonce, keyBytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
                guard result == 0, Int(written) == message.count + tagLength else {
                    throw CryptoError(.invalidParameters, "encryption failed")
                }
            }
        }
        return output
    }

    /// Decrypts and verifies; any tampering, wrong key or wrong associated data throws
    /// `CryptoError.decryptionFailed`.
    public static func open(_ sealed: some Collection<UInt8>, key: SecureBytes,
                            associatedData: some Collection<UInt8>) throws -> [UInt8]
    {
        let input = Array(sealed)
        guard input.count >= nonceLength + tagLength else { throw CryptoError(.decryptionFailed, "input too short") }
        var output = [UInt8](repeating: 0, count: input.count - nonceLength - tagLength)
        try output.withUnsafeMutableBytes { try open(input, into: $0, key: key, associatedData: associatedData) }
        return output
    }

    /// Decrypts key material straight into guarded memory.
    public static func openSecure(_ sealed: some Collection<UInt8>, key: SecureBytes,
                                  associatedData: some Collection<UInt8>) throws -> SecureBytes
    {
        let input = Array(sealed)
        guard input.count > nonceLength + tagLength else { throw CryptoError(.decryptionFailed, "input too short") }
        let output = SecureBytes(count: input.count - nonceLength - tagLength)
        do {
            try output.withUnsafeMutableBytes { try open(input, into: $0, key: key, associatedData: associatedData) }
        } catch {
            output.wipe()
            throw error
        }
        return output
    }

    private static func open(_ input: [UInt8], into output: UnsafeMutableRawBufferPointer, key: SecureBytes,
                             associatedData: some Collection<UInt8>) throws
    {
        Sodium.ensureInitialized()
        guard key.count == keyLength else { throw CryptoError(.invalidKeyLength) }
        let aad = Array(associatedData)
        try key.withUnsafeBytes { keyBytes in
            try input.withUnsafeBufferPointer { sealed in
                var written: UInt64 = 0
                let result = crypto_aead_xchacha20poly1305_ietf_decrypt(
                    output.baseAddress?.assumingMemoryBound(to: UInt8.self), &written, nil,
                    sealed.baseAddress! + nonceLength, UInt64(sealed.count - nonceLength),
                    aad, UInt64(aad.count), sealed.baseAddress!, keyBytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
                guard result == 0 else {
                    sodium_memzero(output.baseAddress, output.count)
                    throw CryptoError(.decryptionFailed)
                }
            }
        }
    }
}
