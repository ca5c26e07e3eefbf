import Foundation
@testable import MayflyCore
import Synchronization

/// A second database type, held in memory: what it takes to add one is this folder and the
/// `CredentialBackends.register` line in `InMemoryDatabase.register()`. The lease, incident and
/// static-role suites run against it on a manual clock; the PostgreSQL suites stay the proof
/// for PostgreSQL.
///
/// A config's `connection_url` is `memory://<name>`, naming an `InMemoryDatabase` the test
/// made; its admin login is `admin`, with the config's password.
final class InMemoryBackend: CredentialBackend {
    static let pluginName = "mayfly-memory-plugin"

    let config: DatabaseConfig
    let database: InMemoryDatabase

    init(config: DatabaseConfig, settings: CredentialBackends.Settings) throws {
        try Self.validate(config)
        self.config = config
        database = InMemoryDatabase.named(String(config.connectionURL.dropFirst("memory://".count)))!
    }

    static func validate(_ config: DatabaseConfig) throws {
        guard config.connectionURL.hasPrefix("memory://"),
            InMemoryDatabase.named(String(config.connectionURL.dropFirst("memory://".count))) != nil
        else { throw APIError.badRequest("connection_url must be memory://<name> of a database the test made") }
    }

    var adminConnections: Int { config.maxConnections }

    func create(_ login: NewLogin, role: DatabaseRole) async throws {
        try database.change { server in
            guard server.logins[login.username] == nil else { throw CredentialBackendError(.refused, "login exists") }
            server.logins[login.username] = .init(
                password: login.password, validUntil: login.validUntil, groups: role.memberOf, marker: login.marker,
                connectionLimit: login.connectionLimit)
        }
    }

    func renew(username: String, validUntil: Int64, role: DatabaseRole?) async throws {
        try database.change { server in
            guard server.logins[username] != nil else { throw CredentialBackendError(.noSuchLogin, "no login \(username)") }
            server.logins[username]?.validUntil = validUntil
        }
    }

    func revoke(usernames: [String], revocationStatements: [String: [String]]) async throws -> Int {
        try database.change { server in
            let refused = usernames.filter { server.refusesRevocation.contains($0) && server.logins[$0] != nil }
            if !refused.isEmpty { throw CredentialBackendError(.refused, "cannot drop \(refused.joined(separator: ", "))") }
            var ended = 0
            for username in usernames where server.logins.removeValue(forKey: username) != nil {
                ended += server.sessions.removeValue(forKey: username) ?? 0
            }
            return ended
        }
    }

    func markedLogins(storeID: String) async throws -> [(username: String, leaseID: String)] {
        try database.read { server in
            server.logins.compactMap { username, login in
                let words = (login.marker ?? "").split(separator: " ")
                guard words.count == 5, words[0] == "mayfly", words[1] == "lease", words[3] == "store", words[4] == storeID
                else { return nil }
                return (username, String(words[2]))
            }
        }
    }

    func existingLogins(_ usernames: [String]) async throws -> Set<String> {
        try database.read { server in Set(usernames.filter { server.logins[$0] != nil }) }
    }

    func openSessions(storeID: String) async throws -> Int {
        try database.read { server in
            server.sessions.filter { server.logins[$0.key]?.marker?.hasSuffix(" store " + storeID) ?? false }.values.reduce(0, +)
        }
    }

    func connectionCapacity() async throws -> (maximum: Int, reserved: Int) {
        try database.read { ($0.maxConnections, $0.reserved) }
    }

    func groupStatus(_ groups: [String]) async throws -> (missing: [String], privileged: [String]) {
        try database.read { server in
            (groups.filter { !server.groups.contains($0) && server.logins[$0] == nil },
             groups.filter { server.privileged.contains($0) || $0 == InMemoryDatabase.admin })
        }
    }

    func clientURL(username: String) throws -> String { "memory://\(username)@\(database.name)" }

    func verify() async throws {
        try database.read { server in
            guard server.adminPassword == self.config.password else {
                throw CredentialBackendError(.unreachable, "password authentication failed")
            }
            let owner = self.config.ownerOnRevoke
            guard owner.isEmpty || server.groups.contains(owner) || server.logins[owner] != nil else {
                throw APIError.badRequest("owner_on_revoke \"\(owner)\" does not exist in the database")
            }
        }
    }

    func checkStaticLogin(_ username: String) async throws {
        try database.read { server in
            guard username != InMemoryDatabase.admin else {
                throw APIError.badRequest("user \"\(username)\" is the broker's own admin login: rotate it with database/rotate-root")
            }
            guard server.logins[username] != nil else {
                throw APIError.badRequest("user \"\(username)\" does not exist in database \"\(self.config.name)\"")
            }
            guard !server.privileged.contains(username) else {
                throw APIError.badRequest("user \"\(username)\" is privileged: a static role cannot hand out its password")
            }
        }
    }

