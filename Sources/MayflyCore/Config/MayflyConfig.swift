import Foundation
import MayflyPostgres
import MayflyStore

/// A Unix-socket listener (`listener "unix"`).
public struct UnixListenerConfig: Sendable, Equatable {
    public var path: String
    /// Socket file mode; 0660 by default.
    public var mode: UInt16 = 0o660
    /// Group that owns the socket file (clients in it may connect).
    public var group: String?
    /// Seconds a request head may take to arrive (`http_read_header_timeout`).
    public var readHeaderTimeout: Int64 = 10
    /// Seconds a request body may take to arrive after its head (`http_read_timeout`).
    public var readTimeout: Int64 = 30
    /// Seconds a connection with nothing in flight may stay silent (`http_idle_timeout`).
    public var idleTimeout: Int64 = 300
    /// Open connections at most; the longest-idle one makes room for a new one (`max_connections`).
    public var maxConnections = 4096

    public init(path: String, mode: UInt16 = 0o660, group: String? = nil, readHeaderTimeout: Int64 = 10,
                idleTimeout: Int64 = 300, maxConnections: Int = 4096, readTimeout: Int64 = 30)
    {
        self.readTimeout = readTimeout
        self.path = path
        self.mode = mode
        self.group = group
        self.readHeaderTimeout = readHeaderTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
    }
}

/// A TCP listener with TLS (`listener "tcp"`).
public struct TCPListenerConfig: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var certFile: String
    public var keyFile: String
    /// CA that client certificates must chain to (mTLS).
    public var clientCAFile: String?
    /// Refuse the handshake without a client certificate.
    public var requireClientCert: Bool = false
    /// `tls12` (default) or `tls13`.
    public var minimumTLSVersion: String = "tls12"
    /// Seconds a request head may take to arrive, the first one's TLS handshake included (`http_read_header_timeout`).
    public var readHeaderTimeout: Int64 = 10
    /// Seconds a request body may take to arrive after its head (`http_read_timeout`).
    public var readTimeout: Int64 = 30
    /// Seconds a connection with nothing in flight may stay silent (`http_idle_timeout`).
    public var idleTimeout: Int64 = 300
    /// Seconds the TLS handshake may take (`tls_handshake_timeout`).
    public var tlsHandshakeTimeout: Int64 = 10
    /// Open connections at most; the longest-idle one makes room for a new one (`max_connections`).
    public var maxConnections = 4096

    public init(host: String, port: Int, certFile: String, keyFile: String, clientCAFile: String? = nil,
                requireClientCert: Bool = false, minimumTLSVersion: String = "tls12", readHeaderTimeout: Int64 = 10,
                idleTimeout: Int64 = 300, tlsHandshakeTimeout: Int64 = 10, maxConnections: Int = 4096,
                readTimeout: Int64 = 30)
    {
        self.readTimeout = readTimeout
        self.readHeaderTimeout = readHeaderTimeout
        self.idleTimeout = idleTimeout
        self.tlsHandshakeTimeout = tlsHandshakeTimeout
        self.maxConnections = maxConnections
        self.host = host
        self.port = port
        self.certFile = certFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
        self.requireClientCert = requireClientCert
        self.minimumTLSVersion = minimumTLSVersion
    }
}

/// A `database "name" { … }` stanza: a connection the broker manages roles in.
public struct DeclaredDatabase: Sendable, Equatable {
    public var name: String
    /// `postgresql://user@host:port/db?sslmode=verify-full&sslrootcert=…`, no password.
    public var connectionURL: String
    /// File holding the admin password (read at start; never in the config itself).
    public var passwordFile: String?
    public var maxConnections = 4
    public var ownerOnRevoke = ""
    public var allowedRoles = ["*"]
    public var tlsInsecureAllow = false
    /// Cron expression for rotating the admin password (`root_rotation_schedule`).
    public var rootRotationSchedule: String?
    /// Share of the server's `max_connections` live credentials may use (`connection_budget`).
    public var connectionBudget = 0.8
}

/// A `role "name" { … }` stanza: what each credential issued for it gets.
public struct DeclaredRole: Sendable, Equatable {
    public var name: String
    public var database: String
    public var memberOf: [String] = []
    public var defaultTTL: Int64 = 3600
    public var maxTTL: Int64 = 86400
    public var connectionLimit = 5
    public var creationStatements: [String] = []
    public var revocationStatements: [String] = []
    public var renewStatements: [String] = []
    /// Concurrent identical requests share one issuance (`coalesce`).
    public var coalesce = false
    /// Where the role is declared, `file:line` ("" when not from a file): errors name it.
    public var source = ""
}

/// `storage "postgresql" { … }`: the store in a PostgreSQL database (`PostgresStorage`).
public struct PostgresStoreConfig: Sendable, Equatable {
    /// `postgresql://user@host:port/db?sslmode=…`, without a password.
    public var connectionURL: String
    /// A file holding the login's password (read at start).
    public var passwordFile: String?
    /// The schema the store's tables live in.
    public var schema: String = "public"
    public var maxConnections: Int = 4
    /// Allows a connection that is not encrypted and verified (a local socket, a test).
    public var tlsInsecureAllow: Bool = false
    /// High availability (`ha_enabled = true`): several nodes share this store, one leads.
    public var ha: HAConfig?

    public init(connectionURL: String) {
        self.connectionURL = connectionURL
    }

