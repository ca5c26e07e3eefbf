import Foundation
@testable import MayflyCore
import MayflyStore
import Testing

/// Issue 12, finding 5: a database that cannot be reached is named as such (502 with a retry
/// hint), not an "internal error" that looks like a Mayfly bug.
@Suite struct DatabaseUnreachableTests {
    @Test func anUnreachableDatabaseIsSaidToBeUnreachable() async throws {
        let t = try await TestBroker.make()
        // Nothing listens on port 1: as if PostgreSQL were stopped.
        _ = try await t.call(.update, "database/config/down", [
            "plugin_name": "postgresql-database-plugin", "verify_connection": false, "allowed_roles": "*",
            "connection_url": "postgresql://admin@127.0.0.1:1/app?sslmode=verify-full", "password": "x",
        ])
        _ = try await t.call(.update, "database/roles/app", ["db_name": "down", "default_ttl": "5m"])
        for budget in [JSONValue.double(0.8), .int(0)] {
            _ = try await t.call(.update, "database/config/down", ["connection_budget": budget, "verify_connection": false])
            do {
                _ = try await t.call(.read, "database/creds/app")
                Issue.record("a credential from a database nobody listens on")
            } catch let error as APIError {
                #expect(error.status == 502, "budget \(budget)")
                #expect(error.messages == ["database \"down\" is unreachable; try again later"])
                #expect(error.retryAfter != nil)
            }
        }
        // Nothing is left behind: the lease of the failed attempt is being revoked, not live.
        let live = try await t.storage.leases(matching: .init(states: [.active, .pending]), after: nil, limit: 10)
        #expect(live.isEmpty)
    }
}
