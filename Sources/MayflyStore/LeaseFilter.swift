/// Which leases a scoped operation (a leak response, an exposure report) is about. Every set
/// field narrows the match; an empty filter matches every lease.
public struct LeaseFilter: Sendable, Equatable, Codable {
    public var databases: [String]
    public var roles: [String]
    public var identities: [String]
    public var leaseIDs: [String]
    /// Unix seconds, inclusive.
    public var issuedAfter: Int64?
    /// Unix seconds, exclusive.
    public var issuedBefore: Int64?
    /// Only leases in these states (all states when empty).
    public var states: [LeaseState]
    /// Only leases obtained with these tokens (by keyed hash; any when empty).
    public var tokenHashes: [String]

    public init(databases: [String] = [], roles: [String] = [], identities: [String] = [], leaseIDs: [String] = [],
                issuedAfter: Int64? = nil, issuedBefore: Int64? = nil, states: [LeaseState] = [],
                tokenHashes: [String] = [])
    {
        self.tokenHashes = tokenHashes
        self.databases = databases
        self.roles = roles
        self.identities = identities
        self.leaseIDs = leaseIDs
        self.issuedAfter = issuedAfter
        self.issuedBefore = issuedBefore
        self.states = states
    }

    private enum CodingKeys: String, CodingKey {
        case databases, roles, identities, leaseIDs, issuedAfter, issuedBefore, states, tokenHashes
    }

    /// Decodes filters written before `tokenHashes` existed too.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            databases: try container.decode([String].self, forKey: .databases),
            roles: try container.decode([String].self, forKey: .roles),
            identities: try container.decode([String].self, forKey: .identities),
            leaseIDs: try container.decode([String].self, forKey: .leaseIDs),
            issuedAfter: try container.decodeIfPresent(Int64.self, forKey: .issuedAfter),
            issuedBefore: try container.decodeIfPresent(Int64.self, forKey: .issuedBefore),
            states: try container.decode([LeaseState].self, forKey: .states),
            tokenHashes: try container.decodeIfPresent([String].self, forKey: .tokenHashes) ?? [])
    }

    /// The list conditions of the filter as (column, values) pairs, the empty ones left out:
    /// each store turns them into `column IN (…)` with its own parameter syntax.
    public var listConditions: [(column: String, values: [String])] {
        [("database_name", databases), ("role_name", roles), ("identity", identities), ("id", leaseIDs),
         ("state", states.map(\.rawValue)), ("token_hash", tokenHashes)].filter { !$0.1.isEmpty }
    }
}
