/// The metadata of one KV v2 secret: its settings and the state of every kept version.
struct KVMetadata: Codable, Sendable, Equatable {
    struct Version: Codable, Sendable, Equatable {
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

extension KVMetadata {
    /// Decodes stored metadata (the JSON `JSONEncoder` wrote, whose integer-keyed `versions`
    /// is an array of alternating keys and values) with the hot-path reader: every KV read
    /// decodes one.
    static func decode(_ bytes: [UInt8]) throws -> KVMetadata {
        guard case .object(let fields) = try JSONValue.parse(bytes) else { throw BarrierError.corrupt("KV metadata is not an object") }
        func string(_ key: String) throws -> String {
            guard let value = fields[key]?.stringValue else { throw BarrierError.corrupt("KV metadata lacks \(key)") }
            return value
        }
        func int(_ key: String) throws -> Int64 {
            guard let value = fields[key]?.intValue else { throw BarrierError.corrupt("KV metadata lacks \(key)") }
            return value
        }
        var versions: [Int64: Version] = [:]
        switch fields["versions"] {
        case .array(let items)?:
            guard items.count % 2 == 0 else { throw BarrierError.corrupt("KV metadata versions are odd") }
            for pair in stride(from: 0, to: items.count, by: 2) {
                guard let number = items[pair].intValue, case .object(let version) = items[pair + 1] else {
                    throw BarrierError.corrupt("KV metadata version is malformed")
                }
                versions[number] = Version(
                    createdTime: version["createdTime"]?.stringValue ?? "", deletionTime: version["deletionTime"]?.stringValue ?? "",
                    destroyed: version["destroyed"]?.boolValue ?? false)
            }
        case .object(let object)?:
            for (key, value) in object {
                guard let number = Int64(key), case .object(let version) = value else { continue }
                versions[number] = Version(
                    createdTime: version["createdTime"]?.stringValue ?? "", deletionTime: version["deletionTime"]?.stringValue ?? "",
                    destroyed: version["destroyed"]?.boolValue ?? false)
            }
        default:
            break
        }
        var custom: [String: String]?
        if case .object(let object)? = fields["customMetadata"] { custom = object.compactMapValues(\.stringValue) }
        return KVMetadata(
            createdTime: try string("createdTime"), updatedTime: try string("updatedTime"),
            currentVersion: try int("currentVersion"), oldestVersion: try int("oldestVersion"),
            maxVersions: try int("maxVersions"), casRequired: fields["casRequired"]?.boolValue ?? false,
            deleteVersionAfter: try int("deleteVersionAfter"), customMetadata: custom, versions: versions)
    }
}

/// Engine-wide KV settings (`secret/config`).
struct KVConfig: Codable, Sendable {
    var maxVersions: Int64 = 0
    var casRequired: Bool = false
    var deleteVersionAfter: Int64 = 0
}
