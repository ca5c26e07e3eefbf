import Foundation
import MayflyPostgres
import Synchronization

/// The revoke-everything case (target: under 3 s): live credentials in two databases, a share of
/// them with an open session, then one `sys/mayfly/revoke --all` call timed from request to
/// report, checked against PostgreSQL (no role, no session left).
struct RevokeEverything {
    var socketPath: String
    var token: String
    /// Mayfly roles, one per database.
    var roles: [String]
    var count: Int
    /// Fraction of credentials with an open session.
    var sessionShare: Double

    struct Result {
        var seconds: Double
        var revoked: Int
        var sessionsTerminated: Int
        var sessionsOpened: Int
        var state: String
    }

    /// Sessions held open across the revocation (closed by `close()`).
    final class Sessions: Sendable {
        let connections = Mutex<[PGConnection]>([])
    }

    func run(progress: (String) -> Void) throws -> Result {
        let sessionCount = Int((Double(count) * sessionShare).rounded())
        var kept: [(url: String, password: String)] = []
        for role in roles {
            let share = count / roles.count
            progress("issuing \(share) credentials of \(role)")
            let load = RequestLoad(socketPath: socketPath, token: token, path: "database/creds/\(role)")
            let result = try load.run(count: share, clients: 16, keep: sessionCount / roles.count)
            guard result.count == share else { throw UnixHTTPClient.Failure(description: "issued \(result.count) of \(share)") }
            kept += result.kept
        }
        progress("opening \(kept.count) sessions with issued credentials")
        let sessions = Sessions()
        let logins = kept
        try blocking {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, login) in logins.enumerated() {
                    if index >= 16 { try await group.next() }
                    group.addTask {
                        var config = try PGConnectionConfig.parse(url: login.url)
                        config.password = login.password
                        let connection = try await PGConnection.connect(config)
                        sessions.connections.withLock { $0.append(connection) }
                    }
                }
                try await group.waitForAll()
            }
        }
        progress("revoking everything in one call")
        let client = try UnixHTTPClient(socketPath: socketPath)
        let start = DispatchTime.now().uptimeNanoseconds
        let response = try client.request("POST", "sys/mayfly/revoke", token: token, body: #"{"all":true,"reason":"scripts/bench revoke-everything"}"#)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        guard response.status == 200,
            let object = try JSONSerialization.jsonObject(with: response.body) as? [String: Any],
            let data = object["data"] as? [String: Any], let totals = data["totals"] as? [String: Any]
        else {
            throw UnixHTTPClient.Failure(
                description: "revoke answered \(response.status): \(String(decoding: response.body.prefix(300), as: UTF8.self))")
        }
        // Every held session must be dead.
        let alive = try blocking {
            var alive = 0
            for connection in sessions.connections.withLock({ $0 }) {
                if (try? await connection.query("SELECT 1")) != nil { alive += 1 }
                await connection.close()
            }
            return alive
        }
        guard alive == 0 else { throw UnixHTTPClient.Failure(description: "\(alive) sessions survived the revocation") }
        return Result(
            seconds: seconds, revoked: (totals["credentials_revoked"] as? Int) ?? -1,
            sessionsTerminated: (totals["sessions_terminated"] as? Int) ?? -1, sessionsOpened: logins.count,
            state: (data["state"] as? String) ?? "")
    }

    /// Runs async work from this synchronous command and waits for it.
    private func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
        let outcome = Mutex<Swift.Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                let value = try await body()
                outcome.withLock { $0 = .success(value) }
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()
        return try outcome.withLock { $0! }.get()
    }
}
