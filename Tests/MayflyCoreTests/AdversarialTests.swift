import Foundation
import Logging
@testable import MayflyCore
import MayflyStore
import Testing

/// The adversarial review of issue 11: a narrow token, a careless operator and hostile input
/// against the broker. Each test is one finding, written through the request interface only, so
/// that it ran unchanged against the build the review was made on (3e8414c), where each failed.
/// Path-spelling variants over HTTP (`%2f`) are in `AdversarialHTTPTests`; the database
/// findings are in `AdversarialDatabaseTests`.
@Suite struct AdversarialTests {
    /// A token with `policies`, created by root (whose policy texts are written first).
    static func token(_ t: TestBroker, policies: [String: String], extra: [String: JSONValue] = [:]) async throws -> String {
        for (name, text) in policies { _ = try await t.call(.update, "sys/policies/acl/\(name)", ["policy": .string(text)]) }
        var body = extra
        body["policies"] = .strings(Array(policies.keys).sorted())
        guard case .envelope(let created, _) = try await t.call(.update, "auth/token/create", body) else {
            throw APIError.internalError("no token")
        }
        return try #require(created.auth["client_token"]?.stringValue)
    }

    static func policyText(_ t: TestBroker, _ name: String) async throws -> String? {
        guard case .envelope(let envelope, _)? = try? await t.call(.read, "sys/policies/acl/\(name)") else { return nil }
        return envelope.data["policy"]?.stringValue
    }

    static func succeeded(_ status: Int?) -> Bool { status == nil }

    // MARK: Finding 1

