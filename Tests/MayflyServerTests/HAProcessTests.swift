import Foundation
import MayflyTestSupport
import Glibc
import MayflyClient
import MayflyPostgres
import Testing

/// HA on one PostgreSQL store (issue 15): nodes elect a leader through the lock row; a standby
/// answers health with 429 and forwards everything else to the leader with the identity it
/// resolved itself; a kill -9 of the leader hands the lead to a standby within lock_ttl + 2 s;
/// a leader that was frozen past its lock's expiry cannot write when it wakes, and steps down.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["MAYFLY_TEST_PG_HOST"] != nil
    || ProcessInfo.processInfo.environment["MAYFLY_REQUIRE_INTEGRATION"] == "1", "needs the test PostgreSQL from scripts/test"),
    .serialized)
struct HAProcessTests {
    static let lockTTL = 3

    /// A node of the cluster on `schema`: its own socket and cluster port, the shared key file
    /// and policies, uid 0 (this test) bound to `app-reader`.
    /// `keyFile: false`: sealed with Shamir shares instead (`sys/init` returns them).
    static func node(_ name: String, schema: String, shared: String, tls: Bool = false, keyFile: Bool = true) throws -> ServerProcess {
        let storage = try PostgresStoreProcessTests.storage(schema: schema, directory: shared, extra: """
            ha_enabled = true
              lock_ttl   = "\(lockTTL)s"
              node_id    = "\(name)"
            """)
        return try ServerProcess(extraConfig: """
            \(keyFile ? "seal \"keyfile\" { path = \"\(shared)/unseal.key\" }" : "")
            cluster_addr = "https://127.0.0.1:\(LoopbackPort.free())"
            api_addr     = "https://\(name).example:8200"
            policies { directory = "\(shared)/policies" }
            bind "unix:uid:0" { policies = ["app-reader"] }
            bind "cert:spiffe://mayfly/writer" { policies = ["app-writer"] }
            limits {
              leases_per_identity            = 0
              issues_per_identity_per_minute = 0
            }
            scheduler { jitter = "0s" }
            \(!tls ? "" : """
                listener "tcp" {
                  address = "127.0.0.1:\(LoopbackPort.free())"
                  tls_cert_file = "\(shared)/server.pem"
                  tls_key_file = "\(shared)/server.key"
                  tls_handshake_timeout = "5m"
                }
                """)
            """, logLevel: "debug", storage: storage)
    }

