public import Hummingbird
public import MayflyCore
public import NIOCore

/// The request context: Hummingbird's core storage, the channel, and the identity its
/// transport proves (peer credentials, client certificate).
public struct MayflyRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection the request arrived on.
    public let channel: any Channel
    /// What the connection proves about its peer (set by `PeerIdentityMiddleware`): the Unix
    /// peer's uid, gid and pid, or the verified client certificate; nil when neither.
    public var peerIdentity: PeerIdentity?
    /// The request came over the cluster listener, forwarded by a standby (HA).
    public var forwarded = false
    /// The client's address as the forwarding standby saw it.
    public var forwardedFor: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
