import Foundation
@testable import MayflyCore
import MayflyStore
import Testing

@Suite struct TokenTests {
    @Test func createLookupRenewRevoke() async throws {
        // The manual clock: the TTL read back is exact, however slow the machine is.
        let t = try await TestBroker.make(clock: ManualClock(Date()))
        guard case .envelope(let created, _) = try await t.call(.update, "auth/token/create", ["ttl": "1h", "meta": ["app": "x"]])
        else { Issue.record("envelope expected"); return }
        let token = try #require(created.auth["client_token"]?.stringValue)
        #expect(token.hasPrefix("hvs."))
        #expect(created.auth["lease_duration"] == 3600)
        #expect(created.auth["policies"] == ["root"], "a child of root inherits root when no policies are named")
        let me = try await t.data(.read, "auth/token/lookup-self", token: token)
        #expect(me["id"]?.stringValue == token)
        #expect(me["ttl"] == 3600)
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
        // An unknown token is 403 "bad token", as Vault answers it (the bao CLI prints that text).
        do {
            _ = try await t.call(.update, "auth/token/lookup", ["token": "hvs.nope"])
            Issue.record("expected 403")
        } catch let error as APIError {
            #expect(error.status == 403 && error.messages == ["bad token"])
        }
        // Booleans as Vault reads them: "false" is false, a non-boolean is refused (never the default).
        guard case .envelope(let created, _) = try await t.call(.update, "auth/token/create", ["renewable": "false"])
        else { Issue.record("envelope expected"); return }
        #expect(created.auth["renewable"] == false)
        #expect(await t.status(.update, "auth/token/create", ["renewable": "maybe"]) == 400)
        #expect(await t.status(.update, "auth/token/create", ["no_parent": 7]) == 400)
    }

    /// Token roles: the role's allowed policies bound what its tokens carry (even policies the
    /// creator does not hold), disallowed ones and root are refused, orphan, renewable and the
    /// explicit max TTL come from the role, and writing a role needs sudo.
    @Test func tokenRolesBoundWhatTheirTokensCarry() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "sys/policies/acl/app", ["policy": #"path "secret/data/app/*" { capabilities = ["read"] }"#])
        _ = try await t.call(.update, "sys/policies/acl/minter", ["policy": """
            path "auth/token/create/app-role" { capabilities = ["update"] }
            path "auth/token/roles/*" { capabilities = ["create", "update", "read"] }
            """])
        _ = try await t.call(.update, "auth/token/roles/app-role", [
            "allowed_policies": "app", "disallowed_policies": ["admin"], "orphan": true, "renewable": false,
            "token_explicit_max_ttl": "2h",
        ])
        let read = try await t.data(.read, "auth/token/roles/app-role")
        #expect(read["allowed_policies"] == ["app"] && read["orphan"] == true && read["token_explicit_max_ttl"] == 7200)
        #expect(try await t.data(.list, "auth/token/roles/")["keys"] == ["app-role"])

        let minter = try await createToken(t, ["policies": ["minter"]], token: nil)
        guard case .envelope(let created, _) = try await t.call(.update, "auth/token/create/app-role", ["ttl": "5h"], token: minter)
        else { Issue.record("envelope expected"); return }
        #expect(created.auth["policies"] == ["app", "default"], "the role's policies, which the minter does not hold")
        #expect(created.auth["orphan"] == true && created.auth["renewable"] == false)
        #expect(created.auth["lease_duration"] == 7200, "capped by the role's explicit max TTL")
        let app = try #require(created.auth["client_token"]?.stringValue)
        let lookup = try await t.data(.read, "auth/token/lookup-self", token: app)
        #expect(lookup["role"] == "app-role" && lookup["path"] == "auth/token/create/app-role")
        #expect(await t.status(.read, "secret/data/app/x", token: app) == 404, "allowed by the app policy: only absent")

        #expect(await t.status(.update, "auth/token/create", ["policies": ["app"]], token: minter) == 403, "no role, no app")
        #expect(await t.status(.update, "auth/token/create/app-role", ["policies": ["admin"]], token: minter) == 400)
        #expect(await t.status(.update, "auth/token/create/app-role", ["policies": ["root"]], token: minter) == 400)
        #expect(await t.status(.update, "auth/token/create/missing") == 400, "unknown role")
        #expect(await t.status(.update, "auth/token/roles/evil", ["allowed_policies": "root"], token: minter) == 403,
                "writing a role needs sudo")
        #expect(await t.status(.update, "auth/token/roles/periodic", ["token_period": "1h"]) == 400)
        #expect(await t.status(.update, "auth/token/roles/both", ["allowed_policies": "a", "disallowed_policies": "a"]) == 400)
        _ = try await t.call(.delete, "auth/token/roles/app-role")
        #expect(await t.status(.read, "auth/token/roles/app-role") == 404)
    }

    private func createToken(_ t: TestBroker, _ body: [String: JSONValue], token: String?) async throws -> String {
        guard case .envelope(let created, _) = try await t.call(.update, "auth/token/create", body, token: token) else {
            throw APIError.internalError("no envelope")
        }
        return try #require(created.auth["client_token"]?.stringValue)
    }
}
