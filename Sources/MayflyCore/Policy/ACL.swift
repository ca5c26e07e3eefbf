/// A capability a policy grants on a path (Vault ACL vocabulary).
public enum Capability: String, Sendable, CaseIterable, Codable {
    case create, read, update, patch, delete, list, sudo, deny
}

/// The access a set of policies gives (vault-api.md §4.1). Deny by default; rules with the
/// same pattern add up across policies; of all patterns matching a path only the one with
/// the highest priority applies; `deny` there overrides everything; root-protected paths
/// need `sudo` as well. The `root` policy grants everything.
public struct ACL: Sendable {
    /// True when the policies include `root`.
    public let isRoot: Bool
    private let exact: [String: Set<Capability>]
    /// Wildcard patterns, highest priority first.
    private let wildcards: [(PathPattern, Set<Capability>)]

    /// Names of the policies every server has.
    public static let builtinNames: Set<String> = ["root", "default"]

    public init(policies: [Policy]) {
        isRoot = policies.contains { $0.name == "root" }
        var merged: [String: Set<Capability>] = [:]
        for policy in policies {
            for rule in policy.rules { merged[rule.pattern, default: []].formUnion(rule.capabilities) }
        }
        var exact: [String: Set<Capability>] = [:]
        var wildcards: [(PathPattern, Set<Capability>)] = []
        for (text, capabilities) in merged {
            let pattern = PathPattern(text)
            if pattern.isExact { exact[text] = capabilities } else { wildcards.append((pattern, capabilities)) }
        }
        wildcards.sort { $1.0.isLowerPriority(than: $0.0) }
        self.exact = exact
        self.wildcards = wildcards
    }

    /// Everything.
    public static let root = ACL(policies: [.root])

    /// Paths that also need `sudo` (Vault's root-protected paths, plus policy and token-role
    /// writes: either can grant any policy).
    public static func isRootProtected(_ path: String, _ capability: Capability = .read) -> Bool {
        if path.hasPrefix("sys/policies/acl/") || path.hasPrefix("sys/policy/") || path.hasPrefix("auth/token/roles/") {
            return [.create, .update, .patch, .delete].contains(capability)
        }
        return path == "sys/rotate" || path == "sys/seal" || path.hasPrefix("sys/leases/revoke-prefix/")
            || path.hasPrefix("sys/leases/revoke-force/") || path.hasPrefix("sys/revoke-prefix/")
            || path.hasPrefix("sys/revoke-force/") || path.hasPrefix("sys/leases/lookup/")
            || path.hasPrefix("sys/audit") || path.hasPrefix("sys/auth/") || path.hasPrefix("sys/mayfly/")
    }

    /// The capabilities of the highest-priority rule matching `path` (`[.deny]` when it denies).
    public func capabilities(_ path: String) -> Set<Capability> {
        if isRoot { return Set(Capability.allCases).subtracting([.deny]) }
        let granted = exact[path] ?? wildcards.first(where: { $0.0.matches(path) })?.1 ?? []
        return granted.contains(.deny) ? [.deny] : granted
    }

    /// Whether an operation needing `capability` may run on `path`.
    public func allows(_ path: String, _ capability: Capability) -> Bool {
        if isRoot { return true }
        let granted = capabilities(path)
        if granted.contains(.deny) || !granted.contains(capability) { return false }
        return !ACL.isRootProtected(path, capability) || granted.contains(.sudo)
    }

    /// `sys/capabilities-self` form: sorted names, `["root"]` for root, `["deny"]` for nothing.
    public func capabilitiesForDisplay(_ path: String) -> [String] {
        if isRoot { return ["root"] }
        let granted = capabilities(path)
        return granted.isEmpty ? ["deny"] : granted.map(\.rawValue).sorted()
    }

    /// Whether some rule could grant anything at or below `prefix` (mount preflight).
    public func hasAnyAccess(under prefix: String) -> Bool {
        if isRoot { return true }
        let grants = { (capabilities: Set<Capability>) in !capabilities.isEmpty && !capabilities.contains(.deny) }
        if exact.contains(where: { $0.key.hasPrefix(prefix) && grants($0.value) }) { return true }
        return wildcards.contains { pattern, capabilities in
            guard grants(capabilities) else { return false }
            let fixed = pattern.firstWildcard.map { String(pattern.text.prefix($0)) } ?? pattern.text
            return fixed.hasPrefix(prefix) || prefix.hasPrefix(fixed)
        }
    }
}
