import Foundation
@testable import MayflyCore
import MayflyPolicies
import Testing

/// Vault's ACL language and priority rules (globs, segment wildcards, deny wins, longest match), table-driven.
@Suite struct PolicyTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var policies: [String]
        var path: String
        var capability: Capability
        var allowed: Bool
        var why: String
        var testDescription: String { why }
    }

    static func acl(_ texts: [String]) throws -> ACL {
        ACL(policies: try texts.enumerated().map { try Policy.parse(name: "p\($0.offset)", text: $0.element) })
    }

    static func path(_ pattern: String, _ capabilities: String...) -> String {
        "path \"\(pattern)\" { capabilities = [\(capabilities.map { "\"\($0)\"" }.joined(separator: ", "))] }\n"
    }

    static let cases: [Case] = [
        // Exact, glob, default deny.
        Case(policies: [path("secret/data/a", "read")], path: "secret/data/a", capability: .read, allowed: true, why: "exact match grants"),
        Case(policies: [path("secret/data/a", "read")], path: "secret/data/a", capability: .update, allowed: false, why: "only the listed capability"),
        Case(policies: [path("secret/data/a", "read")], path: "secret/data/ab", capability: .read, allowed: false, why: "exact is not a prefix"),
        Case(policies: [path("secret/data/a", "read")], path: "secret/data/b", capability: .read, allowed: false, why: "deny by default"),
        Case(policies: [path("secret/*", "read")], path: "secret/data/x/y", capability: .read, allowed: true, why: "* matches any rest"),
        Case(policies: [path("secret/data/app*", "read")], path: "secret/data/app-2/x", capability: .read, allowed: true, why: "* inside a segment"),
        Case(policies: [path("secret/data/app*", "read")], path: "secret/data/ap", capability: .read, allowed: false, why: "glob prefix must match"),
        Case(policies: [path("secret/*", "list")], path: "secret/", capability: .list, allowed: true, why: "* matches the empty rest"),
        // Exact vs glob, longer vs shorter glob.
        Case(policies: [path("secret/*", "read"), path("secret/data/a", "update")], path: "secret/data/a", capability: .read, allowed: false, why: "exact beats glob: its capabilities only"),
        Case(policies: [path("secret/*", "read"), path("secret/data/a", "update")], path: "secret/data/a", capability: .update, allowed: true, why: "exact beats glob"),
        Case(policies: [path("secret/*", "read"), path("secret/data/*", "update")], path: "secret/data/a", capability: .read, allowed: false, why: "longer glob wins (later first wildcard)"),
        Case(policies: [path("secret/*", "read"), path("secret/data/*", "update")], path: "secret/metadata/a", capability: .read, allowed: true, why: "shorter glob where the longer does not match"),
        // + segments.
        Case(policies: [path("secret/data/+/config", "read")], path: "secret/data/app/config", capability: .read, allowed: true, why: "+ is one segment"),
        Case(policies: [path("secret/data/+/config", "read")], path: "secret/data/a/b/config", capability: .read, allowed: false, why: "+ is not two segments"),
        Case(policies: [path("secret/data/+/config", "read")], path: "secret/data//config", capability: .read, allowed: false, why: "+ is not an empty segment"),
        Case(policies: [path("secret/+/app", "read"), path("secret/data/app", "update")], path: "secret/data/app", capability: .read, allowed: false, why: "exact beats +"),
        Case(policies: [path("secret/+/app", "read"), path("secret/*", "update")], path: "secret/data/app", capability: .read, allowed: true, why: "+ later than * ... first wildcard position decides"),
        Case(policies: [path("secret/+/+", "read"), path("secret/data/+", "update")], path: "secret/data/x", capability: .update, allowed: true, why: "later first wildcard wins over earlier"),
        Case(policies: [path("secret/data/+/x", "read"), path("secret/data/+/*", "update")], path: "secret/data/a/x", capability: .read, allowed: true, why: "not ending in * beats ending in *"),
        Case(policies: [path("a/+/+/d", "read"), path("a/+/c/d", "update")], path: "a/b/c/d", capability: .update, allowed: true, why: "fewer + wins"),
        Case(policies: [path("a/+/c/d", "read"), path("a/+/c/de", "update")], path: "a/b/c/d", capability: .read, allowed: true, why: "only matching patterns compete"),
        Case(policies: [path("a/+/cc", "read"), path("a/+/c*", "update")], path: "a/b/cc", capability: .read, allowed: true, why: "non-glob beats glob at the same first wildcard"),
        Case(policies: [path("a/b*", "read"), path("a/bc*", "update")], path: "a/bcd", capability: .update, allowed: true, why: "longer glob wins"),
        Case(policies: [path("a/+/x*", "read"), path("a/+/y*", "update")], path: "a/b/xy", capability: .read, allowed: true, why: "lexicographic order only among matches"),
        // Deny, union, sudo.
        Case(policies: [path("secret/*", "read"), path("secret/*", "deny")], path: "secret/data/a", capability: .read, allowed: false, why: "deny in one policy overrides the same pattern"),
        Case(policies: [path("secret/*", "read", "sudo"), path("secret/*", "deny")], path: "secret/data/a", capability: .sudo, allowed: false, why: "deny overrides sudo"),
        Case(policies: [path("secret/*", "read"), path("secret/data/private", "deny")], path: "secret/data/private", capability: .read, allowed: false, why: "deny on a more specific path"),
        Case(policies: [path("secret/*", "read"), path("secret/data/private", "deny")], path: "secret/data/public", capability: .read, allowed: true, why: "deny stays on its path"),
        Case(policies: [path("secret/*", "read"), path("secret/*", "update")], path: "secret/x", capability: .update, allowed: true, why: "same pattern: capabilities add up"),
        Case(policies: [path("sys/leases/revoke-prefix/*", "update")], path: "sys/leases/revoke-prefix/database/creds/x", capability: .update, allowed: false, why: "root-protected path needs sudo"),
        Case(policies: [path("sys/leases/revoke-prefix/*", "update", "sudo")], path: "sys/leases/revoke-prefix/database/creds/x", capability: .update, allowed: true, why: "sudo opens a root-protected path"),
        Case(policies: [path("sys/seal", "update")], path: "sys/seal", capability: .update, allowed: false, why: "sys/seal needs sudo"),
        Case(policies: [path("sys/policies/acl/*", "read", "update")], path: "sys/policies/acl/x", capability: .update, allowed: false, why: "policy writes need sudo"),
        Case(policies: [path("sys/policies/acl/*", "read")], path: "sys/policies/acl/x", capability: .read, allowed: true, why: "policy reads do not"),
        // Syntax variants.
        Case(policies: [path("/secret/data/a", "read")], path: "secret/data/a", capability: .read, allowed: true, why: "leading slash is stripped"),
        Case(policies: ["path \"secret/*\" { policy = \"write\" }"], path: "secret/a", capability: .delete, allowed: true, why: "legacy policy = write"),
        Case(policies: ["path \"secret/*\" { policy = \"read\" }"], path: "secret/a", capability: .update, allowed: false, why: "legacy policy = read"),
        Case(policies: [#"{"path": {"secret/*": {"capabilities": ["read"]}}}"#], path: "secret/a", capability: .read, allowed: true, why: "JSON syntax"),
        Case(policies: [#"{"path": {"secret/*": {"capabilities": ["read"]}}}"#, path("secret/*", "deny")], path: "secret/a", capability: .read, allowed: false, why: "JSON and HCL policies combine"),
    ]

    @Test(arguments: cases)
    func priorityRules(_ c: Case) throws {
        #expect(try Self.acl(c.policies).allows(c.path, c.capability) == c.allowed, "\(c.why)")
    }

    @Test func rootGrantsEverythingAndDisplaysRoot() throws {
        let root = ACL(policies: [.root])
        #expect(root.allows("sys/leases/revoke-force/x", .sudo) && root.capabilitiesForDisplay("x") == ["root"])
        let none = try Self.acl([Self.path("a", "read")])
        #expect(none.capabilitiesForDisplay("b") == ["deny"])
        #expect(none.capabilitiesForDisplay("a") == ["read"])
    }

    @Test(arguments: [
        ("path \"a\" {\n  capabilities = [\"read\"]\n}\npath \"b\" {\n  capabilities = [\"reed\"]\n}\n", 5, "unknown capability \"reed\""),
        ("path \"a/*/b\" {\n  capabilities = [\"read\"]\n}\n", 1, "'*' is only allowed at the end"),
        ("\npath \"a\" {\n  capabilities = \"read\"\n}\n", 3, "must be a list"),
        ("path \"a\" {\n  capabilities = [\"read\"\n", 3, "line 3"),
        ("path \"a\" {\n  capability = [\"read\"]\n}\n", 2, "unknown key \"capability\""),
        ("name = \"x\"\n", 1, "unknown key \"name\""),
        ("path \"a\" {}\n", 1, "needs capabilities"),
    ])
    func malformedPoliciesNameTheirLine(text: String, line: Int, fragment: String) {
        do {
            _ = try Policy.parse(name: "broken", text: text)
            Issue.record("expected an error")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.description.contains(fragment) && error.description.contains("policy \"broken\""), "\(error)")
        }
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test func everyShippedPolicyParsesAndTheEmbeddedDefaultIsTheFile() throws {
        let directory = Self.repository.appendingPathComponent("policies")
        var files = [directory.appendingPathComponent("default.hcl")]
        let examples = directory.appendingPathComponent("examples")
        files += try FileManager.default.contentsOfDirectory(atPath: examples.path).sorted().map { examples.appendingPathComponent($0) }
        #expect(files.count >= 4)
        for file in files {
            let policy = try Policy.parse(name: file.deletingPathExtension().lastPathComponent, text: String(contentsOf: file, encoding: .utf8))
            #expect(!policy.rules.isEmpty, "\(file.lastPathComponent)")
        }
        #expect(try String(contentsOf: directory.appendingPathComponent("default.hcl"), encoding: .utf8) == BuiltinPolicies.defaultText)
        let app = try Policy.parse(name: "orders-app", text: String(contentsOf: examples.appendingPathComponent("orders-app.hcl"), encoding: .utf8))
        let acl = ACL(policies: [app])
        #expect(acl.allows("database/creds/orders-ro", .read) && !acl.allows("database/creds/billing-ro", .read))
    }

    @Test func aBrokenFileKeepsThePreviousSetAndNamesFileAndLine() async throws {
        let directory = NSTemporaryDirectory() + "mf-policies-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.path("secret/data/app/*", "read").write(toFile: directory + "/app.hcl", atomically: true, encoding: .utf8)
        let t = try await TestBroker.make { $0.policyDirectory = directory }
        #expect(t.broker.policies.acl(for: ["app"]).allows("secret/data/app/x", .read))
        // A broken edit: reload fails, names the file and line, and the old policy stays.
        try "path \"secret/data/app/*\" {\n  capabilities = [\"read\", \"launch\"]\n}\n".write(
            toFile: directory + "/app.hcl", atomically: true, encoding: .utf8)
        let failure = try #require(t.broker.reloadPolicies())
        #expect(failure.description == "\(directory)/app.hcl:2: unknown capability \"launch\"")
        #expect(t.broker.policies.acl(for: ["app"]).allows("secret/data/app/x", .read))
        // A good edit is picked up.
        try Self.path("secret/data/other/*", "read").write(toFile: directory + "/app.hcl", atomically: true, encoding: .utf8)
        #expect(t.broker.reloadPolicies() == nil)
        #expect(!t.broker.policies.acl(for: ["app"]).allows("secret/data/app/x", .read))
        #expect(t.broker.policies.acl(for: ["app"]).allows("secret/data/other/x", .read))
        // File policies cannot be changed through the API.
        #expect(await t.status(.update, "sys/policies/acl/app", ["policy": .string(Self.path("*", "sudo"))]) == 400)
    }

    @Test func apiPoliciesApplyToTokensAndSurviveUnseal() async throws {
        let t = try await TestBroker.make()
        _ = try await t.call(.update, "sys/policies/acl/kv-reader", ["policy": .string(Self.path("secret/data/shared/*", "read"))])
        #expect(await t.status(.update, "sys/policies/acl/bad", ["policy": "path \"a\" { capabilities = [\"fly\"] }"]) == 400)
        guard case .envelope(let created, _) = try await t.call(.update, "auth/token/create", ["policies": ["kv-reader"]])
        else { Issue.record("envelope expected"); return }
        #expect(created.warnings.isEmpty, "the policy exists")
        let token = try #require(created.auth["client_token"]?.stringValue)
        _ = try await t.call(.update, "secret/data/shared/x", ["data": ["v": "1"]])
        #expect(await t.status(.read, "secret/data/shared/x", token: token) == nil)
        #expect(await t.status(.read, "secret/data/private/x", token: token) == 403)
        let capabilities = try await t.data(.update, "sys/capabilities-self", ["paths": ["secret/data/shared/x", "sys/seal"]], token: token)
        #expect(capabilities["secret/data/shared/x"] == ["read"] && capabilities["sys/seal"] == ["deny"])
        let read = try await t.data(.read, "sys/policies/acl/kv-reader")
        #expect(read["policy"]?.stringValue?.contains("secret/data/shared/*") == true)
        #expect(try await t.data(.list, "sys/policies/acl/")["keys"]?.arrayValue?.contains("kv-reader") == true)
        _ = try await t.call(.update, "sys/policies/acl/kv-reader", ["policy": .string(Self.path("secret/data/other/*", "read"))])
        #expect(await t.status(.read, "secret/data/shared/x", token: token) == 403, "a policy change applies at once")
        _ = try await t.call(.delete, "sys/policies/acl/kv-reader")
        #expect(await t.status(.read, "sys/policies/acl/kv-reader") == 404)
        #expect(await t.status(.delete, "sys/policies/acl/default") == 400)
    }
}
