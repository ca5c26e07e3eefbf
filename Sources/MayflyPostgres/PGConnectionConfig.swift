import Foundation

/// Where and how to connect. The password is never formatted into a conninfo string: it is
/// passed to `PQconnectdbParams` as its own parameter.
public struct PGConnectionConfig: Sendable {
    public var host: String
    public var port: Int
    public var database: String
    public var user: String
    public var password: String?
    /// libpq `sslmode`; `verify-full` unless the URL says otherwise.
    public var sslMode: String
    public var sslRootCert: String?
    public var applicationName = "mayfly"
    public var connectTimeoutSeconds = 10

    public init(host: String, port: Int = 5432, database: String, user: String, password: String? = nil,
                sslMode: String = "verify-full", sslRootCert: String? = nil)
    {
        self.host = host
        self.port = port
        self.database = database
        self.user = user
        self.password = password
        self.sslMode = sslMode
        self.sslRootCert = sslRootCert
    }

    /// Parses `postgresql://user@host:port/db?sslmode=…&sslrootcert=…`. A password in the URL
    /// is refused: it belongs in a password file.
    public static func parse(url: String) throws -> PGConnectionConfig {
        guard let components = URLComponents(string: url),
            components.scheme == "postgresql" || components.scheme == "postgres"
        else {
            throw PGError(.invalidURL, message: "connection_url must look like postgresql://user@host:5432/dbname?sslmode=verify-full")
        }
        guard components.password == nil else {
            throw PGError(.invalidURL, message: "connection_url must not contain a password; use password_file")
        }
        guard let host = components.host, !host.isEmpty else {
            throw PGError(.invalidURL, message: "connection_url needs a host")
        }
        guard let user = components.user, !user.isEmpty else {
            throw PGError(.invalidURL, message: "connection_url needs a user (postgresql://user@host/db)")
        }
        let database = String(components.path.drop { $0 == "/" })
        var config = PGConnectionConfig(
            host: host, port: components.port ?? 5432, database: database.isEmpty ? user : database, user: user)
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode": config.sslMode = item.value ?? ""
            case "sslrootcert": config.sslRootCert = item.value
            case "application_name": config.applicationName = item.value ?? "mayfly"
            case "connect_timeout": config.connectTimeoutSeconds = Int(item.value ?? "") ?? 10
            default:
                throw PGError(.invalidURL, message: "unsupported connection_url parameter \"\(item.name)\"")
            }
        }
        let modes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
        guard modes.contains(config.sslMode) else {
            throw PGError(.invalidURL, message: "sslmode must be one of \(modes.joined(separator: ", "))")
        }
        return config
    }

    /// True for loopback hosts and Unix-socket directories, where TLS adds nothing.
    public var isLocal: Bool {
        host.hasPrefix("/") || host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// TLS to the database is verified: a non-local server must be reached with `sslmode=verify-full`
    /// unless the operator opted out.
    public func checkTLSPolicy(allowInsecure: Bool) throws {
        guard !isLocal, sslMode != "verify-full", !allowInsecure else { return }
        throw PGError(.insecureTLS, message: """
            connection to \(host) uses sslmode=\(sslMode): a non-local database must use sslmode=verify-full \
            (with sslrootcert). "require" encrypts but does not authenticate the server, so anyone on the path \
            can impersonate it and receive the broker's admin login. Set tls_insecure_allow = true only if you \
            accept that risk.
            """)
    }

    /// libpq keywords and values for `PQconnectdbParams`.
    var parameters: [(String, String)] {
        var list: [(String, String)] = [
            ("host", host), ("port", String(port)), ("dbname", database), ("user", user), ("sslmode", sslMode),
            ("application_name", applicationName), ("connect_timeout", String(connectTimeoutSeconds)),
        ]
        if let sslRootCert { list.append(("sslrootcert", sslRootCert)) }
        if let password { list.append(("password", password)) }
        return list
    }
}