    /// `sys/policyNAME` and `sys/policies/aclNAME` are not policy paths: a token with `sys/*`
    /// but no sudo could replace any policy through them.
    @Test func f01_policyWritesWithoutTheSlashAreNotPolicyWrites() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "sys/policies/acl/ops", ["policy": #"path "secret/data/ops/*" { capabilities = ["read"] }"#])
        _ = try await t.call(.update, "sys/policies/acl/denyish", ["policy": #"path "x" { capabilities = ["deny"] }"#])
        let original = try await Self.policyText(t, "ops")
        let narrow = try await Self.token(t, policies: [
            "narrow": #"path "sys/*" { capabilities = ["create", "read", "update", "delete", "list"] }"#,
        ])
        let takeover = ["policy": JSONValue.string(#"path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#)]
        for path in ["sys/policyops", "sys/policies/aclops", "sys/policies/aclpwn", "sys/policypwn"] {
            let status = await t.status(.update, path, takeover, token: narrow)
            #expect(!Self.succeeded(status) && [403, 404].contains(status ?? 0), "\(path): \(String(describing: status))")
        }
        for path in ["sys/policydenyish", "sys/policies/acldenyish"] {
            #expect(!Self.succeeded(await t.status(.delete, path, token: narrow)), "\(path)")
        }
        #expect(try await Self.policyText(t, "ops") == original)
        #expect(try await Self.policyText(t, "denyish") != nil)
        #expect(try await Self.policyText(t, "pwn") == nil)
        // The real paths need sudo.
        #expect(await t.status(.update, "sys/policies/acl/ops", takeover, token: narrow) == 403)
        #expect(await t.status(.update, "sys/policy/ops", takeover, token: narrow) == 403)
        #expect(await t.status(.delete, "sys/policy/denyish", token: narrow) == 403)
    }

    // MARK: Finding 2 and the policy-granting rule

    /// The shipped operator policy may write AppRole roles; a role must not hand out root, nor a
    /// policy the operator does not hold.
    @Test func f02_appRoleCannotMintRootOrPoliciesItsWriterLacks() async throws {
        let t = try await TestBroker.make { $0.loginRateLimit = 100 }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let operatorPolicy = try String(contentsOf: repository.appendingPathComponent("policies/examples/operator.hcl"),
                                        encoding: .utf8)
        _ = try await t.call(.update, "sys/policies/acl/admin", ["policy": #"path "*" { capabilities = ["sudo", "read"] }"#])
        let operatorToken = try await Self.token(t, policies: ["operator": operatorPolicy])
        for policies in [["root"], ["admin"], ["operator", "root"]] {
            for field in ["token_policies", "policies"] {
                let status = await t.status(.update, "auth/approle/role/pwn", [field: .strings(policies)], token: operatorToken)
                #expect(status == 403, "\(field)=\(policies): \(String(describing: status))")
            }
        }
        #expect(await t.status(.read, "auth/approle/role/pwn") == 404, "nothing stored")
        // What the operator holds it may hand out, and the login gets exactly that.
        _ = try await t.call(.update, "auth/approle/role/app", ["token_policies": ["operator"]], token: operatorToken)
        let roleID = try #require(try await t.data(.read, "auth/approle/role/app/role-id", token: operatorToken)["role_id"]?.stringValue)
        let secretID = try #require(try await t.data(.update, "auth/approle/role/app/secret-id", token: operatorToken)["secret_id"]?.stringValue)
        guard case .envelope(let login, _) = try await t.broker.handle(LogicalRequest(
            id: "login", operation: .update, path: "auth/approle/login",
            data: ["role_id": .string(roleID), "secret_id": .string(secretID)], remoteAddress: "10.0.0.1:1"))
        else { Issue.record("no login"); return }
        #expect(login.auth["policies"] == ["default", "operator"])
        #expect(login.auth["lease_duration"]?.intValue ?? 0 > 0, "never a non-expiring token")
        // Even root cannot store a role that mints root tokens.
        #expect(await t.status(.update, "auth/approle/role/rooty", ["token_policies": ["root"]]) == 403)
    }

    enum Writer: String, CaseIterable, Sendable { case plain, sudo, root }

    struct GrantCase: Sendable, CustomTestStringConvertible {
        let endpoint: String
        let field: String
        /// A stored role (vs a token created now).
        let stored: Bool
        /// The route itself needs sudo to write (token roles).
        let routeNeedsSudo: Bool
        var testDescription: String { "\(endpoint) \(field)" }
    }

    /// Issue 11, "done when" 3: every endpoint that attaches policies to something that yields
    /// a token applies the same rule — root never on anything stored (a token only from root),
    /// a policy the writer lacks only with sudo on the written path.
    @Test(arguments: [
        GrantCase(endpoint: "auth/token/create", field: "policies", stored: false, routeNeedsSudo: false),
        GrantCase(endpoint: "auth/token/create-orphan", field: "policies", stored: false, routeNeedsSudo: false),
        GrantCase(endpoint: "auth/token/roles/granted", field: "allowed_policies", stored: true, routeNeedsSudo: true),
        GrantCase(endpoint: "auth/approle/role/granted", field: "token_policies", stored: true, routeNeedsSudo: false),
        GrantCase(endpoint: "auth/approle/role/granted", field: "policies", stored: true, routeNeedsSudo: false),
    ])
    func policyGrantingEndpointsShareOneRule(_ grant: GrantCase) async throws {
        let t = try await TestBroker.make()
        let paths = #"path "auth/*" { capabilities = ["create", "read", "update", "delete", "list"] }"#
        let sudoPaths = #"path "auth/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#
        _ = try await t.call(.update, "sys/policies/acl/held", ["policy": #"path "secret/data/held" { capabilities = ["read"] }"#])
        _ = try await t.call(.update, "sys/policies/acl/other", ["policy": #"path "secret/*" { capabilities = ["read"] }"#])
        let tokens: [Writer: String] = [
            .plain: try await Self.token(t, policies: ["writer": paths, "held": #"path "secret/data/held" { capabilities = ["read"] }"#]),
            .sudo: try await Self.token(t, policies: ["writer-sudo": sudoPaths, "held": #"path "secret/data/held" { capabilities = ["read"] }"#]),
            .root: t.rootToken,
        ]
        for writer in Writer.allCases {
            for policy in ["held", "other", "root"] {
                let allowed: Bool = switch (writer, policy) {
                case (.plain, _) where grant.routeNeedsSudo: false
                case (_, "root"): writer == .root && !grant.stored
                case (.plain, "other"): false
                default: true
                }
                let status = await t.status(.update, grant.endpoint, [grant.field: .strings([policy])], token: tokens[writer])
                #expect(Self.succeeded(status) == allowed,
                        "\(writer) attaching \(policy) at \(grant.endpoint): \(String(describing: status))")
                if let status { #expect(status == 403 || status == 400, "\(writer) \(policy): \(status)") }
            }
        }
        // A token role, once written (with sudo), hands out what it allows — that is what roles
        // are for — and never root, whoever uses it.
        if grant.endpoint.hasPrefix("auth/token/roles/") {
            _ = try await t.call(.update, "auth/token/roles/granted", ["allowed_policies": ["other"]])
            guard case .envelope(let created, _) = try await t.call(.update, "auth/token/create/granted", token: tokens[.plain])
            else { Issue.record("no token from the role"); return }
            #expect(created.auth["policies"] == ["default", "other"])
            #expect(await t.status(.update, "auth/token/create/granted", ["policies": ["root"]]) != nil)
        }
    }

    // MARK: Finding 3 (broker side; HTTP spellings in AdversarialHTTPTests)

    /// A trailing slash (or an empty segment) names the same secret, so the ACL decides on it.
    @Test func f03_aTrailingSlashIsTheSamePathForTheACL() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "secret/data/admin", ["data": ["password": "original"]])
        _ = try await t.call(.update, "secret/data/app", ["data": ["sibling": "secret"]])
        let narrow = try await Self.token(t, policies: ["narrow": """
            path "secret/data/*" { capabilities = ["create", "read", "update"] }
            path "secret/data/admin" { capabilities = ["deny"] }
            path "database/*" { capabilities = ["create", "read", "update", "delete", "list"] }
            path "database/roles/admin" { capabilities = ["deny"] }
            path "database/config/admin" { capabilities = ["deny"] }
            path "database/static-creds/admin" { capabilities = ["deny"] }
            path "database/static-roles/admin" { capabilities = ["deny"] }
            """])
        for path in ["secret/data/admin/", "secret/data/admin//", "secret//data/admin", "/secret/data/admin", "secret/data//admin"] {
            #expect(await t.status(.read, path, token: narrow) == 403, "read \(path)")
            #expect(await t.status(.update, path, ["data": ["password": "pwned"]], token: narrow) == 403, "write \(path)")
        }
        #expect(try await t.data(.read, "secret/data/admin")["data"]?["password"] == "original")
        // `secret/data/app/*` is below app, not app itself.
        let app = try await Self.token(t, policies: ["app": #"path "secret/data/app/*" { capabilities = ["read"] }"#])
        #expect(await t.status(.read, "secret/data/app/", token: app) == 403)
        #expect(await t.status(.read, "secret/data/app", token: app) == 403)
        // Database paths: the configured database `admin` and its role stay out of reach.
        _ = try await t.call(.update, "database/config/admin", [
            "plugin_name": "postgresql-database-plugin", "verify_connection": false, "allowed_roles": "*",
            "connection_url": "postgresql://admin@127.0.0.1:5432/admin?sslmode=verify-full",
        ])
        for path in ["database/config/admin/", "database/config/admin//", "database//config/admin"] {
            #expect(await t.status(.read, path, token: narrow) == 403, "read \(path)")
            #expect(await t.status(.update, path, ["connection_url": "postgresql://evil@10.0.0.1:5432/x?sslmode=disable",
                                                   "verify_connection": false], token: narrow) == 403, "write \(path)")
            #expect(await t.status(.delete, path, token: narrow) == 403, "delete \(path)")
        }
        for path in ["database/roles/admin/", "database/roles/admin//"] {
            #expect(await t.status(.update, path, ["db_name": "admin"], token: narrow) == 403, "write \(path)")
        }
        #expect(await t.status(.read, "database/roles/admin") == 404, "no role was written")
        #expect(await t.status(.read, "database/static-creds/admin/", token: narrow) == 403)
        #expect(await t.status(.update, "database/static-roles/admin/", ["db_name": "admin", "username": "x"], token: narrow) == 403)
    }

    // MARK: Finding 7

    /// `num_uses = 1`: of 20 concurrent requests exactly one is served.
    @Test func f07_numUsesHoldsUnderConcurrency() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "secret/data/app", ["data": ["k": "v"]])
        let policy = ["reader": #"path "secret/data/*" { capabilities = ["read"] }"#]
        /// How many of 20 concurrent reads a token serves.
        func served(_ token: String) async -> Int {
            await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<20 { group.addTask { await t.status(.read, "secret/data/app", token: token) == nil } }
                var served = 0
                for await ok in group where ok { served += 1 }
                return served
            }
        }
        let once = try await Self.token(t, policies: policy, extra: ["num_uses": 1])
        let thrice = try await Self.token(t, policies: policy, extra: ["num_uses": 3])
        #expect(await served(once) == 1)
        #expect(await served(thrice) == 3)
    }

    // MARK: Finding 8

    /// A child token is capped by its parent's remaining TTL and dies with it; the token sweep
    /// removes an expired tree that nobody touches again.
    @Test func f08_childTokensNeverOutliveTheirParent() async throws {
        let clock = ManualClock(Date())
        let t = try await TestBroker.make(clock: clock)
        let policy = ["p": #"path "auth/token/*" { capabilities = ["create", "read", "update"] }"#]
        let hourParent = try await Self.token(t, policies: policy, extra: ["ttl": "1h"])
        guard case .envelope(let long, _) = try await t.call(.update, "auth/token/create", ["ttl": "768h", "policies": ["p"]], token: hourParent)
        else { Issue.record("no child"); return }
        #expect((long.auth["lease_duration"]?.intValue ?? .max) <= 3600, "capped by the parent's hour")

        let parent = try await Self.token(t, policies: policy, extra: ["ttl": "5s"])
        guard case .envelope(let created, _) = try await t.call(.update, "auth/token/create", ["ttl": "1h", "policies": ["p"]], token: parent)
        else { Issue.record("no child"); return }
        let child = try #require(created.auth["client_token"]?.stringValue)
        #expect((created.auth["lease_duration"]?.intValue ?? .max) <= 5)
        // Renewal does not lift the cap either.
        if case .envelope(let renewed, _)? = try? await t.call(.update, "auth/token/renew-self", ["increment": "1h"], token: child) {
            #expect((renewed.auth["lease_duration"]?.intValue ?? .max) <= 5)
        }
        let untouched = try await Self.token(t, policies: policy, extra: ["ttl": "5s"])
        guard case .envelope(let grand, _) = try await t.call(.update, "auth/token/create", ["ttl": "1h", "policies": ["p"]], token: untouched)
        else { Issue.record("no child"); return }
        #expect(grand.auth["client_token"]?.stringValue != nil)
        let before = try await t.storage.paths(withPrefix: "token/id/", after: nil, limit: 1000).count
        clock.advance(by: 6)
        #expect(await t.status(.read, "auth/token/lookup-self", token: child) == 403, "the child died with its parent")
        // Nobody uses the second tree again: the sweep revokes it (and its child).
        _ = try await t.call(.update, "sys/mayfly/schedule/token-sweep/run")
        let after = try await t.storage.paths(withPrefix: "token/id/", after: nil, limit: 1000).count
        #expect(after <= before - 4, "both expired trees were removed by the sweep (\(before) → \(after))")
    }

    // MARK: Finding 11

    /// `sys/seal` is on the audit record, and refused when the record cannot be written.
    @Test func f11_sealIsAuditedAndFailsClosed() async throws {
        let path = NSTemporaryDirectory() + "mf-adv-audit-\(UUID().uuidString.prefix(8)).log"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let t = try await TestBroker.make { $0.auditPath = path }
        try t.broker.audit.reopen(path: "/dev/full")
        #expect(await t.status(.update, "sys/seal") == 500)
        #expect(await t.broker.seal.isSealed == false, "not sealed without its record")
        try t.broker.audit.reopen(path: path)
        #expect(await t.status(.update, "sys/seal") == nil)
        #expect(await t.broker.seal.isSealed)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.filter { $0.contains(#""path":"sys\/seal""#) || $0.contains(#""path":"sys/seal""#) }.count == 2,
                "request and response lines")
    }

    // MARK: Finding 12

    /// A share of the wrong length (or a second share with the same x) does not count.
    @Test func f12_unsealRefusesGarbage() async throws {
        let t = try await TestBroker.make(shares: 3, threshold: 2)
        _ = try await t.call(.update, "sys/seal")
        func progress() async throws -> Int64? {
            guard case .bare(let body, _) = try await t.call(.read, "sys/seal-status") else { return nil }
            return body["progress"]?.intValue
        }
        for key in ["AAAA", String(repeating: "ab", count: 32), String(repeating: "ab", count: 34)] {
            #expect(await t.status(.update, "sys/unseal", ["key": .string(key)]) == 400, "\(key.prefix(8))…")
            #expect(try await progress() == 0)
        }
        let share = t.shares[0]
        _ = try await t.call(.update, "sys/unseal", ["key": .string(share.map { String(format: "%02x", $0) }.joined())])
        #expect(try await progress() == 1)
        var forged = t.shares[1]
        forged[forged.count - 1] = share[share.count - 1]  // same x as the first share
        #expect(await t.status(.update, "sys/unseal", ["key": .string(forged.map { String(format: "%02x", $0) }.joined())]) == 400)
        #expect(try await progress() == 1, "the first share still counts")
        _ = try await t.call(.update, "sys/unseal", ["key": .string(t.shares[2].map { String(format: "%02x", $0) }.joined())])
        #expect(await t.broker.seal.isSealed == false)
    }

    // MARK: Finding 13

    /// A lease id does not tell whose login it is; the UI mount list shows what the caller can
    /// use; the default policy's `resultant-acl` answers; accessors stay out of the server log.
    @Test func f13_smallLeaksAreClosed() async throws {
        let log = CapturedLog()
        let t = try await TestBroker.make(logger: Logger(label: "capture") { _ in CapturingHandler(log: log) })
        let now = Int64(Date().timeIntervalSince1970)
        try await t.storage.insertLease(LeaseRecord(
            id: "database/creds/ro/abc", database: "db", role: "ro", username: "v-ro-secretname", state: .active,
            issuedAt: now, expiresAt: now + 600, maxExpiresAt: now + 600, identity: "unix:uid:4242"))
        let plain = try await Self.token(t, policies: ["nothing": #"path "x" { capabilities = ["read"] }"#])
        let looked = try await t.data(.update, "sys/leases/lookup", ["lease_id": "database/creds/ro/abc"], token: plain)
        #expect(looked["id"] == "database/creds/ro/abc")
        #expect(looked["username"] == nil, "a lease id is not a right to the login's name")
        #expect(try await t.data(.update, "sys/leases/lookup", ["lease_id": "database/creds/ro/abc"])["username"] == "v-ro-secretname")

        let mounts = try await t.data(.read, "sys/internal/ui/mounts", token: plain)
        #expect(mounts["secret"]?.objectValue?.keys.sorted() == [], "\(mounts)")
        #expect(mounts["auth"]?.objectValue?.keys.sorted() == ["token/"])

        let resultant = try await t.data(.read, "sys/internal/ui/resultant-acl", token: plain)
        #expect(resultant["exact_paths"]?["auth/token/lookup-self"]?["capabilities"] == ["read"])
        #expect(resultant["root"] == false)

        guard case .envelope(let created, _) = try await t.call(.update, "auth/token/create", ["policies": ["nothing"]])
        else { Issue.record("no token"); return }
        let accessor = try #require(created.auth["accessor"]?.stringValue)
        #expect(!log.text.contains(accessor), "the accessor reached the server log")
    }

    /// The legacy `auth/token/lookup/<token>` spelling never writes the token into the audit file.
    @Test func f13_aTokenInThePathIsNotWrittenToTheAuditFile() async throws {
        let path = NSTemporaryDirectory() + "mf-adv-audit-\(UUID().uuidString.prefix(8)).log"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let t = try await TestBroker.make { $0.auditPath = path }
        let victim = try await Self.token(t, policies: ["p": #"path "x" { capabilities = ["read"] }"#])
        for operation in [MayflyCore.Operation.read, .update] {
            for base in ["auth/token/lookup/", "auth/token/revoke/", "auth/token/renew/"] {
                _ = await t.status(operation, base + victim)
            }
        }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains(victim) && !text.contains(String(victim.dropFirst(4))))
        #expect(text.contains("auth/token/lookup/"), "the request is still on the record")
    }
}

/// Everything logged, for tests that check what never reaches the log.
final class CapturedLog: @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var lines: [String] = []

    func append(_ line: String) {
        lock.lock()
        lines.append(line)
        lock.unlock()
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return lines.joined(separator: "\n")
    }
}

/// A log handler that keeps every message and its metadata, at every level.
struct CapturingHandler: LogHandler {
    let log: CapturedLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String,
             function: String, line: UInt)
    {
        log.append("\(level) \(message) \(self.metadata.merging(metadata ?? [:]) { $1 })")
    }
}
