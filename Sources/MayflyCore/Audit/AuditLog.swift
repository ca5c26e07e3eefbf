import Foundation
import MayflyCrypto
import Synchronization

/// The audit device (`audit "file" { path = "…" }`): a request line before the request is
/// handled and a response line before the answer leaves, both chained (`AuditFile`), with
/// every string of request and response data, every token and accessor HMAC'd. If a line
/// cannot be written the request fails and nothing is served: every request is audited
/// before its response is sent.
final class AuditLog: Sendable {
    private let current: Mutex<AuditFile?>
    private let hasher = Mutex<AuditHasher?>(nil)
    static let keyPath = "audit/file/hmac-key"

    /// The wall clock of the lines' `time` (the broker's).
    private let clock: any WallClock

    init(path: String?, clock: any WallClock = SystemClock()) throws {
        current = Mutex(try path.map { try AuditFile(path: $0) })
        self.clock = clock
    }

    var file: AuditFile? { current.withLock { $0 } }

    var isEnabled: Bool { file != nil }

    /// Switches to the file at `path` (after log rotation moved the old one away), continuing
    /// its chain if it exists.
    func reopen(path: String) throws {
        let reopened = try AuditFile(path: path)
        current.withLock { $0 = reopened }
    }

    /// Loads (creating on first use, when `create`) the device's HMAC key from the barrier.
    /// A standby does not create it: the leader does, and the standby loads it when it leads.
    func loadKey(_ barrier: Barrier, create: Bool = true) async throws {
        guard isEnabled else { return }
        var key = try await barrier.getSecure(Self.keyPath)
        if key == nil {
            guard create else { return }
            let fresh = SecureBytes.random(count: 32)
            try await barrier.putSecure(Self.keyPath, fresh)
            key = fresh
        }
        hasher.withLock { $0 = AuditHasher(key: key!) }
    }

    /// Forgets the key (on seal).
    func unload() {
        hasher.withLock { hasher in
            hasher?.wipe()
            hasher = nil
        }
    }

    /// `sys/audit-hash`: the HMAC the file would hold for `input`.
    func hash(_ input: String) throws -> String {
        guard let hasher = hasher.withLock({ $0 }) else { throw APIError.badRequest("no audit device is enabled") }
        return hasher.hash(input)
    }

    /// Who is asking, for both lines.
    struct Caller: Sendable {
        var token: String?
        var accessor: String?
        var policies: [String]
        var displayName: String
        /// The identity the request is attributed to (see `Caller.identityName`).
        var identity: String
    }

    /// What both lines of one request share (who asked, and what), HMAC'd and encoded once.
    struct Prepared: Sendable {
        fileprivate let file: AuditFile
        fileprivate let hasher: AuditHasher
        /// The encoded values of the lines' `auth` and `request` members.
        fileprivate let auth: [UInt8]
        fileprivate let request: [UInt8]
    }

    /// The parts of `request`'s lines, or nil when no device is on (or its key is not loaded).
    func prepare(_ request: LogicalRequest, caller: Caller?) -> Prepared? {
        guard let file, let hasher = hasher.withLock({ $0 }) else { return nil }
        let token = request.token.map { JSONValue.string(hasher.hash($0)) } ?? .null
        return Prepared(file: file, hasher: hasher, auth: Self.auth(caller, hasher, token: token).encoded(),
                        request: Self.request(request, hasher, token: token).encoded())
    }

    /// The request line: on disk when this returns.
    func logRequest(_ prepared: Prepared) async throws {
        try await writeRequest(prepared).wait()
    }

    /// A request line written and on its way to disk.
    struct PendingLine: Sendable {
        fileprivate let file: AuditFile
        fileprivate let end: off_t

        /// Returns once the line is on disk; throws if it could not be synced.
        func wait() async throws { try await file.waitUntilDurable(end) }
    }

