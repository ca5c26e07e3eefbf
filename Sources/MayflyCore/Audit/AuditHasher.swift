public import MayflyCrypto

/// HMAC-SHA-256 of audited strings under the device's key (`hmac-sha256:<hex>`), so the file
/// never holds a secret while an operator can still check a known value (`sys/audit-hash`).
/// The key stays in guarded memory and is wiped with `wipe()` (on seal).
public struct AuditHasher: Sendable {
    private let key: SecureBytes

    public init(key: SecureBytes) {
        self.key = key
    }

    public init(key: [UInt8]) {
        self.key = SecureBytes(copying: key)
    }

    /// The keyed hash of `value`; a wiped key hashes nothing (`hmac-sha256:unavailable`).
    public func hash(_ value: String) -> String {
        guard let mac = try? KeyedHash.hmacSHA256(key: key, Array(value.utf8)) else { return "hmac-sha256:unavailable" }
        return "hmac-sha256:" + Hex.encode(mac)
    }

    /// Every string in `value`, recursively (object keys, numbers and booleans unchanged).
    public func hashStrings(_ value: JSONValue) -> JSONValue {
        switch value {
        case .string(let text): .string(hash(text))
        case .array(let items): .array(items.map(hashStrings))
        case .object(let members): .object(members.mapValues(hashStrings))
        default: value
        }
    }

    func wipe() { key.wipe() }
}
