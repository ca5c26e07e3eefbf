import Foundation
@testable import MayflyCore
import Testing

@Suite struct ConfigLoaderTests {
    @Test func readsAFullHCLConfig() throws {
        let config = try ConfigLoader.parse("""
            storage "sqlite"   { path = "/var/lib/mayfly/mayfly.db" }
            listener "unix"    { path = "/run/mayfly/mayfly.sock"  group = "mayfly-clients"  mode = "0660" }
            listener "tcp"     {
              address = "0.0.0.0:8200"
              tls_cert_file = "/etc/mayfly/tls.pem"
              tls_key_file = "/etc/mayfly/tls.key"
              tls_client_ca_file = "/etc/mayfly/clients.pem"
            }
            seal "keyfile"     { path = "/etc/mayfly/unseal.key" }
            log_level = "debug"
            default_lease_ttl = "1h"
            max_request_size = 1048576
            """, file: "mayfly.hcl")
        #expect(config.storagePath == "/var/lib/mayfly/mayfly.db")
        #expect(config.unixListeners == [UnixListenerConfig(path: "/run/mayfly/mayfly.sock", mode: 0o660, group: "mayfly-clients")])
        #expect(config.tcpListeners.first?.port == 8200)
        #expect(config.tcpListeners.first?.host == "0.0.0.0")
        #expect(config.tcpListeners.first?.clientCAFile == "/etc/mayfly/clients.pem")
        #expect(config.seal == .keyFile(path: "/etc/mayfly/unseal.key"))
        #expect(config.logLevel == "debug")
        #expect(config.defaultLeaseTTL == 3600)
        #expect(config.maxRequestSize == 1_048_576)
    }