    static func cluster() throws -> (schema: String, shared: String) {
        let schema = "mf_ha_" + UUID().uuidString.prefix(8).lowercased()
        let shared = "/tmp/mf-ha-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: shared + "/policies", withIntermediateDirectories: true)
        try #"path "secret/data/app" { capabilities = ["read"] }"#.write(
            toFile: shared + "/policies/app-reader.hcl", atomically: true, encoding: .utf8)
        try #"path "secret/data/app" { capabilities = ["create", "update", "read"] }"#.write(
            toFile: shared + "/policies/app-writer.hcl", atomically: true, encoding: .utf8)
        return (schema, shared)
    }

    /// Node a, initialised (it leads), and node b, its standby; the root token.
    static func leaderAndStandby(schema: String, shared: String) async throws -> (a: ServerProcess, b: ServerProcess, token: String) {
        let a = try node("node-a", schema: schema, shared: shared)
        try await a.start()
        let token = try #require(try JSONValue.parse(try await a.request("PUT", "sys/init", json: "{}").body)["root_token"]?.stringValue)
        let b = try node("node-b", schema: schema, shared: shared)
        try await b.start()
        try await Self.waitFor(b, health: 429, within: 30)
        return (a, b, token)
    }

    /// Runs `body` on a fresh cluster (`cluster()`): node a leading, node b its standby, the
    /// root token, the cluster's schema and shared directory; both nodes are killed and the
    /// directory removed afterwards.
    static func withLeaderAndStandby(
        _ body: (_ a: ServerProcess, _ b: ServerProcess, _ token: String, _ schema: String, _ shared: String) async throws -> Void
    ) async throws {
        let (schema, shared) = try cluster()
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let (a, b, token) = try await leaderAndStandby(schema: schema, shared: shared)
        defer {
            a.signal(SIGKILL)
            b.signal(SIGKILL)
        }
        try await body(a, b, token, schema, shared)
    }

    /// Polls `node`'s `sys/health` until it answers `status` (at most `seconds`); the seconds it took.
    @discardableResult
    static func waitFor(_ node: ServerProcess, health status: Int, within seconds: Double) async throws -> Double {
        let started = Date()
        var last = -1
        var unanswered = 0
        // Probes until the deadline, and once after it: at the start of a full run dozens of
        // servers start on two cores and this process can get no CPU for a minute; a node that
        // answered meanwhile is not failed for the time this test did not run.
        var lastProbe = false
        while !lastProbe {
            lastProbe = Date().timeIntervalSince(started) >= seconds
            // Each probe gets 3 s: on a busy machine one connection can stall, the next is tried.
            last = await withTaskGroup(of: Int?.self) { group in
                group.addTask { try? await node.request("GET", "sys/health").status }
                group.addTask {
                    try? await Task.sleep(for: .seconds(3))
                    return nil
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first ?? -2
            }
            if last == -2 { unanswered += 1 }
            if last == status { return Date().timeIntervalSince(started) }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("sys/health stayed \(last), not \(status), for \(seconds) s (\(unanswered) probes unanswered in 3 s); log:\n\(node.log().suffix(20000))")
        return seconds
    }

    /// `request` retried while it answers 503 (a standby before the leader made the cluster certificate).
    static func retrying(_ node: ServerProcess, _ method: String, _ path: String, token: String? = nil, json: String? = nil)
        async throws -> MayflyClient.Response
    {
        let deadline = Date().addingTimeInterval(15)
        while true {
            let response = try await node.request(method, path, token: token, json: json)
            if response.status != 503 || Date() > deadline { return response }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    @Test func aStandbyForwardsWithItsCallersIdentityAndLeadsWithinTheTTLAfterAKill9() async throws {
        try await Self.withLeaderAndStandby { a, b, token, schema, shared in
            #expect(try await a.request("GET", "sys/health").status == 200)

            #expect(try await b.request("GET", "sys/health", query: [("standbyok", "true")]).status == 200)
            let leader = try JSONValue.parse(try await b.request("GET", "sys/leader").body)
            #expect(leader["ha_enabled"]?.boolValue == true && leader["is_self"]?.boolValue == false, "\(leader)")
            #expect(leader["leader_address"]?.stringValue == "https://node-a.example:8200", "\(leader)")
            #expect(try JSONValue.parse(try await a.request("GET", "sys/leader").body)["is_self"]?.boolValue == true)

            // Written through the standby, read through the leader: one store, one writer.
            let secret = "s-\(UUID().uuidString)"
            let written = try await Self.retrying(b, "POST", "secret/data/app", token: token, json: #"{"data":{"pw":"\#(secret)"}}"#)
            #expect(written.status == 200, "\(String(decoding: written.body, as: UTF8.self))")
            #expect(try JSONValue.parse(try await a.request("GET", "secret/data/app", token: token).body)["data"]?["data"]?["pw"]?.stringValue == secret)
            // The standby's own socket proves uid 0, which the leader's binding maps to app-reader:
            // no token needed for its path, and nothing beyond it.
            let bound = try await b.request("GET", "secret/data/app")
            #expect(bound.status == 200, "\(String(decoding: bound.body, as: UTF8.self))")
            #expect(try JSONValue.parse(bound.body)["data"]?["data"]?["pw"]?.stringValue == secret)
            #expect(try await b.request("POST", "secret/data/app", json: #"{"data":{"pw":"x"}}"#).status == 403)
            #expect(try await b.request("GET", "secret/data/other").status == 403)
            // A client cannot claim another identity (one bound to write) by sending the forwarding
            // header itself: the standby drops it and sends the identity its socket proved.
            let client = try MayflyClient(address: "unix://" + b.socketPath, token: nil)
            let forged = try await client.request("POST", "secret/data/app", body: Data(#"{"data":{"pw":"forged"}}"#.utf8), headers: [
                ("X-Mayfly-Forwarded-Identity", #"{"cert":{"uris":["spiffe://mayfly/writer"],"dns":[],"cn":null}}"#),
            ])
            try? await client.shutdown()
            #expect(forged.status == 403)

            // kill -9 of the leader: the standby takes the lock within lock_ttl + 2 s (when its new
            // term was acquired, on PostgreSQL's clock: the probe below is slowed by a busy test
            // machine, the takeover is what is measured) and serves the store.
            let admin = try await ReconcileProcessTests.admin()
            defer { Task { await admin.close() } }
            // The kill happened between `before` and `after` (both on PostgreSQL's clock): normally
            // milliseconds apart; when this test process was not run for a while in between (a full
            // run starts dozens of servers on two cores), the takeover is measured from `after`.
            func now() async throws -> Double {
                try #require(try await admin.query("SELECT extract(epoch FROM clock_timestamp())").first?[0].flatMap(Double.init))
            }
            let before = try await now()
            a.signal(SIGKILL)
            let after = try await now()
            await a.kill(signal: SIGKILL)
            try await Self.waitFor(b, health: 200, within: 30)
            let acquired = try await admin.query(
                "SELECT extract(epoch FROM acquired_at), node FROM \"\(schema)\".leader").first
            #expect(acquired?[1]?.hasPrefix("node-b/") == true)
            let took = (acquired?[0].flatMap(Double.init) ?? .infinity) - after
            #expect(took <= Double(Self.lockTTL) + 2,
                    "the standby took the lock \(took) s after the kill (sent between \(after - before) s before that and then)")
            #expect(try JSONValue.parse(try await b.request("GET", "secret/data/app", token: token).body)["data"]?["data"]?["pw"]?.stringValue == secret)
            #expect(try await b.request("POST", "secret/data/app", token: token, json: #"{"data":{"pw":"after"}}"#).status == 200)
            #expect(b.log().contains("this node leads now"))
        }
    }

    @Test func aLeaderFrozenPastItsLockCannotWriteWhenItWakesAndBecomesAStandby() async throws {
        try await Self.withLeaderAndStandby { a, b, token, _, _ in
            #expect(try await Self.retrying(b, "POST", "secret/data/app", token: token, json: #"{"data":{"v":"before"}}"#).status == 200)

            // Frozen, with a write waiting in its socket: the lock expires and b takes over.
            let pid = try #require(a.pid)
            Glibc.kill(pid, SIGSTOP)
            let pending = Task { try await a.request("POST", "secret/data/frozen", token: token, json: #"{"data":{"v":"late"}}"#) }
            try await Self.waitFor(b, health: 200, within: 30)
            #expect(try await b.request("POST", "secret/data/app", token: token, json: #"{"data":{"v":"new-leader"}}"#).status == 200)
            Glibc.kill(pid, SIGCONT)

            // The late write either went to the new leader (forwarded once a stepped down) or was
            // refused; it never landed as the old leader's.
            let late = try await pending.value
            let stored = try await b.request("GET", "secret/data/frozen", token: token)
            if late.status == 200 {
                #expect(stored.status == 200)
            } else {
                #expect(late.status == 503, "\(String(decoding: late.body, as: UTF8.self))")
                #expect(stored.status == 404, "a refused write is not in the store")
            }
            // The old leader is a standby now, and its socket keeps working through the new leader.
            try await Self.waitFor(a, health: 429, within: 30)
            let read = try await Self.retrying(a, "GET", "secret/data/app", token: token)
            #expect(try JSONValue.parse(read.body)["data"]?["data"]?["v"]?.stringValue == "new-leader")
            #expect(a.log().contains("no longer leads"))

            // A graceful stop gives the lock up (the release is logged only once the store took
            // it), and the standby takes it with the next term.
            await b.kill(signal: SIGTERM)
            try await Self.waitFor(a, health: 200, within: 30)
            #expect(b.log().contains("leader lock released"), "\(b.log().suffix(3000))")
            #expect(a.log().contains("term=3"), "a leads in the term after b's")
        }
    }

    /// Lease ids (`database/creds/<role>/<id>`) named by the markers of `role`'s roles in PostgreSQL, by username.
    static func markedLeases(_ role: String) async throws -> [String: String] {
        let admin = try await ReconcileProcessTests.admin()
        defer { Task { await admin.close() } }
        let rows = try await admin.query(
            "SELECT rolname, shobj_description(oid, 'pg_authid') FROM pg_roles WHERE shobj_description(oid, 'pg_authid') LIKE $1",
            ["mayfly lease database/creds/\(role)/%"])
        var leases: [String: String] = [:]
        for row in rows {
            guard let name = row[0], let marker = row[1] else { continue }
            leases[name] = marker.split(separator: " ").dropFirst(2).first.map(String.init)
        }
        return leases
    }

    @Test func threeNodesServeOnEveryListenerAndAKill9MidIssuanceLosesNoCredential() async throws {
        let (schema, shared) = try Self.cluster()
        defer { try? FileManager.default.removeItem(atPath: shared) }
        try await ListenerTests.makeCertificates(in: shared)
        let a = try Self.node("node-a", schema: schema, shared: shared, tls: true)
        try await a.start()
        defer { a.signal(SIGKILL) }
        let token = try #require(try JSONValue.parse(try await a.request("PUT", "sys/init", json: "{}").body)["root_token"]?.stringValue)
        // The stream issues more credentials than the test cluster's connection budget allows.
        #expect(try await a.configureTestDatabase("db", token: token, extra: ["connection_budget": 0]) == 204)
        let role = "ha-" + UUID().uuidString.prefix(8).lowercased()
        #expect(try await a.request("POST", "database/roles/\(role)", token: token, json: #"{"db_name":"db","default_ttl":"5m"}"#).status == 204)
        let b = try Self.node("node-b", schema: schema, shared: shared, tls: true)
        let c = try Self.node("node-c", schema: schema, shared: shared, tls: true)
        try await b.start()
        defer { b.signal(SIGKILL) }
        try await c.start()
        defer { c.signal(SIGKILL) }
        try await Self.waitFor(b, health: 429, within: 30)
        try await Self.waitFor(c, health: 429, within: 30)
        _ = try await Self.retrying(b, "GET", "sys/mounts", token: token)
        _ = try await Self.retrying(c, "GET", "sys/mounts", token: token)

        // Every node, both listeners: KV, and a credential issued, renewed and revoked.
        for (name, node) in [("a", a), ("b", b), ("c", c)] {
            let clients = [("unix", try MayflyClient(address: "unix://" + node.socketPath, token: token)),
                           ("tls", try MayflyClient(address: "https://127.0.0.1:\(node.tcpPorts[0])", token: token, caFile: shared + "/ca.pem"))]
            for (kind, client) in clients {
                let path = "secret/data/\(name)-\(kind)"
                #expect(try await client.request("POST", path, body: Data(#"{"data":{"via":"\#(name)-\#(kind)"}}"#.utf8)).status == 200)
                #expect(try JSONValue.parse(try await client.request("GET", path).body)["data"]?["data"]?["via"]?.stringValue == "\(name)-\(kind)")
                let issued = try await client.request("GET", "database/creds/\(role)")
                #expect(issued.status == 200, "\(name) \(kind): \(String(decoding: issued.body, as: UTF8.self))")
                let lease = try #require(try JSONValue.parse(issued.body)["lease_id"]?.stringValue)
                let username = try #require(try JSONValue.parse(issued.body)["data"]?["username"]?.stringValue)
                #expect(try await Self.markedLeases(role)[username] == lease)
                let renewed = try await client.request("PUT", "sys/leases/renew", body: Data(#"{"lease_id":"\#(lease)","increment":600}"#.utf8))
                #expect(renewed.status == 200, "\(String(decoding: renewed.body, as: UTF8.self))")
                #expect(try await client.request("PUT", "sys/leases/revoke", body: Data(#"{"lease_id":"\#(lease)"}"#.utf8)).status == 204)
                #expect(try await Self.markedLeases(role)[username] == nil, "revoked through \(name) \(kind): the role is gone")
                try await client.shutdown()
            }
        }

        // The same with the `mayfly` CLI, on every node and listener.
        for (name, node) in [("a", a), ("b", b), ("c", c)] {
            for (kind, address) in [("unix", "unix://" + node.socketPath), ("tls", "https://127.0.0.1:\(node.tcpPorts[0])")] {
                let env = ["MAYFLY_ADDR": address, "MAYFLY_TOKEN": token, "MAYFLY_CACERT": shared + "/ca.pem"]
                let where_ = "\(name) \(kind)"
                #expect(try await CLITests.mayfly(["kv", "put", "secret/cli-\(name)-\(kind)", "via=\(where_)"], env: env).status == 0, "\(where_)")
                let got = try await CLITests.mayfly(["kv", "get", "--field", "via", "secret/cli-\(name)-\(kind)"], env: env)
                #expect(got.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == where_, "\(where_): \(got.stdout)\(got.stderr)")
                let issued = try await CLITests.mayfly(["read", "--format", "json", "database/creds/\(role)"], env: env)
                let body = try JSONValue.parse(Array(issued.stdout.utf8))
                let lease = try #require(body["lease_id"]?.stringValue, "\(where_): \(issued.stdout)\(issued.stderr)")
                let username = try #require(body["data"]?["username"]?.stringValue)
                #expect(try await CLITests.mayfly(["lease", "renew", lease], env: env).status == 0, "\(where_)")
                #expect(try await CLITests.mayfly(["lease", "revoke", lease], env: env).status == 0, "\(where_)")
                #expect(try await Self.markedLeases(role)[username] == nil, "revoked with the CLI through \(where_)")
            }
        }

        // Any node shows the cluster: its own place (`mayfly status`) and every node (`operator members`).
        let onB = ["MAYFLY_ADDR": "unix://" + b.socketPath, "MAYFLY_TOKEN": token]
        let status = try await CLITests.mayfly(["status"], env: onB)
        #expect(status.status == 0, "\(status.stdout + status.stderr)")
        for row in ["HA Enabled", "standby", "Active Node ", "node-a", "https://node-a.example:8200", "Leader Term"] {
            #expect(status.stdout.contains(row), "\(status.stdout + status.stderr)")
        }
        let members = try await CLITests.mayfly(["operator", "members"], env: onB)
        #expect(members.status == 0, "\(members.stdout + members.stderr)")
        let lines = members.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("node-a") && $0.contains("leader") }, "\(members.stdout + members.stderr)")
        #expect(lines.contains { $0.hasPrefix("node-b") && $0.contains("standby") && $0.contains("https://node-b.example:8200") }, "\(members.stdout + members.stderr)")
        #expect(lines.contains { $0.hasPrefix("node-c") && $0.contains("standby") }, "\(members.stdout + members.stderr)")

        // A stream of issuance through every node's socket; the leader is killed in the middle.
        let deadline = Date().addingTimeInterval(1.5 + Double(Self.lockTTL) + 3)
        let streams = [a, b, c].map { node in
            Task { () -> (issued: [(username: String, lease: String)], refused: [Int: Int]) in
                var issued: [(username: String, lease: String)] = []
                var refused: [Int: Int] = [:]
                while Date() < deadline {
                    guard let response = try? await node.request("GET", "database/creds/\(role)", token: token) else {
                        refused[-1, default: 0] += 1  // the killed node's socket
                        try? await Task.sleep(for: .milliseconds(50))
                        continue
                    }
                    if response.status == 200, let body = try? JSONValue.parse(response.body),
                        let username = body["data"]?["username"]?.stringValue, let lease = body["lease_id"]?.stringValue
                    {
                        issued.append((username, lease))
                    } else {
                        refused[response.status, default: 0] += 1
                        try? await Task.sleep(for: .milliseconds(50))
                    }
                }
                return (issued, refused)
            }
        }
        try await Task.sleep(for: .milliseconds(1500))
        await a.kill(signal: SIGKILL)
        var results: [(issued: [(username: String, lease: String)], refused: [Int: Int])] = []
        for stream in streams { results.append(await stream.value) }
        let issued = results.flatMap(\.issued)
        #expect(issued.count > 20, "the stream issued: \(results.map(\.refused))")
        #expect(results[1].issued.count > 0 && results[2].issued.count > 0, "both survivors served after the takeover")
        for (status, _) in results[1].refused.merging(results[2].refused, uniquingKeysWith: +) {
            #expect(status == 503, "during the takeover a survivor's clients see only 503 (retry): \(results.map(\.refused))")
        }

        // The new leader reconciles; every 200 has its lease and its role, and no role is left without a live lease.
        let leader = try await b.request("GET", "sys/health").status == 200 ? b : c
        let reconciled = Date().addingTimeInterval(30)
        while !leader.log().contains("reconciled after unseal"), Date() < reconciled {
            try await Task.sleep(for: .milliseconds(200))
        }
        let marked = try await Self.markedLeases(role)
        for credential in issued {
            #expect(marked[credential.username] == credential.lease, "\(credential.username) has its role")
            let lookup = try await leader.request("PUT", "sys/leases/lookup", token: token, json: #"{"lease_id":"\#(credential.lease)"}"#)
            #expect(lookup.status == 200, "\(credential.lease) has its lease")
        }
        let listed = try await leader.request("LIST", "sys/leases/lookup/database/creds/\(role)/", token: token)
        let live = Set((try JSONValue.parse(listed.body)["data"]?["keys"]?.arrayValue ?? []).compactMap(\.stringValue)
            .map { "database/creds/\(role)/" + $0 })
        for (username, lease) in marked {
            #expect(live.contains(lease), "role \(username) has a live lease after the reconcile")
        }
    }

    @Test func badInputIsAClearErrorAndCorruptsNothing() async throws {
        let (schema, shared) = try Self.cluster()
        defer { try? FileManager.default.removeItem(atPath: shared) }
        // An unreachable store at start: the server says so and exits.
        let nowhere = try ServerProcess(storage: """
            storage "postgresql" {
              connection_url = "postgresql://mayfly@127.0.0.1:\(LoopbackPort.free())/mayfly?sslmode=disable"
              tls_insecure_allow = true
            }
            """)
        let refused = try await SecondServerTests.runToExit(["server", "--config", nowhere.configPath])
        #expect(refused.status == 1 && refused.output.contains("cannot start") && refused.output.contains("PostgreSQL store"),
                "\(refused.output)")

        let (a, b, token) = try await Self.leaderAndStandby(schema: schema, shared: shared)
        defer {
            a.signal(SIGKILL)
            b.signal(SIGKILL)
        }
        #expect(try await a.request("POST", "secret/data/app", token: token, json: #"{"data":{"v":"kept"}}"#).status == 200)

        // A node whose key file is another store's: it does not start, and writes nothing.
        let stranger = try Self.node("node-x", schema: schema, shared: shared)
        let otherKey = stranger.directory + "/other.key"
        try String((0..<64).map { _ in "0123456789abcdef".randomElement()! }).write(toFile: otherKey, atomically: true, encoding: .utf8)
        let config = try String(contentsOfFile: stranger.configPath, encoding: .utf8)
        try config.replacingOccurrences(of: shared + "/unseal.key", with: otherKey).write(toFile: stranger.configPath, atomically: true, encoding: .utf8)
        let wrongKey = try await SecondServerTests.runToExit(["server", "--config", stranger.configPath])
        #expect(wrongKey.status == 1 && wrongKey.output.contains("does not unseal this store"), "\(wrongKey.output)")
        #expect(try await a.request("GET", "sys/health").status == 200, "the leader is untouched")

        // The lock row tampered with (another holder, far into the future): the leader steps
        // down at its next renewal, writes are refused with 503, and nothing is corrupted.
        let admin = try await ReconcileProcessTests.admin()
        defer { Task { await admin.close() } }
        _ = try await admin.query(
            "UPDATE \"\(schema)\".leader SET node = 'intruder/0', term = term + 100, expires_at = now() + interval '1 hour'")
        try await Self.waitFor(a, health: 429, within: 30)
        #expect(a.log().contains("another node holds the leader lock now"))
        let refusedWrite = try await a.request("POST", "secret/data/app", token: token, json: #"{"data":{"v":"lost"}}"#)
        #expect(refusedWrite.status == 503, "\(String(decoding: refusedWrite.body, as: UTF8.self))")
        #expect(try await b.request("GET", "sys/health").status == 429, "nobody leads while the forged lock lasts")

        // The forged lock released: a node takes a new term, and the store is as it was.
        _ = try await admin.query("UPDATE \"\(schema)\".leader SET expires_at = now()")
        let deadline = Date().addingTimeInterval(10)
        var leaders = 0
        var lastTry = false
        while !lastTry {
            lastTry = Date() >= deadline  // one try after the deadline too (see `waitFor`)
            leaders = [try await a.request("GET", "sys/health").status, try await b.request("GET", "sys/health").status].filter { $0 == 200 }.count
            if leaders == 1 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(leaders == 1)
        let term = try await admin.query("SELECT term FROM \"\(schema)\".leader").first?[0]
        #expect(Int(term ?? "") ?? 0 > 100, "a new term after the forged one: \(term ?? "none")")
        let read = try await Self.retrying(a, "GET", "secret/data/app", token: token)
        #expect(try JSONValue.parse(read.body)["data"]?["data"]?["v"]?.stringValue == "kept")
    }

    /// PostgreSQL's own failover under Mayfly: a primary with a synchronous replica; the
    /// primary crashes mid-stream of writes and the replica is promoted. Meanwhile Mayfly
    /// answers 503; then it serves again through the multi-host URL, and every write it
    /// acknowledged is there.
    @Test func postgreSQLsOwnFailoverIsFollowedAndNoAcknowledgedWriteIsLost() async throws {
        let primary = try await DedicatedCluster.start()
        defer { Task { await primary.destroy() } }
        let replica = try await primary.startReplica()
        defer { Task { await replica.destroy() } }
        let shared = "/tmp/mf-hapg-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: shared, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: shared) }
        try primary.value("MAYFLY_TEST_PG_PASSWORD").write(toFile: shared + "/store.password", atomically: true, encoding: .utf8)
        let url = "postgresql://\(try primary.value("MAYFLY_TEST_PG_USER"))@127.0.0.1:\(try primary.value("MAYFLY_TEST_PG_PORT")),"
            + "127.0.0.1:\(try replica.value("MAYFLY_TEST_PG_PORT"))/\(try primary.value("MAYFLY_TEST_PG_DB"))"
            + "?sslmode=verify-full&sslrootcert=\(try primary.value("MAYFLY_TEST_PG_SSLROOTCERT"))&target_session_attrs=read-write&connect_timeout=2"
        let node = try ServerProcess(extraConfig: """
            seal "keyfile" { path = "\(shared)/unseal.key" }
            cluster_addr = "https://127.0.0.1:\(LoopbackPort.free())"
            """, storage: """
            storage "postgresql" {
              connection_url = "\(url)"
              password_file  = "\(shared)/store.password"
              ha_enabled     = true
              lock_ttl       = "\(Self.lockTTL)s"
            }
            """)
        try await node.start()
        defer { node.signal(SIGKILL) }
        let token = try #require(try JSONValue.parse(try await node.request("PUT", "sys/init", json: "{}").body)["root_token"]?.stringValue)

        // Writes stream on while the primary crashes and the replica is promoted, until 20
        // more are acknowledged after the first refusal (or a minute passes).
        let writer = Task { () -> (acknowledged: [Int], refused: [Int: Int], afterwards: Int) in
            let deadline = Date().addingTimeInterval(60)
            var acknowledged: [Int] = []
            var refused: [Int: Int] = [:]
            var afterwards = 0
            var index = 0
            while Date() < deadline, afterwards < 20 {
                index += 1
                let status = (try? await node.request("POST", "secret/data/stream/\(index)", token: token,
                                                       json: #"{"data":{"n":"\#(index)"}}"#).status) ?? -1
                if status == 200 {
                    acknowledged.append(index)
                    if !refused.isEmpty { afterwards += 1 }
                } else {
                    refused[status, default: 0] += 1
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            return (acknowledged, refused, afterwards)
        }
        try await Task.sleep(for: .seconds(1))
        try await primary.crash()
        try await Task.sleep(for: .seconds(2))
        let during = try await node.request("GET", "secret/data/stream/1", token: token)
        #expect(during.status == 503, "while no primary answers: \(String(decoding: during.body, as: UTF8.self)); log: \(node.log().suffix(3000))")
        try await replica.promote()

        let result = await writer.value
        #expect(result.refused.keys.allSatisfy { $0 == 503 }, "refusals are 503 only: \(result.refused)")
        #expect(!result.refused.isEmpty, "the crash was noticed")
        #expect(result.afterwards == 20, "writes resumed after the promotion: \(result.acknowledged.count) \(result.refused)")
        for index in result.acknowledged {
            let read = try await node.request("GET", "secret/data/stream/\(index)", token: token)
            #expect(try JSONValue.parse(read.body)["data"]?["data"]?["n"]?.stringValue == "\(index)", "acknowledged write \(index) is there")
        }
    }

    /// The number of roles in PostgreSQL marked for leases of `role`.
    static func markedCount(_ role: String, _ admin: PGConnection) async throws -> Int {
        Int(try await admin.query("SELECT count(*) FROM pg_roles WHERE shobj_description(oid, 'pg_authid') LIKE $1",
                                  ["mayfly lease database/creds/\(role)/%"]).first?[0] ?? "") ?? -1
    }

    @Test func aKill9OfTheLeaderMidRevokeAllLeavesTheNewLeaderToFinishIt() async throws {
        try await Self.withLeaderAndStandby { a, b, token, _, _ in
            #expect(try await a.configureTestDatabase("db", token: token, extra: ["connection_budget": 0]) == 204)
            let role = "ha-" + UUID().uuidString.prefix(8).lowercased()
            #expect(try await a.request("POST", "database/roles/\(role)", token: token, json: #"{"db_name":"db","default_ttl":"1h"}"#).status == 204)

            // 5,000 live credentials.
            let total = 5000, workers = 8
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<workers {
                    group.addTask {
                        let client = try MayflyClient(address: "unix://" + a.socketPath, token: token)
                        for _ in 0..<(total / workers) {
                            let status = try await client.request("GET", "database/creds/\(role)").status
                            if status != 200 { throw ServerProcessError(message: "issuance answered \(status)") }
                        }
                        try await client.shutdown()
                    }
                }
                try await group.waitForAll()
            }
            let admin = try await ReconcileProcessTests.admin()
            defer { Task { await admin.close() } }
            #expect(try await Self.markedCount(role, admin) == total)

            // `mayfly revoke --all` through the standby; the leader is killed once revocation is under way.
            let onB = ["MAYFLY_ADDR": "unix://" + b.socketPath, "MAYFLY_TOKEN": token]
            let revoke = Task { try await CLITests.mayfly(["revoke", "--all", "--reason", "ha drill: leader lost mid-revoke"], env: onB) }
            var atKill = total
            let deadline = Date().addingTimeInterval(60)
            while Date() < deadline {
                atKill = try await Self.markedCount(role, admin)
                if atKill < total { break }
                try await Task.sleep(for: .milliseconds(10))
            }
            await a.kill(signal: SIGKILL)
            #expect(atKill > 0 && atKill < total, "killed in the middle of the revocation: \(atKill) of \(total) roles left")

            let result = try await revoke.value
            #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
            #expect(result.stderr.contains("the answer was lost"), "\(result.stderr)")
            #expect(result.stdout.contains("state: completed"), "\(result.stdout)")
            #expect(try await Self.markedCount(role, admin) == 0, "nothing is left")
            let listed = try await b.request("LIST", "sys/mayfly/incidents", token: token)
            let ids = try JSONValue.parse(listed.body)["data"]?["keys"]?.arrayValue?.compactMap(\.stringValue) ?? []
            #expect(ids.count == 1, "one incident, resumed, not a second one")
            let report = try JSONValue.parse(try await b.request("GET", "sys/mayfly/incidents/\(ids.first ?? "")", token: token).body)["data"]
            #expect(report?["state"]?.stringValue == "completed")
            #expect(report?["databases"]?["db"]?["credentials_in_scope"]?.intValue == Int64(total), "\(report ?? .null)")
            #expect(report?["databases"]?["db"]?["credentials_revoked"]?.intValue == Int64(total), "the report is complete: \(report ?? .null)")
            #expect(report?["databases"]?["db"]?["credentials_pending"]?.intValue == 0)
        }
    }

    /// Sleeps until `offset` seconds past the next minute boundary.
    static func sleep(untilSecond offset: Double) async throws {
        let now = Date().timeIntervalSince1970
        let target = (now / 60).rounded(.down) * 60 + offset
        try await Task.sleep(for: .milliseconds(Int64(((target > now ? target : target + 60) - now) * 1000)))
    }

    @Test func aStaticRoleRotatesOncePerScheduleBoundaryAcrossTwoFailovers() async throws {
        try await Self.withLeaderAndStandby { a, b, token, _, _ in
            #expect(try await a.configureTestDatabase("db", token: token) == 204)
            let user = "mf_ha_static_\(UUID().uuidString.prefix(8).lowercased())"
            let admin = try await ReconcileProcessTests.admin()
            defer { Task { await admin.close() } }
            try await admin.execute("CREATE ROLE \(user) LOGIN")
            // Created at 10 s past a minute, so that its first scheduled run is the next boundary.
            try await Self.sleep(untilSecond: 10)
            #expect(try await a.request("POST", "database/static-roles/ha", token: token,
                                        json: #"{"db_name":"db","username":"\#(user)","rotation_schedule":"* * * * *"}"#).status == 204)
            let firstBoundary = (Date().timeIntervalSince1970 / 60).rounded(.up) * 60

            // Failover 1 in the middle of a minute: a is killed, b leads, a comes back as a standby.
            try await Self.sleep(untilSecond: 25)
            await a.kill(signal: SIGKILL)
            try await Self.waitFor(b, health: 200, within: 30)
            try await a.start()
            try await Self.waitFor(a, health: 429, within: 30)
            // Failover 2 just after the next boundary, when the leader has just rotated (or is about to).
            try await Self.sleep(untilSecond: 0.5)
            await b.kill(signal: SIGKILL)
            try await Self.waitFor(a, health: 200, within: 30)
            // One more boundary, led by a (the node that came back), then look.
            let lastBoundary = (Date().timeIntervalSince1970 / 60).rounded(.down) * 60 + 60
            try await Task.sleep(for: .milliseconds(Int64((lastBoundary + 15 - Date().timeIntervalSince1970) * 1000)))

            // The job history: one successful rotation for each boundary, none twice.
            let history = try JSONValue.parse(try await a.request("GET", "sys/mayfly/schedule/static-role:ha/history", token: token).body)
            let runs = history["data"]?["runs"]?.arrayValue ?? []
            let rotations = runs.filter { $0["outcome"]?.stringValue == "ok" && $0["trigger"]?.stringValue != "manual" }
                .compactMap { $0["start"]?.stringValue.flatMap(Timestamp.parse) }
            var perBoundary: [Double: Int] = [:]
            for start in rotations where start >= firstBoundary - 1 { perBoundary[(start / 60).rounded(.down) * 60, default: 0] += 1 }
            for boundary in stride(from: firstBoundary, through: lastBoundary, by: 60) {
                #expect(perBoundary[boundary] == 1, "boundary \(Timestamp.rfc3339(Date(timeIntervalSince1970: boundary))): \(runs)\nnode a:\n\(a.log().suffix(6000))")
            }
            #expect(perBoundary.values.allSatisfy { $0 == 1 }, "\(runs)")
            // The stored password is PostgreSQL's.
            let creds = try JSONValue.parse(try await a.request("GET", "database/static-creds/ha", token: token).body)
            #expect(try await RotationProcessTests.canLogIn(user, try #require(creds["data"]?["password"]?.stringValue)))
        }
    }

    /// A standby picks up keyring terms the leader adds: after a rotation and the re-wrap of
    /// every entry (the cluster certificate too) into the new term, a standby that never
    /// forwarded before can still open the certificate and forward.
    /// The cluster listener's TLS and the forwarder's client hold the cluster's key, which a
    /// seal must not leave in memory: a node that seals closes its cluster listener (and drops
    /// its forwarder's client); a node that stays unsealed keeps serving forwarded requests.
    /// Only the active node can be sealed through the API (a standby refuses `sys/seal`).
    @Test func aSealedNodeClosesItsClusterListener() async throws {
        try await Self.withLeaderAndStandby { a, b, token, _, _ in
            #expect(try await Self.retrying(b, "GET", "sys/mounts", token: token).status == 200, "b forwards to a")
            let status = try JSONValue.parse(try await a.request("GET", "sys/ha-status", token: token).body)
            var clusterPorts: [String: Int] = [:]
            for node in status["data"]?["nodes"]?.arrayValue ?? [] {
                if let name = node["hostname"]?.stringValue, let address = node["cluster_address"]?.stringValue,
                   let port = address.split(separator: ":").last.flatMap({ Int($0) }) { clusterPorts[name] = port }
            }
            let portA = try #require(clusterPorts["node-a"]), portB = try #require(clusterPorts["node-b"])
            let listeningA = try await Self.listening(portA, true), listeningB = try await Self.listening(portB, true)
            #expect(listeningA && listeningB, "every unsealed node listens")

            // Only the active node can be sealed (as with Vault): a standby refuses, and the leader
            // it would have forwarded the seal to stays unsealed.
            let refused = try await b.request("PUT", "sys/seal", token: token)
            #expect(refused.status == 400 && String(decoding: refused.body, as: UTF8.self).contains("only the active node can be sealed"))
            #expect(try await a.request("GET", "sys/health").status == 200, "the leader is still unsealed")
            #expect(try await a.request("PUT", "sys/seal", token: token).status == 204)
            let closedA = try await !Self.listening(portA, false)
            #expect(closedA, "a sealed node's cluster listener is closed")
            #expect(a.log().contains("cluster listener closed: this node is sealed"))
            let stillB = try await Self.listening(portB, true)
            #expect(stillB, "the unsealed node's stays open")
        }
    }

    /// A node unsealed again (Shamir shares, so without a restart) opens its cluster listener
    /// again: the certificate is read from the barrier anew.
    @Test func anUnsealedNodeReopensItsClusterListener() async throws {
        let (schema, shared) = try Self.cluster()
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let a = try Self.node("node-a", schema: schema, shared: shared, keyFile: false)
        try await a.start()
        defer { a.signal(SIGKILL) }
        let initBody = try JSONValue.parse(try await a.request("PUT", "sys/init", json: #"{"secret_shares":1,"secret_threshold":1}"#).body)
        let key = try #require(initBody["keys"]?.arrayValue?.first?.stringValue)
        let token = try #require(initBody["root_token"]?.stringValue)
        #expect(try await a.request("PUT", "sys/unseal", json: #"{"key":"\#(key)"}"#).status == 200)
        try await Self.waitFor(a, health: 200, within: 30)
        let status = try JSONValue.parse(try await a.request("GET", "sys/ha-status", token: token).body)
        let address = try #require(status["data"]?["nodes"]?.arrayValue?.first?["cluster_address"]?.stringValue)
        let port = try #require(address.split(separator: ":").last.flatMap { Int($0) })
        #expect(try await Self.listening(port, true), "listening once unsealed")
        #expect(try await a.request("PUT", "sys/seal", token: token).status == 204)
        #expect(try await Self.listening(port, false) == false, "closed while sealed")
        #expect(try await a.request("PUT", "sys/unseal", json: #"{"key":"\#(key)"}"#).status == 200)
        #expect(try await Self.listening(port, true), "open again once unsealed:\n\(a.log().suffix(4000))")
    }

    /// `sys/metrics` with a token, asked of a standby, is answered by the leader, which sees every
    /// revocation and policy change at once: a token revoked there is refused through the
    /// standby on the very next request. (The standby used to answer it itself, from token
    /// entries it had cached and policies it had loaded, which no write of the leader's updates.)
    @Test func aStandbyRefusesATokenRevokedOnTheLeaderAtOnce() async throws {
        try await Self.withLeaderAndStandby { a, b, token, _, _ in
            #expect(try await a.request("PUT", "sys/policies/acl/metrics", token: token,
                                        json: #"{"policy":"path \"sys/metrics\" { capabilities = [\"read\"] }"}"#).status == 204)
            let created = try JSONValue.parse(try await a.request("POST", "auth/token/create", token: token,
                                                                  json: #"{"policies":["metrics"]}"#).body)
            let narrow = try #require(created["auth"]?["client_token"]?.stringValue)
            #expect(try await Self.retrying(b, "GET", "sys/mounts", token: token).status == 200, "b forwards to a")
            for _ in 0..<3 {
                let read = try await b.request("GET", "sys/metrics", token: narrow, query: [("format", "prometheus")])
                #expect(read.status == 200, "the standby answers metrics: \(String(decoding: read.body, as: UTF8.self))")
            }
            #expect(try await a.request("PUT", "auth/token/revoke", token: token, json: #"{"token":"\#(narrow)"}"#).status == 204)
            #expect(try await b.request("GET", "sys/metrics", token: narrow, query: [("format", "prometheus")]).status == 403,
                    "refused on the standby at once")
        }
    }

    /// Whether a TCP connection to `port` is accepted, polled until it is `expected` (at most 10 s).
    static func listening(_ port: Int, _ expected: Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(10)
        while true {
            let open = (try? RawConnection.tcp(port: port)) != nil
            if open == expected || Date() > deadline { return open }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    @Test func aStandbyPicksUpNewKeyringTerms() async throws {
        try await Self.withLeaderAndStandby { a, b, token, _, _ in
            try await Task.sleep(for: .seconds(1))   // the leader's cluster certificate exists (term 1)

            #expect(try await a.request("PUT", "sys/rotate", token: token, json: "{}").status == 200)
            let deadline = Date().addingTimeInterval(30)
            var state = ""
            var lastTry = false
            while !lastTry {
                lastTry = Date() >= deadline  // one try after the deadline too (see `waitFor`)
                state = try JSONValue.parse(try await a.request("GET", "sys/key-status", token: token).body)["data"]?["rewrap"]?["state"]?
                    .stringValue ?? ""
                if state == "finished" { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(state == "finished", "every entry re-wrapped into term 2")
            try await Task.sleep(for: .seconds(6))   // a standby re-reads the keyring every 5 s
            let read = try await b.request("GET", "sys/key-status", token: token)
            #expect(read.status == 200, "forwarded after the rotation: \(String(decoding: read.body, as: UTF8.self))\n\(b.log().suffix(2000))")
            #expect(try JSONValue.parse(read.body)["data"]?["term"]?.intValue == 2)
        }
    }
}
