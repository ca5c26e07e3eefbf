/// How a static role's password changes.
enum RotationStrategy: String, Codable, Sendable, CaseIterable {
    /// Vault's: the password of the one PostgreSQL user changes in place; the old one dies at once.
    case single
    /// Two users, `<username>_a` and `<username>_b`, with the same memberships: a rotation
    /// changes the inactive one and then switches, so the credential handed out before a
    /// rotation keeps working until the next one.
    case alternating
}

/// A long-lived PostgreSQL login whose password Mayfly owns and rotates
/// (`database/static-roles/:name`, `static_role` stanzas).
struct StaticRole: Codable, Sendable, Equatable {
    var name: String
    var database: String
    var username: String
    var strategy: RotationStrategy
    /// Group roles the `alternating` users are members of (`[username]` when empty).
    var memberOf: [String]
    /// Seconds between rotations (Vault's `rotation_period`), or nil with a schedule.
    var rotationPeriod: Int64?
    /// A cron expression (`rotation_schedule`), or nil with a period.
    var rotationSchedule: String?
    /// IANA zone of the schedule (UTC when nil).
    var timeZone: String?
    /// Custom statements (`{{name}}`, `{{password}}` — the SCRAM verifier); the backend's own password change when empty.
    var rotationStatements: [String]

    /// The PostgreSQL users this role rotates.
    var usernames: [String] {
        strategy == .single ? [username] : [username + "_a", username + "_b"]
    }
}

/// The secret half of a static role, stored encrypted apart from its definition: the
/// password currently handed out, and the intent of a rotation in progress.
struct StaticRoleState: Codable, Sendable {
    /// The user `static-creds` returns (the role's username, or `_a`/`_b`).
    var activeUsername: String
    var password: String
    /// Unix seconds of the last completed rotation.
    var lastRotation: Int64
    /// Written before the password changes: after a crash the rotation is finished with this password.
    var intent: RotationIntent?
}

/// A rotation that was started: the user and the password it is being given.
struct RotationIntent: Codable, Sendable {
    var username: String
    var password: String
    var startedAt: Int64
}
