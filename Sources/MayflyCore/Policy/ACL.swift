/// A capability a policy grants on a path (Vault ACL vocabulary).
public enum Capability: String, Sendable, CaseIterable, Codable {
    case create, read, update, patch, delete, list, sudo, deny
}

/// The access a token has, computed from its policies. Deny by default: a path no policy
/// names grants nothing. Until configurable policies land, two built-in policies exist:
/// `root` (everything) and `default` (a token may look itself up, renew and revoke itself).
public struct ACL: Sendable {
    /// True when the token holds the `root` policy.
    public let isRoot: Bool
    private let rules: [String: Set<Capability>]

    /// The ACL for a token carrying `policies`. Unknown names grant nothing.
    public init(policies: [String]) {
        isRoot = policies.contains("root")
        var rules: [String: Set<Capability>] = [:]
        if policies.contains("default") {
            for (path, capabilities) in ACL.defaultPolicy { rules[path, default: []].formUnion(capabilities) }
        }
        self.rules = rules
    }

    /// The rules of the built-in `default` policy (OpenBao's `DefaultPolicy`, trimmed to what exists).
    static let defaultPolicy: [String: Set<Capability>] = [
        "auth/token/lookup-self": [.read],
        "auth/token/renew-self": [.update],
        "auth/token/revoke-self": [.update],
        "sys/capabilities-self": [.update],
        "sys/leases/renew": [.update],
        "sys/leases/lookup": [.update],
        "sys/renew": [.update],
        "sys/internal/ui/resultant-acl": [.read],
    ]

    /// Policy names that exist on this server.
    public static let knownPolicies: Set<String> = ["root", "default"]

    /// Paths that also need `sudo` (Vault's root-protected paths).
    static func isRootProtected(_ path: String) -> Bool {
        path == "sys/rotate" || path == "sys/seal" || path.hasPrefix("sys/leases/revoke-prefix/")
            || path.hasPrefix("sys/leases/revoke-force/") || path.hasPrefix("sys/revoke-prefix/")
            || path.hasPrefix("sys/revoke-force/") || path.hasPrefix("sys/leases/lookup/")
            || path.hasPrefix("sys/audit")
    }

    /// The capabilities granted on `path`.
    public func capabilities(_ path: String) -> Set<Capability> {
        if isRoot { return Set(Capability.allCases).subtracting([.deny]) }
        let granted = rules[path] ?? []
        return granted.contains(.deny) ? [.deny] : granted
    }

    /// Whether an operation needing `capability` may run on `path`.
    public func allows(_ path: String, _ capability: Capability) -> Bool {
        if isRoot { return true }
        let granted = capabilities(path)
        if granted.contains(.deny) || !granted.contains(capability) { return false }
        return !ACL.isRootProtected(path) || granted.contains(.sudo)
    }

    /// Whether the token has any capability at or below `prefix` (mount preflight).
    public func hasAnyAccess(under prefix: String) -> Bool {
        isRoot || rules.contains { $0.key.hasPrefix(prefix) && !$0.value.contains(.deny) && !$0.value.isEmpty }
    }
}