    func createStaticLogins(_ usernames: [String], groups: [String], marker: String) async throws {
        try database.change { server in
            for username in usernames where server.logins[username] == nil {
                server.logins[username] = .init(password: UUID().uuidString, validUntil: nil, groups: groups, marker: marker,
                                                connectionLimit: -1)
            }
        }
    }

    func loginsMarked(_ usernames: [String], marker: String) async throws -> [String] {
        try database.read { server in usernames.filter { server.logins[$0]?.marker == marker } }
    }

    func setPassword(username: String, password: String, statements: [String]) async throws {
        try database.change { server in
            guard server.logins[username] != nil else { throw CredentialBackendError(.refused, "no login \(username)") }
            server.logins[username]?.password = password
        }
    }

    static func adminLogin(_ config: DatabaseConfig) -> String? { InMemoryDatabase.admin }

    func adminPasswordChanging(to password: String) async {}

    func adminPasswordChanged(to password: String) async {}

    static func loginKey(_ config: DatabaseConfig) -> String { "admin@" + config.connectionURL }

    func rotateAdminPassword(_ config: DatabaseConfig, to newPassword: String) async throws {
        try database.change { server in
            guard server.adminPassword == config.password || server.adminPassword == newPassword else {
                throw CredentialBackendError(.unreachable, "password authentication failed")
            }
            server.adminPassword = newPassword
        }
    }

    func close() async {}
}

/// The state of one in-memory database server, shared by every backend built for it (a
/// backend is rebuilt when its config changes or the broker seals), as a server outlives
/// connections to it.
final class InMemoryDatabase: Sendable {
    static let admin = "admin"

    struct Login: Sendable {
        var password: String
        /// Unix seconds after which the login is refused (nil: never).
        var validUntil: Int64?
        var groups: [String]
        var marker: String?
        var connectionLimit: Int
    }

    struct Server: Sendable {
        var adminPassword: String
        var logins: [String: Login] = [:]
        /// Open sessions by login.
        var sessions: [String: Int] = [:]
        /// Group roles (no login).
        var groups: Set<String> = []
        /// Groups and logins with power over the server.
        var privileged: Set<String> = []
        var maxConnections = 100
        var reserved = 3
        /// While set, every call fails as a database that cannot be reached.
        var unreachable = false
        /// Logins whose revocation the database refuses (an object in the way).
        var refusesRevocation: Set<String> = []
    }

    let name: String
    private let state: Mutex<Server>
    private static let all = Mutex<[String: InMemoryDatabase]>([:])

    /// A new database server, reachable as `memory://<name>`, with the admin password `password`.
    init(password: String = "admin-password", groups: Set<String> = []) {
        name = "db-" + UUID().uuidString.prefix(8)
        state = Mutex(Server(adminPassword: password, groups: groups))
        Self.register()
        Self.all.withLock { $0[name] = self }
    }

    /// The registration line: `plugin_name = "mayfly-memory-plugin"` names this database type.
    static func register() {
        CredentialBackends.register(InMemoryBackend.pluginName, InMemoryBackend.self)
    }

    static func named(_ name: String) -> InMemoryDatabase? { all.withLock { $0[name] } }

    var url: String { "memory://\(name)" }

    /// Reads the server's state, failing as unreachable while it is.
    func read<T>(_ body: (Server) throws -> T) throws -> T {
        try state.withLock { server in
            guard !server.unreachable else { throw CredentialBackendError(.unreachable, "connection refused") }
            return try body(server)
        }
    }

    /// Changes the server's state, failing as unreachable while it is.
    func change<T>(_ body: (inout Server) throws -> T) throws -> T {
        try state.withLock { server in
            guard !server.unreachable else { throw CredentialBackendError(.unreachable, "connection refused") }
            return try body(&server)
        }
    }

    /// The state, whatever it is (the test's view, not a client's).
    var server: Server { state.withLock { $0 } }

    /// Sets the test's conditions (reachability, refusals, groups, open sessions).
    func set(_ body: (inout Server) -> Void) { state.withLock { body(&$0) } }

    /// Whether `username` logs in with `password` at Unix second `now`.
    func canLogIn(_ username: String, _ password: String, at now: Int64) -> Bool {
        state.withLock { server in
            guard let login = server.logins[username], login.password == password else { return false }
            return login.validUntil.map { now < $0 } ?? true
        }
    }

    /// Opens a session as `username` (it must exist).
    func openSession(_ username: String) {
        state.withLock { server in
            if server.logins[username] != nil { server.sessions[username, default: 0] += 1 }
        }
    }
}
