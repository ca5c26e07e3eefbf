import Foundation

/// The KV version 2 secrets engine at one mount, with Vault's wire behaviour (`data/`,
/// `metadata/`, `delete/`, `undelete/`, `destroy/`, `config`). Storage layout under `kv/<mount>/`: `meta/<path>` (KVMetadata), `version/<n>/<path>`
/// (the data of version n) and `config`. Writes to one secret are serialised, so check-and-set
/// is atomic; the version and its metadata are committed together.
public final class KVEngine: Sendable {
    /// The mount path without slash, e.g. `secret`.
    public let mount: String
    private let barrier: Barrier
    private let locks = KeyedLock()
    private static let defaultMaxVersions: Int64 = 10

    /// The wall clock of version times (the broker's).
    private let clock: any WallClock

    init(mount: String, barrier: Barrier, clock: any WallClock = SystemClock()) {
        self.clock = clock
        self.mount = mount
        self.barrier = barrier
    }

    private var root: String { "kv/\(mount)/" }
    private func metaPath(_ path: String) -> String { root + "meta/" + path }
    private func versionPath(_ path: String, _ version: Int64) -> String { root + "version/\(version)/" + path }

    // MARK: - Routing

    /// Handles a request whose path is relative to the mount (e.g. `data/app/db`).
    func handle(_ request: LogicalRequest, relativePath: String) async throws -> LogicalResponse {
        let (section, rest) = RequestPath.splitFirst(relativePath)
        switch (section, request.operation) {
        case ("config", .read) where rest.isEmpty: return try await readConfig()
        case ("config", .update) where rest.isEmpty: return try await writeConfig(request.data)
        case ("data", .read): return try await read(try Self.secretPath(rest), request: request)
        case ("data", .update): return try await write(try Self.secretPath(rest), request.data)
        case ("data", .patch): return try await patch(try Self.secretPath(rest), request.data)
        case ("data", .delete): return try await deleteLatest(try Self.secretPath(rest))
        case ("metadata", .list): return try await list(rest)
        case ("metadata", .read): return try await readMetadata(try Self.secretPath(rest))
        case ("metadata", .update): return try await writeMetadata(try Self.secretPath(rest), request.data)
        case ("metadata", .delete): return try await deleteAll(try Self.secretPath(rest))
        case ("delete", .update): return try await setDeleted(try Self.secretPath(rest), request.data, deleted: true)
        case ("undelete", .update): return try await setDeleted(try Self.secretPath(rest), request.data, deleted: false)
        case ("destroy", .update): return try await destroy(try Self.secretPath(rest), request.data)
        case ("config", _), ("data", _), ("metadata", _), ("delete", _), ("undelete", _), ("destroy", _):
            throw APIError.unsupportedOperation
        default:
            throw APIError.unsupportedPath(relativePath)
        }
    }

