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

    public init(databases: [String] = [], roles: [String] = [], identities: [String] = [], leaseIDs: [String] = [],
                issuedAfter: Int64? = nil, issuedBefore: Int64? = nil, states: [LeaseState] = [])
    {
        self.databases = databases
        self.roles = roles
        self.identities = identities
        self.leaseIDs = leaseIDs
        self.issuedAfter = issuedAfter
        self.issuedBefore = issuedBefore
        self.states = states
    }
}
