import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOHTTPTypes
import NIOSSL

/// HTTP/1 child channel that accepts Vault's custom `LIST` method.
///
/// NIO's HTTP parser (llhttp) rejects methods it does not know, and `LIST` is one of them,
/// yet hvac and the vault CLI send it. Before the parser, `LIST <uri> HTTP/1.1` is rewritten
/// to `GET <uri>?list=true HTTP/1.1`, which Vault treats the same. The rewrite happens only at
/// the start of a request: a handler after the parser reports where each request ends.
///
/// Each connection also gets a `ConnectionGuard` before the parser, which enforces the
/// listener's timeouts and its seat in the listener's `ConnectionRegistry`.
struct ListMethodChannel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let responder: HTTPChannelHandler.Responder
    let limits: ListenerLimits
    let registry: ConnectionRegistry
    private let template: HTTP1Channel

    init(responder: @escaping HTTPChannelHandler.Responder, limits: ListenerLimits, registry: ConnectionRegistry) {
        self.responder = responder
        self.limits = limits
        self.registry = registry
        template = HTTP1Channel(responder: responder)
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let boundary = RequestBoundary()
        let connection = ConnectionGuard(limits: limits, registry: registry, logger: logger)
        let http = HTTP1Channel(
            responder: responder,
            configuration: .init(additionalChannelHandlers: [
                RequestEndObserver(boundary: boundary), RequestProgressObserver(connection: connection),
            ]))
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(connection)
            try channel.pipeline.syncOperations.addHandler(ListMethodRewriter(boundary: boundary))
        }.flatMap {
            http.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await template.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 that accepts the `LIST` method, optionally over TLS, within `limits`.
    static func vault(tls: TLSConfiguration?, limits: ListenerLimits, logger: Logger) -> HTTPServerBuilder {
        let registry = ConnectionRegistry(maxConnections: limits.maxConnections, logger: logger)
        return .init { responder in
            let base = ListMethodChannel(responder: responder, limits: limits, registry: registry)
            guard let tls else { return base }
            return try TLSChannel(base, tlsConfiguration: tls)
        }
    }
}

/// Whether the next inbound bytes start a request. Only touched on the channel's event loop.
final class RequestBoundary: @unchecked Sendable {
    var atRequestStart = true
}

/// Sees decoded request parts; marks the boundary when a request's end has been read.
final class RequestEndObserver: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    private let boundary: RequestBoundary

    init(boundary: RequestBoundary) { self.boundary = boundary }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) { boundary.atRequestStart = true }
        context.fireChannelRead(data)
    }
}

/// Rewrites a leading `LIST ` request line into `GET …list=true` before the HTTP parser.
final class ListMethodRewriter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let boundary: RequestBoundary
    private var pending: ByteBuffer?
    private static let list = Array("LIST ".utf8)
    private static let maxRequestLine = 16 * 1024

    init(boundary: RequestBoundary) { self.boundary = boundary }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        guard boundary.atRequestStart || pending != nil else {
            context.fireChannelRead(data)
            return
        }
        if var held = pending {
            held.writeBuffer(&buffer)
            buffer = held
            pending = nil
        }
        let bytes = buffer.readableBytesView
        let checked = min(bytes.count, Self.list.count)
        guard bytes.prefix(checked).elementsEqual(Self.list.prefix(checked)) else {
            boundary.atRequestStart = false
            context.fireChannelRead(wrapInboundOut(buffer))
            return
        }
        guard let lineEnd = bytes.firstIndex(of: UInt8(ascii: "\n")) else {
            if bytes.count < Self.maxRequestLine {
                pending = buffer  // wait for the whole request line
            } else {
                boundary.atRequestStart = false
                context.fireChannelRead(wrapInboundOut(buffer))  // the parser rejects it
            }
            return
        }
        boundary.atRequestStart = false
        let line = Array(bytes[bytes.startIndex..<lineEnd])
        let parts = line.split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            context.fireChannelRead(wrapInboundOut(buffer))
            return
        }
        let uri = Array(parts[1])
        var rewritten = ByteBuffer()
        rewritten.writeString("GET ")
        rewritten.writeBytes(uri)
        rewritten.writeString(uri.contains(UInt8(ascii: "?")) ? "&list=true " : "?list=true ")
        rewritten.writeBytes(parts[2])
        rewritten.writeBytes(bytes[lineEnd...])
        context.fireChannelRead(wrapInboundOut(rewritten))
    }
}
