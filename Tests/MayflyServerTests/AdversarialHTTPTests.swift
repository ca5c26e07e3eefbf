import Foundation
import Hummingbird
import HummingbirdTesting
import MayflyCore
import NIOCore
import Testing

/// The adversarial review of issue 11 over HTTP, through the real responder: every spelling of
/// a path the ACL denies is denied too (finding 3, "done when" 2), and a body is never parsed
/// before the request is authorized (finding 6). Broker-level findings are in
/// `MayflyCoreTests/AdversarialTests`.
@Suite struct AdversarialHTTPTests {
    /// One request whose canonical path the narrow token's policy denies.
    struct Probe: Sendable, CustomStringConvertible {
        let method: HTTPRequest.Method
        let path: String
        let body: String?
        var description: String { "\(method) \(path)" }
    }

    /// Route families and the denied paths probed in each (the objects exist, made by root).
    static let probes: [Probe] = [
        // KV
        Probe(method: .get, path: "secret/data/admin", body: nil),
        Probe(method: .post, path: "secret/data/admin", body: #"{"data":{"password":"pwned"}}"#),
        Probe(method: .delete, path: "secret/data/admin", body: nil),
        Probe(method: .get, path: "secret/metadata/admin", body: nil),
        Probe(method: .delete, path: "secret/metadata/admin", body: nil),
        Probe(method: .post, path: "secret/destroy/admin", body: #"{"versions":[1]}"#),
        // database
        Probe(method: .get, path: "database/config/admin", body: nil),
        Probe(method: .post, path: "database/config/admin",
              body: #"{"connection_url":"postgresql://evil@10.9.9.9:5432/x?sslmode=verify-full","verify_connection":false}"#),
        Probe(method: .delete, path: "database/config/admin", body: nil),
        Probe(method: .get, path: "database/roles/admin", body: nil),
        Probe(method: .post, path: "database/roles/admin", body: #"{"db_name":"admin","default_ttl":"1h"}"#),
        Probe(method: .delete, path: "database/roles/admin", body: nil),
        Probe(method: .get, path: "database/creds/admin", body: nil),
        Probe(method: .get, path: "database/static-roles/admin", body: nil),
        Probe(method: .post, path: "database/static-roles/admin", body: #"{"db_name":"admin","username":"x","rotation_period":"1h"}"#),
        Probe(method: .get, path: "database/static-creds/admin", body: nil),
        Probe(method: .post, path: "database/rotate-role/admin", body: nil),
        Probe(method: .post, path: "database/rotate-root/admin", body: nil),
        // sys
        Probe(method: .get, path: "sys/policies/acl/admin", body: nil),
        Probe(method: .put, path: "sys/policies/acl/admin", body: #"{"policy":"path \"*\" { capabilities = [\"sudo\"] }"}"#),
        Probe(method: .delete, path: "sys/policies/acl/admin", body: nil),
        Probe(method: .put, path: "sys/policy/admin", body: #"{"policy":"path \"*\" { capabilities = [\"sudo\"] }"}"#),
        Probe(method: .delete, path: "sys/policy/admin", body: nil),
        Probe(method: .put, path: "sys/leases/revoke-prefix/database/creds/admin", body: nil),
        Probe(method: .put, path: "sys/leases/revoke-force/database/creds/admin", body: nil),
        Probe(method: .put, path: "sys/leases/lookup", body: #"{"lease_id":"database/creds/admin/x"}"#),
        Probe(method: .put, path: "sys/mayfly/revoke", body: #"{"all":true,"reason":"pwn","dry_run":true}"#),
        Probe(method: .put, path: "sys/seal", body: nil),
        Probe(method: .put, path: "sys/rotate", body: nil),
        // auth
        Probe(method: .post, path: "auth/token/create", body: #"{"policies":["admin"]}"#),
        Probe(method: .post, path: "auth/token/roles/admin", body: #"{"allowed_policies":["admin"]}"#),
        Probe(method: .delete, path: "auth/token/roles/admin", body: nil),
        Probe(method: .post, path: "auth/token/create/admin", body: nil),
        Probe(method: .get, path: "auth/approle/role/admin", body: nil),
        Probe(method: .post, path: "auth/approle/role/admin", body: #"{"token_policies":["admin"]}"#),
        Probe(method: .delete, path: "auth/approle/role/admin", body: nil),
        Probe(method: .get, path: "auth/approle/role/admin/role-id", body: nil),
        Probe(method: .post, path: "auth/approle/role/admin/secret-id", body: nil),
    ]

    /// Spellings of `path` that name the same canonical path.
    static func sameVariants(_ path: String) -> [String] {
        let lastSlash = path.lastIndex(of: "/")!
        let head = path[..<lastSlash], tail = path[path.index(after: lastSlash)...]
        let firstSlash = path.firstIndex(of: "/")!
        return [
            path + "/", path + "//", "/" + path, head + "//" + tail, head + "%2f" + tail, head + "%2F" + tail,
            path + "%2f", path[..<firstSlash] + "//" + path[path.index(after: firstSlash)...], path + "/%2f",
        ]
    }

    /// `path` with the slash before the name missing (`sys/policyadmin`; for a path without a
    /// name, before its last segment): another path, which must not reach the named object.
    static func mergedVariant(_ path: String) -> String {
        if let name = path.range(of: "/admin") { return path.replacingCharacters(in: name, with: "admin") }
        var merged = path
        merged.remove(at: path.lastIndex(of: "/")!)
        return merged
    }

    static func narrowPolicy() -> String {
        var text = """
            path "secret/*" { capabilities = ["create", "read", "update", "patch", "delete", "list"] }
            path "database/*" { capabilities = ["create", "read", "update", "delete", "list"] }
            path "sys/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }
            path "auth/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }

            """
        for path in Set(probes.map(\.path)) { text += "path \"\(path)\" { capabilities = [\"deny\"] }\n" }
        return text
    }

    static func json(_ text: String) -> String {
        String(decoding: JSONValue.string(text).encoded(), as: UTF8.self)
    }

    /// Finding 3 and "done when" 2: for each route family, no spelling of a denied path (trailing
    /// `/`, `//`, `%2f`, a leading `/`) is allowed, and the slash before a name cannot be left
    /// out to reach a handler (`sys/policyadmin`). Nothing the probes aimed at changed.
    @Test func pathVariantsNeverReachWhatTheCanonicalPathDenies() async throws {
        let server = try await VaultWireTests.server()
        try await server.app.test(.router) { client in
            let root = try await VaultWireTests.initialise(client)
            let auth = VaultWireTests.auth(root)
            func send(_ method: HTTPRequest.Method, _ path: String, _ body: String?, token: String) async throws -> (Int, String) {
                try await client.execute(uri: "/v1/" + path, method: method, headers: VaultWireTests.auth(token),
                                         body: body.map(VaultWireTests.body)) { response in
                    (Int(response.status.code), String(buffer: response.body))
                }
            }
            // The objects the probes aim at, made by root.
            for (method, path, body) in [
                (HTTPRequest.Method.post, "secret/data/admin", #"{"data":{"password":"original"}}"#),
                (.put, "sys/policies/acl/admin", #"{"policy":"path \"secret/data/admin\" { capabilities = [\"read\"] }"}"#),
                (.put, "sys/policies/acl/narrow", #"{"policy":\#(Self.json(Self.narrowPolicy()))}"#),
                (.post, "database/config/admin",
                 #"{"connection_url":"postgresql://admin@127.0.0.1:5432/admin?sslmode=verify-full","verify_connection":false,"allowed_roles":"*"}"#),
                (.post, "database/roles/admin", #"{"db_name":"admin"}"#),
                (.post, "auth/token/roles/admin", #"{"allowed_policies":["default"]}"#),
                (.post, "auth/approle/role/admin", #"{"token_policies":["default"]}"#),
            ] {
                let (status, text) = try await send(method, path, body, token: root)
                #expect((200..<300).contains(status), "setup \(path): \(status) \(text)")
            }
            let narrow = try await client.execute(uri: "/v1/auth/token/create", method: .post, headers: auth,
                                                  body: VaultWireTests.body(#"{"policies":["narrow"]}"#)) { response in
                try #require(try VaultWireTests.json(response.body)["auth"]?["client_token"]?.stringValue)
            }
            var tried = 0
            for probe in Self.probes {
                let (canonical, _) = try await send(probe.method, probe.path, probe.body, token: narrow)
                #expect(canonical == 403, "\(probe): the policy denies it, got \(canonical)")
                for variant in Self.sameVariants(probe.path) {
                    let (status, text) = try await send(probe.method, variant, probe.body, token: narrow)
                    #expect(status == 403, "\(probe.method) \(variant): \(status) \(text)")
                    tried += 1
                }
                // (A lease prefix with its last slash gone is another prefix the token may revoke.)
                guard !probe.path.hasPrefix("sys/leases/revoke-") else { continue }
                let merged = Self.mergedVariant(probe.path)
                let (status, text) = try await send(probe.method, merged, probe.body, token: narrow)
                #expect(!(200..<300).contains(status), "\(probe.method) \(merged): \(status) \(text)")
            }
            #expect(tried >= 300)
            // Nothing changed behind the refusals.
            let (kv, kvText) = try await send(.get, "secret/data/admin", nil, token: root)
            #expect(kv == 200 && kvText.contains("original") && !kvText.contains("pwned"))
            let (policy, policyText) = try await send(.get, "sys/policies/acl/admin", nil, token: root)
            #expect(policy == 200 && !policyText.contains("sudo"))
            let (config, configText) = try await send(.get, "database/config/admin", nil, token: root)
            #expect(config == 200 && !configText.contains("evil"))
            #expect(try await send(.get, "database/roles/admin", nil, token: root).0 == 200)
            #expect(try await send(.get, "auth/approle/role/admin", nil, token: root).0 == 200)
            #expect(try await send(.get, "sys/seal-status", nil, token: root).1.contains(#""sealed":false"#))
        }
    }

    /// Finding 6: a body is read only after the request is authorized. Malformed JSON from a
    /// caller without a token (or without the capability) is a 403, never a parse error — the
    /// server did not parse it — and a caller with no token may send only a small body.
    @Test func bodiesAreNotParsedBeforeAuthorization() async throws {
        let server = try await VaultWireTests.server(maxBody: 8 << 20)
        try await server.app.test(.router) { client in
            let root = try await VaultWireTests.initialise(client)
            let malformed = VaultWireTests.body(#"{"data": {"a": "#)
            try await client.execute(uri: "/v1/secret/data/x", method: .post, body: malformed) { response in
                #expect(response.status.code == 403, "no token: refused before the body is read")
            }
            try await client.execute(uri: "/v1/secret/data/x", method: .post, headers: VaultWireTests.auth("hvs.nonsense"),
                                     body: malformed) { #expect($0.status.code == 403) }
            let reader = try await client.execute(uri: "/v1/auth/token/create", method: .post, headers: VaultWireTests.auth(root),
                                                  body: VaultWireTests.body(#"{"policies":["default"]}"#)) { response in
                try #require(try VaultWireTests.json(response.body)["auth"]?["client_token"]?.stringValue)
            }
            try await client.execute(uri: "/v1/secret/data/x", method: .post, headers: VaultWireTests.auth(reader),
                                     body: malformed) { #expect($0.status.code == 403, "no capability: same") }
            // With the capability, the body is parsed (and its error is the caller's to see).
            try await client.execute(uri: "/v1/secret/data/x", method: .post, headers: VaultWireTests.auth(root),
                                     body: malformed) { #expect($0.status.code == 400) }
            // Unauthenticated routes take small bodies only.
            let big = #"{"key":""# + String(repeating: "a", count: 200_000) + #""}"#
            try await client.execute(uri: "/v1/sys/unseal", method: .put, body: VaultWireTests.body(big)) {
                #expect($0.status.code == 413)
            }
            try await client.execute(uri: "/v1/auth/approle/login", method: .post, body: VaultWireTests.body(big)) {
                #expect($0.status.code == 413)
            }
            // An authorized large body (parsed on its own thread) works as before.
            var fields: [String] = []
            for index in 0..<20_000 { fields.append("\"k\(index)\":\"v\(index)\"") }
            let large = #"{"data":{"# + fields.joined(separator: ",") + "}}"
            try await client.execute(uri: "/v1/secret/data/large", method: .post, headers: VaultWireTests.auth(root),
                                     body: VaultWireTests.body(large)) { #expect($0.status.code == 200) }
            try await client.execute(uri: "/v1/secret/data/large", method: .get, headers: VaultWireTests.auth(root)) {
                (response: TestResponse) throws in
                #expect(try VaultWireTests.json(response.body)["data"]?["data"]?["k19999"] == "v19999")
            }
            // `vault write -f` sends the JSON null: no data, as Vault takes it.
            try await client.execute(uri: "/v1/auth/token/create", method: .post, headers: VaultWireTests.auth(root),
                                     body: VaultWireTests.body("null")) { #expect($0.status.code == 200) }
        }
    }
}
