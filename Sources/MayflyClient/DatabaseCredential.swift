public import Foundation

/// A dynamic PostgreSQL credential (`database/creds/<role>`) and its lease.
public struct DatabaseCredential: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public var leaseID: String
    /// Seconds the lease was granted for.
    public var leaseDuration: Int64
    public var renewable: Bool
    public var username: String
    public var password: String
    /// `postgresql://user@host:port/db?sslmode=verify-full&sslrootcert=…` (no password).
    public var connectionURL: String

    public init(leaseID: String, leaseDuration: Int64, renewable: Bool, username: String, password: String,
                connectionURL: String)
    {
        self.leaseID = leaseID
        self.leaseDuration = leaseDuration
        self.renewable = renewable
        self.username = username
        self.password = password
        self.connectionURL = connectionURL
    }

    /// Everything but the password, so a credential printed or logged by mistake leaks nothing.
    public var description: String {
        "DatabaseCredential(username: \(username), lease: \(leaseID), duration: \(leaseDuration)s, password: <redacted>)"
    }

    public var debugDescription: String { description }

    /// The connection URL with the password filled in (what `DATABASE_URL` holds). Empty when
    /// the server gave no URL.
    public var databaseURL: String {
        guard var components = URLComponents(string: connectionURL) else { return "" }
        components.user = username
        components.password = password
        // URLComponents leaves some characters alone that libpq would misread in a password.
        if let encoded = password.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(["-", "_", ".", "~"])) {
            components.percentEncodedPassword = encoded
        }
        return components.string ?? ""
    }

    /// libpq's environment variables (`PGHOST`, `PGPORT`, `PGDATABASE`, `PGUSER`,
    /// `PGPASSWORD`, `PGSSLMODE`, `PGSSLROOTCERT`).
    public var libpqEnvironment: [String: String] {
        guard let components = URLComponents(string: connectionURL) else { return [:] }
        var environment = ["PGUSER": username, "PGPASSWORD": password]
        if let host = components.host { environment["PGHOST"] = host }
        if let port = components.port { environment["PGPORT"] = String(port) }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        if !database.isEmpty { environment["PGDATABASE"] = database }
        for item in components.queryItems ?? [] {
            if item.name == "sslmode", let value = item.value { environment["PGSSLMODE"] = value }
            if item.name == "sslrootcert", let value = item.value { environment["PGSSLROOTCERT"] = value }
        }
        return environment
    }
}
