import Foundation
import Logging
import MayflyCrypto
import MayflyPostgres

/// Rotation of the broker's own admin password (`database/rotate-root/:name`): afterwards
/// only the broker knows it. The new password is stored as pending before `ALTER ROLE`, so a
/// crash between the two is finished on the next start. A login is a cluster-wide role, so
/// every database configured with the same login (user, host and port) gets the new password,
/// and rotations of one login are serialised.
extension DatabaseEngine {
    /// `user@host:port`: databases with the same key share one PostgreSQL login.
    static func loginKey(_ config: DatabaseConfig) -> String {
        guard let parsed = try? PGConnectionConfig.parse(url: config.connectionURL) else { return "database:" + config.name }
        return "\(parsed.user)@\(parsed.host):\(parsed.port)"
    }

    /// Changes the admin password of database `name`; returns when the new one is stored.
    func rotateRoot(_ name: String, now: Int64? = nil) async throws {
        let now = now ?? clock.seconds()
        try Names.validate(name, kind: "database")
        guard let initial = try await config(name) else {
            throw APIError.badRequest("database \"\(APIError.clip(name))\" is not configured")
        }
        try await rootLocks.withLock(Self.loginKey(initial)) {
            guard var config = try await self.config(name) else {
                throw APIError.badRequest("database \"\(APIError.clip(name))\" is not configured")
            }
            if config.pendingPassword == nil {
                config.pendingPassword = Base64.encodeURLSafeNoPadding(Random.bytes(32))
                try await self.store(config)
            }
            try await self.finishRootRotation(config, now: now)
        }
    }

    /// Finishes an interrupted root rotation of `name`, if there is one.
    func finishInterruptedRootRotation(_ name: String) async throws {
        guard let initial = try await config(name), initial.pendingPassword != nil else { return }
        try await rootLocks.withLock(Self.loginKey(initial)) {
            guard let config = try await self.config(name), config.pendingPassword != nil else { return }
            try await self.finishRootRotation(config, now: self.clock.seconds())
            self.logger.notice("finished an interrupted root rotation", metadata: ["database": "\(name)"])
        }
    }

    private func finishRootRotation(_ config: DatabaseConfig, now: Int64) async throws {
        guard let pending = config.pendingPassword else { return }
        var connection = try Self.connectionConfig(config)
        let verifier = SCRAMVerifier.make(password: pending, iterations: SCRAMVerifier.defaultIterations)
        let key = Self.loginKey(config)
        var sharing = [config.name]
        for other in try await configuredNames() where other != config.name {
            if let sibling = try await self.config(other), Self.loginKey(sibling) == key { sharing.append(other) }
        }
        for name in sharing { await passwordChanging(name, to: pending) }
        do {
            // With the current password; if that fails the change may already have happened,
            // so the pending password is tried (and set again, which is harmless).
            let admin: PGConnection
            do {
                admin = try await PGConnection.connect(connection)
            } catch {
                connection.password = pending
                admin = try await PGConnection.connect(connection)
            }
            let statements = config.rootRotationStatements ?? []
            let user = connection.user
            do {
                try await admin.withSession { session in
                    if statements.isEmpty {
                        try session.execute("ALTER ROLE CURRENT_USER WITH PASSWORD \(try session.escapeLiteral(verifier))")
                    } else {
                        // Vault's root_rotation_statements; {{password}} is the verifier, never the password.
                        try session.execute(statements.map {
                            $0.replacingOccurrences(of: "{{name}}", with: user)
                                .replacingOccurrences(of: "{{username}}", with: user)
                                .replacingOccurrences(of: "{{password}}", with: verifier)
                        }.joined(separator: ";\n"))
                    }
                }
            } catch {
                await admin.close()
                throw error
            }
            await admin.close()
        } catch {
            logger.warning("root rotation failed", metadata: ["database": "\(config.name)", "error": "\(String(reflecting: error))"])
            throw APIError(status: 500, ["cannot rotate the root credentials of \"\(config.name)\": \(Self.describe(error))"])
        }
        for name in sharing {
            guard var done = name == config.name ? config : try await self.config(name) else { continue }
            done.password = pending
            done.pendingPassword = nil
            done.lastRootRotation = now
            try await store(done)
            // Not dropped: its open connections stay valid, and requests in flight keep them.
            await passwordChanged(name, to: pending)
        }
        logger.info("root credentials rotated", metadata: ["databases": "\(sharing.joined(separator: ","))"])
    }
}
