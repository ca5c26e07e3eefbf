import Foundation
import Logging
import MayflyCrypto

/// Rotation of the broker's own admin password (`database/rotate-root/:name`): afterwards
/// only the broker knows it (the change itself is the backend's, `rotateAdminPassword`). The new password is stored as pending before the database changes it, so a
/// crash between the two is finished on the next start. A login is a cluster-wide role, so
/// every database configured with the same login (user, host and port) gets the new password,
/// and rotations of one login are serialised.
extension DatabaseEngine {
    /// `user@host:port`: databases with the same key share one PostgreSQL login.
    static func loginKey(_ config: DatabaseConfig) -> String {
        (try? CredentialBackends.type(of: config.plugin))?.loginKey(config) ?? "database:" + config.name
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
        let key = Self.loginKey(config)
        var sharing = [config.name]
        for other in try await configuredNames() where other != config.name {
            if let sibling = try await self.config(other), Self.loginKey(sibling) == key { sharing.append(other) }
        }
        for name in sharing { await passwordChanging(name, to: pending) }
        do {
            try await backend(config).rotateAdminPassword(config, to: pending)
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
