import Foundation
@testable import MayflyCore

/// A broker on a manual clock with two in-memory databases, `one` and `two` (plugin
/// `mayfly-memory-plugin`), each with a group role `readers`, and a dynamic role per database
/// (`r1` in `one`, `r2` in `two`: member of `readers`, 10 minutes, at most an hour).
struct MemoryFixture {
    let t: TestBroker
    let clock: ManualClock
    let databases: [String: InMemoryDatabase]

    static func make() async throws -> MemoryFixture {
        let clock = ManualClock(Date(timeIntervalSince1970: 1_800_000_000))
        // No jitter: a scheduled job runs exactly when the test clock says it is due.
        let t = try await TestBroker.make(clock: clock) { $0.schedulerJitter = 0 }
        var databases: [String: InMemoryDatabase] = [:]
        for name in ["one", "two"] {
            let database = InMemoryDatabase(groups: ["readers"])
            databases[name] = database
            try await t.call(.update, "database/config/\(name)", [
                "plugin_name": .string(InMemoryBackend.pluginName), "connection_url": .string(database.url),
                "password": "admin-password", "allowed_roles": "*",
            ])
        }
        let fixture = MemoryFixture(t: t, clock: clock, databases: databases)
        try await fixture.role("r1", in: "one")
        try await fixture.role("r2", in: "two")
        return fixture
    }

    /// The test clock's Unix seconds.
    var now: Int64 { Int64(clock.now().timeIntervalSince1970) }

    func role(_ name: String, in database: String, _ extra: [String: JSONValue] = [:]) async throws {
        var body: [String: JSONValue] = [
            "db_name": .string(database), "member_of": ["readers"], "default_ttl": "10m", "max_ttl": "1h",
        ]
        body.merge(extra) { $1 }
        try await t.call(.update, "database/roles/\(name)", body)
    }

    typealias Credential = (lease: String, user: String, password: String, ttl: Int64)

    func issue(_ role: String = "r1", token: String? = nil) async throws -> Credential {
        guard case .envelope(let envelope, 200) = try await t.call(.read, "database/creds/\(role)", token: token) else {
            throw APIError.internalError("no credential")
        }
        return (envelope.leaseID, envelope.data["username"]?.stringValue ?? "", envelope.data["password"]?.stringValue ?? "",
                envelope.leaseDuration)
    }

    /// Whether `credential` logs in to database `name` now (on the test clock).
    func canLogIn(_ credential: Credential, _ name: String = "one") -> Bool {
        databases[name]!.canLogIn(credential.user, credential.password, at: now)
    }

    /// The state of the lease `id` as `sys/leases/lookup` reports it ("revoked" once it is gone).
    func leaseState(_ id: String) async throws -> String {
        guard let data = try? await t.data(.update, "sys/leases/lookup", ["lease_id": .string(id)]) else { return "revoked" }
        return data["state"]?.stringValue ?? ""
    }
}
