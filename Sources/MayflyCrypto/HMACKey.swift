import CSodium

/// An HMAC-SHA-256 key kept as the state HMAC reaches after absorbing its padded key blocks
/// (in guarded memory, like the key): each MAC then starts from a copy of that state and costs
/// two SHA-256 compressions fewer. For keys that MAC many short messages (the audit device's).
/// `wipe()` (or deinit) zeroes and frees it; a wiped key MACs nothing.
public final class HMACKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// A `crypto_auth_hmacsha256_state` after `crypto_auth_hmacsha256_init`.
    private let state: SecureBytes

    /// The MAC's size in bytes.
    public static let macCount = Int(crypto_auth_hmacsha256_BYTES)

    public init(key: SecureBytes) throws {
        Sodium.ensureInitialized()
        state = SecureBytes(count: MemoryLayout<crypto_auth_hmacsha256_state>.size)
        try key.withUnsafeBytes { key in
            var initial = crypto_auth_hmacsha256_state()
            var empty: UInt8 = 0
            withUnsafePointer(to: &empty) { empty in
                crypto_auth_hmacsha256_init(&initial, key.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? empty, key.count)
            }
            try state.withUnsafeMutableBytes { stored in
                withUnsafeBytes(of: &initial) { stored.copyMemory(from: $0) }
            }
            sodium_memzero(&initial, MemoryLayout<crypto_auth_hmacsha256_state>.size)
        }
    }

    /// HMAC-SHA-256 of `message` into `mac` (`macCount` bytes); throws once wiped.
    public func authenticate(_ message: UnsafeRawBufferPointer, into mac: UnsafeMutableRawBufferPointer) throws {
        precondition(mac.count >= Self.macCount, "an HMAC-SHA-256 needs \(Self.macCount) bytes")
        var working = crypto_auth_hmacsha256_state()
        try state.withUnsafeBytes { stored in
            withUnsafeMutableBytes(of: &working) { $0.copyMemory(from: stored) }
        }
        let input = message.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var empty: UInt8 = 0
        withUnsafePointer(to: &empty) { empty in
            _ = crypto_auth_hmacsha256_update(&working, input ?? empty, UInt64(message.count))
        }
        crypto_auth_hmacsha256_final(&working, mac.baseAddress!.assumingMemoryBound(to: UInt8.self))
        sodium_memzero(&working, MemoryLayout<crypto_auth_hmacsha256_state>.size)
    }

    /// HMAC-SHA-256 of `message`.
    public func mac(_ message: some Collection<UInt8>) throws -> [UInt8] {
        var output = [UInt8](repeating: 0, count: Self.macCount)
        let bytes = Array(message)
        try bytes.withUnsafeBytes { message in
            try output.withUnsafeMutableBytes { try authenticate(message, into: $0) }
        }
        return output
    }

    /// Zeroes and frees the state; idempotent.
    public func wipe() { state.wipe() }

    /// True once wiped.
    public var isWiped: Bool { state.isWiped }

    public var description: String { "HMACKey" }
    public var debugDescription: String { description }
}
