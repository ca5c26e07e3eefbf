public import Hummingbird
public import NIOCore

/// The request context: Hummingbird's core storage plus the channel, so identity from the
/// transport (peer credentials, client certificate) can be read from it.
public struct MayflyRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connection the request arrived on.
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
