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

    /// The loaded key (tests).
    var keyForTests: HMACKey? { hasher.withLock { $0?.keyForTests } }

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
        var token: [UInt8] = []
        if let value = request.token { hasher.appendJSONString(hashing: value, to: &token) } else { token = Self.null }
        return Prepared(file: file, hasher: hasher, auth: Self.auth(caller, hasher, token: token),
                        request: Self.request(request, hasher, token: token))
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
            Self.response(result, prepared.hasher, to: &line)
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

    private static let null = Array("null".utf8)

    /// Appends `,"key":` (without the comma for the first member, whose `{` is already there).
    private static func key(_ name: StaticString, to out: inout [UInt8], first: Bool = false) {
        if !first { out.append(UInt8(ascii: ",")) }
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        out.append(contentsOf: #"":"#.utf8)
    }

    private static func strings(_ values: [String], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        for (position, value) in values.enumerated() {
            if position > 0 { out.append(UInt8(ascii: ",")) }
            JSONValue.encode(string: value, into: &out)
        }
        out.append(UInt8(ascii: "]"))
    }

    /// The line's `auth` member (the caller) as encoded JSON, members in sorted order (as
    /// `JSONValue` encodes them). `token`: the request's token, HMAC'd once for both places it
    /// appears (encoded).
    private static func auth(_ caller: Caller?, _ hasher: AuditHasher, token: [UInt8]) -> [UInt8] {
        guard let caller else { return null }
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(512)
        key("accessor", to: &out, first: true)
        if let accessor = caller.accessor { hasher.appendJSONString(hashing: accessor, to: &out) } else { out += null }
        key("client_token", to: &out)
        out += caller.token == nil ? null : token
        key("display_name", to: &out)
        JSONValue.encode(string: caller.displayName, into: &out)
        key("identity", to: &out)
        JSONValue.encode(string: caller.identity, into: &out)
        key("policies", to: &out)
        strings(caller.policies, to: &out)
        key("token_policies", to: &out)
        strings(caller.policies, to: &out)
        key("token_type", to: &out)
        out.append(contentsOf: #""service"}"#.utf8)
        return out
    }

    /// The line's `request` member as encoded JSON, members in sorted order.
    private static func request(_ request: LogicalRequest, _ hasher: AuditHasher, token: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(512)
        key("client_token", to: &out, first: true)
        out += token
        key("data", to: &out)
        if request.data.isEmpty { out += null } else { hasher.appendJSON(hashingStringsOf: .object(request.data), to: &out) }
        key("id", to: &out)
        JSONValue.encode(string: request.id, into: &out)
        key("identity", to: &out)
        if let identity = request.identity { JSONValue.encode(string: identity.summary, into: &out) } else { out += null }
        key("mount_type", to: &out)
        JSONValue.encode(string: String(request.path.split(separator: "/").first ?? ""), into: &out)
        key("operation", to: &out)
        JSONValue.encode(string: request.operation.rawValue, into: &out)
        key("path", to: &out)
        JSONValue.encode(string: RequestPath.redacted(request.path, hash: hasher.hash), into: &out)
        key("remote_address", to: &out)
        JSONValue.encode(string: request.remoteAddress, into: &out)
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// Appends the line's `response` member (`result`), members in sorted order.
    private static func response(_ result: LogicalResponse, _ hasher: AuditHasher, to out: inout [UInt8]) {
        func status(_ status: Int, first: Bool = false) {
            key("status", to: &out, first: first)
            out.append(contentsOf: String(status).utf8)
        }
        out.append(UInt8(ascii: "{"))
        switch result {
        case .envelope(let envelope, let code):
            key("auth", to: &out, first: true)
            if case .object(var members) = envelope.auth {
                for name in ["client_token", "accessor"] {
                    if let value = members[name]?.stringValue { members[name] = .string(hasher.hash(value)) }
                }
                JSONValue.object(members).encode(into: &out)
            } else {
                envelope.auth.encode(into: &out)
            }
            key("data", to: &out)
            hasher.appendJSON(hashingStringsOf: envelope.data, to: &out)
            key("secret", to: &out)
            if envelope.leaseID.isEmpty {
                out += null
            } else {
                out.append(contentsOf: #"{"lease_id":"#.utf8)
                JSONValue.encode(string: envelope.leaseID, into: &out)
                out.append(UInt8(ascii: "}"))
            }
            status(code)
            key("warnings", to: &out)
            strings(envelope.warnings, to: &out)
        case .bare(let value, let code):
            key("data", to: &out, first: true)
            hasher.appendJSON(hashingStringsOf: value, to: &out)
            status(code)
        case .noContent:
            status(204, first: true)
        case .accepted:
            status(202, first: true)
        }
        out.append(UInt8(ascii: "}"))
    }
}
