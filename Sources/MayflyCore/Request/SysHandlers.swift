import Foundation
import MayflyCrypto
import MayflyStore

/// `sys/` routes: health and seal status (unauthenticated, bare JSON), init, unseal, seal,
/// keyring rotation and key status, capabilities, and the mount preflight.
enum SysHandlers {
    private static func requireOperation(_ request: LogicalRequest, _ allowed: Operation...) throws {
        guard allowed.contains(request.operation) else { throw APIError.unsupportedOperation }
    }

    static func health(_ broker: Broker, _ request: LogicalRequest) async throws -> LogicalResponse {
        try requireOperation(request, .read, .head)
        func code(_ name: String, _ fallback: Int) throws -> Int {
            guard let raw = request.query[name] else { return fallback }
            guard let value = Int(raw), (100...599).contains(value) else {
                throw APIError.badRequest("bad code value for \(name): \(raw)")
            }
            return value
        }
        for flag in ["standbyok", "perfstandbyok"] {
            if let raw = request.query[flag], !["", "1", "0", "t", "f", "true", "false", "T", "F", "TRUE", "FALSE", "True", "False"].contains(raw) {
                throw APIError.badRequest("bad value for \(flag) parameter: \(raw)")
            }
        }
        let active = try code("activecode", 200)
        let sealedCode = try code("sealedcode", 503)
        let uninit = try code("uninitcode", 501)
        // A standby answers 429 (Vault's code) unless told otherwise, or 200 with standbyok.
        let standbyOK = request.query["standbyok"].map { ["", "1", "t", "T", "true", "TRUE", "True"].contains($0) } ?? false
        let standbyCode = standbyOK ? active : try code("standbycode", 429)
        for name in ["drsecondarycode", "performancestandbycode", "removedcode", "haunhealthycode"] {
            _ = try code(name, 0)
        }
        let status = await broker.seal.status
        let standby = broker.ha.map { !$0.isLeaderNow } ?? false
        let httpStatus = !status.initialized ? uninit : (status.sealed ? sealedCode : (standby ? standbyCode : active))
        var body: [String: JSONValue] = [
            "initialized": .bool(status.initialized), "sealed": .bool(status.sealed), "standby": .bool(standby),
            "performance_standby": false, "replication_performance_mode": "disabled",
            "replication_dr_mode": "disabled", "server_time_utc": .int(broker.clock.seconds()),
            "version": .string(Broker.version), "enterprise": false, "echo_duration_ms": 0, "clock_skew_ms": 0,
        ]
        if !status.sealed {
            body["cluster_name"] = "mayfly"
            body["cluster_id"] = .string(broker.clusterID)
        }
        return .bare(.object(body), status: httpStatus)
    }

    static func sealStatusBody(_ broker: Broker) async -> JSONValue {
        let status = await broker.seal.status
        var body: [String: JSONValue] = [
            "type": .string(status.type), "initialized": .bool(status.initialized), "sealed": .bool(status.sealed),
            "t": .int(Int64(status.threshold)), "n": .int(Int64(status.shares)), "progress": .int(Int64(status.progress)),
            "nonce": .string(status.nonce), "version": .string(Broker.version), "build_date": "",
            "migration": false, "recovery_seal": false,
            "storage_type": .string(broker.config.postgresStorage == nil ? "sqlite" : "postgresql"),
        ]
        if !status.sealed {
            body["cluster_name"] = "mayfly"
            body["cluster_id"] = .string(broker.clusterID)
        }
        return .object(body)
    }

    static func sealStatus(_ broker: Broker, _ request: LogicalRequest) async throws -> LogicalResponse {
        try requireOperation(request, .read)
        return .bare(await sealStatusBody(broker))
    }

