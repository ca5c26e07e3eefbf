/// The metadata of one KV v2 secret: its settings and the state of every kept version.
struct KVMetadata: Codable, Sendable {
    struct Version: Codable, Sendable {
        var createdTime: String
        /// RFC 3339 time at which the version counts as deleted ("" when never).
        var deletionTime: String
        var destroyed: Bool
    }

    var createdTime: String
    var updatedTime: String
    var currentVersion: Int64
    var oldestVersion: Int64
    var maxVersions: Int64
    var casRequired: Bool
    var deleteVersionAfter: Int64
    var customMetadata: [String: String]?
    var versions: [Int64: Version]
}

/// Engine-wide KV settings (`secret/config`).
struct KVConfig: Codable, Sendable {
    var maxVersions: Int64 = 0
    var casRequired: Bool = false
    var deleteVersionAfter: Int64 = 0
}
