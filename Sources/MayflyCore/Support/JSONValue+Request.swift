@_exported import MayflyJSON

/// The core speaks `JSONValue` (from `MayflyJSON`, shared with the client and the CLI) and
/// re-exports it; what follows reads request fields the way Vault does.
extension JSONValue {
    /// A boolean request field read the way Vault reads one: a JSON boolean, or a string Go's
    /// `strconv.ParseBool` accepts (`"true"`, `"0"`, `"F"`, …), or 0/1. Nil when absent or null;
    /// anything else is a 400, never silently the default.
    public static func flag(_ value: JSONValue?, field: String) throws -> Bool? {
        guard let value, !value.isNull else { return nil }
        switch value {
        case .bool(let flag): return flag
        case .string(let text) where ["1", "t", "T", "TRUE", "true", "True"].contains(text): return true
        case .string(let text) where ["0", "f", "F", "FALSE", "false", "False"].contains(text): return false
        case .int(let number) where number == 0 || number == 1: return number == 1
        default: throw APIError.badRequest("\(field) must be a boolean")
        }
    }
}