    static func leader(_ broker: Broker, _ request: LogicalRequest) async throws -> LogicalResponse {
        try requireOperation(request, .read)
        guard await broker.seal.isInitialized else { throw APIError.sealed }
        guard let ha = broker.ha else {
            return .bare([
                "ha_enabled": false, "is_self": false, "active_time": "0001-01-01T00:00:00Z", "leader_address": "",
                "leader_cluster_address": "", "performance_standby": false,
                "performance_standby_last_remote_wal": 0,
            ])
        }
        let status = ha.status
        let lock = status.lock.flatMap { $0.live ? $0 : nil }
        return .bare([
            "ha_enabled": true, "is_self": .bool(ha.isLeaderNow),
            "active_time": .string(status.since.map { Timestamp.rfc3339($0) } ?? "0001-01-01T00:00:00Z"),
            "leader_address": .string(lock?.apiAddress ?? ""), "leader_cluster_address": .string(lock?.address ?? ""),
            "leader_node": .string(lock.map { HACoordinator.nodeID(ofHolder: $0.node) } ?? ""),
            "leader_term": .int(lock?.term ?? 0),
            "performance_standby": false, "performance_standby_last_remote_wal": 0,
        ])
    }

    /// `sys/ha-status` (Vault's shape, as `bao operator members` reads it): every node that
    /// reported within the last hour, with Mayfly's role, term and heartbeat age beside.
    static func haStatus(_ broker: Broker) async throws -> LogicalResponse {
        guard let ha = broker.ha else { throw APIError.badRequest("high availability is not enabled on this node (ha_enabled in storage \"postgresql\")") }
        let now = broker.clock.now()
        // The leader is the node the live lock names in its term; a node silent for longer than
        // the lock's TTL is gone (it may still hold an old term in its last report).
        let lock = try await ha.leaderLock().flatMap { $0.live ? $0 : nil }
        let nodes: [JSONValue] = try await ha.members().filter { $0.secondsSinceHeartbeat < 3600 }.map { member in
            let active = member.role == "leader" && lock.map { $0.node == member.holder && $0.term == member.term } == true
            let echo = now.addingTimeInterval(-member.secondsSinceHeartbeat)
            return [
                "hostname": .string(member.node), "api_address": .string(member.apiAddress),
                "cluster_address": .string(member.address), "active_node": .bool(active),
                "last_echo": active ? .null : .string(Timestamp.rfc3339(echo)),
                "version": .string(member.version), "upgrade_version": .string(member.version), "redundancy_zone": "",
                "term": .int(member.term), "heartbeat_age_seconds": .double((member.secondsSinceHeartbeat * 10).rounded() / 10),
                "live": .bool(active || member.secondsSinceHeartbeat < ha.config.lockTTL + 1),
            ]
        }
        return .envelope(Envelope(data: ["nodes": .array(nodes)], injectData: true))
    }

    static func initialize(_ broker: Broker, _ request: LogicalRequest) async throws -> LogicalResponse {
        if request.operation == .read {
            return .bare(["initialized": .bool(await broker.seal.isInitialized)])
        }
        try requireOperation(request, .update)
        for field in ["pgp_keys", "recovery_pgp_keys"] {
            if let value = request.data[field], !value.isNull, value.arrayValue?.isEmpty == false {
                throw APIError.badRequest("\(field) is not supported")
            }
        }
        if let value = request.data["root_token_pgp_key"], let text = value.stringValue, !text.isEmpty {
            throw APIError.badRequest("root_token_pgp_key is not supported")
        }
        func integer(_ name: String, _ fallback: Int) throws -> Int {
            guard let value = request.data[name], !value.isNull else { return fallback }
            guard let int = value.intValue, int >= 0, int <= 1000 else {
                throw APIError.badRequest("\(name) must be a small non-negative integer")
            }
            return Int(int)
        }
        let shares = try integer("secret_shares", 5)
        let threshold = try integer("secret_threshold", 3)
        let result: SealManager.InitResult
        if case .keyFile = broker.config.seal {
            result = try await broker.seal.initialize(shares: 0, threshold: 0)
        } else {
            result = try await broker.seal.initialize(shares: shares, threshold: threshold)
        }
        return .bare([
            "keys": .strings(result.shares.map { Hex.encode($0) }),
            "keys_base64": .strings(result.shares.map { Base64.encode($0) }),
            "root_token": .string(result.rootToken),
        ])
    }