    /// libpq's settings: the URL parsed, the password read from `passwordFile`.
    func connection() throws -> PGConnectionConfig {
        var connection = try PGConnectionConfig.parse(url: connectionURL)
        if let passwordFile {
            guard let data = FileManager.default.contents(atPath: passwordFile) else {
                throw StorageError(.unavailable, "cannot read the store's password_file \(passwordFile)")
            }
            connection.password = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return connection
    }

    /// What names this store among others (the cluster id is derived from it).
    var identity: String { connectionURL + "#" + schema }
}

/// High availability on a PostgreSQL store (`ha_enabled = true` in `storage "postgresql"`,
/// with `cluster_addr` and `api_addr` beside it): the nodes elect a leader through a lock row
/// with a term; the others are standbys that forward requests to it.
public struct HAConfig: Sendable, Equatable {
    /// Seconds the leader lock lasts without a renewal (`lock_ttl`, 10 s): how long a failed
    /// leader is waited for before another node takes over.
    public var lockTTL: Double = 10
    /// This node's name among the others (`node_id`; default: the host name and the
    /// cluster port).
    public var nodeID: String
    /// Where this node takes requests forwarded by standbys (`cluster_addr`): host and port
    /// of a listener with mutual TLS on the cluster's own certificate.
    public var clusterHost: String
    public var clusterPort: Int
    /// What `sys/leader` tells clients to reach this node by (`api_addr`; default: its first
    /// TCP listener).
    public var apiAddress: String

    public init(nodeID: String, clusterHost: String, clusterPort: Int, apiAddress: String) {
        self.nodeID = nodeID
        self.clusterHost = clusterHost
        self.clusterPort = clusterPort
        self.apiAddress = apiAddress
    }

    /// `https://host:port` of the cluster listener, as other nodes reach it.
    public var clusterAddress: String {
        clusterHost.contains(":") ? "https://[\(clusterHost)]:\(clusterPort)" : "https://\(clusterHost):\(clusterPort)"
    }
}

extension MayflyConfig {
    /// The HA settings, when the store is shared by several nodes.
    public var ha: HAConfig? { postgresStorage?.ha }

    /// What names the store this config opens: the SQLite file, or the PostgreSQL URL and schema.
    var storeIdentity: String { postgresStorage?.identity ?? storagePath }
}

/// The server configuration (one HCL or JSON file, Vault-style stanzas; the README's
/// config reference lists every setting).
public struct MayflyConfig: Sendable, Equatable {
    /// The SQLite database file (`storage "sqlite" { path = … }`); empty with a PostgreSQL store.
    public var storagePath: String
    /// The PostgreSQL store (`storage "postgresql" { … }`), instead of SQLite.
    public var postgresStorage: PostgresStoreConfig?
    public var unixListeners: [UnixListenerConfig] = []
    public var tcpListeners: [TCPListenerConfig] = []
    public var seal: SealMode = .shamir
    /// trace, debug, info, notice, warning, error, critical.
    public var logLevel: String = "info"
    /// Largest accepted request body in bytes (32 MiB like Vault).
    public var maxRequestSize: Int = 32 << 20
    /// Token TTL when none is asked for (768h like Vault).
    public var defaultLeaseTTL: Int64 = 768 * 3600
    public var maxLeaseTTL: Int64 = 768 * 3600
    /// PBKDF2 iterations of the SCRAM verifiers of dynamic roles. Low on purpose: passwords are
    /// 32 random bytes, so stretching adds no security but costs every login.
    public var scramIterations: Int = 16
    /// Databases and roles declared in the file; applied (over the API's) at every unseal.
    public var databases: [DeclaredDatabase] = []
    public var roles: [DeclaredRole] = []
    public var staticRoles: [DeclaredStaticRole] = []
    /// `bind` stanzas: policies for transport identities (Unix peer, client certificate).
    public var bindings: [Binding] = []
    /// Login attempts allowed per source (Unix uid or client address) per minute; 0 = no limit.
    public var loginRateLimit = 20
    /// `policies { directory = "…" }`: ACL policy files (`<name>.hcl` / `<name>.json`).
    public var policyDirectory: String?
    /// `audit "file" { path = "…" }`: the audit log (none when nil).
    public var auditPath: String?
    /// `telemetry { unauthenticated_metrics_access = true }`: `sys/metrics` without a token.
    public var unauthenticatedMetrics = false
    /// Live credentials one identity may hold (`limits { leases_per_identity }`); 0: no limit.
    public var leasesPerIdentity = 0
    /// Credentials one identity may obtain per minute (`limits { issues_per_identity_per_minute }`); 0: no limit.
    public var issuesPerIdentityPerMinute = 0
    /// Cron expression for adding a keyring term (`keyring_rotation_schedule`); none by default.
    public var keyringRotationSchedule: String?
    /// Entries moved to the newest keyring term per second by the background re-wrap.
    public var keyringRewrapRate = 500
    /// Random delay of up to this many seconds added to each scheduled run (`scheduler { jitter }`).
    public var schedulerJitter: Int64 = 5
    /// Seconds of job history kept (`scheduler { history_retention }`).
    public var jobHistoryRetention: Int64 = 30 * 86400

    public init(storagePath: String) {
        self.storagePath = storagePath
    }
}

/// A `static_role "name" { … }` stanza: a long-lived login whose password Mayfly rotates.
public struct DeclaredStaticRole: Sendable, Equatable {
    public var name: String
    public var database: String
    public var username: String
    /// `single` or `alternating`.
    public var strategy = "single"
    public var memberOf: [String] = []
    public var rotationSchedule: String?
    public var rotationPeriod: Int64?
    public var timeZone: String?
    public var rotationStatements: [String] = []
}
