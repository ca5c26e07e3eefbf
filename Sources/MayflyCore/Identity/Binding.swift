/// A `bind "<identity>" { policies = [...] }` stanza: what a transport identity may do
/// without a token. Identities: `unix:uid:<n>`, `unix:user:<name>`, `unix:gid:<n>`,
/// `unix:group:<name>`, `cert:<URI SAN>`, `cert:dns:<name>`, `cert:cn:<common name>`.
public struct Binding: Sendable, Equatable {
    public var identity: String
    public var policies: [String]

    public init(identity: String, policies: [String]) {
        self.identity = identity
        self.policies = policies
    }
}
