/// Parses the HCL subset used by Mayfly's config and policies, and JSON, into one tree.
///
/// A block `listener "unix" { path = "/x" }` becomes the member `listener` whose value is an
/// object with member `unix` whose value is the block's body; repeated keys are kept in order.
public enum HCL {
    /// Parses HCL text into its top-level members.
    public static func parse(_ text: String) throws(HCLError) -> [HCLMember] {
        var parser = HCLParser(text)
        return try parser.document()
    }

    /// Parses JSON text (an object at the top) into the same tree.
    public static func parseJSON(_ text: String) throws(HCLError) -> [HCLMember] {
        var parser = JSONParser(text)
        return try parser.document()
    }

    /// JSON when the first non-blank character is `{`, HCL otherwise.
    public static func parseAny(_ text: String) throws(HCLError) -> [HCLMember] {
        let first = text.unicodeScalars.first { !$0.properties.isWhitespace }
        return first == "{" ? try parseJSON(text) : try parse(text)
    }
}
