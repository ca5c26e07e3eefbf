import Foundation
import Logging
import MayflyStore

/// `sys/mayfly/*`: the leak response (`revoke`), its records (`incidents`) and the exposure
/// report (`exposure`). Every path here needs `sudo`.
enum IncidentHandlers {
    static func handle(_ broker: Broker, _ request: LogicalRequest, _ caller: Caller) async throws -> LogicalResponse {
        let path = String(request.path.dropFirst("sys/mayfly/".count))
        switch (path, request.operation) {
        case ("revoke", .update):
            return try await revoke(broker, request, caller)
        case ("incidents", .list), ("incidents", .read), ("incidents/", .list):
            let ids = try await broker.incidents.ids()
            guard !ids.isEmpty else { throw APIError.notFound }
            var summaries: [String: JSONValue] = [:]
            for id in ids {
                guard let incident = try await broker.incidents.incident(id) else { continue }
                summaries[id] = [
                    "state": .string(incident.state.rawValue), "reason": .string(incident.reason),
                    "created_at": .string(time(incident.createdAt)), "requested_by": .string(incident.requestedBy),
                ]
            }
            return .envelope(Envelope(data: ["keys": .strings(ids), "key_info": .object(summaries)]))
        case (let rest, .read) where rest.hasPrefix("incidents/"):
            guard let incident = try await broker.incidents.incident(String(rest.dropFirst("incidents/".count))) else {
                throw APIError.notFound
            }
            return .envelope(Envelope(data: try report(incident)))
        case ("exposure", .read), ("exposure", .update):
            let report = try await exposure(broker, request)
            // A filter that matched nothing is said so: "nobody read it" must not be the
            // answer to a filter that was merely spelled differently.
            var warnings: [String] = []
            let empty = ["kv_reads", "static_credential_reads", "credentials"].allSatisfy { report[$0]?.arrayValue?.isEmpty != false }
            if empty, let prefix = report["path_prefix"]?.stringValue {
                warnings.append("nothing under \(prefix) was read or obtained in the window (the filter is matched on whole path segments)")
            } else if empty, let identity = request.data["identity"]?.stringValue, !identity.isEmpty {
                warnings.append("identity \(APIError.clip(identity)) read nothing and obtained nothing in the window")
            }
            return .envelope(Envelope(data: report, warnings: warnings))
        case ("revoke", _), ("incidents", _), ("exposure", _):
            throw APIError.unsupportedOperation
        default:
            throw APIError(status: 404, ["no handler for route \"\(APIError.clip(request.path))\". route entry not found."])
        }
    }

