import Logging
import NIOCore
import NIOTLS

/// One connection's clock and its seat in the listener's `ConnectionRegistry`.
///
/// Sits before the HTTP parser (after TLS), where it sees the bytes of request heads; a
/// `RequestProgressObserver` after the parser reports when a head is complete, when a request
/// has been read and when its response has been written. It closes the connection when:
/// - the TLS handshake is not done `tls_handshake_timeout` after the connection was accepted;
/// - a request head is not complete `http_read_header_timeout` after its first byte (for the
///   first request: after the connection was accepted, so the handshake counts too);
/// - a request body is not read completely `http_read_timeout` after its head (a client that
///   trickles a body holds no connection for longer);
/// - a fresh connection sends nothing for min(`http_idle_timeout`, `http_read_header_timeout`);
/// - a connection has nothing in flight and receives nothing for `http_idle_timeout`;
/// - the registry evicts it to make room at `max_connections`.
///
/// A request being handled (read, its response not yet written) is never cut. Only touched on the channel's event loop.
final class ConnectionGuard: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let limits: ListenerLimits
    private let registry: ConnectionRegistry
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var id: ConnectionRegistry.ID?
    private var closing = false

    private var accepted = NIODeadline.now()
    private var handshaking: Bool
    /// Whether a response has been completed (the connection is no longer fresh).
    private var served = false
    /// Since when nothing has been in flight (accept or the last response).
    private var idleSince = NIODeadline.now()
    /// When the pending request head began; nil when no head bytes are pending.
    private var headStart: NIODeadline?
    /// When the head of the request whose body is being read arrived.
    private var bodyStart: NIODeadline?
    private var headsRead = 0
    private var requestsRead = 0
    private var responsesWritten = 0

    private var timer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?

    init(limits: ListenerLimits, registry: ConnectionRegistry, logger: Logger) {
        self.limits = limits
        self.registry = registry
        self.logger = logger
        self.handshaking = limits.tlsHandshakeTimeout != nil
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { activate(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimer()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        activate(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimer()
        if let id { registry.remove(id) }
        id = nil
        closing = true
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }  // evicted or timed out: nothing more reaches the parser
        if headStart == nil && headsRead == requestsRead {
            // Between requests: these bytes begin a request head.
            if isIdle {
                guard let id, registry.markBusy(id) else {
                    close(context, reason: "evicted to make room at max_connections")
                    return
                }
            }
            headStart = served ? .now() : accepted
        }
        context.fireChannelRead(data)
        // The parser has seen the bytes: a head still incomplete needs its deadline.
        if headStart != nil { schedule(context) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            // The handshake had its own limit; the first request's clock starts now.
            handshaking = false
            accepted = .now()
            idleSince = accepted
            schedule(context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: Reports from RequestProgressObserver

    /// The parser produced a request head.
    func headReceived() {
        headsRead += 1
        headStart = nil
        bodyStart = .now()
        if let context { schedule(context) }
    }

    /// The parser reached a request's end.
    func requestRead() {
        requestsRead += 1
        bodyStart = nil
        becameIdleIfDone()
    }

    /// A response's end was written (a 400 for an unparsable head answers no head: not counted).
    func responseWritten() {
        responsesWritten = min(responsesWritten + 1, headsRead)
        served = true
        becameIdleIfDone()
    }

    // MARK: State

    /// Nothing in flight and no head pending.
    private var isIdle: Bool {
        headStart == nil && headsRead == requestsRead && headsRead == responsesWritten
    }

    private func becameIdleIfDone() {
        guard headsRead == requestsRead && headsRead == responsesWritten, let context else { return }
        let now = NIODeadline.now()
        idleSince = now
        if let start = headStart {
            // A pipelined head began while the previous request was in flight: its time starts now.
            headStart = max(start, now)
        } else if let id {
            registry.markIdle(id, since: now)
        }
        schedule(context)
    }

    /// When the connection must close if nothing changes; nil while a request is in flight.
    private var deadline: NIODeadline? {
        if headsRead > requestsRead, let bodyStart { return bodyStart + limits.readTimeout }
        guard headsRead == requestsRead && headsRead == responsesWritten else { return nil }
        if let headStart { return headStart + limits.readHeaderTimeout }
        guard served else {
            // A TLS handshake has tls_handshake_timeout, whatever the HTTP limits; then the
            // first request has the lesser of them from the handshake's end.
            if handshaking, let handshake = limits.tlsHandshakeTimeout { return accepted + handshake }
            return accepted + min(limits.idleTimeout, limits.readHeaderTimeout)
        }
        return idleSince + limits.idleTimeout
    }

    private var closeReason: String {
        if headsRead > requestsRead { return "request body not read within http_read_timeout" }
        if headStart != nil { return "request head not complete within http_read_header_timeout" }
        if handshaking { return "TLS handshake not complete within tls_handshake_timeout" }
        return served ? "idle for http_idle_timeout" : "nothing sent within http_read_header_timeout/http_idle_timeout"
    }

    private func activate(_ context: ChannelHandlerContext) {
        guard id == nil, !closing else { return }
        accepted = .now()
        idleSince = accepted
        guard let id = registry.admit(context.channel, now: accepted) else {
            close(context, reason: "max_connections reached and no connection is idle")
            return
        }
        self.id = id
        schedule(context)
    }

    // MARK: Timer

    /// Makes sure a timer fires by the current deadline. A timer already due earlier is kept: when
    /// it fires it looks at the state anew, so most requests arm no timer at all.
    private func schedule(_ context: ChannelHandlerContext) {
        guard !closing, let deadline else { return }
        if let timerDeadline, timerDeadline <= deadline { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            timer = nil
            timerDeadline = nil
            guard let due = self.deadline else { return }
            if due <= .now() {
                close(context, reason: closeReason)
            } else {
                schedule(context)
            }
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
    }

    private func close(_ context: ChannelHandlerContext, reason: String) {
        guard !closing else { return }
        closing = true
        cancelTimer()
        if let id { registry.remove(id) }
        id = nil
        logger.debug("closing connection: \(reason)", metadata: ["remote": "\(context.channel.remoteAddress?.description ?? "unix")"])
        context.close(promise: nil)
    }
}
