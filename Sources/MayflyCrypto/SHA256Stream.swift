import CSodium

/// SHA-256 fed in parts (libsodium's incremental API). A value: a copy forks the hash, so a
/// long common prefix is absorbed once (or outside a lock) and finished with different tails.
public struct SHA256Stream: Sendable {
    private var state = crypto_hash_sha256_state()

    public init() {
        Sodium.ensureInitialized()
        crypto_hash_sha256_init(&state)
    }

    /// Absorbs `bytes`.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        crypto_hash_sha256_update(&state, base.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
    }

    /// Absorbs `bytes`.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The hash of everything absorbed (this stream can go on absorbing).
    public func digest() -> [UInt8] {
        var copy = state
        var output = [UInt8](repeating: 0, count: Int(crypto_hash_sha256_BYTES))
        crypto_hash_sha256_final(&copy, &output)
        return output
    }
}