    static func unseal(_ broker: Broker, _ request: LogicalRequest) async throws -> LogicalResponse {
        try requireOperation(request, .update)
        // Field names are matched case-insensitively, like Vault's untagged Go struct.
        let fields = Dictionary(request.data.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { a, _ in a })
        if try JSONValue.flag(fields["reset"], field: "reset") == true {
            guard await broker.seal.isSealed else { throw APIError.badRequest("vault is unsealed") }
            await broker.seal.resetProgress()
            return .bare(await sealStatusBody(broker))
        }
        guard let keyValue = fields["key"], let key = keyValue.stringValue, !key.isEmpty else {
            throw APIError.badRequest("'key' must be specified in request body as JSON, or 'reset' set to true")
        }
        guard let share = decodeShare(key) else { throw APIError.badRequest("unseal failed, invalid key") }
        _ = try await broker.seal.submit(share: share)
        return .bare(await sealStatusBody(broker))
    }

    /// A share as hex (tried first when it has a plausible length) or base64.
    static func decodeShare(_ text: String) -> [UInt8]? {
        if text.count % 2 == 0, (34...514).contains(text.count), let bytes = Hex.decode(text) { return bytes }
        return Base64.decode(text)
    }

    /// Mount preflight (`sys/internal/ui/mounts/:path`) used by `vault kv` and Vault Agent.
    static func mountInfo(_ broker: Broker, _ request: LogicalRequest, _ caller: Caller) throws -> LogicalResponse {
        try requireOperation(request, .read)
        let target = request.path.dropFirst("sys/internal/ui/mounts".count).drop { $0 == "/" }
        if target.isEmpty {
            // Every mount the caller can reach something under (the system mount only for root:
            // every token reaches a few sys/ paths through the default policy, which tells it
            // nothing worth listing).
            var secrets: [String: JSONValue] = [:], auth: [String: JSONValue] = [:]
            for mount in MountTable.secrets where caller.acl.hasAnyAccess(under: mount.path)
                && (mount.type != "system" || caller.acl.isRoot)
            {
                secrets[mount.path] = MountTable.info(mount, clusterID: broker.clusterID)
            }
            for mount in MountTable.auth where caller.acl.hasAnyAccess(under: "auth/" + mount.path) {
                auth[mount.path] = MountTable.info(mount, clusterID: broker.clusterID)
            }
            return .envelope(Envelope(data: ["secret": .object(secrets), "auth": .object(auth)]))
        }
        // As Vault: a path under no mount gets the same 403 as a mount the caller cannot use, so
        // this route cannot be used to probe for mounts.
        guard let mount = MountTable.secretsMount(for: target), mount.type != "system", caller.acl.hasAnyAccess(under: mount.path) else {
            let shown = MountTable.secretsMount(for: target)?.path ?? String(target)
            throw APIError(status: 403, [
                "preflight capability check returned 403, please ensure client's policies grant access to path \"\(APIError.clip(shown))\""
            ])
        }
        return .envelope(Envelope(data: MountTable.info(mount, clusterID: broker.clusterID, withPath: true)))
    }

    /// `sys/audit[/:path]`: the audit device of the config file; enabling or disabling one
    /// through the API is refused (it is part of the config, so it cannot be turned off quietly).
    static func audit(_ broker: Broker, _ request: LogicalRequest) throws -> LogicalResponse {
        let name = request.path.dropFirst("sys/audit".count).drop { $0 == "/" }
        guard name.isEmpty else {
            guard request.operation == .update || request.operation == .delete else { throw APIError.unsupportedOperation }
            throw APIError.badRequest("audit devices are set in the config file: audit \"file\" { path = \"…\" }")
        }
        try requireOperation(request, .read)
        var data: [String: JSONValue] = [:]
        if let path = broker.config.auditPath {
            data["file/"] = [
                "type": "file", "description": "hash-chained JSON lines", "options": ["file_path": .string(path)],
                "local": false, "path": "file/",
            ]
        }
        return .envelope(Envelope(data: .object(data), injectData: true))
    }

