import Foundation
@testable import MayflyCore
import MayflyStore
import Testing

/// Numbers at the edge of Int64 are refused with a 400 where they are read, so no later
/// `now + duration` can overflow (each of these crashed the server once), and nothing is stored.
@Suite struct InputLimitTests {
    static let huge: JSONValue = .int(Int64.max)

    @Test(arguments: [
        ("auth/token/create", ["explicit_max_ttl": huge]),
        ("auth/token/create", ["ttl": "9999999999999h"]),
        ("auth/token/create", ["ttl": .int(DurationParser.maximum + 1)]),
        ("auth/approle/role/limits/secret-id", ["ttl": huge]),
        ("auth/approle/role/limits", ["token_ttl": huge]),
        ("secret/config", ["delete_version_after": huge]),
        ("secret/metadata/limits", ["delete_version_after": huge]),
        ("database/roles/limits", ["db_name": "nowhere", "default_ttl": huge, "max_ttl": huge]),
        ("database/static-roles/limits", ["db_name": "nowhere", "username": "u", "rotation_period": huge]),
        ("sys/mayfly/exposure", ["since": "9223372036854775807"]),
    ] as [(String, [String: JSONValue])])
    func hugeNumbersAreRefused(path: String, body: [String: JSONValue]) async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "auth/approle/role/limits", ["token_policies": "default"])
        _ = try await t.call(.update, "database/config/nowhere", [
            "connection_url": "postgresql://admin@127.0.0.1:1/db", "password": "unused", "verify_connection": false,
            "allowed_roles": "*",
        ])
        let before = try await t.storage.paths(withPrefix: "", after: nil, limit: 100_000)
        do {
            _ = try await t.call(.update, path, body)
            Issue.record("\(path) accepted \(body)")
        } catch let error as APIError {
            #expect(error.status == 400)
            #expect(error.messages.joined().contains("100 years") || error.messages.joined().contains("since must be"),
                    "refused for the number, not for something else: \(error.messages)")
        }
        #expect(try await t.storage.paths(withPrefix: "", after: nil, limit: 100_000) == before, "nothing stored")
        // The server is still whole: a KV write works.
        _ = try await t.call(.update, "secret/data/after", ["data": ["k": "v"]])
    }

    @Test func theLongestDurationIsAccepted() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "secret/config", ["delete_version_after": .int(DurationParser.maximum)])
        _ = try await t.call(.update, "secret/data/far", ["data": ["k": "v"]])
        #expect(try await t.data(.read, "secret/data/far")["metadata"]?["deletion_time"]?.stringValue?.hasPrefix("21") == true)
    }

    /// Listing leases: a role with more than 10,000 live leases does not hide the roles after
    /// it, and a list cut off at 10,000 keys says so.
    @Test func leaseListingSkipsOverFoldersAndSaysWhenCutOff() async throws {
        let t = try await TestBroker.make()
        func lease(_ role: String, _ n: Int) -> LeaseRecord {
            LeaseRecord(id: "database/creds/\(role)/" + String(format: "%08d", n), database: "db", role: role,
                        username: "v-\(role)-\(n)", state: .active, issuedAt: 1, expiresAt: 4_000_000_000, maxExpiresAt: 4_000_000_000)
        }
        try await t.storage.updateLeases((0..<10_050).map { lease("a", $0) } + [lease("b", 0), lease("c", 1)])
        let roles = try await t.call(.list, "sys/leases/lookup/database/creds/")
        guard case .envelope(let envelope, _) = roles else { Issue.record("envelope expected"); return }
        #expect(envelope.data["keys"] == ["a/", "b/", "c/"] && envelope.warnings.isEmpty)
        guard case .envelope(let cut, _) = try await t.call(.list, "sys/leases/lookup/database/creds/a/") else {
            Issue.record("envelope expected"); return
        }
        #expect(cut.data["keys"]?.arrayValue?.count == 10_000)
        #expect(cut.warnings.first?.contains("cut off") == true)
    }
}
