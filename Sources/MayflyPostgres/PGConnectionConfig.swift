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
    /// Further servers, tried in order after `host` (a multi-host URL,
    /// `postgresql://user@pg-1:5432,pg-2:5432/db`): with `targetSessionAttrs = "read-write"`
    /// a connection finds whichever is the primary now (PostgreSQL's own failover).
    public var moreHosts: [(host: String, port: Int)] = []
    /// libpq `target_session_attrs` (`read-write`, `primary`, …), when the URL sets it.
    public var targetSessionAttrs: String?

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
        // A multi-host authority (`h1:5432,h2:5432`) is not a URL host: the first is parsed as
        // the URL's, the others here.
        var url = url
        var more: [(host: String, port: Int)] = []
        if let schemeEnd = url.range(of: "://") {
            let rest = url[schemeEnd.upperBound...]
            let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            let hostsStart = authority.firstIndex(of: "@").map(authority.index(after:)) ?? authority.startIndex
            let hosts = authority[hostsStart...].split(separator: ",", omittingEmptySubsequences: false)
            if hosts.count > 1 {
                for entry in hosts.dropFirst() {
                    guard let parsed = URLComponents(string: "postgresql://" + entry), let host = parsed.host, !host.isEmpty,
                        parsed.path.isEmpty, parsed.user == nil
                    else {
                        throw PGError(.invalidURL, message: "connection_url lists an invalid host \"\(entry)\" (host:port,host:port)")
                    }
                    more.append((Self.unbracketed(host), parsed.port ?? 5432))
                }
                url.replaceSubrange(hostsStart..<authorityEnd, with: hosts[0])
            }
        }
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
            host: Self.unbracketed(host), port: components.port ?? 5432, database: database.isEmpty ? user : database, user: user)
        config.moreHosts = more
        for item in components.queryItems ?? [] {
            switch item.name {
            case "target_session_attrs":
                let attributes = ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"]
                guard let value = item.value, attributes.contains(value) else {
                    throw PGError(.invalidURL, message: "target_session_attrs must be one of \(attributes.joined(separator: ", "))")
                }
                config.targetSessionAttrs = value
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

    /// An IPv6 literal as libpq takes it (`fd00::3`, not the URL's `[fd00::3]`).
    static func unbracketed(_ host: String) -> String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    /// True for loopback hosts and Unix-socket directories, where TLS adds nothing.
    public var isLocal: Bool {
        ([host] + moreHosts.map(\.host)).allSatisfy { host in
            host.hasPrefix("/") || host == "localhost" || host == "::1" || host.hasPrefix("127.")
        }
    }

    /// `host:port`, or every server of a multi-host URL, for messages.
    public var serverDescription: String {
        ([(host, port)] + moreHosts).map { "\($0.host):\($0.port)" }.joined(separator: ",")
    }

    /// TLS to the database is verified: a non-local server must be reached with `sslmode=verify-full`
    /// unless the operator opted out.
    public func checkTLSPolicy(allowInsecure: Bool) throws {
        guard !isLocal, sslMode != "verify-full", !allowInsecure else { return }
        throw PGError(.insecureTLS, message: """
            connection to \(serverDescription) uses sslmode=\(sslMode): a non-local database must use sslmode=verify-full \
            (with sslrootcert). "require" encrypts but does not authenticate the server, so anyone on the path \
            can impersonate it and receive the broker's admin login. Set tls_insecure_allow = true only if you \
            accept that risk.
            """)
    }

    /// libpq keywords and values for `PQconnectdbParams`.
    var parameters: [(String, String)] {
        var list: [(String, String)] = [
            ("host", ([host] + moreHosts.map(\.host)).joined(separator: ",")),
            ("port", ([port] + moreHosts.map(\.port)).map(String.init).joined(separator: ",")),
            ("dbname", database), ("user", user), ("sslmode", sslMode),
            ("application_name", applicationName), ("connect_timeout", String(connectTimeoutSeconds)),
        ]
        if let targetSessionAttrs { list.append(("target_session_attrs", targetSessionAttrs)) }
        if let sslRootCert { list.append(("sslrootcert", sslRootCert)) }
        if let password { list.append(("password", password)) }
        return list
    }
}
