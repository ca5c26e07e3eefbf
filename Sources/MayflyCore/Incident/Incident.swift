public import MayflyStore

/// What a leak response covers. Every set field narrows it; `all` must be said explicitly.
public struct IncidentScope: Codable, Sendable, Equatable {
    public var all = false
    public var databases: [String] = []
    public var roles: [String] = []
    /// Canonical identities (`unix:uid:1000`, `cert:spiffe://…`, `approle:<role>`, `token:<name>`).
    public var identities: [String] = []
    public var leaseIDs: [String] = []
    public var issuedAfter: Int64?
    public var issuedBefore: Int64?

    public init() {}

    /// True when nothing narrows the scope.
    var isUnrestricted: Bool {
        databases.isEmpty && roles.isEmpty && identities.isEmpty && leaseIDs.isEmpty && issuedAfter == nil
            && issuedBefore == nil
    }

    /// The leases in scope that are not revoked yet. Credentials issued after the incident
    /// started are not in it (the incident is a snapshot of what may have leaked).
    func leaseFilter(startedAt: Int64) -> LeaseFilter {
        LeaseFilter(
            databases: databases, roles: roles, identities: identities, leaseIDs: leaseIDs, issuedAfter: issuedAfter,
            issuedBefore: min(issuedBefore ?? Int64.max, startedAt + 1), states: [.pending, .active, .revoking])
    }
}

/// What a leak response does besides revoking the dynamic credentials in scope.
public struct IncidentActions: Codable, Sendable, Equatable {
    /// Change every static-role and root password of the databases in scope.
    public var rotate = false
    /// Revoke the tokens and AppRole secret IDs of the identities in scope (all but the
    /// caller's with `all`).
    public var tokens = false
    /// Seal the broker afterwards.
    public var seal = false

    public init() {}
}

/// Where an incident is.
public enum IncidentState: String, Codable, Sendable {
    /// Being carried out now.
    case running
    /// Done except for work that failed and is being retried in the background.
    case retrying
    /// Everything finished.
    case completed
}

/// One thing that has not worked yet.
public struct IncidentFailure: Codable, Sendable, Equatable {
    /// What failed: `credentials`, `static role <name>`, `root credentials`, `tokens`.
    public var what: String
    /// The database, or empty.
    public var database: String
    public var reason: String
    /// True while it is being retried (always, until the incident completes).
    public var retrying: Bool
}

/// Per-database numbers of an incident.
public struct IncidentDatabaseReport: Codable, Sendable, Equatable {
    /// Credentials in scope when the incident started (or when the dry run looked).
    public var credentialsInScope = 0
    public var credentialsRevoked = 0
    /// Credentials whose revocation failed and is being retried.
    public var credentialsPending = 0
    public var sessionsTerminated = 0
    public var passwordsRotated = 0
    /// Static roles and root credentials still to rotate.
    public var rotationsPending = 0
}

/// A leak response (`sys/mayfly/revoke`): its scope, actions and progress, stored durably so
/// that a restart resumes it. Contains no secret.
public struct Incident: Codable, Sendable, Equatable {
    public var id: String
    public var reason: String
    /// Who started it (identity) and the accessor of their token, which `all` spares.
    public var requestedBy: String
    public var callerAccessor: String?
    public var createdAt: Int64
    public var updatedAt: Int64
    public var completedAt: Int64?
    public var scope: IncidentScope
    public var actions: IncidentActions
    public var state: IncidentState
    public var dryRun: Bool
    /// Passes made so far (the first, and each background resume).
    public var passes: Int
    public var databases: [String: IncidentDatabaseReport]
    public var tokensRevoked: Int
    public var secretIDsDestroyed: Int
    public var tokensDone: Bool
    /// Static roles (`static:<name>`) and databases (`root:<name>`) already rotated.
    public var rotated: [String]
    public var failures: [IncidentFailure]
    public var sealed: Bool
    /// A dry run's list of what would be done, one line each.
    public var plan: [String]?
}
