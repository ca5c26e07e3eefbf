public import Foundation

/// Typed calls for applications: fetch a database credential or a KV secret, renew and
/// revoke leases. Every failure is a `MayflyClient.APIError` (the server answered with an
/// error) or a `ConnectionError` (it could not be reached).
extension MayflyClient {
    /// An error answer from the server: status and its messages.
    public struct APIError: Error, CustomStringConvertible, Sendable {
        public let status: Int
        public let message: String
        public var description: String { "HTTP \(status): \(message)" }

        public init(status: Int, message: String) {
            self.status = status
            self.message = message
        }
    }

    private func object(_ response: Response) throws -> [String: Any] {
        guard (200..<300).contains(response.status) else {
            throw APIError(status: response.status, message: response.errorMessage)
        }
        return response.json ?? [:]
    }

    /// A new credential of `role` (`GET database/creds/<role>`); `path` may also be a full
    /// `database/creds/<role>` path.
    public func databaseCredential(_ role: String) async throws -> DatabaseCredential {
        let path = role.hasPrefix("database/creds/") ? role : "database/creds/\(role)"
        let body = try object(try await request("GET", path))
        let data = body["data"] as? [String: Any] ?? [:]
        guard let username = data["username"] as? String, let password = data["password"] as? String else {
            throw APIError(status: 500, message: "\(path) returned no username and password")
        }
        return DatabaseCredential(
            leaseID: body["lease_id"] as? String ?? "", leaseDuration: (body["lease_duration"] as? NSNumber)?.int64Value ?? 0,
            renewable: body["renewable"] as? Bool ?? false, username: username, password: password,
            connectionURL: data["connection_url"] as? String ?? "")
    }

    /// The fields of a KV v2 secret (`GET secret/data/<path>`), as strings.
    public func secret(_ path: String) async throws -> [String: String] {
        let full = path.contains("/data/") ? path : "secret/data/\(path)"
        let body = try object(try await request("GET", full))
        let fields = (body["data"] as? [String: Any])?["data"] as? [String: Any] ?? [:]
        return fields.mapValues { value in
            if let text = value as? String { return text }
            if let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed]) {
                return String(decoding: data, as: UTF8.self)
            }
            return "\(value)"
        }
    }

    /// Renews a lease; returns the seconds granted (less than asked once the role's max TTL
    /// is near).
    public func renew(leaseID: String, increment: Int64) async throws -> Int64 {
        let payload = try JSONSerialization.data(withJSONObject: ["lease_id": leaseID, "increment": increment])
        let body = try object(try await request("PUT", "sys/leases/renew", body: payload))
        return (body["lease_duration"] as? NSNumber)?.int64Value ?? 0
    }

    /// Revokes a lease now (its role is dropped and its sessions ended).
    public func revoke(leaseID: String) async throws {
        let payload = try JSONSerialization.data(withJSONObject: ["lease_id": leaseID])
        _ = try object(try await request("PUT", "sys/leases/revoke", body: payload))
    }
}
