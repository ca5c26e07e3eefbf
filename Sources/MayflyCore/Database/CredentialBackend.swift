import Synchronization

/// One database type Mayfly hands out logins for (Vault's `dbplugin.Database`): everything
/// that speaks to the database — its SQL, its password format, its statement templates — lives
/// behind this protocol, one instance per configured database. Leases, admission and incidents
/// hold none of it: they decide what happens and when; the backend makes it so.
///
/// A new database type is one folder beside `PostgreSQL/` with a type conforming to this
/// protocol, plus one `CredentialBackends.register` line naming its `plugin_name`.
///
/// Failures are `CredentialBackendError`s, so callers act on their kind (unreachable: retry
/// later; no such login; one statement refused) without knowing the database.
protocol CredentialBackend: AnyObject, Sendable {
    /// A backend for the database `config` describes (no connection is opened yet).
    init(config: DatabaseConfig, settings: CredentialBackends.Settings) throws

    /// Checks a config before it is stored: a 400 naming what is wrong (a malformed URL, a
    /// connection that would not be encrypted).
    static func validate(_ config: DatabaseConfig) throws

    /// Admin connections the backend holds at most (the connection budget leaves them out).
    var adminConnections: Int { get }

    /// Creates a lease's login, valid until `login.validUntil` (Unix seconds), a member of
    /// `role.memberOf` (or made by `role.creationStatements`), marked with its lease and store.
    func create(_ login: NewLogin, role: DatabaseRole) async throws

    /// Moves a login's expiry to `validUntil`; `.noSuchLogin` when it is gone.
    func renew(username: String, validUntil: Int64, role: DatabaseRole?) async throws

    /// Ends logins for good, all of them in one pass: no new logins, open sessions ended, what
    /// they own handed to `ownerOnRevoke` (the admin login when empty) in every database, then
    /// the logins dropped, each after its role's `revocationStatements`. Idempotent: logins
    /// already gone are skipped. Returns the number of sessions ended.
    func revoke(usernames: [String], revocationStatements: [String: [String]]) async throws -> Int

    /// Logins marked as made by store `storeID`: username and lease id (reconcile).
    func markedLogins(storeID: String) async throws -> [(username: String, leaseID: String)]

    /// Which of `usernames` exist.
    func existingLogins(_ usernames: [String]) async throws -> Set<String>

    /// Sessions open now under logins of store `storeID`.
    func openSessions(storeID: String) async throws -> Int

    /// The server's connection limit and how many of its connections are reserved.
    func connectionCapacity() async throws -> (maximum: Int, reserved: Int)

    /// Which of `groups` do not exist, and which are privileged: are, or can become, an
    /// administrator of the server, hold power over its operating system or other sessions, or
    /// are the broker's own admin login. Nothing a credential is a member of may be either.
    func groupStatus(_ groups: [String]) async throws -> (missing: [String], privileged: [String])

    /// The URL a client connects with as `username` (no password in it).
    func clientURL(username: String) throws -> String

    // Static roles: logins whose password Mayfly rotates and hands out.

    /// Checks that the operator's login `username` may be a `single` static role: it exists,
    /// is not the broker's admin login, and is not privileged (see `groupStatus`) — its password
    /// is handed out. A 400 naming why not.
    func checkStaticLogin(_ username: String) async throws

    /// Creates those of `usernames` that do not exist, members of `groups`, with passwords
    /// nobody knows, marked with `marker` (the users of an `alternating` static role).
    func createStaticLogins(_ usernames: [String], groups: [String], marker: String) async throws

    /// Those of `usernames` that carry `marker` (users Mayfly made, never an operator's).
    func loginsMarked(_ usernames: [String], marker: String) async throws -> [String]

    /// Sets `username`'s password (a static rotation), with the role's rotation statements if
    /// it has any. Idempotent.
    func setPassword(username: String, password: String, statements: [String]) async throws

    /// The admin login's user name in `config` (a static role must never hand it out).
    static func adminLogin(_ config: DatabaseConfig) -> String?

