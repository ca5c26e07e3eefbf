import Foundation
@testable import MayflyCore
import MayflyCrypto
import MayflyPostgres
import MayflyStore
import Testing

/// The database findings of the adversarial review (issue 11: 4, 9, 10) and the custom-SQL
/// escalation of issue 16, against the test PostgreSQL with a CREATEROLE-only admin (as the
/// README recommends). Written through the request interface, so they ran unchanged on 3e8414c.
@Suite(.enabled(if: PG.enabled, "needs the test PostgreSQL from scripts/test"), .serialized)
struct AdversarialDatabaseTests {
    /// Whether a login of `role`'s credentials can run an OS command as the server's user.
    static func canRunProgram(_ t: TestBroker, role: String) async -> Bool {
        guard let credential = try? await DatabaseCredentialTests.issue(t, role: role),
            let session = try? await PG.login(credential.user, credential.password)
        else { return false }
        defer { Task { await session.close() } }
        do {
            try await session.execute("CREATE TEMP TABLE out (line text); COPY out FROM PROGRAM 'id'")
            return true
        } catch {
            return false
        }
    }

    /// The messages of the error a request answers with ([] when it succeeds).
    static func messages(_ t: TestBroker, _ operation: MayflyCore.Operation, _ path: String, _ body: [String: JSONValue],
                         token: String?) async -> (status: Int?, text: String)
    {
        do {
            _ = try await t.call(operation, path, body, token: token)
            return (nil, "")
        } catch let error as APIError {
            return (error.status, error.messages.joined(separator: " "))
        } catch {
            return (-1, "\(error)")
        }
    }

    static func token(_ t: TestBroker, _ policy: String) async throws -> String {
        let name = "p" + Random.string(count: 6, alphabet: Array("abcdefghijklmnopqrstuvwxyz"))
        return try await AdversarialTests.token(t, policies: [name: policy])
    }

    // MARK: Finding 4

    /// `member_of` refuses PostgreSQL's predefined roles with OS or cross-session power, directly
    /// or through a chain, through the API and from the config file alike.
    @Test func f04_memberOfRefusesPredefinedRolesWithOSPower() async throws {
        let (t, _) = try await DatabaseCredentialTests.setUp()
        let chain = PG.unique("mf_chain")
        let admin = try await PG.admin()
        try await admin.execute("CREATE ROLE \(chain) NOLOGIN; GRANT pg_execute_server_program TO \(chain)")
        await admin.close()
        for group in ["pg_execute_server_program", "pg_read_server_files", "pg_write_server_files", "pg_signal_backend", chain] {
            let status = await t.status(.update, "database/roles/pwn", ["db_name": "db", "member_of": .strings([group])])
            #expect(status == 400, "member_of \(group): \(String(describing: status))")
            if status == nil { #expect(!(await Self.canRunProgram(t, role: "pwn")), "a credential ran a program as the OS user") }
        }
        #expect(await t.status(.read, "database/roles/pwn") == 404)
    }

    /// A role declared in the config file gets the same check before anything is issued.
    @Test func f04_aConfigFileRoleWithOSPowerIssuesNothing() async throws {
        let passwordFile = NSTemporaryDirectory() + "mf-adv-pw-\(UUID().uuidString.prefix(6))"
        try PG.value("MAYFLY_TEST_PG_PASSWORD").write(toFile: passwordFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: passwordFile) }
        let url = try #require(try PG.configBody()["connection_url"]?.stringValue)
        let t = try await TestBroker.make { config in
            config.databases = [DeclaredDatabase(name: "cfg", connectionURL: url, passwordFile: passwordFile)]
            config.roles = [DeclaredRole(name: "cfgpwn", database: "cfg", memberOf: ["pg_execute_server_program"])]
        }
        #expect(await t.status(.read, "database/creds/cfgpwn") == 400)
        #expect(!(await Self.canRunProgram(t, role: "cfgpwn")))
        let live = try await t.storage.leases(matching: LeaseFilter(roles: ["cfgpwn"]), after: nil, limit: 10)
        #expect(live.isEmpty, "no lease, no role")
    }