    static func time(_ seconds: Int64) -> String { Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval(seconds))) }

    private static let revokeFields: Set<String> = [
        "all", "database", "databases", "role", "roles", "identity", "identities", "lease", "lease_id", "lease_ids",
        "issued_after", "issued_before", "rotate", "tokens", "seal", "reason", "dry_run",
    ]

    private static func revoke(_ broker: Broker, _ request: LogicalRequest, _ caller: Caller) async throws -> LogicalResponse {
        let data = request.data
        if let unknown = data.keys.sorted().first(where: { !revokeFields.contains($0) }) {
            throw APIError.badRequest("unknown field \"\(APIError.clip(unknown))\"")
        }
        func flag(_ name: String) throws -> Bool { try JSONValue.flag(data[name], field: name) ?? false }
        func list(_ names: String...) throws -> [String] {
            var values: [String] = []
            for name in names { values += try DatabaseEngine.strings(data[name], field: name) ?? [] }
            return values
        }
        func instant(_ name: String) throws -> Int64? {
            guard let value = data[name], !value.isNull else { return nil }
            if let int = value.intValue { return int }
            guard let text = value.stringValue, let seconds = Timestamp.parse(text) else {
                throw APIError.badRequest("\(name) must be an RFC 3339 time (2026-11-25T10:00:00Z) or Unix seconds")
            }
            return Int64(seconds.rounded(.down))
        }
        var scope = IncidentScope()
        scope.all = try flag("all")
        scope.databases = try list("database", "databases")
        scope.roles = try list("role", "roles")
        scope.identities = try list("identity", "identities")
        scope.leaseIDs = try list("lease", "lease_id", "lease_ids")
        scope.issuedAfter = try instant("issued_after")
        scope.issuedBefore = try instant("issued_before")
        for name in scope.databases { try Names.validate(name, kind: "database") }
        for name in scope.roles { try Names.validate(name, kind: "role") }
        var actions = IncidentActions()
        actions.rotate = try flag("rotate")
        actions.tokens = try flag("tokens")
        actions.seal = try flag("seal")
        let dryRun = try flag("dry_run")
        var incident = try await broker.incidents.start(
            scope: scope, actions: actions, reason: data["reason"]?.stringValue ?? "", dryRun: dryRun, caller: caller)
        if actions.seal && !dryRun {
            incident = try await broker.incidents.markSealed(incident)
            broker.logger.notice("sealing at the end of an incident", metadata: ["incident": "\(incident.id)"])
            await broker.sealAll()
        }
        return .envelope(Envelope(data: try report(incident)))
    }

    /// The report as JSON (snake_case keys, times in RFC 3339).
    static func report(_ incident: Incident) throws -> JSONValue {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        guard case .object(var members) = fixKeys(try JSONValue.parse(Array(try encoder.encode(incident)))) else {
            throw APIError.internalError("incident report is not an object")
        }
        members["created_at"] = .string(time(incident.createdAt))
        members["updated_at"] = .string(time(incident.updatedAt))
        members["completed_at"] = incident.completedAt.map { .string(time($0)) } ?? .null
        members.removeValue(forKey: "caller_accessor")
        var totals: [String: Int64] = [:]
        for report in incident.databases.values {
            totals["credentials_revoked", default: 0] += Int64(report.credentialsRevoked)
            totals["credentials_pending", default: 0] += Int64(report.credentialsPending)
            totals["sessions_terminated", default: 0] += Int64(report.sessionsTerminated)
            totals["passwords_rotated", default: 0] += Int64(report.passwordsRotated)
        }
        members["totals"] = .object(totals.mapValues { .int($0) })
        return .object(members)
    }

    /// `convertToSnakeCase` turns `leaseIDs` into `lease_i_ds`; this makes it `lease_ids`.
    private static func fixKeys(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let members):
            var fixed: [String: JSONValue] = [:]
            for (key, item) in members { fixed[key.replacingOccurrences(of: "_i_ds", with: "_ids")] = fixKeys(item) }
            return .object(fixed)
        case .array(let items): return .array(items.map(fixKeys))
        default: return value
        }
    }

    private static func exposure(_ broker: Broker, _ request: LogicalRequest) async throws -> JSONValue {
        func value(_ name: String) -> String? {
            request.data[name].flatMap { $0.stringValue ?? $0.intValue.map(String.init) }.flatMap { $0.isEmpty ? nil : $0 }
        }
        guard let sinceText = value("since") else {
            throw APIError.badRequest("since is required (RFC 3339 time or Unix seconds)")
        }
        guard let since = Timestamp.parse(sinceText) else { throw APIError.badRequest("since must be an RFC 3339 time or Unix seconds") }
        var until: Int64?
        if let text = value("until") {
            guard let parsed = Timestamp.parse(text) else { throw APIError.badRequest("until must be an RFC 3339 time or Unix seconds") }
            until = Int64(parsed.rounded(.up))
            guard parsed >= since else { throw APIError.badRequest("until must not be before since") }
        }
        let identity = try value("identity").map(IdentityName.canonical)
        return try await ExposureReport.build(
            ExposureReport.Query(since: Int64(since.rounded(.down)), until: until, identity: identity, path: value("path")),
            auditPath: broker.audit.file?.path, leases: broker.storage, now: broker.clock.seconds())
    }
}
