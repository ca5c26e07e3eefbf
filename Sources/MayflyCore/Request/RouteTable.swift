/// Where a request goes, and what it needs besides its capability.
struct Route: Sendable, Equatable {
    /// The handler family that serves the route.
    enum Handler: Sendable, Equatable {
        case health, sealStatus, leader, initialize, unseal
        case appRoleLogin, certLogin
        case mountPreflight, resultantACL
        case kv, token, appRole, database, lease, schedule, incident, policy, system, metrics
    }

    let handler: Handler
    /// Whether the operation also needs `sudo` (Vault's root-protected paths, plus writes that
    /// can hand out any policy: policies and token roles).
    let needsSudo: Bool

    /// Routes answered without a caller: health, status, the unseal dance and the logins.
    var isPublic: Bool {
        switch handler {
        case .health, .sealStatus, .leader, .initialize, .unseal, .appRoleLogin, .certLogin: true
        default: false
        }
    }
}

/// Every route of the API, matched on whole path segments of the canonical path
/// (`RequestPath`): `sys/policy/+` is `sys/policy/NAME`, never `sys/policyNAME`. A path no
/// entry matches has no handler (404). The first matching entry wins, so specific entries
/// come before the families that contain them.
enum RouteTable {
    /// One pattern: literal segments, `+` for exactly one segment, a final `*` for one or more.
    struct Entry: Sendable {
        let segments: [String]
        let handler: Route.Handler
        /// Operations that need `sudo` here.
        let sudo: Set<Operation>

        init(_ pattern: String, _ handler: Route.Handler, sudo: Set<Operation> = []) {
            segments = pattern.split(separator: "/").map(String.init)
            self.handler = handler
            self.sudo = sudo
        }

        func matches(_ path: [Substring]) -> Bool {
            if segments.last == "*" {
                guard path.count >= segments.count else { return false }
            } else {
                guard path.count == segments.count else { return false }
            }
            for (pattern, segment) in zip(segments, path) where pattern != "+" && pattern != "*" && pattern != segment {
                return false
            }
            return true
        }
    }

    private static let all: Set<Operation> = [.read, .list, .update, .delete, .patch, .head]
    private static let writes: Set<Operation> = [.update, .delete, .patch]

    static let entries: [Entry] = [
        Entry("sys/health", .health),
        Entry("sys/seal-status", .sealStatus),
        Entry("sys/leader", .leader),
        Entry("sys/init", .initialize),
        Entry("sys/unseal", .unseal),
        Entry("auth/approle/login", .appRoleLogin),
        Entry("auth/cert/login", .certLogin),
        Entry("sys/internal/ui/mounts", .mountPreflight),
        Entry("sys/internal/ui/mounts/*", .mountPreflight),
        Entry("sys/internal/ui/resultant-acl", .resultantACL),
        Entry("secret/*", .kv),
        // Either can hand out any policy: writing needs sudo, as writing a policy does.
        Entry("auth/token/roles/+", .token, sudo: writes),
        Entry("auth/token/*", .token),
        Entry("auth/approle/*", .appRole),
        Entry("database/*", .database),
        Entry("sys/leases/lookup", .lease, sudo: [.list]),
        Entry("sys/leases/lookup/*", .lease, sudo: all),
        Entry("sys/leases/renew", .lease),
        Entry("sys/leases/renew/*", .lease),
        Entry("sys/leases/revoke", .lease),
        Entry("sys/leases/revoke/*", .lease),
        Entry("sys/leases/revoke-prefix", .lease, sudo: all),
        Entry("sys/leases/revoke-prefix/*", .lease, sudo: all),
        Entry("sys/leases/revoke-force", .lease, sudo: all),
        Entry("sys/leases/revoke-force/*", .lease, sudo: all),
        Entry("sys/renew", .lease),
        Entry("sys/renew/*", .lease),
        Entry("sys/revoke", .lease),
        Entry("sys/revoke/*", .lease),
        Entry("sys/revoke-prefix", .lease, sudo: all),
        Entry("sys/revoke-prefix/*", .lease, sudo: all),
        Entry("sys/revoke-force", .lease, sudo: all),
        Entry("sys/revoke-force/*", .lease, sudo: all),
        Entry("sys/mayfly/schedule", .schedule, sudo: all),
        Entry("sys/mayfly/schedule/*", .schedule, sudo: all),
        Entry("sys/mayfly/*", .incident, sudo: all),
        Entry("sys/policy", .policy),
        Entry("sys/policy/+", .policy, sudo: writes),
        Entry("sys/policies/acl", .policy),
        Entry("sys/policies/acl/+", .policy, sudo: writes),
        Entry("sys/seal", .system, sudo: all),
        Entry("sys/rotate", .system, sudo: all),
        Entry("sys/key-status", .system),
        Entry("sys/ha-status", .system),
        Entry("sys/capabilities-self", .system),
        Entry("sys/mounts", .system),
        Entry("sys/mounts/*", .system),
        Entry("sys/auth", .system),
        Entry("sys/auth/*", .system, sudo: all),
        Entry("sys/audit", .system, sudo: all),
        Entry("sys/audit/*", .system, sudo: all),
        Entry("sys/audit-hash/+", .system, sudo: all),
        Entry("sys/metrics", .metrics),
    ]

    /// The route of a canonical `path` for `operation`, or nil when no handler serves it.
    static func route(_ path: String, _ operation: Operation) -> Route? {
        let segments = RequestPath.segments(path)
        guard let entry = entries.first(where: { $0.matches(segments) }) else { return nil }
        return Route(handler: entry.handler, needsSudo: entry.sudo.contains(operation))
    }

    /// Whether `capability` on `path` also needs `sudo` (for `ACL.allows` without a request).
    static func needsSudo(_ path: String, _ capability: Capability) -> Bool {
        let operation: Operation = switch capability {
        case .read, .sudo, .deny: .read
        case .list: .list
        case .create, .update: .update
        case .delete: .delete
        case .patch: .patch
        }
        return route(path, operation)?.needsSudo ?? false
    }
}
