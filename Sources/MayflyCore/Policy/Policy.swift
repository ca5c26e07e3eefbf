import MayflyHCL

/// One `path "<pattern>" { capabilities = [...] }` rule.
public struct PathRule: Sendable, Equatable {
    /// Exact path, `prefix*` glob, and `+` single-segment wildcards (no leading `/`).
    public var pattern: String
    public var capabilities: Set<Capability>
    /// Line of the rule in its source.
    public var line: Int
}

/// A named ACL policy in Vault's syntax (HCL or JSON).
public struct Policy: Sendable, Equatable {
    public var name: String
    public var rules: [PathRule]

    public init(name: String, rules: [PathRule]) {
        self.name = name
        self.rules = rules
    }

    /// The marker policy that grants everything (never parsed from text).
    public static let root = Policy(name: "root", rules: [])

    /// Keys a path block may carry besides its capabilities (accepted, not enforced).
    static let ignoredKeys: Set<String> = [
        "allowed_parameters", "denied_parameters", "required_parameters", "min_wrapping_ttl", "max_wrapping_ttl",
    ]

    /// Legacy `policy = "…"` values.
    static let legacy: [String: Set<Capability>] = [
        "deny": [.deny],
        "read": [.read, .list],
        "write": [.create, .read, .update, .delete, .list, .patch],
        "sudo": [.create, .read, .update, .delete, .list, .patch, .sudo],
    ]

    /// Parses HCL (or JSON, when the text starts with `{`). Errors name the policy and line.
    public static func parse(name: String, text: String) throws(PolicyError) -> Policy {
        let members: [HCLMember]
        do {
            members = try HCL.parseAny(text)
        } catch {
            throw PolicyError(policy: name, line: error.line, error.message)
        }
        var rules: [PathRule] = []
        for member in members {
            guard member.key == "path" else {
                throw PolicyError(policy: name, line: member.line, "unknown key \"\(member.key)\" (expected path \"…\" { … })")
            }
            var blocks: [HCLValue] = [member.value]
            if case .list(let items) = member.value { blocks = items }
            for block in blocks {
                guard case .object(let patterns) = block, !patterns.isEmpty else {
                    throw PolicyError(policy: name, line: member.line, "path needs a pattern: path \"secret/*\" { … }")
                }
                for entry in patterns {
                    rules.append(try rule(entry, policy: name))
                }
            }
        }
        // The same pattern twice in one policy: capabilities add up.
        var merged: [PathRule] = []
        for rule in rules {
            if let index = merged.firstIndex(where: { $0.pattern == rule.pattern }) {
                merged[index].capabilities.formUnion(rule.capabilities)
            } else {
                merged.append(rule)
            }
        }
        return Policy(name: name, rules: merged)
    }

    private static func rule(_ entry: HCLMember, policy: String) throws(PolicyError) -> PathRule {
        func fail(_ line: Int, _ message: String) -> PolicyError { PolicyError(policy: policy, line: line, message) }
        var pattern = entry.key
        while pattern.hasPrefix("/") { pattern.removeFirst() }
        guard !pattern.isEmpty else { throw fail(entry.line, "empty path pattern") }
        if let star = pattern.firstIndex(of: "*"), star != pattern.index(before: pattern.endIndex) {
            throw fail(entry.line, "path \"\(entry.key)\": '*' is only allowed at the end")
        }
        guard case .object(let body) = entry.value else {
            throw fail(entry.line, "path \"\(entry.key)\" must be a block { capabilities = [...] }")
        }
        var capabilities: Set<Capability> = []
        var named = false
        for item in body {
            switch item.key {
            case "capabilities":
                guard case .list(let values) = item.value else {
                    throw fail(item.line, "capabilities must be a list of strings, not \(item.value.typeName)")
                }
                for value in values {
                    guard let text = value.stringValue else {
                        throw fail(item.line, "capabilities must be a list of strings, not \(value.typeName)")
                    }
                    guard let capability = Capability(rawValue: text) else {
                        throw fail(item.line, "unknown capability \"\(text)\"")
                    }
                    capabilities.insert(capability)
                }
                named = true
            case "policy":
                guard let text = item.value.stringValue, let granted = legacy[text] else {
                    throw fail(item.line, "policy must be one of deny, read, write, sudo")
                }
                capabilities.formUnion(granted)
                named = true
            case let key where ignoredKeys.contains(key):
                continue
            default:
                throw fail(item.line, "unknown key \"\(item.key)\" in path \"\(entry.key)\"")
            }
        }
        guard named else { throw fail(entry.line, "path \"\(entry.key)\" needs capabilities = [...]") }
        return PathRule(pattern: pattern, capabilities: capabilities, line: entry.line)
    }
}
