/// A capability a policy grants on a path (Vault ACL vocabulary).
public enum Capability: String, Sendable, CaseIterable, Codable {
    case create, read, update, patch, delete, list, sudo, deny
}

/// The access a set of policies gives, as Vault's ACL computes it. Deny by default; rules with the
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

    /// Whether `capability` on `path` also needs `sudo`: decided by the route table, on whole
    /// segments of the canonical path (Vault's root-protected paths, plus policy and token-role
    /// writes: either can grant any policy).
    public static func isRootProtected(_ path: String, _ capability: Capability = .read) -> Bool {
        RouteTable.needsSudo(path, capability)
    }

    /// The capabilities of the highest-priority rule matching `path` (`[.deny]` when it denies).
    public func capabilities(_ path: String) -> Set<Capability> {
        if isRoot { return Set(Capability.allCases).subtracting([.deny]) }
        let granted = exact[path] ?? wildcards.first(where: { $0.0.matches(path) })?.1 ?? []
        return granted.contains(.deny) ? [.deny] : granted
    }

    /// Whether an operation needing `capability` may run on `path` (whose route says whether it
    /// also needs `sudo`).
    public func allows(_ path: String, _ capability: Capability) -> Bool {
        allows(path, capability, needsSudo: ACL.isRootProtected(path, capability))
    }

    /// Whether an operation needing `capability` (and `sudo` too when `needsSudo`) may run on `path`.
    public func allows(_ path: String, _ capability: Capability, needsSudo: Bool) -> Bool {
        if isRoot { return true }
        let granted = capabilities(path)
        if granted.contains(.deny) || !granted.contains(capability) { return false }
        return !needsSudo || granted.contains(.sudo)
    }

    /// Whether the policies grant `sudo` on `path` (root always does).
    public func hasSudo(on path: String) -> Bool {
        isRoot || capabilities(path).contains(.sudo)
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

    /// `sys/internal/ui/resultant-acl`: the merged rules, in Vault's shape (`exact_paths` and
    /// `glob_paths`, the latter keyed without their `*`).
    func resultant() -> JSONValue {
        func describe(_ capabilities: Set<Capability>) -> JSONValue {
            ["capabilities": .strings(capabilities.map(\.rawValue).sorted())]
        }
        var exactPaths: [String: JSONValue] = [:], globPaths: [String: JSONValue] = [:]
        for (path, capabilities) in exact { exactPaths[path] = describe(capabilities) }
        for (pattern, capabilities) in wildcards {
            if pattern.isGlob {
                globPaths[String(pattern.text.dropLast())] = describe(capabilities)
            } else {
                exactPaths[pattern.text] = describe(capabilities)
            }
        }
        return ["exact_paths": .object(exactPaths), "glob_paths": .object(globPaths), "root": .bool(isRoot)]
    }
}
