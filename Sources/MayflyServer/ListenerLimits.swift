import MayflyCore
import NIOCore

/// How long one listener's connections may take, and how many it keeps open (the
/// `http_read_header_timeout`, `http_read_timeout`, `http_idle_timeout`, `tls_handshake_timeout`
/// and `max_connections` of its config stanza).
struct ListenerLimits: Sendable {
    /// A request head must be complete this long after its first byte (the first request's:
    /// after the connection was accepted, so it bounds a TLS handshake too).
    var readHeaderTimeout: TimeAmount
    /// A request body must be read completely this long after its head.
    var readTimeout: TimeAmount = .seconds(30)
    /// A connection with nothing in flight is closed after this long without a request.
    var idleTimeout: TimeAmount
    /// The TLS handshake must be done this long after the connection was accepted; nil without TLS.
    var tlsHandshakeTimeout: TimeAmount?
    /// Open connections at most.
    var maxConnections: Int

    init(readHeaderTimeout: TimeAmount, idleTimeout: TimeAmount, tlsHandshakeTimeout: TimeAmount?, maxConnections: Int) {
        self.readHeaderTimeout = readHeaderTimeout
        self.idleTimeout = idleTimeout
        self.tlsHandshakeTimeout = tlsHandshakeTimeout
        self.maxConnections = maxConnections
    }

    init(_ listener: UnixListenerConfig) {
        self.init(readHeaderTimeout: .seconds(listener.readHeaderTimeout), idleTimeout: .seconds(listener.idleTimeout),
                  tlsHandshakeTimeout: nil, maxConnections: listener.maxConnections)
        readTimeout = .seconds(listener.readTimeout)
    }

    init(_ listener: TCPListenerConfig) {
        self.init(readHeaderTimeout: .seconds(listener.readHeaderTimeout), idleTimeout: .seconds(listener.idleTimeout),
                  tlsHandshakeTimeout: .seconds(listener.tlsHandshakeTimeout), maxConnections: listener.maxConnections)
        readTimeout = .seconds(listener.readTimeout)
    }
}