    /// Writes the request line and starts its sync without waiting for it (what the request
    /// does meanwhile must not be seen outside Mayfly before `wait()` returns).
    func writeRequest(_ prepared: Prepared) throws -> PendingLine {
        var line = Self.start(prepared, error: nil)
        line.append(contentsOf: #","time":"#.utf8)
        JSONValue.encode(string: Timestamp.rfc3339(clock.now()), into: &line)
        line.append(contentsOf: #","type":"request""#.utf8)
        return PendingLine(file: prepared.file, end: try prepared.file.writeDurable(body: line))
    }

    /// The response line (`result`, or `error`): written when this returns, on disk with the
    /// next sync. Its members are in the sorted order `JSONValue` encodes them in.
    func logResponse(_ prepared: Prepared, result: LogicalResponse?, error: APIError?) async throws {
        var line = Self.start(prepared, error: error.map { $0.messages.joined(separator: "; ") })
        if let error {
            line.append(contentsOf: #","response":{"status":"#.utf8)
            line.append(contentsOf: String(error.status).utf8)
            line.append(UInt8(ascii: "}"))
        } else if let result {
            line.append(contentsOf: #","response":"#.utf8)
            Self.response(result, prepared.hasher).encode(into: &line)
        }
        line.append(contentsOf: #","time":"#.utf8)
        JSONValue.encode(string: Timestamp.rfc3339(clock.now()), into: &line)
        line.append(contentsOf: #","type":"response""#.utf8)
        try await prepared.file.record(body: line, durable: false)
    }

    /// `{"auth":…,["error":…,]"request":…` — the members that sort before `response`.
    private static func start(_ prepared: Prepared, error: String?) -> [UInt8] {
        var line: [UInt8] = []
        line.reserveCapacity(prepared.auth.count + prepared.request.count + 512)
        line.append(contentsOf: #"{"auth":"#.utf8)
        line.append(contentsOf: prepared.auth)
        if let error {
            line.append(contentsOf: #","error":"#.utf8)
            JSONValue.encode(string: error, into: &line)
        }
        line.append(contentsOf: #","request":"#.utf8)
        line.append(contentsOf: prepared.request)
        return line
    }

    /// `token`: the request's token, HMAC'd once for both places it appears.
    private static func auth(_ caller: Caller?, _ hasher: AuditHasher, token: JSONValue) -> JSONValue {
        guard let caller else { return .null }
        return [
            "client_token": caller.token == nil ? .null : token,
            "accessor": caller.accessor.map { .string(hasher.hash($0)) } ?? .null,
            "policies": .strings(caller.policies), "token_policies": .strings(caller.policies),
            "display_name": .string(caller.displayName), "token_type": "service",
            "identity": .string(caller.identity),
        ]
    }

    private static func request(_ request: LogicalRequest, _ hasher: AuditHasher, token: JSONValue) -> JSONValue {
        [
            "id": .string(request.id), "operation": .string(request.operation.rawValue),
            "path": .string(RequestPath.redacted(request.path, hash: hasher.hash)),
            "data": request.data.isEmpty ? .null : hasher.hashStrings(.object(request.data)),
            "remote_address": .string(request.remoteAddress),
            "client_token": token,
            "identity": request.identity.map { .string($0.summary) } ?? .null,
            "mount_type": .string(String(request.path.split(separator: "/").first ?? "")),
        ]
    }

    private static func response(_ result: LogicalResponse, _ hasher: AuditHasher) -> JSONValue {
        switch result {
        case .envelope(let envelope, let status):
            var auth = envelope.auth
            if case .object(var members) = auth {
                for key in ["client_token", "accessor"] {
                    if let value = members[key]?.stringValue { members[key] = .string(hasher.hash(value)) }
                }
                auth = .object(members)
            }
            return [
                "status": .int(Int64(status)), "data": hasher.hashStrings(envelope.data), "auth": auth,
                "secret": envelope.leaseID.isEmpty ? .null : ["lease_id": .string(envelope.leaseID)],
                "warnings": .strings(envelope.warnings),
            ]
        case .bare(let value, let status):
            return ["status": .int(Int64(status)), "data": hasher.hashStrings(value)]
        case .noContent:
            return ["status": 204]
        case .accepted:
            return ["status": 202]
        }
    }
}
