/// The one spelling of a request path: one path, one decision. Routing, the ACL, the audit line and
/// the handler all see the path this returns, and nothing trims or rewrites it afterwards: a
/// policy decision can never be about a different path than the one acted on.
///
/// - Empty segments go (`a//b`, a leading `/`, a trailing `/`): `secret/data/admin/` is
///   `secret/data/admin`, so `secret/data/*` cannot reach a denied `secret/data/admin` through it.
/// - A list operation always ends in `/` (Vault's rule: `LIST secret/metadata/app` lists
///   `secret/metadata/app/`); no other operation does.
/// - `.` and `..` segments and control characters are refused (400), never resolved.
///
/// Percent-decoding is the HTTP layer's (an encoded `%2f` arrives here as `/`).
public enum RequestPath {
    /// The first segment of `path` and the rest after its `/` ("" when there is none).
    static func splitFirst(_ path: String) -> (String, String) {
        guard let slash = path.firstIndex(of: "/") else { return (path, "") }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }

    /// The longest path accepted, in bytes.
    public static let maximumLength = 4096

    /// The canonical form of `raw` for `operation`; throws a 400 for a path that has none.
    public static func canonical(_ raw: String, operation: Operation) throws -> String {
        guard raw.utf8.count <= maximumLength else { throw APIError.badRequest("path is too long") }
        guard !raw.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw APIError.badRequest("invalid path: control character")
        }
        let segments = raw.split(separator: "/", omittingEmptySubsequences: true)
        guard !segments.contains(where: { $0 == "." || $0 == ".." }) else {
            throw APIError.badRequest("invalid path: '.' or '..' segment")
        }
        let joined = segments.joined(separator: "/")
        return operation == .list && !joined.isEmpty ? joined + "/" : joined
    }

    /// Whole segments of a canonical path (a list path's trailing `/` adds none).
    static func segments(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true)
    }

    /// `path` with what must not be written down replaced by its HMAC (`hash`): the token in
    /// the legacy `auth/token/lookup/<token>` form and its siblings. Used for audit lines and logs.
    static func redacted(_ path: String, hash: (String) -> String) -> String {
        let segments = Self.segments(path)
        guard segments.count > 3, segments[0] == "auth", segments[1] == "token",
            ["lookup", "revoke", "renew", "revoke-orphan", "lookup-self", "renew-self", "revoke-self"].contains(segments[2])
        else { return path }
        let tail = segments[3...].joined(separator: "/")
        return "auth/token/\(segments[2])/" + hash(tail) + (path.hasSuffix("/") ? "/" : "")
    }
}