    /// Changes the admin login's password to `newPassword` (root rotation) with `config`'s
    /// root rotation statements, if any; connects with `config`'s password or, should that
    /// fail (the change was made before a crash), with the new one.
    func rotateAdminPassword(_ config: DatabaseConfig, to newPassword: String) async throws

    /// A root rotation is about to set `password`: connections opened from now on try it
    /// should the current password fail.
    func adminPasswordChanging(to password: String) async

    /// A root rotation set `password`: connections opened from now on use it.
    func adminPasswordChanged(to password: String) async

    /// Databases whose configs share a key share one admin login (PostgreSQL: `user@host:port`),
    /// so a root rotation changes the password of all of them.
    static func loginKey(_ config: DatabaseConfig) -> String

    /// Checks that the admin login connects and that `ownerOnRevoke` (if set) exists.
    func verify() async throws

    /// Closes the admin connections.
    func close() async
}

/// A lease's login, as the backend is asked to create it.
struct NewLogin: Sendable {
    var username: String
    /// The plaintext password; the backend decides what the database is sent (PostgreSQL: a
    /// SCRAM verifier, never the plaintext).
    var password: String
    /// Unix seconds after which the database refuses the login.
    var validUntil: Int64
    var connectionLimit: Int
    var leaseID: String
    var storeID: String

    /// The marker a login carries (PostgreSQL: its `COMMENT ON ROLE`): `mayfly lease <lease id>
    /// store <store id>`, how reconcile finds the logins its store made.
    var marker: String { "mayfly lease \(leaseID) store \(storeID)" }
}

/// A credential backend's failure, in the terms callers act on. `description` is generic;
/// `message` is client-safe (e.g. a SQLSTATE and the server's message); `debugDescription`
/// carries the details.
struct CredentialBackendError: Error, CustomStringConvertible, CustomDebugStringConvertible {
    enum Kind: Sendable, Equatable {
        /// The database cannot be reached (no connection, or it dropped): try again later.
        case unreachable
        /// The login does not exist (dropped meanwhile).
        case noSuchLogin
        /// The database refused a statement (bad custom SQL, an object in the way); a batch
        /// with one such login is retried in halves.
        case refused
        /// Anything else.
        case other
    }

    let kind: Kind
    let message: String
    let detail: String

    init(_ kind: Kind, _ message: String, detail: String = "") {
        self.kind = kind
        self.message = message
        self.detail = detail
    }

    var description: String { "credential backend error (\(kind))" }
    var debugDescription: String { "credential backend error (\(kind)): \(message)\(detail.isEmpty ? "" : " — \(detail)")" }
}

/// The database types Mayfly knows, by Vault's `plugin_name`.
enum CredentialBackends {
    /// What a backend is built from: the database's stored config and the broker's settings.
    struct Settings: Sendable {
        /// SCRAM iterations of the verifiers Mayfly computes (PostgreSQL).
        var scramIterations: Int = SCRAMVerifier.defaultIterations
    }

    /// The `plugin_name` of a config that names none.
    static let defaultPlugin = PostgresBackend.pluginName

    private static let types = Mutex<[String: any CredentialBackend.Type]>([
        PostgresBackend.pluginName: PostgresBackend.self,
    ])

    /// Adds a database type under `plugin` (a second one, or a test's).
    static func register(_ plugin: String, _ type: any CredentialBackend.Type) {
        types.withLock { $0[plugin] = type }
    }

    /// The plugin names known, sorted (for errors).
    static var plugins: [String] { types.withLock { $0.keys.sorted() } }

    /// The type of `plugin` (nil: the default); a 400 when Mayfly knows no such plugin.
    static func type(of plugin: String?) throws -> any CredentialBackend.Type {
        let plugin = plugin ?? defaultPlugin
        guard let type = types.withLock({ $0[plugin] }) else {
            throw APIError.badRequest("plugin_name \"\(APIError.clip(plugin))\" is not one Mayfly knows (\(plugins.joined(separator: ", ")))")
        }
        return type
    }

    /// A backend for `config`.
    static func make(_ config: DatabaseConfig, settings: Settings) throws -> any CredentialBackend {
        try type(of: config.plugin).init(config: config, settings: settings)
    }
}
