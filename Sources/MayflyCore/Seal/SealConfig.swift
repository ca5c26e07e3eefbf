/// How the unseal key is obtained. Stored in plaintext: it must be readable while sealed.
public struct SealConfig: Sendable, Codable, Equatable {
    /// `shamir` (operators submit shares) or `keyfile` (read from a file; unattended restarts).
    public var type: String
    public var secretShares: Int
    public var secretThreshold: Int

    enum CodingKeys: String, CodingKey {
        case type
        case secretShares = "secret_shares"
        case secretThreshold = "secret_threshold"
    }
}

/// Where the server gets its unseal key from (the `seal` stanza).
public enum SealMode: Sendable, Equatable {
    /// Shamir shares submitted through `sys/unseal`.
    case shamir
    /// A 32-byte key, hex-encoded, in a file readable only by the server.
    case keyFile(path: String)
}

/// The seal status as reported by `sys/seal-status` and `sys/unseal`.
public struct SealStatus: Sendable, Equatable {
    public var type: String
    public var initialized: Bool
    public var sealed: Bool
    public var threshold: Int
    public var shares: Int
    public var progress: Int
    public var nonce: String
}
