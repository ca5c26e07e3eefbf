import Foundation

/// The canonical text of an identity as leases, tokens and audit lines record it:
/// `unix:uid:<n>`, `cert:<URI SAN>`, `cert:dns:<name>`, `cert:cn:<name>`, `approle:<role>`,
/// `token:<display name>`.
enum IdentityName {
    /// Canonicalises what an operator typed: `unix:user:<name>` becomes `unix:uid:<n>`; the
    /// other forms are checked and returned as they are.
    static func canonical(_ text: String) throws -> String {
        let parts = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, !parts[1].isEmpty else { throw invalid(text) }
        switch parts[0] {
        case "unix":
            guard parts.count == 3, !parts[2].isEmpty else { throw invalid(text) }
            switch parts[1] {
            case "uid":
                guard UInt32(parts[2]) != nil else { throw APIError.badRequest("identity \(APIError.clip(text)): uid must be a number") }
                return text
            case "user":
                guard let uid = uid(ofUser: parts[2]) else {
                    throw APIError.badRequest("identity \(APIError.clip(text)): no such user \"\(APIError.clip(parts[2]))\"")
                }
                return "unix:uid:\(uid)"
            default:
                throw APIError.badRequest("identity \(APIError.clip(text)): use unix:uid:<n> or unix:user:<name> (credentials belong to users, not groups)")
            }
        case "cert", "approle", "token": return text
        default: throw invalid(text)
        }
    }

    private static func invalid(_ text: String) -> APIError {
        APIError.badRequest("invalid identity \"\(APIError.clip(text))\": use unix:uid:<n>, unix:user:<name>, cert:<URI SAN>, cert:dns:<name>, cert:cn:<name>, approle:<role> or token:<display name>")
    }

    /// The uid of a user name (reentrant lookup: this runs while serving requests).
    static func uid(ofUser name: String) -> UInt32? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getpwnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return entry.pw_uid
    }
}
