import MayflyStore

/// `sys/leases/*` and the legacy `sys/renew`, `sys/revoke`, `sys/revoke-prefix`,
/// `sys/revoke-force`, with Vault's bodies and answers.
enum LeaseHandlers {
    enum Route {
        case lookup(prefix: String?)
        case renew(id: String?)
        case revoke(id: String?)
        case revokePrefix(String)
        case revokeForce(String)
    }

    static func route(_ path: String) -> Route? {
        let rest: Substring
        if path.hasPrefix("sys/leases/") {
            rest = path.dropFirst("sys/leases/".count)
        } else if path.hasPrefix("sys/renew") || path.hasPrefix("sys/revoke") {
            rest = path.dropFirst("sys/".count)
        } else {
            return nil
        }
        func tail(_ name: String) -> String?? {
            if rest == Substring(name) { return .some(nil) }
            if rest.hasPrefix(name + "/") { return .some(String(rest.dropFirst(name.count + 1))) }
            return nil
        }
        if let id = tail("lookup") { return .lookup(prefix: id) }
        if let id = tail("renew") { return .renew(id: id) }
        if let prefix = tail("revoke-prefix") { return .revokePrefix(prefix ?? "") }
        if let prefix = tail("revoke-force") { return .revokeForce(prefix ?? "") }
        if let id = tail("revoke") { return .revoke(id: id) }
        return nil
    }

    static func handle(_ broker: Broker, _ request: LogicalRequest, _ route: Route, _ caller: Caller) async throws
        -> LogicalResponse
    {
        let leases = broker.leases
        func leaseID(_ fromPath: String?) throws -> String {
            if let id = request.data["lease_id"]?.stringValue, !id.isEmpty { return id }
            if let fromPath, !fromPath.isEmpty { return fromPath }
            throw APIError.badRequest("lease_id must be specified")
        }
        func sync() throws -> Bool { try JSONValue.flag(request.data["sync"], field: "sync") ?? true }
        switch (route, request.operation) {
        case (.lookup(let prefix), .list):
            return try await leases.list(prefix ?? "")
        case (.lookup(let id), .update), (.lookup(let id), .read):
            let sudo = caller.acl.hasSudo(on: "sys/leases/lookup")
            return try await leases.lookup(try leaseID(id)) { sudo || ($0.identity == caller.identityName && !$0.identity.isEmpty) }
        case (.renew(let id), .update):
            let lease = try leaseID(id)
            if lease.hasPrefix("auth/") { throw APIError.badRequest("tokens cannot be renewed through this endpoint") }
            return try await leases.renew(lease, increment: try DurationParser.seconds(request.data["increment"], field: "increment"))
        case (.revoke(let id), .update):
            return try await leases.revoke(try leaseID(id), sync: try sync())
        case (.revokePrefix(let prefix), .update):
            return try await leases.revokePrefix(prefix, force: false)
        case (.revokeForce(let prefix), .update):
            return try await leases.revokePrefix(prefix, force: true)
        default:
            throw APIError.unsupportedOperation
        }
    }
}