    /// Authenticated `sys/` routes.
    static func handle(_ broker: Broker, _ request: LogicalRequest, _ caller: Caller) async throws -> LogicalResponse {
        switch request.path {
        case "sys/seal":
            // `Broker.perform` seals once the response is on the audit record.
            try requireOperation(request, .update)
            return .noContent
        case "sys/rotate":
            try requireOperation(request, .update)
            let status = try await broker.seal.rotate()
            try await broker.rewrapper.start(now: broker.scheduler.clock.seconds())
            return try await keyStatusResponse(status, broker)
        case "sys/key-status":
            try requireOperation(request, .read)
            return try await keyStatusResponse(try await broker.seal.keyStatus(), broker)
        case "sys/ha-status":
            try requireOperation(request, .read)
            return try await haStatus(broker)
        case let path where path == "sys/mounts" || path.hasPrefix("sys/mounts/"):
            return try MountTable.handle(request, mounts: MountTable.secrets, kind: "secrets", clusterID: broker.clusterID)
        case let path where path == "sys/auth" || path.hasPrefix("sys/auth/"):
            return try MountTable.handle(request, mounts: MountTable.auth, kind: "auth", clusterID: broker.clusterID)
        case let path where path == "sys/audit" || path.hasPrefix("sys/audit/"):
            return try audit(broker, request)
        case let path where path.hasPrefix("sys/audit-hash/"):
            try requireOperation(request, .update)
            guard path == "sys/audit-hash/file" else { throw APIError.badRequest("unknown audit device; the device is \"file\"") }
            guard let input = request.data["input"]?.stringValue else { throw APIError.badRequest("input is required") }
            return .envelope(Envelope(data: ["hash": .string(try broker.audit.hash(input))], injectData: true))
        case "sys/capabilities-self":
            try requireOperation(request, .update)
            var paths: [String] = []
            if let list = request.data["paths"]?.arrayValue {
                paths = list.compactMap(\.stringValue)
            } else if let one = request.data["path"]?.stringValue ?? request.data["paths"]?.stringValue {
                paths = [one]
            }
            guard !paths.isEmpty else { throw APIError.badRequest("paths must be supplied") }
            var data: [String: JSONValue] = [:]
            var all: [String] = []
            for path in paths {
                let names = caller.acl.capabilitiesForDisplay(path)
                data[path] = .strings(names)
                all.append(contentsOf: names)
            }
            data["capabilities"] = .strings(Array(Set(all)).sorted())
            return .envelope(Envelope(data: .object(data), injectData: true))
        default:
            throw APIError(status: 404, ["no handler for route \"\(APIError.clip(request.path))\". route entry not found."])
        }
    }

    private static func keyStatusResponse(_ status: KeyStatus, _ broker: Broker) async throws -> LogicalResponse {
        var data: [String: JSONValue] = [
            "term": .int(Int64(status.term)), "install_time": .string(Timestamp.rfc3339(status.installTime)),
            "encryptions": .int(Int64(status.encryptions)),
        ]
        // Mayfly's addition: progress of moving old entries to the newest term.
        if let rewrap = try await broker.rewrapper.progress() {
            data["rewrap"] = [
                "target_term": .int(Int64(rewrap.targetTerm)), "entries_moved": .int(Int64(rewrap.rewrapped)),
                "state": rewrap.finishedAt == nil ? "running" : "finished",
                "started_at": .string(IncidentHandlers.time(rewrap.startedAt)),
                "finished_at": rewrap.finishedAt.map { .string(IncidentHandlers.time($0)) } ?? .null,
            ]
        } else {
            data["rewrap"] = ["state": "idle"]
        }
        return .envelope(Envelope(data: .object(data), injectData: true))
    }
}

extension Broker {
    /// A stable, non-secret id for this store (derived from the storage path).
    var clusterID: String {
        let hash = KeyedHash.sha256(Array(("mayfly-cluster:" + config.storeIdentity).utf8))
        let hex = Hex.encode(hash.prefix(16))
        let parts = [hex.prefix(8), hex.dropFirst(8).prefix(4), hex.dropFirst(12).prefix(4), hex.dropFirst(16).prefix(4), hex.dropFirst(20)]
        return parts.joined(separator: "-")
    }
}
