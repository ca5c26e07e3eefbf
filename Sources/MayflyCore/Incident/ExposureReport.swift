import Foundation
import MayflyStore

/// `mayfly incident exposure`: who could have read what in a time window. KV reads and
/// static-credential reads come from the audit log (successful reads only); dynamic
/// credentials from the lease table, with whether each is still live. The KV secrets listed
/// are the ones an operator must change by hand.
struct ExposureReport {
    struct Query: Sendable {
        var since: Int64
        var until: Int64?
        /// Canonical identity, or nil for everyone.
        var identity: String?
        /// A path prefix in any of the forms people type: `secret/data/app`, `secret/app` (what
        /// `kv` commands take), `app` (no mount), `database/creds/ROLE`, `database/static-creds/NAME`.
        var path: String?
    }

    /// The audit-log prefix `filter` means, on whole segments: KV paths without the mount or in
    /// the `kv` form (`secret/app`) become `secret/data/app`; others are taken as given.
    static func prefix(_ filter: String?) -> String? {
        guard let filter else { return nil }
        let segments = filter.split(separator: "/", omittingEmptySubsequences: true)
        guard let first = segments.first else { return nil }
        let joined = segments.joined(separator: "/")
        switch first {
        case "database", "sys", "auth": return joined
        case "secret":
            if segments.count > 1, segments[1] == "data" { return joined }
            let rest = segments.dropFirst().first.map { ["metadata", "delete", "undelete", "destroy"].contains($0) } == true
                ? segments.dropFirst(2) : segments.dropFirst()
            return (["secret", "data"] + rest).joined(separator: "/")
        default: return "secret/data/" + joined
        }
    }

    static let note = "Mayfly cannot change KV secrets: every path under kv_reads was readable by the listed identities in the window; change those secrets by hand. Live credentials are revoked with `mayfly revoke`."

    static func build(_ query: Query, auditPath: String?, leases: any LeaseStorage, now: Int64) async throws -> JSONValue {
        guard let auditPath else {
            throw APIError.badRequest("no audit device is enabled: exposure is reconstructed from the audit log")
        }
        let until = query.until ?? Int64.max
        let wanted = Self.prefix(query.path)
        var reads: [String: (count: Int, first: String, last: String)] = [:]
        var staticReads: [String: (count: Int, last: String)] = [:]
        try forEachLine(auditPath) { line in
            guard case .object(let entry) = line, entry["type"]?.stringValue == "response",
                case .object(let request)? = entry["request"], let path = request["path"]?.stringValue,
                request["operation"]?.stringValue == "read",
                case .object(let response)? = entry["response"], response["status"]?.intValue == 200,
                let timeText = entry["time"]?.stringValue, let time = Timestamp.parse(timeText),
                Int64(time) >= query.since, Int64(time) < until
            else { return }
            let auth = entry["auth"]?.objectValue ?? [:]
            let identity = auth["identity"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
                ?? request["identity"]?.stringValue ?? auth["display_name"].flatMap(\.stringValue).map { "token:" + $0 } ?? "unknown"
            if let wanted = query.identity, identity != wanted { return }
            guard matches(path, wanted) else { return }
            if path.hasPrefix("secret/data/") {
                let key = identity + "\u{0}" + path
                let seen = reads[key]
                reads[key] = ((seen?.count ?? 0) + 1, seen?.first ?? timeText, timeText)
            } else if path.hasPrefix("database/static-creds/") {
                let key = identity + "\u{0}" + path
                staticReads[key] = ((staticReads[key]?.count ?? 0) + 1, timeText)
            }
        }
        var credentials: [JSONValue] = []
        // Leases are `database/creds/ROLE/ID`: a filter at or below `database/creds` can match.
        if wanted == nil || matches(wanted!, "database/creds") || matches(wanted!, "database") {
            var after: String?
            let filter = LeaseFilter(identities: query.identity.map { [$0] } ?? [], issuedAfter: query.since,
                                     issuedBefore: query.until)
            while true {
                let page = try await leases.leases(matching: filter, after: after, limit: 1000)
                guard let last = page.last else { break }
                after = last.id
                for lease in page where matches(lease.id, wanted) {
                    let live = (lease.state == .active && lease.expiresAt > now) || lease.state == .pending
                        || lease.state == .revoking
                    credentials.append([
                        "identity": .string(lease.identity), "lease_id": .string(lease.id),
                        "database": .string(lease.database), "role": .string(lease.role), "username": .string(lease.username),
                        "issued_at": .string(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval(lease.issuedAt)))),
                        "state": .string(lease.state.rawValue), "live": .bool(live),
                    ])
                }
            }
        }
        func split(_ key: String) -> (String, String) {
            let parts = key.split(separator: "\u{0}", maxSplits: 1).map(String.init)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }
        let kv: [JSONValue] = reads.keys.sorted().map { key in
            let (identity, path) = split(key)
            let read = reads[key]!
            return ["identity": .string(identity), "path": .string(path), "reads": .int(Int64(read.count)),
                    "first_read": .string(read.first), "last_read": .string(read.last)]
        }
        let statics: [JSONValue] = staticReads.keys.sorted().map { key in
            let (identity, path) = split(key)
            return ["identity": .string(identity), "path": .string(path), "reads": .int(Int64(staticReads[key]!.count)),
                    "last_read": .string(staticReads[key]!.last)]
        }
        var identities = Set<String>()
        for item in kv + statics + credentials { if let name = item["identity"]?.stringValue { identities.insert(name) } }
        return [
            "since": .string(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval(query.since)))),
            "until": query.until.map { .string(Timestamp.rfc3339(Date(timeIntervalSince1970: TimeInterval($0)))) } ?? .null,
            "identities": .strings(identities.sorted()), "kv_reads": .array(kv), "static_credential_reads": .array(statics),
            "path_prefix": wanted.map { .string($0) } ?? .null, "credentials": .array(credentials),
            "live_credentials": .int(Int64(credentials.filter { $0["live"]?.boolValue == true }.count)),
            "note": .string(note),
        ]
    }

    /// Whether `path` is `prefix` or below it, on whole segments (`secret/data/app` is not
    /// under `secret/data/ap`).
    static func matches(_ path: String, _ prefix: String?) -> Bool {
        guard let prefix, !prefix.isEmpty else { return true }
        return path == prefix || path.hasPrefix(prefix.hasSuffix("/") ? prefix : prefix + "/")
    }

    /// Calls `body` with each JSON line of the file at `path` (lines that do not parse are skipped).
    private static func forEachLine(_ path: String, _ body: (JSONValue) -> Void) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw APIError.internalError("cannot read the audit log \(path)")
        }
        defer { try? handle.close() }
        var pending: [UInt8] = []
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            pending.append(contentsOf: chunk)
            var start = 0
            while let newline = pending[start...].firstIndex(of: 10) {
                if let value = try? JSONValue.parse(pending[start..<newline]) { body(value) }
                start = newline + 1
            }
            pending.removeFirst(start)
        }
        if !pending.isEmpty, let value = try? JSONValue.parse(pending) { body(value) }
    }
}
