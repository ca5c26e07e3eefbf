/// Mayfly's mounts: fixed, so `sys/mounts`, `sys/auth` and the UI mount preflight describe the
/// same table in Vault's mount-info shape, and enabling anything else is
/// refused with a message that names what exists.
enum MountTable {
    struct Mount {
        var path: String
        var type: String
        var description: String
        var options: JSONValue = .null
    }

    static let secrets: [Mount] = [
        Mount(path: "secret/", type: "kv", description: "key/value secret storage", options: ["version": "2"]),
        Mount(path: "database/", type: "database", description: "short-lived PostgreSQL credentials"),
        Mount(path: "sys/", type: "system", description: "system endpoints used for control, policy and debugging"),
    ]

    static let auth: [Mount] = [
        Mount(path: "token/", type: "token", description: "token based credentials"),
        Mount(path: "approle/", type: "approle", description: "machine logins with a role id and a secret id"),
        Mount(path: "cert/", type: "cert", description: "client certificates of an mTLS listener (bind stanzas)"),
    ]

    /// The secrets-engine mount that serves `path` (any path inside it).
    static func secretsMount(for path: some StringProtocol) -> Mount? {
        secrets.first { path.hasPrefix($0.path) || path + "/" == $0.path }
    }

    /// Vault's mount-info object for `mount`.
    static func info(_ mount: Mount, clusterID: String, withPath: Bool = false) -> JSONValue {
        var info: [String: JSONValue] = [
            "type": .string(mount.type), "description": .string(mount.description), "options": mount.options,
            "accessor": .string("\(mount.type)_\(clusterID.prefix(8))"),
            "config": ["default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false],
            "local": false, "seal_wrap": false, "external_entropy_access": false, "uuid": "",
            "plugin_version": "", "running_plugin_version": "", "running_sha256": "",
        ]
        if withPath { info["path"] = .string(mount.path) }
        return .object(info)
    }

    /// `sys/mounts[/:path]` and `sys/auth[/:path]`: the list, one mount, or a refused enable or
    /// disable (the mounts are part of the binary).
    static func handle(_ request: LogicalRequest, mounts: [Mount], kind: String, clusterID: String) throws -> LogicalResponse {
        let prefix = kind == "auth" ? "sys/auth" : "sys/mounts"
        let name = request.path.dropFirst(prefix.count).drop { $0 == "/" }
        let key = name.isEmpty || name.hasSuffix("/") ? String(name) : name + "/"
        switch (key.isEmpty, request.operation) {
        case (true, .read):
            var data: [String: JSONValue] = [:]
            for mount in mounts { data[mount.path] = info(mount, clusterID: clusterID) }
            return .envelope(Envelope(data: .object(data), injectData: true))
        case (false, .read):
            guard let mount = mounts.first(where: { $0.path == key }) else {
                throw APIError.badRequest("no \(kind == "auth" ? "auth method" : "secrets engine") mounted at \"\(APIError.clip(key))\"")
            }
            return .envelope(Envelope(data: info(mount, clusterID: clusterID), injectData: true))
        case (false, .update), (false, .delete):
            let fixed = mounts.map { "\($0.path) (\($0.type))" }.joined(separator: ", ")
            if request.operation == .update, mounts.contains(where: { $0.path == key }) {
                throw APIError.badRequest("path is already in use at \(APIError.clip(key))")
            }
            throw APIError.badRequest("Mayfly's \(kind == "auth" ? "auth methods" : "secrets engines") are fixed: \(fixed)")
        default:
            throw APIError.unsupportedOperation
        }
    }
}
