import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import MayflyCore
import MayflyServer
import MayflyStore
import NIOCore
import Testing
import MayflyTestSupport

/// The Vault wire rules (the /v1/ prefix, methods, token headers, the envelope and error bodies) through the real responder.
@Suite struct VaultWireTests {
    struct Server {
        let app: Application<VaultResponder>
        let broker: Broker
        let directory: String
    }

    static func server(maxBody: Int = 1 << 20) async throws -> Server {
        let directory = NSTemporaryDirectory() + "/mf-wire-\(UUID().uuidString.prefix(8))"
        var config = MayflyConfig(storagePath: directory + "/m.db")
        config.unixListeners = [UnixListenerConfig(path: directory + "/s.sock")]
        config.maxRequestSize = maxBody
        let broker = try await Broker.open(config: config, logger: Logger.test())
        let responder = VaultResponder(broker: broker, maxBodySize: maxBody, logger: Logger.test())
        return Server(app: Application(responder: responder), broker: broker, directory: directory)
    }

    static func json(_ buffer: ByteBuffer) throws -> JSONValue { try JSONValue.parse(buffer.readableBytesView) }

    static func body(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    /// Initialises and unseals through HTTP; returns the root token.
    static func initialise(_ client: some TestClientProtocol) async throws -> String {
        let initBody = try await client.execute(
            uri: "/v1/sys/init", method: .put, body: body(#"{"secret_shares":1,"secret_threshold":1}"#)
        ) { try json($0.body) }
        let key = try #require(initBody["keys"]?.arrayValue?.first?.stringValue)
        try await client.execute(uri: "/v1/sys/unseal", method: .put, body: body(#"{"key":"\#(key)"}"#)) { (response: TestResponse) throws in
            #expect(response.status == .ok)
            #expect(try json(response.body)["sealed"] == false)
        }
        return try #require(initBody["root_token"]?.stringValue)
    }

    static func auth(_ token: String) -> HTTPFields { [.init("X-Vault-Token")!: token] }

    @Test func uninitialisedAndSealedStates() async throws {
        let server = try await Self.server()
        try await server.app.test(.router) { client in
            try await client.execute(uri: "/v1/sys/health", method: .get) { (response: TestResponse) throws in
                #expect(response.status.code == 501)
                #expect(response.headers[.contentType] == "application/json")
                #expect(try Self.json(response.body)["initialized"] == false)
            }
            try await client.execute(uri: "/v1/sys/health?uninitcode=299", method: .get) { #expect($0.status.code == 299) }
            try await client.execute(uri: "/v1/sys/health?sealedcode=abc", method: .get) { #expect($0.status.code == 400) }
            try await client.execute(uri: "/v1/sys/init", method: .get) { (response: TestResponse) throws in
                #expect(try Self.json(response.body) == ["initialized": false])
            }
            try await client.execute(uri: "/v1/secret/data/x", method: .get) { (response: TestResponse) throws in
                #expect(response.status.code == 503)
                #expect(try Self.json(response.body) == ["errors": ["Vault is sealed"]])
            }
            let token = try await Self.initialise(client)
            try await client.execute(uri: "/v1/sys/health", method: .head) { (response: TestResponse) throws in
                #expect(response.status.code == 200)
                #expect(response.body.readableBytes == 0)
            }
            try await client.execute(uri: "/v1/sys/seal", method: .put, headers: Self.auth(token)) { (response: TestResponse) throws in
                #expect(response.status == .noContent)
                #expect(response.body.readableBytes == 0)
            }
            try await client.execute(uri: "/v1/sys/health", method: .get) { #expect($0.status.code == 503) }
            try await client.execute(uri: "/v1/sys/health?sealedcode=200", method: .get) { #expect($0.status.code == 200) }
            for (method, uri) in [(HTTPRequest.Method.get, "/v1/secret/data/x"), (.post, "/v1/secret/data/x"),
                                  (.get, "/v1/auth/token/lookup-self"), (.get, "/v1/sys/key-status")] {
                try await client.execute(uri: uri, method: method, headers: Self.auth(token), body: Self.body(#"{"data":{}}"#)) {
                    #expect($0.status.code == 503, "\(uri)")
                }
            }
            try await client.execute(uri: "/v1/sys/seal-status", method: .get) { (response: TestResponse) throws in
                let status = try Self.json(response.body)
                #expect(status["sealed"] == true)
                #expect(status["t"] == 1)
                #expect(status["cluster_id"] == nil)
            }
        }
    }

    @Test func envelopeErrorsAndHeaders() async throws {
        let server = try await Self.server()
        try await server.app.test(.router) { client in
            let token = try await Self.initialise(client)
            try await client.execute(uri: "/v1/secret/data/app", method: .post, headers: Self.auth(token),
                                     body: Self.body(#"{"data":{"pw":"x"}}"#)) { (response: TestResponse) throws in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/json")
                #expect(response.headers[.cacheControl] == "no-store")
                let body = try Self.json(response.body)
                #expect(Set(body.objectValue?.keys ?? [:].keys) == [
                    "request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth",
                ])
                #expect(body["lease_duration"] == 0)
                #expect(body["data"]?["version"] == 1)
            }
            // Bearer works too; a bad token is 403 with Vault's multierror text, never 401.
            try await client.execute(uri: "/v1/secret/data/app", method: .get, headers: [.authorization: "Bearer \(token)"]) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/v1/secret/data/app", method: .get, headers: Self.auth("hvs.bad")) { (response: TestResponse) throws in
                #expect(response.status.code == 403)
                #expect(response.headers[.contentType] == "application/json")
                #expect(try Self.json(response.body) == ["errors": ["1 error occurred:\n\t* permission denied\n\n"]])
            }
            try await client.execute(uri: "/v1/secret/data/app", method: .get) { #expect($0.status.code == 403) }
            try await client.execute(uri: "/v1/secret/data/missing", method: .get, headers: Self.auth(token)) { (response: TestResponse) throws in
                #expect(response.status.code == 404)
                #expect(try Self.json(response.body) == ["errors": []])
            }
            try await client.execute(uri: "/nope", method: .get) { #expect($0.status.code == 404) }
            try await client.execute(uri: "/v1/nothing/here", method: .get, headers: Self.auth(token)) { (response: TestResponse) throws in
                #expect(response.status.code == 404)
                #expect(try Self.json(response.body)["errors"]?.arrayValue?.first?.stringValue?.contains("no handler for route") == true)
            }
            // LIST verb and ?list=true both list; folders end in "/".
            try await client.execute(uri: "/v1/secret/data/dir/inner", method: .post, headers: Self.auth(token),
                                     body: Self.body(#"{"data":{"a":"b"}}"#)) { #expect($0.status == .ok) }
            for (method, uri) in [(HTTPRequest.Method("LIST")!, "/v1/secret/metadata"), (.get, "/v1/secret/metadata/?list=true")] {
                try await client.execute(uri: uri, method: method, headers: Self.auth(token)) { (response: TestResponse) throws in
                    #expect(response.status == .ok)
                    #expect(try Self.json(response.body)["data"]?["keys"] == ["app", "dir/"])
                }
            }
            try await client.execute(uri: "/v1/secret/metadata/empty/?list=1", method: .get, headers: Self.auth(token)) {
                #expect($0.status.code == 404)
            }
            try await client.execute(uri: "/v1/secret/data/app", method: .init("FROB")!, headers: Self.auth(token)) {
                #expect($0.status.code == 405)
            }
            try await client.execute(uri: "/v1/secret/data/app", method: .patch, headers: Self.auth(token), body: Self.body("{}")) {
                #expect($0.status.code == 415)
            }
            try await client.execute(uri: "/v1/secret/data/app", method: .get, headers: [
                .init("X-Vault-Token")!: token, .init("X-Vault-Wrap-TTL")!: "5m",
            ]) { #expect($0.status.code == 400) }
            try await client.execute(uri: "/v1/sys/internal/ui/mounts/secret/app", method: .get, headers: Self.auth(token)) { (response: TestResponse) throws in
                let data = try Self.json(response.body)["data"]
                #expect(data?["path"] == "secret/")
                #expect(data?["type"] == "kv")
                #expect(data?["options"]?["version"] == "2")
            }
            try await client.execute(uri: "/v1/sys/key-status", method: .get, headers: Self.auth(token)) { (response: TestResponse) throws in
                let body = try Self.json(response.body)
                #expect(body["term"] == 1, "sys/key-status repeats data at the top level")
                #expect(body["data"]?["term"] == 1)
            }
        }
    }

    /// A form body is parsed as a form, unless it looks like JSON (what `curl -d` sends).
    @Test func formBodiesAreParsedLikeVault() async throws {
        let server = try await Self.server()
        try await server.app.test(.router) { client in
            let token = try await Self.initialise(client)
            var headers = Self.auth(token)
            headers[.contentType] = "application/x-www-form-urlencoded"
            let form = try await client.execute(uri: "/v1/auth/token/create", method: .post, headers: headers,
                                                body: Self.body("policies=default&ttl=10m&display_name=form+app")) {
                try Self.json($0.body)["auth"]
            }
            #expect(form?["lease_duration"] == 600 && form?["policies"] == ["default"])
            let json = try await client.execute(uri: "/v1/auth/token/create", method: .post, headers: headers,
                                                body: Self.body(#" {"ttl":"20m"}"#)) { try Self.json($0.body)["auth"] }
            #expect(json?["lease_duration"] == 1200)
            try await client.execute(uri: "/v1/auth/token/create", method: .post, headers: headers, body: Self.body("ttl=%zz")) {
                #expect($0.status.code == 400)
            }
        }
    }

    /// `sys/mounts`, `sys/auth`, `sys/audit` and the UI preflight describe one fixed table;
    /// enabling or disabling anything is refused with a message naming what exists.
    @Test func mountsAuthMethodsAndAuditDevicesAreListedAndFixed() async throws {
        let server = try await Self.server()
        try await server.app.test(.router) { client in
            let token = try await Self.initialise(client)
            func call(_ method: HTTPRequest.Method, _ path: String, _ body: String = "{}") async throws -> (Int, JSONValue) {
                try await client.execute(uri: "/v1/" + path, method: method, headers: Self.auth(token), body: Self.body(body)) {
                    (Int($0.status.code), $0.body.readableBytes == 0 ? .null : try Self.json($0.body))
                }
            }
            let (status, mounts) = try await call(.get, "sys/mounts")
            #expect(status == 200)
            #expect(mounts["data"]?["secret/"]?["type"] == "kv" && mounts["data"]?["secret/"]?["options"]?["version"] == "2")
            #expect(mounts["data"]?["database/"]?["type"] == "database")
            #expect(mounts["secret/"]?["type"] == "kv", "sys/mounts repeats data at the top level")
            #expect(try await call(.get, "sys/mounts/database").1["data"]?["type"] == "database")
            let (refused, why) = try await call(.post, "sys/mounts/kv-other", #"{"type":"kv"}"#)
            #expect(refused == 400 && why["errors"]?.arrayValue?.first?.stringValue?.contains("fixed: secret/ (kv), database/ (database)") == true)
            #expect(try await call(.post, "sys/mounts/secret", #"{"type":"kv"}"#).1["errors"] == ["path is already in use at secret/"])
            #expect(try await call(.delete, "sys/mounts/secret").0 == 400, "a mount cannot be disabled")
            let auth = try await call(.get, "sys/auth").1
            #expect(auth["data"]?["approle/"]?["type"] == "approle" && auth["data"]?["token/"]?["type"] == "token")
            #expect(try await call(.post, "sys/auth/userpass", #"{"type":"userpass"}"#).0 == 400)
            let audit = try await call(.get, "sys/audit")
            #expect(audit.0 == 200 && audit.1["data"] == [:], "no audit device in this config")
            #expect(try await call(.put, "sys/audit/file", #"{"type":"file"}"#).0 == 400)
            let preflight = try await call(.get, "sys/internal/ui/mounts/nomount/x")
            #expect(preflight.0 == 403, "a path under no mount looks like a denied one")
            #expect(preflight.1["errors"]?.arrayValue?.first?.stringValue?.hasPrefix("preflight capability check returned 403") == true)
            let all = try await call(.get, "sys/internal/ui/mounts").1
            #expect(all["data"]?["secret"]?["secret/"]?["type"] == "kv")
            #expect(all["data"]?["auth"]?["approle/"]?["type"] == "approle")
        }
    }

    @Test(arguments: [
        (String(repeating: "[", count: 2000) + String(repeating: "]", count: 2000), 400, "nested more than 64 levels"),
        (#"{"data": {"a": "b"}"#, 400, "failed to parse JSON input"),
        (#"["data"]"#, 400, "request body must be a JSON object"),
        (#"{"data": "text"}"#, 400, "data must be a JSON object"),
        (#"{"data": {"a": 1}, "options": {"cas": "x"}}"#, 400, "cas must be"),
        (#"{"options": {}}"#, 400, "no data provided"),
    ])
    func badBodiesAre4xxAndStoreNothing(body: String, status: Int, fragment: String) async throws {
        let server = try await Self.server()
        try await server.app.test(.router) { client in
            let token = try await Self.initialise(client)
            try await client.execute(uri: "/v1/secret/data/bad", method: .post, headers: Self.auth(token), body: Self.body(body)) { (response: TestResponse) throws in
                #expect(response.status.code == status)
                let message = try Self.json(response.body)["errors"]?.arrayValue?.first?.stringValue ?? ""
                #expect(message.contains(fragment), "\(message)")
            }
            try await client.execute(uri: "/v1/secret/data/bad", method: .get, headers: Self.auth(token)) {
                #expect($0.status.code == 404, "nothing may be stored after a rejected write")
            }
        }
    }

    @Test func oversizedBodyIs413AndStoresNothing() async throws {
        let server = try await Self.server(maxBody: 4096)
        try await server.app.test(.router) { client in
            let token = try await Self.initialise(client)
            let big = #"{"data":{"blob":""# + String(repeating: "x", count: 10_000) + #""}}"#
            try await client.execute(uri: "/v1/secret/data/big", method: .post, headers: Self.auth(token), body: Self.body(big)) {
                #expect($0.status.code == 413)
            }
            try await client.execute(uri: "/v1/secret/data/big", method: .get, headers: Self.auth(token)) {
                #expect($0.status.code == 404)
            }
        }
    }
}
