import Foundation
@testable import MayflyCore
import Testing

/// Transport identities and `bind` stanzas (issue 4): a bound identity needs no token, an
/// unbound one gets nothing, and names resolve against the system's user and group databases.
@Suite struct IdentityTests {
    static func request(_ broker: Broker, _ operation: MayflyCore.Operation, _ path: String,
                        _ data: [String: JSONValue] = [:], identity: PeerIdentity?) async -> Int {
        do {
            _ = try await broker.handle(LogicalRequest(id: "t", operation: operation, path: path, data: data, identity: identity))
            return 200
        } catch let error as APIError {
            return error.status
        } catch {
            return -1
        }
    }

    @Test func boundIdentityActsWithoutATokenAndUnboundGetsNothing() async throws {
        let t = try await TestBroker.make { config in
            config.bindings = [
                Binding(identity: "unix:uid:4242", policies: ["default"]),
                Binding(identity: "cert:spiffe://prod/billing", policies: ["default"]),
            ]
        }
        let lookup: [String: JSONValue] = ["lease_id": "database/creds/x/nope"]
        // The default policy allows sys/leases/lookup: a bound caller reaches the handler (400:
        // no such lease); an unbound one is stopped at the door (403).
        #expect(await Self.request(t.broker, .update, "sys/leases/lookup", lookup, identity: .unix(uid: 4242, gid: 4242, pid: 1)) == 400)
        #expect(await Self.request(t.broker, .update, "sys/leases/lookup", lookup, identity: .unix(uid: 4243, gid: 4243, pid: 1)) == 403)
        #expect(await Self.request(t.broker, .update, "sys/leases/lookup", lookup,
                                   identity: .certificate(uris: ["spiffe://prod/billing"], dnsNames: [], commonName: "billing")) == 400)
        #expect(await Self.request(t.broker, .update, "sys/leases/lookup", lookup,
                                   identity: .certificate(uris: ["spiffe://prod/other"], dnsNames: [], commonName: "billing")) == 403)
        #expect(await Self.request(t.broker, .update, "sys/leases/lookup", lookup, identity: nil) == 403)
        // Beyond its policies a bound identity is denied, and health needs nobody.
        #expect(await Self.request(t.broker, .read, "secret/data/x", identity: .unix(uid: 4242, gid: 4242, pid: 1)) == 403)
        #expect(await Self.request(t.broker, .read, "sys/health", identity: nil) == 200)
        // Token paths need a token: 403, like any request without one.
        #expect(await Self.request(t.broker, .read, "auth/token/lookup-self", identity: .unix(uid: 4242, gid: 4242, pid: 1)) == 403)
    }

    @Test func groupBindingsMatchPrimaryAndSupplementaryGroups() throws {
        // root (uid 0) has primary group root (gid 0) on every Linux system.
        let table = try BindingTable([Binding(identity: "unix:group:root", policies: ["ops"]),
                                      Binding(identity: "unix:user:root", policies: ["admin"])])
        #expect(table.policies(for: .unix(uid: 0, gid: 0, pid: 1)) == ["admin", "ops"])
        #expect(table.policies(for: .unix(uid: 99999, gid: 0, pid: 1)) == ["ops"], "primary gid from the peer credentials")
        #expect(table.policies(for: .unix(uid: 99999, gid: 99999, pid: 1)) == nil)
    }

    @Test(arguments: [
        ("unix:user:no-such-user-mayfly", "no such user"),
        ("unix:group:no-such-group-mayfly", "no such group"),
        ("unix:uid:abc", "uid must be a number"),
        ("unix:pid:1", "unknown kind"),
        ("ldap:cn=x", "identities start with unix: or cert:"),
        ("cert:", "expected cert:"),
    ])
    func badBindingsAreConfigErrorsWithTheirLine(identity: String, fragment: String) throws {
        let text = "storage \"sqlite\" { path = \"/tmp/x.db\" }\n\nbind \"\(identity)\" {\n  policies = [\"a\"]\n}\n"
        do {
            _ = try ConfigLoader.parse(text, file: "mayfly.hcl")
            Issue.record("expected an error for \(identity)")
        } catch {
            #expect(error.description.contains("mayfly.hcl:3"), "\(error.description)")
            #expect(error.description.contains(fragment), "\(error.description)")
        }
    }
}
