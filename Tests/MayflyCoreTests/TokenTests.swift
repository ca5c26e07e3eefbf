import Foundation
@testable import MayflyCore
import MayflyStore
import Testing

@Suite struct TokenTests {
    @Test func createLookupRenewRevoke() async throws {
        let t = try await TestBroker.make()
        guard case .envelope(let created, _) = try await t.call(.update, "auth/token/create", ["ttl": "1h", "meta": ["app": "x"]])
        else { Issue.record("envelope expected"); return }
        let token = try #require(created.auth["client_token"]?.stringValue)
        #expect(token.hasPrefix("hvs."))
        #expect(created.auth["lease_duration"] == 3600)
        #expect(created.auth["policies"] == ["root"], "a child of root inherits root when no policies are named")
        let me = try await t.data(.read, "auth/token/lookup-self", token: token)
        #expect(me["id"]?.stringValue == token)
        #expect(me["ttl"]?.intValue.map { $0 > 3590 && $0 <= 3600 } == true)
        #expect(me["renewable"] == true)
        #expect(me["type"] == "service")
        #expect(me["meta"] == ["app": "x"])
        guard case .envelope(let renewed, _) = try await t.call(.update, "auth/token/renew-self", ["increment": "30m"], token: token)
        else { Issue.record("envelope expected"); return }
        #expect(renewed.auth["lease_duration"] == 1800)
        _ = try await t.call(.update, "auth/token/revoke-self", token: token)
        #expect(await t.status(.read, "auth/token/lookup-self", token: token) == 403)
    }

    @Test func defaultPolicyTokenIsDeniedElsewhere() async throws {
        let t = try await TestBroker.make()
        guard case .envelope(let created, _) = try await t.call(.update, "auth/token/create", ["policies": ["default", "orders-app"]])
        else { Issue.record("envelope expected"); return }
        #expect(created.warnings == ["Policy \"orders-app\" does not exist"])
        let token = try #require(created.auth["client_token"]?.stringValue)
        #expect(await t.status(.read, "auth/token/lookup-self", token: token) == nil)
        #expect(await t.status(.read, "secret/data/x", token: token) == 403)
        #expect(await t.status(.update, "sys/seal", token: token) == 403)
        #expect(await t.status(.update, "auth/token/create", ["policies": ["root"]], token: token) == 403)
    }

    @Test func revokingAParentRevokesItsChildren() async throws {
        let t = try await TestBroker.make()
        let parent = try await createToken(t, ["policies": ["root"]], token: nil)
        let child = try await createToken(t, [:], token: parent)
        let orphan = try await createToken(t, ["no_parent": true], token: parent)
        _ = try await t.call(.update, "auth/token/revoke", ["token": .string(parent)])
        #expect(await t.status(.read, "auth/token/lookup-self", token: child) == 403)
        #expect(await t.status(.read, "auth/token/lookup-self", token: orphan) == nil)
    }

    @Test func tokensAreStoredOnlyAsKeyedHashes() async throws {
        let t = try await TestBroker.make()
        let token = try await createToken(t, [:], token: nil)
        let paths = try await t.storage.paths(withPrefix: "", after: nil, limit: 1000)
        let secret = String(token.dropFirst(4))
        #expect(!paths.contains { $0.contains(secret) || $0.contains(String(t.rootToken.dropFirst(4))) })
        for path in paths {
            let raw = try #require(try await t.storage.get(path)).value
            #expect(!String(decoding: raw, as: UTF8.self).contains(secret))
        }
    }

    @Test func limitedUseTokenExpiresAfterItsUses() async throws {
        let t = try await TestBroker.make()
        let token = try await createToken(t, ["num_uses": 2], token: nil)
        #expect(await t.status(.read, "auth/token/lookup-self", token: token) == nil)
        #expect(await t.status(.read, "auth/token/lookup-self", token: token) == nil)
        #expect(await t.status(.read, "auth/token/lookup-self", token: token) == 403)
    }

    @Test func badTokenInputs() async throws {
        let t = try await TestBroker.make()
        #expect(await t.status(.update, "auth/token/create", ["ttl": "forever"]) == 400)
        #expect(await t.status(.update, "auth/token/create", ["policies": 5]) == 400)
        #expect(await t.status(.update, "auth/token/create", ["type": "batch"]) == 400)
        #expect(await t.status(.update, "auth/token/create", ["meta": ["a": 1]]) == 400)
        #expect(await t.status(.update, "auth/token/lookup", ["token": "hvs.nope"]) == 400)
    }

    private func createToken(_ t: TestBroker, _ body: [String: JSONValue], token: String?) async throws -> String {
        guard case .envelope(let created, _) = try await t.call(.update, "auth/token/create", body, token: token) else {
            throw APIError.internalError("no envelope")
        }
        return try #require(created.auth["client_token"]?.stringValue)
    }
}
