public import Foundation

/// A stored token. The token itself is never stored, only its keyed hash (`idHash`).
public struct TokenEntry: Sendable, Codable, Equatable {
    /// Hex HMAC-SHA-256 of the token under the store's token key.
    public var idHash: String
    /// Public handle used to look up or revoke a token without knowing it.
    public var accessor: String
    public var policies: [String]
    public var meta: [String: String]?
    public var displayName: String
    /// Unix seconds.
    public var creationTime: Int64
    /// Seconds the token was created with (0 = no expiry, e.g. root).
    public var creationTTL: Int64
    /// Unix seconds, nil for tokens that never expire.
    public var expireTime: Int64?
    public var explicitMaxTTL: Int64
    public var renewable: Bool
    /// Remaining uses; 0 means unlimited.
    public var numUses: Int64
    public var path: String
    public var parentHash: String?
    public var lastRenewal: Int64?
    /// The identity the token was issued to (`cert:…`, `approle:<role>`, `unix:uid:…`), inherited
    /// by the tokens it creates; nil for tokens with no identity behind them (root).
    public var identity: String?

    /// Seconds left, 0 for non-expiring tokens.
    public func ttl(now: Date) -> Int64 {
        guard let expireTime else { return 0 }
        return max(0, expireTime - Int64(now.timeIntervalSince1970))
    }

    /// Seconds granted by the last create or renew (what Vault reports as `lease_duration`),
    /// independent of the clock ticking between the grant and the response.
    public var grantedTTL: Int64 {
        guard let expireTime else { return 0 }
        return max(0, expireTime - (lastRenewal ?? creationTime))
    }

    /// True once the expiry has passed.
    public func isExpired(now: Date) -> Bool {
        isExpired(at: Int64(now.timeIntervalSince1970))
    }

    /// True once the expiry has passed at `seconds` (Unix seconds).
    public func isExpired(at seconds: Int64) -> Bool {
        guard let expireTime else { return false }
        return expireTime <= seconds
    }

    public var isOrphan: Bool { parentHash == nil }
}

extension TokenEntry {
    /// Decodes a stored entry (the JSON `JSONEncoder` wrote) with the hot-path reader, not
    /// Foundation's decoder: every authenticated request decodes one.
    static func decode(_ bytes: [UInt8]) throws -> TokenEntry {
        let json = try JSONValue.parse(bytes)
        guard case .object(let fields) = json else { throw BarrierError.corrupt("token entry is not an object") }
        func string(_ key: String) throws -> String {
            guard let value = fields[key]?.stringValue else { throw BarrierError.corrupt("token entry lacks \(key)") }
            return value
        }
        func int(_ key: String) throws -> Int64 {
            guard let value = fields[key]?.intValue else { throw BarrierError.corrupt("token entry lacks \(key)") }
            return value
        }
        func optionalInt(_ key: String) -> Int64? { fields[key]?.intValue }
        func optionalString(_ key: String) -> String? { fields[key]?.stringValue }
        var meta: [String: String]?
        if case .object(let object)? = fields["meta"] { meta = object.compactMapValues(\.stringValue) }
        return TokenEntry(
            idHash: try string("idHash"), accessor: try string("accessor"),
            policies: (fields["policies"]?.arrayValue ?? []).compactMap(\.stringValue), meta: meta,
            displayName: try string("displayName"), creationTime: try int("creationTime"), creationTTL: try int("creationTTL"),
            expireTime: optionalInt("expireTime"), explicitMaxTTL: try int("explicitMaxTTL"),
            renewable: fields["renewable"]?.boolValue ?? false, numUses: try int("numUses"), path: try string("path"),
            parentHash: optionalString("parentHash"), lastRenewal: optionalInt("lastRenewal"),
            identity: optionalString("identity"))
    }
}
