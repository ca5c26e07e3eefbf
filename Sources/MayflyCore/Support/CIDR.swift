import Foundation

/// An IPv4 or IPv6 network (`10.0.0.0/8`, `::1/128`; a bare address is a single host).
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    private let network: [UInt8]
    private let prefix: Int
    public let description: String

    /// Parses `text`; nil when it is not an address or network.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = parts.first, let bytes = CIDR.bytes(first) else { return nil }
        let maximum = bytes.count * 8
        var prefix = maximum
        if parts.count == 2 {
            guard let value = Int(parts[1]), (0...maximum).contains(value) else { return nil }
            prefix = value
        }
        network = bytes
        self.prefix = prefix
        description = text
    }

    /// True when `address` (no port) lies in the network.
    public func contains(_ address: String) -> Bool {
        guard let bytes = CIDR.bytes(address), bytes.count == network.count else { return false }
        var remaining = prefix
        for index in 0..<bytes.count where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if bytes[index] & mask != network[index] & mask { return false }
            remaining -= bits
        }
        return true
    }

    static func bytes(_ address: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, address, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
