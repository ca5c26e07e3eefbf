public import MayflyCrypto
public import MayflyJSON

/// HMAC-SHA-256 of audited strings under the device's key (`hmac-sha256:<hex>`), so the file
/// never holds a secret while an operator can still check a known value (`sys/audit-hash`).
/// The key stays in guarded memory (as an `HMACKey`, its padded blocks absorbed once) and is
/// wiped with `wipe()` (on seal).
public struct AuditHasher: Sendable {
    /// nil when the key given was already wiped.
    private let key: HMACKey?

    public init(key: SecureBytes) {
        self.key = try? HMACKey(key: key)
    }

    /// What a wiped key hashes every value to.
    static let unavailable = "hmac-sha256:unavailable"

    /// The keyed hash of `value`; a wiped key hashes nothing (`hmac-sha256:unavailable`).
    public func hash(_ value: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(12 + 2 * HMACKey.macCount)
        guard append(value, to: &out) else { return Self.unavailable }
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `"hmac-sha256:<hex>"` (a JSON string, quotes included) for `value` to `out`.
    public func appendJSONString(hashing value: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        if !append(value, to: &out) { out.append(contentsOf: Self.unavailable.utf8) }
        out.append(UInt8(ascii: "\""))
    }

    /// Appends `value` encoded (sorted keys) with every string value replaced by its hash
    /// (object keys, numbers and booleans unchanged).
    public func appendJSON(hashingStringsOf value: JSONValue, to out: inout [UInt8]) {
        value.encode(into: &out) { text, out in appendJSONString(hashing: text, to: &out) }
    }

    /// Appends `hmac-sha256:<hex>` of `value` (no quotes); false (nothing appended) once wiped.
    private func append(_ value: String, to out: inout [UInt8]) -> Bool {
        guard let key else { return false }
        var mac = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        var text = value
        let done = text.withUTF8 { message in
            withUnsafeMutableBytes(of: &mac) { mac in
                (try? key.authenticate(UnsafeRawBufferPointer(message), into: mac)) != nil
            }
        }
        guard done else { return false }
        out.append(contentsOf: "hmac-sha256:".utf8)
        withUnsafeBytes(of: &mac) { Hex.append($0, to: &out) }
        return true
    }

    func wipe() { key?.wipe() }

    /// The key (tests check it is wiped on seal).
    var keyForTests: HMACKey? { key }
}