    /// Issue 14: a role of the config file whose `member_of` carries power is refused when the
    /// file is applied, and the refusal names the file and line of its stanza.
    @Test func aConfigFileRoleWithOSPowerIsRefusedWithItsFileAndLine() async throws {
        let passwordFile = NSTemporaryDirectory() + "mf-adv-pw-\(UUID().uuidString.prefix(6))"
        try PG.value("MAYFLY_TEST_PG_PASSWORD").write(toFile: passwordFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: passwordFile) }
        let url = try #require(try PG.configBody()["connection_url"]?.stringValue)
        let file = "/etc/mayfly/mayfly.hcl"
        let loaded = try ConfigLoader.parse("""
            storage "sqlite" { path = "/tmp/unused.db" }
            listener "unix" { path = "/tmp/unused.sock" }
            database "cfg" {
              connection_url = "\(url)"
              password_file  = "\(passwordFile)"
            }

            role "cfgpwn" {
              database  = "cfg"
              member_of = ["pg_execute_server_program"]
            }
            role "fine" {
              database = "cfg"
            }
            """, file: file)
        let t = try await TestBroker.make { config in
            config.databases = loaded.databases
            config.roles = loaded.roles
        }
        await t.broker.databases.declaredRolesChecked()
        #expect(await t.status(.read, "database/roles/cfgpwn") == 404, "the refused role is not kept")
        #expect(await t.status(.read, "database/roles/fine") == nil, "the file's other roles are")
        do {
            _ = try await t.call(.read, "database/creds/cfgpwn")
            Issue.record("a credential was issued for a refused role")
        } catch let error as APIError {
            #expect(error.status == 400)
            let message = error.messages.joined()
            #expect(message.contains("\(file):8: role \"cfgpwn\" refused"), "\(message)")
            #expect(message.contains("pg_execute_server_program"), "\(message)")
        }
        #expect(try await t.storage.leases(matching: LeaseFilter(roles: ["cfgpwn"]), after: nil, limit: 10).isEmpty)
    }

    // MARK: Finding 9

    /// Revoking a token (or its expiry) revokes the credentials it obtained.
    @Test func f09_revokingATokenRevokesItsCredentials() async throws {
        let clock = ManualClock(Date())
        let (t, _) = try await DatabaseCredentialTests.setUp(clock: clock)
        let policy = #"path "database/creds/ro" { capabilities = ["read"] }"#
        let app = try await Self.token(t, policy)
        guard case .envelope(let issued, _) = try await t.call(.read, "database/creds/ro", token: app) else {
            Issue.record("no credential"); return
        }
        let username = try #require(issued.data["username"]?.stringValue)
        let bystander = try await DatabaseCredentialTests.issue(t)
        _ = try await t.call(.update, "auth/token/revoke-self", token: app)
        try await Self.waitUntilDropped(t, lease: issued.leaseID, username: username)
        #expect(try await t.storage.lease(id: bystander.lease)?.state == .active, "another token's credential stays")

        // A token that expires takes its credentials with it too.
        let shortLived = try await AdversarialTests.token(t, policies: ["short": policy], extra: ["ttl": "5s"])
        guard case .envelope(let second, _) = try await t.call(.read, "database/creds/ro", token: shortLived) else {
            Issue.record("no credential"); return
        }
        clock.advance(by: 6)
        _ = try await t.call(.update, "sys/mayfly/schedule/token-sweep/run")
        try await Self.waitUntilDropped(t, lease: second.leaseID, username: second.data["username"]?.stringValue ?? "")
    }

    /// Runs the lease sweep until `lease` is revoked and its role gone (at most ~10 s).
    static func waitUntilDropped(_ t: TestBroker, lease: String, username: String) async throws {
        let admin = try await PG.admin()
        defer { Task { await admin.close() } }
        for _ in 0..<20 {
            _ = try await t.call(.update, "sys/mayfly/schedule/lease-sweep/run")
            let state = try await t.storage.lease(id: lease)?.state
            let exists = try await !admin.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [username]).isEmpty
            if state == .revoked && !exists { return }
            try await Task.sleep(for: .milliseconds(500))
        }
        Issue.record("lease \(lease) still \(String(describing: try await t.storage.lease(id: lease)?.state)); role \(username) left")
    }

    // MARK: Finding 10

    /// A static role hands out its user's password: never a database's admin login, nor a user
    /// that is or can become privileged.
    @Test func f10_aStaticRoleCannotTakeAnAdminOrPrivilegedLogin() async throws {
        let (t, _) = try await DatabaseCredentialTests.setUp()
        let crAdmin = PG.unique("mf_cradmin"), creator = PG.unique("mf_creator"), signaller = PG.unique("mf_sig")
        let plain = PG.unique("mf_plain")
        let password = Base64.encodeURLSafeNoPadding(Random.bytes(24))
        let superuser = try await PG.superuser()
        try await superuser.execute("""
            CREATE ROLE \(crAdmin) LOGIN CREATEROLE PASSWORD '\(password)';
            CREATE ROLE \(creator) LOGIN CREATEROLE;
            CREATE ROLE \(signaller) LOGIN; GRANT pg_signal_backend TO \(signaller);
            CREATE ROLE \(plain) LOGIN;
            """)
        await superuser.close()
        var cr = try PG.configBody()
        cr["connection_url"] = .string(cr["connection_url"]!.stringValue!.replacingOccurrences(
            of: "//\(try PG.value("MAYFLY_TEST_PG_USER"))@", with: "//\(crAdmin)@"))
        cr["password"] = .string(password)
        _ = try await t.call(.update, "database/config/cr", cr)
        for user in [crAdmin, creator, signaller] {
            let (status, text) = await Self.messages(t, .update, "database/static-roles/s1",
                                                     ["db_name": "db", "username": .string(user), "rotation_period": "1h"],
                                                     token: nil)
            #expect(status == 400, "\(user): \(String(describing: status)) \(text)")
            #expect(await t.status(.read, "database/static-creds/s1") != nil, "no password of \(user) handed out")
        }
        // The database `cr` still works: its admin password is untouched.
        let crConnection = try await PG.login(crAdmin, password)
        await crConnection.close()
        // An ordinary user is fine.
        _ = try await t.call(.update, "database/static-roles/s1", ["db_name": "db", "username": .string(plain), "rotation_period": "1h"])
        _ = try await t.call(.delete, "database/static-roles/s1")
        _ = try await t.call(.delete, "database/config/cr")
    }

    // MARK: Issue 16

    /// Custom SQL runs as the broker's admin login: writing it through the API needs sudo on the
    /// path, for every statement field; roles without it need no sudo.
    @Test func i16_customStatementsNeedSudo() async throws {
        let (t, group) = try await DatabaseCredentialTests.setUp()
        let noSudo = try await Self.token(t, #"path "database/*" { capabilities = ["create", "read", "update", "delete", "list"] }"#)
        let withSudo = try await Self.token(t, #"path "database/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }"#)
        let statement = JSONValue.strings([#"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'"#])
        for field in ["creation_statements", "revocation_statements", "renew_statements", "rollback_statements"] {
            var body: [String: JSONValue] = ["db_name": "db", "member_of": .strings([group])]
            body[field] = statement
            let (status, text) = await Self.messages(t, .update, "database/roles/custom", body, token: noSudo)
            #expect(status == 403 && text.contains(field), "\(field): \(String(describing: status)) \(text)")
            body[field] = .string(statement.arrayValue![0].stringValue!)
            let single = await Self.messages(t, .update, "database/roles/custom", body, token: noSudo)
            #expect(single.status == 403, "\(field) as one string")
        }
        #expect(await t.status(.read, "database/roles/custom") == 404, "nothing stored")
        // Ordinary roles need no sudo.
        #expect(await t.status(.update, "database/roles/ordinary", ["db_name": "db", "member_of": .strings([group]),
                                                                     "default_ttl": "5m"], token: noSudo) == nil)
        #expect(try await t.data(.read, "database/roles/ordinary", token: noSudo)["custom_statements"] == false)
        // With sudo both work, and the read says so.
        #expect(await t.status(.update, "database/roles/custom", ["db_name": "db", "creation_statements": statement],
                               token: withSudo) == nil)
        #expect(try await t.data(.read, "database/roles/custom", token: noSudo)["custom_statements"] == true)
        let credential = try await DatabaseCredentialTests.issue(t, role: "custom")
        #expect(!credential.user.isEmpty)
        // Moving a role's custom SQL to another database is writing it anew.
        _ = try await t.call(.update, "database/config/other", try PG.configBody())
        #expect(await t.status(.update, "database/roles/custom", ["db_name": "other"], token: noSudo) == 403)
        #expect(await t.status(.update, "database/roles/custom", ["default_ttl": "10m"], token: noSudo) == nil,
                "other fields of such a role stay writable")

        // Static roles: rotation_statements.
        let user = PG.unique("mf_static")
        let admin = try await PG.admin()
        try await admin.execute("CREATE ROLE \(user) LOGIN")
        await admin.close()
        let rotation = JSONValue.strings([#"ALTER ROLE "{{name}}" WITH PASSWORD '{{password}}'"#])
        let staticBody: [String: JSONValue] = ["db_name": "db", "username": .string(user), "rotation_period": "1h",
                                               "rotation_statements": rotation]
        let (staticStatus, staticText) = await Self.messages(t, .update, "database/static-roles/st", staticBody, token: noSudo)
        #expect(staticStatus == 403 && staticText.contains("rotation_statements"), "\(staticText)")
        #expect(await t.status(.update, "database/static-roles/st", staticBody, token: withSudo) == nil)
        #expect(try await t.data(.read, "database/static-roles/st", token: noSudo)["custom_statements"] == true)
        _ = try await t.call(.delete, "database/static-roles/st")

        // Root rotation statements of a database config.
        var config = try PG.configBody()
        config["root_rotation_statements"] = .strings([#"ALTER ROLE "{{name}}" WITH PASSWORD '{{password}}'"#])
        let (configStatus, configText) = await Self.messages(t, .update, "database/config/rooted", config, token: noSudo)
        #expect(configStatus == 403 && configText.contains("root_rotation_statements"), "\(configText)")
        #expect(await t.status(.update, "database/config/rooted", config, token: withSudo) == nil)
        let rooted = try await t.data(.read, "database/config/rooted", token: noSudo)
        #expect(rooted["custom_statements"] == true)
        #expect(rooted["root_credentials_rotate_statements"]?.arrayValue?.count == 1)
        _ = try await t.call(.delete, "database/config/rooted")
    }

    /// The escalation of issue 16: whoever may define a role (the shipped operator policy) put
    /// `GRANT pg_execute_server_program` in its creation statements, and its credentials ran
    /// OS commands as the postgres user. On 3e8414c this test failed: the write was accepted and
    /// `COPY … FROM PROGRAM 'id'` ran.
    @Test func i16_customSQLCannotGrantOSPowerWithoutSudo() async throws {
        let (t, _) = try await DatabaseCredentialTests.setUp()
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let operatorPolicy = try String(contentsOf: repository.appendingPathComponent("policies/examples/operator.hcl"),
                                        encoding: .utf8)
        let operatorToken = try await AdversarialTests.token(t, policies: ["operator": operatorPolicy])
        let status = await t.status(.update, "database/roles/pwn", [
            "db_name": "db",
            "creation_statements": .strings([
                #"CREATE ROLE "{{name}}" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'"#,
                #"GRANT pg_execute_server_program TO "{{name}}""#,
            ]),
        ], token: operatorToken)
        #expect(status == 403)
        #expect(!(await Self.canRunProgram(t, role: "pwn")), "a credential ran a program as the server's OS user")
        // The operator keeps defining ordinary roles.
        #expect(await t.status(.update, "database/roles/fine", ["db_name": "db", "default_ttl": "5m"], token: operatorToken) == nil)
    }
}
