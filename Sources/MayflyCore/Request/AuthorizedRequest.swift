/// A request the broker has authorized (`Broker.authorize`) but not yet performed: its path is
/// canonical, its caller known and its route found. The HTTP layer reads the body only after
/// this, so an unauthenticated caller cannot make the server parse anything large.
public struct AuthorizedRequest: Sendable {
    /// The request, with its canonical path; the HTTP layer fills in `data` from the body.
    public var request: LogicalRequest
    let route: Route
    /// Nil for the routes that need no caller (health, init, unseal, logins).
    let caller: Caller?

    /// Whether the request was authenticated (a token or a bound identity): a request that was
    /// not may only carry a small body (a login, an unseal key).
    public var isAuthenticated: Bool { caller != nil }
}