    /// Validates a secret path: non-empty, no empty, `.` or `..` segments, bounded length.
    static func secretPath(_ path: String) throws -> String {
        var trimmed = Substring(path)
        while trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard !trimmed.isEmpty else { throw APIError.badRequest("missing secret path") }
        guard trimmed.utf8.count <= 1024 else { throw APIError.badRequest("secret path is longer than 1024 bytes") }
        let segments = trimmed.split(separator: "/", omittingEmptySubsequences: false)
        guard !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw APIError.badRequest("invalid secret path: empty, '.' or '..' segment")
        }
        guard !trimmed.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw APIError.badRequest("invalid secret path: control character")
        }
        return String(trimmed)
    }

    // MARK: - Storage helpers

    private func loadMetadata(_ path: String) async throws -> KVMetadata? {
        try await barrier.get(metaPath(path), decodedBy: KVMetadata.decode)
    }

    private func loadConfig() async throws -> KVConfig {
        guard let bytes = try await barrier.get(root + "config") else { return KVConfig() }
        return try Self.decoder.decode(KVConfig.self, from: Data(bytes))
    }

    private static let decoder = JSONDecoder()
    private static func encode(_ value: some Encodable) throws -> [UInt8] { [UInt8](try JSONEncoder().encode(value)) }

    private func now() -> (Date, String) {
        let date = clock.now()
        return (date, Timestamp.rfc3339(date))
    }

    /// True when the version has a deletion time in the past or was destroyed.
    private static func isGone(_ version: KVMetadata.Version, now: Date) -> Bool {
        if version.destroyed { return true }
        guard !version.deletionTime.isEmpty, let when = Self.parseTime(version.deletionTime) else { return false }
        return when <= now
    }

    static func parseTime(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        // ISO8601DateFormatter takes at most milliseconds; trim the nanoseconds.
        var trimmed = text
        if let dot = text.firstIndex(of: "."), let z = text.lastIndex(of: "Z") {
            let fraction = text[text.index(after: dot)..<z].prefix(3)
            trimmed = String(text[..<dot]) + "." + fraction.padding(toLength: 3, withPad: "0", startingAt: 0) + "Z"
        }
        return formatter.date(from: trimmed)
    }

    private static func versionMetadata(_ version: KVMetadata.Version, number: Int64, custom: [String: String]?) -> JSONValue {
        [
            "created_time": .string(version.createdTime),
            "deletion_time": .string(version.deletionTime),
            "destroyed": .bool(version.destroyed),
            "version": .int(number),
            "custom_metadata": custom.map { JSONValue.object($0.mapValues { .string($0) }) } ?? .null,
        ]
    }

    // MARK: - data/

    private func read(_ path: String, request: LogicalRequest) async throws -> LogicalResponse {
        var requested: Int64 = 0
        if let raw = request.data["version"], !raw.isNull {
            guard let value = raw.intValue ?? raw.stringValue.flatMap({ Int64($0) }), value >= 0 else {
                throw APIError.badRequest("version must be a non-negative integer")
            }
            requested = value
        }
        guard let meta = try await loadMetadata(path) else { throw APIError.notFound }
        let number = requested == 0 ? meta.currentVersion : requested
        guard let version = meta.versions[number] else { throw APIError.notFound }
        let metadata = Self.versionMetadata(version, number: number, custom: meta.customMetadata)
        if Self.isGone(version, now: clock.now()) {
            // Vault answers 404 with the whole envelope so clients can see why.
            return .envelope(Envelope(data: ["data": .null, "metadata": metadata]), status: 404)
        }
        guard let bytes = try await barrier.get(versionPath(path, number)) else { throw APIError.notFound }
        let data = try JSONValue.parse(bytes)
        return .envelope(Envelope(data: ["data": data, "metadata": metadata]))
    }

    private func write(_ path: String, _ body: [String: JSONValue]) async throws -> LogicalResponse {
        guard let dataValue = body["data"], !dataValue.isNull else { throw APIError.badRequest("no data provided") }
        guard case .object = dataValue else {
            throw APIError.badRequest("data must be a JSON object, got \(dataValue.typeName)")
        }
        let cas = try Self.casOption(body)
        return try await store(path, data: dataValue, cas: cas)
    }

    private static func casOption(_ body: [String: JSONValue]) throws -> Int64? {
        guard let options = body["options"], !options.isNull else { return nil }
        guard let object = options.objectValue else { throw APIError.badRequest("options must be a JSON object") }
        guard let cas = object["cas"], !cas.isNull else { return nil }
        guard let value = cas.intValue ?? cas.stringValue.flatMap({ Int64($0) }), value >= 0 else {
            throw APIError.badRequest("cas must be a non-negative integer")
        }
        return value
    }

    private func store(_ path: String, data: JSONValue, cas: Int64?, mustExist: Bool = false) async throws
        -> LogicalResponse
    {
        let encoded = data.encoded()
        return try await locks.withLock(path) { [self] in
            let config = try await loadConfig()
            let existing = try await loadMetadata(path)
            if mustExist {
                guard let existing, let current = existing.versions[existing.currentVersion],
                    !Self.isGone(current, now: clock.now())
                else { throw APIError.notFound }
            }
            let current = existing?.currentVersion ?? 0
            if let cas {
                guard cas == current else {
                    throw APIError.badRequest("check-and-set parameter did not match the current version")
                }
            } else if config.casRequired || existing?.casRequired == true {
                throw APIError.badRequest("check-and-set parameter required for this call")
            }
            let (date, now) = self.now()
            var meta = existing ?? KVMetadata(
                createdTime: now, updatedTime: now, currentVersion: 0, oldestVersion: 0, maxVersions: 0,
                casRequired: false, deleteVersionAfter: 0, customMetadata: nil, versions: [:])
            let number = current + 1
            let deleteAfter = meta.deleteVersionAfter > 0 ? meta.deleteVersionAfter : config.deleteVersionAfter
            meta.versions[number] = KVMetadata.Version(
                createdTime: now,
                deletionTime: deleteAfter > 0 ? Timestamp.rfc3339(date.addingTimeInterval(TimeInterval(deleteAfter))) : "",
                destroyed: false)
            meta.currentVersion = number
            meta.updatedTime = now
            if meta.oldestVersion == 0 { meta.oldestVersion = number }
            var operations: [BarrierOperation] = [.put(path: versionPath(path, number), value: encoded)]
            // Drop the oldest versions beyond the limit.
            let limit = meta.maxVersions > 0 ? meta.maxVersions : (config.maxVersions > 0 ? config.maxVersions : Self.defaultMaxVersions)
            for old in meta.versions.keys.sorted() where Int64(meta.versions.count) > limit {
                meta.versions[old] = nil
                operations.append(.delete(path: versionPath(path, old)))
            }
            meta.oldestVersion = meta.versions.keys.min() ?? number
            operations.append(.put(path: metaPath(path), value: try Self.encode(meta)))
            try await barrier.commit(operations)
            return .envelope(Envelope(data: Self.versionMetadata(meta.versions[number]!, number: number, custom: meta.customMetadata)))
        }
    }

    private func patch(_ path: String, _ body: [String: JSONValue]) async throws -> LogicalResponse {
        guard let patchValue = body["data"], case .object(let changes) = patchValue else {
            throw APIError.badRequest("no data provided")
        }
        let cas = try Self.casOption(body)
        guard let meta = try await loadMetadata(path), let version = meta.versions[meta.currentVersion],
            !Self.isGone(version, now: clock.now()),
            let bytes = try await barrier.get(versionPath(path, meta.currentVersion)),
            case .object(var merged) = try JSONValue.parse(bytes)
        else { throw APIError.notFound }
        // JSON merge patch (RFC 7386) at the top level: null removes a key.
        for (key, value) in changes {
            merged[key] = value.isNull ? nil : value
        }
        return try await store(path, data: .object(merged), cas: cas ?? meta.currentVersion, mustExist: true)
    }

    private func deleteLatest(_ path: String) async throws -> LogicalResponse {
        try await locks.withLock(path) { [self] in
            guard var meta = try await loadMetadata(path), var version = meta.versions[meta.currentVersion] else {
                return .noContent
            }
            if version.deletionTime.isEmpty || !Self.isGone(version, now: clock.now()) {
                version.deletionTime = self.now().1
                meta.versions[meta.currentVersion] = version
                try await barrier.put(metaPath(path), try Self.encode(meta))
            }
            return .noContent
        }
    }

    private static func versions(_ body: [String: JSONValue]) throws -> [Int64] {
        guard let raw = body["versions"], !raw.isNull else { throw APIError.badRequest("no version number provided") }
        let items: [JSONValue]
        switch raw {
        case .array(let array): items = array
        case .string(let text): items = text.split(separator: ",").map { .string(String($0)) }
        default: items = [raw]
        }
        let numbers = try items.map { item -> Int64 in
            guard let n = item.intValue ?? item.stringValue.flatMap({ Int64($0.trimmingWhitespace()) }), n > 0 else {
                throw APIError.badRequest("versions must be positive integers")
            }
            return n
        }
        guard !numbers.isEmpty else { throw APIError.badRequest("no version number provided") }
        return numbers
    }

    private func setDeleted(_ path: String, _ body: [String: JSONValue], deleted: Bool) async throws -> LogicalResponse {
        let numbers = try Self.versions(body)
        return try await locks.withLock(path) { [self] in
            guard var meta = try await loadMetadata(path) else { return .noContent }
            let now = self.now()
            var changed = false
            for number in numbers {
                guard var version = meta.versions[number], !version.destroyed else { continue }
                if deleted, !Self.isGone(version, now: now.0) {
                    version.deletionTime = now.1
                    changed = true
                } else if !deleted, !version.deletionTime.isEmpty {
                    version.deletionTime = ""
                    changed = true
                }
                meta.versions[number] = version
            }
            if changed { try await barrier.put(metaPath(path), try Self.encode(meta)) }
            return .noContent
        }
    }

    private func destroy(_ path: String, _ body: [String: JSONValue]) async throws -> LogicalResponse {
        let numbers = try Self.versions(body)
        return try await locks.withLock(path) { [self] in
            guard var meta = try await loadMetadata(path) else { return .noContent }
            var operations: [BarrierOperation] = []
            for number in numbers {
                guard var version = meta.versions[number], !version.destroyed else { continue }
                version.destroyed = true
                meta.versions[number] = version
                operations.append(.delete(path: versionPath(path, number)))
            }
            guard !operations.isEmpty else { return .noContent }
            operations.append(.put(path: metaPath(path), value: try Self.encode(meta)))
            try await barrier.commit(operations)
            return .noContent
        }
    }

    // MARK: - metadata/

    private func list(_ prefix: String) async throws -> LogicalResponse {
        var folder = prefix
        if !folder.isEmpty {
            folder = try Self.secretPath(folder) + "/"
        }
        let keys = try await barrier.list(metaPath(folder))
        guard !keys.isEmpty else { throw APIError.notFound }
        return .envelope(Envelope(data: ["keys": .strings(keys)]))
    }

    private func readMetadata(_ path: String) async throws -> LogicalResponse {
        guard let meta = try await loadMetadata(path) else { throw APIError.notFound }
        var versions: [String: JSONValue] = [:]
        for (number, version) in meta.versions {
            versions[String(number)] = [
                "created_time": .string(version.createdTime), "deletion_time": .string(version.deletionTime),
                "destroyed": .bool(version.destroyed),
            ]
        }
        return .envelope(Envelope(data: [
            "cas_required": .bool(meta.casRequired),
            "created_time": .string(meta.createdTime),
            "current_version": .int(meta.currentVersion),
            "delete_version_after": .string(Self.goDuration(meta.deleteVersionAfter)),
            "max_versions": .int(meta.maxVersions),
            "oldest_version": .int(meta.oldestVersion),
            "updated_time": .string(meta.updatedTime),
            "custom_metadata": meta.customMetadata.map { .object($0.mapValues { .string($0) }) } ?? .null,
            "versions": .object(versions),
        ]))
    }

    static func goDuration(_ seconds: Int64) -> String {
        guard seconds > 0 else { return "0s" }
        let h = seconds / 3600, m = (seconds % 3600) / 60, s = seconds % 60
        return (h > 0 ? "\(h)h" : "") + (h > 0 || m > 0 ? "\(m)m" : "") + "\(s)s"
    }

    private static func settings(_ body: [String: JSONValue]) throws -> (Int64?, Bool?, Int64?) {
        var maxVersions: Int64?
        if let raw = body["max_versions"], !raw.isNull {
            guard let value = raw.intValue ?? raw.stringValue.flatMap({ Int64($0) }), value >= 0 else {
                throw APIError.badRequest("max_versions must be a non-negative integer")
            }
            maxVersions = value
        }
        let casRequired = try JSONValue.flag(body["cas_required"], field: "cas_required")
        let deleteAfter = try DurationParser.seconds(body["delete_version_after"], field: "delete_version_after")
        return (maxVersions, casRequired, deleteAfter)
    }

    private func writeMetadata(_ path: String, _ body: [String: JSONValue]) async throws -> LogicalResponse {
        let (maxVersions, casRequired, deleteAfter) = try Self.settings(body)
        let custom = try Self.customMetadata(body)
        return try await locks.withLock(path) { [self] in
            let now = self.now().1
            var meta = try await loadMetadata(path) ?? KVMetadata(
                createdTime: now, updatedTime: now, currentVersion: 0, oldestVersion: 0, maxVersions: 0,
                casRequired: false, deleteVersionAfter: 0, customMetadata: nil, versions: [:])
            if let maxVersions { meta.maxVersions = maxVersions }
            if let casRequired { meta.casRequired = casRequired }
            if let deleteAfter { meta.deleteVersionAfter = deleteAfter }
            if let custom { meta.customMetadata = custom }
            meta.updatedTime = now
            try await barrier.put(metaPath(path), try Self.encode(meta))
            return .noContent
        }
    }

    private static func customMetadata(_ body: [String: JSONValue]) throws -> [String: String]? {
        var custom: [String: String]?
        if let raw = body["custom_metadata"], !raw.isNull {
            guard let object = raw.objectValue else { throw APIError.badRequest("custom_metadata must be an object of strings") }
            custom = try object.mapValues { value in
                guard let string = value.stringValue else {
                    throw APIError.badRequest("custom_metadata values must be strings")
                }
                return string
            }
            guard custom!.count <= 64 else { throw APIError.badRequest("custom_metadata may hold at most 64 keys") }
        }
        return custom
    }

    private func deleteAll(_ path: String) async throws -> LogicalResponse {
        try await locks.withLock(path) { [self] in
            guard let meta = try await loadMetadata(path) else { return .noContent }
            var operations: [BarrierOperation] = meta.versions.keys.map { .delete(path: versionPath(path, $0)) }
            operations.append(.delete(path: metaPath(path)))
            try await barrier.commit(operations)
            return .noContent
        }
    }

    // MARK: - config

    private func readConfig() async throws -> LogicalResponse {
        let config = try await loadConfig()
        return .envelope(Envelope(data: [
            "max_versions": .int(config.maxVersions), "cas_required": .bool(config.casRequired),
            "delete_version_after": .string(Self.goDuration(config.deleteVersionAfter)),
        ]))
    }

    private func writeConfig(_ body: [String: JSONValue]) async throws -> LogicalResponse {
        let (maxVersions, casRequired, deleteAfter) = try Self.settings(body)
        return try await locks.withLock("\u{0}config") { [self] in
            var config = try await loadConfig()
            if let maxVersions { config.maxVersions = maxVersions }
            if let casRequired { config.casRequired = casRequired }
            if let deleteAfter { config.deleteVersionAfter = deleteAfter }
            try await barrier.put(root + "config", try Self.encode(config))
            return .noContent
        }
    }
}