    @Test func readsStaticRolesAndSchedules() throws {
        let config = try ConfigLoader.parse("""
            storage "sqlite" { path = "/x" }
            listener "unix" { path = "/s" }
            database "orders" { connection_url = "postgresql://a@localhost/orders" }
            static_role "orders-migrator" {
              database = "orders"  username = "migrator"  strategy = "alternating"  member_of = ["migrator"]
              rotation_schedule = "30 2 * * *"  time_zone = "Europe/Berlin"
            }
            keyring_rotation_schedule = "@monthly"
            keyring_rewrap_rate = 200
            scheduler { jitter = "0s"  history_retention = "7d" }
            """, file: "mayfly.hcl")
        #expect(config.staticRoles == [DeclaredStaticRole(
            name: "orders-migrator", database: "orders", username: "migrator", strategy: "alternating", memberOf: ["migrator"],
            rotationSchedule: "30 2 * * *", rotationPeriod: nil, timeZone: "Europe/Berlin", rotationStatements: [])])
        #expect(config.keyringRotationSchedule == "@monthly" && config.keyringRewrapRate == 200)
        #expect(config.schedulerJitter == 0 && config.jobHistoryRetention == 7 * 86400)
    }

    @Test func readsTheSameConfigAsJSON() throws {
        let config = try ConfigLoader.parse("""
            {"storage": {"sqlite": {"path": "/tmp/m.db"}},
             "listener": [{"unix": {"path": "/tmp/m/s.sock"}}, {"tcp": {"address": "127.0.0.1:0", "tls_cert_file": "c", "tls_key_file": "k"}}],
             "seal": {"shamir": {}}}
            """, file: "mayfly.json")
        #expect(config.storagePath == "/tmp/m.db")
        #expect(config.unixListeners.count == 1)
        #expect(config.tcpListeners.count == 1)
        #expect(config.seal == .shamir)
    }

    @Test func readsListenerTimeoutsAndConnectionCaps() throws {
        let defaults = try ConfigLoader.parse("""
            storage "sqlite" { path = "/x" }
            listener "unix" { path = "/s" }
            listener "tcp" { address = "127.0.0.1:8200"  tls_cert_file = "c"  tls_key_file = "k" }
            """, file: "mayfly.hcl")
        let unix = try #require(defaults.unixListeners.first), tcp = try #require(defaults.tcpListeners.first)
        #expect(unix.readHeaderTimeout == 10 && unix.idleTimeout == 300 && unix.maxConnections == 4096 && unix.readTimeout == 30)
        #expect(tcp.readHeaderTimeout == 10 && tcp.idleTimeout == 300 && tcp.tlsHandshakeTimeout == 10
                && tcp.maxConnections == 4096 && tcp.readTimeout == 30)

        let set = try ConfigLoader.parse("""
            storage "sqlite" { path = "/x" }
            listener "unix" { path = "/s"  http_read_header_timeout = "2s"  http_idle_timeout = "1m"  max_connections = 50 }
            listener "tcp" {
              address = "127.0.0.1:8200"  tls_cert_file = "c"  tls_key_file = "k"
              http_read_header_timeout = 3  http_idle_timeout = "90s"  tls_handshake_timeout = "5s"  max_connections = 100
              http_read_timeout = "45s"
            }
            """, file: "mayfly.hcl")
        #expect(set.unixListeners == [UnixListenerConfig(path: "/s", readHeaderTimeout: 2, idleTimeout: 60, maxConnections: 50)])
        let setTCP = try #require(set.tcpListeners.first)
        #expect(setTCP.readHeaderTimeout == 3 && setTCP.idleTimeout == 90 && setTCP.tlsHandshakeTimeout == 5
                && setTCP.maxConnections == 100 && setTCP.readTimeout == 45)
    }

    @Test(arguments: [
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\nbogus = 1", 3, "unknown setting \"bogus\""),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" {\n  path = \"/s\"\n  colour = \"red\"\n}", 4, "unknown setting \"colour\" in listener \"unix\""),
        ("storage \"mysql\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }", 1, "unsupported storage \"mysql\""),
        ("storage \"sqlite\" { path = 5 }\nlistener \"unix\" { path = \"/s\" }", 1, "path must be a string, got number"),
        ("storage \"sqlite\" { path = \"/x\" }\n\nlistener \"tcp\" { address = \"127.0.0.1:8200\" }", 3, "needs tls_cert_file and tls_key_file"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"tcp\" { address = \"nope\" tls_cert_file = \"c\" tls_key_file = \"k\" }", 2, "address must be host:port"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" mode = \"0666\" }", 2, "must not give access to others"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\nseal \"kms\" {}", 3, "unsupported seal \"kms\""),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\nlog_level = \"loud\"", 3, "log_level must be one of"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\ndefault_lease_ttl = \"soon\"", 3, "must be a duration"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\nbind \"unix:uid:1\" {\n  audit = \"x\"\n}", 4, "unknown setting \"audit\" in bind"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\nstatic_role \"m\" {\n  database = \"d\"\n  username = \"u\"\n  rotation_schedule = \"0 25 * * *\"\n}", 6, "hour field \"25\""),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\nstatic_role \"m\" { database = \"d\"  username = \"u\" }", 3, "needs rotation_schedule or rotation_period"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\nstatic_role \"m\" { database = \"d\"  username = \"u\"  rotation_period = \"1h\" }", 3, "which no database stanza declares"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\nstatic_role \"m\" { database = \"d\"  username = \"u\"  rotation_period = \"1h\"  strategy = \"triple\" }", 3, "strategy must be"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\nkeyring_rotation_schedule = \"@fortnightly\"", 3, "unknown macro"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\nscheduler { jitter = \"soon\" }", 3, "must be a duration"),
        ("listener \"unix\" { path = \"/s\" }", 0, "missing storage stanza"),
        ("storage \"sqlite\" { path = \"/x\" }", 0, "no listener"),
        ("storage \"sqlite\" { path = \"/x\" \nlistener \"unix\" { path = \"/s\" }", 2, ""),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\ndatabase \"d\" {\n  connection_url = \"postgresql://a@db.example.com/d?sslmode=require\"\n}", 3, "does not authenticate the server"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\ndatabase \"d\" { connection_url = \"postgresql://a:pw@localhost/d\" }", 3, "must not contain a password"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\ndatabase \"d\" { connection_url = \"postgresql://a@localhost/d\"  password_file = \"/nonexistent/pw\" }", 3, "cannot read password_file"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\n\nrole \"r\" { database = \"nope\" }", 4, "which no database stanza declares"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\nrole \"bad name\" { database = \"d\" }", 3, "invalid role name"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\ndatabase \"d\" { connection_url = \"postgresql://a@localhost/d\" }\nrole \"r\" {\n  database = \"d\"\n  connection_limit = -1\n}", 4, "needs connection_budget = 0"),
        ("storage \"sqlite\" { path = \"/x }", 1, ""),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" {\n  path = \"/s\"\n  http_idle_timeout = \"0s\"\n}", 4, "http_idle_timeout must be between 1s and 24h"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\"  http_read_header_timeout = \"soon\" }", 2, "must be a duration"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\"  max_connections = 0 }", 2, "max_connections must be between 1"),
        // Issue 12, finding 9: a wrong type says so; a bad time zone is reported at its own line.
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\ndatabase \"d\" {\n  connection_url = \"postgresql://a@localhost/d\"\n  max_connections = \"four\"\n}", 5, "max_connections must be a number, got string"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\"  max_connections = \"many\" }", 2, "must be a number, got string"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\nscram_iterations = true", 3, "must be a number, got bool"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\ndatabase \"d\" { connection_url = \"postgresql://a@localhost/d\" }\nstatic_role \"m\" {\n  database = \"d\"\n  username = \"u\"\n  rotation_schedule = \"0 3 * * *\"\n  time_zone = \"Mars/Olympus\"\n}", 8, "not a known time zone"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\"  tls_handshake_timeout = \"5s\" }", 2, "unknown setting \"tls_handshake_timeout\" in listener \"unix\""),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"tcp\" {\n  address = \"127.0.0.1:1\" tls_cert_file = \"c\" tls_key_file = \"k\"\n  tls_handshake_timeout = \"2d\"\n}", 4, "tls_handshake_timeout must be between 1s and 24h"),
        // Issue 14: a role stanza passes the API's own role checks, reported at its line.
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\ndatabase \"d\" { connection_url = \"postgresql://a@localhost/d\" }\nrole \"r\" {\n  database = \"d\"\n  default_ttl = \"2h\"\n  max_ttl = \"1h\"\n}", 4, "role \"r\": default_ttl must not be longer than max_ttl"),
        ("storage \"sqlite\" { path = \"/x\" }\nlistener \"unix\" { path = \"/s\" }\ndatabase \"d\" { connection_url = \"postgresql://a@localhost/d\" }\nrole \"r\" {\n  database = \"d\"\n  member_of = [\"gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg\"]\n}", 4, "role \"r\": member_of \"gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg\" is not a valid role name"),
        // Issue 15: the PostgreSQL store's stanza.
        ("storage \"postgresql\" {\n  schema = \"s\"\n}\nlistener \"unix\" { path = \"/s\" }", 1, "storage \"postgresql\" needs connection_url"),
        ("storage \"postgresql\" { connection_url = \"postgresql://a@db.internal/m?sslmode=disable\" }\nlistener \"unix\" { path = \"/s\" }", 1, "storage \"postgresql\": "),
        ("storage \"postgresql\" {\n  connection_url = \"postgresql://a@localhost/m\"\n  schema = \"no-dashes\"\n}\nlistener \"unix\" { path = \"/s\" }", 1, "schema must be 1-63 letters"),
        ("storage \"postgresql\" {\n  connection_url = \"postgresql://a@localhost/m\"\n  colour = \"red\"\n}\nlistener \"unix\" { path = \"/s\" }", 3, "unknown setting \"colour\" in storage \"postgresql\""),
        ("storage \"sqlite\" { path = \"/x\" }\nstorage \"postgresql\" { connection_url = \"postgresql://a@localhost/m\" }\nlistener \"unix\" { path = \"/s\" }", 2, "storage is configured twice"),
        // HA settings.
        ("storage \"sqlite\" {\n  path = \"/x\"\n  ha_enabled = true\n}\nlistener \"unix\" { path = \"/s\" }", 3, "ha_enabled needs storage \"postgresql\""),
        ("storage \"postgresql\" {\n  connection_url = \"postgresql://a@localhost/m\"\n  ha_enabled = true\n}\nlistener \"unix\" { path = \"/s\" }", 0, "ha_enabled needs cluster_addr"),
        ("storage \"postgresql\" {\n  connection_url = \"postgresql://a@localhost/m\"\n  ha_enabled = true\n}\nlistener \"unix\" { path = \"/s\" }\ncluster_addr = \"http://10.0.0.1:8201\"", 6, "cluster_addr must be https://host:port"),
        ("storage \"postgresql\" {\n  connection_url = \"postgresql://a@localhost/m\"\n  ha_enabled = true\n}\nlistener \"unix\" { path = \"/s\" }\ncluster_addr = \"https://10.0.0.1\"", 6, "cluster_addr must be https://host:port"),
        ("storage \"postgresql\" {\n  connection_url = \"postgresql://a@localhost/m\"\n  ha_enabled = true\n  lock_ttl = \"1s\"\n}\nlistener \"unix\" { path = \"/s\" }\ncluster_addr = \"https://10.0.0.1:8201\"", 4, "lock_ttl must be between 2s and 300s"),
        ("storage \"postgresql\" {\n  connection_url = \"postgresql://a@localhost/m\"\n  ha_enabled = true\n  node_id = \"a b\"\n}\nlistener \"unix\" { path = \"/s\" }\ncluster_addr = \"https://10.0.0.1:8201\"", 4, "node_id must be"),
        ("storage \"postgresql\" {\n  connection_url = \"postgresql://a@localhost/m\"\n  ha_enabled = true\n}\nlistener \"tcp\" {\n  address = \"10.0.0.1:8200\"\n  tls_cert_file = \"/c\"\n  tls_key_file = \"/k\"\n}\ncluster_addr = \"https://10.0.0.1:8200\"", 10, "is a listener's address"),
    ])
    func badConfigsNameFileAndLine(text: String, line: Int, fragment: String) {
        do {
            _ = try ConfigLoader.parse(text, file: "bad.hcl")
            Issue.record("expected a config error for: \(text)")
        } catch {
            #expect(error.file == "bad.hcl")
            #expect(error.line == line, "\(error)")
            #expect(fragment.isEmpty || error.message.contains(fragment), "\(error)")
            #expect(error.description.hasPrefix(line > 0 ? "bad.hcl:\(line): " : "bad.hcl: "))
        }
    }

    @Test func readsAPostgreSQLStore() throws {
        let config = try ConfigLoader.parse("""
            storage "postgresql" {
              connection_url     = "postgresql://mayfly@db.internal:5433/mayfly?sslmode=verify-full&sslrootcert=/etc/ca.pem"
              schema             = "mayfly_prod"
              max_connections    = 8
            }
            listener "unix" { path = "/run/mayfly.sock" }
            """, file: "pg.hcl")
        #expect(config.storagePath == "")
        #expect(config.postgresStorage?.connectionURL.hasPrefix("postgresql://mayfly@db.internal:5433/mayfly") == true)
        #expect(config.postgresStorage?.schema == "mayfly_prod")
        #expect(config.postgresStorage?.maxConnections == 8)
    }

    @Test func readsHASettingsWithTheirDefaults() throws {
        let config = try ConfigLoader.parse("""
            storage "postgresql" {
              connection_url = "postgresql://mayfly@db.internal/mayfly?sslmode=verify-full&sslrootcert=/etc/ca.pem"
              ha_enabled     = true
            }
            listener "tcp" {
              address       = "10.0.0.7:8200"
              tls_cert_file = "/etc/mayfly/tls.crt"
              tls_key_file  = "/etc/mayfly/tls.key"
            }
            cluster_addr = "https://10.0.0.7:8201"
            """, file: "ha.hcl")
        let ha = try #require(config.ha)
        #expect(ha.lockTTL == 10)
        #expect(ha.clusterHost == "10.0.0.7" && ha.clusterPort == 8201 && ha.clusterAddress == "https://10.0.0.7:8201")
        #expect(ha.apiAddress == "https://10.0.0.7:8200", "api_addr defaults to the first TCP listener")
        #expect(ha.nodeID.hasSuffix(":8201"), "node_id defaults to the host name and the cluster port")

        let set = try ConfigLoader.parse("""
            storage "postgresql" {
              connection_url = "postgresql://mayfly@localhost/mayfly"
              ha_enabled = true
              lock_ttl   = "15s"
              node_id    = "mayfly-2"
            }
            listener "unix" { path = "/run/mayfly.sock" }
            cluster_addr = "https://mayfly-2.internal:8201"
            api_addr     = "https://mayfly.example.com"
            """, file: "ha.hcl")
        #expect(set.ha == HAConfig(nodeID: "mayfly-2", clusterHost: "mayfly-2.internal", clusterPort: 8201,
                                   apiAddress: "https://mayfly.example.com").with { $0.lockTTL = 15 })
        // Without ha_enabled the cluster settings are accepted (Vault's files carry them) and do nothing.
        #expect(try ConfigLoader.parse("""
            storage "postgresql" { connection_url = "postgresql://mayfly@localhost/mayfly" }
            listener "unix" { path = "/run/mayfly.sock" }
            cluster_addr = "https://mayfly-2.internal:8201"
            """, file: "single.hcl").ha == nil)
    }

    @Test func missingFileIsAnError() {
        #expect(throws: ConfigError.self) { _ = try ConfigLoader.load(path: "/nonexistent/mayfly.hcl") }
    }
}

extension HAConfig {
    func with(_ change: (inout HAConfig) -> Void) -> HAConfig {
        var copy = self
        change(&copy)
        return copy
    }
}
