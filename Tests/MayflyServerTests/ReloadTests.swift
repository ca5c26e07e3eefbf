import Foundation
import MayflyClient
import MayflyCore
import Testing

/// SIGHUP reloads the policies directory and the config file's bindings; a broken policy
/// file keeps the previous set (issue 4).
@Suite struct ReloadTests {
    @Test func sighupReloadsPoliciesAndBindings() async throws {
        let directory = "/tmp/mf-reload-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: directory + "/policies", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let policy = directory + "/policies/me.hcl"
        try #"path "secret/data/a" { capabilities = ["read"] }"#.write(toFile: policy, atomically: true, encoding: .utf8)
        let me = getuid()
        let server = try ServerProcess(extraConfig: """
            seal "keyfile" { path = "\(directory)/unseal.key" }
            policies { directory = "\(directory)/policies" }
            bind "unix:uid:\(me)" { policies = ["me"] }
            """)
        try await server.start()
        defer { server.signal(SIGTERM) }
        let token = try #require(try JSONValue.parse(try await server.request("PUT", "sys/init", json: "{}").body)["root_token"]?.stringValue)
        for path in ["a", "b"] {
            #expect(try await server.request("POST", "secret/data/\(path)", token: token, json: #"{"data":{"k":"v"}}"#).status == 200)
        }
        // This process's uid is bound: no token needed for what "me" allows.
        #expect(try await server.request("GET", "secret/data/a").status == 200)
        #expect(try await server.request("GET", "secret/data/b").status == 403)

        func hangUpAndWait(until path: String, is status: Int) async throws -> Bool {
            server.signal(SIGHUP)
            for _ in 0..<100 {
                if try await server.request("GET", path).status == status { return true }
                try await Task.sleep(for: .milliseconds(50))
            }
            return false
        }
        // A broken edit keeps the old policy; the error names the file and line.
        try "path \"secret/data/b\" {\n  capabilities = [\"raed\"]\n}\n".write(toFile: policy, atomically: true, encoding: .utf8)
        server.signal(SIGHUP)
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await server.request("GET", "secret/data/a").status == 200)
        #expect(server.log().contains("\(policy):2: unknown capability"))
        // A good edit applies.
        try #"path "secret/data/b" { capabilities = ["read"] }"#.write(toFile: policy, atomically: true, encoding: .utf8)
        #expect(try await hangUpAndWait(until: "secret/data/b", is: 200))
        #expect(try await server.request("GET", "secret/data/a").status == 403)
        // Removing the binding from the config takes this uid's access away.
        let config = try String(contentsOfFile: server.configPath, encoding: .utf8)
        try config.replacingOccurrences(of: "bind \"unix:uid:\(me)\"", with: "bind \"unix:uid:4294967000\"")
            .write(toFile: server.configPath, atomically: true, encoding: .utf8)
        #expect(try await hangUpAndWait(until: "secret/data/b", is: 403))
    }
}
