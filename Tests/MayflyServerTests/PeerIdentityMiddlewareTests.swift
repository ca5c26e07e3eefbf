import Foundation
import HTTPTypes
import Hummingbird
import Logging
@testable import MayflyServer
import NIOCore
import NIOEmbedded
import Testing

/// Identity is resolved in middleware, once per connection, and forgotten when the
/// connection closes (no identity outlives its connection, none is kept for a closed one).
@Suite struct PeerIdentityMiddlewareTests {
    @Test func aConnectionsIdentityIsKeptWhileItIsOpenAndForgottenWhenItCloses() async throws {
        let middleware = PeerIdentityMiddleware()
        let channel = EmbeddedChannel()
        try await channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 8200)).get()
        let context = MayflyRequestContext(source: .init(channel: channel, logger: Logger(label: "test")))
        let request = Request(head: HTTPRequest(method: .get, scheme: "https", authority: "localhost", path: "/v1/sys/health"),
                              body: .init(buffer: ByteBuffer()))
        for _ in 0..<3 {
            let response = try await middleware.handle(request, context: context) { _, context in
                // No TLS and no Unix socket: the connection proves nothing.
                #expect(context.peerIdentity == nil)
                return Response(status: .ok)
            }
            #expect(response.status == .ok)
        }
        #expect(middleware.connections == 1, "resolved once for the connection's three requests")
        _ = try await channel.close()
        channel.embeddedEventLoop.run()
        #expect(middleware.connections == 0, "forgotten when the connection closes")
    }
}
