import Hummingbird
import MayflyCore
import NIOCore
import Synchronization

/// Resolves the identity a request's connection proves (`PeerIdentityResolver`) before the
/// responder sees the request, into `MayflyRequestContext.peerIdentity`. A connection's peer
/// never changes (its `SO_PEERCRED`, or the certificate its handshake verified), so it is read
/// once per connection and kept until the connection closes: keep-alive requests cost no
/// event-loop hop and no certificate parse.
struct PeerIdentityMiddleware: RouterMiddleware {
    typealias Context = MayflyRequestContext

    /// Identities by connection, while it is open.
    private let known = Known()

    /// One connection's identity, with a weak reference to the connection itself: an entry
    /// is only ever used for the very channel it was read from, never for a later one that
    /// happens to get the same address before the entry is removed.
    struct Entry: @unchecked Sendable {
        weak var channel: (any Channel)?
        let identity: PeerIdentity?
    }

    final class Known: Sendable {
        let identities = Mutex<[ObjectIdentifier: Entry]>([:])
        func withLock<T: Sendable>(_ body: (inout [ObjectIdentifier: Entry]) -> T) -> T {
            identities.withLock { body(&$0) }
        }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.peerIdentity = await identity(of: context.channel)
        return try await next(request, context)
    }

    private func identity(of channel: any Channel) async -> PeerIdentity? {
        let key = ObjectIdentifier(channel)
        let cached: Entry? = known.withLock { $0[key] }
        if let cached, let same = cached.channel, same === channel { return cached.identity }
        let resolved = await PeerIdentityResolver.identity(of: channel)
        // Kept only while the connection is open (removed when it closes).
        guard channel.isActive else { return resolved }
        known.withLock { $0[key] = Entry(channel: channel, identity: resolved) }
        let known = self.known
        channel.closeFuture.whenComplete { _ in
            known.withLock { entries in
                // Only this channel's entry: a newer channel may hold the key by now.
                if entries[key]?.channel == nil || entries[key]?.channel === channel { entries[key] = nil }
            }
        }
        return resolved
    }

    /// Connections whose identity is kept (tests).
    var connections: Int { known.withLock { $0.count } }
}

/// A responder behind one middleware.
struct MiddlewareResponder<Middleware: RouterMiddleware, Next: HTTPResponder>: HTTPResponder
where Middleware.Context == MayflyRequestContext, Middleware.Input == Request, Middleware.Output == Response,
    Next.Context == MayflyRequestContext
{
    typealias Context = MayflyRequestContext
    let middleware: Middleware
    let next: Next

    func respond(to request: Request, context: Context) async throws -> Response {
        try await middleware.handle(request, context: context) { request, context in
            try await next.respond(to: request, context: context)
        }
    }
}
