/// The one rule for handing out policies: nothing hands out more than its writer holds. Everything that attaches a policy
/// set to something that later yields a token — a token created now, a token role, an AppRole
/// role — asks this function, so no endpoint can hand out more than its writer holds:
///
/// - `root` is never attached to anything stored (a role would mint root tokens for whoever can
///   use it). Only a root token may create a token with `root`, as in Vault: it holds root already.
/// - `default` may always be attached (every token carries it anyway).
/// - Any other policy the writer does not hold needs `sudo` on the path being written (as a
///   policy write does): without it the writer could grant itself what it lacks.
enum PolicyGrant {
    /// What the policies are attached to.
    enum Target: Sendable {
        /// A token created by this request.
        case token
        /// A stored object that yields tokens later (token role, AppRole role).
        case storedRole
    }

    /// Throws 403 when `writer`, writing `path` (`sudo`: whether it holds sudo there), may not
    /// attach `policies` to `target`; the message names the first policy refused and why.
    static func check(_ policies: [String], writer: Caller, path: String, target: Target, field: String) throws {
        if policies.contains("root") {
            switch target {
            case .token where writer.acl.isRoot:
                break
            case .token:
                throw APIError(status: 403, ["permission denied: only a root token can create a token with the root policy"])
            case .storedRole:
                throw APIError(status: 403, ["permission denied: \(field) may not contain \"root\"; nothing stored may hand out root tokens"])
            }
        }
        if writer.acl.isRoot || writer.acl.hasSudo(on: path) { return }
        let held = Set(writer.policies)
        if let missing = policies.first(where: { $0 != "default" && $0 != "root" && !held.contains($0) }) {
            throw APIError(status: 403, [
                "permission denied: \(field) contains \"\(APIError.clip(missing))\", a policy the caller does not hold; handing it out needs sudo on \(APIError.clip(path))"
            ])
        }
    }
}
