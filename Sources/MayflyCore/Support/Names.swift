/// Names an operator gives things (databases, roles, static roles, token roles): one rule
/// everywhere, checked before a name reaches a path, a statement or a log line.
enum Names {
    /// Throws a 400 unless `name` is 1-63 ASCII letters, digits, `-`, `_` or `.`, not
    /// starting with `.`; `kind` names the thing in the message.
    static func validate(_ name: String, kind: String) throws {
        let allowed = name.unicodeScalars.allSatisfy { $0.properties.isASCIIHexDigit || ("a"..."z").contains($0)
            || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" || $0 == "." }
        guard !name.isEmpty, name.utf8.count <= 63, allowed, name.first != "." else {
            throw APIError.badRequest("invalid \(kind) name \"\(APIError.clip(name))\": use 1-63 letters, digits, '-', '_' or '.'")
        }
    }
}
