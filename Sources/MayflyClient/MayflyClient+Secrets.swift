import Foundation

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

    private func object(_ response: Response) throws -> JSONValue {
        guard (200..<300).contains(response.status) else {
            throw APIError(status: response.status, message: response.errorMessage)
        }
        return response.json ?? .object([:])
    }

    /// A new credential of `role` (`GET database/creds/<role>`); `path` may also be a full
    /// `database/creds/<role>` path.
    public func databaseCredential(_ role: String) async throws -> DatabaseCredential {
        let path = role.hasPrefix("database/creds/") ? role : "database/creds/\(role)"
        let body = try object(try await request("GET", path))
        let data = body["data"]
        guard let username = data?["username"]?.stringValue, let password = data?["password"]?.stringValue else {
            throw APIError(status: 500, message: "\(path) returned no username and password")
        }
        return DatabaseCredential(
            leaseID: body["lease_id"]?.stringValue ?? "", leaseDuration: body["lease_duration"]?.intValue ?? 0,
            renewable: body["renewable"]?.boolValue ?? false, username: username, password: password,
            connectionURL: data?["connection_url"]?.stringValue ?? "")
    }

    /// The fields of a KV v2 secret (`GET secret/data/<path>`), as strings.
    public func secret(_ path: String) async throws -> [String: String] {
        let full = path.contains("/data/") ? path : "secret/data/\(path)"
        let body = try object(try await request("GET", full))
        let fields = body["data"]?["data"]?.objectValue ?? [:]
        // A string as it is; anything else as its JSON text.
        return fields.mapValues { value in value.stringValue ?? String(decoding: value.encoded(), as: UTF8.self) }
    }

    /// Renews a lease; returns the seconds granted (less than asked once the role's max TTL
    /// is near).
    public func renew(leaseID: String, increment: Int64) async throws -> Int64 {
        let payload = Data(JSONValue.object(["lease_id": .string(leaseID), "increment": .int(increment)]).encoded())
        let body = try object(try await request("PUT", "sys/leases/renew", body: payload))
        return body["lease_duration"]?.intValue ?? 0
    }

    /// Revokes a lease now (its role is dropped and its sessions ended).
    public func revoke(leaseID: String) async throws {
        let payload = Data(JSONValue.object(["lease_id": .string(leaseID)]).encoded())
        _ = try object(try await request("PUT", "sys/leases/revoke", body: payload))
    }
}
